"""cluster.hostKeyChecking against a real OpenSSH server and client.

Ansible's ssh connection hands ANSIBLE_SSH_ARGS to `ssh` (and adds nothing about host keys
when ANSIBLE_HOST_KEY_CHECKING=True), so the options the program builds are run here with
the real `ssh` against a real `sshd` on loopback, whose host key the test can change:
pinned keys admit only the pinned key, acceptNew records the key on first contact and fails
when it changes, and the known_hosts lines the inventory step uploads are what ssh reads.
`HostKeyAlias` stands for the node's address: the test's sshd listens on a free port, the
nodes on 22.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

from components.kubespray import known_hosts_lines, ssh_args  # noqa: E402
from stacks.config import parse_config  # noqa: E402
from tests.e2e.lib.sshd import SSHD, ControlHost  # noqa: E402
from tests.support.mocks import EXAMPLE_HOST_KEYS, PROJECT_ROOT, kubespray_config  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("ssh") is None or not Path(SSHD).exists(), reason="needs openssh-client and openssh-server"
)

NODE = "10.4.17.170"  # the node's address, as ssh looks it up in known_hosts


@pytest.fixture
def sshd(tmp_path: Path) -> Any:
    host = ControlHost(tmp_path / "sshd").start()
    yield host
    host.stop()


def cluster(mode: str, host_key: str = "") -> Any:
    cfg = kubespray_config()
    cfg["cluster"]["hostKeyChecking"] = mode
    node: dict[str, Any] = {"name": "node4", "address": NODE, "roles": ["worker"]}
    if host_key:
        node["hostKey"] = host_key
    cfg["cluster"]["nodes"].append(node)
    if mode == "pinned":
        for i, n in enumerate(cfg["cluster"]["nodes"][:-1]):
            n["hostKey"] = EXAMPLE_HOST_KEYS[1 + i]
    return parse_config(cfg, project_root=PROJECT_ROOT).cluster


def connect(sshd: ControlHost, spec: Any, known_hosts: Path) -> subprocess.CompletedProcess[str]:
    """`ssh` with exactly the options ansible gets, as ansible would split them."""
    known_hosts.with_name(known_hosts.name + ".pinned").write_text(known_hosts_lines(spec))
    _, opts = ssh_args(spec, str(known_hosts))
    argv = [
        "ssh", *shlex.split(opts), "-o", f"HostKeyAlias={NODE}", "-o", "BatchMode=yes",
        "-o", "ControlMaster=no", "-o", "ConnectTimeout=5", "-i", str(sshd.client_key),
        "-p", str(sshd.port), f"{sshd.user}@127.0.0.1", "echo connected",
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def new_host_key(sshd: ControlHost) -> None:
    """The machine behind the address is not the one it was: a new host key, sshd restarted."""
    sshd.stop()
    for suffix in ("", ".pub"):
        Path(str(sshd.host_key_file) + suffix).unlink()
    sshd.start()


def test_pinned_admits_the_pinned_key_only(sshd: ControlHost, tmp_path: Path) -> None:
    right = cluster("pinned", sshd.host_public_key)
    res = connect(sshd, right, tmp_path / "known_hosts")
    assert res.returncode == 0 and "connected" in res.stdout, res.stderr
    assert not (tmp_path / "known_hosts").exists(), "pinned mode learns nothing"

    wrong = cluster("pinned", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtUsR1dFr4DSNH1pbCOhCQtFgr1wyu7QuKTMbMVpvbO")
    res = connect(sshd, wrong, tmp_path / "known_hosts")
    assert res.returncode != 0 and "connected" not in res.stdout
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in res.stderr, res.stderr


def test_accept_new_records_the_first_key_and_refuses_a_changed_one(sshd: ControlHost, tmp_path: Path) -> None:
    spec = cluster("acceptNew")
    learned = tmp_path / "known_hosts"
    first = connect(sshd, spec, learned)
    assert first.returncode == 0, first.stderr
    assert sshd.host_public_key.split()[1] in learned.read_text(), "the key is recorded on first contact"
    again = connect(sshd, spec, learned)
    assert again.returncode == 0, again.stderr

    new_host_key(sshd)
    changed = connect(sshd, spec, learned)
    assert changed.returncode != 0 and "connected" not in changed.stdout
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in changed.stderr, changed.stderr


def test_accept_new_never_learns_past_a_pinned_key(sshd: ControlHost, tmp_path: Path) -> None:
    spec = cluster("acceptNew", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtUsR1dFr4DSNH1pbCOhCQtFgr1wyu7QuKTMbMVpvbO")
    res = connect(sshd, spec, tmp_path / "known_hosts")
    assert res.returncode != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in res.stderr, res.stderr
    learned = tmp_path / "known_hosts"
    assert not learned.exists() or sshd.host_public_key.split()[1] not in learned.read_text()


def test_off_is_what_dev_asks_for(sshd: ControlHost, tmp_path: Path) -> None:
    cfg = kubespray_config("dev")
    cfg["cluster"]["hostKeyChecking"] = "off"
    spec = parse_config(cfg, project_root=PROJECT_ROOT).cluster
    checking, opts = ssh_args(spec, str(tmp_path / "known_hosts"))
    # ansible adds -o StrictHostKeyChecking=no itself when ANSIBLE_HOST_KEY_CHECKING=False
    assert checking == "False" and "StrictHostKeyChecking" not in opts and "KnownHostsFile" not in opts

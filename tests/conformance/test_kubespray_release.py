"""Kubespray v2.31.0's own code on what the program generates, offline.

- The release table (`components/kubespray_releases/v2.31.0.json`: commit, installable
  Kubernetes versions, ansible range, variable names) is what `scripts/kubespray_facts.py`
  reads from the vendored tree today.
- Kubespray's own `playbooks/boilerplate.yml` — ansible version check, dynamic groups and
  `validate_inventory` with `kubespray_defaults` — passes on the inventory of every
  committed stack, run by the ansible that kubespray's `requirements.txt` pins.
- Where the program refuses a Kubernetes version, kubespray's own validation refuses it
  too, and the other way round: the table and kubespray agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import kubespray_release
from components.kubespray_inventory import GROUP_VARS_PATH, render
from stacks.config import SECRET, ConfigError, parse_config
from stacks.files import PROJECT_ROOT, config_from_file, stack_file
from tests.support import kubespray_tree

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kubespray_tree.unpack(tmp_path_factory.mktemp("kubespray") / "src")


@pytest.fixture(scope="module")
def ansible_bin(tree: Path) -> Path:
    return kubespray_tree.ansible_venv(tree / "requirements.txt")


def boilerplate(tree: Path, bin_dir: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", str(inventory / "hosts.yaml"), "playbooks/boilerplate.yml"],
        cwd=tree, capture_output=True, text=True, timeout=300,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(inventory), "ANSIBLE_LOCAL_TEMP": str(inventory / ".tmp"),
             "ANSIBLE_FORCE_COLOR": "False", "ANSIBLE_NOCOLOR": "True"},
    )  # fmt: skip


def write_inventory(cluster_cfg: dict[str, Any], out: Path, extra_vars: dict[str, Any] | None = None) -> Path:
    spec = parse_config({"environment": "dev", "cluster": cluster_cfg, "sshPrivateKey": SECRET,
                         "mysql": {"enabled": False}, "apps": []}, project_root=PROJECT_ROOT)  # fmt: skip
    inv = render(spec.cluster, spec.schedulable_control_plane)
    (out / GROUP_VARS_PATH).parent.mkdir(parents=True, exist_ok=True)
    (out / "hosts.yaml").write_text(inv.hosts_yaml)
    group_vars = yaml.safe_load(inv.group_vars_yaml) | (extra_vars or {})
    (out / GROUP_VARS_PATH).write_text(yaml.safe_dump(group_vars))
    return out


def test_release_table_is_read_from_the_vendored_tree() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "kubespray_facts.py"), str(kubespray_tree.tarball())],
                         capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    committed = (ROOT / "components" / "kubespray_releases" / "v2.31.0.json").read_text()
    assert json.loads(out) == json.loads(committed), (
        "components/kubespray_releases/v2.31.0.json is stale: regenerate it with "
        "scripts/kubespray_facts.py <kubespray-2.31.0.src.tar.gz> --out components/kubespray_releases/v2.31.0.json"
    )
    rel = kubespray_release.release("v2.31.0")
    assert rel is not None and rel.commit == "1c9add48975060f45396b34d8e022c30d7f80dab"
    assert rel.kube_versions[0] == "1.35.4" and rel.kube_versions[-1] == "1.33.0"


@pytest.mark.parametrize("stack", STACKS)
def test_kubespray_validates_each_committed_stack_inventory(
    stack: str, tree: Path, ansible_bin: Path, tmp_path: Path
) -> None:
    res = subprocess.run([sys.executable, "-m", "stacks", "inventory", stack, "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    ran = boilerplate(tree, ansible_bin, tmp_path)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert "validate_inventory : Stop if unsupported version of Kubernetes" in ran.stdout
    assert "failed=0" in ran.stdout


def test_program_and_kubespray_agree_on_kube_versions(tree: Path, ansible_bin: Path, tmp_path: Path) -> None:
    cluster = config_from_file(stack_file("dev"))["cluster"]
    # 1.33.0 is the oldest v2.31.0 installs: accepted by both
    ok = dict(cluster, kubeVersion="1.33.0")
    assert boilerplate(tree, ansible_bin, write_inventory(ok, tmp_path / "ok")).returncode == 0
    # 1.32.9: the program refuses it up front …
    with pytest.raises(ConfigError) as exc:
        write_inventory(dict(cluster, kubeVersion="1.32.9"), tmp_path / "refused")
    assert [str(p) for p in exc.value.problems] == [
        "cluster.kubeVersion: 1.32.9 is not installable by kubespray v2.31.0 (1.33.0 … 1.35.4); "
        "pick one of those (empty = its default, 1.35.4) or another kubespray release"
    ]
    # … and kubespray's own validate_inventory refuses the same inventory
    forced = write_inventory(cluster, tmp_path / "forced", {"kube_version": "1.32.9"})
    ran = boilerplate(tree, ansible_bin, forced)
    assert ran.returncode != 0
    assert "Kubernetes v1.32.9 is not supported" in ran.stdout or "1.32.9" in ran.stdout, ran.stdout[-3000:]


def test_the_requirements_lock_covers_kubesprays_pins_and_installs_with_hashes(tree: Path, tmp_path: Path) -> None:
    """The lock the control host installs: every pin of kubespray's requirements.txt, hashes pip accepts."""
    lock = ROOT / "components" / "kubespray_releases" / "v2.31.0.requirements.txt"
    text = lock.read_text().lower()
    for pin in (tree / "requirements.txt").read_text().splitlines():
        if pin and not pin.startswith("#"):
            assert f"\n{pin.lower()} \\\n" in text, f"{pin} is not pinned by {lock.name}"
    wheels = kubespray_tree.ensure_wheelhouse(lock)
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--require-hashes",
                          "--no-index", "--find-links", str(wheels), "-r", str(lock)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize(
    "access",
    [
        {"mode": "kubeVip", "address": "10.4.17.5", "subnet": "10.4.17.0/24", "interface": "eth0"},
        {"mode": "externalLB", "address": "10.4.17.6", "port": 8383, "domainName": "k8s-api.example.com"},
    ],
    ids=["kubeVip", "externalLB"],
)
def test_kubespray_accepts_each_api_access_mode(access: dict[str, Any], tree: Path, ansible_bin: Path, tmp_path: Path) -> None:
    cluster = dict(config_from_file(stack_file("staging"))["cluster"], apiAccess=access)
    cluster.pop("apiServerEndpoint", None)
    inventory = write_inventory(cluster, tmp_path)
    group_vars = yaml.safe_load((inventory / GROUP_VARS_PATH).read_text())
    assert group_vars["loadbalancer_apiserver"] == {"address": access["address"], "port": access.get("port", 6443)}
    ran = boilerplate(tree, ansible_bin, inventory)
    assert ran.returncode == 0 and "failed=0" in ran.stdout, ran.stdout[-4000:] + ran.stderr[-2000:]

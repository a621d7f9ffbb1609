"""`controlHost.hostKey` and `nodes[].hostKey` against OpenSSH's own reading of them.

A table of keys (made by `ssh-keygen` here, and broken copies of them) goes through the
program's check and through what OpenSSH does with the program's output: the known_hosts line
the inventory step writes for a node (`<address> <hostKey>`) read by `ssh-keygen -l -f`, which
parses known_hosts files the way ssh does. The two must agree, except for the rows in STRICTER:
DSA keys, which `ssh-keygen` still reads but the ssh client never offers for a host (`ssh -G`'s
HostKeyAlgorithms, checked below: a pinned DSA key could never match), and an RSA key written
under a signature's name.
"""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.cluster_config import HOST_KEY_TYPES, host_key_check
from components.kubespray import known_hosts_lines

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs openssh-client (make system-deps)")

NODE = "10.4.17.170"


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _fields(blob: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(blob):
        (n,) = struct.unpack(">I", blob[i : i + 4])
        out.append(blob[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """'kind' -> 'type base64' of a fresh host key of each kind."""
    d = tmp_path_factory.mktemp("hostkeys")
    out = {}
    for kind, args in {"ed25519": ["-t", "ed25519"], "ecdsa256": ["-t", "ecdsa", "-b", "256"],
                       "ecdsa384": ["-t", "ecdsa", "-b", "384"], "ecdsa521": ["-t", "ecdsa", "-b", "521"],
                       "rsa": ["-t", "rsa", "-b", "2048"], "dsa": ["-t", "dsa"]}.items():  # fmt: skip
        subprocess.run(["ssh-keygen", "-q", *args, "-N", "", "-C", "root@node", "-f", str(d / kind)], check=True)
        out[kind] = " ".join((d / f"{kind}.pub").read_text().split()[:2])
    # security-key host keys: the public half is the key plus an application string (no device needed)
    ed = _fields(base64.b64decode(out["ed25519"].split()[1]))[1]
    out["sk-ed25519"] = "sk-ssh-ed25519@openssh.com " + _b64(_string(b"sk-ssh-ed25519@openssh.com") + _string(ed) + _string(b"ssh:"))
    _, curve, point = _fields(base64.b64decode(out["ecdsa256"].split()[1]))
    sk_ec = _string(b"sk-ecdsa-sha2-nistp256@openssh.com") + _string(curve) + _string(point) + _string(b"ssh:")
    out["sk-ecdsa"] = "sk-ecdsa-sha2-nistp256@openssh.com " + _b64(sk_ec)
    small = rsa.RSAPublicNumbers(65537, (1 << 767) | 0x3039).public_key()  # 768 bits; no primes needed
    out["rsa768"] = small.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return out


def _table(k: dict[str, str]) -> list[tuple[str, str]]:
    """(row id, value) — the good keys, and each kind of damage a pasted key suffers."""
    ed_type, ed_blob = k["ed25519"].split()
    raw = base64.b64decode(ed_blob)
    ec_fields = _fields(base64.b64decode(k["ecdsa256"].split()[1]))
    off_curve = _string(ec_fields[0]) + _string(ec_fields[1]) + _string(ec_fields[2][:-1] + bytes([ec_fields[2][-1] ^ 1]))
    return [
        *[(kind, value) for kind, value in k.items()],
        ("with-comment", k["ed25519"] + " root@node"),
        ("rsa-with-comment", k["rsa"] + " root@node.example.com"),
        ("ed25519-as-rsa", f"ssh-rsa {ed_blob}"),
        ("rsa-as-ed25519", f"ssh-ed25519 {k['rsa'].split()[1]}"),
        ("truncated", f"{ed_type} {ed_blob[:-8]}"),
        ("short-key", f"{ed_type} {_b64(raw[:-1])}"),
        ("trailing-bytes", f"{ed_type} {_b64(raw + b'x')}"),
        ("not-base64", f"{ed_type} AAAAC3NzaC1lZDI1NTE5!!!!"),
        ("made-up", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleOnly"),
        ("off-curve", f"ecdsa-sha2-nistp256 {_b64(off_curve)}"),
        ("blob-only", ed_blob),
        ("type-only", ed_type),
        ("unknown-type", f"ssh-ed448 {ed_blob}"),
        ("signature-name", f"rsa-sha2-256 {k['rsa'].split()[1]}"),
        ("known-hosts-line", f"{NODE} {k['ed25519']}"),
        ("known-hosts-hashed", f"|1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|aGFzaGhhc2hoYXNoaGFzaGhhc2g= {k['ed25519']}"),
        ("cert-authority", f"@cert-authority *.example.com {k['ed25519']}"),
    ]


def _openssh_reads(tmp: Path, value: str) -> bool:
    """ssh-keygen reads the known_hosts line the program writes for a node with this key."""
    lines = known_hosts_lines(SimpleNamespace(members=[SimpleNamespace(address=NODE, host_key=value)]))  # type: ignore[arg-type]
    path = tmp / "known_hosts"
    path.write_text(lines)
    res = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, timeout=30)
    return res.returncode == 0 and len(res.stdout.splitlines()) == 1


STRICTER = {
    "dsa": "DSA: not among the host key algorithms the ssh client offers (see the test below)",
    "signature-name": "rsa-sha2-256 names a signature, not a key type: ssh-keyscan prints the key as ssh-rsa",
}


def test_the_program_and_openssh_agree_on_every_key(keys: dict[str, str], tmp_path: Path) -> None:
    table = _table(keys)
    assert len(table) >= 25
    verdicts = {rid: (host_key_check(value) is None, _openssh_reads(tmp_path, value)) for rid, value in table}
    for rid in STRICTER:
        assert verdicts[rid] == (False, True), (rid, verdicts[rid])
    wrong = {rid: v for rid, v in verdicts.items() if rid not in STRICTER and v[0] != v[1]}
    assert not wrong, f"(program accepts, OpenSSH reads) differ: {wrong}"
    assert {rid for rid, (ours, _) in verdicts.items() if ours} == {
        "ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa", "sk-ed25519", "sk-ecdsa", "with-comment",
        "rsa-with-comment",
    }  # fmt: skip


def test_every_accepted_type_is_one_the_ssh_client_offers() -> None:
    res = subprocess.run(["ssh", "-G", NODE], capture_output=True, text=True, timeout=30, check=True)
    line = next(x for x in res.stdout.splitlines() if x.startswith("hostkeyalgorithms "))
    offered = set(line.split(" ", 1)[1].split(","))
    for kind in HOST_KEY_TYPES:
        # an ssh-rsa key is offered as its SHA-2 signatures
        wanted = {"rsa-sha2-256", "rsa-sha2-512"} if kind == "ssh-rsa" else {kind}
        assert wanted & offered, f"{kind} is accepted but ssh offers none of {wanted}: {sorted(offered)}"
    assert "ssh-dss" not in offered


def test_refusals_say_how_to_fix_and_do_not_echo_the_key(keys: dict[str, str]) -> None:
    blob = keys["ed25519"].split()[1]
    assert "ssh-keyscan" in (host_key_check(blob[:-8]) or "")
    message = host_key_check(f"ssh-ed25519 {blob[:-8]}") or ""
    assert "copy it whole" in message and blob[:-8] not in message
    assert "without the host" in (host_key_check(f"{NODE} {keys['ed25519']}") or "")
    assert "OpenSSH" in (host_key_check(keys["dsa"]) or "")
    assert "1024" in (host_key_check(keys["rsa768"]) or "")

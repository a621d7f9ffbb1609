"""components/kubespray_scripts/etcd-snapshot.sh: shellcheck, and its logic against a stub etcdctl.

The e2e tier runs the same script against the local cluster's real etcd with the real
etcdctl (tests/e2e/test_kubespray_mode.py); here the stub says what etcdctl was asked and
with which environment, and can fail like etcdctl does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.kubespray import ETCD_SNAPSHOT_SCRIPT

STUB = """#!/bin/sh
printf '%s\\n' "$*" >> "$STUB_LOG"
env | grep '^ETCDCTL_' | sort >> "$STUB_LOG"
if [ -n "${STUB_FAIL:-}" ]; then echo "context deadline exceeded" >&2; exit 1; fi
[ "$1 $2" = "snapshot save" ] || exit 3
printf 'etcd-data' > "$3"
echo "Snapshot saved at $3"
"""


def run(tmp_path: Path, *args: str, fail: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    stub = tmp_path / "etcdctl"
    stub.write_text(STUB)
    stub.chmod(0o755)
    full = {"PATH": "/usr/bin:/bin", "ETCDCTL": str(stub), "STUB_LOG": str(tmp_path / "calls.log"),
            "ETCDCTL_ENDPOINTS": "https://127.0.0.1:2379", **(env or {})}  # fmt: skip
    if fail:
        full["STUB_FAIL"] = "1"
    return subprocess.run(["sh", str(ETCD_SNAPSHOT_SCRIPT), *args], capture_output=True, text=True, env=full, timeout=60)


def snapshots(d: Path) -> list[str]:
    return sorted(p.name for p in d.glob("etcd-snapshot-*.db"))


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make setup installs it)")
    proc = subprocess.run(["shellcheck", "-s", "sh", "--severity=style", str(ETCD_SNAPSHOT_SCRIPT)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stdout


def test_saves_a_snapshot_and_keeps_the_newest(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    old = [f"etcd-snapshot-2026110{i}T030000Z.db" for i in range(1, 6)]
    for name in old:
        (backups / name).write_text("old")
    (backups / "unrelated.db").write_text("keep me")
    res = run(tmp_path, str(backups), "3", env={"ETCDCTL_CERT": "/etc/ssl/etcd/ssl/admin-node1.pem",
                                                 "ETCDCTL_KEY": "", "ETCDCTL_CACERT": "/etc/ssl/etcd/ssl/ca.pem"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    kept = snapshots(backups)
    assert len(kept) == 3 and kept[:2] == old[-2:], kept
    new = backups / kept[-1]
    assert new.read_text() == "etcd-data" and oct(new.stat().st_mode & 0o777) == "0o600"
    assert f"etcd snapshot saved: {new} (9 bytes); keeping the newest 3 in {backups}" in res.stdout
    assert (backups / "unrelated.db").exists() and not (backups / ".partial.db").exists()
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[0] == f"snapshot save {backups}/.partial.db"
    # an empty certificate variable is dropped, the others reach etcdctl
    assert "ETCDCTL_CERT=/etc/ssl/etcd/ssl/admin-node1.pem" in calls and "ETCDCTL_API=3" in calls
    assert not [c for c in calls if c.startswith("ETCDCTL_KEY")]


def test_a_failed_snapshot_keeps_nothing_half_written(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    res = run(tmp_path, str(backups), "3", fail=True)
    assert res.returncode == 1
    assert "etcdctl snapshot save failed" in res.stderr and "context deadline exceeded" in res.stderr
    assert snapshots(backups) == [] and list(backups.iterdir()) == []


@pytest.mark.parametrize("args", [(), ("/x",), ("/x", "0"), ("/x", "three"), ("/x", "-1")])
def test_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    res = run(tmp_path, *args)
    assert res.returncode == 2 and res.stderr.startswith(("usage:", "etcd-snapshot: RETENTION")), res.stderr
    assert not (tmp_path / "calls.log").exists()


def test_two_snapshots_in_one_second_get_their_own_names(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    assert run(tmp_path, str(backups), "5").returncode == 0
    assert run(tmp_path, str(backups), "5").returncode == 0
    assert len(snapshots(backups)) == 2

"""The health gate script (components/kubespray_scripts/health-gate.sh): real bash and
shellcheck, its logic against a stub `kubectl` that answers with what a cluster prints
(the same `custom-columns` output kubectl gives). The gate against a real API server is
in tests/e2e/test_kubespray_mode.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.kubespray import HEALTH_GATE_SCRIPT

STUB = r"""#!/bin/bash
# stub kubectl: answers from $STUB_DIR/<what>[.<n>] where n counts the checks so far
d=$STUB_DIR
printf '%s\n' "$*" >>"$d/argv.log"
case "$*" in
    *"--raw /readyz"*)
        n=$(cat "$d/checks" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$d/checks"
        what=readyz ;;
    *"get nodes"*) what=nodes ;;
    *"deployments,statefulsets,daemonsets"*) what=work ;;
    *"get pods"*) what=pods ;;
    *) echo "stub kubectl: unexpected $*" >&2; exit 3 ;;
esac
n=$(cat "$d/checks" 2>/dev/null || echo 1)
f=$d/$what; [ -f "$f.$n" ] && f=$f.$n
[ -f "$f" ] && cat "$f"
exit "$(cat "$d/$what.rc" 2>/dev/null || echo 0)"
"""

NODES_OK = "node1   True    kubelet is posting ready status\nnode2   True    kubelet is posting ready status\n"
WORK_OK = (
    "Deployment   coredns          2       2        <none>   <none>\n"
    "DaemonSet    calico-node      <none>  <none>   2        2\n"
    "StatefulSet  snapshot-ctl     1       1        <none>   <none>\n"
)


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    d = tmp_path / "stub"
    d.mkdir()
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(STUB)
    kubectl.chmod(0o755)
    (d / "readyz").write_text("ok")
    (d / "nodes").write_text(NODES_OK)
    (d / "work").write_text(WORK_OK)
    return d


def gate(stub: Path, timeout: int, *nodes: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(HEALTH_GATE_SCRIPT), str(stub.parent / "kubectl"), "/etc/admin.conf", str(timeout), *nodes],
        env={"PATH": "/usr/bin:/bin", "STUB_DIR": str(stub), "HEALTH_GATE_INTERVAL": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_shellcheck_and_syntax() -> None:
    assert subprocess.run(["bash", "-n", str(HEALTH_GATE_SCRIPT)], check=False).returncode == 0
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make setup installs it)")
    proc = subprocess.run(["shellcheck", "--severity=style", str(HEALTH_GATE_SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_a_healthy_cluster_passes_at_once(stub: Path) -> None:
    proc = gate(stub, 0, "node1", "node2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "health gate: API server ready, 2 node(s) Ready, kube-system workloads available\n"
    argv = (stub / "argv.log").read_text()
    assert "--kubeconfig /etc/admin.conf --request-timeout=10s get --raw /readyz" in argv


def test_waits_until_the_cluster_becomes_healthy(stub: Path) -> None:
    # first check: node2 not ready and coredns 0/2; from the third check on: healthy
    (stub / "nodes.1").write_text("node1 True ok\nnode2 False container runtime network not ready\n")
    (stub / "work.1").write_text(WORK_OK.replace("coredns          2       2", "coredns          2       <none>"))
    (stub / "work.2").write_text(WORK_OK.replace("coredns          2       2", "coredns          2       1"))
    proc = gate(stub, 60, "node1", "node2")
    assert proc.returncode == 0, proc.stderr
    assert (stub / "checks").read_text().strip() == "3"


def test_timeout_names_every_problem_and_what_it_reports(stub: Path) -> None:
    (stub / "nodes").write_text("node1 True ok\nnode2 False container runtime network not ready: cni not initialized\n")
    (stub / "work").write_text(
        WORK_OK
        + "Deployment   metrics-server   1       <none>   <none>   <none>\n"
        + "DaemonSet    kube-proxy       <none>  <none>   3        2\n"
    )
    (stub / "pods").write_text(
        "coredns-5d78c9869d-abcde   Running   <none>   <none>\n"
        "metrics-server-7f9-xyz     Pending   <none>   0/3 nodes are available: 3 node(s) had untolerated taint\n"
        "kube-proxy-q2x             Pending   ImagePullBackOff   <none>\n"
    )
    proc = gate(stub, 0, "node1", "node2", "node3")
    assert proc.returncode == 1
    err = proc.stderr
    assert "health gate: the cluster is not healthy after 0s; add-ons and apps were not deployed:" in err
    assert "  node node2: Ready=False (container runtime network not ready: cni not initialized)" in err
    assert "node node3: not registered with the API server" in err
    assert "kube-system deployment/metrics-server: 0/1 ready" in err
    assert "kube-system daemonset/kube-proxy: 2/3 ready" in err
    assert "coredns" not in err.split("kube-system pods not running")[0], "healthy workloads are not reported"
    pods = err.split("kube-system pods not running")[1]
    assert "metrics-server-7f9-xyz     Pending" in pods and "untolerated taint" in pods
    assert "ImagePullBackOff" in pods and "coredns-5d78c9869d" not in pods


def test_an_api_server_that_is_not_ready(stub: Path) -> None:
    (stub / "readyz").write_text("[-]etcd failed: reason withheld\nreadyz check failed\n")
    (stub / "readyz.rc").write_text("1")
    proc = gate(stub, 0, "node1")
    assert proc.returncode == 1
    assert "API server not ready (/readyz): [-]etcd failed: reason withheld readyz check failed" in proc.stderr


def test_usage() -> None:
    proc = subprocess.run(["bash", str(HEALTH_GATE_SCRIPT), "kubectl"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "usage:" in proc.stderr

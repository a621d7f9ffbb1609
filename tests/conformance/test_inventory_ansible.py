"""The rendered kubespray inventory, read by the real `ansible-inventory` (ansible-core from PyPI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def ansible_list(stack: str, out: Path) -> dict:
    res = subprocess.run([sys.executable, "-m", "stacks", "inventory", stack, "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    tool = str(ANSIBLE_INVENTORY) if ANSIBLE_INVENTORY.exists() else shutil.which("ansible-inventory")
    assert tool, "ansible-inventory not installed (pip install -r requirements-dev.txt)"
    res = subprocess.run([tool, "-i", str(out / "hosts.yaml"), "--list"], capture_output=True, text=True, timeout=120,
                         env={"ANSIBLE_LOCAL_TEMP": str(out / ".tmp"), "HOME": str(out), "PATH": "/usr/bin:/bin",
                              "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True"})
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def hosts(data: dict, group: str) -> set[str]:
    return set(data.get(group, {}).get("hosts", []))


def test_staging_inventory(tmp_path: Path) -> None:
    data = ansible_list("staging", tmp_path)
    assert hosts(data, "kube_control_plane") == {"node1", "node2"}
    assert hosts(data, "etcd") == {"node1", "node2", "node3"}
    assert hosts(data, "kube_node") == {"node1", "node2", "node3"}
    assert set(data["k8s_cluster"]["children"]) == {"kube_control_plane", "kube_node"}
    hv = data["_meta"]["hostvars"]["node3"]
    assert hv["ansible_host"] == "10.4.17.169" and hv["ip"] == "10.4.17.169"
    # group_vars/all beside hosts.yaml are applied to every host
    assert hv["kubeconfig_localhost"] is True and hv["http_proxy"] == "http://10.4.17.1:3128"
    assert hv["kube_version"] == "1.34.4" and "quay_image_repo" not in hv  # registryMirrors: names unchanged
    (quay,) = [m for m in hv["containerd_registries_mirrors"] if m["prefix"] == "quay.io"]
    assert quay["mirrors"][0]["host"] == "https://registry.mirror.example.com/v2/quay"
    assert "gcr_image_repo" not in hv  # read by no role of kubespray v2.31


def test_prod_inventory_keeps_control_plane_dedicated(tmp_path: Path) -> None:
    data = ansible_list("prod", tmp_path)
    assert hosts(data, "kube_control_plane") == {"cp1", "cp2", "cp3"}
    assert hosts(data, "etcd") == {"cp1", "cp2", "cp3"}
    # schedulableControlPlane: false — kubespray taints control-plane nodes not in kube_node
    assert hosts(data, "kube_node") == {"worker1", "worker2", "worker3"}
    assert data["_meta"]["hostvars"]["cp1"]["download_run_once"] is True


@pytest.mark.parametrize("stack", ["dev"])
def test_single_node_inventory(tmp_path: Path, stack: str) -> None:
    data = ansible_list(stack, tmp_path)
    for group in ("kube_control_plane", "etcd", "kube_node"):
        assert hosts(data, group) == {"dev1"}

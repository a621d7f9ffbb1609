"""Smoke tests of the e2e fixtures themselves: if these fail, no e2e scenario can pass."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from lib.chartrepo import ChartRepo
from lib.cluster import STORAGE_CLASS, LocalCluster
from lib.kube import condition
from lib.skips import need_plugin
from lib.sshd import ControlHost
from lib.stack import E2EStack
from lib.standin import KubesprayUnderTest
from lib.util import REPO_ROOT, find_tool, run, wait_until

pytestmark = pytest.mark.e2e


def _namespace(cluster: LocalCluster, name: str) -> str:
    cluster.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_until(lambda: cluster.kube.read("ServiceAccount", "default", name) is not None, 30, f"default SA in {name}")
    return name


def test_cluster_has_three_ready_kwok_nodes(local_cluster: LocalCluster) -> None:
    assert local_cluster.ready_nodes() == ["node1", "node2", "node3"]
    nodes = {n["metadata"]["name"]: n for n in local_cluster.kube.list("Node")}
    for name, node in nodes.items():
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == name
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    cp = nodes["node1"]
    assert "node-role.kubernetes.io/control-plane" in cp["metadata"]["labels"]
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in cp["spec"]["taints"]
    assert not [t for t in nodes["node2"]["spec"].get("taints") or [] if "control-plane" in t["key"]]
    version = local_cluster.kube.get("/version")
    assert version["gitVersion"].startswith("v1.34"), version


def test_deployment_becomes_ready(local_cluster: LocalCluster) -> None:
    ns = _namespace(local_cluster, "smoke-deploy")
    labels = {"app": "smoke"}
    local_cluster.kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "smoke", "namespace": ns},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
        }
    )
    wait_until(
        lambda: (local_cluster.kube.read("Deployment", "smoke", ns) or {}).get("status", {}).get("readyReplicas") == 2,
        60,
        "Deployment smoke to have 2 ready replicas",
    )
    pods = local_cluster.kube.list("Pod", ns)
    # the control-plane node is tainted, so the scheduler used the workers
    assert {p["spec"]["nodeName"] for p in pods} <= {"node2", "node3"}
    local_cluster.kube.delete("Namespace", ns)


def test_pvc_binds_to_a_static_pv(local_cluster: LocalCluster) -> None:
    ns = _namespace(local_cluster, "smoke-pvc")
    sc = local_cluster.kube.read("StorageClass", STORAGE_CLASS)
    assert sc and sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    local_cluster.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": ns},
            # no storageClassName: the default class (e2e-static) is filled in by admission
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    local_cluster.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "user", "namespace": ns},
            "spec": {
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }
    )
    wait_until(
        lambda: (
            (local_cluster.kube.read("PersistentVolumeClaim", "data", ns) or {}).get("status", {}).get("phase")
            == "Bound"
        ),
        60,
        "PVC data to bind",
    )
    pvc = local_cluster.kube.read("PersistentVolumeClaim", "data", ns)
    assert pvc and pvc["spec"]["storageClassName"] == STORAGE_CLASS
    wait_until(lambda: condition(local_cluster.kube.read("Pod", "user", ns), "Ready") == "True", 60, "pod Ready")
    local_cluster.kube.delete("Namespace", ns)


def test_kwok_node_can_be_added_and_removed(local_cluster: LocalCluster) -> None:
    local_cluster.add_node("node9")
    assert "node9" in local_cluster.ready_nodes()
    assert local_cluster.remove_node("node9")
    wait_until(lambda: "node9" not in local_cluster.node_names(), 30, "node9 deleted")


def test_ssh_to_the_control_host_with_the_generated_key(control_host: ControlHost) -> None:
    out = control_host.ssh('id -u; echo $PIP_NO_INDEX; test -d "$PIP_FIND_LINKS" && echo wheelhouse').stdout.split()
    assert out == ["0", "1", "wheelhouse"], out
    assert control_host.host_public_key.startswith("ssh-ed25519 ")
    assert control_host.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # any other key is refused
    other = control_host.dir / "other_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], 30)
    argv = control_host.ssh_argv()
    argv[argv.index(str(control_host.client_key))] = str(other)
    assert subprocess.run([*argv, "true"], capture_output=True, timeout=30).returncode == 255


def test_kubespray_under_test_is_kubesprays_own_tree(kubespray_standin: KubesprayUnderTest) -> None:
    """The repository the e2e stacks deploy with: kubespray v2.31.0, spliced only where machines are needed."""
    repo = kubespray_standin.repo
    assert "ansible==11.13.0" in kubespray_standin.requirements.read_text()  # kubespray's own pin
    assert (repo / "roles" / "validate_inventory" / "tasks" / "main.yml").is_file()
    assert (repo / "cluster.yml").read_text().strip().endswith("import_playbook: playbooks/cluster.yml")
    reset = yaml.safe_load((repo / "playbooks" / "reset.yml").read_text())
    assert reset[0]["import_playbook"] == "boilerplate.yml"
    gate = next(p for p in reset if p.get("name") == "Reset cluster")
    assert [t["name"] for t in gate["pre_tasks"]] == ["Reset Confirmation", "Check confirmation"]
    assert reset[-1]["import_playbook"] == "../standin/reset.yml"
    remove = yaml.safe_load((repo / "playbooks" / "remove_node.yml").read_text())
    assert [p.get("name") for p in remove][:3] == ["Validate nodes for removal", "Common tasks for every playbooks",
                                                  "Confirm node removal"]  # fmt: skip
    tagged = run(["git", "-C", str(repo), "rev-parse", "v2.31.0^{commit}"], 30).stdout.strip()
    assert tagged == kubespray_standin.commit


def test_chart_repo_serves_the_test_charts(chart_repo: ChartRepo, tmp_path: Path) -> None:
    index = yaml.safe_load(chart_repo.fetch("index.yaml"))
    assert index["apiVersion"] == "v1"
    for name, versions in chart_repo.versions.items():
        assert sorted(e["version"] for e in index["entries"][name]) == sorted(versions)
    entry = next(e for e in index["entries"]["grafana"] if e["version"] == chart_repo.version("grafana"))
    tgz = chart_repo.fetch(entry["urls"][0].rsplit("/", 1)[1])
    assert hashlib.sha256(tgz).hexdigest() == entry["digest"]
    helm = find_tool("helm")
    assert helm is not None, "no helm binary: `make setup` installs helm (tools cache) for this cross-check"
    env = {**os.environ, **{f"HELM_{k}_HOME": str(tmp_path / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}
    out = run([helm, "template", "g", "grafana", "--repo", chart_repo.url, "--version", chart_repo.version("grafana"),
               "--set", "persistence.enabled=true"], 60, env=env).stdout  # fmt: skip
    kinds = [d["kind"] for d in yaml.safe_load_all(out) if d]
    assert {"Deployment", "Service", "PersistentVolumeClaim"} <= set(kinds)
    crds = run([helm, "show", "crds", "metallb", "--repo", chart_repo.url], 60, env=env).stdout
    assert "ipaddresspools.metallb.io" in crds


def test_stack_factory_makes_a_valid_stack(stack_factory, local_cluster: LocalCluster) -> None:  # type: ignore[no-untyped-def]
    stack: E2EStack = stack_factory("existing")
    res = run([str(REPO_ROOT / ".venv/bin/python"), "-m", "stacks", "validate", "--config-file", str(stack.stack_file)],
              60, cwd=REPO_ROOT)  # fmt: skip
    assert "existing mode" in res.stdout
    shown = json.loads(stack.run("config", "--json", "--show-secrets", timeout=60).stdout)
    assert shown["k8s-platform:mysqlRootPassword"]["value"] == stack.secret_values["mysqlRootPassword"]
    assert shown["k8s-platform:mysqlRootPassword"]["secret"] is True
    # --show-secrets output above is the one place a secret may be printed; drop it before scanning
    stack.history.pop()
    assert stack.leaks() == []
    assert str(local_cluster.kubeconfig) in stack.stack_file.read_text()

    ks: E2EStack = stack_factory("kubespray", name="e2eks")
    res = run([str(REPO_ROOT / ".venv/bin/python"), "-m", "stacks", "validate", "--config-file", str(ks.stack_file)],
              60, cwd=REPO_ROOT)  # fmt: skip
    assert "kubespray mode, 3 node(s)" in res.stdout
    key = ks.run("config", "get", "k8s-platform:sshPrivateKey", timeout=60).stdout
    assert key.strip() == ks.secret_values["sshPrivateKey"].strip()
    ks.history.pop()
    assert ks.leaks() == []


@pytest.mark.timeout(900)
def test_engine_previews_an_existing_mode_stack(stack_factory) -> None:  # type: ignore[no-untyped-def]
    """The whole chain once: CLI + python host + kubernetes plugin + chart repo + local API server."""
    need_plugin("kubernetes")
    stack: E2EStack = stack_factory("existing")
    res = stack.preview(timeout=600)
    assert "error" not in res.stdout.lower().split("resources:")[-1], res
    assert stack.leaks() == []

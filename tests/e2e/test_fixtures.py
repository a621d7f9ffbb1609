"""Smoke tests of the e2e fixtures themselves: if these fail, no e2e scenario can pass."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from lib.chartrepo import ChartRepo
from lib.cluster import STORAGE_CLASS, LocalCluster
from lib.kube import condition
from lib.skips import need_plugin
from lib.sshd import ControlHost
from lib.stack import E2EStack, kubespray_config
from lib.standin import KubesprayStandIn
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


def test_standin_playbooks_run_like_kubespray(
    control_host: ControlHost, kubespray_standin: KubesprayStandIn, local_cluster: LocalCluster, tmp_path: Path
) -> None:
    """The command lines components/kubespray.py runs, over ssh, against the stand-in."""
    ws = tmp_path / "workdir"
    cfg_file = tmp_path / "Pulumi.smoke.yaml"
    nodes = [
        {"name": "node1", "address": "127.0.1.1", "roles": ["control-plane", "etcd", "worker"]},
        {"name": "node2", "address": "127.0.1.2", "roles": ["worker"]},
        {"name": "node3", "address": "127.0.1.3", "roles": ["worker"]},
        {"name": "node4", "address": "127.0.1.4", "roles": ["worker"]},
    ]
    cfg = kubespray_config(
        control_host_port=control_host.port,
        host_key=control_host.host_public_key,
        kubespray_source=kubespray_standin.source,
        workdir=str(ws),
        api_server=local_cluster.server,
        charts_url="http://127.0.0.1:9",
        chart_versions={"traefik": ["1.0.0"], "localpv-provisioner": ["1.0.0"], "metrics-server": ["1.0.0"],
                        "metallb": ["1.0.0"], "grafana": ["1.0.0"]},
        nodes=nodes,
    )  # fmt: skip
    doc = {f"k8s-platform:{k}": v for k, v in cfg.items()}
    # secrets only need to be present (as `secure:` values) for the inventory to render
    doc.update({f"k8s-platform:{k}": {"secure": "v1:placeholder"} for k in
                ("sshPrivateKey", "mysqlRootPassword", "mysqlReplicationPassword")})  # fmt: skip
    cfg_file.write_text(yaml.safe_dump({"config": doc}))
    inv = tmp_path / "inventory"
    run([str(REPO_ROOT / ".venv/bin/python"), "-m", "stacks", "inventory", "--config-file", str(cfg_file),
         "--out", str(inv)], 60, cwd=REPO_ROOT)  # fmt: skip
    src, venv = ws / "src", ws / "venv"
    t0 = time.monotonic()
    control_host.ssh(
        "\n".join(
            [
                "set -eu",
                f"mkdir -p {ws}/logs",
                f"git init -q {src}",
                f"cd {src}",
                f"git fetch -q --depth 1 {kubespray_standin.source} refs/tags/v2.31.0",
                "git checkout -q --force FETCH_HEAD",
                f"python3 -m venv {venv}",
                f"{venv}/bin/pip install -q -r requirements.txt",
            ]
        ),
        timeout=300,
    )
    prepare_s = time.monotonic() - t0

    def playbook(args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        base = (
            f"cd {src} && ANSIBLE_PIPELINING=True ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_FORCE_COLOR=False "
            f"{venv}/bin/ansible-playbook -i {inv}/hosts.yaml --become --user root --forks 5"
        )
        return control_host.ssh(f"{base} {args}", timeout=180, check=check)

    kubespray_standin.clear_invocations()
    playbook("cluster.yml")
    admin = inv / "artifacts" / "admin.conf"
    assert admin.read_text() == Path(str(local_cluster.kubeconfig)).read_text()
    kubectl = inv / "artifacts" / "kubectl"
    assert kubectl.is_symlink()
    got = control_host.ssh(f"{kubectl} --kubeconfig {admin} get nodes -o name").stdout.split()
    assert {"node/node1", "node/node2", "node/node3", "node/node4"} <= set(got)
    # node1 is control plane AND in kube_node: kubespray leaves it untainted
    node1 = local_cluster.kube.read("Node", "node1")
    assert not [t for t in (node1 or {}).get("spec", {}).get("taints") or [] if "control-plane" in t["key"]]

    local_cluster.remove_node("node4")
    playbook("playbooks/facts.yml")
    playbook("scale.yml --limit node4")
    assert "node4" in local_cluster.ready_nodes()

    extra = inv / "remove-node4.yaml"
    extra.write_text(yaml.safe_dump({"all": {"hosts": {"node4": {"ansible_host": "127.0.1.4"}},
                                             "children": {"kube_node": {"hosts": {"node4": None}}}}}))  # fmt: skip
    refused = playbook(f"-i {extra} remove-node.yml -e node=node4", check=False)
    assert refused.returncode != 0 and "skip_confirmation" in refused.stdout
    playbook(f"-i {extra} remove-node.yml -e node=node4 -e skip_confirmation=true")
    assert "node4" not in local_cluster.node_names()

    kubespray_standin.fail_next("scale.yml")
    failed = playbook("scale.yml --limit node4", check=False)
    assert failed.returncode != 0 and "fails midway as requested" in failed.stdout
    assert "node4" not in local_cluster.node_names()

    calls = [(c["playbook"], c["limit"], c["node"], c["skip_confirmation"]) for c in kubespray_standin.invocations()]
    assert calls == [
        ("cluster.yml", None, None, None),
        ("playbooks/facts.yml", None, None, None),
        ("scale.yml", "node4", None, None),
        ("remove-node.yml", None, "node4", None),
        ("remove-node.yml", None, "node4", "true"),
        ("scale.yml", "node4", None, None),
    ], calls
    assert kubespray_standin.invocations()[0]["kube_version"] == "1.34.4"
    local_cluster.reset_baseline()
    print(f"\nstand-in prepare (git fetch + venv + offline pip) over ssh: {prepare_s:.1f}s")


def test_chart_repo_serves_the_test_charts(chart_repo: ChartRepo, tmp_path: Path) -> None:
    index = yaml.safe_load(chart_repo.fetch("index.yaml"))
    assert index["apiVersion"] == "v1"
    for name, versions in chart_repo.versions.items():
        assert sorted(e["version"] for e in index["entries"][name]) == sorted(versions)
    entry = next(e for e in index["entries"]["grafana"] if e["version"] == chart_repo.version("grafana"))
    tgz = chart_repo.fetch(entry["urls"][0].rsplit("/", 1)[1])
    assert hashlib.sha256(tgz).hexdigest() == entry["digest"]
    helm = find_tool("helm")
    if helm is None:
        pytest.skip("no helm binary to cross-check the repository with (index.yaml and digest checked)")
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

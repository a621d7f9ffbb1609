"""The cluster component's remote scripts, run for real over SSH against the kubespray STAND-IN.

The Pulumi engine cannot run kubespray mode on this machine: the `pulumi-resource-command`
plugin cannot be built offline (the Go module proxy serves no version of
github.com/pulumi/pulumi-command/provider). These tests take the exact `create` / `update` /
`delete` scripts that `KubesprayCluster` hands to `remote.Command` (built under Pulumi
mocks) and run them over a real sshd on loopback, with real `ansible-playbook` from the
venv the prepare script builds, against the stand-in repository (NOT kubespray: a git repo
of real playbooks that check the inventory and variables like kubespray and act on the
local KWOK cluster). They prove the scripts; what they cannot prove is the engine's
diff/trigger behaviour, which the unit tests cover with mocks.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.kubespray import KubesprayCluster, KubesprayClusterArgs, rewrite_server
from stacks.config import SECRET, parse_config

pytestmark = pytest.mark.e2e


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[args.name] = dict(args.inputs)
        return f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def scripts(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The remote.Command inputs the component registers for `cfg`, by resource name."""
    spec = parse_config(cfg)
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, project="k8s-platform", stack="e2e", preview=False)

    def program() -> None:
        KubesprayCluster(
            "cluster",
            KubesprayClusterArgs(
                cluster=spec.cluster,
                schedulable_control_plane=spec.schedulable_control_plane,
                ssh_private_key=pulumi.Output.secret("unused-under-mocks"),
                inventory_name="k8s-platform-e2e",
            ),
        )

    pulumi.runtime.test(program)()
    return mocks.inputs


def config(control_host: Any, standin: Any, server: str, workdir: Path, workers: list[str]) -> dict[str, Any]:
    nodes = [{"name": "node1", "address": "127.0.1.1", "roles": ["control-plane", "etcd", "worker"]}]
    nodes += [{"name": n, "address": f"127.0.1.{i + 2}", "roles": ["worker"]} for i, n in enumerate(workers)]
    return {
        "environment": "dev",
        "cluster": {
            "mode": "kubespray",
            "kubespray": {"version": "v2.31.0", "source": standin.source, "workdir": str(workdir)},
            "controlHost": {"host": "127.0.0.1", "port": control_host.port, "user": control_host.user,
                            "hostKey": control_host.host_public_key},
            "ansibleUser": control_host.user,
            "nodes": nodes,
            "kubeVersion": "1.34.4",
            "apiServerEndpoint": server,
        },
        "sshPrivateKey": SECRET,
    }


def run(control_host: Any, script: str, timeout: float = 300) -> Any:
    return control_host.ssh(script, timeout=timeout, check=False)


@pytest.fixture
def env(control_host: Any, kubespray_standin: Any, local_cluster: Any, tmp_path: Path) -> dict[str, Any]:
    kubespray_standin.clear_invocations()
    workdir = tmp_path / "kubespray"
    cfg = config(control_host, kubespray_standin, local_cluster.server, workdir, ["node2", "node3"])
    return {"cfg": cfg, "workdir": workdir}


def playbooks(standin: Any) -> list[tuple[str, Any]]:
    return [(i["playbook"], i.get("limit")) for i in standin.invocations()]


def test_first_deploy_scripts(env: dict[str, Any], control_host: Any, kubespray_standin: Any, local_cluster: Any) -> None:
    cmds = scripts(env["cfg"])
    for name in ("cluster-prepare", "cluster-inventory", "cluster-cluster", "cluster-node-node2",
                 "cluster-node-node3", "cluster-upgrade", "cluster-kubeconfig"):
        res = run(control_host, cmds[name]["create"], timeout=600)
        assert res.returncode == 0, f"{name} failed:\n{res.stdout}\n{res.stderr}"
        if name == "cluster-cluster":
            assert "cluster ok; full log:" in res.stdout
        if name.startswith("cluster-node-"):
            # cluster.yml already joined the workers: no scale.yml on the first deployment
            assert "already in the cluster" in res.stdout
        if name == "cluster-kubeconfig":
            kubeconfig = rewrite_server(res.stdout, local_cluster.server)
    # the venv was built from requirements.txt, and cluster.yml ran exactly once
    assert playbooks(kubespray_standin) == [("cluster.yml", None)]
    entry = kubespray_standin.invocations()[0]
    assert entry["groups"]["kube_control_plane"] == ["node1"]
    assert sorted(entry["groups"]["kube_node"]) == ["node1", "node2", "node3"]
    assert entry["kube_version"] == "1.34.4"
    # the kubeconfig read back reaches the real API server
    doc = yaml.safe_load(kubeconfig)
    assert doc["clusters"][0]["cluster"]["server"] == local_cluster.server
    kc = env["workdir"] / "kubeconfig-readback"
    kc.write_text(kubeconfig)
    assert "node1" in local_cluster.kubectl("--kubeconfig", str(kc), "get", "nodes", "-o", "name")


def test_add_and_remove_worker(env: dict[str, Any], control_host: Any, kubespray_standin: Any, local_cluster: Any) -> None:
    base = scripts(env["cfg"])
    for name in ("cluster-prepare", "cluster-inventory", "cluster-cluster"):
        assert run(control_host, base[name]["create"], timeout=600).returncode == 0
    kubespray_standin.clear_invocations()

    grown = copy.deepcopy(env["cfg"])
    grown["cluster"]["nodes"].append({"name": "node4", "address": "127.0.1.9", "roles": ["worker"]})
    added = scripts(grown)
    # the cluster.yml script is byte-identical: the engine sees no diff, so it does not run
    assert added["cluster-cluster"]["create"] == base["cluster-cluster"]["create"]
    assert run(control_host, added["cluster-inventory"]["create"]).returncode == 0
    res = run(control_host, added["cluster-node-node4"]["create"], timeout=600)
    assert res.returncode == 0, res.stderr
    assert playbooks(kubespray_standin) == [("playbooks/facts.yml", None), ("scale.yml", "node4")]
    assert "node4" in local_cluster.node_names()

    kubespray_standin.clear_invocations()
    # removal: the new inventory no longer lists node4, then the old resource's delete runs
    assert run(control_host, base["cluster-inventory"]["create"]).returncode == 0
    res = run(control_host, added["cluster-node-node4"]["delete"], timeout=600)
    assert res.returncode == 0, res.stderr
    (entry,) = kubespray_standin.invocations()
    assert entry["playbook"] == "remove-node.yml"
    assert entry["node"] == "node4" and str(entry["skip_confirmation"]).lower() == "true"
    assert "node4" in entry["groups"]["kube_node"], "remove-node.yml must still see the node it removes"
    assert "node4" not in local_cluster.node_names()


def test_failing_playbook_reports_tail_and_log_then_retry_succeeds(
    env: dict[str, Any], control_host: Any, kubespray_standin: Any
) -> None:
    cmds = scripts(env["cfg"])
    for name in ("cluster-prepare", "cluster-inventory"):
        assert run(control_host, cmds[name]["create"], timeout=600).returncode == 0
    kubespray_standin.fail_next("cluster.yml")
    res = run(control_host, cmds["cluster-cluster"]["create"], timeout=600)
    assert res.returncode != 0
    assert "cluster failed (exit" in res.stderr and "full log on the control host:" in res.stderr
    log_path = res.stderr.split("full log on the control host:", 1)[1].split()[0]
    assert run(control_host, f"test -s {log_path}").returncode == 0, "the full log stays on the control host"
    assert "fatal" in res.stderr.lower() or "failed" in res.stderr.lower()  # the tail of the playbook output
    # the next attempt (the next `pulumi up`) succeeds
    res = run(control_host, cmds["cluster-cluster"]["create"], timeout=600)
    assert res.returncode == 0, res.stderr


def test_kube_version_change_runs_upgrade(env: dict[str, Any], control_host: Any, kubespray_standin: Any) -> None:
    cmds = scripts(env["cfg"])
    for name in ("cluster-prepare", "cluster-inventory", "cluster-cluster"):
        assert run(control_host, cmds[name]["create"], timeout=600).returncode == 0
    kubespray_standin.clear_invocations()
    upgraded = copy.deepcopy(env["cfg"])
    upgraded["cluster"]["kubeVersion"] = "1.35.4"
    new = scripts(upgraded)
    assert new["cluster-cluster"]["create"] == cmds["cluster-cluster"]["create"]
    assert run(control_host, new["cluster-inventory"]["create"]).returncode == 0
    res = run(control_host, new["cluster-upgrade"]["update"], timeout=600)
    assert res.returncode == 0, res.stderr
    assert playbooks(kubespray_standin) == [("upgrade-cluster.yml", None)]
    assert kubespray_standin.invocations()[0]["kube_version"] == "1.35.4"


def test_reset_only_when_asked(env: dict[str, Any], control_host: Any, kubespray_standin: Any) -> None:
    assert "cluster-reset" not in scripts(env["cfg"])
    cfg = copy.deepcopy(env["cfg"])
    cfg["cluster"]["resetOnDestroy"] = True
    cmds = scripts(cfg)
    for name in ("cluster-prepare", "cluster-inventory"):
        assert run(control_host, cmds[name]["create"], timeout=600).returncode == 0
    kubespray_standin.clear_invocations()
    assert run(control_host, cmds["cluster-reset"]["create"]).returncode == 0
    assert playbooks(kubespray_standin) == []
    res = run(control_host, cmds["cluster-reset"]["delete"], timeout=600)
    assert res.returncode == 0, res.stderr
    (entry,) = kubespray_standin.invocations()
    assert entry["playbook"] == "reset.yml" and str(entry["skip_confirmation"]).lower() == "true"

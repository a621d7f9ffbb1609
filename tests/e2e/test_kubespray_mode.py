"""Kubespray mode through the real engine: `pulumi` → pulumi-command over SSH → kubespray.

The control host is a real sshd on loopback; the program's prepare step fetches the
repository under test (kubespray v2.31.0's own tree, tests/e2e/lib/standin.py) by tag,
checks the commit, installs kubespray's own requirements (ansible-core 2.18) into its
venv, uploads the inventory and runs the playbooks. On every run kubespray's own
`boilerplate.yml` (ansible version check, dynamic groups, validate_inventory) and its
confirmation gates run for real against the generated inventory; the plays that need real
machines are a stand-in acting on the KWOK cluster. The invocation log says which
playbook ran, with which limit and flags.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from lib import engine
from lib.kube import write_kubeconfig
from lib.pki import admin_client_cert
from lib.pyindex import PyIndex
from lib.sshd import ControlHost
from lib.stack import E2EStack
from lib.util import REPO_ROOT, free_port

from tests.support.kubespray_tree import ensure_wheelhouse

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

APP_NS, APP = "web", "my-nginx"


def runs(si: Any) -> list[tuple[str, str | None]]:
    """(playbook, --limit) of every playbook run since the log was cleared."""
    return [(c["playbook"], c["limit"] or None) for c in si.invocations()]


def resource_names(stack: E2EStack) -> set[str]:
    state = json.loads(stack.run("stack", "export", timeout=60).stdout)
    return {r["urn"].rsplit("::", 1)[1] for r in state["deployment"].get("resources") or []}


def add_worker(stack: E2EStack, name: str, address: str) -> None:
    cfg = stack.config()
    cfg["cluster"]["nodes"].append({"name": name, "address": address, "roles": ["worker"]})
    stack.write_config(cfg)


def test_full_up_then_no_op_runs_no_playbook(stack_factory: Any, kubespray_standin: Any, local_cluster: Any) -> None:
    si = kubespray_standin
    si.clear_invocations()
    stack = stack_factory("kubespray", {"cluster": {"etcdBackup": {"schedule": "17 */6 * * *", "retention": 2}}})

    # 1. full up: prepare → inventory → cluster.yml over SSH → kubeconfig → add-ons, release, MySQL, app
    first = stack.up()
    assert runs(si) == [("cluster.yml", None)], runs(si)
    assert "etcd-snapshot ok" not in first.output, "a first installation has no etcd to snapshot"
    call = si.invocations()[0]
    assert call["ansible_version"].startswith("2.18."), "kubespray's own requirements.txt was installed"
    assert call["groups"]["kube_control_plane"] == ["node1"]
    assert sorted(call["groups"]["kube_node"]) == ["node1", "node2", "node3"]
    assert call["kube_version"] == "1.34.4"
    assert "cluster ok; full log:" in first.output
    deploy = local_cluster.get("deployment", APP, "-n", APP_NS)
    assert deploy["status"].get("readyReplicas") == 2
    assert local_cluster.get("statefulset", "mysql", "-n", "data")["status"].get("readyReplicas") == 2
    released = {s["metadata"]["labels"]["name"] for s in local_cluster.get("secrets", "-A", "-l", "owner=helm")["items"]}
    assert {"grafana", "traefik", "localpv-provisioner", "metrics-server"} <= released, released
    # node1 is control plane and in kube_node: kubespray leaves it untainted
    taints = local_cluster.get("node", "node1")["spec"].get("taints") or []
    assert not [t for t in taints if t["effect"] == "NoSchedule"], taints
    assert stack.outputs()["kubeconfig"] == "[secret]"
    kubeconfig = stack.outputs(show_secrets=True)["kubeconfig"]
    stack.history.pop()  # the one call allowed to print a secret
    assert local_cluster.server in kubeconfig

    # scheduled etcd snapshots: a CronJob on the etcd member, pinned to it, with the stack's schedule
    cron = local_cluster.get("cronjob", "etcd-snapshot-node1", "-n", "kube-system")
    assert cron["spec"]["schedule"] == "17 */6 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node1"} and pod["hostNetwork"] is True
    assert pod["containers"][0]["command"][-2:] == ["/backup", "2"]

    # 2. no-op: nothing to change, and a second up runs no playbook at all
    si.clear_invocations()
    stack.preview(600, True, "--expect-no-changes")
    second = stack.up(900, True, "--expect-no-changes")
    assert runs(si) == [], f"a no-op up ran playbooks: {runs(si)}"
    assert " updated" not in second.stdout and " created" not in second.stdout

    # 3. image rollout and replica scale: Kubernetes changes only, still no playbook
    cfg = stack.config()
    cfg["apps"][0].update(image="nginxinc/nginx-unprivileged:1.27.4", replicas=3)
    stack.write_config(cfg)
    stack.up()
    assert runs(si) == []
    deploy = local_cluster.get("deployment", APP, "-n", APP_NS)
    assert deploy["spec"]["replicas"] == 3 and deploy["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.27.4")

    # 4. a cluster setting changes: an etcd snapshot of the running cluster first (the program's
    # own playbook, a real snapshot of the etcd behind the API server), then cluster.yml; the
    # preview says so first
    cfg = stack.config()
    cfg["cluster"]["download"] = {"runOnce": True}
    stack.write_config(cfg)
    planned = stack.preview().output
    assert "plan: etcd-snapshot.yml on node1 (the first etcd member) first" in planned, planned[-3000:]
    assert "plan: cluster.yml on 3 node(s) (node1, node2, node3): cluster settings changed" in planned
    before = set(si.etcd_snapshots())
    changed = stack.up()
    assert runs(si) == [("cluster.yml", None)], runs(si)
    out = changed.output
    assert "etcd snapshot saved:" in out and out.index("etcd-snapshot ok") < out.index("cluster ok"), out[-3000:]
    (snap,) = set(si.etcd_snapshots()) - before
    data = snap.read_bytes()
    # a bbolt database (etcd's backend): the meta page's magic, not an error text
    assert len(data) > 16 * 1024 and data[16:20] == bytes.fromhex("edda0ced"), data[:64]
    assert oct(snap.stat().st_mode & 0o777) == "0o600"
    assert len(si.etcd_snapshots()) <= 2, "etcdBackup.retention: 2"

    # 5. destroy without resetOnDestroy: workloads gone, PVCs kept, no reset.yml
    si.clear_invocations()
    stack.destroy()
    assert runs(si) == []
    assert APP not in local_cluster.kubectl("get", "deployment", "-n", APP_NS, check=False)
    pvcs = local_cluster.get("pvc", "-n", "data")["items"]
    assert sorted(p["metadata"]["name"] for p in pvcs) == ["data-mysql-0", "data-mysql-1"]
    assert stack.leaks() == [], "secret plaintext in pulumi output or state"


def test_add_upgrade_remove_worker(stack_factory: Any, kubespray_standin: Any, local_cluster: Any) -> None:
    si = kubespray_standin
    base = {"mysql": {"enabled": False}, "helm": {"releases": []}, "cluster": {"kubeVersion": "1.33.11"}}
    stack = stack_factory("kubespray", base)
    first = stack.up()
    assert "plan: cluster.yml on 3 node(s) (node1, node2, node3): first installation" in first.output
    assert stack.outputs()["kubeVersion"] == "1.33.11"

    # add two workers: the preview says what will run; facts for all, then scale.yml limited
    # to each new node; cluster.yml does not run
    si.clear_invocations()
    add_worker(stack, "node4", "127.0.1.4")
    add_worker(stack, "node5", "127.0.1.5")
    planned = stack.preview().output
    assert "plan: facts.yml, then scale.yml --limit node4: worker node4 added" in planned, planned[-3000:]
    assert "plan: facts.yml, then scale.yml --limit node5: worker node5 added" in planned
    assert "plan: cluster.yml" not in planned and "plan: upgrade-cluster.yml" not in planned
    assert runs(si) == [], "a preview runs nothing"
    stack.up()
    assert sorted(runs(si)) == [("facts.yml", None), ("facts.yml", None), ("scale.yml", "node4"),
                                ("scale.yml", "node5")], runs(si)  # fmt: skip
    assert {"node4", "node5"} <= set(local_cluster.ready_nodes())
    assert "plan: no playbook runs: the cluster is as configured" in stack.preview().output

    # a member changing roles is refused before any command runs, with kubespray's way instead
    cfg = stack.config()
    promoted = copy.deepcopy(cfg)
    next(n for n in promoted["cluster"]["nodes"] if n["name"] == "node2")["roles"] = ["control-plane", "worker"]
    stack.write_config(promoted)
    refused = stack.up(600, False)
    assert refused.returncode != 0
    assert "node2 changes roles (worker -> control-plane, worker)" in refused.output, refused.output[-3000:]
    assert "Remove node2 from nodes, `pulumi up`, then add it back" in refused.output
    assert len(runs(si)) == 4, "nothing may run for a refused change"
    stack.write_config(cfg)

    # skipping a minor is refused before any command runs: no playbook, the version recorded stays
    si.clear_invocations()
    stack.update_config({"cluster": {"kubeVersion": "1.35.4"}})
    refused = stack.up(600, False)
    assert refused.returncode != 0
    assert "cannot go from the deployed 1.33.11 to 1.35.4 in one step" in refused.output, refused.output[-3000:]
    assert runs(si) == [], "nothing may run for a refused upgrade"
    assert stack.outputs()["kubeVersion"] == "1.33.11"

    # upgrade one minor: upgrade-cluster.yml only, with the stack's drain/batch controls; nodes
    # report the new kubelet
    stack.update_config({"cluster": {"kubeVersion": "1.34.7",
                                     "upgrade": {"serial": "1", "drainTimeout": "900s", "pauseSeconds": 5}}})  # fmt: skip
    before = set(si.etcd_snapshots())
    upgraded = stack.up()
    assert runs(si) == [("upgrade_cluster.yml", None)], runs(si)
    assert upgraded.output.index("etcd-snapshot ok") < upgraded.output.index("upgrade-cluster ok")
    assert len(set(si.etcd_snapshots()) - before) == 1, "a snapshot before the upgrade"
    (call,) = si.invocations()
    assert call["kube_version"] == "1.34.7"
    assert (call["serial"], call["drain_timeout"], str(call["upgrade_node_pause_seconds"])) == ("1", "900s", "5"), call
    assert str(call["drain_nodes"]).lower() == "true" and str(call["drain_grace_period"]) == "300", call
    assert local_cluster.get("node", "node2")["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.7"
    assert stack.outputs()["kubeVersion"] == "1.34.7"

    # a downgrade is refused the same way
    si.clear_invocations()
    stack.update_config({"cluster": {"kubeVersion": "1.33.11"}})
    refused = stack.up(600, False)
    assert refused.returncode != 0 and "do not downgrade" in refused.output, refused.output[-3000:]
    assert runs(si) == []
    stack.update_config({"cluster": {"kubeVersion": "1.34.7"}})

    # remove node4 (drained with cluster.nodeRemoval's timeout, then reset) and mark node5, whose
    # machine is gone, unreachable (removed without touching it): remove-node.yml through
    # kubespray's confirmation gate, each node still in its inventory
    si.clear_invocations()
    cfg = stack.config()
    cfg["cluster"]["nodes"] = [n for n in cfg["cluster"]["nodes"] if n["name"] != "node4"]
    next(n for n in cfg["cluster"]["nodes"] if n["name"] == "node5")["state"] = "unreachable"
    cfg["cluster"]["nodeRemoval"] = {"drainTimeout": "120s", "drainRetries": 2}
    stack.write_config(cfg)
    planned = stack.preview().output
    assert "plan: remove-node.yml -e node=node4: worker node4 removed from nodes: drained (timeout 120s), then reset" in planned, planned[-3000:]
    assert ("plan: remove-node.yml -e node=node5 -e reset_nodes=false -e allow_ungraceful_removal=true: worker node5 "
            "marked unreachable") in planned  # fmt: skip
    stack.up()
    calls = {c["node"]: c for c in si.invocations()}
    assert sorted(calls) == ["node4", "node5"] and {c["playbook"] for c in calls.values()} == {"remove_node.yml"}, calls
    for name, call in calls.items():
        assert str(call["skip_confirmation"]).lower() == "true"
        assert name in call["groups"]["kube_node"], "remove-node.yml must still see the node it removes"
        assert (call["drain_timeout"], str(call["drain_retries"])) == ("120s", "2"), call
    assert calls["node4"]["reset_nodes"] in (None, "") and calls["node4"]["allow_ungraceful_removal"] in (None, "")
    assert str(calls["node5"]["reset_nodes"]).lower() == "false", calls["node5"]
    assert str(calls["node5"]["allow_ungraceful_removal"]).lower() == "true"
    assert not {"node4", "node5"} & set(local_cluster.node_names())
    stack.preview(600, True, "--expect-no-changes")
    assert stack.outputs()["nodes"] == ["node1", "node2", "node3"]
    assert stack.leaks() == []


def test_the_exported_kubeconfig_is_read_again_before_its_certificate_ends(
    stack_factory: Any, kubespray_standin: Any, local_cluster: Any, tmp_path: Path
) -> None:
    """kubespray's renewal timer renews admin.conf on the control-plane nodes, not the copy the
    stack exported: the program reads it again from the first control-plane node once the
    exported client certificate is within 30 days of its end, and only then."""
    si = kubespray_standin
    stack = stack_factory("kubespray", {"mysql": {"enabled": False}, "helm": {"releases": []}, "apps": []})
    stack.up()
    far = stack.outputs()["kubeconfigExpires"]
    assert far > (dt.date.today() + dt.timedelta(days=300)).isoformat(), far
    inventory = Path(stack.config()["cluster"]["kubespray"]["workdir"]) / "inventory" / "k8s-platform-e2e"

    # the exported kubeconfig nears its end: a 10-day client certificate from the cluster's CA
    cert, key = admin_client_cert(local_cluster.pki, days=10)
    short = write_kubeconfig(str(tmp_path / "short.conf"), local_cluster.server, local_cluster.pki.ca_crt.read_bytes(), cert, key)
    si.first_node_admin_conf(inventory, Path(short))
    reader = next(u for u in resource_urns(stack) if u.endswith("::cluster-kubeconfig"))
    stack.run("up", "--yes", "--skip-preview", "--replace", reader, timeout=600)
    soon = stack.outputs()["kubeconfigExpires"]
    assert soon == (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).date().isoformat(), soon

    # the renewal timer has renewed it on the node: the next preview says it is read again …
    si.first_node_admin_conf(inventory, si.admin_conf)
    planned = stack.preview().output
    assert "plan: kubeconfig: the exported client certificate expires on" in planned, planned[-3000:]
    assert "admin.conf is read again from the first control-plane node" in planned
    # … the update does it, and the kubeconfig works against the API server …
    si.clear_invocations()
    stack.up()
    assert runs(si) == [], "reading admin.conf runs no playbook"
    assert stack.outputs()["kubeconfigExpires"] == far
    # … and the run after it is no change at all
    stack.preview(600, True, "--expect-no-changes")
    assert stack.leaks() == []


def test_a_control_plane_member_joins_and_leaves_the_way_kubespray_documents(
    stack_factory: Any, kubespray_standin: Any, local_cluster: Any
) -> None:
    si = kubespray_standin
    stack = stack_factory("kubespray", {"mysql": {"enabled": False}, "helm": {"releases": []}, "apps": []})
    stack.up()
    cfg = stack.config()
    with_cp2 = copy.deepcopy(cfg)
    with_cp2["cluster"]["nodes"].append({"name": "cp2", "address": "127.0.1.9", "roles": ["control-plane", "worker"]})
    stack.write_config(with_cp2)
    planned = stack.preview().output
    assert "plan: etcd-snapshot.yml on node1 (the first etcd member) first" in planned, planned[-3000:]
    assert "plan: cluster.yml on 4 node(s) (node1, node2, node3, cp2): cp2 joins the control plane/etcd" in planned
    si.clear_invocations()
    stack.up()
    assert runs(si) == [("cluster.yml", None)], runs(si)
    assert si.invocations()[0]["groups"]["kube_control_plane"] == ["node1", "cp2"]
    assert "cp2" in local_cluster.ready_nodes()

    # it leaves: remove-node.yml with the node still in the inventory cluster.yml applied
    # last, then cluster.yml without it — one update
    stack.write_config(cfg)
    planned = stack.preview().output
    assert ("plan: remove-node.yml -e node=cp2 (before cluster.yml, the node still in the inventory): "
            "control-plane, worker node cp2 removed from nodes") in planned, planned[-3000:]  # fmt: skip
    si.clear_invocations()
    stack.up()
    assert runs(si) == [("remove_node.yml", None), ("cluster.yml", None)], runs(si)
    removal, rerun = si.invocations()
    assert removal["node"] == "cp2" and "cp2" in removal["groups"]["kube_control_plane"], removal
    assert rerun["groups"]["kube_control_plane"] == ["node1"]
    assert "cp2" not in local_cluster.node_names()
    stack.preview(600, True, "--expect-no-changes")


def test_api_access_external_lb_reaches_kubespray_and_the_kubeconfig(
    stack_factory: Any, kubespray_standin: Any, local_cluster: Any
) -> None:
    port = int(local_cluster.server.rsplit(":", 1)[1])
    access = {"mode": "externalLB", "address": "127.0.0.1", "port": port}
    stack = stack_factory("kubespray", {"mysql": {"enabled": False}, "helm": {"releases": []}, "apps": [],
                                        "cluster": {"apiServerEndpoint": None, "apiAccess": access}})  # fmt: skip
    stack.up()  # the add-ons go in through the exported kubeconfig: it works
    kubeconfig = yaml.safe_load(stack.outputs(show_secrets=True)["kubeconfig"])
    stack.history.pop()  # the one call allowed to print a secret
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{port}"
    inventory = Path(stack.config()["cluster"]["kubespray"]["workdir"]) / "inventory" / "k8s-platform-e2e"
    group_vars = yaml.safe_load((inventory / "group_vars" / "all" / "k8s-platform.yml").read_text())
    assert group_vars["loadbalancer_apiserver"] == {"address": "127.0.0.1", "port": port}
    # a running cluster does not move to another endpoint
    cfg = stack.config()
    cfg["cluster"].pop("apiAccess")
    cfg["cluster"]["apiServerEndpoint"] = local_cluster.server
    stack.write_config(cfg)
    refused = stack.preview(600, False)
    assert refused.returncode != 0
    assert f"cluster.apiAccess: the cluster was installed with externalLB 127.0.0.1:{port}, now localProxy" in refused.output, (
        refused.output[-3000:]
    )


def test_the_control_host_installs_kubesprays_requirements_from_its_pip_mirror(
    stack_factory: Any, kubespray_standin: Any, local_cluster: Any, tmp_path: Path
) -> None:
    """controlHost.pip: a control host whose only package source is the team's mirror (a
    PEP 503 index over plain http on loopback) installs kubespray's hash-pinned requirements
    from it; the session's control host installs from a local wheelhouse instead."""
    wheelhouse = ensure_wheelhouse(REPO_ROOT / "components" / "kubespray_releases" / "v2.31.0.requirements.txt")
    index = PyIndex(tmp_path / "pyindex", wheelhouse).start()
    host = ControlHost(tmp_path / "control-host", env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    try:
        host.start()
        workdir = tmp_path / "kubespray"
        # the same stand-in etcd member / first control-plane node as the session's stacks
        kubespray_standin.etcd_member(workdir / "inventory" / "k8s-platform-e2e",
                                      f"http://127.0.0.1:{local_cluster.ports['etcd']}",
                                      str(Path(engine.binary("etcdctl")).parent))  # fmt: skip
        stack = stack_factory(
            "kubespray",
            {"mysql": {"enabled": False}, "helm": {"releases": []}, "apps": [],
             "cluster": {"kubespray": {"workdir": str(workdir)},
                         "controlHost": {"port": host.port, "hostKey": host.host_public_key,
                                         "pip": {"indexUrl": index.url, "trustedHost": index.host}}}},
            secrets={"sshPrivateKey": host.private_key},
        )  # fmt: skip
        stack.up()
        asked = index.requested()
        assert "/simple/ansible-core/" in asked, asked
        assert any(p.startswith("/files/ansible_core-2.18.") for p in asked), asked
        assert (workdir / "venv" / "bin" / "ansible-playbook").exists()
        assert stack.leaks() == []
    finally:
        host.stop()
        index.stop()


def resource_urns(stack: E2EStack) -> list[str]:
    state = json.loads(stack.run("stack", "export", timeout=60).stdout)
    return [r["urn"] for r in state["deployment"].get("resources") or []]


def test_failing_playbook_fails_up_then_next_up_succeeds(stack_factory: Any, kubespray_standin: Any) -> None:
    si = kubespray_standin
    stack = stack_factory("kubespray", {"mysql": {"enabled": False}, "helm": {"releases": []}, "apps": []})
    si.clear_invocations()
    si.fail_next("cluster.yml")
    res = stack.up(900, False)
    assert res.returncode != 0
    out = res.output
    assert "cluster failed (exit" in out and "full log on the control host:" in out, out[-3000:]
    assert "fails midway as requested" in out, "the tail of the playbook's output is shown"
    # state is consistent: what ran is recorded, the failed run and everything after it is not
    names = resource_names(stack)
    assert {"cluster-prepare", "cluster-inventory"} <= names and "cluster-cluster" not in names, names
    assert "cluster-kubeconfig" not in names
    # the next up runs cluster.yml again and completes
    si.clear_invocations()
    stack.up()
    assert runs(si) == [("cluster.yml", None)]
    stack.preview(600, True, "--expect-no-changes")
    assert stack.leaks() == [], "a failing command's error text must not carry a secret"


def test_health_gate_holds_back_add_ons_until_kube_system_is_available(
    stack_factory: Any, local_cluster: Any
) -> None:
    # a kube-system Deployment that can never be ready: its pod selects a node nobody has
    broken = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "e2e-unschedulable", "namespace": "kube-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "e2e-unschedulable"}},
            "template": {
                "metadata": {"labels": {"app": "e2e-unschedulable"}},
                "spec": {"nodeSelector": {"e2e/no-such-node": "true"},
                         "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }  # fmt: skip
    local_cluster.kubectl("apply", "-f", "-", input=json.dumps(broken))
    stack = stack_factory(
        "kubespray",
        {"cluster": {"healthGate": {"timeout": 30}}, "mysql": {"enabled": False}, "helm": {"releases": []}},
    )
    try:
        res = stack.up(900, False)
        assert res.returncode != 0, res.output[-3000:]
        out = res.output
        assert "health gate: the cluster is not healthy after 30s" in out, out[-3000:]
        assert "kube-system deployment/e2e-unschedulable: 0/1 ready" in out, out[-3000:]
        assert "didn't match Pod's node affinity/selector" in out or "e2e-unschedulable" in out.split("pods not running")[-1]
        names = resource_names(stack)
        assert "cluster-cluster" in names and "cluster-health" not in names, names
        assert not [n for n in names if n.startswith(("addons-", "app-", "namespaces-"))], f"deployed past the gate: {names}"
    finally:
        local_cluster.kubectl("delete", "deployment", "e2e-unschedulable", "-n", "kube-system", "--wait=true")
    # the cluster is healthy again: the gate passes and everything after it is deployed
    res = stack.up()
    assert "health gate: API server ready, 3 node(s) Ready, kube-system workloads available" in res.output, (
        res.output[-3000:]
    )
    assert local_cluster.get("deployment", "my-nginx", "-n", "web")["status"].get("readyReplicas") == 2
    stack.preview(600, True, "--expect-no-changes")


def test_destroy_resets_through_kubesprays_gate_only_when_asked(
    stack_factory: Any, kubespray_standin: Any, local_cluster: Any
) -> None:
    si = kubespray_standin
    stack = stack_factory(
        "kubespray",
        {"cluster": {"resetOnDestroy": True}, "mysql": {"enabled": False}, "helm": {"releases": []}, "apps": []},
    )
    stack.up()
    si.clear_invocations()
    stack.destroy()
    (call,) = si.invocations()
    # the stand-in only runs after kubespray's "Check confirmation" let the run through
    assert call["playbook"] == "reset.yml" and call["reset_confirmation"] == "yes", call
    workdir = stack.config()["cluster"]["kubespray"]["workdir"]
    admin = f"{workdir}/inventory/k8s-platform-{stack.name}/artifacts/admin.conf"
    assert not __import__("os").path.exists(admin), "reset.yml ran to the end"


def test_control_host_unreachable_then_next_up_converges(stack_factory: Any, kubespray_standin: Any) -> None:
    stack = stack_factory("kubespray", {"mysql": {"enabled": False}, "helm": {"releases": []}, "apps": []})
    good_port = stack.config()["cluster"]["controlHost"]["port"]
    stack.update_config({"cluster": {"controlHost": {"port": free_port()}}})  # nothing listens there
    t0 = time.monotonic()
    res = stack.up(600, False)
    took = time.monotonic() - t0
    assert res.returncode != 0
    assert "connection refused" in res.output.lower() or "dial" in res.output.lower(), res.output[-3000:]
    assert took < 240, f"an unreachable control host must fail in bounded time, took {took:.0f}s"
    names = resource_names(stack)
    assert not {n for n in names if n.startswith("cluster-")}, f"half-applied: {names}"

    # a kubespray tag that does not resolve to the pinned commit is refused before anything runs
    stack.update_config({"cluster": {"controlHost": {"port": good_port}, "kubespray": {"commit": "0" * 40}}})
    refused = stack.up(600, False)
    assert refused.returncode != 0 and "refusing to run it" in refused.output, refused.output[-3000:]
    assert "cluster-cluster" not in resource_names(stack)

    stack.update_config({"cluster": {"kubespray": {"commit": kubespray_standin.commit}}})
    stack.up()
    stack.preview(600, True, "--expect-no-changes")
    assert stack.leaks() == []


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_committed_stack_previews_offline(name: str, tmp_path: Any) -> None:
    """`pulumi preview` of a committed example stack: completes without any machine or network."""
    import shutil

    from lib import engine
    from lib.stack import copy_project
    from lib.util import REPO_ROOT

    project = copy_project(tmp_path / "project")
    shutil.copy2(REPO_ROOT / f"Pulumi.{name}.yaml", project / f"Pulumi.{name}.yaml")
    stack = E2EStack(dir=project, state_dir=tmp_path / "state", name=name, passphrase="k8s-platform-example")
    stack.state_dir.mkdir()
    stack.run("stack", "init", name, timeout=120)
    res = stack.preview(600)
    out = res.output
    for planned in ("cluster-prepare", "cluster-inventory", "cluster-cluster", "cluster-kubeconfig", "my-nginx"):
        assert planned in out, f"{planned} missing from the preview of {name}:\n{out[-3000:]}"
    assert " to create" in out, out[-2000:]
    assert engine.bin_dir().exists()

"""The playbook plan of a kubespray-mode update, and the layout changes it refuses (pure functions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import cluster_plan
from components.cluster_config import ClusterSpec
from stacks.config import parse_config
from tests.support.mocks import PROJECT_ROOT, kubespray_config

CP_ETCD = ["control-plane", "etcd", "worker"]


def spec(nodes: list[dict[str, Any]] | None = None, **cluster: Any) -> ClusterSpec:
    """The cluster config; the pre-change etcd snapshot line is left out unless etcdBackup is given."""
    cfg = kubespray_config()
    if nodes is not None:
        cfg["cluster"]["nodes"] = nodes
    cfg["cluster"]["etcdBackup"] = {"beforeChanges": False}
    cfg["cluster"].update(cluster)
    return parse_config(cfg, project_root=PROJECT_ROOT).cluster


def node(name: str, roles: list[str], **kw: Any) -> dict[str, Any]:
    return {"name": name, "address": f"10.4.17.{100 + int(name[-1])}", "roles": roles, **kw}


BASE = [node("node1", CP_ETCD), node("node2", CP_ETCD), node("node3", ["etcd", "worker"])]


def recorded(nodes: list[dict[str, Any]], **cluster: Any) -> dict[str, Any]:
    return cluster_plan.layout(spec(nodes, **cluster), True)


def plan_of(before: list[dict[str, Any]], after: list[dict[str, Any]], version: str = "1.34.4", **cluster: Any) -> Any:
    return cluster_plan.plan(spec(after, **cluster), True, recorded(before), version, cluster.get("kubeVersion", version))


def test_first_installation_runs_cluster_yml_on_every_node() -> None:
    p = cluster_plan.plan(spec(BASE), True, None, None, "1.34.4")
    assert p.lines == ["cluster.yml on 3 node(s) (node1, node2, node3): first installation"] and p.problems == []


def test_nothing_changed_runs_nothing() -> None:
    p = plan_of(BASE, BASE)
    assert p.lines == ["no playbook runs: the cluster is as configured"] and p.problems == []


def test_a_stack_without_a_record_says_so() -> None:
    p = cluster_plan.plan(spec(BASE), True, None, "1.34.4", "1.34.4")
    assert len(p.lines) == 1 and "no record of the layout" in p.lines[0]


def test_added_worker_is_scaled_in_alone() -> None:
    p = plan_of(BASE, [*BASE, node("node4", ["worker"])])
    assert p.lines == ["facts.yml, then scale.yml --limit node4: worker node4 added"], p.lines


def test_removed_and_unreachable_workers() -> None:
    with4 = [*BASE, node("node4", ["worker"]), node("node5", ["worker"])]
    p = plan_of(with4, [*BASE, node("node5", ["worker"], state="unreachable")], nodeRemoval={"drainTimeout": "90s"})
    assert p.problems == []
    assert p.lines == [
        "remove-node.yml -e node=node4: worker node4 removed from nodes: drained (timeout 90s), then reset",
        "remove-node.yml -e node=node5 -e reset_nodes=false -e allow_ungraceful_removal=true: worker node5 marked "
        "unreachable: not drained or reset, the machine is not touched",
    ], p.lines
    # once removed, keeping the entry marked unreachable (or deleting it) runs nothing more
    after = [*BASE, node("node5", ["worker"], state="unreachable")]
    assert cluster_plan.plan(spec(after), True, recorded(after), "1.34.4", "1.34.4").lines == [
        "no playbook runs: the cluster is as configured"
    ]


def test_upgrade_line_names_versions_and_controls() -> None:
    p = cluster_plan.plan(
        spec(BASE, kubeVersion="1.35.2", upgrade={"serial": "1", "drainTimeout": "900s", "pauseSeconds": 30}),
        True,
        recorded(BASE, kubeVersion="1.35.2"),
        "1.34.4",
        "1.35.2",
    )
    assert p.problems == []
    assert p.lines == [
        "upgrade-cluster.yml on 3 node(s): Kubernetes 1.34.4 -> 1.35.2 (drain on, timeout 900s; 1 of the nodes at "
        "a time; 30s pause after each)"
    ], p.lines


def test_skipped_minor_is_a_problem() -> None:
    p = cluster_plan.plan(spec(BASE, kubeVersion="1.35.2"), True, recorded(BASE), "1.33.11", "1.35.2")
    assert [x.split(":")[0] for x in p.problems] == ["cluster.kubeVersion"]


CP = ["control-plane", "worker"]
ETCD = ["etcd", "worker"]
# the first control-plane node is not an etcd member, so removing it breaks no etcd rule
SPLIT = [node("node1", CP), node("node2", CP_ETCD), node("node3", ETCD), node("node4", ETCD), node("node5", CP)]


def test_control_plane_member_joining_and_leaving_re_runs_cluster_yml_after_remove_node() -> None:
    more = [*BASE, node("node4", CP), node("node5", CP)]
    joined = plan_of(BASE, more)
    assert joined.lines == ["cluster.yml on 5 node(s) (node1, node2, node3, node4, node5): node4, node5 joins the "
                            "control plane/etcd"], joined.lines  # fmt: skip
    left = plan_of(more, [*BASE, node("node5", CP, state="unreachable")])
    assert left.problems == [], left.problems
    assert left.lines == [
        "remove-node.yml -e node=node4 (before cluster.yml, the node still in the inventory): control-plane, worker "
        "node node4 removed from nodes",
        "remove-node.yml -e node=node5 -e reset_nodes=false -e allow_ungraceful_removal=true (before cluster.yml, "
        "the node still in the inventory): control-plane, worker node node5 marked unreachable: the machine is not "
        "touched",
        "cluster.yml on 3 node(s) (node1, node2, node3): node4, node5 leaves the control plane/etcd",
    ], left.lines


def test_two_etcd_members_leaving_at_once_is_refused() -> None:
    five = [*BASE, node("node4", CP_ETCD), node("node5", CP_ETCD)]
    p = plan_of(five, BASE)
    assert any("2 etcd members leave at once (node4, node5): remove one etcd member per `pulumi up`" in x
               for x in p.problems), p.problems  # fmt: skip


def test_replacing_an_etcd_member_in_one_update_is_allowed() -> None:
    p = plan_of(SPLIT, [*SPLIT[:3], node("node6", ETCD), SPLIT[4]])
    assert p.problems == [], p.problems
    assert p.lines[0].startswith("remove-node.yml -e node=node4 (before cluster.yml"), p.lines
    assert "node6 joins the control plane/etcd; node4 leaves the control plane/etcd" in p.lines[1], p.lines


@pytest.mark.parametrize("state", ["removed", "unreachable"])
def test_the_first_control_plane_node_cannot_leave(state: str) -> None:
    after = SPLIT[1:] if state == "removed" else [node("node1", CP, state="unreachable"), *SPLIT[1:]]
    p = plan_of(SPLIT, after)
    assert len(p.problems) == 1, p.problems
    assert "cannot remove node1, the first node of kubespray's kube_control_plane group" in p.problems[0]
    assert "Move node1 below another control-plane node in nodes and `pulumi up`" in p.problems[0]


def test_the_first_etcd_member_cannot_leave() -> None:
    p = plan_of(SPLIT, [SPLIT[0], node("node6", CP_ETCD), *SPLIT[2:]])
    assert [x for x in p.problems if "cannot remove node2, the first node of kubespray's etcd group" in x], p.problems


def test_reordering_first_then_removing_is_the_documented_way() -> None:
    reordered = [*SPLIT[1:], SPLIT[0]]
    step1 = plan_of(SPLIT, reordered)
    assert step1.problems == [] and step1.lines[0].startswith("cluster.yml on 5 node(s)"), step1.lines
    step2 = cluster_plan.plan(spec(reordered[:-1]), True, recorded(reordered), "1.34.4", "1.34.4")
    assert step2.problems == [], step2.problems
    assert step2.lines[0].startswith("remove-node.yml -e node=node1 (before cluster.yml"), step2.lines


def test_changing_a_members_roles_is_refused() -> None:
    after = copy.deepcopy(SPLIT)
    after[4]["roles"] = ["worker"]
    p = plan_of(SPLIT, after)
    assert any(x.startswith("cluster.nodes: node5 changes roles (control-plane, worker -> worker)") and "Remove node5 from nodes"
               in x for x in p.problems), p.problems  # fmt: skip


def test_kubespray_version_change_is_a_reason() -> None:
    before = recorded(BASE)
    before["kubespray"] = "v2.30.0"
    before["digest"] = "0" * 16
    p = cluster_plan.plan(spec(BASE), True, before, "1.34.4", "1.34.4")
    assert p.lines == ["cluster.yml on 3 node(s) (node1, node2, node3): kubespray v2.30.0 -> v2.31.0"], p.lines


def test_settings_change_is_a_reason() -> None:
    p = plan_of(BASE, BASE, proxy={"http": "http://10.4.17.2:3128"})
    assert p.lines == ["cluster.yml on 3 node(s) (node1, node2, node3): cluster settings changed (group_vars, "
                       "schedulableControlPlane or kubespray's source)"], p.lines  # fmt: skip


def test_moving_a_running_cluster_to_another_api_endpoint_is_refused() -> None:
    vip = {"mode": "kubeVip", "address": "10.4.17.5", "subnet": "10.4.17.0/24"}
    p = cluster_plan.plan(spec(BASE, apiAccess=vip), True, recorded(BASE), "1.34.4", "1.34.4")
    assert len(p.problems) == 1 and p.problems[0].startswith(
        "cluster.apiAccess: the cluster was installed with localProxy, now kubeVip 10.4.17.5:6443"
    ), p.problems
    # the interface kube-vip uses is not part of the endpoint
    same = cluster_plan.plan(spec(BASE, apiAccess={**vip, "interface": "eth1"}), True,
                             recorded(BASE, apiAccess=vip), "1.34.4", "1.34.4")  # fmt: skip
    assert same.problems == []


def test_a_snapshot_comes_first_when_a_running_cluster_changes() -> None:
    backup = {"retention": 4, "directory": "/srv/backups"}
    upgrade = cluster_plan.plan(spec(BASE, kubeVersion="1.35.2", etcdBackup=backup), True,
                                recorded(BASE, kubeVersion="1.35.2", etcdBackup=backup), "1.34.4", "1.35.2")  # fmt: skip
    assert upgrade.lines[0] == ("etcd-snapshot.yml on node1 (the first etcd member) first: a snapshot into "
                                "/srv/backups/k8s-platform-etcd/before-changes, the newest 4 kept"), upgrade.lines  # fmt: skip
    assert upgrade.lines[1].startswith("upgrade-cluster.yml")
    # nothing for a worker joining or leaving (scale.yml / remove-node.yml touch no etcd member)
    worker = cluster_plan.plan(spec([*BASE, node("node4", ["worker"])], etcdBackup=backup), True,
                               recorded(BASE, etcdBackup=backup), "1.34.4", "1.34.4")  # fmt: skip
    assert [line.split(" ")[0] for line in worker.lines] == ["facts.yml,"], worker.lines
    # nor for the first installation
    first = cluster_plan.plan(spec(BASE, etcdBackup=backup), True, None, None, "1.34.4")
    assert first.lines[0].startswith("cluster.yml on 3 node(s)")


def test_a_kubespray_change_is_its_own_step() -> None:
    before = recorded(BASE)
    before["kubespray"] = "v2.30.0"
    both = cluster_plan.plan(spec(BASE, kubeVersion="1.35.2"), True, before, "1.34.4", "1.35.2")
    assert any(x.startswith("cluster.kubespray.version: changes (v2.30.0 -> v2.31.0) in the same update as kubeVersion")
               for x in both.problems), both.problems  # fmt: skip
    # the new release must install what the cluster runs now
    old = cluster_plan.plan(spec(BASE), True, before, "1.32.9", "1.34.4")
    assert any("v2.31.0 does not install the Kubernetes this cluster runs (1.32.9" in x for x in old.problems), old.problems
    alone = cluster_plan.plan(spec(BASE), True, before, "1.34.4", "1.34.4")
    assert alone.problems == []


def test_a_record_read_back_through_pulumi_has_float_numbers() -> None:
    """StackReference outputs are JSON: 6443 comes back as 6443.0 — equal, and shown as 6443."""
    lb = {"mode": "externalLB", "address": "10.4.17.6", "port": 8383}
    before = recorded(BASE, apiAccess=lb)
    before["apiAccess"]["port"] = 8383.0
    assert cluster_plan.plan(spec(BASE, apiAccess=lb), True, before, "1.34.4", "1.34.4").problems == []
    moved = cluster_plan.plan(spec(BASE), True, before, "1.34.4", "1.34.4").problems
    assert moved and "installed with externalLB 10.4.17.6:8383, now localProxy" in moved[0], moved

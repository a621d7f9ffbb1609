"""What a kubespray-mode update will do to the machines, and what it must refuse.

Pure functions of the stack's cluster config and of what the stack applied last (its own
`clusterLayout` and `kubeVersion` outputs, read back through a StackReference):

- `layout()`  the record the program exports after every successful cluster run
- `plan()`    the playbooks the update runs, on which nodes and why (printed by `pulumi
              preview` and `pulumi up` before anything runs), and the changes kubespray
              cannot make safely, each with the steps that do work

The commands themselves do not depend on this record (a command whose text followed the
last run's outputs would differ on every update); it only explains and guards them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components import kubespray_inventory as inv
from components import kubespray_release
from components.cluster_config import ROLE_CONTROL_PLANE, ROLE_ETCD, ClusterSpec


def layout(cluster: ClusterSpec, schedulable_control_plane: bool) -> dict[str, Any]:
    """What this stack's cluster is made of, as recorded after a successful run."""
    assert cluster.kubespray is not None
    return {
        "digest": inv.cluster_digest(cluster, schedulable_control_plane),
        "kubespray": cluster.kubespray.version,
        "nodes": [{"name": n.name, "roles": list(n.roles), "state": n.state} for n in cluster.nodes],
        "apiAccess": _api_access(cluster),
    }


def _api_access(cluster: ClusterSpec) -> dict[str, Any]:
    a = cluster.api_access
    return {"mode": a.mode, "address": a.address, "port": a.port, "domainName": a.domain_name}


def _describe_access(access: Mapping[str, Any]) -> str:
    if access.get("mode") == "localProxy":
        return "localProxy"
    where = access.get("domainName") or access.get("address")
    port = access.get("port")
    # numbers read back through a StackReference are floats (JSON)
    if isinstance(port, float) and port.is_integer():
        port = int(port)
    return f"{access.get('mode')} {where}:{port}"


def _minor(version: str) -> tuple[int, int, int] | None:
    parts = version.lstrip("v").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def check_kube_version_change(previous: str, current: str) -> str | None:
    """Why going from the deployed Kubernetes `previous` to `current` is refused, or None.

    Kubespray upgrades one minor at a time and never downgrades (kubeadm cannot).
    """
    old, new = _minor(previous or ""), _minor(current or "")
    if old is None or new is None or old == new:
        return None
    if new < old:
        return (
            f"cluster.kubeVersion: cannot go from the deployed {previous} down to {current}: kubespray and "
            f"kubeadm do not downgrade a cluster. Set it back to {previous} (or newer); to undo an upgrade, "
            "restore etcd from a backup taken before it (docs/operations.md)"
        )
    if new[:2] > (old[0], old[1] + 1):
        step = f"{old[0]}.{old[1] + 1}"
        return (
            f"cluster.kubeVersion: cannot go from the deployed {previous} to {current} in one step: kubespray "
            f"upgrades one minor at a time. Upgrade to the newest {step}.x first, `pulumi up`, then to {current}"
        )
    return None


@dataclass(frozen=True)
class _Recorded:
    name: str
    roles: tuple[str, ...]
    present: bool

    @property
    def core(self) -> bool:
        return ROLE_CONTROL_PLANE in self.roles or ROLE_ETCD in self.roles


def _recorded(previous: Mapping[str, Any]) -> list[_Recorded]:
    out = []
    for entry in previous.get("nodes") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            out.append(
                _Recorded(
                    name=entry["name"],
                    roles=tuple(r for r in entry.get("roles") or [] if isinstance(r, str)),
                    present=entry.get("state", "present") == "present",
                )
            )
    return out


@dataclass
class Plan:
    lines: list[str] = field(default_factory=list)  # what runs, in order, and why
    problems: list[str] = field(default_factory=list)  # `<key.path>: <why and how to fix>`


def _names(nodes: list[Any]) -> str:
    return ", ".join(n.name for n in nodes)


def _removal_flags(unreachable: bool) -> str:
    return " -e reset_nodes=false -e allow_ungraceful_removal=true" if unreachable else ""


def plan(
    cluster: ClusterSpec,
    schedulable_control_plane: bool,
    previous_layout: Mapping[str, Any] | None,
    previous_kube_version: str | None,
    kube_version: str,
) -> Plan:
    """The playbooks this update runs and the layout changes it refuses."""
    result = Plan()
    assert cluster.kubespray is not None
    if previous_kube_version:
        problem = check_kube_version_change(previous_kube_version, kube_version)
        if problem:
            result.problems.append(problem)
    current = {n.name: n for n in cluster.nodes}
    members = [n for n in cluster.nodes if n.present]
    if not isinstance(previous_layout, Mapping):
        if previous_kube_version:
            # updated last by a program that did not record the layout: the commands' own diff decides
            result.lines.append(
                "no record of the layout this stack applied last (it predates the record): the playbooks run "
                "where Pulumi's diff shows a command changed; the plan is printed from the next update on"
            )
        else:
            result.lines.append(f"cluster.yml on {len(members)} node(s) ({_names(members)}): first installation")
        return result

    old_kubespray = previous_layout.get("kubespray")
    if isinstance(old_kubespray, str) and old_kubespray and old_kubespray != cluster.kubespray.version:
        if previous_kube_version and kube_version and previous_kube_version != kube_version:
            result.problems.append(
                f"cluster.kubespray.version: changes ({old_kubespray} -> {cluster.kubespray.version}) in the same update "
                f"as kubeVersion ({previous_kube_version} -> {kube_version}): change kubespray on its own first "
                "(`pulumi up` fetches the new release and re-runs cluster.yml), then kubeVersion"
            )
        rel = kubespray_release.release(cluster.kubespray.version)
        if rel is not None and previous_kube_version and previous_kube_version not in rel.kube_versions:
            result.problems.append(
                f"cluster.kubespray.version: {cluster.kubespray.version} does not install the Kubernetes this cluster "
                f"runs ({previous_kube_version}; it installs {rel.kube_version_range}): upgrade Kubernetes with "
                f"kubespray {old_kubespray} first, into that range, then change kubespray"
            )
    before = _recorded(previous_layout)
    by_name = {r.name: r for r in before}
    was_member = [r for r in before if r.present]

    # --- refused layout changes: the steps kubespray documents instead
    was_access = previous_layout.get("apiAccess")
    if isinstance(was_access, Mapping) and dict(was_access) != _api_access(cluster):
        result.problems.append(
            f"cluster.apiAccess: the cluster was installed with {_describe_access(was_access)}, now "
            f"{_describe_access(_api_access(cluster))}: kubeadm fixes the control-plane endpoint (and the "
            "certificates and kubeconfigs naming it) when a cluster is created, and kubespray does not move a "
            "running cluster to another one. Set apiAccess back; a different endpoint means a new cluster"
        )
    for r in was_member:
        node = current.get(r.name)
        if node is not None and node.present and set(node.roles) != set(r.roles):
            result.problems.append(
                f"cluster.nodes: {r.name} changes roles ({', '.join(r.roles)} -> {', '.join(node.roles)}): kubespray "
                f"cannot change a member's roles in place. Remove {r.name} from nodes, `pulumi up`, then add it back "
                "with the new roles"
            )
    for role, group in ((ROLE_CONTROL_PLANE, "kube_control_plane"), (ROLE_ETCD, "etcd")):
        first = next((r for r in was_member if role in r.roles), None)
        if first is None:
            continue
        node = current.get(first.name)
        if node is None or not node.present:
            result.problems.append(
                f"cluster.nodes: cannot remove {first.name}, the first node of kubespray's {group} group: "
                f"kubespray cannot remove it. Move {first.name} below another {role} node in nodes and `pulumi up` "
                f"(cluster.yml makes that node the first), then remove {first.name} "
                "(docs/operations.md, 'Removing a node')"
            )
    etcd_leaving = [r for r in was_member if ROLE_ETCD in r.roles and not (current.get(r.name) and current[r.name].present)]
    if len(etcd_leaving) > 1:
        result.problems.append(
            f"cluster.nodes: {len(etcd_leaving)} etcd members leave at once ({_names(etcd_leaving)}): remove one "
            "etcd member per `pulumi up`, so etcd keeps its majority while each one leaves"
        )

    # --- the playbooks, in the order the update runs them
    leaving_core = [r for r in was_member if r.core and not (current.get(r.name) and current[r.name].present)]
    joining_core = [n for n in members if not n.worker_only and not (by_name.get(n.name) and by_name[n.name].present)]
    for r in leaving_core:
        node = current.get(r.name)
        unreachable = node is not None and node.state == "unreachable"
        why = "marked unreachable: the machine is not touched" if unreachable else "removed from nodes"
        result.lines.append(
            f"remove-node.yml -e node={r.name}{_removal_flags(unreachable)} (before cluster.yml, the node still in "
            f"the inventory): {', '.join(r.roles)} node {r.name} {why}"
        )
    cluster_yml = inv.cluster_digest(cluster, schedulable_control_plane) != previous_layout.get("digest")
    upgrading = bool(previous_kube_version and kube_version and previous_kube_version != kube_version)
    if cluster_yml:
        reasons = []
        if joining_core:
            reasons.append(f"{_names(joining_core)} joins the control plane/etcd")
        if leaving_core:
            reasons.append(f"{_names(leaving_core)} leaves the control plane/etcd")
        old_ks = previous_layout.get("kubespray")
        if old_ks and old_ks != cluster.kubespray.version:
            reasons.append(f"kubespray {old_ks} -> {cluster.kubespray.version}")
        if not reasons:
            reasons.append("cluster settings changed (group_vars, schedulableControlPlane or kubespray's source)")
        result.lines.append(f"cluster.yml on {len(members)} node(s) ({_names(members)}): {'; '.join(reasons)}")
    for n in members:
        if n.worker_only and not (by_name.get(n.name) and by_name[n.name].present):
            result.lines.append(f"facts.yml, then scale.yml --limit {n.name}: worker {n.name} added")
    if upgrading:
        up = cluster.upgrade
        drain = f"drain on, timeout {up.drain_timeout}" if up.drain else "drain off"
        result.lines.append(
            f"upgrade-cluster.yml on {len(members)} node(s): Kubernetes {previous_kube_version} -> {kube_version} "
            f"({drain}; {up.serial} of the nodes at a time; {up.pause_seconds}s pause after each)"
        )
    for r in was_member:
        if r.core:
            continue
        node = current.get(r.name)
        if node is not None and node.present:
            continue
        unreachable = node is not None
        why = "marked unreachable: not drained or reset, the machine is not touched" if unreachable else (
            f"removed from nodes: drained (timeout {cluster.removal.drain_timeout}), then reset"
        )
        result.lines.append(f"remove-node.yml -e node={r.name}{_removal_flags(unreachable)}: worker {r.name} {why}")
    # the cluster and upgrade steps snapshot etcd first (a member leaving changes the digest too);
    # workers joining or leaving touch no etcd member
    if (cluster_yml or upgrading) and cluster.etcd_backup.before_changes:
        first_etcd = next((r.name for r in was_member if ROLE_ETCD in r.roles), "the first etcd member")
        result.lines.insert(
            0,
            f"etcd-snapshot.yml on {first_etcd} (the first etcd member) first: a snapshot into "
            f"{cluster.etcd_backup.directory.rstrip('/')}/k8s-platform-etcd/before-changes, the newest "
            f"{cluster.etcd_backup.retention} kept",
        )
    if not result.lines:
        result.lines.append("no playbook runs: the cluster is as configured")
    return result


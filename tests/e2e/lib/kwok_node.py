"""KWOK nodes: the manifest of a fake node, and add/remove against an API server.

A KWOK node is a Node object with the `kwok.x-k8s.io/node: fake` annotation; the
`kwok` controller (started by lib/cluster.py with
`--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake`) makes it Ready,
renews its lease and plays pods bound to it to Running/Ready.

Also a CLI, used by the kubespray STAND-IN playbooks (scale.yml / remove-node.yml):

    python kwok_node.py --kubeconfig admin.conf add node4 [--role worker|control-plane|control-plane-worker] [--ip 127.0.1.4]
    python kwok_node.py --kubeconfig admin.conf remove node4
    python kwok_node.py --kubeconfig admin.conf list
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

try:  # inside the tests: package-relative; copied into the stand-in repo: side by side
    from .kube import ApiError, Kube, condition
except ImportError:  # pragma: no cover
    from kube import ApiError, Kube, condition  # type: ignore[no-redef]

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
KUBELET_VERSION = "v1.34.4"


ROLES = ("worker", "control-plane", "control-plane-worker")


def node_manifest(name: str, role: str = "worker") -> dict[str, Any]:
    """role: worker | control-plane (label + NoSchedule taint) | control-plane-worker (label, no taint)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    # taints is an atomic list that the node lifecycle controller also writes; applying it
    # always (empty when untainted) takes it over, so a role change really adds/removes the taint
    spec: dict[str, Any] = {"taints": []}
    if role.startswith("control-plane"):
        labels[CONTROL_PLANE_LABEL] = ""
    if role == "control-plane":
        # what kubeadm (and so kubespray) puts on a control-plane node that is not in kube_node
        spec["taints"] = [{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]
    if role.endswith("worker"):
        labels["node-role.kubernetes.io/worker"] = ""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {KWOK_ANNOTATION: "fake"}},
        "spec": spec,
    }


def node_status(name: str, ip: str, kubelet_version: str = KUBELET_VERSION) -> dict[str, Any]:
    """Addresses and a realistic size; KWOK's node-initialize stage keeps what is set here."""
    size = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "capacity": size,
            "allocatable": size,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "containerRuntimeVersion": "containerd://2.1.4",
                "kernelVersion": "6.1.0-kwok",
                "osImage": "Ubuntu 24.04 LTS (KWOK)",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
        },
    }


def default_ip(name: str) -> str:
    """node<N> -> 127.0.1.<N>, the addresses the e2e stacks give their nodes."""
    digits = "".join(ch for ch in name if ch.isdigit())
    return f"127.0.1.{int(digits) % 250 or 250}" if digits else "127.0.1.250"


def add_node(
    kube: Kube, name: str, role: str = "worker", ip: str | None = None, kubelet_version: str = KUBELET_VERSION
) -> dict[str, Any]:
    """Create or update (server-side apply) a KWOK node; an existing node keeps its other fields."""
    kube.apply(node_manifest(name, role))
    return kube.apply(node_status(name, ip or default_ip(name), kubelet_version), sub="status")


def remove_node(kube: Kube, name: str) -> bool:
    return kube.delete("Node", name)


def internal_ip(node: dict[str, Any] | None) -> str | None:
    for a in ((node or {}).get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return str(a.get("address"))
    return None


def is_ready(kube: Kube, name: str) -> bool:
    return condition(kube.read("Node", name), "Ready") == "True"


def wait_ready(
    kube: Kube,
    names: list[str],
    timeout: float = 60.0,
    ips: dict[str, str] | None = None,
    kubelet_version: str = KUBELET_VERSION,
) -> None:
    """Wait until every node is Ready (and has its InternalIP from `ips`, default node<N> -> 127.0.1.<N>).

    KWOK's node-initialize stage may write its own --node-ip and version from a stale
    cache right after our status apply; once a node is Ready KWOK keeps what it finds,
    so the status is re-applied then.
    """
    want = {n: (ips or {}).get(n) or default_ip(n) for n in names}
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        still = []
        for n in pending:
            try:
                node = kube.read("Node", n)
                if condition(node, "Ready") != "True":
                    still.append(n)
                elif internal_ip(node) != want[n] or _kubelet(node, "").startswith("kwok"):
                    kube.apply(node_status(n, want[n], _kubelet(node, kubelet_version)), sub="status")
                    still.append(n)
            except (ApiError, OSError):
                still.append(n)
        pending = still
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"KWOK nodes not Ready (with their addresses) after {timeout:.0f}s: {', '.join(pending)}"
            )
        time.sleep(0.2)


def _kubelet(node: dict[str, Any] | None, default: str) -> str:
    """The node's kubelet version, unless it is KWOK's own placeholder ("kwok-0.8.0")."""
    v = str((((node or {}).get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")
    return default if not v or (v.startswith("kwok") and default) else v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="add/remove KWOK (fake) nodes")
    ap.add_argument("--kubeconfig", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add")
    a.add_argument("names", nargs="+")
    a.add_argument("--role", choices=ROLES, default="worker")
    a.add_argument("--ip", default=None)
    a.add_argument("--kubelet-version", default=KUBELET_VERSION)
    a.add_argument("--wait", type=float, default=60.0, help="seconds to wait for Ready (0: do not wait)")
    r = sub.add_parser("remove")
    r.add_argument("names", nargs="+")
    sub.add_parser("list")
    args = ap.parse_args(argv)
    kube = Kube(args.kubeconfig)
    if args.cmd == "add":
        for n in args.names:
            add_node(kube, n, args.role, args.ip, args.kubelet_version)
            print(f"node {n} registered (KWOK)")
        if args.wait:
            wait_ready(kube, args.names, args.wait, {n: args.ip for n in args.names} if args.ip else None)
            print(f"Ready: {', '.join(args.names)}")
    elif args.cmd == "remove":
        for n in args.names:
            print(f"node {n} {'deleted' if remove_node(kube, n) else 'was not registered'}")
    else:
        for node in kube.list("Node"):
            print(node["metadata"]["name"], condition(node, "Ready"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

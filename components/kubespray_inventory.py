"""The kubespray inventory (`hosts.yaml`) and group_vars the cluster component uploads.

Pure functions of a `ClusterSpec`: `python -m stacks inventory` prints exactly
these bytes, and the component uploads exactly these bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

from components.cluster_config import ClusterSpec, Node

GROUP_VARS_PATH = "group_vars/all/k8s-platform.yml"


@dataclass(frozen=True)
class Inventory:
    hosts_yaml: str
    group_vars_yaml: str


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def _host_vars(node: Node) -> dict[str, str]:
    return {"ansible_host": node.address, "ip": node.ip, "access_ip": node.ip}


def kube_node_members(cluster: ClusterSpec, schedulable_control_plane: bool) -> list[Node]:
    """Nodes in `kube_node`: workers, plus control-plane nodes when they take workloads.

    kubespray taints control-plane nodes that are not also in kube_node; listing them
    there is how "remove the master taint" is done at install time.
    """
    return [n for n in cluster.members if n.is_worker or (schedulable_control_plane and n.is_control_plane)]


def hosts_document(
    cluster: ClusterSpec, schedulable_control_plane: bool, nodes: list[Node] | None = None
) -> dict[str, Any]:
    nodes = list(cluster.members) if nodes is None else nodes
    names = {n.name for n in nodes}

    def group(members: list[Node]) -> dict[str, Any]:
        return {"hosts": {n.name: None for n in members if n.name in names}}

    return {
        "all": {
            "hosts": {n.name: _host_vars(n) for n in nodes},
            "children": {
                "kube_control_plane": group([n for n in cluster.members if n.is_control_plane]),
                "etcd": group([n for n in cluster.members if n.is_etcd]),
                "kube_node": group(kube_node_members(cluster, schedulable_control_plane)),
                "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
                "calico_rr": {"hosts": {}},
            },
        }
    }


def group_vars(cluster: ClusterSpec) -> dict[str, Any]:
    """The variables kubespray reads from group_vars/all, in a stable order."""
    out: dict[str, Any] = {
        # admin.conf lands in <inventory>/artifacts/ on the control host, for the program to read back
        "kubeconfig_localhost": True,
        "kubectl_localhost": True,
        "kube_network_plugin": cluster.network_plugin,
        "container_manager": cluster.container_manager,
    }
    if cluster.kube_version:
        out["kube_version"] = cluster.kube_version
    proxy = cluster.proxy
    if proxy.http:
        out["http_proxy"] = proxy.http
    if proxy.https:
        out["https_proxy"] = proxy.https
    if proxy.no_proxy:
        # kubespray derives no_proxy from the inventory (nodes, service and pod CIDRs); extend it
        out["additional_no_proxy"] = proxy.no_proxy
    repos = cluster.image_repos
    for var, value in (
        ("kube_image_repo", repos.kube),
        ("docker_image_repo", repos.docker),
        ("quay_image_repo", repos.quay),
        ("github_image_repo", repos.github),
    ):
        if value:
            out[var] = value
    if cluster.registry_mirrors:
        # cluster.registryMirrors: containerd on every node pulls these registries' images
        # through their mirrors, the names unchanged (kubespray's, the charts', the apps')
        out["containerd_registries_mirrors"] = [m.containerd() for m in cluster.registry_mirrors]
    if repos.files:
        files = repos.files.rstrip("/")
        out["files_repo"] = files
        # kubespray's offline layout: every download URL is <files_repo>/<upstream host>/<path>
        out["github_url"] = f"{files}/github.com"
        out["dl_k8s_io_url"] = f"{files}/dl.k8s.io"
        out["storage_googleapis_url"] = f"{files}/storage.googleapis.com"
        out["get_helm_url"] = f"{files}/get.helm.sh"
    # kubelet serving certificates signed by the cluster CA (kubespray then runs its
    # kubelet-csr-approver), so metrics-server can verify them instead of skipping TLS
    out["kubelet_rotate_server_certificates"] = True
    out["auto_renew_certificates"] = cluster.certificates.auto_renew
    if cluster.certificates.auto_renew:
        out["auto_renew_certificates_systemd_calendar"] = cluster.certificates.schedule
    # kubespray's own etcd backups (taken when its etcd role restarts etcd) keep the same count
    out["etcd_backup_prefix"] = cluster.etcd_backup.directory
    out["etcd_backup_retention_count"] = cluster.etcd_backup.retention
    out["download_run_once"] = cluster.download.run_once
    out["download_localhost"] = cluster.download.localhost
    if cluster.api_server_endpoint:
        host = api_server_host(cluster)
        if host:
            out["supplementary_addresses_in_ssl_keys"] = [host]
    # cluster.apiAccess: kubespray puts loadbalancer_apiserver's address and domain name into
    # the API server's certificate itself
    out.update(cluster.api_access.group_vars())
    for key in sorted(cluster.extra_vars):
        out[key] = cluster.extra_vars[key]
    return out


def api_server_host(cluster: ClusterSpec) -> str:
    endpoint = cluster.api_server_endpoint.removeprefix("https://")
    host = endpoint.split("/", 1)[0]
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def api_server_url(cluster: ClusterSpec) -> str:
    """The server written into the exported kubeconfig."""
    if cluster.api_access.url():
        return cluster.api_access.url()
    endpoint = cluster.api_server_endpoint
    if endpoint.startswith("https://"):
        return endpoint.rstrip("/")
    if endpoint:
        host = endpoint
        return (
            f"https://{host}" if host.count(":") == 1 and not host.startswith("[") else f"https://{_bracket(host)}:6443"
        )
    first = cluster.control_plane[0]
    return f"https://{_bracket(first.address)}:6443"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def render(cluster: ClusterSpec, schedulable_control_plane: bool) -> Inventory:
    header = "# Generated by k8s-platform from the stack config; edits are overwritten on `pulumi up`.\n"
    return Inventory(
        hosts_yaml=header + _dump(hosts_document(cluster, schedulable_control_plane)),
        group_vars_yaml=header + _dump(group_vars(cluster)),
    )


def node_inventory(node: Node) -> str:
    """A one-host inventory that puts `node` back into kube_node.

    remove-node.yml must see the node it removes, but by the time Pulumi deletes a
    node the main inventory no longer lists it; ansible merges this file in.
    """
    doc = {"all": {"hosts": {node.name: _host_vars(node)}, "children": {"kube_node": {"hosts": {node.name: None}}}}}
    return _dump(doc)


def digest(*parts: Any) -> str:
    """A stable content hash: what the cluster run depends on, nothing else."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cluster_digest(cluster: ClusterSpec, schedulable_control_plane: bool) -> str:
    """Changes when cluster.yml has to run again.

    Worker-only nodes are left out (they are added with scale.yml and removed with
    remove-node.yml), and so is kube_version (upgrade-cluster.yml handles it).
    """
    core = [n for n in cluster.members if not n.worker_only]
    vars_ = {k: v for k, v in group_vars(cluster).items() if k != "kube_version"}
    assert cluster.kubespray is not None
    hosts = hosts_document(cluster, schedulable_control_plane, core)
    # the digest's JSON sorts keys, but kubespray reads meaning into the order of its groups (the
    # first kube_control_plane and etcd node): reordering them is a change cluster.yml applies
    order = {group: list(members["hosts"]) for group, members in hosts["all"]["children"].items() if "hosts" in members}
    return digest(
        hosts,
        order,
        vars_,
        cluster.kubespray.version,
        cluster.kubespray.source,
    )

"""Typed, frozen objects describing one stack (environment) of k8s-platform.

`stacks.config.parse_config` builds a `PlatformSpec` from a stack's config and
guarantees every invariant documented here; components receive these objects
and never read Pulumi config themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Environment = Literal["dev", "staging", "prod"]
ClusterMode = Literal["kubespray", "existing"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]

ROLE_CONTROL_PLANE = "control-plane"
ROLE_ETCD = "etcd"
ROLE_WORKER = "worker"
ROLES = (ROLE_CONTROL_PLANE, ROLE_ETCD, ROLE_WORKER)

# Secret config keys (namespace `k8s-platform:`), always set with `pulumi config set --secret`.
SECRET_SSH_PRIVATE_KEY = "sshPrivateKey"
SECRET_KUBECONFIG = "kubeconfig"
SECRET_MYSQL_ROOT_PASSWORD = "mysqlRootPassword"
SECRET_MYSQL_REPLICATION_PASSWORD = "mysqlReplicationPassword"
SECRET_KEYS = (
    SECRET_SSH_PRIVATE_KEY,
    SECRET_KUBECONFIG,
    SECRET_MYSQL_ROOT_PASSWORD,
    SECRET_MYSQL_REPLICATION_PASSWORD,
)


@dataclass(frozen=True)
class Node:
    name: str
    address: str  # ansible_host: how the control host reaches the node
    ip: str  # the address Kubernetes binds to
    roles: tuple[str, ...]

    @property
    def is_control_plane(self) -> bool:
        return ROLE_CONTROL_PLANE in self.roles

    @property
    def is_etcd(self) -> bool:
        return ROLE_ETCD in self.roles

    @property
    def is_worker(self) -> bool:
        return ROLE_WORKER in self.roles

    @property
    def worker_only(self) -> bool:
        """Nodes kubespray adds with scale.yml and removes with remove-node.yml."""
        return self.is_worker and not self.is_control_plane and not self.is_etcd


@dataclass(frozen=True)
class ProxyJump:
    host: str
    port: int
    user: str


@dataclass(frozen=True)
class ControlHost:
    host: str
    port: int
    user: str
    host_key: str = ""
    proxy_jump: ProxyJump | None = None


@dataclass(frozen=True)
class KubesprayRef:
    version: str
    source: str
    workdir: str


@dataclass(frozen=True)
class Proxy:
    http: str = ""
    https: str = ""
    no_proxy: str = ""


@dataclass(frozen=True)
class ImageRepos:
    kube: str = ""
    gcr: str = ""
    docker: str = ""
    quay: str = ""
    github: str = ""
    files: str = ""


@dataclass(frozen=True)
class Download:
    run_once: bool = False
    localhost: bool = False


@dataclass(frozen=True)
class ClusterSpec:
    mode: ClusterMode
    # existing mode
    kubeconfig: str = ""
    context: str = ""
    # kubespray mode
    kubespray: KubesprayRef | None = None
    control_host: ControlHost | None = None
    ansible_user: str = ""
    ansible_key_path: str = ""
    nodes: tuple[Node, ...] = ()
    kube_version: str = ""
    network_plugin: str = "calico"
    container_manager: str = "containerd"
    api_server_endpoint: str = ""
    proxy: Proxy = field(default_factory=Proxy)
    image_repos: ImageRepos = field(default_factory=ImageRepos)
    download: Download = field(default_factory=Download)
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    reset_on_destroy: bool = False

    @property
    def control_plane(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)


@dataclass(frozen=True)
class ChartSource:
    """Where an add-on's chart comes from; every field is overridable per stack."""

    repo: str
    chart: str
    version: str
    namespace: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Addon:
    enabled: bool
    chart: ChartSource


@dataclass(frozen=True)
class IngressAddon(Addon):
    class_name: str = "traefik"


@dataclass(frozen=True)
class StorageAddon(Addon):
    default_class: str = "local-path"


@dataclass(frozen=True)
class LoadBalancerAddon(Addon):
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddonsSpec:
    ingress: IngressAddon
    storage: StorageAddon
    metrics_server: Addon
    load_balancer: LoadBalancerAddon


@dataclass(frozen=True)
class HelmReleaseSpec:
    name: str
    namespace: str
    repo: str  # after helm.repoMirrors is applied
    chart: str
    version: str
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[str, ...] = ()
    atomic: bool = True
    cleanup_on_fail: bool = True
    timeout: int = 600
    max_history: int = 10
    upstream_repo: str = ""  # the repo as written in config, before mirroring


@dataclass(frozen=True)
class HelmSpec:
    repo_mirrors: Mapping[str, str] = field(default_factory=dict)
    releases: tuple[HelmReleaseSpec, ...] = ()


@dataclass(frozen=True)
class Resources:
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PeerSelector:
    """Pods allowed to reach a service: a namespace plus pod labels."""

    namespace: str
    pod_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MySQLStorage:
    size: str = "10Gi"
    storage_class: str = ""


@dataclass(frozen=True)
class MySQLSpec:
    enabled: bool = False
    name: str = "mysql"
    namespace: str = "data"
    replicas: int = 3
    image: str = "mysql:8.4"
    storage: MySQLStorage = field(default_factory=MySQLStorage)
    resources: Resources = field(default_factory=Resources)
    allow_from: tuple[PeerSelector, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    type: ServiceType = "ClusterIP"
    port: int = 80
    node_port: int | None = None


@dataclass(frozen=True)
class IngressSpec:
    host: str
    path: str = "/"
    class_name: str = ""  # empty: the ingress add-on's class
    tls_secret: str = ""


@dataclass(frozen=True)
class StrategySpec:
    max_surge: str = "25%"
    max_unavailable: str = "0"


@dataclass(frozen=True)
class ProbeSpec:
    path: str = ""  # HTTP GET path; empty = TCP check on the container port
    initial_delay_seconds: int = 0
    period_seconds: int = 10


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    cpu_utilization: int = 80


@dataclass(frozen=True)
class AppSpec:
    name: str
    namespace: str
    image: str
    replicas: int = 1
    port: int = 80
    service: ServiceSpec = field(default_factory=ServiceSpec)
    ingress: IngressSpec | None = None
    resources: Resources = field(default_factory=Resources)
    env: Mapping[str, str] = field(default_factory=dict)
    revision_history_limit: int = 10
    strategy: StrategySpec = field(default_factory=StrategySpec)
    readiness: ProbeSpec = field(default_factory=ProbeSpec)
    liveness: ProbeSpec = field(default_factory=ProbeSpec)
    hpa: HpaSpec | None = None
    run_as_user: int | None = None  # None: image's user, still runAsNonRoot unless root_allowed
    run_as_non_root: bool = True
    read_only_root_filesystem: bool = False


@dataclass(frozen=True)
class PlatformSpec:
    environment: Environment
    cluster: ClusterSpec
    schedulable_control_plane: bool
    addons: AddonsSpec
    helm: HelmSpec
    mysql: MySQLSpec
    apps: tuple[AppSpec, ...]
    secrets_set: frozenset[str] = frozenset()

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace the stack deploys into (add-ons excluded), sorted, once each."""
        names = {a.namespace for a in self.apps}
        names.update(r.namespace for r in self.helm.releases)
        if self.mysql.enabled:
            names.add(self.mysql.namespace)
        return tuple(sorted(names))

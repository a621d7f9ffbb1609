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
NodeState = Literal["present", "unreachable"]
NODE_STATES: tuple[NodeState, ...] = ("present", "unreachable")

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
    # unreachable: the machine is gone for good; the program removes it from the cluster
    # without touching it (remove-node.yml with reset_nodes=false allow_ungraceful_removal=true)
    state: NodeState = "present"
    host_key: str = ""  # the node's SSH host key, pinned for ansible (`ssh-ed25519 AAAA…`)

    @property
    def present(self) -> bool:
        return self.state == "present"

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
class ControlHostProxy:
    """The HTTP proxy the control host itself goes through (git fetch of kubespray, pip)."""

    http: str = ""
    https: str = ""
    no_proxy: str = ""

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for var, value in (("http_proxy", self.http), ("https_proxy", self.https), ("no_proxy", self.no_proxy)):
            if value:
                out[var] = value
                out[var.upper()] = value
        return out


@dataclass(frozen=True)
class PipSource:
    """Where the control host's pip installs kubespray's requirements from (a PyPI mirror)."""

    index_url: str = ""
    trusted_host: str = ""

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.index_url:
            out["PIP_INDEX_URL"] = self.index_url
        if self.trusted_host:
            out["PIP_TRUSTED_HOST"] = self.trusted_host
        return out


@dataclass(frozen=True)
class ControlHost:
    host: str
    port: int
    user: str
    host_key: str = ""
    proxy_jump: ProxyJump | None = None
    proxy: ControlHostProxy = field(default_factory=ControlHostProxy)
    pip: PipSource = field(default_factory=PipSource)


ApiAccessMode = Literal["localProxy", "kubeVip", "externalLB"]
API_ACCESS_MODES: tuple[ApiAccessMode, ...] = ("localProxy", "kubeVip", "externalLB")
KUBE_APISERVER_PORT = 6443


@dataclass(frozen=True)
class ApiAccess:
    """How clients and the nodes reach the control plane (kubespray's HA modes).

    localProxy: kubespray's default, a local proxy on every node to all API servers; the
                exported kubeconfig names the first control-plane node (or apiServerEndpoint)
    kubeVip:    a virtual IP held by one control-plane node at a time (kube-vip, ARP)
    externalLB: a load balancer the team runs in front of the API servers
    """

    mode: ApiAccessMode = "localProxy"
    address: str = ""  # kubeVip: the VIP; externalLB: the load balancer's IP
    port: int = KUBE_APISERVER_PORT  # externalLB: the port it listens on
    domain_name: str = ""  # externalLB: its DNS name (apiserver_loadbalancer_domain_name)
    subnet: str = ""  # kubeVip: the control-plane nodes' network the VIP belongs to
    interface: str = ""  # kubeVip: kube_vip_interface (empty: kube-vip's own choice)

    def group_vars(self) -> dict[str, object]:
        if self.mode == "localProxy":
            return {}
        out: dict[str, object] = {"loadbalancer_apiserver": {"address": self.address, "port": self.port}}
        if self.mode == "kubeVip":
            out.update(
                kube_vip_enabled=True,
                kube_vip_controlplane_enabled=True,
                kube_vip_arp_enabled=True,
                kube_vip_address=self.address,
                # kube-vip's ARP needs strict ARP when kube-proxy runs in IPVS mode (kubespray's docs)
                kube_proxy_strict_arp=True,
            )
            if self.interface:
                out["kube_vip_interface"] = self.interface
        elif self.domain_name:
            out["apiserver_loadbalancer_domain_name"] = self.domain_name
        return out

    def url(self) -> str:
        """The API server URL clients use, or "" for localProxy."""
        if self.mode == "localProxy":
            return ""
        host = self.domain_name or self.address
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}"


# How ansible checks the nodes' SSH host keys: pinned (every node's `hostKey`, nothing else
# accepted), acceptNew (recorded on first contact on the control host, a changed key fails the
# run; `hostKey` pins a node up front), off (no checking: dev only, an explicit choice)
HostKeyChecking = Literal["pinned", "acceptNew", "off"]
HOST_KEY_CHECKING: tuple[HostKeyChecking, ...] = ("pinned", "acceptNew", "off")


@dataclass(frozen=True)
class KubesprayRef:
    version: str
    source: str
    workdir: str
    # the commit `version` must resolve to after the fetch ("" = not checked): tags move,
    # and a mirror can serve anything under a tag name
    commit: str = ""
    # hash-pinned lock of the release's requirements.txt, installed with --require-hashes
    # ("" = the release's requirements.txt as it is)
    requirements_lock: str = ""


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
class HealthGate:
    """Kubespray mode: after the cluster is installed or changed, and before any add-on, wait
    until the API server is ready, every node of the stack is Ready and kube-system's
    workloads are available; fail naming what is not."""

    enabled: bool = True
    timeout: int = 900  # seconds


@dataclass(frozen=True)
class UpgradeControls:
    """How `upgrade-cluster.yml` rolls a new Kubernetes version through the nodes (kubespray's
    own variables, passed with -e: `serial` is a play keyword, which inventory vars cannot set)."""

    drain: bool = True  # drain_nodes
    drain_timeout: str = "360s"  # drain_timeout
    drain_grace_period: int = 300  # drain_grace_period (seconds; kubespray's default)
    serial: str = "20%"  # serial: nodes upgraded at once, a count or a percentage
    pause_seconds: int = 0  # upgrade_node_pause_seconds: wait after each node

    def extra_vars(self) -> dict[str, object]:
        return {
            "drain_nodes": self.drain,
            "drain_timeout": self.drain_timeout,
            "drain_grace_period": self.drain_grace_period,
            "serial": self.serial,
            "upgrade_node_pause_seconds": self.pause_seconds,
        }


@dataclass(frozen=True)
class NodeRemoval:
    """How `remove-node.yml` drains a node before it leaves (kubespray's remove-node variables)."""

    drain_timeout: str = "360s"  # drain_timeout
    drain_grace_period: int = 300  # drain_grace_period (seconds)
    drain_retries: int = 3  # drain_retries

    def extra_vars(self) -> dict[str, object]:
        return {
            "drain_timeout": self.drain_timeout,
            "drain_grace_period": self.drain_grace_period,
            "drain_retries": self.drain_retries,
        }


@dataclass(frozen=True)
class EtcdBackup:
    """etcd snapshots on the etcd members: before the cluster changes, and on a schedule."""

    before_changes: bool = True  # the program's playbook before cluster.yml / upgrade / member removal
    schedule: str = ""  # cron for a CronJob per etcd member; empty: none (default in prod: every 6 hours)
    retention: int = 10  # snapshots kept per kind and member; also kubespray's etcd_backup_retention_count
    directory: str = "/var/backups"  # etcd_backup_prefix; ours go under <directory>/k8s-platform-etcd/
    image: str = "busybox:1.37"  # the CronJob's shell (it runs the node's own etcdctl)


@dataclass(frozen=True)
class CertificateRenewal:
    """Kubespray's automatic renewal of the control plane's certificates (a systemd timer on
    each control-plane node); kubeadm's certificates otherwise expire after a year."""

    auto_renew: bool = False  # auto_renew_certificates
    schedule: str = "Mon *-*-1,2,3,4,5,6,7 03:00:00"  # auto_renew_certificates_systemd_calendar


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
    health_gate: HealthGate = field(default_factory=HealthGate)
    upgrade: UpgradeControls = field(default_factory=UpgradeControls)
    certificates: CertificateRenewal = field(default_factory=CertificateRenewal)
    removal: NodeRemoval = field(default_factory=NodeRemoval)
    host_key_checking: HostKeyChecking = "acceptNew"
    api_access: ApiAccess = field(default_factory=ApiAccess)
    etcd_backup: EtcdBackup = field(default_factory=EtcdBackup)

    @property
    def control_plane(self) -> tuple[Node, ...]:
        return tuple(n for n in self.members if n.is_control_plane)

    @property
    def members(self) -> tuple[Node, ...]:
        """The nodes the cluster is made of: every node not marked `unreachable`."""
        return tuple(n for n in self.nodes if n.present)


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
class MeshAddon(Addon):
    """The service mesh (Istio): `chart` is the control plane (istiod); `base_chart` (CRDs,
    cluster roles) comes from the same repo at the same version into the same namespace,
    because Istio supports base and istiod only in lockstep."""

    base_chart: str = "base"
    base_values: Mapping[str, Any] = field(default_factory=dict)
    cluster_domain: str = "cluster.local"  # Service FQDNs in VirtualService/DestinationRule hosts

    @property
    def base(self) -> ChartSource:
        c = self.chart
        return ChartSource(
            repo=c.repo, chart=self.base_chart, version=c.version, namespace=c.namespace, values=self.base_values
        )


@dataclass(frozen=True)
class AddonsSpec:
    ingress: IngressAddon
    storage: StorageAddon
    metrics_server: Addon
    load_balancer: LoadBalancerAddon
    mesh: MeshAddon | None = None  # None: no mesh (as `enabled: false`)

    @property
    def mesh_enabled(self) -> bool:
        return self.mesh is not None and self.mesh.enabled


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


# The account replicas replicate and clone with; no app user may take its name.
MYSQL_REPLICATION_USER = "repl"
MySQLAccess = Literal["readWrite", "readOnly"]
MYSQL_ACCESS: tuple[MySQLAccess, ...] = ("readWrite", "readOnly")


@dataclass(frozen=True)
class MySQLUserSpec:
    """An application's own MySQL account: privileges on its databases only, never global ones."""

    name: str
    databases: tuple[str, ...]
    password_secret: str  # the secret config key holding its password (apps read it through secretEnv)
    access: MySQLAccess = "readWrite"


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
    users: tuple[MySQLUserSpec, ...] = ()


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
class InitContainerSpec:
    """Runs to completion, in order, before the app's container starts (migrations, waits)."""

    name: str
    command: tuple[str, ...]
    image: str  # the app's image unless set


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    cpu_utilization: int = 80


DEFAULT_ROLLOUT_TIMEOUT = 600  # seconds: the kubernetes provider's own wait for a Deployment


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
    # mount the ServiceAccount token into the pods (only apps that call the Kubernetes API need it)
    service_account_token: bool = False
    mesh: bool = False  # sidecar-injected into addons.mesh
    resilience: ResilienceSpec | None = None  # needs mesh
    config: AppConfigSpec | None = None  # ConfigMap `<name>-config`
    secret_env: Mapping[str, str] = field(default_factory=dict)  # ENV_NAME -> secret config key
    volumes: tuple[AppVolumeSpec, ...] = ()  # one PVC `<name>-<volume>` each
    init_containers: tuple[InitContainerSpec, ...] = ()
    # how long `pulumi up` waits for a rollout (all replicas Ready) before it fails
    rollout_timeout: int = DEFAULT_ROLLOUT_TIMEOUT


ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
# Modes that attach a volume to one node (or one pod): only one replica can use the claim.
SINGLE_ATTACH_MODES = frozenset({"ReadWriteOnce", "ReadWriteOncePod"})
RECLAIM_POLICIES = ("Retain", "Delete")


@dataclass(frozen=True)
class RetrySpec:
    attempts: int  # retries after the first try (Istio/Envoy semantics)
    per_try_timeout: str = ""  # Go/Istio duration, e.g. "1s"
    retry_on: str = ""  # Envoy retry conditions, comma-separated; empty = Istio's default


@dataclass(frozen=True)
class CircuitBreakerSpec:
    """Istio outlier detection; unset fields take Istio's defaults."""

    consecutive_5xx_errors: int | None = None
    interval: str = ""
    base_ejection_time: str = ""
    max_ejection_percent: int | None = None


@dataclass(frozen=True)
class ConnectionPoolSpec:
    max_connections: int | None = None
    http1_max_pending_requests: int | None = None
    max_requests_per_connection: int | None = None


@dataclass(frozen=True)
class ResilienceSpec:
    """Timeouts, retries and circuit breaking enforced by the mesh sidecars of the callers."""

    timeout: str = ""
    retries: RetrySpec | None = None
    circuit_breaker: CircuitBreakerSpec | None = None
    connection_pool: ConnectionPoolSpec | None = None


@dataclass(frozen=True)
class AppConfigSpec:
    data: Mapping[str, str]
    mount_path: str = ""  # files under this directory, one per key; empty = not mounted
    env: bool = False  # keys that are environment variable names become env vars


@dataclass(frozen=True)
class ClaimSpec:
    size: str
    storage_class: str = ""  # empty: the cluster's default (dynamic) class
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    selector: Mapping[str, str] = field(default_factory=dict)  # labels of a static volume


@dataclass(frozen=True)
class AppVolumeSpec:
    name: str
    claim: ClaimSpec
    mount_path: str
    read_only: bool = True


@dataclass(frozen=True)
class NfsSource:
    server: str
    path: str


@dataclass(frozen=True)
class LocalSource:
    path: str
    node: str  # kubernetes.io/hostname of the node holding the disk


@dataclass(frozen=True)
class StaticVolumeSpec:
    """A statically provisioned PersistentVolume (exactly one of nfs/local)."""

    name: str
    capacity: str
    access_modes: tuple[str, ...]
    reclaim_policy: str = "Retain"
    storage_class: str = "manual"
    labels: Mapping[str, str] = field(default_factory=dict)
    nfs: NfsSource | None = None
    local: LocalSource | None = None


@dataclass(frozen=True)
class StorageSpec:
    volumes: tuple[StaticVolumeSpec, ...] = ()

    @property
    def static_classes(self) -> frozenset[str]:
        return frozenset(v.storage_class for v in self.volumes)


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
    storage: StorageSpec = field(default_factory=StorageSpec)
    # `<key.path>: <message>` lines that do not stop a deployment; `validate` and the
    # program print them
    warnings: tuple[str, ...] = ()

    @property
    def named_secret_keys(self) -> tuple[str, ...]:
        """Secret config keys the stack's settings name (apps' `secretEnv`, `mysql.users[].passwordSecret`),
        sorted, once each; the program reads exactly these besides the fixed `SECRET_KEYS`."""
        keys = {key for a in self.apps for key in a.secret_env.values()}
        if self.mysql.enabled:
            keys.update(u.password_secret for u in self.mysql.users)
        return tuple(sorted(keys))

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace the stack deploys into (add-ons excluded), sorted, once each."""
        names = {a.namespace for a in self.apps}
        names.update(r.namespace for r in self.helm.releases)
        if self.mysql.enabled:
            names.add(self.mysql.namespace)
        return tuple(sorted(names))

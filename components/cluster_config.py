"""The `cluster:` section of a stack: the machines kubespray turns into a cluster (and how it
reaches them), or an existing cluster's kubeconfig. Builds `ClusterSpec`, the `Kubespray`
component's args.

Every string here reaches Ansible (inventory, group_vars, the remote scripts), so each is
plain data: no template syntax, no control character (`DataText`); `extraVars` is the one
escape hatch. Whether the stack's secrets are set (the SSH key, a kubeconfig) is the stack's
rule, in `stacks/config.py`. Kept apart from `components/kubespray.py` so that reading a stack
never imports the Pulumi SDK.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from croniter import CroniterError, croniter
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema

from components import kubespray_release
from components.checks import (
    CREDENTIALS_IN_URL,
    host_check,
    image_problem,
    image_registry,
    ip_check,
    is_host,
    is_ip,
    label_check,
    parse_duration,
    project_file_problem,
    subdomain_check,
    url_check,
    url_has_credentials,
    url_has_password,
    url_problem,
)
from components.config_model import (
    AnyMap,
    ConfigModel,
    Findings,
    Flag,
    Required,
    SecretMarker,
    Text,
    build,
    checked,
    choice,
    did_you_mean,
    items,
    list_in,
    reject,
    whole,
)

# --------------------------------------------------------------------------- args: what the component receives

ClusterMode = Literal["kubespray", "existing"]


ROLE_CONTROL_PLANE = "control-plane"


ROLE_ETCD = "etcd"


ROLE_WORKER = "worker"


ROLES = (ROLE_CONTROL_PLANE, ROLE_ETCD, ROLE_WORKER)


NodeState = Literal["present", "unreachable"]


NODE_STATES: tuple[NodeState, ...] = ("present", "unreachable")


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


# what containerd may ask of a registry mirror unless the stack says otherwise
DEFAULT_MIRROR_CAPABILITIES = ("pull", "resolve")
# containerd's per-registry hosts directories (kubespray's containerd_cfg_dir + /certs.d)
CONTAINERD_CERTS_DIR = "/etc/containerd/certs.d"


@dataclass(frozen=True)
class RegistryMirror:
    """containerd on every node pulls `registry`'s images through `url` (names unchanged)."""

    registry: str  # the upstream registry, as image names spell it: docker.io, registry.k8s.io
    url: str  # the mirror: http(s)://host[:port][/path]; a path is where the mirror serves it
    capabilities: tuple[str, ...] = DEFAULT_MIRROR_CAPABILITIES
    skip_verify: bool = False
    ca: str = ""  # the mirror's CA certificate, a file relative to the project root

    @property
    def ca_node_path(self) -> str:
        """Where the program puts the CA on every node, and containerd's hosts.toml names it."""
        return f"{CONTAINERD_CERTS_DIR}/{self.registry}/k8s-platform-mirror-ca.crt" if self.ca else ""

    def containerd(self) -> dict[str, Any]:
        """The entry of kubespray's `containerd_registries_mirrors` (its hosts.toml template)."""
        scheme, _, rest = self.url.partition("://")
        netloc, _, path = rest.partition("/")
        path = path.strip("/")
        mirror: dict[str, Any] = {
            # a mirror under a path (a proxy-cache project) is told so: containerd then asks for
            # <path>/<name>/manifests/… below the URL's own /v2 instead of /v2/<name>/…
            "host": f"{scheme}://{netloc}/v2/{path}" if path else f"{scheme}://{netloc}",
            "capabilities": list(self.capabilities),
            "skip_verify": self.skip_verify,
            "override_path": bool(path),
        }
        if self.ca:
            mirror["ca"] = self.ca_node_path
        entry: dict[str, Any] = {"prefix": self.registry, "mirrors": [mirror]}
        if self.registry == "docker.io":
            # Docker Hub's registry API is not at docker.io: where containerd falls back to when
            # the mirror cannot serve a pull (kubespray's own default entry names it too)
            entry["server"] = "https://registry-1.docker.io"
        return entry



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
    registry_mirrors: tuple[RegistryMirror, ...] = ()
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


NETWORK_PLUGINS = ("calico", "cilium", "flannel", "kube-ovn", "kube-router", "macvlan", "custom_cni", "cni")
# network plugins kubespray installs that do not enforce NetworkPolicy objects
NO_NETWORK_POLICY_PLUGINS = ("flannel", "macvlan")
CONTAINER_MANAGERS = ("containerd", "crio", "docker")
MODES = ("kubespray", "existing")
DEFAULT_ETCD_BACKUP_SCHEDULE = "17 */6 * * *"

# group_vars the cluster component writes itself; extraVars may not override them.
MANAGED_GROUP_VARS = {
    "http_proxy": "cluster.proxy.http",
    "https_proxy": "cluster.proxy.https",
    "additional_no_proxy": "cluster.proxy.noProxy",
    "kubeconfig_localhost": "(always true: the program reads admin.conf back)",
    "kubectl_localhost": "(always true)",
    "kube_version": "cluster.kubeVersion",
    "kube_network_plugin": "cluster.networkPlugin",
    "container_manager": "cluster.containerManager",
    "kube_image_repo": "cluster.imageRepos.kube",
    "docker_image_repo": "cluster.imageRepos.docker",
    "quay_image_repo": "cluster.imageRepos.quay",
    "github_image_repo": "cluster.imageRepos.github",
    "files_repo": "cluster.imageRepos.files",
    "download_run_once": "cluster.download.runOnce",
    "download_localhost": "cluster.download.localhost",
    "auto_renew_certificates": "cluster.certificates.autoRenew",
    "auto_renew_certificates_systemd_calendar": "cluster.certificates.schedule",
    "etcd_backup_prefix": "cluster.etcdBackup.directory",
    "etcd_backup_retention_count": "cluster.etcdBackup.retention",
    "loadbalancer_apiserver": "cluster.apiAccess (mode kubeVip or externalLB, address, port)",
    "loadbalancer_apiserver_localhost": "cluster.apiAccess.mode (localProxy)",
    "apiserver_loadbalancer_domain_name": "cluster.apiAccess.domainName",
    "kube_vip_enabled": "cluster.apiAccess.mode: kubeVip",
    "kube_vip_controlplane_enabled": "cluster.apiAccess.mode: kubeVip",
    "kube_vip_address": "cluster.apiAccess.address",
    "kube_vip_interface": "cluster.apiAccess.interface",
}

# keys of one mode only
KUBESPRAY_KEYS = (
    "kubespray", "controlHost", "ansibleUser", "ansibleKeyPath", "kubeVersion", "networkPlugin",
    "containerManager", "apiServerEndpoint", "proxy", "imageRepos", "download", "extraVars", "resetOnDestroy",
    "healthGate", "upgrade", "certificates", "nodeRemoval", "hostKeyChecking", "apiAccess", "etcdBackup",
)  # fmt: skip
EXISTING_KEYS = ("kubeconfig", "context")

_KUBESPRAY_VERSION = re.compile(r"^v\d+\.\d+\.\d+(-(alpha|beta|rc)\.?\d+)?$|^[0-9a-f]{40}$")
_KUBE_VERSION = re.compile(r"^v?(1\.\d{1,2}\.\d{1,3})$")
_REGISTRY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9._-]+)*$")
_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_SERIAL = re.compile(r"[1-9][0-9]{0,3}|([1-9][0-9]?|100)%")
# A CronJob's schedule is what the Kubernetes API server's parser takes (robfig/cron's
# ParseStandard, plus its refusal of TZ= and CRON_TZ=): five fields or one of these macros.
# croniter reads the fields; this dialect keeps it to robfig's: no seconds, L, W, #, H, no range
# that wraps around, day of week 0-6 (croniter would take 7 for Sunday, the API server does not).
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_CRON_RANGE = re.compile(r"(?P<low>\*|\?|[0-9]+|[A-Za-z]+)(-(?P<high>[0-9]+|[A-Za-z]+))?(/(?P<step>[0-9]+))?")


# --------------------------------------------------------------------------- value checks


def data_problem(value: str) -> str | None:
    """Why a value that reaches Ansible is not plain data, or None.

    Kubespray templates every variable it reads, so `{{ lookup('pipe', …) }}` in a proxy
    URL would run on the control host; a newline would split a generated script line.
    The value itself is never echoed: it may be hostile, and messages end up in CI logs.
    """
    if any(m in value for m in _TEMPLATE_MARKERS):
        return (
            "contains Ansible template syntax ('{{', '{%' or '{#'), which kubespray would evaluate on the "
            "control host; write the plain value (cluster.extraVars is the one place for templates)"
        )
    if not value.isprintable():
        return "contains a control character (newline, tab, …); write it on one line"
    if value != value.strip():
        return "has leading or trailing whitespace; remove it"
    return None


def _plain_data(value: str) -> str:
    if message := data_problem(value):
        reject(message)
    return value


# a string that reaches Ansible: plain data, checked before anything that would echo it
DataText = Annotated[Text, AfterValidator(_plain_data)]


def data_choice(*values: str) -> Any:
    """One of `values`, and plain data (a template is named as one, not echoed)."""
    return Annotated[choice(*values), BeforeValidator(_data_first)]


def _data_first(value: Any) -> Any:
    if isinstance(value, str) and (message := data_problem(value)):
        reject(message)
    return value


def normalize_kube_version(value: str) -> str:
    """kubespray ≥ 2.28 takes kube_version without the leading 'v'."""
    return value[1:] if value.startswith("v") else value


def is_cidr(value: str) -> bool:
    if "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _kubespray_version_check(value: str) -> str | None:
    if _KUBESPRAY_VERSION.fullmatch(value):
        return None
    return f"{value!r} is not a kubespray release tag like 'v2.31.0' (or a full commit hash)"


def _kubespray_source_check(value: str) -> str | None:
    if url_has_credentials(value):
        return CREDENTIALS_IN_URL
    if value.startswith("/"):
        return None
    if "://" not in value:
        return f"{value!r} is not a git URL (https://, ssh://, git://, file://) or an absolute path on the control host"
    # git appends its own path and query (info/refs?service=…) to an http(s) URL
    problem = url_problem(value, ("https", "http", "ssh", "git", "file"), query=False)
    return f"{value!r} is not a git URL or an absolute path on the control host: it {problem}" if problem else None


def _commit_check(value: str) -> str | None:
    return None if re.fullmatch(r"[0-9a-f]{40}", value) else f"{value!r} is not a full 40-hex git commit"


def path_check(value: str) -> str | None:
    if "\n" in value or "'" in value or '"' in value or "$" in value or "`" in value:
        return f"{value!r} contains characters a path on the control host may not have (quotes, $, `, newline)"
    if not (value.startswith("/") or value.startswith("~/")):
        return f"{value!r} must be absolute or start with '~/'"
    return None


# The key types OpenSSH's client offers for a host (`ssh -G <host>`: HostKeyAlgorithms, less the
# certificates; rsa-sha2-256/512 are the signatures of an ssh-rsa key). ssh-dss is not among
# them since OpenSSH 7.0: a pinned DSA key could never match the server's.
HOST_KEY_TYPES = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)  # fmt: skip
# OpenSSH refuses shorter RSA keys (RequiredRSASize)
MIN_RSA_BITS = 1024


def host_key_check(value: str) -> str | None:
    """A public key as ssh-keyscan prints it after the host ('ssh-ed25519 AAAA…', a comment may
    follow), decoded by `cryptography` and of a type OpenSSH accepts for a host.

    No host-name field: the program writes each node's known_hosts line itself, with the
    node's address first, and hands the control host's key to the SSH client as a key.
    """
    fields = value.split()
    example = "'ssh-ed25519 AAAAC3…' (ssh-keyscan -t ed25519 <host>, without the host at the start)"
    if len(fields) >= 3 and fields[0] not in HOST_KEY_TYPES and fields[1] in HOST_KEY_TYPES:
        return (
            f"starts with a host field ({fields[0][:40]!r}), as a known_hosts line does: give the key alone, "
            f"from its type on, e.g. {example}"
        )
    if len(fields) < 2:
        return f"expected a public host key like {example}"
    kind, blob = fields[0], fields[1]
    if kind not in HOST_KEY_TYPES:
        shown = repr(kind[:40]) if kind.isprintable() else "its first field"
        why = " (DSA keys are refused by OpenSSH)" if kind == "ssh-dss" else ""
        return f"{shown} is not a host key type OpenSSH accepts{why}; use one of {', '.join(HOST_KEY_TYPES)}"
    try:
        key = load_ssh_public_key(f"{kind} {blob}".encode())
    except (ValueError, UnsupportedAlgorithm):
        return (
            f"is not a valid {kind} key: its base64 part does not decode to one (copied only in part, or from "
            f"another key type?); copy it whole, e.g. {example}"
        )
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"is a {key.key_size}-bit RSA key, which OpenSSH refuses (at least {MIN_RSA_BITS}); pin the host's ed25519 key"
    return None


def proxy_check(value: str) -> str | None:
    # The password check comes first so that a malformed URL with a password is not echoed.
    if url_has_password(value):
        return (
            "must not contain a password: stack files are not secret; use a proxy that needs none or an IP allow-list"
        )
    if problem := url_problem(value):
        return f"{value!r} {problem} (a proxy URL, like 'http://proxy.example.com:3128')"
    return None


def no_proxy_check(value: str) -> str | None:
    """A comma-separated list of hosts, IPs, CIDRs and domain suffixes (.example.com)."""
    bad = []
    for entry in value.split(","):
        item = entry.removeprefix("*.").removeprefix(".")
        host = item.rsplit(":", 1)[0] if item.count(":") == 1 else item
        if not (bool(item) and (is_host(host) or is_cidr(item))):
            bad.append(entry)
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3] if b.isprintable() and len(b) <= 64) or "an entry"
        return (
            f"{shown} is not a host, IP, CIDR or domain suffix; noProxy is a comma-separated list "
            "like '10.4.17.0/24,localhost,.svc,.cluster.local' without spaces"
        )
    return None


def _registry_check(value: str) -> str | None:
    if not _REGISTRY.fullmatch(value):
        return f"{value!r} is not a registry like 'registry.example.com:5000/mirror' (no scheme)"
    return None


def _endpoint_check(value: str) -> str | None:
    if "://" in value:
        problem = url_problem(value, ("https",))
        return f"{value!r} is not a valid https URL: {problem}" if problem else None
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return None if is_host(host) else f"{value!r} is not 'https://host:port', a hostname or an IP address"


def drain_timeout_check(value: str) -> str | None:
    # kubespray waits for the drain `drain_timeout | regex_replace('s$', '') | int + 120` seconds:
    # '15m' would become a 2-minute wait that kills a drain still in progress
    if re.fullmatch(r"[1-9][0-9]{0,5}s", value):
        return None
    sec = parse_duration(value)
    if sec is not None and sec >= 1:
        return (
            f"{value!r}: write it in whole seconds, like '{int(sec)}s' — kubespray derives how long it waits "
            "for the drain from the number before the 's'"
        )
    return f"{value!r} is not a drain timeout in seconds like '360s'"


def _kube_version_check(value: str) -> str | None:
    if _KUBE_VERSION.fullmatch(value):
        return None
    return f"{value!r} is not a Kubernetes version like '1.34.4' (empty = kubespray's default)"


# --------------------------------------------------------------------------- systemd OnCalendar
#
# No Python library parses systemd calendar expressions, so this is a port of the parts of
# systemd's own parser (src/shared/calendarspec.c: parse_weekdays, parse_date,
# parse_calendar_time, chain_valid) that a renewal schedule uses, and
# tests/conformance/test_systemd_calendar.py holds it to `systemd-analyze calendar`. Refused
# on purpose although systemd takes them: a time zone other than UTC (whether the nodes know
# it is their time zone database's say) and `@<epoch>` (one instant, not a schedule).

SYSTEMD_SHORTHANDS = (
    "minutely", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly", "annually", "anually",
    "semiannually", "semi-annually", "biannually", "bi-annually",
)  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_USEC = 1_000_000
_TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*")
_INT_MAX = 2**31 - 1


class _CalendarError(ValueError):
    pass


@dataclass
class _Component:
    start: int
    stop: int = -1
    repeat: int = 0


def _calendar_number(text: str, i: int, usec: bool) -> tuple[int, int]:
    m = re.compile(r"[0-9]+").match(text, i)
    if not m:
        raise _CalendarError("expected a number")
    value, i = int(m.group()), m.end()
    if usec:
        value *= _USEC
        if text[i : i + 1] == "." and text[i + 1 : i + 2] != ".":  # one '.' is a decimal point, '..' a range
            frac = re.compile(r"[0-9]*").match(text, i + 1)
            assert frac is not None
            value += int((frac.group() + "000000")[:6])
            i = frac.end()
    if value > _INT_MAX:
        raise _CalendarError("a number is too large")
    return value, i


def _calendar_chain(text: str, i: int, usec: bool) -> tuple[list[_Component] | None, int]:
    """One field: '*', or a comma list of N, N..M, N/R, N..M/R (None: any value)."""
    if text[i : i + 1] == "*":
        return ([_Component(0, repeat=_USEC)] if usec else None), i + 1
    chain = []
    while True:
        start, i = _calendar_number(text, i, usec)
        part = _Component(start)
        if text[i : i + 2] == "..":
            part.stop, i = _calendar_number(text, i + 2, usec)
            part.repeat = _USEC if usec else 1
        if text[i : i + 1] == "/":
            part.repeat, i = _calendar_number(text, i + 1, usec)
            if part.repeat == 0:
                raise _CalendarError("a repetition of 0")
        if text[i : i + 1] not in ("", " ", ",", "-", "~", ":"):
            raise _CalendarError("unexpected character")
        chain.append(part)
        if text[i : i + 1] != ",":
            return chain, i
        i += 1


def _calendar_weekdays(text: str) -> int:
    """Where the weekdays ('Mon..Fri,Sun ') end; 0 when the expression has none."""

    def after_spaces(i: int) -> int:
        return i + len(text[i:]) - len(text[i:].lstrip(" "))

    i, first, range_from = 0, True, -1
    while True:
        rest = text[i:].lower()
        day = next(((n, len(w)) for n, name in enumerate(_WEEKDAYS) for w in (name, name[:3]) if rest.startswith(w)), None)
        if day is None:
            if first:
                return 0
            raise _CalendarError("expected a weekday")
        number, skip = day
        i += skip
        if text[i : i + 1] not in ("", "-", ".", ",", " "):
            raise _CalendarError("not a weekday")
        if range_from > number:
            raise _CalendarError("a weekday range runs backwards")
        if text[i : i + 1] in ("", " "):
            return after_spaces(i)
        if text[i] in ".-":  # '..', or '-' as systemd still reads it
            if range_from >= 0 or (text[i] == "." and text[i + 1 : i + 2] != "."):
                raise _CalendarError("a weekday range needs '..' between two days")
            range_from, i = number, i + (2 if text[i] == "." else 1)
        else:
            range_from, i = -1, i + 1
        if text[i : i + 1] in ("", " "):  # a trailing comma, not an open range
            if range_from >= 0:
                raise _CalendarError("an open weekday range")
            return after_spaces(i)
        first = False


def _calendar_valid(chain: list[_Component] | None, low: int, high: int, end_of_month: bool = False) -> bool:
    """systemd's chain_valid(), after its normalize_chain(): a range ends on a whole repetition,
    and one that cannot repeat even once is a single value."""
    if end_of_month:
        high -= 3  # no more than 28 days from the end of the month
    for c in chain or ():
        if c.stop > c.start and c.repeat > 0:
            c.stop -= (c.stop - c.start) % c.repeat
        if (c.stop > c.start and c.repeat > 0 and c.start + c.repeat > c.stop) or c.start == c.stop:
            c.stop, c.repeat = -1, 0
        if not low <= c.start <= high or c.repeat > high - low:
            return False
        if c.stop >= 0:
            if not low <= c.stop <= high or c.start + c.repeat > c.stop:
                return False
        elif (c.start - c.repeat < low) if end_of_month else (c.start + c.repeat > high):
            return False
    return True


def _calendar_parse(text: str) -> None:
    """systemd's calendar_spec_from_string() for one expression without a time zone."""
    if text.lower() in SYSTEMD_SHORTHANDS:
        return
    i = _calendar_weekdays(text)
    year = month = day = None
    end_of_month = False
    # the date: [[year-]month-]day, '~' before the day counting from the month's end
    first, j = _calendar_chain(text, i, False) if text[i:] else (None, i)
    if text[i:] and text[j : j + 1] not in ("", ":"):
        if text[j] not in "-~":
            raise _CalendarError("expected '-' in the date")
        end_of_month = text[j] == "~"
        second, j = _calendar_chain(text, j + 1, False)
        if text[j : j + 1] in ("", " "):
            month, day = first, second
        else:
            if end_of_month or text[j] not in "-~":
                raise _CalendarError("expected '-' in the date")
            end_of_month = text[j] == "~"
            third, j = _calendar_chain(text, j + 1, False)
            if text[j : j + 1] not in ("", " "):
                raise _CalendarError("the date ends in an unexpected character")
            year, month, day = first, second, third
        i = j + len(text[j:]) - len(text[j:].lstrip(" "))
    hour = minute = second_ = None
    if text[i:]:  # the time: hour:minute[:second[.fraction]]
        hour, i = _calendar_chain(text, i, False)
        if text[i : i + 1] != ":":
            raise _CalendarError("expected ':' in the time")
        minute, i = _calendar_chain(text, i + 1, False)
        if text[i:]:
            if text[i] != ":":
                raise _CalendarError("expected ':' in the time")
            second_, i = _calendar_chain(text, i + 1, True)
            if text[i:]:
                raise _CalendarError("trailing characters")
    for c in year or ():  # 12 is 2012, 89 is 1989
        c.start += 2000 if 0 <= c.start < 70 else 1900 if 70 <= c.start < 100 else 0
        c.stop += 2000 if 0 <= c.stop < 70 else 1900 if 70 <= c.stop < 100 else 0
    ok = (
        _calendar_valid(year, 1970, 2199)
        and _calendar_valid(month, 1, 12)
        and _calendar_valid(day, 1, 31, end_of_month and day is not None)
        and _calendar_valid(hour, 0, 23)
        and _calendar_valid(minute, 0, 59)
        and _calendar_valid(second_, 0, 60 * _USEC - 1)
    )
    if not ok:
        raise _CalendarError("a value is out of range")


def calendar_check(value: str) -> str | None:
    """A systemd OnCalendar expression (kubespray's certificate-renewal timer), as systemd parses it."""
    example = "like 'Mon *-*-1..7 03:00:00' (the first Monday of the month) or 'monthly'"
    text = value[:-4] if value.lower().endswith(" utc") else value
    if text.startswith("@"):
        return f"{value!r} is one instant (@<seconds since 1970>), not a schedule; write one {example}"
    last = text.rsplit(" ", 1)[-1]
    weekday = any(last.lower().startswith(d[:3]) for d in _WEEKDAYS)
    if " " in text and _TIME_ZONE.fullmatch(last) and not weekday:
        return f"{value!r} ends in a time zone: only UTC is taken here (the nodes' time zone database decides the others)"
    try:
        _calendar_parse(text)
    except _CalendarError as err:
        return f"{value!r} is not a systemd OnCalendar expression ({err}); write one {example}"
    return None


def _serial_check(value: str) -> str | None:
    return None if _SERIAL.fullmatch(value) else f"{value!r} is not a node count like '1' or a percentage like '20%'"


def cron_check(value: str) -> str | None:
    """A CronJob schedule the Kubernetes API server accepts (see CRON_MACROS), read by croniter."""
    example = "like '17 */6 * * *' (minute hour day-of-month month day-of-week) or @daily"
    if "TZ" in value:
        return (
            f"{value!r} sets a time zone (TZ= or CRON_TZ=), which the Kubernetes API server refuses in a CronJob's "
            "schedule; remove it: the schedule runs in kube-controller-manager's time zone"
        )
    if value.startswith("@"):
        if value in CRON_MACROS:
            return None
        if value.startswith("@every"):
            return f"{value!r} is not a cron schedule (robfig/cron's own); write five fields, e.g. every 6 hours: '0 */6 * * *'"
        return f"{value!r} is not a cron macro; use one of {', '.join(CRON_MACROS)}, or five fields {example}"
    fields = value.split()
    if len(fields) != len(CRON_FIELDS):
        seconds = " (a seconds field is not supported)" if len(fields) == 6 else ""
        return f"{value!r} has {len(fields)} fields{seconds}; a cron schedule has five fields, {example}"
    for index, (text, (name, low_bound, high_bound)) in enumerate(zip(fields, CRON_FIELDS, strict=True)):
        names = croniter.ALPHACONV[index]  # jan-dec, sun-sat: the names robfig/cron takes too
        for item in text.split(","):
            m = _CRON_RANGE.fullmatch(item)
            low, high = (m.group("low"), m.group("high")) if m else ("", None)
            special = m is not None and any(v is not None and v.upper() in ("L", "W", "H") for v in (low, high))
            wildcard = low in ("*", "?")
            if not m or special or (wildcard and high is not None) or (low == "?" and name not in ("day of month", "day of week")):
                return (
                    f"{value!r}: the {name} field {text!r} is not a list of values, ranges (a-b) and steps (/n) "
                    f"in {low_bound}-{high_bound} (L, W, # and H are not the API server's cron), {example}"
                )
            if m.group("step") is not None and int(m.group("step")) == 0:
                return f"{value!r}: the {name} field {text!r} has a step of 0; a step is 1 or more"
            if wildcard:
                continue
            bounds = [names.get(v.lower()) if v.isalpha() else int(v) for v in (low, high) if v is not None]
            if not all(isinstance(b, int) for b in bounds):
                return f"{value!r}: the {name} field {text!r} names no {name} (only month and day of week take names: jan-dec, sun-sat)"
            if any(not low_bound <= b <= high_bound for b in bounds):  # type: ignore[operator]
                return f"{value!r}: the {name} field {text!r} is out of range {low_bound}-{high_bound}"
            if len(bounds) == 2 and bounds[0] > bounds[1]:  # type: ignore[operator]
                return f"{value!r}: the {name} range {item!r} runs backwards; the API server's cron takes no wrap-around"
    try:
        croniter.expand(value, strict=True)
    except CroniterError as err:
        never = "never" in str(err) or "can never occur" in str(err)
        why = "names a day that never occurs in its months" if never else "is not a cron schedule"
        return f"{value!r} {why}, {example}"
    return None


def _backup_directory_check(value: str) -> str | None:
    if re.fullmatch(r"/[A-Za-z0-9._/-]*", value) and "/.." not in value and value != "/":
        return None
    return f"{value!r} is not an absolute directory on the etcd members (letters, digits, . _ - /)"


def _subnet_check(value: str) -> str | None:
    return None if is_cidr(value) else f"{value!r} is not a network like '10.4.17.0/24'"


def _interface_check(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", value) else f"{value!r} is not a network interface name"


def _trusted_host_check(value: str) -> str | None:
    if is_host(value.rsplit(":", 1)[0] if value.count(":") == 1 else value):
        return None
    return f"{value!r} is not a host or host:port (pip's --trusted-host)"


def _roles_in(value: Any) -> Any:
    if isinstance(value, str):
        reject(f"must be a list, e.g. [{value}] (one or more of {', '.join(ROLES)})")
    return list_in(value)


def contains_secret(value: Any) -> bool:
    if isinstance(value, SecretMarker):
        return True
    if isinstance(value, Mapping):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


User = Annotated[DataText, checked(label_check("user name", 32))]
Port = whole(1, 65535)


# --------------------------------------------------------------------------- the parts


class NodeConfig(ConfigModel):
    """One machine of the cluster."""

    name: Annotated[DataText, Required, checked(subdomain_check("node name"))] = Field(
        description="node name (the Kubernetes Node's name)"
    )
    address: Annotated[DataText, checked(host_check)] = Field(
        "", description="how the control host reaches it over SSH (required in kubespray mode)"
    )
    ip: Annotated[DataText, checked(ip_check)] = Field(
        "", description="the address Kubernetes binds to; default: address when it is an IP"
    )
    roles: Annotated[
        tuple[Text, ...],
        BeforeValidator(_roles_in),
        WithJsonSchema({"type": "array", "items": {"enum": list(ROLES)}, "minItems": 1, "uniqueItems": True}),
    ] | None = Field(
        None, description="control-plane, etcd and/or worker"
    )
    state: data_choice(*NODE_STATES) = Field(  # type: ignore[valid-type]
        "present", description="unreachable: gone for good, removed from the cluster without being touched"
    )
    host_key: Annotated[DataText, checked(host_key_check)] = Field(
        "", description="its SSH host key, pinned for ansible ('ssh-ed25519 AAAA…')"
    )

    def checks(self, found: Findings) -> None:
        if not self.roles:
            if not found.problems_under("roles"):
                found.error("roles", f"is required: one or more of {', '.join(ROLES)}")
            return
        for j, role in enumerate(self.roles):
            if role not in ROLES:
                found.error(
                    f"roles[{j}]", f"unknown role {role!r}; use {', '.join(ROLES)}{did_you_mean(role, ROLES)}"
                )
            elif role in self.roles[:j]:
                found.error(f"roles[{j}]", f"{role!r} is listed twice")

    def args(self) -> Node:
        ip = self.ip or (self.address if self.address and is_ip(self.address) else "")
        return build(Node, self, ip=ip, roles=tuple(dict.fromkeys(r for r in self.roles or () if r in ROLES)))


class KubesprayRefConfig(ConfigModel):
    """Which kubespray, from where, into which directory of the control host."""

    version: Annotated[DataText, Required, checked(_kubespray_version_check)] = Field(
        description="release tag (v2.31.0) or a full commit"
    )
    source: Annotated[DataText, checked(_kubespray_source_check)] = Field(
        "https://github.com/kubernetes-sigs/kubespray.git", description="git URL or a mirror"
    )
    workdir: Annotated[DataText, checked(path_check)] = Field("~/kubespray", description="checkout on the control host")
    commit: Annotated[DataText, checked(_commit_check)] = Field(
        "", description="the commit the version must resolve to; default: the known release's"
    )

    def args(self) -> KubesprayRef:
        ref = KubesprayRef(version=self.version, source=self.source, workdir=self.workdir, commit=self.commit)
        known = kubespray_release.release(self.version)
        if not self.commit and re.fullmatch(r"[0-9a-f]{40}", self.version):
            return dataclasses.replace(ref, commit=self.version)
        if known is not None:
            # the commit upstream's tag points at (read from the release's own tree) unless set,
            # and the hash-pinned lock of its requirements
            return dataclasses.replace(
                ref, commit=self.commit or known.commit, requirements_lock=known.requirements_lock
            )
        return ref


class ProxyJumpConfig(ConfigModel):
    """A bastion between you and the control host."""

    host: Annotated[DataText, checked(host_check)] = ""
    port: Port = 22  # type: ignore[valid-type]
    user: User = ""

    def checks(self, found: Findings) -> None:
        if self.host and not self.user:
            found.error("user", "is required when proxyJump.host is set")


class ProxyConfig(ConfigModel):
    """An HTTP proxy (no password: stack files are not secret)."""

    http: Annotated[DataText, checked(proxy_check)] = ""
    https: Annotated[DataText, checked(proxy_check)] = ""
    no_proxy: Annotated[DataText, checked(no_proxy_check)] = ""


class PipConfig(ConfigModel):
    """The package index the control host installs kubespray's requirements from."""

    index_url: Annotated[DataText, checked(url_check())] = Field("", description="a PyPI mirror")
    trusted_host: Annotated[DataText, checked(_trusted_host_check)] = Field(
        "", description="pip's --trusted-host, for a plain-HTTP index"
    )

    def checks(self, found: Findings) -> None:
        if self.index_url.startswith("http://") and not self.trusted_host:
            found.error(
                "trustedHost",
                "is required for a plain-HTTP indexUrl: pip refuses an http:// index unless its host is trusted "
                "(set the index's host here, or serve the mirror over https)",
            )
        if self.trusted_host and not self.index_url:
            found.error("trustedHost", "has no effect without indexUrl; set the mirror's indexUrl or remove it")


class ControlHostConfig(ConfigModel):
    """The machine that runs ansible (not part of the cluster)."""

    host: Annotated[DataText, Required, checked(host_check)] = Field(description="IP or hostname")
    port: Port = Field(22, description="SSH port")  # type: ignore[valid-type]
    user: Annotated[User, Required] = Field(description="SSH user")
    host_key: Annotated[DataText, checked(host_key_check)] = Field(
        "", description="its SSH host key ('ssh-ed25519 AAAA…'); required in prod"
    )
    proxy_jump: ProxyJumpConfig = Field(default_factory=ProxyJumpConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    pip: PipConfig = Field(default_factory=PipConfig)

    def checks(self, found: Findings) -> None:
        if found.context.get("environment") == "prod" and not self.host_key:
            found.error("hostKey", "prod requires the control host's SSH host key pinned (e.g. 'ssh-ed25519 AAAA…')")

    def args(self) -> ControlHost:
        jump = self.proxy_jump
        return build(
            ControlHost,
            self,
            proxy_jump=build(ProxyJump, jump) if jump.host else None,
            proxy=build(ControlHostProxy, self.proxy),
            pip=build(PipSource, self.pip),
        )


Registry = Annotated[DataText, checked(_registry_check)]


class ImageReposConfig(ConfigModel):
    """Mirrors of the registries kubespray pulls from (no scheme), and of its file downloads."""

    kube: Registry = Field("", description="mirror of registry.k8s.io")
    gcr: Registry = Field("", description="unused by kubespray v2.31 (warned about)")
    docker: Registry = Field("", description="mirror of docker.io")
    quay: Registry = Field("", description="mirror of quay.io")
    github: Registry = Field("", description="mirror of ghcr.io")
    files: Annotated[DataText, checked(url_check())] = Field("", description="mirror of kubespray's file downloads")

    def checks(self, found: Findings) -> None:
        if self.gcr:
            found.warn(
                "gcr",
                "feeds nothing: kubespray v2.31 pulls no image from gcr.io (no role reads gcr_image_repo); "
                "remove it — mirrors go in kube (registry.k8s.io), docker, quay and github",
            )


MIRROR_CAPABILITIES = ("pull", "resolve", "push")


def _mirror_registry_check(value: str) -> str | None:
    shown = f"{value!r}" if value.isprintable() and len(value) <= 80 else "the key"
    if value in ("index.docker.io", "registry-1.docker.io"):
        return f"{shown}: image names spell Docker Hub docker.io (containerd looks up certs.d/docker.io): use docker.io"
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    port = value.rsplit(":", 1)[1] if value.count(":") == 1 else "1"
    # what containerd takes for a registry in an image name (components.checks.image_registry)
    named_as_registry = image_registry(f"{value}/x")[0] == value
    if value == value.lower() and is_host(host) and port.isdigit() and 0 < int(port) < 65536 and named_as_registry:
        return None
    return (
        f"{shown} is not a registry as image names spell it (docker.io, registry.k8s.io, quay.io, ghcr.io, "
        "host:port; lowercase, with a dot or a port: a bare name is a Docker Hub user), no scheme, no path"
    )


def _ca_file_problem(data: bytes) -> str | None:
    """Why a file is not a PEM CA certificate the program may copy to every node, or None."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return "is not a PEM file (binary: DER?); convert it: openssl x509 -inform der -in FILE -out FILE.pem"
    if "PRIVATE KEY" in text:
        return "holds a private key: give the CA certificate alone (it goes into the state and onto every node)"
    if "-----BEGIN CERTIFICATE-----" not in text:
        return "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    return None


class RegistryMirrorConfig(ConfigModel):
    """Where containerd on every node pulls one upstream registry's images from."""

    url: Annotated[DataText, Required, checked(url_check())] = Field(
        description="the mirror, https://host[:port][/path] (a path: where the mirror serves this registry)"
    )
    ca: DataText = Field(
        "", description="the mirror's CA certificate (PEM), a file relative to the project root"
    )
    skip_verify: Flag = Field(False, description="accept any TLS certificate from the mirror (dev only)")
    capabilities: Annotated[
        tuple[Text, ...],
        BeforeValidator(list_in),
        WithJsonSchema({"type": "array", "items": {"enum": list(MIRROR_CAPABILITIES)}, "minItems": 1, "uniqueItems": True}),
    ] = Field(DEFAULT_MIRROR_CAPABILITIES, description="what containerd may ask of the mirror: pull, resolve (tags), push")

    def checks(self, found: Findings) -> None:
        env = found.context.get("environment", "dev")
        path = self.url.split("://", 1)[-1].partition("/")[2]
        if "?" in self.url:
            found.error("url", "must not have a query: containerd appends the registry API's own path to it")
        elif path.split("/", 1)[0] == "v2":
            found.error("url", "names the registry API's /v2: give the mirror's base URL (and path), the program adds /v2")
        elif self.url.startswith("http://"):
            why = "is plain http://: whoever answers on the mirror's address can serve any image to every node"
            if env == "dev":
                found.warn("url", f"{why}; dev allows it, staging and prod need https://")
            else:
                found.error("url", f"{why}; {env} needs https:// (and ca, when the nodes do not trust its issuer)")
        for j, capability in enumerate(self.capabilities):
            if capability not in MIRROR_CAPABILITIES:
                found.error(f"capabilities[{j}]", f"{capability!r} is not one of {', '.join(MIRROR_CAPABILITIES)}")
        if len(set(self.capabilities)) != len(self.capabilities):
            found.error("capabilities", "lists a capability twice")
        if "pull" not in self.capabilities:
            found.error("capabilities", "needs pull: containerd fetches nothing through a mirror it may not pull from (add resolve for tags)")
        if self.skip_verify and env != "dev":
            found.error(
                "skipVerify",
                f"is for dev only: in {env}, whoever answers on the mirror's address could serve any image to "
                "every node; give the mirror's CA certificate in ca instead",
            )
        if self.skip_verify and self.url.startswith("http://"):
            found.warn("skipVerify", "does nothing for an http:// mirror (no TLS to verify)")
        root = found.context.get("project_root")
        if self.ca:
            if problem := project_file_problem(self.ca, root, "the CA certificate"):
                found.error("ca", problem)
            elif root is not None and (problem := _ca_file_problem((root / self.ca).read_bytes())):
                found.error("ca", f"{self.ca!r} {problem}")
            if self.url.startswith("http://"):
                found.warn("ca", "is not used for an http:// mirror (no TLS)")


class DownloadConfig(ConfigModel):
    run_once: Flag = Field(False, description="download once and share (download_run_once)")
    localhost: Flag = Field(False, description="download on the control host (needs runOnce)")

    def checks(self, found: Findings) -> None:
        if self.localhost and not self.run_once:
            found.error("localhost", "needs download.runOnce: true (kubespray downloads once, on the control host)")


class HealthGateConfig(ConfigModel):
    """Wait until the cluster is up before add-ons and apps are deployed onto it."""

    enabled: Flag = True
    timeout: whole(30, 7200) = Field(900, description="seconds")  # type: ignore[valid-type]

    def checks(self, found: Findings) -> None:
        if not self.enabled and found.context.get("environment") == "prod":
            found.error(
                "enabled", "must be true in prod: add-ons and apps would be deployed onto a cluster not known to be up"
            )


class UpgradeConfig(ConfigModel):
    """How upgrade-cluster.yml rolls a new Kubernetes version through the nodes."""

    drain: Flag = Field(UpgradeControls.drain, description="drain each node first (must be true in prod)")
    drain_timeout: Annotated[DataText, checked(drain_timeout_check)] = Field(
        UpgradeControls.drain_timeout, description="whole seconds, like '360s'"
    )
    drain_grace_period: whole(-1, 86400) = Field(UpgradeControls.drain_grace_period, description="seconds")  # type: ignore[valid-type]
    serial: Annotated[DataText, checked(_serial_check)] = Field(
        UpgradeControls.serial, description="nodes at once: a count or a percentage"
    )
    pause_seconds: whole(0, 86400) = Field(UpgradeControls.pause_seconds, description="wait after each node")  # type: ignore[valid-type]

    def checks(self, found: Findings) -> None:
        if found.context.get("environment") == "prod" and not self.drain:
            found.error(
                "drain", "must be true in prod: upgrading a node without draining it kills its pods mid-request"
            )

    def args(self) -> UpgradeControls:
        return build(UpgradeControls, self)


class CertificatesConfig(ConfigModel):
    """Kubespray's automatic renewal of the control plane's certificates."""

    auto_renew: Flag | None = Field(None, description="default: on in staging and prod")
    schedule: Annotated[DataText, checked(calendar_check)] = Field(
        CertificateRenewal.schedule, description="systemd OnCalendar"
    )

    def auto(self, env: str) -> bool:
        # on by default where a cluster outlives a year: staging and prod
        return env != "dev" if self.auto_renew is None else self.auto_renew

    def checks(self, found: Findings) -> None:
        if found.context.get("environment") == "prod" and not self.auto("prod"):
            found.warn("autoRenew", "is off in prod: renew the control plane's certificates yourself before they expire "
                       "(kubeadm's last a year; `kubeadm certs check-expiration` on a control-plane node)")  # fmt: skip


class NodeRemovalConfig(ConfigModel):
    """How remove-node.yml drains a node that leaves the cluster."""

    drain_timeout: Annotated[DataText, checked(drain_timeout_check)] = NodeRemoval.drain_timeout
    drain_grace_period: whole(-1, 86400) = NodeRemoval.drain_grace_period  # type: ignore[valid-type]
    drain_retries: whole(1, 100) = NodeRemoval.drain_retries  # type: ignore[valid-type]

    def args(self) -> NodeRemoval:
        return build(NodeRemoval, self)


class EtcdBackupConfig(ConfigModel):
    """etcd snapshots on the etcd members: before the cluster changes, and on a schedule."""

    before_changes: Flag = Field(EtcdBackup.before_changes, description="a snapshot before every change")
    schedule: Annotated[DataText, checked(cron_check)] | None = Field(
        None,
        description=f"cron of scheduled snapshots; default: '{DEFAULT_ETCD_BACKUP_SCHEDULE}' in prod, none elsewhere",
    )
    retention: whole(1, 1000) = Field(EtcdBackup.retention, description="snapshots kept per kind and member")  # type: ignore[valid-type]
    directory: Annotated[DataText, checked(_backup_directory_check)] = Field(
        EtcdBackup.directory, description="where snapshots go on the members"
    )
    image: Annotated[DataText, checked(image_problem)] = Field(EtcdBackup.image, description="the CronJob's shell")

    def cron(self, env: str) -> str:
        if self.schedule is None:
            return DEFAULT_ETCD_BACKUP_SCHEDULE if env == "prod" else ""
        return self.schedule

    def checks(self, found: Findings) -> None:
        if found.context.get("environment") != "prod":
            return
        if not self.before_changes:
            found.warn("beforeChanges", "is off in prod: a failed upgrade or cluster.yml run leaves no etcd snapshot "
                       "taken just before it (docs/operations.md, 'etcd backups')")  # fmt: skip
        if self.schedule == "":
            found.warn(
                "schedule", "is empty in prod: no scheduled etcd snapshots; restore would go back to the last change"
            )

    def args(self, env: str) -> EtcdBackup:
        return build(EtcdBackup, self, schedule=self.cron(env))


class ApiAccessConfig(ConfigModel):
    """How clients and the nodes reach the control plane."""

    mode: data_choice(*API_ACCESS_MODES) = Field(  # type: ignore[valid-type]
        "localProxy", description="localProxy (kubespray's default), kubeVip (a VIP) or externalLB"
    )
    address: Annotated[DataText, checked(ip_check)] = Field("", description="kubeVip: the VIP; externalLB: its IP")
    port: Port = Field(KUBE_APISERVER_PORT, description="externalLB: its port")  # type: ignore[valid-type]
    domain_name: Annotated[DataText, checked(host_check)] = Field("", description="externalLB: its DNS name")
    subnet: Annotated[DataText, checked(_subnet_check)] = Field(
        "", description="kubeVip: the control-plane nodes' network"
    )
    interface: Annotated[DataText, checked(_interface_check)] = Field("", description="kubeVip: the interface")

    def checks(self, found: Findings) -> None:
        allowed = {"localProxy": (), "kubeVip": ("address", "subnet", "interface"),
                   "externalLB": ("address", "port", "domainName")}[self.mode]  # fmt: skip
        for name in sorted(self.model_fields_set, key=list(type(self).model_fields).index):
            key = type(self).model_fields[name].alias or name
            # written out empty (or the default port) is not set: a full reference may list them all
            if key != "mode" and key not in allowed and getattr(self, name) not in ("", KUBE_APISERVER_PORT):
                found.error(
                    key,
                    f"does not apply to mode {self.mode}" + (f" (it takes {', '.join(allowed)})" if allowed else ""),
                )
        if self.mode == "localProxy":
            return
        if not self.address and not found.problems_under("address"):
            what = "the virtual IP kube-vip holds" if self.mode == "kubeVip" else "the load balancer's IP"
            found.error("address", f"is required for mode {self.mode}: {what}")
        if self.mode == "kubeVip" and not self.subnet and not found.problems_under("subnet"):
            found.error("subnet", "is required for mode kubeVip: the control-plane nodes' network (e.g. 10.4.17.0/24), "
                        "so the VIP can be checked against it")  # fmt: skip

    def check_nodes(self, nodes: tuple[Node, ...], found: Findings) -> None:
        """The VIP against the machines: no node's own address, inside the control plane's network."""
        if self.mode != "kubeVip":
            return
        node_ips = {ip: n.name for n in nodes for ip in {n.address, n.ip} if ip and is_ip(ip)}
        if self.address and self.address in node_ips:
            found.error(
                "address", f"is {node_ips[self.address]}'s own address: the VIP must be an address no machine uses"
            )
        if not (self.subnet and is_cidr(self.subnet)):
            return
        net = ipaddress.ip_network(self.subnet, strict=False)
        if self.address and is_ip(self.address):
            ip = ipaddress.ip_address(self.address)
            if ip not in net:
                found.error("address", f"{self.address} is not in subnet {self.subnet}: kube-vip announces the VIP "
                            "by ARP, which only reaches the control-plane nodes' own network")  # fmt: skip
            elif net.num_addresses > 2 and ip in (net.network_address, net.broadcast_address):
                found.error("address", f"{self.address} is the network or broadcast address of {self.subnet}")
        for node in nodes:
            if (node.is_control_plane and node.present and node.ip and is_ip(node.ip)
                    and ipaddress.ip_address(node.ip) not in net):  # fmt: skip
                found.error("subnet", f"does not contain control-plane node {node.name}'s ip {node.ip}: every "
                            "control-plane node must be able to hold the VIP")  # fmt: skip

    def args(self) -> ApiAccess:
        return build(ApiAccess, self)


# --------------------------------------------------------------------------- the cluster


def wrong_mode_keys(raw: Any) -> tuple[Any, list[tuple[str, str]]]:
    """`raw` without the keys of the other mode, and a problem for each: (key, message)."""
    if not isinstance(raw, Mapping):
        return raw, []
    mode = raw.get("mode") if raw.get("mode") in MODES else "kubespray"
    wrong = EXISTING_KEYS if mode == "kubespray" else KUBESPRAY_KEYS
    other = "existing" if mode == "kubespray" else "kubespray"
    found = [(key, f"only applies to mode: {other}; remove it (mode is {mode})") for key in wrong if key in raw]
    return {k: v for k, v in raw.items() if k not in wrong}, found


def _mode_keys_schema(schema: dict[str, Any]) -> None:
    # each mode's keys only with that mode, so that an editor flags the others too
    schema["if"] = {"properties": {"mode": {"const": "existing"}}, "required": ["mode"]}
    schema["then"] = {"not": {"anyOf": [{"required": [key]} for key in KUBESPRAY_KEYS]}}
    schema["else"] = {"not": {"anyOf": [{"required": [key]} for key in EXISTING_KEYS]}}


class ClusterConfig(ConfigModel):
    """The cluster: kubespray on your machines, or an existing one (a kubeconfig)."""

    model_config = ConfigDict(json_schema_extra=_mode_keys_schema)

    mode: data_choice(*MODES) = Field("kubespray", description="kubespray (your machines) or existing")  # type: ignore[valid-type]
    nodes: items(NodeConfig) = Field((), description="the machines (kubespray mode) or the nodes to untaint")  # type: ignore[valid-type]
    # existing mode
    kubeconfig: DataText = Field("", description="existing mode: a kubeconfig path (or the secret kubeconfig)")
    context: DataText = Field("", description="existing mode: the kubeconfig's context")
    # kubespray mode
    kubespray: KubesprayRefConfig | None = None
    control_host: ControlHostConfig | None = None
    ansible_user: User = Field("", description="the user ansible logs in as on the nodes")
    ansible_key_path: Annotated[DataText, checked(path_check)] = Field(
        "", description="its key on the control host; default: the uploaded sshPrivateKey"
    )
    kube_version: Annotated[DataText, checked(_kube_version_check)] = Field(
        "", description="Kubernetes version; empty: kubespray's default"
    )
    network_plugin: data_choice(*NETWORK_PLUGINS) = Field("calico", description="the CNI plugin")  # type: ignore[valid-type]
    container_manager: data_choice(*CONTAINER_MANAGERS) = Field("containerd", description="the container runtime")  # type: ignore[valid-type]
    api_server_endpoint: Annotated[DataText, checked(_endpoint_check)] = Field(
        "", description="the API server the exported kubeconfig names (localProxy only)"
    )
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    image_repos: ImageReposConfig = Field(default_factory=ImageReposConfig)
    registry_mirrors: dict[Annotated[Text, checked(_mirror_registry_check)], RegistryMirrorConfig] = Field(default_factory=dict, description="upstream registry → its mirror, configured in containerd on every node")
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    extra_vars: AnyMap = Field(default_factory=dict, description="kubespray group_vars, as written (templates allowed)")
    reset_on_destroy: Flag = Field(False, description="run reset.yml on destroy (never in prod)")
    health_gate: HealthGateConfig = Field(default_factory=HealthGateConfig)
    upgrade: UpgradeConfig = Field(default_factory=UpgradeConfig)
    certificates: CertificatesConfig = Field(default_factory=CertificatesConfig)
    node_removal: NodeRemovalConfig = Field(default_factory=NodeRemovalConfig)
    host_key_checking: data_choice(*HOST_KEY_CHECKING) = Field(  # type: ignore[valid-type]
        "acceptNew", description="pinned, acceptNew, or off (dev only)"
    )
    api_access: ApiAccessConfig = Field(default_factory=ApiAccessConfig)
    etcd_backup: EtcdBackupConfig = Field(default_factory=EtcdBackupConfig)

    def checks(self, found: Findings) -> None:
        env = found.context.get("environment", "dev")
        nodes = tuple(n.args() for n in self.nodes)
        self._check_nodes(nodes, env, found)
        self._check_registry_mirrors(found)
        if self.mode != "kubespray":
            return
        if self.kubespray is None and not found.problems_under("kubespray"):
            found.error("kubespray.version", "is required")
        if self.control_host is None and not found.problems_under("controlHost"):
            found.error("controlHost.host", "is required")
            found.error("controlHost.user", "is required")
        if not self.ansible_user and not found.problems_under("ansibleUser"):
            found.error("ansibleUser", "is required")
        self._check_extra_vars(found)
        if self.host_key_checking == "off" and env != "dev":
            found.error(
                "hostKeyChecking",
                f"off is for dev only: in {env}, whoever answers on a node's address would get ansible's root session "
                "and the cluster's secrets; use acceptNew (keys recorded on first contact) or pinned (nodes[].hostKey)",
            )
        if self.host_key_checking == "pinned":
            for i, node in enumerate(nodes):
                if node.present and not node.host_key:
                    found.error(
                        f"nodes[{i}].hostKey",
                        f"is required with hostKeyChecking: pinned: {node.name}'s public host key, e.g. from "
                        f"`ssh-keyscan -t ed25519 {node.address or node.name}` checked out of band",
                    )
        access = self.api_access
        access.check_nodes(nodes, found.under("apiAccess"))
        if access.mode == "kubeVip" and self.extra_vars.get("kube_proxy_strict_arp") is False:
            found.error("extraVars.kube_proxy_strict_arp", "must stay true with apiAccess.mode kubeVip: kube-vip answers "
                        "ARP for the VIP, and kube-proxy in IPVS mode must not (kubespray's kube-vip docs)")  # fmt: skip
        if self.api_server_endpoint and access.mode != "localProxy":
            found.error(
                "apiServerEndpoint",
                f"the kubeconfig follows apiAccess ({access.mode}: {access.args().url()}); remove apiServerEndpoint",
            )
        if env == "prod" and self.reset_on_destroy:
            found.error("resetOnDestroy", "must be false in prod: reset.yml wipes every node")
        if self.etcd_backup.cron(env):
            outside = [n.name for n in nodes if n.is_etcd and n.present and not (n.is_control_plane or n.is_worker)]
            if outside:
                found.error(
                    "etcdBackup.schedule",
                    f"runs as a CronJob on every etcd member, but {', '.join(outside)} is not a Kubernetes node (etcd "
                    'role only): give it the control-plane role too, or set schedule: "" and snapshot those members '
                    "yourself",
                )
        self._check_release(found)

    def _check_nodes(self, nodes: tuple[Node, ...], env: str, found: Findings) -> None:
        kubespray = self.mode == "kubespray"
        names: dict[str, int] = {}
        addresses: dict[str, int] = {}
        for i, node in enumerate(nodes):
            at = found.under("nodes").under(i)
            if kubespray and not node.address and not at.problems_under("address"):
                at.error("address", "is required")
            if node.state != "present" and not kubespray:
                at.error("state", "only applies to mode: kubespray (the program removes kubespray's nodes); remove it")
            if node.host_key and not kubespray:
                at.error("hostKey", "only applies to mode: kubespray (ansible's SSH to the nodes); remove it")
            if node.name in names:
                at.error("name", f"duplicate node name {node.name!r} (also nodes[{names[node.name]}])")
            names.setdefault(node.name, i)
            if node.address:
                if node.address in addresses:
                    at.error("address", f"duplicate address {node.address!r} (also nodes[{addresses[node.address]}])")
                addresses.setdefault(node.address, i)
            if kubespray and node.address and not node.ip and not at.problems_under("ip"):
                at.error(
                    "ip", f"is required when address {node.address!r} is a hostname (the address Kubernetes binds to)"
                )
        if not kubespray:
            return
        if not self.nodes:
            found.error("nodes", "at least one node is required in kubespray mode")
            return
        # the layout the cluster keeps: nodes marked unreachable are on their way out
        cp = [n for n in nodes if n.is_control_plane and n.present]
        etcd = [n for n in nodes if n.is_etcd and n.present]
        if not cp:
            found.error("nodes", "no node has the 'control-plane' role; at least one is required")
        if not etcd:
            found.error("nodes", "no node has the 'etcd' role; etcd needs an odd number of members (1, 3 or 5)")
        elif len(etcd) % 2 == 0:
            found.error(
                "nodes",
                f"{len(etcd)} etcd members is an even number: etcd needs a majority, so use 1, 3 or 5 "
                f"(an even count tolerates no more failures than one fewer)",
            )
        if env == "prod" and 0 < len(etcd) < 3:
            found.error("nodes", f"prod needs at least 3 etcd members to survive a node failure, has {len(etcd)}")
        if env == "prod" and 0 < len(cp) < 2:
            found.error("nodes", f"prod needs at least 2 control-plane nodes, has {len(cp)}")
        if not any(n.is_worker and n.present for n in nodes):
            found.error("nodes", "no node has the 'worker' role; workloads would have nowhere to run")

    def _check_registry_mirrors(self, found: Findings) -> None:
        if not self.registry_mirrors:
            return
        if self.mode == "existing":
            found.warn(
                "registryMirrors",
                "are not configured by the program in existing mode (it does not manage the nodes): the cluster's "
                "owner must set them in every node's container runtime (containerd: a hosts.toml per registry "
                f"under {CONTAINERD_CERTS_DIR}, docs/operations.md), or every image is pulled from its upstream",
            )
            return
        if self.container_manager != "containerd":
            found.error(
                "registryMirrors",
                f"configure containerd's mirrors; containerManager is {self.container_manager}: use containerd, or "
                "set that runtime's own mirror variables through extraVars",
            )
        if "containerd_registries_mirrors" in self.extra_vars:
            found.error(
                "extraVars.containerd_registries_mirrors",
                "is what the program writes from registryMirrors: move these entries there (prefix -> the key, "
                "mirrors[0].host -> url without /v2, ca, skip_verify -> skipVerify, capabilities), or drop registryMirrors",
            )
        if self.download.localhost:
            found.warn(
                "download.localhost",
                "pulls the images on the control host, whose container runtime does not read the nodes' registry "
                "mirrors: configure the same mirrors there, or set download.localhost: false",
            )
        repos = self.image_repos
        for key, upstream in (("kube", "registry.k8s.io"), ("docker", "docker.io"), ("quay", "quay.io"),
                              ("github", "ghcr.io")):  # fmt: skip
            if getattr(repos, key) and upstream in self.registry_mirrors:
                found.warn(
                    f"imageRepos.{key}",
                    f"rewrites kubespray's image names to the mirror's, so its pulls bypass "
                    f"registryMirrors.{upstream}; remove it: through the mirror the upstream names work unchanged",
                )

    def _check_extra_vars(self, found: Findings) -> None:
        # extraVars is the escape hatch: its values go to group_vars as written (templates
        # included, which kubespray evaluates on the control host — only the stack file's
        # reviewers stand between a value here and a command run there; docs/security.md)
        for key, value in self.extra_vars.items():
            where = f"extraVars.{key}"
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                found.error(where, "is not an Ansible variable name (letters, digits, underscores)")
            elif key.startswith("ansible_"):
                found.error(
                    where,
                    "sets how Ansible connects or escalates (ansible_* variables); that is the program's job: "
                    "use cluster.ansibleUser / ansibleKeyPath / nodes[].address",
                )
            elif key in MANAGED_GROUP_VARS:
                found.error(where, f"is managed by the program; set {MANAGED_GROUP_VARS[key]} instead")
            if contains_secret(value):
                found.error(
                    where,
                    "is a secret (secure:); group_vars are plain files on the control host and in the "
                    "program's state, so secrets cannot go through extraVars",
                )

    def _check_release(self, found: Findings) -> None:
        """kubeVersion and extraVars against what the pinned kubespray release really supports."""
        version = self.kubespray.version if self.kubespray else ""
        if not version:
            return
        rel = kubespray_release.release(version)
        if rel is None:
            known = ", ".join(kubespray_release.known_releases()) or "none"
            found.warn(
                "kubespray.version",
                f"{version} is not a kubespray release this program knows (known: {known}); "
                "kubeVersion and extraVars are not checked against it",
            )
            return
        kube_version = normalize_kube_version(self.kube_version)
        if kube_version and kube_version not in rel.kube_versions:
            found.error(
                "kubeVersion",
                f"{kube_version} is not installable by kubespray {version} ({rel.kube_version_range}); "
                f"pick one of those (empty = its default, {rel.default_kube_version}) or another kubespray release",
            )
        for key in sorted(self.extra_vars):
            if key not in rel.variables:
                found.warn(
                    f"extraVars.{key}",
                    f"is not a variable kubespray {version} reads, so it has no effect"
                    f"{did_you_mean(key, sorted(rel.variables))}",
                )

    def args(self, env: str) -> ClusterSpec:
        nodes = tuple(n.args() for n in self.nodes)
        if self.mode == "existing":
            return ClusterSpec(mode="existing", kubeconfig=self.kubeconfig, context=self.context, nodes=nodes)
        return build(
            ClusterSpec,
            self,
            kubespray=self.kubespray.args() if self.kubespray else KubesprayRef(version="", source="", workdir=""),
            control_host=self.control_host.args() if self.control_host else ControlHost(host="", port=22, user=""),
            nodes=nodes,
            kube_version=normalize_kube_version(self.kube_version),
            proxy=build(Proxy, self.proxy),
            image_repos=build(ImageRepos, self.image_repos),
            registry_mirrors=tuple(
                build(RegistryMirror, m, registry=registry) for registry, m in sorted(self.registry_mirrors.items())
            ),
            download=build(Download, self.download),
            extra_vars={k: v for k, v in self.extra_vars.items() if not contains_secret(v)},
            health_gate=build(HealthGate, self.health_gate),
            upgrade=self.upgrade.args(),
            certificates=CertificateRenewal(auto_renew=self.certificates.auto(env), schedule=self.certificates.schedule),
            removal=self.node_removal.args(),
            api_access=self.api_access.args(),
            etcd_backup=self.etcd_backup.args(env),
        )

"""Parse and validate a stack's `k8s-platform:` config into a `PlatformSpec`.

Every problem is collected, never just the first: `ConfigError.problems` holds
`Problem(path, message)` pairs that render as `<key.path>: <message>`. Nothing
here touches the network, the Pulumi engine or the file system beyond checking
that referenced values files exist. Secret values never enter this module: the
caller passes `SECRET` markers for keys that were set as secrets, so no message
can echo a secret.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from components import kubespray_release
from components import spec as s
from components.addons_config import AddonsConfig
from components.checks import (
    AUTHENTICATED_SCHEMES,
    CREDENTIALS_IN_URL,
    host_check,
    image_problem,
    ip_check,
    is_host,
    is_ip,
    is_url,
    label_check,
    parse_duration,
    parse_quantity,
    semver_check,
    subdomain_check,
    url_check,
    url_has_credentials,
    url_has_password,
)
from components.config_model import SECRET as SECRET  # re-exported: callers mark secret keys with it
from components.config_model import (
    ConfigModel,
    Findings,
    Problem,
    SecretMarker,
    did_you_mean,
    type_name,
    validate_section,
)
from components.helm_config import HelmConfig
from components.kubespray_inventory import api_server_host
from components.mysql_config import MySQLConfig
from components.storage_config import StorageConfig
from components.vocabulary import CONFIG_NAMESPACE
from components.webapp_config import WebAppConfig

NAMESPACE = CONFIG_NAMESPACE


class ConfigError(Exception):
    """The stack config is invalid; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem], source: str = "") -> None:
        self.problems = list(dict.fromkeys(problems))  # one problem is reported once
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head}{len(self.problems)} config problem(s):\n{lines}")


# --------------------------------------------------------------------------- checks

_KUBESPRAY_VERSION = re.compile(r"^v\d+\.\d+\.\d+(-(alpha|beta|rc)\.?\d+)?$|^[0-9a-f]{40}$")
_KUBE_VERSION = re.compile(r"^v?(1\.\d{1,2}\.\d{1,3})$")

_REGISTRY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9._-]+)*$")

# network plugins kubespray installs that do not enforce NetworkPolicy objects
NO_NETWORK_POLICY_PLUGINS = ("flannel", "macvlan")
NETWORK_PLUGINS = ("calico", "cilium", "flannel", "kube-ovn", "kube-router", "macvlan", "custom_cni", "cni")
CONTAINER_MANAGERS = ("containerd", "crio", "docker")
ENVIRONMENTS = ("dev", "staging", "prod")

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


_TEMPLATE_MARKERS = ("{{", "{%", "{#")


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


def normalize_kube_version(value: str) -> str:
    """kubespray ≥ 2.28 takes kube_version without the leading 'v'."""
    return value[1:] if value.startswith("v") else value


# --------------------------------------------------------------------------- reader

_MISSING = object()


class Reader:
    """Reads one mapping of the config, recording problems under its key path."""

    def __init__(self, data: Any, path: str, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.path = path
        self.problems = problems
        # findings that do not stop a deployment (e.g. an extraVars key kubespray does not read)
        self.warnings: list[Problem] = [] if warnings is None else warnings
        # values under this mapping reach Ansible (group_vars, inventory, remote scripts): data only
        self.data_only = False
        # a secret that is not set yet: a problem for the program, a warning for planning
        self.secrets_required = True
        self.seen: set[str] = set()
        if data is None or data is _MISSING:
            data = {}
        if not isinstance(data, Mapping):
            self.error("", f"must be a mapping (key: value), not {type_name(data)}")
            data = {}
        self.data: Mapping[str, Any] = data

    # paths and errors
    def sub(self, key: str) -> str:
        if not key:
            return self.path
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.sub(key), message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(Problem(self.sub(key), message))

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key, _MISSING)

    def value(self, key: str) -> Any:
        """The value under `key` as written, None when it is not set."""
        value = self.raw(key)
        return None if value is _MISSING else value

    # typed getters
    def text(
        self,
        key: str,
        default: str = "",
        *,
        required: bool = False,
        choices: Sequence[str] | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> str:
        value = self.raw(key)
        if value is _MISSING or value is None or (value == "" and required):
            if required:
                self.error(key, "is required")
            return default
        if isinstance(value, SecretMarker):
            self.error(key, "is not a secret setting; set it in plain text")
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(key, f"must be a string, not {type_name(value)}")
            return default
        value = str(value)
        if self.data_only and (why := data_problem(value)):
            self.error(key, why)
            return default
        if choices is not None and value not in choices:
            self.error(key, f"{value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}")
            return default
        if check is not None and value != "":
            msg = check(value)
            if msg:
                self.error(key, msg)
                return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, not {type_name(value)}")
            return default
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be a whole number, not {type_name(value)}")
            return default
        if minimum is not None and value < minimum:
            self.error(key, f"must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.error(key, f"must be at most {maximum}, got {value}")
            return default
        return value

    def optional_int(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        if self.raw(key) in (_MISSING, None):
            return None
        before = len(self.problems)
        value = self.integer(key, 0, minimum=minimum, maximum=maximum)
        return None if len(self.problems) > before else value

    def _child(self, data: Any, path: str) -> Reader:
        child = Reader(data, path, self.problems, self.warnings)
        child.data_only = self.data_only
        child.secrets_required = self.secrets_required
        return child

    def missing_secret(self, path: str, message: str) -> None:
        """A secret the stack needs and has not set (path is absolute: secrets are top-level keys)."""
        (self.problems if self.secrets_required else self.warnings).append(Problem(path, message))

    def mapping(self, key: str) -> Reader:
        return self._child(self.raw(key), self.sub(key))

    def items(self, key: str) -> list[Reader]:
        """One Reader per element of the list under `key`, with `key[i]` paths."""
        return [self._child(item, self.sub(f"{key}[{i}]")) for i, item in enumerate(self.sequence(key))]

    def sequence(self, key: str) -> list[Any]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"must be a list, not {type_name(value)}")
            return []
        return value

    def choices(self, key: str, allowed: Sequence[str], what: str) -> list[str]:
        """A list of distinct values from `allowed`; unknown ones get a did-you-mean."""
        out: list[str] = []
        for j, value in enumerate(self.sequence(key)):
            if value not in allowed:
                self.error(
                    f"{key}[{j}]",
                    f"{what} {value!r}; use {', '.join(allowed)}{did_you_mean(str(value), allowed)}",
                )
            elif value in out:
                self.error(f"{key}[{j}]", f"{value!r} is listed twice")
            else:
                out.append(value)
        return out

    def str_list(self, key: str, check: Callable[[str], str | None] | None = None) -> tuple[str, ...]:
        out: list[str] = []
        for i, item in enumerate(self.sequence(key)):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.error(f"{key}[{i}]", f"must be a string, not {type_name(item)}")
                continue
            text = str(item)
            msg = check(text) if check else None
            if msg:
                self.error(f"{key}[{i}]", msg)
                continue
            out.append(text)
        return tuple(out)

    def str_map(self, key: str, key_check: Callable[[str], str | None] | None = None) -> dict[str, str]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(key, f"must be a mapping, not {type_name(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.error(key, f"keys must be strings, not {type_name(k)}")
                continue
            if key_check and (msg := key_check(k)):
                self.error(f"{key}.{k}", msg)
                continue
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                self.error(f"{key}.{k}", f"must be a string, not {type_name(v)}")
                continue
            out[k] = str(v)
        return out

    def any_map(self, key: str) -> dict[str, Any]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(key, f"must be a mapping, not {type_name(value)}")
            return {}
        if not all(isinstance(k, str) for k in value):
            self.error(key, "keys must be strings")
            return {}
        return dict(value)

    def problems_under(self, key: str) -> bool:
        """Whether a problem was already recorded at `key` or below it."""
        path = self.sub(key)
        return any(p.path == path or p.path.startswith((f"{path}.", f"{path}[")) for p in self.problems)

    def done(self) -> None:
        """Report keys nobody asked for, with a did-you-mean."""
        for key in self.data:
            if key not in self.seen:
                self.error(str(key), f"unknown key{did_you_mean(str(key), sorted(self.seen))}")


# --------------------------------------------------------------------------- sections

M = TypeVar("M", bound=ConfigModel)


def _read(r: Reader, key: str, model: type[M]) -> M | None:
    """A part the reader's section holds that a component's config model reads."""
    return validate_section(model, r.value(key), r.sub(key), Findings("", r.problems, r.warnings))


def _parse_nodes(r: Reader, mode: str, env: str) -> tuple[s.Node, ...]:
    nodes: list[s.Node] = []
    raw_nodes = r.items("nodes")
    names: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for i, n in enumerate(raw_nodes):
        name = n.text("name", required=True, check=subdomain_check("node name"))
        address = n.text("address", required=(mode == "kubespray"), check=host_check)
        ip = n.text("ip", check=ip_check)
        raw_roles = n.raw("roles")
        if isinstance(raw_roles, str):
            n.error("roles", f"must be a list, e.g. [{raw_roles}] (one or more of {', '.join(s.ROLES)})")
            roles: list[str] = []
        else:
            if not n.sequence("roles"):
                n.error("roles", f"is required: one or more of {', '.join(s.ROLES)}")
            roles = n.choices("roles", s.ROLES, "unknown role")
        state = n.text("state", "present", choices=s.NODE_STATES)
        if state != "present" and mode != "kubespray":
            n.error("state", "only applies to mode: kubespray (the program removes kubespray's nodes); remove it")
        host_key = n.text("hostKey", check=_host_key_check)
        if host_key and mode != "kubespray":
            n.error("hostKey", "only applies to mode: kubespray (ansible's SSH to the nodes); remove it")
        n.done()
        if name:
            if name in names:
                r.error(f"nodes[{i}].name", f"duplicate node name {name!r} (also nodes[{names[name]}])")
            names.setdefault(name, i)
        if address:
            if address in addresses:
                r.error(f"nodes[{i}].address", f"duplicate address {address!r} (also nodes[{addresses[address]}])")
            addresses.setdefault(address, i)
        if not ip and address and is_ip(address):
            ip = address
        if mode == "kubespray" and address and not ip:
            n.error("ip", f"is required when address {address!r} is a hostname (the address Kubernetes binds to)")
        nodes.append(s.Node(name=name, address=address, ip=ip, roles=tuple(roles), state=state, host_key=host_key))  # type: ignore[arg-type]

    if mode == "kubespray":
        if not raw_nodes:
            r.error("nodes", "at least one node is required in kubespray mode")
        else:
            # the layout the cluster keeps: nodes marked unreachable are on their way out
            cp = [n for n in nodes if n.is_control_plane and n.present]
            etcd = [n for n in nodes if n.is_etcd and n.present]
            if not cp:
                r.error("nodes", "no node has the 'control-plane' role; at least one is required")
            if not etcd:
                r.error("nodes", "no node has the 'etcd' role; etcd needs an odd number of members (1, 3 or 5)")
            elif len(etcd) % 2 == 0:
                r.error(
                    "nodes",
                    f"{len(etcd)} etcd members is an even number: etcd needs a majority, so use 1, 3 or 5 "
                    f"(an even count tolerates no more failures than one fewer)",
                )
            if env == "prod" and 0 < len(etcd) < 3:
                r.error("nodes", f"prod needs at least 3 etcd members to survive a node failure, has {len(etcd)}")
            if env == "prod" and 0 < len(cp) < 2:
                r.error("nodes", f"prod needs at least 2 control-plane nodes, has {len(cp)}")
            if not any(n.is_worker and n.present for n in nodes):
                r.error("nodes", "no node has the 'worker' role; workloads would have nowhere to run")
    return tuple(nodes)


def _parse_cluster(r: Reader, env: str, secrets: Mapping[str, Any]) -> s.ClusterSpec:
    r.data_only = True
    mode = r.text("mode", "kubespray", choices=("kubespray", "existing"))
    nodes = _parse_nodes(r, mode, env)
    kubespray_keys = (
        "kubespray", "controlHost", "ansibleUser", "ansibleKeyPath", "kubeVersion", "networkPlugin",
        "containerManager", "apiServerEndpoint", "proxy", "imageRepos", "download", "extraVars", "resetOnDestroy",
        "healthGate", "upgrade", "certificates", "nodeRemoval", "hostKeyChecking", "apiAccess", "etcdBackup",
    )  # fmt: skip
    existing_keys = ("kubeconfig", "context")
    wrong = existing_keys if mode == "kubespray" else kubespray_keys
    for key in wrong:
        if r.has(key):
            r.raw(key)
            r.error(
                key,
                f"only applies to mode: {'existing' if mode == 'kubespray' else 'kubespray'}; remove it (mode is {mode})",
            )

    if mode == "existing":
        kubeconfig = r.text("kubeconfig")
        context = r.text("context")
        if not kubeconfig and s.SECRET_KUBECONFIG not in secrets:
            r.error(
                "kubeconfig",
                f"mode: existing needs a kubeconfig: a path here, or the secret {NAMESPACE}:{s.SECRET_KUBECONFIG} "
                f"(pulumi config set --secret {s.SECRET_KUBECONFIG} < kubeconfig)",
            )
        if kubeconfig and s.SECRET_KUBECONFIG in secrets:
            r.error("kubeconfig", f"set either this path or the secret {NAMESPACE}:{s.SECRET_KUBECONFIG}, not both")
        r.done()
        return s.ClusterSpec(mode="existing", kubeconfig=kubeconfig, context=context, nodes=nodes)

    kr = r.mapping("kubespray")
    kubespray = s.KubesprayRef(
        version=kr.text(
            "version",
            required=True,
            check=lambda v: (
                None
                if _KUBESPRAY_VERSION.fullmatch(v)
                else f"{v!r} is not a kubespray release tag like 'v2.31.0' (or a full commit hash)"
            ),
        ),
        source=kr.text(
            "source",
            "https://github.com/kubernetes-sigs/kubespray.git",
            check=lambda v: (
                CREDENTIALS_IN_URL
                if url_has_credentials(v)
                else None
                if is_url(v, ("https", "http", "ssh", "git", "file")) or v.startswith("/")
                else f"{v!r} is not a git URL (https://, ssh://, git://, file://) or an absolute path on the control host"
            ),
        ),
        workdir=kr.text("workdir", "~/kubespray", check=_path_check),
        commit=kr.text(
            "commit",
            check=lambda v: None if re.fullmatch(r"[0-9a-f]{40}", v) else f"{v!r} is not a full 40-hex git commit",
        ),
    )
    kr.done()
    known = kubespray_release.release(kubespray.version)
    if not kubespray.commit and re.fullmatch(r"[0-9a-f]{40}", kubespray.version):
        kubespray = dataclasses.replace(kubespray, commit=kubespray.version)
    elif known is not None:
        # the commit upstream's tag points at (read from the release's own tree) unless set,
        # and the hash-pinned lock of its requirements
        kubespray = dataclasses.replace(
            kubespray, commit=kubespray.commit or known.commit, requirements_lock=known.requirements_lock
        )

    ch = r.mapping("controlHost")
    jump_r = ch.mapping("proxyJump")
    jump_host = jump_r.text("host", check=host_check)
    jump = s.ProxyJump(
        host=jump_host,
        port=jump_r.integer("port", 22, minimum=1, maximum=65535),
        user=jump_r.text("user", check=label_check("user name", 32)),
    )
    jump_r.done()
    if jump_host and not jump.user:
        jump_r.error("user", "is required when proxyJump.host is set")
    control_host = s.ControlHost(
        host=ch.text("host", required=True, check=host_check),
        port=ch.integer("port", 22, minimum=1, maximum=65535),
        user=ch.text("user", required=True, check=label_check("user name", 32)),
        host_key=ch.text("hostKey", check=_host_key_check),
        proxy_jump=jump if jump_host else None,
        proxy=_parse_control_host_proxy(ch.mapping("proxy")),
        pip=_parse_pip(ch.mapping("pip")),
    )
    if env == "prod" and not control_host.host_key:
        ch.error("hostKey", "prod requires the control host's SSH host key pinned (e.g. 'ssh-ed25519 AAAA…')")
    ch.done()

    if s.SECRET_SSH_PRIVATE_KEY not in secrets:
        r.missing_secret(
            s.SECRET_SSH_PRIVATE_KEY,
            "is required in kubespray mode: the key that reaches the control host "
            f"(pulumi config set --secret {s.SECRET_SSH_PRIVATE_KEY} < ~/.ssh/id_ed25519)",
        )

    px = r.mapping("proxy")
    proxy = s.Proxy(
        http=px.text("http", check=_proxy_check),
        https=px.text("https", check=_proxy_check),
        no_proxy=px.text("noProxy", check=_no_proxy_check),
    )
    px.done()

    ir = r.mapping("imageRepos")
    registry_check = _registry_check
    repos = s.ImageRepos(
        kube=ir.text("kube", check=registry_check),
        gcr=ir.text("gcr", check=registry_check),
        docker=ir.text("docker", check=registry_check),
        quay=ir.text("quay", check=registry_check),
        github=ir.text("github", check=registry_check),
        files=ir.text("files", check=url_check()),
    )
    ir.done()
    if repos.gcr:
        ir.warn(
            "gcr",
            "feeds nothing: kubespray v2.31 pulls no image from gcr.io (no role reads gcr_image_repo); "
            "remove it — mirrors go in kube (registry.k8s.io), docker, quay and github",
        )

    dr = r.mapping("download")
    download = s.Download(run_once=dr.flag("runOnce", False), localhost=dr.flag("localhost", False))
    dr.done()
    if download.localhost and not download.run_once:
        dr.error("localhost", "needs download.runOnce: true (kubespray downloads once, on the control host)")

    # extraVars is the escape hatch: its values go to group_vars as written (templates
    # included, which kubespray evaluates on the control host — only the stack file's
    # reviewers stand between a value here and a command run there; docs/security.md)
    extra = r.any_map("extraVars")
    for key in list(extra):
        where = f"extraVars.{key}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            r.error(where, "is not an Ansible variable name (letters, digits, underscores)")
        elif key.startswith("ansible_"):
            r.error(
                where,
                "sets how Ansible connects or escalates (ansible_* variables); that is the program's job: "
                "use cluster.ansibleUser / ansibleKeyPath / nodes[].address",
            )
        elif key in MANAGED_GROUP_VARS:
            r.error(where, f"is managed by the program; set {MANAGED_GROUP_VARS[key]} instead")
        if _contains_secret(extra[key]):
            r.error(
                where,
                "is a secret (secure:); group_vars are plain files on the control host and in the "
                "program's state, so secrets cannot go through extraVars",
            )
            extra.pop(key)

    checking = r.text("hostKeyChecking", "acceptNew", choices=s.HOST_KEY_CHECKING)
    if checking == "off" and env != "dev":
        r.error(
            "hostKeyChecking",
            f"off is for dev only: in {env}, whoever answers on a node's address would get ansible's root session "
            "and the cluster's secrets; use acceptNew (keys recorded on first contact) or pinned (nodes[].hostKey)",
        )
    if checking == "pinned":
        for i, node in enumerate(nodes):
            if node.present and not node.host_key:
                r.error(
                    f"nodes[{i}].hostKey",
                    f"is required with hostKeyChecking: pinned: {node.name}'s public host key, e.g. from "
                    f"`ssh-keyscan -t ed25519 {node.address or node.name}` checked out of band",
                )
    endpoint = r.text("apiServerEndpoint", check=_endpoint_check)
    api_access = _parse_api_access(r.mapping("apiAccess"), nodes)
    if api_access.mode == "kubeVip" and extra.get("kube_proxy_strict_arp") is False:
        r.error("extraVars.kube_proxy_strict_arp", "must stay true with apiAccess.mode kubeVip: kube-vip answers ARP "
                "for the VIP, and kube-proxy in IPVS mode must not (kubespray's kube-vip docs)")  # fmt: skip
    if endpoint and api_access.mode != "localProxy":
        r.error(
            "apiServerEndpoint",
            f"the kubeconfig follows apiAccess ({api_access.mode}: {api_access.url()}); remove apiServerEndpoint",
        )
    reset = r.flag("resetOnDestroy", False)
    if env == "prod" and reset:
        r.error("resetOnDestroy", "must be false in prod: reset.yml wipes every node")
    hr = r.mapping("healthGate")
    gate = s.HealthGate(
        enabled=hr.flag("enabled", True),
        timeout=hr.integer("timeout", 900, minimum=30, maximum=7200),
    )
    hr.done()
    if not gate.enabled and env == "prod":
        hr.error(
            "enabled", "must be true in prod: add-ons and apps would be deployed onto a cluster not known to be up"
        )
    upgrade = _parse_upgrade(r.mapping("upgrade"), env)
    etcd_backup = _parse_etcd_backup(r.mapping("etcdBackup"), env, nodes)
    removal = _parse_removal(r.mapping("nodeRemoval"))
    cr = r.mapping("certificates")
    certificates = s.CertificateRenewal(
        # on by default where a cluster outlives a year: staging and prod
        auto_renew=cr.flag("autoRenew", env != "dev"),
        schedule=cr.text(
            "schedule",
            s.CertificateRenewal.schedule,
            check=lambda v: (
                None
                if _SYSTEMD_CALENDAR.fullmatch(v)
                else (f"{v!r} is not a systemd OnCalendar expression like 'Mon *-*-1..7 03:00:00' or 'monthly'")
            ),
        ),
    )
    cr.done()
    if env == "prod" and not certificates.auto_renew:
        cr.warn("autoRenew", "is off in prod: renew the control plane's certificates yourself before they expire "
                "(kubeadm's last a year; `kubeadm certs check-expiration` on a control-plane node)")  # fmt: skip

    spec = s.ClusterSpec(
        mode="kubespray",
        kubespray=kubespray,
        control_host=control_host,
        ansible_user=r.text("ansibleUser", required=True, check=label_check("user name", 32)),
        ansible_key_path=r.text("ansibleKeyPath", check=_path_check),
        nodes=nodes,
        kube_version=normalize_kube_version(
            r.text(
                "kubeVersion",
                check=lambda v: (
                    None
                    if _KUBE_VERSION.fullmatch(v)
                    else f"{v!r} is not a Kubernetes version like '1.34.4' (empty = kubespray's default)"
                ),
            )
        ),
        network_plugin=r.text("networkPlugin", "calico", choices=NETWORK_PLUGINS),
        container_manager=r.text("containerManager", "containerd", choices=CONTAINER_MANAGERS),
        api_server_endpoint=endpoint,
        proxy=proxy,
        image_repos=repos,
        download=download,
        extra_vars=extra,
        reset_on_destroy=reset,
        health_gate=gate,
        upgrade=upgrade,
        certificates=certificates,
        removal=removal,
        host_key_checking=checking,  # type: ignore[arg-type]
        api_access=api_access,
        etcd_backup=etcd_backup,
    )
    r.done()
    _check_kubespray_release(r, spec)
    return spec


# systemd OnCalendar: a shorthand, or "[weekdays] [date] [time]" with *, ranges, lists, repeats
_WEEKDAY = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6}"
_SYSTEMD_CALENDAR = re.compile(
    r"(minutely|hourly|daily|weekly|monthly|yearly|quarterly|semiannually|annually)"
    rf"|({_WEEKDAY}((,|\.\.){_WEEKDAY})*)( [0-9*][0-9*,./~-]*)?( [0-9*][0-9*,:./]*)?"
    r"|[0-9*][0-9*,./~:-]*( [0-9*][0-9*,:./]*)?"
)
_SERIAL = re.compile(r"[1-9][0-9]{0,3}|([1-9][0-9]?|100)%")


def _parse_upgrade(r: Reader, env: str) -> s.UpgradeControls:
    """`cluster.upgrade`: kubespray's drain and batching controls for upgrade-cluster.yml."""
    d = s.UpgradeControls()
    controls = s.UpgradeControls(
        drain=r.flag("drain", d.drain),
        drain_timeout=r.text("drainTimeout", d.drain_timeout, check=_drain_timeout_check),
        drain_grace_period=r.integer("drainGracePeriod", d.drain_grace_period, minimum=-1, maximum=86400),
        serial=r.text(
            "serial",
            d.serial,
            check=lambda v: (
                None if _SERIAL.fullmatch(v) else f"{v!r} is not a node count like '1' or a percentage like '20%'"
            ),
        ),
        pause_seconds=r.integer("pauseSeconds", d.pause_seconds, minimum=0, maximum=86400),
    )
    r.done()
    if env == "prod" and not controls.drain:
        r.error("drain", "must be true in prod: upgrading a node without draining it kills its pods mid-request")
    return controls


_CRON_FIELD = r"(\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[0-9]{1,2})?(,(\*|[0-9]{1,2}(-[0-9]{1,2})?)(/[0-9]{1,2})?)*"
_CRON = re.compile(rf"{_CRON_FIELD}( {_CRON_FIELD}){{4}}|@(hourly|daily|weekly|monthly)")
DEFAULT_ETCD_BACKUP_SCHEDULE = "17 */6 * * *"


def _parse_etcd_backup(r: Reader, env: str, nodes: tuple[s.Node, ...]) -> s.EtcdBackup:
    """`cluster.etcdBackup`: snapshots before changes, and scheduled ones (on by default in prod)."""
    d = s.EtcdBackup()
    backup = s.EtcdBackup(
        before_changes=r.flag("beforeChanges", d.before_changes),
        schedule=r.text(
            "schedule",
            DEFAULT_ETCD_BACKUP_SCHEDULE if env == "prod" else "",
            check=lambda v: (
                None
                if _CRON.fullmatch(v)
                else (f"{v!r} is not a cron schedule of five fields like '17 */6 * * *' (or @daily)")
            ),
        ),
        retention=r.integer("retention", d.retention, minimum=1, maximum=1000),
        directory=r.text(
            "directory",
            d.directory,
            check=lambda v: (
                None
                if re.fullmatch(r"/[A-Za-z0-9._/-]*", v) and "/.." not in v and v != "/"
                else (f"{v!r} is not an absolute directory on the etcd members (letters, digits, . _ - /)")
            ),
        ),
        image=r.text("image", d.image, check=image_problem),
    )
    r.done()
    if env == "prod" and not backup.before_changes:
        r.warn("beforeChanges", "is off in prod: a failed upgrade or cluster.yml run leaves no etcd snapshot "
               "taken just before it (docs/operations.md, 'etcd backups')")  # fmt: skip
    if env == "prod" and not backup.schedule and r.has("schedule"):
        r.warn("schedule", "is empty in prod: no scheduled etcd snapshots; restore would go back to the last change")
    if backup.schedule:
        outside = [n.name for n in nodes if n.is_etcd and n.present and not (n.is_control_plane or n.is_worker)]
        if outside:
            r.error(
                "schedule",
                f"runs as a CronJob on every etcd member, but {', '.join(outside)} is not a Kubernetes node (etcd role "
                'only): give it the control-plane role too, or set schedule: "" and snapshot those members yourself',
            )
    return backup


def _parse_api_access(r: Reader, nodes: tuple[s.Node, ...]) -> s.ApiAccess:
    """`cluster.apiAccess`: kubespray's local proxy, a kube-vip VIP, or an external load balancer."""
    mode = r.text("mode", "localProxy", choices=s.API_ACCESS_MODES)
    access = s.ApiAccess(
        mode=mode,  # type: ignore[arg-type]
        address=r.text("address", check=ip_check),
        port=r.integer("port", s.KUBE_APISERVER_PORT, minimum=1, maximum=65535),
        domain_name=r.text("domainName", check=host_check),
        subnet=r.text("subnet", check=lambda v: None if _is_cidr(v) else f"{v!r} is not a network like '10.4.17.0/24'"),
        interface=r.text(
            "interface",
            check=lambda v: (
                None if re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", v) else f"{v!r} is not a network interface name"
            ),
        ),
    )
    allowed = {"localProxy": (), "kubeVip": ("address", "subnet", "interface"),
               "externalLB": ("address", "port", "domainName")}[mode]  # fmt: skip
    for key in ("address", "port", "domainName", "subnet", "interface"):
        # written out empty (or the default port) is not set: a full reference may list them all
        if r.has(key) and key not in allowed and r.raw(key) not in ("", None, s.KUBE_APISERVER_PORT):
            r.error(key, f"does not apply to mode {mode}" + (f" (it takes {', '.join(allowed)})" if allowed else ""))
    r.done()
    if mode == "localProxy":
        return access
    if not access.address and not r.problems_under("address"):
        what = "the virtual IP kube-vip holds" if mode == "kubeVip" else "the load balancer's IP"
        r.error("address", f"is required for mode {mode}: {what}")
    node_ips = {ip: n.name for n in nodes for ip in {n.address, n.ip} if ip and is_ip(ip)}
    if access.address and access.address in node_ips and mode == "kubeVip":
        r.error("address", f"is {node_ips[access.address]}'s own address: the VIP must be an address no machine uses")
    if mode == "kubeVip":
        if not access.subnet and not r.problems_under("subnet"):
            r.error("subnet", "is required for mode kubeVip: the control-plane nodes' network (e.g. 10.4.17.0/24), "
                    "so the VIP can be checked against it")  # fmt: skip
        elif access.subnet and _is_cidr(access.subnet):
            net = ipaddress.ip_network(access.subnet, strict=False)
            if access.address and is_ip(access.address):
                ip = ipaddress.ip_address(access.address)
                if ip not in net:
                    r.error("address", f"{access.address} is not in subnet {access.subnet}: kube-vip announces the VIP "
                            "by ARP, which only reaches the control-plane nodes' own network")  # fmt: skip
                elif net.num_addresses > 2 and ip in (net.network_address, net.broadcast_address):
                    r.error("address", f"{access.address} is the network or broadcast address of {access.subnet}")
            for node in nodes:
                if (node.is_control_plane and node.present and node.ip and is_ip(node.ip)
                        and ipaddress.ip_address(node.ip) not in net):  # fmt: skip
                    r.error("subnet", f"does not contain control-plane node {node.name}'s ip {node.ip}: every "
                            "control-plane node must be able to hold the VIP")  # fmt: skip
    return access


def _parse_control_host_proxy(r: Reader) -> s.ControlHostProxy:
    """`controlHost.proxy`: how the control host itself reaches kubespray's source and PyPI."""
    proxy = s.ControlHostProxy(
        http=r.text("http", check=_proxy_check),
        https=r.text("https", check=_proxy_check),
        no_proxy=r.text("noProxy", check=_no_proxy_check),
    )
    r.done()
    return proxy


def _parse_pip(r: Reader) -> s.PipSource:
    """`controlHost.pip`: the package index the control host installs kubespray's requirements from."""
    pip = s.PipSource(
        index_url=r.text("indexUrl", check=url_check()),
        trusted_host=r.text(
            "trustedHost",
            check=lambda v: (
                None
                if is_host(v.rsplit(":", 1)[0] if v.count(":") == 1 else v)
                else (f"{v!r} is not a host or host:port (pip's --trusted-host)")
            ),
        ),
    )
    r.done()
    if pip.index_url.startswith("http://") and not pip.trusted_host:
        r.error(
            "trustedHost",
            "is required for a plain-HTTP indexUrl: pip refuses an http:// index unless its host is trusted "
            "(set the index's host here, or serve the mirror over https)",
        )
    if pip.trusted_host and not pip.index_url:
        r.error("trustedHost", "has no effect without indexUrl; set the mirror's indexUrl or remove it")
    return pip


def _drain_timeout_check(value: str) -> str | None:
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


def _parse_removal(r: Reader) -> s.NodeRemoval:
    """`cluster.nodeRemoval`: how remove-node.yml drains a node that leaves the cluster."""
    d = s.NodeRemoval()
    removal = s.NodeRemoval(
        drain_timeout=r.text("drainTimeout", d.drain_timeout, check=_drain_timeout_check),
        drain_grace_period=r.integer("drainGracePeriod", d.drain_grace_period, minimum=-1, maximum=86400),
        drain_retries=r.integer("drainRetries", d.drain_retries, minimum=1, maximum=100),
    )
    r.done()
    return removal


def _check_kubespray_release(r: Reader, cluster: s.ClusterSpec) -> None:
    """kubeVersion and extraVars against what the pinned kubespray release really supports."""
    assert cluster.kubespray is not None
    version = cluster.kubespray.version
    if not version:
        return
    rel = kubespray_release.release(version)
    if rel is None:
        known = ", ".join(kubespray_release.known_releases()) or "none"
        r.warn(
            "kubespray.version",
            f"{version} is not a kubespray release this program knows (known: {known}); "
            "kubeVersion and extraVars are not checked against it",
        )
        return
    if cluster.kube_version and cluster.kube_version not in rel.kube_versions:
        r.error(
            "kubeVersion",
            f"{cluster.kube_version} is not installable by kubespray {version} ({rel.kube_version_range}); "
            f"pick one of those (empty = its default, {rel.default_kube_version}) or another kubespray release",
        )
    for key in sorted(cluster.extra_vars):
        if key not in rel.variables:
            r.warn(
                f"extraVars.{key}",
                f"is not a variable kubespray {version} reads, so it has no effect{did_you_mean(key, sorted(rel.variables))}",
            )


def _path_check(value: str) -> str | None:
    if "\n" in value or "'" in value or '"' in value or "$" in value or "`" in value:
        return f"{value!r} contains characters a path on the control host may not have (quotes, $, `, newline)"
    if not (value.startswith("/") or value.startswith("~/")):
        return f"{value!r} must be absolute or start with '~/'"
    return None


def _contains_secret(value: Any) -> bool:
    if isinstance(value, SecretMarker):
        return True
    if isinstance(value, Mapping):
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def _no_proxy_check(value: str) -> str | None:
    """A comma-separated list of hosts, IPs, CIDRs and domain suffixes (.example.com)."""
    bad = []
    for entry in value.split(","):
        item = entry.removeprefix("*.").removeprefix(".")
        host = item.rsplit(":", 1)[0] if item.count(":") == 1 else item
        ok = bool(item) and (is_host(host) or _is_cidr(item))
        if not ok:
            bad.append(entry)
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3] if b.isprintable() and len(b) <= 64) or "an entry"
        return (
            f"{shown} is not a host, IP, CIDR or domain suffix; noProxy is a comma-separated list "
            "like '10.4.17.0/24,localhost,.svc,.cluster.local' without spaces"
        )
    return None


def _is_cidr(value: str) -> bool:
    if "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _host_key_check(value: str) -> str | None:
    parts = value.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        return "expected a public host key like 'ssh-ed25519 AAAAC3…' (from ssh-keyscan)"
    return None


def _proxy_check(value: str) -> str | None:
    # The password check comes first so that a malformed URL with a password is not echoed.
    if url_has_password(value):
        return (
            "must not contain a password: stack files are not secret; use a proxy that needs none or an IP allow-list"
        )
    if not is_url(value):
        return f"{value!r} is not a proxy URL like 'http://proxy.example.com:3128'"
    return None


def _registry_check(value: str) -> str | None:
    if not _REGISTRY.fullmatch(value):
        return f"{value!r} is not a registry like 'registry.example.com:5000/mirror' (no scheme)"
    return None


def _endpoint_check(value: str) -> str | None:
    if value.startswith("https://"):
        return None if is_url(value, ("https",)) else f"{value!r} is not a valid https URL"
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return None if is_host(host) else f"{value!r} is not 'https://host:port', a hostname or an IP address"


def _parse_chart_source(r: Reader, default: s.ChartSource) -> s.ChartSource:
    return s.ChartSource(
        repo=r.text("repo", default.repo, check=url_check(("https", "http", "oci"))),
        chart=r.text("chart", default.chart),
        version=r.text("version", default.version, check=semver_check),
        namespace=r.text("namespace", default.namespace, check=label_check("namespace")),
        values=r.any_map("values") or dict(default.values),
    )


def _parse_resources(r: Reader) -> s.Resources:
    out: dict[str, dict[str, str]] = {}
    for part in ("requests", "limits"):
        values = r.str_map(
            part,
            key_check=lambda k: (
                None
                if k in ("cpu", "memory", "ephemeral-storage")
                else f"unknown resource {k!r}; use cpu, memory or ephemeral-storage"
            ),
        )
        for k, v in list(values.items()):
            if parse_quantity(v) is None:
                r.error(f"{part}.{k}", f"{v!r} is not a Kubernetes quantity like '250m', '512Mi' or '2Gi'")
                del values[k]
        out[part] = values
    for k, limit in out["limits"].items():
        req = out["requests"].get(k)
        if req is not None and (parse_quantity(req) or 0) > (parse_quantity(limit) or 0):
            r.error(f"requests.{k}", f"request {req} is larger than the limit {limit}")
    r.done()
    return s.Resources(requests=out["requests"], limits=out["limits"])


def _read_apps(top: Reader, found: Findings, context: Mapping[str, Any], addons: s.AddonsSpec) -> tuple[s.AppSpec, ...]:
    """Each app through its model (an app that cannot be read is left out, the others keep
    their index), then the rules across apps and against the add-ons."""
    raw = top.value("apps")
    if raw is not None and not isinstance(raw, list):
        top.error("apps", f"must be a list, not {type_name(raw)}")
        raw = []
    read: list[tuple[int, WebAppConfig]] = []
    for i, item in enumerate(raw or []):
        app = validate_section(WebAppConfig, item, f"apps[{i}]", found, context=context)
        if app is not None:
            read.append((i, app))
    seen: dict[tuple[str, str], int] = {}
    node_ports: dict[int, int] = {}
    for i, app in read:
        at = found.under(f"apps[{i}]")
        key = (app.namespace, app.name)
        if key in seen:
            at.error("name", f"app {app.name!r} already exists in namespace {app.namespace!r} (apps[{seen[key]}])")
        seen.setdefault(key, i)
        node_port = app.service.usable_node_port()
        if node_port is not None:
            if node_port in node_ports:
                at.error("service.nodePort", f"{node_port} is already used by apps[{node_ports[node_port]}]")
            node_ports.setdefault(node_port, i)
        if app.ingress is not None and not app.ingress.class_name and not addons.ingress.enabled:
            at.error("ingress.className", "is required when addons.ingress is disabled (no default IngressClass)")
        if app.mesh and not addons.mesh_enabled:
            at.error("mesh", "needs addons.mesh.enabled: true; without the mesh no sidecar would be injected")
        if app.resilience is not None and app.mesh and not addons.mesh_enabled:
            at.error("resilience", "needs addons.mesh.enabled: true (Istio enforces it)")
    return tuple(app.args() for _, app in read)


def _check_storage(storage: s.StorageSpec, cluster: s.ClusterSpec, addons: s.AddonsSpec) -> list[Problem]:
    """Static volumes against the rest of the stack: local disks on nodes of the cluster, and
    classes of their own (a claim on the dynamic default class would get a new volume instead)."""
    problems: list[Problem] = []
    nodes = sorted(n.name for n in cluster.nodes)
    for i, volume in enumerate(storage.volumes):
        if volume.local and volume.local.node and nodes and volume.local.node not in nodes:
            problems.append(Problem(
                f"storage.volumes[{i}].local.node",
                f"{volume.local.node!r} is not in cluster.nodes ({', '.join(nodes)}){did_you_mean(volume.local.node, nodes)}",
            ))  # fmt: skip
        if addons.storage.enabled and volume.storage_class == addons.storage.default_class:
            problems.append(Problem(
                f"storage.volumes[{i}].storageClass",
                f"{volume.storage_class!r} is the dynamic default class (addons.storage.defaultClass); "
                "give static volumes a class of their own, like 'manual'",
            ))  # fmt: skip
    return problems


def _check_static_claims(storage: s.StorageSpec, apps: tuple[s.AppSpec, ...], mysql: s.MySQLSpec) -> list[Problem]:
    """Claims on static classes must each find their own volume; selectors need a static class."""
    problems: list[Problem] = []
    static = storage.static_classes
    claims: list[tuple[str, str, float, frozenset[str], Mapping[str, str]]] = []
    for i, app in enumerate(apps):
        for j, v in enumerate(app.volumes):
            c = v.claim
            path = f"apps[{i}].volumes[{j}].claim"
            if c.storage_class in static and c.storage_class:
                claims.append(
                    (path, c.storage_class, parse_quantity(c.size) or 0, frozenset(c.access_modes), c.selector)
                )
            elif c.selector:
                problems.append(
                    Problem(
                        f"{path}.selector",
                        "a claim with a selector is never provisioned dynamically, so it needs a static volume: "
                        "set storageClass to the class of a storage.volumes entry carrying these labels",
                    )
                )
    if mysql.enabled and mysql.storage.storage_class in static and mysql.storage.storage_class:
        size = parse_quantity(mysql.storage.size) or 0
        for _ in range(mysql.replicas):
            claims.append(
                ("mysql.storage.storageClass", mysql.storage.storage_class, size, frozenset({"ReadWriteOnce"}), {})
            )

    def fits(claim: tuple[str, str, float, frozenset[str], Mapping[str, str]], vol: s.StaticVolumeSpec) -> bool:
        _, cls, size, modes, selector = claim
        return (
            vol.storage_class == cls
            and (parse_quantity(vol.capacity) or 0) >= size
            and modes <= set(vol.access_modes)
            and all(vol.labels.get(k) == val for k, val in selector.items())
        )

    candidates = [[k for k, vol in enumerate(storage.volumes) if fits(c, vol)] for c in claims]
    owner: dict[int, int] = {}  # volume index -> claim index: each PersistentVolume binds one claim

    def assign(ci: int, tried: set[int]) -> bool:
        for vk in candidates[ci]:
            if vk not in tried:
                tried.add(vk)
                if vk not in owner or assign(owner[vk], tried):
                    owner[vk] = ci
                    return True
        return False

    reported: set[str] = set()
    for ci, claim in enumerate(claims):
        path, cls, size, modes, selector = claim
        if path in reported:
            continue
        if not candidates[ci]:
            wanted = f"class {cls!r}, at least {format_quantity(size)}, access modes {', '.join(sorted(modes))}"
            if selector:
                wanted += f", labels {dict(sorted(selector.items()))}"
            problems.append(
                Problem(path, f"no volume in storage.volumes can bind it ({wanted}); the claim would stay Pending")
            )
            reported.add(path)
        elif not assign(ci, set()):
            problems.append(
                Problem(
                    path,
                    f"every static volume that fits is taken by another claim (each PersistentVolume binds exactly "
                    f"one claim); add a volume to storage.volumes in class {cls!r}",
                )
            )
            reported.add(path)
    return problems


def format_quantity(value: float) -> str:
    for suffix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= factor and (value / factor).is_integer():
            return f"{int(value / factor)}{suffix}"
    return f"{value:g}"


# --------------------------------------------------------------------------- entry points

TOP_LEVEL_KEYS = (
    "environment", "cluster", "schedulableControlPlane", "addons", "helm", "mysql", "apps", "storage",
    *s.SECRET_KEYS,
)  # fmt: skip


def parse_config(
    values: Mapping[str, Any],
    *,
    project_root: Path | None = None,
    source: str = "",
    secrets_required: bool = True,
) -> s.PlatformSpec:
    """Build the typed spec from the `k8s-platform:` keys (namespace stripped).

    Secret keys must be given as `SECRET`; a plain value for one is an error. A secret
    that is not set yet is an error with `secrets_required` (the program) and a warning
    without it (`validate`, `inventory`, `render`: planning works before secrets exist).
    Raises `ConfigError` with every problem found.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if not isinstance(values, Mapping):
        raise ConfigError([Problem("config", f"must be a mapping of keys, not {type_name(values)}")], source)
    top = Reader(values, "", problems, warnings)
    top.secrets_required = secrets_required

    secrets: dict[str, Any] = {}
    plain_secrets: set[str] = set()
    for key in s.SECRET_KEYS:
        value = top.raw(key)
        if value is _MISSING:
            continue
        if isinstance(value, SecretMarker):
            secrets[key] = value
        else:
            # never echo the value: it is meant to be secret
            top.error(key, f"is in plain text; set it as a secret: pulumi config set --secret {key}")
            plain_secrets.add(key)

    env = top.text("environment", required=True, choices=ENVIRONMENTS)
    # the section models' findings land beside the reader's; rules may depend on these
    found = Findings("", problems, warnings)
    context = {"environment": env, "project_root": project_root}
    cluster = _parse_cluster(top.mapping("cluster"), env, secrets)
    schedulable = top.flag("schedulableControlPlane", True)
    addons = (validate_section(AddonsConfig, top.value("addons"), "addons", found) or AddonsConfig()).args()
    helm = (validate_section(HelmConfig, top.value("helm"), "helm", found, context=context) or HelmConfig()).args()
    mysql = (validate_section(MySQLConfig, top.value("mysql"), "mysql", found, context=context) or MySQLConfig()).args()
    if mysql.enabled:
        for key in (s.SECRET_MYSQL_ROOT_PASSWORD, s.SECRET_MYSQL_REPLICATION_PASSWORD):
            if key not in secrets:
                top.missing_secret(key, f"is required when mysql.enabled is true (pulumi config set --secret {key})")
    apps = _read_apps(top, found, context, addons)
    storage = (validate_section(StorageConfig, top.value("storage"), "storage", found) or StorageConfig()).args()
    problems.extend(_check_storage(storage, cluster, addons))
    problems.extend(_check_static_claims(storage, apps, mysql))
    _check_named_secrets(top, apps, mysql, secrets)
    dns_domain = cluster.extra_vars.get("dns_domain")
    if addons.mesh is not None and addons.mesh.enabled and dns_domain not in (None, addons.mesh.cluster_domain):
        problems.append(
            Problem(
                "addons.mesh.clusterDomain",
                f"is {addons.mesh.cluster_domain!r} but cluster.extraVars.dns_domain is {dns_domain!r}; "
                "mesh hosts are Service FQDNs, so they must match",
            )
        )
    _check_transports(problems, warnings, env, cluster, addons, helm)
    _check_addresses(problems, warnings, cluster, addons)
    if mysql.enabled and cluster.mode == "kubespray" and cluster.network_plugin in NO_NETWORK_POLICY_PLUGINS:
        # MySQL's NetworkPolicy (only the apps it names reach port 3306) is the only thing
        # between every pod and the database; these plugins accept it and enforce nothing
        (problems if env == "prod" else warnings).append(Problem(
            "cluster.networkPlugin",
            f"{cluster.network_plugin} does not enforce NetworkPolicy, so MySQL's policy would not keep other pods "
            "out; use calico, cilium, kube-router or kube-ovn" + (" in prod" if env == "prod" else ""),
        ))  # fmt: skip
    for app_index, app in enumerate(apps):
        if app.service.type == "LoadBalancer" and not addons.load_balancer.enabled and cluster.mode == "kubespray":
            # Bare metal has no cloud load balancer: the Service would wait forever for an address.
            problems.append(
                Problem(
                    f"apps[{app_index}].service.type",
                    "LoadBalancer needs addons.loadBalancer.enabled (MetalLB) on bare metal, "
                    "or the Service never gets an address; enable it or use NodePort/Ingress",
                )
            )
    top.done()

    if problems:
        # a plain-text secret is one problem, not also "is required"
        problems = [p for p in problems if not (p.path in plain_secrets and "is required" in p.message)]
        raise ConfigError(problems, source)
    return s.PlatformSpec(
        environment=env,  # type: ignore[arg-type]
        cluster=cluster,
        schedulable_control_plane=schedulable,
        addons=addons,
        helm=helm,
        mysql=mysql,
        apps=apps,
        secrets_set=frozenset(secrets),
        storage=storage,
        warnings=tuple(str(w) for w in warnings),
    )


def _check_transports(
    problems: list[Problem],
    warnings: list[Problem],
    env: str,
    cluster: s.ClusterSpec,
    addons: s.AddonsSpec,
    helm: s.HelmSpec,
) -> None:
    """Code and charts are fetched over transports that authenticate the server outside dev.

    A plain http:// or git:// source can be swapped in transit: kubespray runs as root on
    every node, a chart installs with cluster-admin. dev may use one (a local mirror) with
    a warning; staging and prod may not. Staging and prod also pin the kubespray commit.
    """
    sources: list[tuple[str, str]] = []
    if cluster.kubespray is not None:
        sources.append(("cluster.kubespray.source", cluster.kubespray.source))
        if env != "dev" and not cluster.kubespray.commit:
            problems.append(Problem(
                "cluster.kubespray.commit",
                f"{env} needs the commit that kubespray {cluster.kubespray.version} must resolve to (tags move): "
                "set it to the release's commit hash (`git ls-remote <source> refs/tags/<version>`)",
            ))  # fmt: skip
    sources.append(("cluster.imageRepos.files", cluster.image_repos.files))
    for key, addon in (("ingress", addons.ingress), ("storage", addons.storage), ("metricsServer", addons.metrics_server),
                       ("loadBalancer", addons.load_balancer), ("mesh", addons.mesh)):  # fmt: skip
        if addon is not None and addon.enabled:
            sources.append((f"addons.{key}.repo", addon.chart.repo))
    for i, release in enumerate(helm.releases):
        sources.append((f"helm.releases[{i}].repo", release.repo))
    for path, url in sources:
        scheme = url.split("://", 1)[0] if "://" in url else "file"
        if not url or scheme in AUTHENTICATED_SCHEMES or _is_loopback_url(url):
            continue
        why = f"is fetched over {scheme}://, which does not authenticate the server"
        if env == "dev":
            warnings.append(Problem(path, f"{why}; dev allows it, staging and prod need https://, ssh:// or oci://"))
        else:
            problems.append(Problem(path, f"{why}; {env} needs https://, ssh:// or oci:// (or a mirror serving one)"))


def _pool_range(entry: str) -> tuple[Any, Any] | None:
    """(first, last) address of a MetalLB pool entry (CIDR or a-b range), None if malformed."""
    try:
        if "-" in entry:
            lo, _, hi = entry.partition("-")
            return ipaddress.ip_address(lo.strip()), ipaddress.ip_address(hi.strip())
        net = ipaddress.ip_network(entry, strict=False)
        return net[0], net[-1]
    except ValueError:
        return None


def _check_addresses(
    problems: list[Problem], warnings: list[Problem], cluster: s.ClusterSpec, addons: s.AddonsSpec
) -> None:
    """Addresses that must not collide with the nodes', and an API endpoint the nodes can reach."""
    node_ips: dict[Any, str] = {}
    for node in cluster.nodes:
        for value in {node.address, node.ip}:
            if value and is_ip(value):
                node_ips[ipaddress.ip_address(value)] = node.name
    if addons.load_balancer.enabled:
        for i, entry in enumerate(addons.load_balancer.addresses):
            rng = _pool_range(entry)
            if rng is None:
                continue
            hits = sorted(
                {name for ip, name in node_ips.items() if ip.version == rng[0].version and rng[0] <= ip <= rng[1]}
            )
            if hits:
                problems.append(Problem(
                    f"addons.loadBalancer.addresses[{i}]",
                    f"overlaps the address of node(s) {', '.join(hits)}: MetalLB would answer ARP for a node's own "
                    "address; give the pool addresses no machine uses",
                ))  # fmt: skip
            api = cluster.api_access
            if api.mode != "localProxy" and is_ip(api.address):
                vip = ipaddress.ip_address(api.address)
                if vip.version == rng[0].version and rng[0] <= vip <= rng[1]:
                    problems.append(Problem(
                        f"addons.loadBalancer.addresses[{i}]",
                        f"contains the API server's address {api.address} (cluster.apiAccess): MetalLB could hand it "
                        "to a Service; leave it out of the pool",
                    ))  # fmt: skip
    if cluster.mode == "kubespray" and cluster.api_server_endpoint and node_ips:
        host = api_server_host(cluster)
        if is_ip(host):
            ip = ipaddress.ip_address(host)
            nets = {ipaddress.ip_network(f"{n}/{24 if n.version == 4 else 64}", strict=False) for n in node_ips}
            if not any(ip in net for net in nets):
                warnings.append(Problem(
                    "cluster.apiServerEndpoint",
                    f"{host} is outside the nodes' networks (their /24 or /64): fine for a public or NAT address, "
                    "but check that clients and the nodes reach it",
                ))  # fmt: skip


def _is_loopback_url(url: str) -> bool:
    """http:// to this machine itself (a local mirror): nothing travels a network."""
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_named_secrets(top: Reader, apps: tuple[s.AppSpec, ...], mysql: s.MySQLSpec, secrets: dict[str, Any]) -> None:
    """Secret keys the settings name (`apps[].secretEnv`, `mysql.users[].passwordSecret`) become legal
    top-level keys; each must be a secret."""
    referenced: dict[str, str] = {}
    for i, app in enumerate(apps):
        for env_name, key in sorted(app.secret_env.items()):
            referenced.setdefault(key, f"apps[{i}].secretEnv.{env_name}")
    for i, user in enumerate(mysql.users if mysql.enabled else ()):
        referenced.setdefault(user.password_secret, f"mysql.users[{i}].passwordSecret")
    for key, where in sorted(referenced.items()):
        hint = f"pulumi config set --secret {key}"
        if key in s.SECRET_KEYS:
            if key not in secrets and top.raw(key) is _MISSING:
                top.missing_secret(where, f"references the secret {NAMESPACE}:{key}, which is not set: {hint}")
            continue
        value = top.raw(key)
        if value is _MISSING:
            top.missing_secret(where, f"references the secret {NAMESPACE}:{key}, which is not set: {hint}")
        elif isinstance(value, SecretMarker):
            secrets[key] = value
        else:
            # never echo the value: it is meant to be secret
            top.error(key, f"is in plain text; set it as a secret: {hint}")


def _near_namespace(ns: str) -> bool:
    """A namespace that is a typo of the project's (other providers' namespaces are fine)."""
    squashed = re.sub(r"[^a-z0-9]", "", ns.lower())
    return squashed == re.sub(r"[^a-z0-9]", "", NAMESPACE) or bool(
        difflib.get_close_matches(ns.lower(), [NAMESPACE], n=1, cutoff=0.8)
    )


def strip_namespace(config: Mapping[str, Any], source: str = "") -> dict[str, Any]:
    """`k8s-platform:foo` → `foo`; keys of other namespaces (e.g. `kubernetes:`) are left out.

    A key without a namespace is reported, since Pulumi would treat it as belonging
    to the project and a typo would otherwise go unnoticed.
    """
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in config.items():
        if not isinstance(key, str):
            problems.append(Problem(str(key), "config keys must be strings"))
            continue
        ns, sep, name = key.partition(":")
        if not sep:
            out[key] = value  # Pulumi puts un-namespaced keys in the project namespace
        elif ns == NAMESPACE:
            out[name] = value
        elif _near_namespace(ns):
            # `k8s_platform:mysql:` would be silently ignored and MySQL would vanish
            problems.append(Problem(key, f"unknown config namespace {ns!r} (did you mean '{NAMESPACE}:{name}'?)"))
    if problems:
        raise ConfigError(problems, source)
    return out

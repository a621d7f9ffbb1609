"""Parse and validate a stack's `k8s-platform:` config into a `PlatformSpec`.

Every problem is collected, never just the first: `ConfigError.problems` holds
`Problem(path, message)` pairs that render as `<key.path>: <message>`. Nothing
here touches the network, the Pulumi engine or the file system beyond checking
that referenced values files exist. Secret values never enter this module: the
caller passes `SECRET` markers for keys that were set as secrets, so no message
can echo a secret.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks import spec as s
from stacks.catalog import DEFAULT_ADDON_CHARTS

NAMESPACE = "k8s-platform"


class _SecretMarker:
    """Stands for a value that was set as a secret (`secure:`); carries no plaintext."""

    def __repr__(self) -> str:
        return "<secret>"


SECRET = _SecretMarker()


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """The stack config is invalid; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head}{len(self.problems)} config problem(s):\n{lines}")


# --------------------------------------------------------------------------- checks

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$"
)
_KUBESPRAY_VERSION = re.compile(r"^v\d+\.\d+\.\d+(-(alpha|beta|rc)\.?\d+)?$|^[0-9a-f]{40}$")
_KUBE_VERSION = re.compile(r"^v?(1\.\d{1,2}\.\d{1,3})$")
_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE]\d+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT_OR_PERCENT = re.compile(r"^(\d+|\d{1,3}%)$")
_REGISTRY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9._-]+)*$")
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._/-][a-z0-9]+|:\d+/)*)(:(?P<tag>[\w][\w.-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$"
)

NETWORK_PLUGINS = ("calico", "cilium", "flannel", "kube-ovn", "kube-router", "macvlan", "custom_cni", "cni")
CONTAINER_MANAGERS = ("containerd", "crio", "docker")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
ENVIRONMENTS = ("dev", "staging", "prod")
NODE_PORT_RANGE = (30000, 32767)

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
    "gcr_image_repo": "cluster.imageRepos.gcr",
    "docker_image_repo": "cluster.imageRepos.docker",
    "quay_image_repo": "cluster.imageRepos.quay",
    "github_image_repo": "cluster.imageRepos.github",
    "files_repo": "cluster.imageRepos.files",
    "download_run_once": "cluster.download.runOnce",
    "download_localhost": "cluster.download.localhost",
}


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_host(value: str) -> bool:
    if re.fullmatch(r"[\d.]+", value):
        return is_ip(value)  # all digits and dots is a mistyped IPv4 address, not a hostname
    return is_ip(value) or bool(_HOSTNAME.match(value))


def is_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    m = re.match(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.+)$", value)
    if not m or m.group("scheme") not in schemes:
        return False
    rest = m.group("rest")
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    host = authority
    if authority.startswith("["):
        host = authority[1 : authority.find("]")] if "]" in authority else ""
    elif ":" in authority:
        host, port = authority.rsplit(":", 1)
        if not port.isdigit() or not 0 < int(port) < 65536:
            return False
    return bool(host) and is_host(host)


def url_has_password(value: str) -> bool:
    authority = value.split("://", 1)[-1].split("/", 1)[0]
    return "@" in authority and ":" in authority.rsplit("@", 1)[0]


def parse_quantity(value: str) -> float | None:
    """A Kubernetes quantity as a number (bytes or cores), None if malformed."""
    m = _QUANTITY.match(value)
    if not m:
        return None
    number = float(m.group(1))
    suffix = m.group(3) or ""
    factors = {
        "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    }  # fmt: skip
    if suffix[:1] in ("e", "E") and suffix[1:].isdigit():
        return number * 10 ** int(suffix[1:])
    return number * factors[suffix]


def image_problem(image: str) -> str | None:
    """Why an image reference is not acceptable (unpinned, malformed), or None."""
    m = _IMAGE.match(image)
    if not m:
        return f"{image!r} is not an image reference like 'registry/name:1.2.3'"
    if m.group("digest"):
        return None
    tag = m.group("tag")
    if not tag:
        return f"{image!r} has no tag; pin a version, e.g. '{image}:1.2.3'"
    if tag == "latest":
        return f"{image!r} uses 'latest'; pin a version so every environment runs the same image"
    return None


def normalize_kube_version(value: str) -> str:
    """kubespray ≥ 2.28 takes kube_version without the leading 'v'."""
    return value[1:] if value.startswith("v") else value


# --------------------------------------------------------------------------- reader

_MISSING = object()


class Reader:
    """Reads one mapping of the config, recording problems under its key path."""

    def __init__(self, data: Any, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if data is None or data is _MISSING:
            data = {}
        if not isinstance(data, Mapping):
            self.error("", f"must be a mapping (key: value), not {_type_name(data)}")
            data = {}
        self.data: Mapping[str, Any] = data

    # paths and errors
    def sub(self, key: str) -> str:
        if not key:
            return self.path
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.sub(key), message))

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key, _MISSING)

    # typed getters
    def str(
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
        if isinstance(value, _SecretMarker):
            self.error(key, "is not a secret setting; set it in plain text")
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(key, f"must be a string, not {_type_name(value)}")
            return default
        value = str(value)
        if choices is not None and value not in choices:
            self.error(key, f"{value!r} is not one of {', '.join(choices)}{_did_you_mean(value, choices)}")
            return default
        if check is not None and value != "":
            msg = check(value)
            if msg:
                self.error(key, msg)
                return default
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, not {_type_name(value)}")
            return default
        return value

    def int(self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be a whole number, not {_type_name(value)}")
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
        value = self.int(key, 0, minimum=minimum, maximum=maximum)
        return None if len(self.problems) > before else value

    def mapping(self, key: str) -> Reader:
        return Reader(self.raw(key), self.sub(key), self.problems)

    def items(self, key: str) -> list[Reader]:
        """One Reader per element of the list under `key`, with `key[i]` paths."""
        return [Reader(item, self.sub(f"{key}[{i}]"), self.problems) for i, item in enumerate(self.list(key))]

    def list(self, key: str) -> list[Any]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"must be a list, not {_type_name(value)}")
            return []
        return value

    def str_list(self, key: str, check: Callable[[str], str | None] | None = None) -> tuple[str, ...]:
        out: list[str] = []
        for i, item in enumerate(self.list(key)):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.error(f"{key}[{i}]", f"must be a string, not {_type_name(item)}")
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
            self.error(key, f"must be a mapping, not {_type_name(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.error(key, f"keys must be strings, not {_type_name(k)}")
                continue
            if key_check and (msg := key_check(k)):
                self.error(f"{key}.{k}", msg)
                continue
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                self.error(f"{key}.{k}", f"must be a string, not {_type_name(v)}")
                continue
            out[k] = str(v)
        return out

    def any_map(self, key: str) -> dict[str, Any]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(key, f"must be a mapping, not {_type_name(value)}")
            return {}
        if not all(isinstance(k, str) for k in value):
            self.error(key, "keys must be strings")
            return {}
        return dict(value)

    def done(self) -> None:
        """Report keys nobody asked for, with a did-you-mean."""
        for key in self.data:
            if key not in self.seen:
                self.error(str(key), f"unknown key{_did_you_mean(str(key), sorted(self.seen))}")


def _type_name(value: Any) -> str:
    if isinstance(value, _SecretMarker):
        return "a secret"
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "a mapping" if isinstance(value, Mapping) else type(value).__name__
    )


def _did_you_mean(value: str, candidates: Sequence[str]) -> str:
    lowered = {c.lower(): c for c in candidates}
    if value.lower() in lowered:
        return f" (did you mean {lowered[value.lower()]!r}?)"
    close = difflib.get_close_matches(value, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _label_check(what: str, max_len: int = 63) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if len(value) > max_len or not _LABEL.match(value):
            return (
                f"{value!r} is not a valid {what}: lowercase letters, digits and '-', "
                f"starting and ending with a letter or digit, at most {max_len} characters (RFC 1123)"
            )
        return None

    return check


def _subdomain_check(what: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if len(value) > 253 or not _SUBDOMAIN.match(value):
            return f"{value!r} is not a valid {what}: lowercase RFC 1123 DNS name (letters, digits, '-', '.')"
        return None

    return check


def _url_check(schemes: tuple[str, ...] = ("http", "https")) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not is_url(value, schemes):
            return f"{value!r} is not a valid URL; expected {' or '.join(s + '://host[:port][/path]' for s in schemes)}"
        return None

    return check


def _host_check(value: str) -> str | None:
    return None if is_host(value) else f"{value!r} is not a valid IP address or hostname"


def _ip_check(value: str) -> str | None:
    return None if is_ip(value) else f"{value!r} is not a valid IP address"


# --------------------------------------------------------------------------- sections


def _parse_nodes(r: Reader, mode: str, env: str) -> tuple[s.Node, ...]:
    nodes: list[s.Node] = []
    raw_nodes = r.items("nodes")
    names: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for i, n in enumerate(raw_nodes):
        name = n.str("name", required=True, check=_subdomain_check("node name"))
        address = n.str("address", required=(mode == "kubespray"), check=_host_check)
        ip = n.str("ip", check=_ip_check)
        roles: list[str] = []
        raw_roles = n.list("roles")
        if not raw_roles:
            n.error("roles", f"is required: one or more of {', '.join(s.ROLES)}")
        for j, role in enumerate(raw_roles):
            if role not in s.ROLES:
                n.error(
                    f"roles[{j}]",
                    f"unknown role {role!r}; roles are {', '.join(s.ROLES)}{_did_you_mean(str(role), s.ROLES)}",
                )
            elif role in roles:
                n.error(f"roles[{j}]", f"role {role!r} is listed twice")
            else:
                roles.append(role)
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
        nodes.append(s.Node(name=name, address=address, ip=ip, roles=tuple(roles)))

    if mode == "kubespray":
        if not raw_nodes:
            r.error("nodes", "at least one node is required in kubespray mode")
        else:
            cp = [n for n in nodes if n.is_control_plane]
            etcd = [n for n in nodes if n.is_etcd]
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
            if not any(n.is_worker for n in nodes):
                r.error("nodes", "no node has the 'worker' role; workloads would have nowhere to run")
    return tuple(nodes)


def _parse_cluster(r: Reader, env: str, secrets: Mapping[str, Any]) -> s.ClusterSpec:
    mode = r.str("mode", "kubespray", choices=("kubespray", "existing"))
    nodes = _parse_nodes(r, mode, env)
    kubespray_keys = (
        "kubespray", "controlHost", "ansibleUser", "ansibleKeyPath", "kubeVersion", "networkPlugin",
        "containerManager", "apiServerEndpoint", "proxy", "imageRepos", "download", "extraVars", "resetOnDestroy",
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
        kubeconfig = r.str("kubeconfig")
        context = r.str("context")
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
        version=kr.str(
            "version",
            required=True,
            check=lambda v: (
                None
                if _KUBESPRAY_VERSION.match(v)
                else f"{v!r} is not a kubespray release tag like 'v2.31.0' (or a full commit hash)"
            ),
        ),
        source=kr.str(
            "source",
            "https://github.com/kubernetes-sigs/kubespray.git",
            check=lambda v: (
                None
                if is_url(v, ("https", "http", "ssh", "git", "file")) or v.startswith("/")
                else f"{v!r} is not a git URL (https://, ssh://, git://, file://) or an absolute path on the control host"
            ),
        ),
        workdir=kr.str("workdir", "~/kubespray", check=_path_check),
    )
    kr.done()

    ch = r.mapping("controlHost")
    jump_r = ch.mapping("proxyJump")
    jump_host = jump_r.str("host", check=_host_check)
    jump = s.ProxyJump(
        host=jump_host,
        port=jump_r.int("port", 22, minimum=1, maximum=65535),
        user=jump_r.str("user", check=_label_check("user name", 32)),
    )
    jump_r.done()
    if jump_host and not jump.user:
        jump_r.error("user", "is required when proxyJump.host is set")
    control_host = s.ControlHost(
        host=ch.str("host", required=True, check=_host_check),
        port=ch.int("port", 22, minimum=1, maximum=65535),
        user=ch.str("user", required=True, check=_label_check("user name", 32)),
        host_key=ch.str("hostKey", check=_host_key_check),
        proxy_jump=jump if jump_host else None,
    )
    if env == "prod" and not control_host.host_key:
        ch.error("hostKey", "prod requires the control host's SSH host key pinned (e.g. 'ssh-ed25519 AAAA…')")
    ch.done()

    if s.SECRET_SSH_PRIVATE_KEY not in secrets:
        r.problems.append(
            Problem(
                s.SECRET_SSH_PRIVATE_KEY,
                "is required in kubespray mode: the key that reaches the control host "
                f"(pulumi config set --secret {s.SECRET_SSH_PRIVATE_KEY} < ~/.ssh/id_ed25519)",
            )
        )

    px = r.mapping("proxy")
    proxy = s.Proxy(
        http=px.str("http", check=_proxy_check),
        https=px.str("https", check=_proxy_check),
        no_proxy=px.str("noProxy"),
    )
    px.done()

    ir = r.mapping("imageRepos")
    registry_check = _registry_check
    repos = s.ImageRepos(
        kube=ir.str("kube", check=registry_check),
        gcr=ir.str("gcr", check=registry_check),
        docker=ir.str("docker", check=registry_check),
        quay=ir.str("quay", check=registry_check),
        github=ir.str("github", check=registry_check),
        files=ir.str("files", check=_url_check()),
    )
    ir.done()

    dr = r.mapping("download")
    download = s.Download(run_once=dr.bool("runOnce", False), localhost=dr.bool("localhost", False))
    dr.done()
    if download.localhost and not download.run_once:
        dr.error("localhost", "needs download.runOnce: true (kubespray downloads once, on the control host)")

    extra = r.any_map("extraVars")
    for key in extra:
        if key in MANAGED_GROUP_VARS:
            r.error(f"extraVars.{key}", f"is managed by the program; set {MANAGED_GROUP_VARS[key]} instead")

    endpoint = r.str("apiServerEndpoint", check=_endpoint_check)
    reset = r.bool("resetOnDestroy", False)
    if env == "prod" and reset:
        r.error("resetOnDestroy", "must be false in prod: reset.yml wipes every node")

    spec = s.ClusterSpec(
        mode="kubespray",
        kubespray=kubespray,
        control_host=control_host,
        ansible_user=r.str("ansibleUser", required=True, check=_label_check("user name", 32)),
        ansible_key_path=r.str("ansibleKeyPath", check=_path_check),
        nodes=nodes,
        kube_version=normalize_kube_version(
            r.str(
                "kubeVersion",
                check=lambda v: (
                    None
                    if _KUBE_VERSION.match(v)
                    else f"{v!r} is not a Kubernetes version like '1.34.4' (empty = kubespray's default)"
                ),
            )
        ),
        network_plugin=r.str("networkPlugin", "calico", choices=NETWORK_PLUGINS),
        container_manager=r.str("containerManager", "containerd", choices=CONTAINER_MANAGERS),
        api_server_endpoint=endpoint,
        proxy=proxy,
        image_repos=repos,
        download=download,
        extra_vars=extra,
        reset_on_destroy=reset,
    )
    r.done()
    return spec


def _path_check(value: str) -> str | None:
    if "\n" in value or "'" in value or '"' in value or "$" in value or "`" in value:
        return f"{value!r} contains characters a path on the control host may not have (quotes, $, `, newline)"
    if not (value.startswith("/") or value.startswith("~/")):
        return f"{value!r} must be absolute or start with '~/'"
    return None


def _host_key_check(value: str) -> str | None:
    parts = value.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        return "expected a public host key like 'ssh-ed25519 AAAAC3…' (from ssh-keyscan)"
    return None


def _proxy_check(value: str) -> str | None:
    if not is_url(value):
        return f"{value!r} is not a proxy URL like 'http://proxy.example.com:3128'"
    if url_has_password(value):
        return (
            "must not contain a password: stack files are not secret; use a proxy that needs none or an IP allow-list"
        )
    return None


def _registry_check(value: str) -> str | None:
    if not _REGISTRY.match(value):
        return f"{value!r} is not a registry like 'registry.example.com:5000/mirror' (no scheme)"
    return None


def _endpoint_check(value: str) -> str | None:
    if value.startswith("https://"):
        return None if is_url(value, ("https",)) else f"{value!r} is not a valid https URL"
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return None if is_host(host) else f"{value!r} is not 'https://host:port', a hostname or an IP address"


def _parse_chart_source(r: Reader, default: s.ChartSource) -> s.ChartSource:
    return s.ChartSource(
        repo=r.str("repo", default.repo, check=_url_check(("https", "http", "oci"))),
        chart=r.str("chart", default.chart),
        version=r.str("version", default.version, check=_semver_check),
        namespace=r.str("namespace", default.namespace, check=_label_check("namespace")),
        values=r.any_map("values") or dict(default.values),
    )


def _semver_check(value: str) -> str | None:
    return None if _SEMVER.match(value) else f"{value!r} is not a semantic version like '1.2.3'"


def _parse_addons(r: Reader) -> s.AddonsSpec:
    ing = r.mapping("ingress")
    ingress = s.IngressAddon(
        enabled=ing.bool("enabled", True),
        chart=_parse_chart_source(ing, DEFAULT_ADDON_CHARTS["ingress"]),
        class_name=ing.str("className", "traefik", check=_subdomain_check("IngressClass name")),
    )
    ing.done()
    st = r.mapping("storage")
    storage = s.StorageAddon(
        enabled=st.bool("enabled", True),
        chart=_parse_chart_source(st, DEFAULT_ADDON_CHARTS["storage"]),
        default_class=st.str("defaultClass", "local-path", check=_subdomain_check("StorageClass name")),
    )
    st.done()
    ms = r.mapping("metricsServer")
    metrics = s.Addon(
        enabled=ms.bool("enabled", True), chart=_parse_chart_source(ms, DEFAULT_ADDON_CHARTS["metricsServer"])
    )
    ms.done()
    lb = r.mapping("loadBalancer")
    load_balancer = s.LoadBalancerAddon(
        enabled=lb.bool("enabled", False),
        chart=_parse_chart_source(lb, DEFAULT_ADDON_CHARTS["loadBalancer"]),
        addresses=lb.str_list("addresses", check=_pool_check),
    )
    if load_balancer.enabled and not load_balancer.addresses and not lb.has("addresses"):
        lb.error(
            "addresses", "is required when the load balancer is enabled: CIDRs or ranges like '10.0.0.10-10.0.0.20'"
        )
    elif load_balancer.enabled and not lb.list("addresses"):
        lb.error("addresses", "is empty; MetalLB needs at least one address range to hand out")
    lb.done()
    r.done()
    return s.AddonsSpec(ingress=ingress, storage=storage, metrics_server=metrics, load_balancer=load_balancer)


def _pool_check(value: str) -> str | None:
    if "-" in value:
        lo, _, hi = value.partition("-")
        if is_ip(lo.strip()) and is_ip(hi.strip()):
            return None
    else:
        try:
            ipaddress.ip_network(value, strict=False)
            return None
        except ValueError:
            pass
    return f"{value!r} is not a CIDR ('10.0.0.0/28') or an address range ('10.0.0.10-10.0.0.20')"


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


def _parse_helm(r: Reader, env: str, project_root: Path | None) -> s.HelmSpec:
    mirrors: dict[str, str] = {}
    mr = r.str_map("repoMirrors")
    for upstream, mirror in mr.items():
        if not is_url(upstream, ("https", "http", "oci")):
            r.error(f"repoMirrors.{upstream}", "the upstream must be a repository URL (https:// or oci://)")
        elif not is_url(mirror, ("https", "http", "oci")):
            r.error(f"repoMirrors.{upstream}", f"{mirror!r} is not a repository URL (https:// or oci://)")
        else:
            mirrors[upstream.rstrip("/")] = mirror
    releases: list[s.HelmReleaseSpec] = []
    seen: dict[tuple[str, str], int] = {}
    for i, rr in enumerate(r.items("releases")):
        name = rr.str("name", required=True, check=_label_check("release name", 53))
        namespace = rr.str("namespace", "default", check=_label_check("namespace"))
        repo = rr.str("repo", required=True, check=_url_check(("https", "http", "oci")))
        chart = rr.str(
            "chart",
            required=True,
            check=lambda v: None if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", v) else f"{v!r} is not a chart name",
        )
        before = len(rr.problems)
        version = rr.str("version", check=_semver_check)
        if not version and len(rr.problems) == before and env != "dev":
            rr.error(
                "version", f"is required in {env}: pin the chart version (e.g. '8.5.0') so upgrades are deliberate"
            )
        values_files = rr.str_list("valuesFiles", check=lambda p: _values_file_check(p, project_root))
        release = s.HelmReleaseSpec(
            name=name,
            namespace=namespace,
            repo=mirrors.get(repo.rstrip("/"), repo),
            upstream_repo=repo,
            chart=chart,
            version=version,
            values=rr.any_map("values"),
            values_files=values_files,
            atomic=rr.bool("atomic", True),
            cleanup_on_fail=rr.bool("cleanupOnFail", True),
            timeout=rr.int("timeout", 600, minimum=1, maximum=86400),
            max_history=rr.int("maxHistory", 10, minimum=0, maximum=1000),
        )
        rr.done()
        key = (namespace, name)
        if name and key in seen:
            rr.error("name", f"release {name!r} already exists in namespace {namespace!r} (releases[{seen[key]}])")
        seen.setdefault(key, i)
        releases.append(release)
    r.done()
    return s.HelmSpec(repo_mirrors=mirrors, releases=tuple(releases))


def _values_file_check(path: str, root: Path | None) -> str | None:
    if path.startswith("/") or ".." in Path(path).parts:
        return f"{path!r} must be a path inside the project (relative, no '..')"
    if root is not None and not (root / path).is_file():
        return f"values file {path!r} does not exist (paths are relative to the project root {root})"
    return None


def _parse_peers(r: Reader, key: str) -> tuple[s.PeerSelector, ...]:
    peers = []
    for pr in r.items(key):
        peers.append(
            s.PeerSelector(
                namespace=pr.str("namespace", required=True, check=_label_check("namespace")),
                pod_labels=pr.str_map("podLabels"),
            )
        )
        pr.done()
    return tuple(peers)


def _parse_mysql(r: Reader, env: str, secrets: Mapping[str, Any]) -> s.MySQLSpec:
    enabled = r.bool("enabled", False)
    st = r.mapping("storage")
    size = st.str(
        "size",
        "10Gi",
        check=lambda v: None if parse_quantity(v) else f"{v!r} is not a storage size like '10Gi'",
    )
    storage = s.MySQLStorage(
        size=size, storage_class=st.str("storageClass", check=_subdomain_check("StorageClass name"))
    )
    st.done()
    replicas = r.int("replicas", 3, minimum=1, maximum=9)
    if enabled and env == "prod" and replicas < 3:
        r.error("replicas", f"prod needs at least 3 members (1 primary + 2 replicas), got {replicas}")
    spec = s.MySQLSpec(
        enabled=enabled,
        name=r.str("name", "mysql", check=_label_check("name", 40)),
        namespace=r.str("namespace", "data", check=_label_check("namespace")),
        replicas=replicas,
        image=r.str("image", "mysql:8.4", check=image_problem),
        storage=storage,
        resources=_parse_resources(r.mapping("resources")),
        allow_from=_parse_peers(r, "allowFrom"),
    )
    if enabled:
        image = spec.image
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        m = re.match(r"^(\d+)\.(\d+)", tag)
        if m and (int(m.group(1)), int(m.group(2))) < (8, 4):
            r.error("image", f"{image!r} is older than MySQL 8.4 LTS; replication here needs 8.4 or newer")
        for key in (s.SECRET_MYSQL_ROOT_PASSWORD, s.SECRET_MYSQL_REPLICATION_PASSWORD):
            if key not in secrets:
                r.problems.append(
                    Problem(key, f"is required when mysql.enabled is true (pulumi config set --secret {key})")
                )
    r.done()
    return spec


def _parse_probe(r: Reader) -> s.ProbeSpec:
    probe = s.ProbeSpec(
        path=r.str("path", check=lambda v: None if v.startswith("/") else f"{v!r} must start with '/'"),
        initial_delay_seconds=r.int("initialDelaySeconds", 0, minimum=0, maximum=3600),
        period_seconds=r.int("periodSeconds", 10, minimum=1, maximum=3600),
    )
    r.done()
    return probe


def _parse_apps(r: Reader, env: str, addons: s.AddonsSpec) -> tuple[s.AppSpec, ...]:
    apps: list[s.AppSpec] = []
    seen: dict[tuple[str, str], int] = {}
    node_ports: dict[int, int] = {}
    for i, a in enumerate(r.items("apps")):
        name = a.str("name", required=True, check=_label_check("app name", 50))
        namespace = a.str("namespace", "default", check=_label_check("namespace"))
        replicas = a.int("replicas", 1, minimum=0, maximum=1000)
        port = a.int("port", 80, minimum=1, maximum=65535)

        sv = a.mapping("service")
        stype = sv.str("type", "ClusterIP", choices=SERVICE_TYPES)
        node_port = sv.optional_int("nodePort")
        if node_port is not None:
            lo, hi = NODE_PORT_RANGE
            if stype != "NodePort":
                sv.error("nodePort", f"only applies to type NodePort (type is {stype})")
                node_port = None
            elif not lo <= node_port <= hi:
                sv.error("nodePort", f"{node_port} is outside the NodePort range {lo}-{hi}")
                node_port = None
            elif node_port in node_ports:
                sv.error("nodePort", f"{node_port} is already used by apps[{node_ports[node_port]}]")
            else:
                node_ports[node_port] = i
        service = s.ServiceSpec(type=stype, port=sv.int("port", port, minimum=1, maximum=65535), node_port=node_port)  # type: ignore[arg-type]
        sv.done()

        ingress = None
        if a.has("ingress") and a.raw("ingress") is not None:
            ig = a.mapping("ingress")
            ingress = s.IngressSpec(
                host=ig.str(
                    "host",
                    required=True,
                    check=lambda v: (
                        None
                        if _SUBDOMAIN.match(v.removeprefix("*.")) and len(v) <= 253
                        else f"{v!r} is not a DNS host name like 'app.example.com'"
                    ),
                ),
                path=ig.str("path", "/", check=lambda v: None if v.startswith("/") else f"{v!r} must start with '/'"),
                class_name=ig.str("className", check=_subdomain_check("IngressClass name")),
                tls_secret=ig.str("tlsSecret", check=_subdomain_check("Secret name")),
            )
            if not ingress.class_name and not addons.ingress.enabled:
                ig.error("className", "is required when addons.ingress is disabled (no default IngressClass)")
            ig.done()

        sr = a.mapping("strategy")
        strategy = s.StrategySpec(
            max_surge=sr.str("maxSurge", "25%", check=_int_or_percent),
            max_unavailable=sr.str("maxUnavailable", "0", check=_int_or_percent),
        )
        if strategy.max_surge in ("0", "0%") and strategy.max_unavailable in ("0", "0%"):
            sr.error("maxUnavailable", "maxSurge and maxUnavailable cannot both be 0: the rollout could never progress")
        sr.done()

        hpa = None
        if a.has("hpa") and a.raw("hpa") is not None:
            hr = a.mapping("hpa")
            hpa = s.HpaSpec(
                min_replicas=hr.int("minReplicas", max(replicas, 1), minimum=1, maximum=1000),
                max_replicas=hr.int("maxReplicas", max(replicas, 1), minimum=1, maximum=1000),
                cpu_utilization=hr.int("cpuUtilization", 80, minimum=1, maximum=100),
            )
            if hpa.max_replicas < hpa.min_replicas:
                hr.error("maxReplicas", f"{hpa.max_replicas} is below minReplicas {hpa.min_replicas}")
            hr.done()

        app = s.AppSpec(
            name=name,
            namespace=namespace,
            image=a.str("image", required=True, check=image_problem),
            replicas=replicas,
            port=port,
            service=service,
            ingress=ingress,
            resources=_parse_resources(a.mapping("resources")),
            env=a.str_map(
                "env",
                key_check=lambda k: None if _ENV_NAME.match(k) else f"{k!r} is not a valid environment variable name",
            ),
            revision_history_limit=a.int("revisionHistoryLimit", 10, minimum=0, maximum=100),
            strategy=strategy,
            readiness=_parse_probe(a.mapping("readiness")),
            liveness=_parse_probe(a.mapping("liveness")),
            hpa=hpa,
            run_as_user=a.optional_int("runAsUser", minimum=0, maximum=2**31 - 1),
            run_as_non_root=a.bool("runAsNonRoot", True),
            read_only_root_filesystem=a.bool("readOnlyRootFilesystem", False),
        )
        if app.run_as_non_root and app.run_as_user == 0:
            a.error("runAsUser", "0 is root; set runAsNonRoot: false if the image really needs root")
        a.done()
        key = (namespace, name)
        if name and key in seen:
            a.error("name", f"app {name!r} already exists in namespace {namespace!r} (apps[{seen[key]}])")
        seen.setdefault(key, i)
        apps.append(app)
    return tuple(apps)


def _int_or_percent(value: str) -> str | None:
    if not _INT_OR_PERCENT.match(value) or (value.endswith("%") and int(value[:-1]) > 100):
        return f"{value!r} must be a whole number or a percentage like '25%'"
    return None


# --------------------------------------------------------------------------- entry points

TOP_LEVEL_KEYS = (
    "environment", "cluster", "schedulableControlPlane", "addons", "helm", "mysql", "apps", *s.SECRET_KEYS,
)  # fmt: skip


def parse_config(
    values: Mapping[str, Any],
    *,
    project_root: Path | None = None,
    source: str = "",
) -> s.PlatformSpec:
    """Build the typed spec from the `k8s-platform:` keys (namespace stripped).

    Secret keys must be given as `SECRET`; a plain value for one is an error.
    Raises `ConfigError` with every problem found.
    """
    problems: list[Problem] = []
    if not isinstance(values, Mapping):
        raise ConfigError([Problem("config", f"must be a mapping of keys, not {_type_name(values)}")], source)
    top = Reader(values, "", problems)

    secrets: dict[str, Any] = {}
    for key in s.SECRET_KEYS:
        value = top.raw(key)
        if value is _MISSING:
            continue
        if isinstance(value, _SecretMarker):
            secrets[key] = value
        else:
            # never echo the value: it is meant to be secret
            top.error(key, f"is in plain text; set it as a secret: pulumi config set --secret {key}")

    env = top.str("environment", required=True, choices=ENVIRONMENTS)
    cluster = _parse_cluster(top.mapping("cluster"), env, secrets)
    schedulable = top.bool("schedulableControlPlane", True)
    addons = _parse_addons(top.mapping("addons"))
    helm = _parse_helm(top.mapping("helm"), env, project_root)
    mysql = _parse_mysql(top.mapping("mysql"), env, secrets)
    apps = _parse_apps(top, env, addons)
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
    if problems:
        raise ConfigError(problems, source)
    return out

"""Parse and validate a stack's `k8s-platform:` config into a `PlatformSpec`.

The stack's model composes the components' own config models (`components/*_config.py`:
one per section, one per app) and adds only the rules that span sections: cross-references
(apps and add-ons, claims and static volumes, names across apps), transports and addresses
per environment, and which secrets must be set.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from components.addons_config import AddonsConfig, AddonsSpec
from components.checks import (
    AUTHENTICATED_SCHEMES,
    is_ip,
    parse_quantity,
    url_host,
)
from components.cluster_config import NO_NETWORK_POLICY_PLUGINS, ClusterConfig, ClusterSpec, wrong_mode_keys
from components.config_model import SECRET as SECRET  # re-exported: callers mark secret keys with it
from components.config_model import (
    ConfigModel,
    Findings,
    Flag,
    Problem,
    SecretMarker,
    choice,
    did_you_mean,
    type_name,
    validate_section,
)
from components.helm_config import HelmConfig, HelmSpec
from components.kubespray_inventory import api_server_host
from components.mysql_config import MySQLConfig, MySQLSpec
from components.storage_config import StaticVolumeSpec, StorageConfig, StorageSpec
from components.vocabulary import (
    CONFIG_NAMESPACE,
    SECRET_KEYS,
    SECRET_KUBECONFIG,
    SECRET_MYSQL_REPLICATION_PASSWORD,
    SECRET_MYSQL_ROOT_PASSWORD,
    SECRET_SSH_PRIVATE_KEY,
    Environment,
)
from components.webapp_config import AppSpec, WebAppConfig


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

ENVIRONMENTS = ("dev", "staging", "prod")


class StackSettings(ConfigModel):
    """The stack's own settings (beside the sections the components read)."""

    environment: choice(*ENVIRONMENTS, required=True) = Field(  # type: ignore[valid-type]
        description="which guardrails apply: dev, staging or prod"
    )
    schedulable_control_plane: Flag = Field(
        True, description="remove the control-plane taint so workloads run there too"
    )


@dataclass
class _Keys:
    """The `k8s-platform:` keys of one stack file: which were read, and what was found."""

    values: Mapping[str, Any]
    found: Findings
    # a secret that is not set yet: a problem for the program, a warning for planning
    secrets_required: bool = True
    read: set[str] = field(default_factory=set)

    def value(self, key: str) -> Any:
        """The value under `key` as written, None when it is not set."""
        self.read.add(key)
        return self.values.get(key)

    def has(self, key: str) -> bool:
        self.read.add(key)
        return key in self.values

    def error(self, path: str, message: str) -> None:
        self.found.error(path, message)

    def missing_secret(self, path: str, message: str) -> None:
        """A secret the stack needs and has not set (path is absolute: secrets are top-level keys)."""
        (self.found.problems if self.secrets_required else self.found.warnings).append(Problem(path, message))

    def unknown(self) -> None:
        """Report keys nobody read, with a did-you-mean."""
        for key in self.values:
            if key not in self.read:
                self.error(str(key), f"unknown key{did_you_mean(str(key), sorted(self.read))}")


def _check_cluster_secrets(top: _Keys, cluster: ClusterSpec, secrets: Mapping[str, Any]) -> None:
    """The secrets each cluster mode needs: a kubeconfig (path or secret, one of them), or the SSH key."""
    if cluster.mode == "existing":
        if not cluster.kubeconfig and SECRET_KUBECONFIG not in secrets:
            top.error(
                "cluster.kubeconfig",
                f"mode: existing needs a kubeconfig: a path here, or the secret {NAMESPACE}:{SECRET_KUBECONFIG} "
                f"(pulumi config set --secret {SECRET_KUBECONFIG} < kubeconfig)",
            )
        if cluster.kubeconfig and SECRET_KUBECONFIG in secrets:
            top.error(
                "cluster.kubeconfig", f"set either this path or the secret {NAMESPACE}:{SECRET_KUBECONFIG}, not both"
            )
    elif SECRET_SSH_PRIVATE_KEY not in secrets:
        top.missing_secret(
            SECRET_SSH_PRIVATE_KEY,
            "is required in kubespray mode: the key that reaches the control host "
            f"(pulumi config set --secret {SECRET_SSH_PRIVATE_KEY} < ~/.ssh/id_ed25519)",
        )


def _read_apps(top: _Keys, context: Mapping[str, Any], addons: AddonsSpec) -> tuple[tuple[int, AppSpec], ...]:
    """Each app through its model (an app that cannot be read is left out, the others keep
    their index), then the rules across apps and against the add-ons."""
    raw = top.value("apps")
    if raw is not None and not isinstance(raw, list):
        top.error("apps", f"must be a list, not {type_name(raw)}")
        raw = []
    read: list[tuple[int, WebAppConfig]] = []
    for i, item in enumerate(raw or []):
        app = validate_section(WebAppConfig, item, f"apps[{i}]", top.found, context=context)
        if app is not None:
            read.append((i, app))
    seen: dict[tuple[str, str], int] = {}
    node_ports: dict[int, int] = {}
    for i, app in read:
        at = top.found.under(f"apps[{i}]")
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
    return tuple((i, app.args()) for i, app in read)


def _check_storage(storage: StorageSpec, cluster: ClusterSpec, addons: AddonsSpec) -> list[Problem]:
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


def _check_static_claims(
    storage: StorageSpec, apps: tuple[tuple[int, AppSpec], ...], mysql: MySQLSpec
) -> list[Problem]:
    """Claims on static classes must each find their own volume; selectors need a static class."""
    problems: list[Problem] = []
    static = storage.static_classes
    claims: list[tuple[str, str, float, frozenset[str], Mapping[str, str]]] = []
    for i, app in apps:
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

    def fits(claim: tuple[str, str, float, frozenset[str], Mapping[str, str]], vol: StaticVolumeSpec) -> bool:
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
    *SECRET_KEYS,
)  # fmt: skip


def parse_config(
    values: Mapping[str, Any],
    *,
    project_root: Path | None = None,
    source: str = "",
    secrets_required: bool = True,
) -> PlatformSpec:
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
    found = Findings("", problems, warnings)
    top = _Keys(values, found, secrets_required=secrets_required)

    secrets: dict[str, Any] = {}
    plain_secrets: set[str] = set()
    for key in SECRET_KEYS:
        if not top.has(key):
            continue
        if isinstance(top.value(key), SecretMarker):
            secrets[key] = top.value(key)
        else:
            # never echo the value: it is meant to be secret
            top.error(key, f"is in plain text; set it as a secret: pulumi config set --secret {key}")
            plain_secrets.add(key)

    own = {k: top.value(k) for k in ("environment", "schedulableControlPlane") if top.has(k)}
    settings = validate_section(StackSettings, own, "", found)
    env = settings.environment if settings else ""
    schedulable = settings.schedulable_control_plane if settings else True
    # rules may depend on the environment (tiers) and the project root (values files)
    context = {"environment": env, "project_root": project_root}

    raw_cluster, wrong_mode = wrong_mode_keys(top.value("cluster"))
    problems.extend(Problem(f"cluster.{key}", message) for key, message in wrong_mode)
    cluster_config = validate_section(ClusterConfig, raw_cluster, "cluster", found, context=context)
    cluster = (cluster_config or ClusterConfig()).args(env)
    _check_cluster_secrets(top, cluster, secrets)
    addons_config = validate_section(AddonsConfig, top.value("addons"), "addons", found) or AddonsConfig()
    # helm.repoMirrors redirects the add-ons' catalog charts too (and says when a mirror feeds nothing)
    helm_context = {**context, "addon_repos": addons_config.catalog_repos()}
    helm = (validate_section(HelmConfig, top.value("helm"), "helm", found, context=helm_context) or HelmConfig()).args()
    addons = addons_config.args(helm)
    mysql = (validate_section(MySQLConfig, top.value("mysql"), "mysql", found, context=context) or MySQLConfig()).args()
    if mysql.enabled:
        for key in (SECRET_MYSQL_ROOT_PASSWORD, SECRET_MYSQL_REPLICATION_PASSWORD):
            if key not in secrets:
                top.missing_secret(key, f"is required when mysql.enabled is true (pulumi config set --secret {key})")
    indexed_apps = _read_apps(top, context, addons)
    apps = tuple(app for _, app in indexed_apps)
    storage = (validate_section(StorageConfig, top.value("storage"), "storage", found) or StorageConfig()).args()
    problems.extend(_check_storage(storage, cluster, addons))
    problems.extend(_check_static_claims(storage, indexed_apps, mysql))
    _check_named_secrets(top, indexed_apps, mysql, secrets)
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
    for app_index, app in indexed_apps:
        if app.service.type == "LoadBalancer" and not addons.load_balancer.enabled and cluster.mode == "kubespray":
            # Bare metal has no cloud load balancer: the Service would wait forever for an address.
            problems.append(
                Problem(
                    f"apps[{app_index}].service.type",
                    "LoadBalancer needs addons.loadBalancer.enabled (MetalLB) on bare metal, "
                    "or the Service never gets an address; enable it or use NodePort/Ingress",
                )
            )
    top.unknown()

    if problems:
        # a plain-text secret is one problem, not also "is required"
        problems = [p for p in problems if not (p.path in plain_secrets and "is required" in p.message)]
        raise ConfigError(problems, source)
    return PlatformSpec(
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
    cluster: ClusterSpec,
    addons: AddonsSpec,
    helm: HelmSpec,
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
    problems: list[Problem], warnings: list[Problem], cluster: ClusterSpec, addons: AddonsSpec
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
    host = url_host(url)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_named_secrets(
    top: _Keys, apps: tuple[tuple[int, AppSpec], ...], mysql: MySQLSpec, secrets: dict[str, Any]
) -> None:
    """Secret keys the settings name (`apps[].secretEnv`, `mysql.users[].passwordSecret`) become legal
    top-level keys; each must be a secret."""
    referenced: dict[str, str] = {}
    for i, app in apps:
        for env_name, key in sorted(app.secret_env.items()):
            referenced.setdefault(key, f"apps[{i}].secretEnv.{env_name}")
    for i, user in enumerate(mysql.users if mysql.enabled else ()):
        referenced.setdefault(user.password_secret, f"mysql.users[{i}].passwordSecret")
    for key, where in sorted(referenced.items()):
        hint = f"pulumi config set --secret {key}"
        if key in SECRET_KEYS:
            if key not in secrets and not top.has(key):
                top.missing_secret(where, f"references the secret {NAMESPACE}:{key}, which is not set: {hint}")
            continue
        value = top.value(key)
        if not top.has(key):
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

"""One entry of a stack's `apps:` list: a stateless app (`WebApp`: Deployment, Service, and
optionally Ingress, HPA, ConfigMap, Secret, PVCs and mesh policy). Builds `AppSpec`.

Rules that need the rest of the stack (the ingress and mesh add-ons, other apps' names and
NodePorts, static volumes, secrets) are the stack's, in `stacks/config.py`. Kept apart from
`components/webapp.py` so that reading a stack never imports the Pulumi SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field

from components.checks import (
    format_seconds,
    image_problem,
    label_check,
    official_image,
    parse_duration,
    secret_key_check,
    subdomain_check,
)
from components.config_model import (
    ConfigModel,
    Findings,
    Flag,
    Required,
    Text,
    TextMap,
    build,
    checked,
    choice,
    did_you_mean,
    items,
    text_list,
    whole,
)
from components.pod_config import (
    AccessModes,
    Resources,
    ResourcesConfig,
    check_access_modes,
    check_labels,
    single_attach,
    size_check,
)
from components.vocabulary import DNS_SUBDOMAIN, ENV_NAME

# --------------------------------------------------------------------------- args: what the component receives

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]


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


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
NODE_PORT_RANGE = (30000, 32767)
CONFIG_MAP_MAX_BYTES = 1024 * 1024
RESERVED_VOLUME_NAMES = ("config",)  # the ConfigMap volume of apps[].config
MAX_INT32 = 2**31 - 1
# Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on conditions, which Istio's retryOn takes
# (plus bare HTTP status codes).
RETRY_ON = (
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
    "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
    "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
)  # fmt: skip
_INT_OR_PERCENT = re.compile(r"^(\d+|\d{1,3}%)$")
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# Where the warning about an official image under runAsNonRoot points: the why, the kubelet's
# message and the fixes are there once; `validate` prints the warning per app and per file.
ROOT_IMAGE_DOC, ROOT_IMAGE_SECTION = "docs/security.md", "Docker Official Images under runAsNonRoot"


def root_image_warning(image: str) -> str:
    """One line: an official image will likely not start under the platform's non-root default."""
    return (
        f"{image!r} is a Docker Official Image: most start as root, which runAsNonRoot (this app's default) "
        f'refuses; use an image built to run unprivileged or set runAsUser ({ROOT_IMAGE_DOC}, "{ROOT_IMAGE_SECTION}")'
    )


# --------------------------------------------------------------------------- value checks


def _http_path_check(value: str) -> str | None:
    return None if value.startswith("/") else f"{value!r} must start with '/'"


def _host_check(value: str) -> str | None:
    if DNS_SUBDOMAIN.fullmatch(value.removeprefix("*.")) and len(value) <= 253:
        return None
    return f"{value!r} is not a DNS host name like 'app.example.com'"


def _int_or_percent(value: str) -> str | None:
    if not _INT_OR_PERCENT.fullmatch(value) or (value.endswith("%") and int(value[:-1]) > 100):
        return f"{value!r} must be a whole number or a percentage like '25%'"
    return None


def _duration_check(value: str) -> str | None:
    if value.lstrip().startswith("-"):
        return f"{value!r} is negative; durations must be positive, like '250ms', '5s' or '1m'"
    seconds = parse_duration(value)
    if seconds is None:
        return f"{value!r} is not a duration like '250ms', '5s' or '1m' (a number and a unit: ms, s, m or h)"
    if seconds < 1e-3:
        return f"{value!r} must be at least 1ms: a zero duration disables or breaks the policy"
    return None


def _retry_on_check(value: str) -> str | None:
    for part in value.split(","):
        cond = part.strip()
        if re.fullmatch(r"[1-5]\d\d", cond):
            continue
        if cond not in RETRY_ON:
            return (
                f"unknown retry condition {cond!r}{did_you_mean(cond, RETRY_ON)}; use a comma-separated list of "
                f"{', '.join(RETRY_ON[:6])}, … or HTTP status codes like 503"
            )
    return None


def _config_map_key_check(key: str) -> str | None:
    if len(key) > 253 or not _CONFIG_MAP_KEY.fullmatch(key) or key in (".", "..") or key.startswith(".."):
        return (
            f"{key!r} is not a valid ConfigMap key: letters, digits, '-', '_' and '.', at most 253 characters, "
            "not starting with '..'"
        )
    return None


def _mount_path_check(value: str) -> str | None:
    if not value.startswith("/") or value == "/":
        return f"{value!r} must be an absolute directory in the container like '/etc/app' (not '/')"
    if ".." in value.split("/") or any(c.isspace() for c in value) or ":" in value:
        return f"{value!r} must not contain '..', ':' or whitespace"
    return None


def _check_env_names(names: dict[str, str], key: str, found: Findings) -> None:
    for name in names:
        if not ENV_NAME.fullmatch(name):
            found.error(f"{key}.{name}", f"{name!r} is not a valid environment variable name")


Duration = Annotated[Text, checked(_duration_check)]
HttpPath = Annotated[Text, checked(_http_path_check)]
MountPath = Annotated[Text, checked(_mount_path_check)]


# --------------------------------------------------------------------------- the parts of an app


class AppServiceConfig(ConfigModel):
    """The app's Service."""

    type: choice(*SERVICE_TYPES) = Field("ClusterIP", description="ClusterIP, NodePort (not in prod) or LoadBalancer")  # type: ignore[valid-type]
    port: whole(1, 65535) | None = Field(None, description="the Service's port; default: the app's port")  # type: ignore[valid-type]
    node_port: whole() | None = Field(  # type: ignore[valid-type]
        None, description=f"fixed NodePort ({NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}), type NodePort only"
    )

    def checks(self, found: Findings) -> None:
        env = found.context.get("environment", "dev")
        if self.type == "NodePort" and env == "prod":
            found.error(
                "type",
                "NodePort is refused in prod: it opens the port on every node, beside any ingress or firewall; "
                "use ClusterIP with an ingress, or LoadBalancer (addons.loadBalancer)",
            )
        if self.node_port is not None:
            lo, hi = NODE_PORT_RANGE
            if self.type != "NodePort":
                found.error("nodePort", f"only applies to type NodePort (type is {self.type})")
            elif not lo <= self.node_port <= hi:
                found.error("nodePort", f"{self.node_port} is outside the NodePort range {lo}-{hi}")

    def usable_node_port(self) -> int | None:
        lo, hi = NODE_PORT_RANGE
        ok = self.node_port is not None and self.type == "NodePort" and lo <= self.node_port <= hi
        return self.node_port if ok else None


class AppIngressConfig(ConfigModel):
    """An Ingress for the app's Service."""

    host: Annotated[Text, Required, checked(_host_check)] = Field(description="host name users reach the app at")
    path: HttpPath = Field("/", description="path prefix")
    class_name: Annotated[Text, checked(subdomain_check("IngressClass name"))] = Field(
        "", description="IngressClass; default: the ingress add-on's"
    )
    tls_secret: Annotated[Text, checked(subdomain_check("Secret name"))] = Field(
        "", description="Secret with the TLS certificate (none: plain HTTP)"
    )


class StrategyConfig(ConfigModel):
    """The rolling update."""

    max_surge: Annotated[Text, checked(_int_or_percent)] = Field(
        "25%", description="pods above replicas during a rollout"
    )
    max_unavailable: Annotated[Text, checked(_int_or_percent)] = Field(
        "0", description="pods below replicas during a rollout"
    )

    def checks(self, found: Findings) -> None:
        if self.max_surge in ("0", "0%") and self.max_unavailable in ("0", "0%"):
            found.error(
                "maxUnavailable", "maxSurge and maxUnavailable cannot both be 0: the rollout could never progress"
            )


class ProbeConfig(ConfigModel):
    """A probe: HTTP GET on `path`, or a TCP check on the app's port without one."""

    path: HttpPath = Field("", description="HTTP path; empty: a TCP check")
    initial_delay_seconds: whole(0, 3600) = Field(0, description="seconds before the first probe")  # type: ignore[valid-type]
    period_seconds: whole(1, 3600) = Field(10, description="seconds between probes")  # type: ignore[valid-type]

    def args(self) -> ProbeSpec:
        return build(ProbeSpec, self)


class HpaConfig(ConfigModel):
    """A HorizontalPodAutoscaler on CPU (needs metrics-server)."""

    min_replicas: whole(1, 1000) | None = Field(None, description="default: the app's replicas")  # type: ignore[valid-type]
    max_replicas: whole(1, 1000) | None = Field(None, description="default: the app's replicas")  # type: ignore[valid-type]
    cpu_utilization: whole(1, 100) = Field(80, description="target CPU utilization, percent of requests")  # type: ignore[valid-type]

    def args(self, replicas: int) -> HpaSpec:
        default = max(replicas, 1)
        return HpaSpec(
            min_replicas=default if self.min_replicas is None else self.min_replicas,
            max_replicas=default if self.max_replicas is None else self.max_replicas,
            cpu_utilization=self.cpu_utilization,
        )


class RetryConfig(ConfigModel):
    attempts: whole(0, 10) | None = Field(None, description="retries after the first try (0: off)")  # type: ignore[valid-type]
    per_try_timeout: Duration = Field("", description="timeout of each try, e.g. '1s'")
    retry_on: Annotated[Text, checked(_retry_on_check)] = Field(
        "", description="Envoy retry conditions, comma-separated"
    )


class CircuitBreakerConfig(ConfigModel):
    """Istio outlier detection; unset keys take Istio's defaults."""

    consecutive_5xx_errors: whole(1, MAX_INT32) | None = Field(None, alias="consecutive5xxErrors")  # type: ignore[valid-type]
    interval: Duration = ""
    base_ejection_time: Duration = ""
    max_ejection_percent: whole(1, 100) | None = None  # type: ignore[valid-type]


class ConnectionPoolConfig(ConfigModel):
    max_connections: whole(1, MAX_INT32) | None = None  # type: ignore[valid-type]
    http1_max_pending_requests: whole(1, MAX_INT32) | None = None  # type: ignore[valid-type]
    max_requests_per_connection: whole(1, MAX_INT32) | None = None  # type: ignore[valid-type]

    def checks(self, found: Findings) -> None:
        if not self.model_fields_set:
            found.error("", "is empty; set maxConnections, http1MaxPendingRequests or maxRequestsPerConnection")


class ResilienceConfig(ConfigModel):
    """Timeouts, retries and circuit breaking, enforced by the mesh sidecars of the callers."""

    timeout: Duration = Field("", description="the whole request's budget, e.g. '5s'")
    retries: RetryConfig | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    connection_pool: ConnectionPoolConfig | None = None

    def checks(self, found: Findings) -> None:
        if self.retries is not None:
            self._check_retries(self.retries, found)
        nothing = (
            not self.timeout and self.retries is None and self.circuit_breaker is None and self.connection_pool is None
        )
        if nothing and not found.problems_under():
            found.error("", "is empty; set timeout, retries, circuitBreaker or connectionPool (or remove it)")

    def _check_retries(self, retries: RetryConfig, found: Findings) -> None:
        at = found.under("retries")
        if retries.attempts is None:
            if not at.problems_under("attempts"):
                at.error("attempts", "is required: how many times a failed request is retried (0 turns retries off)")
            return
        attempts, timeout, per_try = retries.attempts, self.timeout, retries.per_try_timeout
        if attempts == 0 or found.problems_under("timeout") or at.problems_under("perTryTimeout"):
            return
        tries = attempts + 1
        if not timeout:
            at.error(
                "",
                f"need a timeout budget: set resilience.timeout to at least {tries} tries "
                f"(1 + {attempts} retries) × perTryTimeout, or callers may wait on retries forever",
            )
        elif not per_try:
            at.error(
                "perTryTimeout",
                f"is required with retries: without it every try may take the whole timeout ({timeout}) "
                "and no retry would ever run",
            )
        else:
            total = tries * (parse_duration(per_try) or 0)
            if total > (parse_duration(timeout) or 0) + 1e-9:
                at.error(
                    "",
                    f"(1 try + {attempts} retries) × perTryTimeout {per_try} = {format_seconds(total)} exceeds "
                    f"timeout {timeout}: the last retries could never run; lower attempts or perTryTimeout, "
                    "or raise timeout",
                )

    def args(self) -> ResilienceSpec:
        r, cb, cp = self.retries, self.circuit_breaker, self.connection_pool
        return build(
            ResilienceSpec,
            self,
            retries=build(RetrySpec, r, attempts=r.attempts or 0) if r else None,
            circuit_breaker=build(CircuitBreakerSpec, cb) if cb else None,
            connection_pool=build(ConnectionPoolSpec, cp) if cp else None,
        )


class AppConfigConfig(ConfigModel):
    """The app's ConfigMap `<name>-config`: environment variables and/or files."""

    data: TextMap = Field(default_factory=dict, description="KEY: value, or 'file.conf': contents")
    mount_path: MountPath = Field("", description="directory the keys appear in as files; empty: not mounted")
    env: Flag | None = Field(
        None, description="keys that are variable names become env vars; default: without a mountPath"
    )

    @property
    def as_env(self) -> bool:
        return not self.mount_path if self.env is None else self.env

    def checks(self, found: Findings) -> None:
        for key in self.data:
            if message := _config_map_key_check(key):
                found.error(f"data.{key}", message)
        if not self.data and not found.problems_under("data"):
            found.error("data", "is required: the ConfigMap's keys and values (KEY: value, or 'file.conf': contents)")
        size = sum(len(f"{k}{v}".encode()) for k, v in self.data.items())
        if size > CONFIG_MAP_MAX_BYTES:
            found.error("data", f"is {size} bytes; a ConfigMap holds at most 1 MiB (use a volume for larger files)")
        if not self.as_env and not self.mount_path:
            found.error(
                "env", "is false and there is no mountPath: the app would never see the config; set one of them"
            )
        if self.as_env and not self.mount_path:
            for key in sorted(self.data):
                if not ENV_NAME.fullmatch(key):
                    found.error(
                        f"data.{key}",
                        f"{key!r} is not an environment variable name and the config is not mounted: "
                        "set mountPath to get it as a file, or rename the key",
                    )

    def args(self) -> AppConfigSpec:
        return build(AppConfigSpec, self, env=self.as_env)


class SelectorConfig(ConfigModel):
    labels: TextMap = Field(default_factory=dict, description="labels of the static volume to bind")

    def checks(self, found: Findings) -> None:
        check_labels(self.labels, "labels", found)


class ClaimConfig(ConfigModel):
    """A PersistentVolumeClaim `<app>-<volume>`, kept on destroy."""

    size: Annotated[Text, Required, checked(size_check)] = Field(description="size, e.g. '1Gi'")
    storage_class: Annotated[Text, checked(subdomain_check("StorageClass name"))] = Field(
        "", description="StorageClass; default: the cluster's default (dynamic) class"
    )
    access_modes: AccessModes | None = Field(None, description="default: [ReadWriteOnce]")
    selector: SelectorConfig = Field(default_factory=SelectorConfig)

    def checks(self, found: Findings) -> None:
        check_access_modes(self.access_modes, "accessModes", found, required=False)

    def modes(self) -> tuple[str, ...]:
        return ("ReadWriteOnce",) if self.access_modes is None else tuple(dict.fromkeys(self.access_modes))


class AppVolumeConfig(ConfigModel):
    """A volume of the app's pods, backed by its own claim."""

    name: Annotated[Text, Required, checked(label_check("volume name", 63))] = Field(description="volume name")
    claim: ClaimConfig | None = Field(None, description="the claim (size required)")
    mount_path: Annotated[MountPath, Required] = Field(description="directory in the container")
    read_only: Flag = Field(True, description="mount read-only")

    def checks(self, found: Findings) -> None:
        if self.claim is None and not found.problems_under("claim"):
            found.error("claim.size", "is required")
        if self.name in RESERVED_VOLUME_NAMES:
            found.error("name", f"{self.name!r} is reserved for the volume of apps[].config; choose another name")
        if not self.read_only and self.modes() == ("ReadOnlyMany",):
            found.error("readOnly", "is false but the claim is ReadOnlyMany: it cannot be mounted read-write")

    def modes(self) -> tuple[str, ...]:
        return self.claim.modes() if self.claim else ("ReadWriteOnce",)

    def args(self) -> AppVolumeSpec:
        c = self.claim
        return AppVolumeSpec(
            name=self.name,
            claim=ClaimSpec(
                size=c.size, storage_class=c.storage_class, access_modes=c.modes(), selector=dict(c.selector.labels)
            )
            if c
            else ClaimSpec(size=""),  # reported as missing: this spec is never deployed
            mount_path=self.mount_path,
            read_only=self.read_only,
        )


class InitContainerConfig(ConfigModel):
    """Runs to completion, in order, before the app's container starts (with its env, mounts, restrictions)."""

    name: Annotated[Text, Required, checked(label_check("container name"))] = Field(description="container name")
    command: text_list() = Field((), description="the program and its arguments")  # type: ignore[valid-type]
    image: Annotated[Text, checked(image_problem)] | None = Field(None, description="default: the app's image")

    def checks(self, found: Findings) -> None:
        if not self.command and not found.problems_under("command"):
            found.error("command", "is required: the program to run, e.g. ['/bin/sh', '-c', './migrate']")


# --------------------------------------------------------------------------- the app


class WebAppConfig(ConfigModel):
    """A stateless app: Deployment + Service (+ Ingress, HPA, ConfigMap, Secret, PVCs, mesh policy)."""

    name: Annotated[Text, Required, checked(label_check("app name", 50))] = Field(description="app name")
    namespace: Annotated[Text, checked(label_check("namespace"))] = Field("default", description="namespace")
    image: Annotated[Text, Required, checked(image_problem)] = Field(description="container image, pinned")
    replicas: whole(0, 1000) = Field(1, description="pods")  # type: ignore[valid-type]
    port: whole(1, 65535) = Field(80, description="the container's port")  # type: ignore[valid-type]
    service: AppServiceConfig = Field(default_factory=AppServiceConfig)
    ingress: AppIngressConfig | None = None
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    env: TextMap = Field(default_factory=dict, description="environment variables")
    revision_history_limit: whole(0, 100) = Field(10, description="old ReplicaSets kept for rollback")  # type: ignore[valid-type]
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    readiness: ProbeConfig = Field(default_factory=ProbeConfig)
    liveness: ProbeConfig = Field(default_factory=ProbeConfig)
    hpa: HpaConfig | None = None
    run_as_user: whole(0, MAX_INT32) | None = Field(None, description="uid; default: the image's user")  # type: ignore[valid-type]
    run_as_non_root: Flag = Field(True, description="refuse to start as root")
    read_only_root_filesystem: Flag = Field(False, description="mount the image's filesystem read-only")
    service_account_token: Flag = Field(False, description="mount an API token (only apps that call the API)")
    mesh: Flag = Field(False, description="join the service mesh (needs addons.mesh.enabled)")
    resilience: ResilienceConfig | None = None
    config: AppConfigConfig | None = None
    secret_env: TextMap = Field(
        default_factory=dict, description="ENV_NAME: secret config key (pulumi config set --secret KEY)"
    )
    volumes: items(AppVolumeConfig) = Field(())  # type: ignore[valid-type]
    init_containers: items(InitContainerConfig) = Field(())  # type: ignore[valid-type]
    rollout_timeout: whole(30, 7200) = Field(  # type: ignore[valid-type]
        DEFAULT_ROLLOUT_TIMEOUT, description="seconds `pulumi up` waits for every replica to be Ready"
    )

    def checks(self, found: Findings) -> None:
        _check_env_names(self.env, "env", found)
        _check_env_names(self.secret_env, "secretEnv", found)
        for env_name, key in self.secret_env.items():
            if message := secret_key_check(key):
                found.error(f"secretEnv.{env_name}", message)
        if self.run_as_non_root and self.run_as_user == 0:
            found.error("runAsUser", "0 is root; set runAsNonRoot: false if the image really needs root")
        if official_image(self.image) and self.run_as_non_root and self.run_as_user is None:
            found.warn("image", root_image_warning(self.image))
        if self.hpa is not None:
            hpa = self.hpa.args(self.replicas)
            if hpa.max_replicas < hpa.min_replicas:
                found.error("hpa.maxReplicas", f"{hpa.max_replicas} is below minReplicas {hpa.min_replicas}")
        if self.resilience is not None and not self.mesh:
            found.error(
                "resilience",
                "needs mesh: true on this app: timeouts, retries and circuit breaking are enforced by the mesh's sidecars",
            )
        self._check_env_sources(found)
        self._check_volumes(found)
        self._check_init_containers(found)

    def _check_env_sources(self, found: Findings) -> None:
        config_env = set(self.config.data) if self.config and self.config.as_env else set()
        for env_name in sorted(self.secret_env):
            if env_name in self.env:
                found.error(
                    f"secretEnv.{env_name}", f"{env_name} is also set in env; an environment variable has one source"
                )
            elif env_name in config_env:
                found.error(f"secretEnv.{env_name}", f"{env_name} is also a key of config.data (env: true); keep one")
        for env_name in sorted(config_env & set(self.env)):
            found.error(
                f"config.data.{env_name}", f"{env_name} is also set in env; an environment variable has one source"
            )

    def _check_volumes(self, found: Findings) -> None:
        names: dict[str, int] = {}
        paths: dict[str, int] = {}
        hpa = self.hpa.args(self.replicas) if self.hpa else None
        most_pods = max(self.replicas, hpa.max_replicas if hpa else 0)
        for j, volume in enumerate(self.volumes):
            at = found.under("volumes").under(j)
            if volume.name in names:
                at.error("name", f"volume {volume.name!r} is already declared (volumes[{names[volume.name]}])")
            names.setdefault(volume.name, j)
            if volume.mount_path in paths:
                at.error(
                    "mountPath",
                    f"{volume.mount_path!r} is already the mountPath of volumes[{paths[volume.mount_path]}]",
                )
            paths.setdefault(volume.mount_path, j)
            modes = volume.modes()
            if single_attach(modes) and most_pods > 1:
                what = "one pod" if "ReadWriteOncePod" in modes else "one node at a time"
                pods = (
                    f"hpa.maxReplicas {hpa.max_replicas}"
                    if hpa and hpa.max_replicas > self.replicas
                    else f"{self.replicas} replicas"
                )
                at.error(
                    "claim.accessModes",
                    f"{'/'.join(modes)} lets only {what} mount the volume, but the app runs up to "
                    f"{pods}: pods on other nodes could not mount it and would never start; use ReadWriteMany "
                    "(e.g. an NFS volume), ReadOnlyMany with readOnly: true, or a single replica",
                )
        if self.config and self.config.mount_path and self.config.mount_path in paths:
            found.error("config.mountPath", f"{self.config.mount_path!r} is also the mountPath of a volume")
        single = self._single_attach_volumes()
        if single and self._strategy_keys() and self.strategy.max_surge not in ("0", "0%"):
            found.error(
                "strategy.maxSurge",
                f"must be 0 with the single-attach volume volumes[{single[0]}]: the new pod would wait for a "
                "volume the old pod holds and the rollout would never finish; set maxSurge: 0, maxUnavailable: 1",
            )

    def _check_init_containers(self, found: Findings) -> None:
        seen: dict[str, int] = {}
        for j, init in enumerate(self.init_containers):
            at = found.under("initContainers").under(j)
            if init.name == self.name:
                at.error("name", f"{init.name!r} is the app's own container; give the init container another name")
            elif init.name in seen:
                at.error("name", f"{init.name!r} is also initContainers[{seen[init.name]}]; names must be unique")
            seen.setdefault(init.name, j)

    def _single_attach_volumes(self) -> list[int]:
        return [j for j, v in enumerate(self.volumes) if single_attach(v.modes())]

    def _strategy_keys(self) -> set[str]:
        """The strategy keys the stack sets (the defaults surge; a single-attach volume cannot)."""
        return set(self.strategy.model_fields_set) if "strategy" in self.model_fields_set else set()

    def _strategy(self) -> StrategySpec:
        if self._single_attach_volumes() and not self._strategy_keys():
            # The surge pod would wait for the volume the old pod holds: replace, don't surge.
            return StrategySpec(max_surge="0", max_unavailable="1")
        return StrategySpec(max_surge=self.strategy.max_surge, max_unavailable=self.strategy.max_unavailable)

    def args(self) -> AppSpec:
        return build(
            AppSpec,
            self,
            service=ServiceSpec(
                type=self.service.type,
                port=self.port if self.service.port is None else self.service.port,
                node_port=self.service.usable_node_port(),
            ),
            ingress=build(IngressSpec, self.ingress) if self.ingress else None,
            resources=self.resources.args(),
            strategy=self._strategy(),
            readiness=self.readiness.args(),
            liveness=self.liveness.args(),
            hpa=self.hpa.args(self.replicas) if self.hpa else None,
            resilience=self.resilience.args() if self.resilience else None,
            config=self.config.args() if self.config else None,
            volumes=tuple(v.args() for v in self.volumes),
            init_containers=tuple(
                InitContainerSpec(name=i.name, command=tuple(i.command), image=i.image or self.image)
                for i in self.init_containers
            ),
        )

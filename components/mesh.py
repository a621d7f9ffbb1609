"""Everything specific to the service mesh (Istio) in one module: the pod label that asks
for a sidecar, the values of the `base` and `istiod` charts, and `AppTrafficPolicy`, which
renders an app's `ResilienceSpec` as an Istio `VirtualService` (timeout, retries) and
`DestinationRule` (outlier detection = circuit breaking, connection-pool limits).

Replacing Istio with another mesh means replacing this module (and the chart pins in
`components/catalog.py`); `WebApp` and `ClusterAddons` only call the functions below.

Why sidecar injection per pod (`sidecar.istio.io/inject: "true"` on the pod template)
and not per namespace (`istio-injection=enabled`): namespaces are shared by several apps
(and Helm releases, MySQL) of which only some opt into the mesh; the label travels with
the app's own Deployment, so turning `mesh` on or off is one rolling update of one app,
never a surprise restart-into-the-mesh of its neighbours. istiod's injector webhook
matches that label in any namespace that carries no `istio-injection` label.

What the resilience settings do, and where: they are client-side policies. The sidecars
of the *callers* enforce the timeout and retries of the VirtualService and eject hosts
of this app per the DestinationRule; callers outside the mesh bypass them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.helm_release import deep_merge
from components.webapp_config import AppSpec, ResilienceSpec

ISTIO_NETWORKING_API = "networking.istio.io/v1"
INJECT_LABEL = "sidecar.istio.io/inject"


def injection_labels(app: AppSpec) -> dict[str, str]:
    """Pod-template labels that put the app's pods into the mesh (none when `mesh` is off)."""
    return {INJECT_LABEL: "true"} if app.mesh else {}


def base_values(namespace: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` chart values (CRDs, validation webhook): it must know where istiod runs."""
    return deep_merge(overrides, {"global": {"istioNamespace": namespace}})


def istiod_values(namespace: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`istiod` chart values; injection stays opt-in per pod (the chart's default)."""
    enforced = {
        "global": {"istioNamespace": namespace},
        # Namespace-wide injection by default would pull every pod of every namespace in.
        "sidecarInjectorWebhook": {"enableNamespacesByDefault": False},
    }
    return deep_merge(overrides, enforced)


def service_host(app: AppSpec, cluster_domain: str) -> str:
    """The FQDN of the app's Service: Istio resolves short names in the *rule's* namespace."""
    return f"{app.name}.{app.namespace}.svc.{cluster_domain}"


def virtual_service_spec(res: ResilienceSpec, host: str, port: int) -> dict[str, Any] | None:
    """Timeout + retries on the route to the app's Service; None when neither is set."""
    if not res.timeout and res.retries is None:
        return None
    route: dict[str, Any] = {"route": [{"destination": {"host": host, "port": {"number": port}}}]}
    if res.timeout:
        route["timeout"] = res.timeout
    if res.retries is not None:
        retries: dict[str, Any] = {"attempts": res.retries.attempts}
        if res.retries.per_try_timeout:
            retries["perTryTimeout"] = res.retries.per_try_timeout
        if res.retries.retry_on:
            retries["retryOn"] = ",".join(p.strip() for p in res.retries.retry_on.split(","))
        route["retries"] = retries
    return {"hosts": [host], "http": [route]}


def destination_rule_spec(res: ResilienceSpec, host: str) -> dict[str, Any] | None:
    """Outlier detection + connection pool for the app's Service; None when neither is set."""
    policy: dict[str, Any] = {}
    if res.connection_pool is not None:
        cp = res.connection_pool
        pool: dict[str, Any] = {}
        if cp.max_connections is not None:
            pool["tcp"] = {"maxConnections": cp.max_connections}
        http = {
            k: v
            for k, v in (
                ("http1MaxPendingRequests", cp.http1_max_pending_requests),
                ("maxRequestsPerConnection", cp.max_requests_per_connection),
            )
            if v is not None
        }
        if http:
            pool["http"] = http
        policy["connectionPool"] = pool
    if res.circuit_breaker is not None:
        cb = res.circuit_breaker
        outlier: dict[str, Any] = {}
        if cb.consecutive_5xx_errors is not None:
            outlier["consecutive5xxErrors"] = cb.consecutive_5xx_errors
        if cb.interval:
            outlier["interval"] = cb.interval
        if cb.base_ejection_time:
            outlier["baseEjectionTime"] = cb.base_ejection_time
        if cb.max_ejection_percent is not None:
            outlier["maxEjectionPercent"] = cb.max_ejection_percent
        policy["outlierDetection"] = outlier  # {} = Istio's defaults (5 errors, 10s, 30s, 10%)
    if not policy:
        return None
    return {"host": host, "trafficPolicy": policy}


@dataclass(frozen=True)
class AppTrafficPolicyArgs:
    spec: AppSpec  # with `resilience` set
    service_port: int
    cluster_domain: str = "cluster.local"
    labels: Mapping[str, str] | None = None


class AppTrafficPolicy(pulumi.ComponentResource):
    """The app's VirtualService and/or DestinationRule (named like the app)."""

    virtual_service: k8s.apiextensions.CustomResource | None
    destination_rule: k8s.apiextensions.CustomResource | None

    def __init__(self, name: str, args: AppTrafficPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:mesh:AppTrafficPolicy", name, None, opts)
        app = args.spec
        res = app.resilience or ResilienceSpec()
        host = service_host(app, args.cluster_domain)
        meta = k8s.meta.v1.ObjectMetaArgs(
            name=app.name, namespace=app.namespace, labels=dict(args.labels) if args.labels else None
        )

        def istio_object(kind: str, spec: Any) -> k8s.apiextensions.CustomResource | None:
            if spec is None:
                return None
            return k8s.apiextensions.CustomResource(
                f"{name}-{kind.lower()}",
                api_version=ISTIO_NETWORKING_API,
                kind=kind,
                metadata=meta,
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.virtual_service = istio_object("VirtualService", virtual_service_spec(res, host, args.service_port))
        self.destination_rule = istio_object("DestinationRule", destination_rule_spec(res, host))
        self.register_outputs({"host": host})

"""The service mesh: Istio charts (base before istiod), per-pod sidecar injection, and an app's
resilience rendered as VirtualService + DestinationRule."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pytest

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.addons_config import Addon, AddonsSpec, IngressAddon, LoadBalancerAddon, MeshAddon, StorageAddon
from components.catalog import DEFAULT_ADDON_CHARTS as CHARTS
from components.catalog import ChartSource
from components.mesh import INJECT_LABEL, destination_rule_spec, virtual_service_spec
from components.webapp import WebApp, WebAppArgs
from components.webapp_config import (
    AppSpec,
    CircuitBreakerSpec,
    ConnectionPoolSpec,
    ResilienceSpec,
    RetrySpec,
    ServiceSpec,
)
from tests.support.mocks import OptsRecorder, PlatformMocks, app_spec, run_program

RELEASE = "kubernetes:helm.sh/v3:Release"
CR_VS = "kubernetes:networking.istio.io/v1:VirtualService"
CR_DR = "kubernetes:networking.istio.io/v1:DestinationRule"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"

FULL = ResilienceSpec(
    timeout="5s",
    retries=RetrySpec(attempts=3, per_try_timeout="1s", retry_on="5xx, connect-failure"),
    circuit_breaker=CircuitBreakerSpec(5, "10s", "30s", 50),
    connection_pool=ConnectionPoolSpec(100, 10, 1),
)


def _addons(mesh: MeshAddon | None) -> AddonsSpec:
    return AddonsSpec(
        ingress=IngressAddon(False, CHARTS["ingress"]),
        storage=StorageAddon(False, CHARTS["storage"]),
        metrics_server=Addon(False, CHARTS["metricsServer"]),
        load_balancer=LoadBalancerAddon(False, CHARTS["loadBalancer"]),
        mesh=mesh,
    )


def _app(**kw: Any) -> AppSpec:
    return app_spec(**{"mesh": True, **kw})


def _run_app(app: AppSpec, domain: str = "cluster.local") -> None:
    run_program(lambda: WebApp("app", WebAppArgs(spec=app, cluster_domain=domain)))


def _one(mocks: PlatformMocks, typ: str) -> dict[str, Any]:
    found = mocks.of_type(typ)
    assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
    return found[0].inputs


def test_mesh_releases_base_then_istiod(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    mesh = MeshAddon(True, CHARTS["mesh"])
    made: dict[str, ClusterAddons] = {}

    def program() -> None:
        made["a"] = ClusterAddons(
            "addons",
            ClusterAddonsArgs(_addons(mesh)),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )

    run_program(program)
    releases = {r.inputs["name"]: r.inputs for r in mocks.of_type(RELEASE)}
    assert set(releases) == {"base", "istiod"}
    for rel in releases.values():
        assert rel["repositoryOpts"] == {"repo": "https://istio-release.storage.googleapis.com/charts"}
        assert rel["version"] == "1.29.2" and rel["namespace"] == "istio-system"
        assert rel["values"]["global"]["istioNamespace"] == "istio-system"
    assert releases["istiod"]["values"]["sidecarInjectorWebhook"] == {"enableNamespacesByDefault": False}
    deps = opts_recorder.depends_on("addons-mesh")
    assert made["a"].releases["meshBase"].release in deps, "istiod must wait for base (its CRDs)"


def test_mesh_chart_source_is_replaceable(mocks: PlatformMocks) -> None:
    src = ChartSource(repo="https://mirror.example.com/istio", chart="istiod", version="1.30.3", namespace="mesh",
                      values={"pilot": {"resources": {"requests": {"cpu": "100m"}}}, "global": {"istioNamespace": "x"}})  # fmt: skip
    mesh = MeshAddon(True, src, base_chart="istio-base", base_values={"base": {"enableCRDTemplates": True}})
    run_program(lambda: ClusterAddons("addons", ClusterAddonsArgs(_addons(mesh))))
    releases = {r.inputs["name"]: r.inputs for r in mocks.of_type(RELEASE)}
    assert set(releases) == {"istio-base", "istiod"}
    assert releases["istio-base"]["version"] == "1.30.3" and releases["istio-base"]["namespace"] == "mesh"
    assert releases["istio-base"]["values"]["base"] == {"enableCRDTemplates": True}
    istiod = releases["istiod"]["values"]
    assert istiod["pilot"]["resources"]["requests"]["cpu"] == "100m", "stack values reach the chart"
    assert istiod["global"]["istioNamespace"] == "mesh", "the namespace the platform installs into wins"


@pytest.mark.parametrize("mesh", [None, MeshAddon(False, CHARTS["mesh"])])
def test_no_mesh_by_default(mocks: PlatformMocks, mesh: MeshAddon | None) -> None:
    run_program(lambda: ClusterAddons("addons", ClusterAddonsArgs(_addons(mesh))))
    assert mocks.of_type(RELEASE) == []


def test_sidecar_injection_is_a_pod_label(mocks: PlatformMocks) -> None:
    _run_app(_app())
    labels = _one(mocks, DEPLOYMENT)["spec"]["template"]["metadata"]["labels"]
    assert labels[INJECT_LABEL] == "true"
    mocks.resources.clear()
    _run_app(_app(mesh=False))
    dep = _one(mocks, DEPLOYMENT)
    assert INJECT_LABEL not in dep["spec"]["template"]["metadata"]["labels"]
    assert INJECT_LABEL not in dep["spec"]["selector"]["matchLabels"], "the selector must never change"


def test_full_resilience_renders_virtual_service_and_destination_rule(mocks: PlatformMocks) -> None:
    _run_app(_app(resilience=FULL, service=ServiceSpec(port=80)))
    vs, dr = _one(mocks, CR_VS), _one(mocks, CR_DR)
    host = "api.shop.svc.cluster.local"
    assert vs["apiVersion"] == dr["apiVersion"] == "networking.istio.io/v1"
    assert vs["metadata"]["name"] == dr["metadata"]["name"] == "api"
    assert vs["metadata"]["namespace"] == dr["metadata"]["namespace"] == "shop"
    assert vs["spec"] == {
        "hosts": [host],
        "http": [
            {
                "route": [{"destination": {"host": host, "port": {"number": 80}}}],
                "timeout": "5s",
                "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "5xx,connect-failure"},
            }
        ],
    }
    assert dr["spec"] == {
        "host": host,
        "trafficPolicy": {
            "connectionPool": {
                "tcp": {"maxConnections": 100},
                "http": {"http1MaxPendingRequests": 10, "maxRequestsPerConnection": 1},
            },
            "outlierDetection": {
                "consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 50,
            },
        },
    }  # fmt: skip


def test_cluster_domain_is_used_in_hosts(mocks: PlatformMocks) -> None:
    _run_app(_app(resilience=ResilienceSpec(timeout="2s")), domain="corp.local")
    assert _one(mocks, CR_VS)["spec"]["hosts"] == ["api.shop.svc.corp.local"]


@pytest.mark.parametrize(
    ("resilience", "want_vs", "want_dr"),
    [
        (ResilienceSpec(timeout="2s"), True, False),
        (ResilienceSpec(retries=RetrySpec(0)), True, False),
        (ResilienceSpec(circuit_breaker=CircuitBreakerSpec()), False, True),
        (ResilienceSpec(connection_pool=ConnectionPoolSpec(max_connections=5)), False, True),
    ],
)
def test_only_the_objects_needed(
    mocks: PlatformMocks, resilience: ResilienceSpec, want_vs: bool, want_dr: bool
) -> None:
    _run_app(_app(resilience=resilience))
    assert bool(mocks.of_type(CR_VS)) is want_vs and bool(mocks.of_type(CR_DR)) is want_dr


def test_partial_settings_leave_istio_defaults() -> None:
    assert destination_rule_spec(ResilienceSpec(circuit_breaker=CircuitBreakerSpec()), "h") == {
        "host": "h", "trafficPolicy": {"outlierDetection": {}},
    }  # fmt: skip
    pool = destination_rule_spec(ResilienceSpec(connection_pool=ConnectionPoolSpec(http1_max_pending_requests=3)), "h")
    assert pool == {"host": "h", "trafficPolicy": {"connectionPool": {"http": {"http1MaxPendingRequests": 3}}}}
    vs = virtual_service_spec(ResilienceSpec(retries=RetrySpec(2, "1s")), "h", 80)
    assert vs is not None and "timeout" not in vs["http"][0] and vs["http"][0]["retries"] == {
        "attempts": 2, "perTryTimeout": "1s",
    }  # fmt: skip


def test_no_policy_without_resilience_or_mesh(mocks: PlatformMocks) -> None:
    _run_app(_app())
    _run_app(dataclasses.replace(_app(resilience=FULL), mesh=False))
    assert mocks.of_type(CR_VS) == [] and mocks.of_type(CR_DR) == []


def test_policy_is_child_of_the_app_and_waits_for_its_service(
    mocks: PlatformMocks, opts_recorder: OptsRecorder
) -> None:
    def program() -> pulumi.Output[None]:
        w = WebApp(
            "app",
            WebAppArgs(spec=_app(resilience=FULL)),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )
        assert w.traffic_policy is not None and w.traffic_policy.virtual_service is not None

        def check(urns: list[str]) -> None:
            assert "::k8s-platform:webapp:WebApp$k8s-platform:mesh:AppTrafficPolicy::" in urns[0], urns[0]
            assert "::k8s-platform:mesh:AppTrafficPolicy$kubernetes:networking.istio.io/v1:" in urns[1], urns[1]

        return pulumi.Output.all(w.traffic_policy.urn, w.traffic_policy.virtual_service.urn).apply(check)

    run_program(program)
    assert opts_recorder.depends_on("app-mesh"), "the policy is created after the app's Service"


def test_preview_registers_the_policy(preview_mocks: PlatformMocks) -> None:
    _run_app(_app(resilience=FULL))
    assert len(preview_mocks.of_type(CR_VS)) == 1 and len(preview_mocks.of_type(CR_DR)) == 1

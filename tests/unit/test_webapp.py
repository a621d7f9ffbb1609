"""WebApp: labels/selectors, probes, securityContext, Service types, Ingress, HPA, rollout behaviour."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.addons_config import Addon, AddonsSpec, IngressAddon, LoadBalancerAddon, StorageAddon
from components.catalog import DEFAULT_ADDON_CHARTS as CHARTS
from components.cluster_config import ClusterSpec
from components.helm_config import HelmSpec
from components.mysql_config import MySQLSpec
from components.pod_config import Resources
from components.webapp import WebApp, WebAppArgs
from components.webapp_config import AppSpec, HpaSpec, IngressSpec, ProbeSpec, ServiceSpec, StrategySpec
from stacks.config import PlatformSpec
from stacks.render import render_objects
from tests.support.mocks import PlatformMocks, app_spec, run_program

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def _app(**kw: Any) -> AppSpec:
    return app_spec(**{"name": "my-nginx", "namespace": "web", "image": "nginxinc/nginx-unprivileged:1.27", **kw})


def _run(app: AppSpec, ingress_class: str = "traefik", lb: bool = False) -> WebApp:
    made: dict[str, WebApp] = {}

    def program() -> None:
        made["w"] = WebApp("app", WebAppArgs(spec=app, ingress_class=ingress_class, load_balancer_available=lb))

    run_program(program)
    return made["w"]


def _one(mocks: PlatformMocks, typ: str) -> dict[str, Any]:
    found = mocks.of_type(typ)
    assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
    return found[0].inputs


def _container(mocks: PlatformMocks) -> dict[str, Any]:
    (c,) = _one(mocks, DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    return c


def test_labels_and_selectors_match(mocks: PlatformMocks) -> None:
    _run(_app(replicas=2))
    dep = _one(mocks, DEPLOYMENT)
    svc = _one(mocks, SERVICE)
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "my-nginx", "app.kubernetes.io/instance": "my-nginx"}
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items(), "Deployment selector must match its pod template"
    assert pod_labels["app.kubernetes.io/managed-by"] == "k8s-platform"
    assert svc["spec"]["selector"] == selector, "Service must select the Deployment's pods"
    assert dep["metadata"] == {"name": "my-nginx", "namespace": "web", "labels": pod_labels}


def test_deployment_rollout_settings(mocks: PlatformMocks) -> None:
    _run(_app(replicas=2, revision_history_limit=5, strategy=StrategySpec(max_surge="1", max_unavailable="0")))
    spec = _one(mocks, DEPLOYMENT)["spec"]
    assert spec["replicas"] == 2 and spec["revisionHistoryLimit"] == 5
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, (
        "bare numbers must be ints: the API rejects the string '0'"
    )


def test_probes_http_and_tcp(mocks: PlatformMocks) -> None:
    _run(_app(readiness=ProbeSpec(path="/healthz", initial_delay_seconds=2), liveness=ProbeSpec(period_seconds=20)))
    c = _container(mocks)
    assert c["readinessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "initialDelaySeconds": 2,
        "periodSeconds": 10,
    }
    assert c["livenessProbe"] == {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 0, "periodSeconds": 20}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_security_context_hardened_by_default(mocks: PlatformMocks) -> None:
    _run(_app())
    sc = _container(mocks)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    pod_sc = _one(mocks, DEPLOYMENT)["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_run_as_root_when_spec_allows_it(mocks: PlatformMocks) -> None:
    _run(_app(image="nginx:1.27", run_as_non_root=False, run_as_user=0))
    sc = _container(mocks)["securityContext"]
    assert sc["runAsNonRoot"] is False and sc["runAsUser"] == 0
    assert sc["allowPrivilegeEscalation"] is False, "other hardening stays on"


def test_env_sorted_and_resources(mocks: PlatformMocks) -> None:
    _run(_app(env={"Z": "1", "A": "2"}, resources=Resources(requests={"memory": "64Mi", "cpu": "50m"})))
    c = _container(mocks)
    assert [e["name"] for e in c["env"]] == ["A", "Z"]
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}}


@pytest.mark.parametrize(
    ("service", "expected_port"),
    [
        (ServiceSpec(type="ClusterIP", port=80), {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}),
        (
            ServiceSpec(type="NodePort", port=80, node_port=30080),
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080},
        ),
        (ServiceSpec(type="NodePort", port=80), {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}),
    ],
)
def test_service_types(mocks: PlatformMocks, service: ServiceSpec, expected_port: dict[str, Any]) -> None:
    _run(_app(service=service))
    svc = _one(mocks, SERVICE)
    assert svc["spec"]["type"] == service.type
    assert svc["spec"]["ports"] == [expected_port]
    assert "annotations" not in svc["metadata"]


def test_load_balancer_without_lb_addon_warns_and_skips_await(
    mocks: PlatformMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    _run(_app(service=ServiceSpec(type="LoadBalancer", port=80)), lb=False)
    svc = _one(mocks, SERVICE)
    assert svc["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert len(warnings) == 1 and "wait forever" in warnings[0], warnings


def test_load_balancer_with_lb_addon_is_awaited(mocks: PlatformMocks, monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    _run(_app(service=ServiceSpec(type="LoadBalancer", port=80)), lb=True)
    assert "annotations" not in _one(mocks, SERVICE)["metadata"] and warnings == []


def test_ingress_default_class_prefix_and_tls(mocks: PlatformMocks) -> None:
    _run(_app(ingress=IngressSpec(host="nginx.example.com", path="/app", tls_secret="nginx-tls")), ingress_class="web")
    ing = _one(mocks, INGRESS)
    assert ing["metadata"]["name"] == "my-nginx"
    assert ing["spec"]["ingressClassName"] == "web"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "nginx.example.com"
    (path,) = rule["http"]["paths"]
    assert path == {
        "path": "/app",
        "pathType": "Prefix",
        "backend": {"service": {"name": "my-nginx", "port": {"name": "http"}}},
    }
    assert ing["spec"]["tls"] == [{"hosts": ["nginx.example.com"], "secretName": "nginx-tls"}]


def test_ingress_class_from_spec_wins_and_no_ingress_by_default(mocks: PlatformMocks) -> None:
    _run(_app(ingress=IngressSpec(host="a.example.com", class_name="internal")))
    ing = _one(mocks, INGRESS)
    assert ing["spec"]["ingressClassName"] == "internal" and "tls" not in ing["spec"]
    mocks.resources.clear()
    _run(_app())
    assert mocks.of_type(INGRESS) == [] and mocks.of_type(HPA) == []


def test_ingress_not_awaited_without_a_load_balancer(mocks: PlatformMocks) -> None:
    # without MetalLB the controller never publishes an address into the Ingress status
    _run(_app(ingress=IngressSpec(host="a.example.com")), lb=False)
    assert _one(mocks, INGRESS)["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    mocks.resources.clear()
    _run(_app(ingress=IngressSpec(host="a.example.com")), lb=True)
    assert "annotations" not in _one(mocks, INGRESS)["metadata"]


def test_hpa_targets_deployment_and_owns_replicas(mocks: PlatformMocks) -> None:
    _run(_app(replicas=2, hpa=HpaSpec(min_replicas=2, max_replicas=6, cpu_utilization=70)))
    hpa = _one(mocks, HPA)
    assert hpa["metadata"]["name"] == "my-nginx"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "my-nginx"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    assert "replicas" not in _one(mocks, DEPLOYMENT)["spec"], "with an HPA the Deployment must not pin replicas"


def test_children_have_explicit_names_and_parent(mocks: PlatformMocks) -> None:
    def program() -> pulumi.Output[None]:
        w = WebApp("app", WebAppArgs(spec=_app(ingress=IngressSpec(host="a.example.com"), hpa=HpaSpec(1, 3))))
        resources = [w.deployment, w.service, w.ingress, w.hpa]

        def check(urns: list[str]) -> None:
            for urn in urns:
                assert "::k8s-platform:webapp:WebApp$kubernetes:" in urn, f"{urn}: must be a child of WebApp"

        return pulumi.Output.all(*[r.urn for r in resources if r is not None]).apply(check)

    run_program(program)
    for r in mocks.resources:
        if r.type.startswith("kubernetes:"):
            assert r.inputs["metadata"]["name"] == "my-nginx", f"{r.name}: explicit metadata.name required"


def test_preview_registers_same_objects(preview_mocks: PlatformMocks) -> None:
    _run(_app(ingress=IngressSpec(host="a.example.com")))
    assert sorted(r.type for r in preview_mocks.resources if r.type.startswith("kubernetes:")) == sorted(
        [DEPLOYMENT, SERVICE, INGRESS]
    )


# --- rollout behaviour, shown on rendered manifests ------------------------------------


def _platform(app: AppSpec) -> PlatformSpec:
    addons = AddonsSpec(
        ingress=IngressAddon(False, CHARTS["ingress"]),
        storage=StorageAddon(False, CHARTS["storage"]),
        metrics_server=Addon(False, CHARTS["metricsServer"]),
        load_balancer=LoadBalancerAddon(False, CHARTS["loadBalancer"]),
    )
    return PlatformSpec("dev", ClusterSpec(mode="existing"), True, addons, HelmSpec(), MySQLSpec(), (app,))


def _render_deployment(app: AppSpec) -> dict[str, Any]:
    def build(spec: PlatformSpec, secrets: Any, root: Path) -> None:
        WebApp("app", WebAppArgs(spec=spec.apps[0]))

    return render_objects(_platform(app), Path("."), builder=build)["web.Deployment.my-nginx.yaml"]


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    return [] if a == b else [path]


def test_changing_only_replicas_scales_without_rollout() -> None:
    before = _render_deployment(_app(replicas=2))
    after = _render_deployment(_app(replicas=4))
    assert _diff(before, after) == [".spec.replicas"], "only the replica count may change: no new ReplicaSet"


def test_changing_image_rolls_out_via_pod_template() -> None:
    before = _render_deployment(_app(image="nginxinc/nginx-unprivileged:1.27"))
    after = _render_deployment(dataclasses.replace(_app(), image="nginxinc/nginx-unprivileged:1.28"))
    changed = _diff(before, after)
    assert changed == [".spec.template.spec.containers"], changed
    assert before["metadata"] == after["metadata"], "same Deployment object: old ReplicaSets stay for rollback"
    assert before["spec"]["revisionHistoryLimit"] == after["spec"]["revisionHistoryLimit"] == 10


def test_pods_mount_no_service_account_token_unless_asked() -> None:
    default = _render_deployment(_app())["spec"]["template"]["spec"]
    assert default["automountServiceAccountToken"] is False
    asked = _render_deployment(dataclasses.replace(_app(), service_account_token=True))["spec"]["template"]["spec"]
    assert asked["automountServiceAccountToken"] is True

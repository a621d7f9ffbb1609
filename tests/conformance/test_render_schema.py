"""Rendered manifests against the Kubernetes 1.34 OpenAPI schemas, offline and strict.

Built-in kinds are checked by `kubernetes-validate` (strict: any unknown field
fails). MetalLB's custom resources are not in those schemas, so they are checked
against a transcription of the MetalLB v0.15 CRDs' required structure, also with
unknown fields forbidden. The dev/staging/prod stacks are rendered once the
program can be imported; a synthetic stack that enables every component feature
is always rendered.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pulumi
import pytest
import yaml

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.helm_release import HelmRelease, HelmReleaseArgs
from components.namespaces import NamespacesArgs, PlatformNamespaces
from components.webapp import WebApp, WebAppArgs
from stacks.catalog import DEFAULT_ADDON_CHARTS as CHARTS
from stacks.render import render_stack
from stacks.spec import (
    Addon,
    AddonsSpec,
    AppSpec,
    ClusterSpec,
    HelmReleaseSpec,
    HelmSpec,
    HpaSpec,
    IngressAddon,
    IngressSpec,
    LoadBalancerAddon,
    MySQLSpec,
    PlatformSpec,
    ProbeSpec,
    Resources,
    ServiceSpec,
    StorageAddon,
)

K8S_VERSION = "1.34"
ROOT = Path(__file__).resolve().parents[2]

_STR_LIST = {"type": "array", "items": {"type": "string"}}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": {"type": "object"}, "matchExpressions": {"type": "array"}},
}
_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
}
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("metallb.io/v1beta1", "IPAddressPool"): {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "metallb.io/v1beta1"},
            "kind": {"const": "IPAddressPool"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["addresses"],
                "properties": {
                    "addresses": {**_STR_LIST, "minItems": 1},
                    "autoAssign": {"type": "boolean"},
                    "avoidBuggyIPs": {"type": "boolean"},
                    "serviceAllocation": {"type": "object"},
                },
            },
        },
    },
    ("metallb.io/v1beta1", "L2Advertisement"): {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"const": "metallb.io/v1beta1"},
            "kind": {"const": "L2Advertisement"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "ipAddressPools": _STR_LIST,
                    "ipAddressPoolSelectors": {"type": "array", "items": _SELECTOR},
                    "nodeSelectors": {"type": "array", "items": _SELECTOR},
                    "interfaces": _STR_LIST,
                },
            },
        },
    },
}


def validate(manifest: dict[str, Any]) -> None:
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key in CRD_SCHEMAS:
        jsonschema.validate(manifest, CRD_SCHEMAS[key])
    else:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def _synthetic() -> PlatformSpec:
    apps = (
        AppSpec(
            name="web",
            namespace="web",
            image="nginxinc/nginx-unprivileged:1.27",
            replicas=2,
            port=8080,
            service=ServiceSpec(type="NodePort", port=80, node_port=30080),
            ingress=IngressSpec(host="web.example.com", path="/", tls_secret="web-tls"),
            resources=Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"}),
            env={"B": "2", "A": "1"},
            readiness=ProbeSpec(path="/", initial_delay_seconds=1),
            hpa=HpaSpec(min_replicas=2, max_replicas=4),
        ),
        AppSpec(
            name="api",
            namespace="web",
            image="nginx:1.27",
            run_as_non_root=False,
            run_as_user=0,
            service=ServiceSpec(type="LoadBalancer", port=8080),
        ),
        AppSpec(name="internal", namespace="tools", image="busybox:1.36", read_only_root_filesystem=True),
    )
    addons = AddonsSpec(
        ingress=IngressAddon(True, CHARTS["ingress"]),
        storage=StorageAddon(True, CHARTS["storage"]),
        metrics_server=Addon(True, CHARTS["metricsServer"]),
        load_balancer=LoadBalancerAddon(True, CHARTS["loadBalancer"], addresses=("10.4.17.240-10.4.17.250",)),
    )
    helm = HelmSpec(
        releases=(
            HelmReleaseSpec(
                name="grafana",
                namespace="monitoring",
                repo="https://grafana.github.io/helm-charts",
                chart="grafana",
                version="8.5.0",
            ),
        )
    )
    return PlatformSpec("dev", ClusterSpec(mode="existing"), True, addons, helm, MySQLSpec(), apps)


def _synthetic_build(spec: PlatformSpec, secrets: Any, root: Path) -> None:
    nss = PlatformNamespaces("namespaces", NamespacesArgs(names=spec.namespaces, labels={"env": spec.environment}))
    ClusterAddons("addons", ClusterAddonsArgs(spec.addons, True, ("node1", "node2")))
    for rel in spec.helm.releases:
        HelmRelease(rel.name, HelmReleaseArgs(rel, str(root), nss.by_name.get(rel.namespace)))
    for app in spec.apps:
        WebApp(app.name, WebAppArgs(app, spec.addons.ingress.class_name, spec.addons.load_balancer.enabled))
    pulumi.export("ok", True)


def _check_all(paths: list[Path]) -> None:
    assert paths, "nothing rendered"
    failures = []
    for path in paths:
        try:
            validate(yaml.safe_load(path.read_text()))
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            failures.append(f"{path.name}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(f"{path.name}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_synthetic_stack_is_schema_valid(tmp_path: Path) -> None:
    paths = render_stack(_synthetic(), ROOT, tmp_path, builder=_synthetic_build)
    kinds = {p.name.split(".")[1] for p in paths}
    assert {
        "Namespace",
        "Node",
        "IPAddressPool",
        "L2Advertisement",
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
    } <= kinds, kinds
    _check_all(paths)


def test_unknown_fields_fail() -> None:
    bad_deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "a", "image": "b"}]}},
            "replica": 2,
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad_deploy)
    bad_pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "metallb-system"},
        "spec": {"adresses": ["10.0.0.1/32"]},
    }
    with pytest.raises(jsonschema.ValidationError):
        validate(bad_pool)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_is_schema_valid(stack: str, tmp_path: Path) -> None:
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        pytest.skip(f"{stack_file.name} not written yet")
    if importlib.util.find_spec("components.mysql") is None:
        pytest.skip("stacks.program imports components.mysql, not written yet")
    from stacks.files import load_spec_file

    spec = load_spec_file(stack_file, ROOT)
    _check_all(render_stack(spec, ROOT, tmp_path))

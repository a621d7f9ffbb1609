"""Rendered manifests against the Kubernetes 1.34 OpenAPI schemas, offline and strict.

Built-in kinds are checked by `kubernetes-validate` (strict: any unknown field
fails). MetalLB's custom resources are not in those schemas, so they are checked
against a transcription of the MetalLB v0.15 CRDs' required structure, also with
unknown fields forbidden. Istio's VirtualService and DestinationRule are checked
against the published CRD schemas of Istio 1.29.2 (schemas/, extracted from the
`base` chart's CRDs), made strict the way the API server's strict field validation
is (unknown fields fail), with their CEL rules (durations >= 1ms, …) evaluated too.
The dev/staging/prod stacks are rendered once the program can be imported; a
synthetic stack that enables every component feature is always rendered, and so
is the showcase stack file (mesh + app config + static/dynamic volumes).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pulumi
import pytest
import yaml

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.addons_config import Addon, AddonsSpec, IngressAddon, LoadBalancerAddon, StorageAddon
from components.catalog import DEFAULT_ADDON_CHARTS as CHARTS
from components.cluster_config import ClusterSpec
from components.helm_config import HelmReleaseSpec, HelmSpec
from components.helm_release import HelmRelease, HelmReleaseArgs
from components.mysql_config import MySQLSpec
from components.namespaces import NamespacesArgs, PlatformNamespaces
from components.pod_config import Resources
from components.webapp import WebApp, WebAppArgs
from components.webapp_config import AppSpec, HpaSpec, IngressSpec, ProbeSpec, ServiceSpec
from stacks.config import PlatformSpec
from stacks.render import render_stack

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


# --- Istio CRDs: the published schema, strict, plus its CEL rules ---------------------------

ISTIO_SCHEMA_FILE = Path(__file__).parent / "schemas" / "istio-1.29.2-networking-v1.json"
_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _cel_duration(value: Any) -> float:
    """CEL's duration(): Go duration syntax; raises (= rule fails) on anything else."""
    if not isinstance(value, str) or not _GO_DURATION.match(value):
        raise ValueError(f"{value!r} is not a duration")
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", value))
    return -seconds if value.startswith("-") else seconds


# Every x-kubernetes-validations rule the two schemas contain; an unknown rule fails the
# test, so a schema update cannot silently skip a check.
CEL_RULES: dict[str, Callable[[Any], bool]] = {
    "duration(self) >= duration('1ms')": lambda v: _cel_duration(v) >= 1e-3,
    'self.all(key, !key.contains("*"))': lambda v: all("*" not in k for k in v),
    "self.all(key, key.size() != 0)": lambda v: all(len(k) != 0 for k in v),
    '!self.contains("*")': lambda v: "*" not in v,
}


class CelError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _strict(schema: Any) -> Any:
    """Unknown fields fail, as with the API server's `fieldValidation=Strict`."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _load_istio_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    doc = json.loads(ISTIO_SCHEMA_FILE.read_text())
    api = doc["apiVersion"]
    out = {}
    for kind, schema in doc["schemas"].items():
        full = _strict(copy.deepcopy(schema))
        full["properties"].update({"apiVersion": {"const": api}, "kind": {"const": kind}, "metadata": _META})
        full["required"] = ["apiVersion", "kind", "metadata", "spec"]
        out[(api, kind)] = full
    return out


ISTIO_SCHEMAS = _load_istio_schemas()


def _check_cel(value: Any, schema: dict[str, Any], path: str) -> None:
    for rule in schema.get("x-kubernetes-validations", []):
        check = CEL_RULES.get(rule["rule"])
        if check is None:
            raise CelError(f"{path}: unknown CEL rule {rule['rule']!r}; teach CEL_RULES")
        try:
            ok = check(value)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise CelError(f"{path}: {rule.get('message') or rule['rule']} (value {value!r})")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            if sub is not None:
                _check_cel(v, sub, f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            _check_cel(v, schema["items"], f"{path}[{i}]")


def validate(manifest: dict[str, Any]) -> None:
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key in ISTIO_SCHEMAS:
        jsonschema.validate(manifest, ISTIO_SCHEMAS[key])
        _check_cel(manifest, ISTIO_SCHEMAS[key], "")
    elif key in CRD_SCHEMAS:
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
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError, CelError) as exc:
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


# --- the showcase stack: mesh + app config + static/dynamic volumes --------------------------

SHOWCASE = ROOT / "tests" / "unit" / "fixtures" / "Pulumi.showcase.yaml"


def test_showcase_stack_is_schema_valid(tmp_path: Path) -> None:
    from stacks.config import parse_config
    from stacks.files import config_from_file

    spec = parse_config(config_from_file(SHOWCASE), project_root=ROOT)
    paths = render_stack(spec, ROOT, tmp_path)
    names = {p.name for p in paths}
    assert {
        "shop.VirtualService.api.yaml",
        "shop.DestinationRule.api.yaml",
        "shop.VirtualService.worker.yaml",
        "shop.ConfigMap.api-config.yaml",
        "shop.Secret.api-secret.yaml",
        "shop.PersistentVolumeClaim.api-assets.yaml",
        "shop.PersistentVolumeClaim.worker-scratch.yaml",
        "_cluster.PersistentVolume.shared-nfs.yaml",
        "_cluster.PersistentVolume.node3-disk1.yaml",
    } <= names, sorted(names)
    assert "shop.DestinationRule.worker.yaml" not in names, "a timeout alone needs no DestinationRule"
    _check_all(paths)
    secret = yaml.safe_load((tmp_path / "shop.Secret.api-secret.yaml").read_text())
    assert set(secret["stringData"].values()) == {"<redacted>"}


@pytest.mark.parametrize(
    ("kind", "mutate", "words"),
    [
        ("VirtualService", lambda m: m["spec"]["http"][0].update(timout="5s"), "Additional properties"),
        ("VirtualService", lambda m: m["spec"]["http"][0].update(timeout="0s"), "1ms"),
        ("VirtualService", lambda m: m["spec"]["http"][0]["retries"].update(perTryTimeout="5"), "duration"),
        ("VirtualService", lambda m: m["spec"]["http"][0]["retries"].update(attempts="3"), "is not of type"),
        ("DestinationRule", lambda m: m["spec"]["trafficPolicy"]["outlierDetection"].update(interval="-1s"), "1ms"),
        ("DestinationRule", lambda m: m["spec"]["trafficPolicy"].update(outlier={}), "Additional properties"),
        ("DestinationRule", lambda m: m["spec"].pop("host"), "'host' is a required property"),
        ("DestinationRule", lambda m: m["metadata"].pop("namespace"), "'namespace' is a required property"),
    ],
)
def test_istio_schema_is_strict(kind: str, mutate: Callable[[dict[str, Any]], None], words: str) -> None:
    good = {
        "VirtualService": {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "a", "namespace": "b"},
            "spec": {
                "hosts": ["a.b.svc.cluster.local"],
                "http": [
                    {
                        "route": [{"destination": {"host": "a.b.svc.cluster.local", "port": {"number": 80}}}],
                        "timeout": "5s",
                        "retries": {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx"},
                    }
                ],
            },
        },
        "DestinationRule": {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "a", "namespace": "b"},
            "spec": {
                "host": "a.b.svc.cluster.local",
                "trafficPolicy": {"outlierDetection": {"interval": "10s", "consecutive5xxErrors": 5}},
            },
        },
    }[kind]
    validate(copy.deepcopy(good))
    bad = copy.deepcopy(good)
    mutate(bad)
    with pytest.raises((jsonschema.ValidationError, CelError)) as err:
        validate(bad)
    assert words in str(err.value), str(err.value)[:300]

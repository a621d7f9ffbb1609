"""render_stack: file naming, redaction, exclusions, determinism, output-directory safety."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.addons_config import Addon, AddonsSpec, IngressAddon, LoadBalancerAddon, StorageAddon
from components.catalog import DEFAULT_ADDON_CHARTS as CHARTS
from components.cluster_config import ClusterSpec
from components.helm_config import HelmSpec
from components.mysql_config import MySQLSpec
from components.namespaces import NamespacesArgs, PlatformNamespaces
from components.webapp import WebApp, WebAppArgs
from components.webapp_config import AppSpec, IngressSpec, ServiceSpec
from stacks.config import PlatformSpec
from stacks.render import MARKER, REDACTED, render_objects, render_stack, to_manifest

APP = AppSpec(
    name="my-nginx",
    namespace="web",
    image="nginxinc/nginx-unprivileged:1.27",
    replicas=2,
    port=8080,
    service=ServiceSpec(type="NodePort", port=80, node_port=30080),
    ingress=IngressSpec(host="nginx.example.com"),
)
ADDONS = AddonsSpec(
    ingress=IngressAddon(True, CHARTS["ingress"]),
    storage=StorageAddon(True, CHARTS["storage"]),
    metrics_server=Addon(True, CHARTS["metricsServer"]),
    load_balancer=LoadBalancerAddon(True, CHARTS["loadBalancer"], addresses=("10.4.17.240/28",)),
)
SPEC = PlatformSpec("dev", ClusterSpec(mode="existing"), True, ADDONS, HelmSpec(), MySQLSpec(), (APP,))


def build(spec: PlatformSpec, secrets: Any, root: Path) -> dict[str, Any]:
    provider = k8s.Provider("k8s", kubeconfig=pulumi.Output.secret("apiVersion: v1"))
    opts = pulumi.ResourceOptions(provider=provider)
    PlatformNamespaces("namespaces", NamespacesArgs(names=spec.namespaces, labels={}), opts=opts)
    ClusterAddons("addons", ClusterAddonsArgs(spec.addons, True, ("node1",)), opts=opts)
    for app in spec.apps:
        WebApp(f"app-{app.name}", WebAppArgs(spec=app, ingress_class="traefik"), opts=opts)
    k8s.core.v1.Secret(
        "db",
        metadata={"name": "db", "namespace": "web"},
        string_data={"password": pulumi.Output.secret("hunter2")},
        data={"token": "c2VjcmV0"},
        opts=opts,
    )
    k8s.core.v1.ConfigMap(
        "cm",
        metadata={"name": "settings", "namespace": "web"},
        data={"dsn": pulumi.Output.concat("mysql://root:", pulumi.Output.secret("hunter2"), "@db")},
        opts=opts,
    )
    return {}


EXPECTED_FILES = [
    "_cluster.Namespace.web.yaml",
    "_cluster.Node.node1.patch.yaml",
    "metallb-system.IPAddressPool.default.yaml",
    "metallb-system.L2Advertisement.default.yaml",
    "web.ConfigMap.settings.yaml",
    "web.Deployment.my-nginx.yaml",
    "web.Ingress.my-nginx.yaml",
    "web.Secret.db.yaml",
    "web.Service.my-nginx.yaml",
]


def test_one_file_per_object_named_namespace_kind_name(tmp_path: Path) -> None:
    paths = render_stack(SPEC, Path("."), tmp_path / "out", builder=build)
    assert [p.name for p in paths] == EXPECTED_FILES, "Helm releases and the provider must not be rendered"
    assert all(p.parent == tmp_path / "out" for p in paths)


def test_manifest_shape_and_integral_numbers(tmp_path: Path) -> None:
    objs = render_objects(SPEC, Path("."), builder=build)
    dep = objs["web.Deployment.my-nginx.yaml"]
    assert (dep["apiVersion"], dep["kind"]) == ("apps/v1", "Deployment")
    assert dep["spec"]["replicas"] == 2 and isinstance(dep["spec"]["replicas"], int), "RPC floats must become ints"
    ns = objs["_cluster.Namespace.web.yaml"]
    assert (ns["apiVersion"], ns["kind"]) == ("v1", "Namespace") and "namespace" not in ns["metadata"]
    pool = objs["metallb-system.IPAddressPool.default.yaml"]
    assert (pool["apiVersion"], pool["kind"]) == ("metallb.io/v1beta1", "IPAddressPool")


def test_patch_rendered_as_target_kind() -> None:
    patch = render_objects(SPEC, Path("."), builder=build)["_cluster.Node.node1.patch.yaml"]
    assert (patch["apiVersion"], patch["kind"]) == ("v1", "Node")
    assert patch["spec"] == {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "PreferNoSchedule"}]}


def test_secrets_redacted_everywhere(tmp_path: Path) -> None:
    paths = render_stack(SPEC, Path("."), tmp_path, builder=build)
    secret = yaml.safe_load((tmp_path / "web.Secret.db.yaml").read_text())
    assert secret["stringData"] == {"password": REDACTED}
    assert secret["data"] == {"token": REDACTED}, "plain Secret data is secret too"
    cm = yaml.safe_load((tmp_path / "web.ConfigMap.settings.yaml").read_text())
    assert cm["data"] == {"dsn": REDACTED}, "values derived from Pulumi secrets are redacted in any kind"
    for p in paths:
        text = p.read_text()
        assert "hunter2" not in text and "c2VjcmV0" not in text, f"{p.name} leaks a secret"


def test_output_is_deterministic(tmp_path: Path) -> None:
    first = {p.name: p.read_text() for p in render_stack(SPEC, Path("."), tmp_path / "a", builder=build)}
    second = {p.name: p.read_text() for p in render_stack(SPEC, Path("."), tmp_path / "b", builder=build)}
    assert first == second
    text = first["web.Service.my-nginx.yaml"]
    assert text.index("apiVersion:") < text.index("kind:") < text.index("metadata:") < text.index("spec:")


def test_rerender_replaces_old_files_but_never_foreign_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_stack(SPEC, Path("."), out, builder=build)
    assert (out / MARKER).exists()
    (out / "web.Deployment.gone.yaml").write_text("stale")
    render_stack(SPEC, Path("."), out, builder=build)
    assert not (out / "web.Deployment.gone.yaml").exists(), "stale objects from an earlier render must go"

    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "Pulumi.yaml").write_text("name: x")
    with pytest.raises(FileExistsError):
        render_stack(SPEC, Path("."), foreign, builder=build)
    assert (foreign / "Pulumi.yaml").read_text() == "name: x"


def test_duplicate_objects_are_an_error() -> None:
    def dup(spec: PlatformSpec, secrets: Any, root: Path) -> None:
        k8s.core.v1.ConfigMap("a", metadata={"name": "x", "namespace": "web"})
        k8s.core.v1.ConfigMap("b", metadata={"name": "x", "namespace": "web"})

    with pytest.raises(ValueError, match="declared twice"):
        render_objects(SPEC, Path("."), builder=dup)


def test_to_manifest_from_type_token_when_inputs_lack_kind() -> None:
    manifest, is_patch = to_manifest("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", {"metadata": {"name": "r"}})
    assert (manifest["apiVersion"], manifest["kind"], is_patch) == (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        False,
    )
    manifest, is_patch = to_manifest("kubernetes:core/v1:NodePatch", {"kind": "Node", "apiVersion": "v1"})
    assert is_patch and manifest["kind"] == "Node"


@pytest.mark.skipif(
    importlib.util.find_spec("components.mysql") is None, reason="stacks.program needs components.mysql (in progress)"
)
def test_default_builder_is_the_program(tmp_path: Path) -> None:
    paths = render_stack(SPEC, Path("."), tmp_path)
    names = [p.name for p in paths]
    # existing mode, no nodes listed: the program asks for no taint patches
    assert {"_cluster.Namespace.web.yaml", "web.Deployment.my-nginx.yaml", "web.Service.my-nginx.yaml"} <= set(names)
    assert not any(".Node." in n for n in names), names


def test_files_round_trip_to_the_rendered_objects(tmp_path: Path) -> None:
    def build_script(spec: PlatformSpec, secrets: Any, root: Path) -> None:
        k8s.core.v1.ConfigMap(
            "cm", metadata={"name": "scripts", "namespace": "web"}, data={"run.sh": "#!/bin/sh\necho 'a: b'\n"}
        )

    objs = render_objects(SPEC, Path("."), builder=build_script)
    (path,) = render_stack(SPEC, Path("."), tmp_path, builder=build_script)
    text = path.read_text()
    assert "run.sh: |" in text, "multi-line strings are literal blocks"
    assert yaml.safe_load(text) == objs[path.name]

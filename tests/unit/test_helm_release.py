"""HelmRelease: values-file merge, mirrored repo, release options and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.helm_config import HelmReleaseSpec
from components.helm_release import HelmRelease, HelmReleaseArgs, deep_merge, load_values
from tests.support.mocks import OptsRecorder, PlatformMocks, run_program

RELEASE = "kubernetes:helm.sh/v3:Release"
MIRROR = "https://mirror.example.com/grafana"
UPSTREAM = "https://grafana.github.io/helm-charts"


def _spec(**kw: Any) -> HelmReleaseSpec:
    base: dict[str, Any] = dict(
        name="grafana",
        namespace="monitoring",
        repo=MIRROR,
        chart="grafana",
        version="8.5.0",
        upstream_repo=UPSTREAM,
    )
    base.update(kw)
    return HelmReleaseSpec(**base)


def _write(root: Path, rel: str, text: str) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return rel


def test_deep_merge_maps_recursive_lists_replaced_inputs_untouched() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "keep": True}
    over = {"a": {"c": [3], "d": {"e": 1}}}
    merged = deep_merge(base, over)
    assert merged == {"a": {"b": 1, "c": [3], "d": {"e": 1}}, "keep": True}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "keep": True}, "deep_merge must not mutate its inputs"


def test_values_files_merge_in_order_then_inline_values(tmp_path: Path) -> None:
    a = _write(tmp_path, "values/a.yaml", "replicas: 1\npersistence: {enabled: false, size: 1Gi}\nlist: [1, 2]\n")
    b = _write(tmp_path, "values/b.yaml", "persistence: {enabled: true}\nlist: [3]\n")
    spec = _spec(values_files=(a, b), values={"replicas": 3, "persistence": {"size": "5Gi"}})
    assert load_values(spec, tmp_path) == {
        "replicas": 3,
        "persistence": {"enabled": True, "size": "5Gi"},
        "list": [3],
    }


def test_empty_values_file_is_allowed_and_non_mapping_rejected(tmp_path: Path) -> None:
    empty = _write(tmp_path, "empty.yaml", "")
    assert load_values(_spec(values_files=(empty,)), tmp_path) == {}
    bad = _write(tmp_path, "bad.yaml", "- 1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_values(_spec(values_files=(bad,)), tmp_path)


def test_release_inputs_use_mirror_pinned_version_and_options(mocks: PlatformMocks, tmp_path: Path) -> None:
    f = _write(tmp_path, "v.yaml", "adminUser: admin\n")
    spec = _spec(values_files=(f,), values={"replicas": 2}, timeout=300, max_history=5, atomic=True)

    def program() -> None:
        HelmRelease("grafana", HelmReleaseArgs(spec=spec, project_root=str(tmp_path)))

    run_program(program)
    (rel,) = mocks.of_type(RELEASE)
    i = rel.inputs
    assert rel.name == "grafana-release"
    assert i["repositoryOpts"] == {"repo": MIRROR}, f"release must pull from the mirror, got {i['repositoryOpts']}"
    assert (i["name"], i["namespace"], i["chart"], i["version"]) == ("grafana", "monitoring", "grafana", "8.5.0")
    assert i["values"] == {"adminUser": "admin", "replicas": 2}
    assert i["atomic"] is True and i["cleanupOnFail"] is True
    assert i["timeout"] == 300 and i["maxHistory"] == 5
    assert i["createNamespace"] is True, "without a Namespace resource Helm must create the namespace"


def test_namespace_resource_orders_install_and_disables_create_namespace(
    mocks: PlatformMocks, opts_recorder: OptsRecorder
) -> None:
    def program() -> None:
        ns = k8s.core.v1.Namespace("ns", metadata={"name": "monitoring"})
        HelmRelease(
            "grafana",
            HelmReleaseArgs(spec=_spec(), project_root=".", namespace_resource=ns),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )

    run_program(program)
    (rel,) = mocks.of_type(RELEASE)
    assert rel.inputs["createNamespace"] is False
    assert rel.inputs["namespace"] == "monitoring"
    deps = opts_recorder.depends_on("grafana-release")
    assert any(isinstance(d, k8s.core.v1.Namespace) for d in deps), f"release must depend on the namespace: {deps}"


def test_outputs_mirror_helm_status_including_revision(mocks: PlatformMocks) -> None:
    def program() -> pulumi.Output[None]:
        hr = HelmRelease("grafana", HelmReleaseArgs(spec=_spec(), project_root="."))

        def check(v: list[Any]) -> None:
            urn, name, ns, chart, version, revision = v
            assert "k8s-platform:helm_release:HelmRelease$kubernetes:helm.sh/v3:Release::grafana-release" in urn, urn
            assert (name, ns, chart, version) == ("grafana", "monitoring", "grafana", "8.5.0"), f"{urn}: {v}"
            assert revision == 1, f"{urn}: revision {revision!r}"

        return pulumi.Output.all(
            hr.release.urn, hr.release_name, hr.namespace, hr.chart, hr.version, hr.revision
        ).apply(check)

    run_program(program)


def test_preview_registers_release_with_same_inputs(preview_mocks: PlatformMocks) -> None:
    def program() -> None:
        HelmRelease("grafana", HelmReleaseArgs(spec=_spec(), project_root="."))

    run_program(program)
    (rel,) = preview_mocks.of_type(RELEASE)
    assert rel.inputs["version"] == "8.5.0" and rel.inputs["repositoryOpts"] == {"repo": MIRROR}

"""PlatformNamespaces: one labelled Namespace per name, exposed by name."""

from __future__ import annotations

import pulumi

from components.namespaces import NamespacesArgs, PlatformNamespaces
from tests.support.mocks import PlatformMocks, run_program

NS_TYPE = "kubernetes:core/v1:Namespace"


def _build(names: tuple[str, ...], labels: dict[str, str] | None = None) -> dict[str, PlatformNamespaces]:
    made: dict[str, PlatformNamespaces] = {}

    def program() -> None:
        made["ns"] = PlatformNamespaces("namespaces", NamespacesArgs(names=names, labels=labels or {}))

    run_program(program)
    return made


def test_one_namespace_per_name_with_explicit_names(mocks: PlatformMocks) -> None:
    _build(("web", "data", "web"))
    created = mocks.of_type(NS_TYPE)
    assert sorted(r.inputs["metadata"]["name"] for r in created) == ["data", "web"], (
        f"expected one Namespace per distinct name, got {[r.name for r in created]}"
    )
    assert sorted(r.name for r in created) == ["namespaces-data", "namespaces-web"]


def test_labels_include_managed_by_and_given_labels(mocks: PlatformMocks) -> None:
    _build(("web",), {"k8s-platform/environment": "dev", "app.kubernetes.io/managed-by": "someone-else"})
    labels = mocks.named("namespaces-web").inputs["metadata"]["labels"]
    assert labels == {
        "k8s-platform/environment": "dev",
        "app.kubernetes.io/managed-by": "k8s-platform",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }, labels


def test_pod_security_level_per_namespace_from_its_workloads() -> None:
    from stacks.config import parse_config
    from stacks.program import pod_security_levels
    from tests.support.mocks import PROJECT_ROOT, existing_config

    app = {"image": "nginxinc/nginx-unprivileged:1.27.5", "port": 8080, "replicas": 2,
           "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}  # fmt: skip
    cfg = existing_config("prod")
    cfg["apps"] = [
        {**app, "name": "plain", "namespace": "web"},
        {**app, "name": "rooted", "namespace": "legacy", "runAsNonRoot": False},
    ]
    cfg["helm"] = {"releases": [{"name": "grafana", "namespace": "monitoring", "chart": "grafana", "version": "8.5.0",
                                 "repo": "https://grafana.github.io/helm-charts"}]}  # fmt: skip
    cfg["mysql"] = {"enabled": True, "namespace": "data", "replicas": 3}
    cfg["mysqlRootPassword"] = cfg["mysqlReplicationPassword"] = __import__("stacks.config").config.SECRET
    levels = pod_security_levels(parse_config(cfg, project_root=PROJECT_ROOT))
    assert levels == {"web": "restricted", "legacy": "baseline", "monitoring": "baseline", "data": "restricted"}


def test_unknown_pod_security_level_is_a_programming_error() -> None:
    import pytest

    from components.namespaces import pod_security_labels

    with pytest.raises(ValueError, match="not one of"):
        pod_security_labels("strict")


def test_by_name_and_parent_in_urn(mocks: PlatformMocks) -> None:
    def program() -> pulumi.Output[None]:
        nss = PlatformNamespaces("namespaces", NamespacesArgs(names=("web", "data"), labels={}))
        assert sorted(nss.by_name) == ["data", "web"]

        def check(args: list[str]) -> None:
            urn, name = args
            assert "k8s-platform:namespaces:PlatformNamespaces$kubernetes:core/v1:Namespace::namespaces-web" in urn, (
                f"{urn}: Namespace must be a child of the component"
            )
            assert name == "web", f"{urn}: metadata.name {name!r}"

        web = nss.by_name["web"]
        return pulumi.Output.all(web.urn, web.metadata.name).apply(check)

    run_program(program)


def test_preview_registers_the_same_namespaces(preview_mocks: PlatformMocks) -> None:
    _build(("web",))
    assert [r.name for r in preview_mocks.of_type(NS_TYPE)] == ["namespaces-web"]


def test_no_names_no_namespaces(mocks: PlatformMocks) -> None:
    made = _build(())
    assert mocks.of_type(NS_TYPE) == []
    assert made["ns"].by_name == {}


def test_namespaces_survive_destroy(mocks: PlatformMocks, opts_recorder) -> None:  # type: ignore[no-untyped-def]
    # deleting a namespace would delete every PVC in it, whatever the retention policies say
    def program() -> None:
        PlatformNamespaces(
            "namespaces",
            NamespacesArgs(names=("data", "web"), labels={}),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )

    run_program(program)
    for name in ("namespaces-data", "namespaces-web"):
        assert opts_recorder.opts[name].retain_on_delete is True, name

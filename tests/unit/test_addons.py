"""ClusterAddons: each add-on on/off, chart overrides, default classes, MetalLB CRs, taint patches."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.addons import CONTROL_PLANE_TAINT_KEYS, ClusterAddons, ClusterAddonsArgs
from components.addons_config import Addon, AddonsSpec, IngressAddon, LoadBalancerAddon, StorageAddon
from components.catalog import DEFAULT_ADDON_CHARTS as CHARTS
from components.catalog import ChartSource
from tests.support.mocks import OptsRecorder, PlatformMocks, run_program

RELEASE = "kubernetes:helm.sh/v3:Release"
POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"
L2 = "kubernetes:metallb.io/v1beta1:L2Advertisement"
NODE_PATCH = "kubernetes:core/v1:NodePatch"


SOFT_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "PreferNoSchedule"}


def _addons(
    ingress: bool = True,
    storage: bool = True,
    metrics: bool = True,
    lb: bool = True,
    values: dict[str, dict[str, Any]] | None = None,
) -> AddonsSpec:
    def chart(key: str) -> ChartSource:
        return dataclasses.replace(CHARTS[key], values=(values or {}).get(key, {}))

    return AddonsSpec(
        ingress=IngressAddon(enabled=ingress, chart=chart("ingress"), class_name="web"),
        storage=StorageAddon(enabled=storage, chart=chart("storage"), default_class="local-path"),
        metrics_server=Addon(enabled=metrics, chart=chart("metricsServer")),
        load_balancer=LoadBalancerAddon(
            enabled=lb, chart=chart("loadBalancer"), addresses=("10.4.17.240-10.4.17.250",) if lb else ()
        ),
    )


def _run(spec: AddonsSpec, opts: pulumi.ResourceOptions | None = None, **kw: Any) -> ClusterAddons:
    made: dict[str, ClusterAddons] = {}

    def program() -> None:
        made["a"] = ClusterAddons("addons", ClusterAddonsArgs(spec=spec, **kw), opts=opts)

    run_program(program)
    return made["a"]


def _release(mocks: PlatformMocks, chart: str) -> dict[str, Any]:
    found = [r.inputs for r in mocks.of_type(RELEASE) if r.inputs["chart"] == chart]
    assert found, f"no release of chart {chart!r}; have {[r.inputs['chart'] for r in mocks.of_type(RELEASE)]}"
    return found[0]


def test_all_enabled_installs_each_default_chart(mocks: PlatformMocks) -> None:
    _run(_addons())
    for key in ("ingress", "storage", "metricsServer", "loadBalancer"):
        src = CHARTS[key]
        rel = _release(mocks, src.chart)
        assert rel["repositoryOpts"] == {"repo": src.repo}, key
        assert (rel["version"], rel["namespace"], rel["name"]) == (src.version, src.namespace, src.chart), key
        assert rel["atomic"] is True, f"{key}: add-on releases must be atomic"


@pytest.mark.parametrize(
    ("flag", "chart"),
    [
        ("ingress", CHARTS["ingress"].chart),
        ("storage", CHARTS["storage"].chart),
        ("metrics", CHARTS["metricsServer"].chart),
        ("lb", CHARTS["loadBalancer"].chart),
    ],
)
def test_disabled_addon_installs_nothing(mocks: PlatformMocks, flag: str, chart: str) -> None:
    _run(_addons(ingress=flag != "ingress", storage=flag != "storage", metrics=flag != "metrics", lb=flag != "lb"))
    charts = sorted(r.inputs["chart"] for r in mocks.of_type(RELEASE))
    assert chart not in charts, f"{flag} disabled but {chart} installed: {charts}"
    assert len(charts) == 3, charts
    if flag == "lb":
        assert not mocks.of_type(POOL) and not mocks.of_type(L2), "no MetalLB CRs without MetalLB"


def test_storage_class_is_default_with_configured_name(mocks: PlatformMocks) -> None:
    _run(_addons())
    values = _release(mocks, CHARTS["storage"].chart)["values"]
    assert values["hostpathClass"] == {"enabled": True, "name": "local-path", "isDefaultClass": True}, values


def test_ingress_class_named_and_default(mocks: PlatformMocks) -> None:
    _run(_addons())
    values = _release(mocks, CHARTS["ingress"].chart)["values"]
    assert values["ingressClass"] == {"enabled": True, "isDefaultClass": True, "name": "web"}, values
    assert values["service"]["type"] == "LoadBalancer", "with a MetalLB pool the controller gets an address"


def test_ingress_uses_nodeport_without_load_balancer(mocks: PlatformMocks) -> None:
    _run(_addons(lb=False))
    assert _release(mocks, CHARTS["ingress"].chart)["values"]["service"]["type"] == "NodePort"


def test_chart_overrides_merge_but_cannot_break_the_class_contract(mocks: PlatformMocks) -> None:
    spec = _addons(
        values={
            "ingress": {
                "deployment": {"replicas": 2},
                "ingressClass": {"name": "other"},
                "service": {"type": "ClusterIP"},
            },
            "storage": {"hostpathClass": {"basePath": "/data"}},
            "metricsServer": {"args": []},
        }
    )
    spec = dataclasses.replace(
        spec, ingress=dataclasses.replace(spec.ingress, chart=dataclasses.replace(spec.ingress.chart, version="37.3.0"))
    )
    _run(spec)
    ing = _release(mocks, "traefik")
    assert ing["version"] == "37.3.0"
    assert ing["values"]["deployment"] == {"replicas": 2}
    assert ing["values"]["service"] == {"type": "ClusterIP"}, "stack values override platform defaults"
    assert ing["values"]["ingressClass"]["name"] == "web", "class name is the platform contract, not overridable"
    sto = _release(mocks, CHARTS["storage"].chart)["values"]["hostpathClass"]
    assert sto["basePath"] == "/data" and sto["isDefaultClass"] is True
    assert _release(mocks, "metrics-server")["values"]["args"] == []


def test_metallb_pool_and_l2_depend_on_release(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    _run(_addons(), opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]))
    (pool,) = mocks.of_type(POOL)
    (l2,) = mocks.of_type(L2)
    ns = CHARTS["loadBalancer"].namespace
    assert pool.inputs["spec"] == {"addresses": ["10.4.17.240-10.4.17.250"]}
    assert pool.inputs["metadata"] == {"name": "default", "namespace": ns}
    assert l2.inputs["spec"] == {"ipAddressPools": ["default"]}
    for name in ("addons-metallb-pool", "addons-metallb-l2"):
        deps = opts_recorder.depends_on(name)
        assert any(isinstance(d, k8s.helm.v3.Release) for d in deps), f"{name} must depend on the MetalLB release"
    ingress_deps = opts_recorder.depends_on("addons-ingress")
    assert any(isinstance(d, k8s.apiextensions.CustomResource) for d in ingress_deps), (
        "the ingress controller's LoadBalancer Service needs the pool first"
    )


@pytest.mark.parametrize(
    ("schedulable", "nodes", "expected"),
    [(True, (), []), (False, ("node1",), []), (True, ("node2", "node1"), ["node1", "node2"])],
)
def test_taint_patches_only_when_asked(
    mocks: PlatformMocks, schedulable: bool, nodes: tuple[str, ...], expected: list[str]
) -> None:
    _run(_addons(), schedulable_control_plane=schedulable, remove_taints_from=nodes)
    patches = mocks.of_type(NODE_PATCH)
    assert sorted(p.inputs["metadata"]["name"] for p in patches) == expected
    for p in patches:
        # the whole (atomic) list is replaced: no NoSchedule taint left, one soft PreferNoSchedule
        assert p.inputs["spec"] == {"taints": [SOFT_TAINT]}, f"{p.name}: {p.inputs['spec']}"
        ann = p.inputs["metadata"]["annotations"]
        assert ann["pulumi.com/patchForce"] == "true", f"{p.name}: must force over kubeadm's field manager"
        assert ann["pulumi.com/patchFieldManager"], f"{p.name}: needs a stable field manager"
    assert "node-role.kubernetes.io/control-plane" in CONTROL_PLANE_TAINT_KEYS


def test_releases_wait_for_taint_removal(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    _run(
        _addons(),
        opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        schedulable_control_plane=True,
        remove_taints_from=("node1",),
    )
    for name in ("addons-storage", "addons-metrics-server", "addons-ingress", "addons-metallb"):
        deps = opts_recorder.depends_on(name)
        assert any(isinstance(d, k8s.core.v1.NodePatch) for d in deps), f"{name} must wait for the taint patch"
    assert opts_recorder.opts["addons-untaint-node1"].retain_on_delete is True


def test_children_parented_and_inherit_provider(mocks: PlatformMocks) -> None:
    def program() -> pulumi.Output[None]:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        addons = ClusterAddons(
            "addons",
            ClusterAddonsArgs(spec=_addons(), schedulable_control_plane=True, remove_taints_from=("node1",)),
            opts=pulumi.ResourceOptions(provider=provider),
        )
        children = [addons.releases["ingress"], addons.address_pool, addons.taint_patches["node1"]]

        def check(urns: list[str]) -> None:
            prov_urn = urns[0]
            for urn in urns[1:]:
                assert urn.split("::")[2].startswith("k8s-platform:addons:ClusterAddons$"), (
                    f"{urn}: must be a child of ClusterAddons"
                )
            for r in mocks.resources:
                if r.type.startswith("kubernetes:"):
                    assert r.provider.startswith(prov_urn), f"{r.name}: provider {r.provider!r} not inherited"

        return pulumi.Output.all(provider.urn, *[c.urn for c in children if c is not None]).apply(check)

    run_program(program)


def test_preview_registers_same_resources(preview_mocks: PlatformMocks) -> None:
    _run(_addons(), schedulable_control_plane=True, remove_taints_from=("node1",))
    types = sorted({r.type for r in preview_mocks.resources if r.type.startswith("kubernetes:")})
    assert types == sorted({RELEASE, POOL, L2, NODE_PATCH}), types

"""helm.repoMirrors applies to every chart the stack installs: `helm.releases` and the add-ons'
catalog charts (Traefik, OpenEBS LocalPV, metrics-server, MetalLB, Istio base + istiod).

An add-on's own `repo` is used as written; an OCI mirror turns into the chart reference
`oci://host/path/chart` with no repository option; a mirror no chart comes through warns."""

from __future__ import annotations

from typing import Any

import pytest

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.addons_config import AddonsConfig, AddonsSpec
from components.catalog import DEFAULT_ADDON_CHARTS as CHARTS
from components.helm_config import HelmConfig, HelmReleaseSpec, HelmSpec, chart_reference
from components.helm_release import HelmRelease, HelmReleaseArgs
from stacks.config import ConfigError, parse_config
from stacks.render import helm_releases
from tests.support.mocks import PROJECT_ROOT, PlatformMocks, assert_problem, kubespray_config, run_program

RELEASE = "kubernetes:helm.sh/v3:Release"
TRAEFIK = CHARTS["ingress"].repo  # https://traefik.github.io/charts
METRICS = CHARTS["metricsServer"].repo  # the catalog writes it with a trailing slash
ISTIO = CHARTS["mesh"].repo
METALLB = CHARTS["loadBalancer"].repo
MIRROR = "https://charts.mirror.example.com"
OCI = "oci://registry.mirror.example.com/charts"


def _helm(mirrors: dict[str, str]) -> HelmSpec:
    return HelmConfig.model_validate({"repoMirrors": mirrors}).args()


def _addons(mirrors: dict[str, str], raw: dict[str, Any] | None = None) -> AddonsSpec:
    raw = {"loadBalancer": {"enabled": True, "addresses": ["10.4.17.240-10.4.17.250"]},
           "mesh": {"enabled": True}, **(raw or {})}  # fmt: skip
    return AddonsConfig.model_validate(raw).args(_helm(mirrors))


def _installed(mocks: PlatformMocks, spec: AddonsSpec) -> dict[str, dict[str, Any]]:
    """Release name -> the Release's inputs, as the engine sees them."""
    run_program(lambda: ClusterAddons("addons", ClusterAddonsArgs(spec=spec)))
    return {r.inputs["name"]: r.inputs for r in mocks.of_type(RELEASE)}


def _stack(mirrors: dict[str, str], addons: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = kubespray_config()
    cfg["addons"] = {"mesh": {"enabled": True}, **(addons or {})}
    cfg["helm"] = {"repoMirrors": mirrors}
    return cfg


# --------------------------------------------------------------------------- the spec

def test_catalog_repos_go_through_the_mirrors_trailing_slash_either_side() -> None:
    spec = parse_config(_stack({
        f"{TRAEFIK}/": f"{MIRROR}/traefik",  # the key with a slash the catalog's URL lacks
        METRICS.rstrip("/"): f"{MIRROR}/metrics-server",  # the key without the catalog's slash
        ISTIO: f"{MIRROR}/istio",
    }), project_root=PROJECT_ROOT)  # fmt: skip
    addons = spec.addons
    assert addons.ingress.chart.repo == f"{MIRROR}/traefik"
    assert addons.metrics_server.chart.repo == f"{MIRROR}/metrics-server"
    assert addons.mesh is not None
    assert (addons.mesh.chart.repo, addons.mesh.base.repo) == (f"{MIRROR}/istio", f"{MIRROR}/istio"), (
        "Istio's base chart comes from the same (mirrored) repo as istiod"
    )
    # the upstream stays beside the mirror, as for helm.releases
    assert (addons.ingress.chart.upstream_repo, addons.mesh.base.upstream_repo) == (TRAEFIK, ISTIO)
    # no mirror for the storage chart: its upstream, unchanged
    assert addons.storage.chart.repo == CHARTS["storage"].repo


def test_an_addons_own_repo_wins_over_the_mirror() -> None:
    own = "https://charts.internal.example.com/traefik"
    spec = parse_config(_stack({TRAEFIK: f"{MIRROR}/traefik"}, {"ingress": {"repo": own}}), project_root=PROJECT_ROOT)
    assert spec.addons.ingress.chart.repo == own, "a repo the stack names is used as written"
    assert spec.addons.ingress.chart.upstream_repo == own


def test_without_mirrors_every_repo_is_the_catalogs() -> None:
    spec = parse_config(_stack({}), project_root=PROJECT_ROOT)
    a = spec.addons
    assert a.mesh is not None
    got = {key: addon.chart.repo for key, addon in (
        ("ingress", a.ingress), ("storage", a.storage), ("metricsServer", a.metrics_server),
        ("loadBalancer", a.load_balancer), ("mesh", a.mesh))}  # fmt: skip
    assert got == {key: CHARTS[key].repo for key in got}
    assert not [w for w in spec.warnings if "repoMirrors" in w], spec.warnings


def test_a_mirror_that_feeds_nothing_warns() -> None:
    unused = "https://charts.example.com/nothing-here"
    grafana = "https://grafana.github.io/helm-charts"
    cfg = _stack(
        {
            unused: f"{MIRROR}/nothing",
            TRAEFIK: f"{MIRROR}/traefik",  # ingress names its own repo: this feeds nothing
            METALLB: f"{MIRROR}/metallb",  # MetalLB is off by default: nothing either
            ISTIO: f"{MIRROR}/istio",  # the mesh is on: used
            f"{grafana}/": f"{MIRROR}/grafana",  # a release's repo: used
        },
        {"ingress": {"repo": "https://charts.internal.example.com/traefik"}},
    )
    cfg["helm"]["releases"] = [
        {"name": "grafana", "namespace": "monitoring", "repo": grafana, "chart": "grafana", "version": "8.5.0"}
    ]
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    warned = {w.split(": ", 1)[0]: w for w in spec.warnings if w.startswith("helm.repoMirrors")}
    assert set(warned) == {f"helm.repoMirrors.{k}" for k in (unused, TRAEFIK, METALLB)}, spec.warnings
    assert all("feeds nothing" in w for w in warned.values()), warned
    assert spec.helm.releases[0].repo == f"{MIRROR}/grafana"


def test_a_plain_http_mirror_of_an_addon_is_refused_outside_dev() -> None:
    # the add-on's chart is fetched from the mirror, so the mirror's transport is what is checked
    with pytest.raises(ConfigError) as err:
        parse_config(_stack({TRAEFIK: "http://charts.mirror.example.com/traefik"}), project_root=PROJECT_ROOT)
    assert_problem(err.value.problems, "addons.ingress.repo", "does not authenticate the server")


# --------------------------------------------------------------------------- the releases

def test_addon_charts_are_fetched_from_the_mirror(mocks: PlatformMocks) -> None:
    installed = _installed(mocks, _addons({TRAEFIK: f"{MIRROR}/traefik", METALLB: f"{MIRROR}/metallb"}))
    assert installed["traefik"]["repositoryOpts"] == {"repo": f"{MIRROR}/traefik"}
    assert installed["metallb"]["repositoryOpts"] == {"repo": f"{MIRROR}/metallb"}
    assert installed["traefik"]["chart"] == "traefik" and installed["traefik"]["version"] == CHARTS["ingress"].version
    # not in repoMirrors: fetched from the catalog's upstream, as before
    assert installed["metrics-server"]["repositoryOpts"] == {"repo": METRICS}
    assert installed["localpv-provisioner"]["repositoryOpts"] == {"repo": CHARTS["storage"].repo}


def test_an_addons_own_repo_is_what_the_release_fetches(mocks: PlatformMocks) -> None:
    own = "https://charts.internal.example.com/traefik"
    installed = _installed(mocks, _addons({TRAEFIK: f"{MIRROR}/traefik"}, {"ingress": {"repo": own}}))
    assert installed["traefik"]["repositoryOpts"] == {"repo": own}


def test_oci_mirror_gives_the_oci_chart_reference(mocks: PlatformMocks) -> None:
    installed = _installed(mocks, _addons({TRAEFIK: f"{OCI}/", ISTIO: f"{OCI}/istio"}))
    traefik = installed["traefik"]
    assert traefik["chart"] == f"{OCI}/traefik", traefik
    assert "repositoryOpts" not in traefik, "an OCI chart is fetched by its reference, with no repository"
    assert traefik["version"] == CHARTS["ingress"].version
    # both Istio charts from the registry, each by its own reference
    assert installed["base"]["chart"] == f"{OCI}/istio/base" and "repositoryOpts" not in installed["base"]
    assert installed["istiod"]["chart"] == f"{OCI}/istio/istiod" and "repositoryOpts" not in installed["istiod"]
    # no OCI mirror for metrics-server: a chart name in its upstream repository
    assert installed["metrics-server"]["chart"] == "metrics-server"
    assert installed["metrics-server"]["repositoryOpts"] == {"repo": METRICS}


def test_no_mirror_leaves_every_addon_on_its_upstream(mocks: PlatformMocks) -> None:
    installed = _installed(mocks, _addons({}))
    want = {CHARTS[k].chart: CHARTS[k].repo for k in ("ingress", "storage", "metricsServer", "loadBalancer", "mesh")}
    want["base"] = ISTIO
    assert {name: i["repositoryOpts"]["repo"] for name, i in installed.items()} == want
    assert all(i["chart"] == name for name, i in installed.items()), "a chart name, not a reference"


@pytest.mark.parametrize(
    ("repo", "chart", "expected"),
    [
        ("oci://ghcr.io/grafana/helm-charts", "grafana", ("oci://ghcr.io/grafana/helm-charts/grafana", "")),
        ("oci://ghcr.io/grafana/helm-charts/", "grafana", ("oci://ghcr.io/grafana/helm-charts/grafana", "")),
        ("https://grafana.github.io/helm-charts", "grafana", ("grafana", "https://grafana.github.io/helm-charts")),
    ],
)
def test_chart_reference(repo: str, chart: str, expected: tuple[str, str]) -> None:
    assert chart_reference(repo, chart) == expected


def test_release_from_an_oci_repo_has_no_repository_option(mocks: PlatformMocks) -> None:
    spec = HelmReleaseSpec(name="grafana", namespace="monitoring", repo="oci://ghcr.io/grafana/helm-charts",
                           chart="grafana", version="8.5.0")  # fmt: skip
    run_program(lambda: HelmRelease("grafana", HelmReleaseArgs(spec=spec, project_root=str(PROJECT_ROOT))))
    (rel,) = mocks.of_type(RELEASE)
    assert rel.inputs["chart"] == "oci://ghcr.io/grafana/helm-charts/grafana"
    assert "repositoryOpts" not in rel.inputs
    assert (rel.inputs["name"], rel.inputs["version"]) == ("grafana", "8.5.0")


# --------------------------------------------------------------------------- through the program

def test_the_program_and_make_plan_fetch_addons_from_the_mirrors() -> None:
    spec = parse_config(_stack({TRAEFIK: f"{MIRROR}/traefik", ISTIO: OCI}), project_root=PROJECT_ROOT)
    by_name = {r.name: r for r in helm_releases(spec, PROJECT_ROOT)}
    assert (by_name["traefik"].chart, by_name["traefik"].repo) == ("traefik", f"{MIRROR}/traefik")
    assert (by_name["istiod"].chart, by_name["istiod"].repo) == (f"{OCI}/istiod", "")
    assert (by_name["base"].chart, by_name["base"].repo) == (f"{OCI}/base", "")
    assert by_name["metrics-server"].repo == METRICS

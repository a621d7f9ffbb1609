"""`make plan` renders each Helm release with a real `helm template` (helm v4 from the tools cache).

The project's test charts are served on 127.0.0.1 (tests/e2e/lib/chartrepo.py); a stack
whose releases point there gets one file per release with the chart's objects, rendered
with the values the program sends. An unreachable repository is reported, not skipped, and
told apart (by real helm's own errors) from a repository that answered with a chart that
does not render: only the first may pass `render --charts --allow-unreachable`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lib.chartrepo import ChartRepo

from stacks.charts import find_helm, template_releases
from stacks.config import parse_config
from stacks.files import PROJECT_ROOT
from stacks.render import helm_releases


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    r = ChartRepo(tmp_path_factory.mktemp("charts")).start()
    yield r
    r.stop()


def _spec(repo_url: str) -> object:
    return parse_config({
        "environment": "dev", "cluster": {"mode": "existing", "kubeconfig": "/k"},
        "addons": {"ingress": {"enabled": True, "repo": repo_url}, "storage": {"enabled": False},
                   "metricsServer": {"enabled": True, "repo": repo_url}, "loadBalancer": {"enabled": False}},
        "helm": {"releases": [{"name": "grafana", "namespace": "monitoring", "repo": repo_url, "chart": "grafana",
                               "version": "8.5.0", "values": {"replicas": 3}}]},
        "mysql": {"enabled": False}, "apps": [],
    }, project_root=PROJECT_ROOT)  # type: ignore[return-value]  # fmt: skip


def test_every_release_is_templated_by_real_helm(repo: ChartRepo, tmp_path: Path) -> None:
    assert find_helm(), "make setup installs helm into the tools cache"
    releases = helm_releases(_spec(repo.url), PROJECT_ROOT)  # type: ignore[arg-type]
    assert [(r.namespace, r.name) for r in releases] == [
        ("ingress", "traefik"), ("kube-system", "metrics-server"), ("monitoring", "grafana")]
    results = template_releases(releases, tmp_path)
    assert [r.problem for r in results] == ["", "", ""]
    grafana = next(r for r in results if r.release.name == "grafana")
    assert grafana.path is not None and grafana.path.name == "monitoring.grafana.helm.yaml"
    objects = [d for d in yaml.safe_load_all(grafana.path.read_text()) if d]
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 3, "rendered with the values the program sends"
    assert all(o["metadata"].get("namespace") in (None, "monitoring") for o in objects)


def test_an_unreachable_repository_is_reported(tmp_path: Path) -> None:
    releases = helm_releases(_spec("http://127.0.0.1:9/charts"), PROJECT_ROOT)  # type: ignore[arg-type]
    results = template_releases(releases, tmp_path, timeout=60)
    assert all(r.path is None and r.problem for r in results), results
    assert "127.0.0.1:9" in results[0].problem
    assert all(r.unreachable for r in results), [r.problem for r in results]


def test_a_reachable_chart_that_does_not_render_is_not_unreachable(repo: ChartRepo, tmp_path: Path) -> None:
    base = helm_releases(_spec(repo.url), PROJECT_ROOT)[-1]  # type: ignore[arg-type]
    assert base.name == "grafana"
    releases = [
        dataclasses.replace(base, name="no-such-version", version="9.9.9"),
        dataclasses.replace(base, name="no-index", repo=f"{repo.url}/nowhere"),
        # the stand-in chart reads persistence.enabled: a string there fails its template
        dataclasses.replace(base, name="template-error", values={"persistence": "on"}),
    ]
    results = template_releases(releases, tmp_path, timeout=60)
    assert [(r.path, r.unreachable) for r in results] == [(None, False)] * 3, [r.problem for r in results]
    assert "9.9.9" in results[0].problem and "404" in results[1].problem and "persistence" in results[2].problem

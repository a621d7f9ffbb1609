"""Times `render_stack` on synthetic stacks of 10, 100 and 500 apps.

Each app is a Deployment + Service + Ingress + HPA, so the stack grows by four
objects per app. Prints the median wall time per size, the median time per app,
and the per-app ratio of each size to the smallest: a ratio near 1 means
rendering grows linearly with the number of apps.

    .venv/bin/python bench/bench_render.py [--sizes 10 100 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from components.addons_config import Addon, AddonsSpec, IngressAddon, LoadBalancerAddon, StorageAddon  # noqa: E402
from components.catalog import DEFAULT_ADDON_CHARTS as CHARTS  # noqa: E402
from components.cluster_config import ClusterSpec  # noqa: E402
from components.helm_config import HelmSpec  # noqa: E402
from components.mysql_config import MySQLSpec  # noqa: E402
from components.namespaces import NamespacesArgs, PlatformNamespaces  # noqa: E402
from components.webapp import WebApp, WebAppArgs  # noqa: E402
from components.webapp_config import AppSpec, HpaSpec, IngressSpec  # noqa: E402
from stacks.config import PlatformSpec  # noqa: E402
from stacks.render import render_stack  # noqa: E402


def synthetic(n_apps: int) -> PlatformSpec:
    apps = tuple(
        AppSpec(
            name=f"app-{i:04d}",
            namespace=f"team-{i % 10}",
            image="nginxinc/nginx-unprivileged:1.27",
            replicas=2,
            port=8080,
            ingress=IngressSpec(host=f"app-{i:04d}.example.com"),
            env={"INDEX": str(i)},
            hpa=HpaSpec(min_replicas=2, max_replicas=4),
        )
        for i in range(n_apps)
    )
    addons = AddonsSpec(
        ingress=IngressAddon(False, CHARTS["ingress"]),
        storage=StorageAddon(False, CHARTS["storage"]),
        metrics_server=Addon(False, CHARTS["metricsServer"]),
        load_balancer=LoadBalancerAddon(False, CHARTS["loadBalancer"]),
    )
    return PlatformSpec("dev", ClusterSpec(mode="existing"), True, addons, HelmSpec(), MySQLSpec(), apps)


def build(spec: PlatformSpec, secrets: Any, root: Path) -> None:
    PlatformNamespaces("namespaces", NamespacesArgs(names=spec.namespaces, labels={}))
    for app in spec.apps:
        WebApp(f"app-{app.namespace}-{app.name}", WebAppArgs(spec=app, ingress_class="traefik"))


def time_render(n_apps: int, runs: int) -> list[float]:
    spec = synthetic(n_apps)
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            paths = render_stack(spec, ROOT, Path(tmp) / "out", builder=build)
            times.append(time.perf_counter() - start)
            expected = 4 * n_apps + len(spec.namespaces)
            assert len(paths) == expected, f"{len(paths)} files, expected {expected}"
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    time_render(5, 1)  # warm-up: imports, gRPC/mock setup
    base_per_app: float | None = None
    print(f"{'apps':>6} {'objects':>8} {'median s':>10} {'ms/app':>8} {'ratio':>6}   runs (s)")
    for n in args.sizes:
        times = time_render(n, args.runs)
        median = statistics.median(times)
        per_app = median / n
        base_per_app = base_per_app or per_app
        runs = " ".join(f"{t:.2f}" for t in times)
        print(f"{n:>6} {4 * n:>8} {median:>10.3f} {per_app * 1000:>8.2f} {per_app / base_per_app:>6.2f}   {runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

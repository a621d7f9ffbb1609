"""Wall time of the real engine: a full `pulumi up`, a no-op `pulumi up` and a `pulumi preview`.

Starts the local control plane and the loopback chart repository (tests/e2e/lib), then for
each run: a fresh `mode: existing` stack with the e2e platform (add-ons, a Helm release,
MySQL, an app) is brought up from nothing (full), brought up again unchanged (no-op),
previewed, and destroyed. Prints medians per operation and the ratio no-op / full.

    .venv/bin/python bench/bench_e2e.py [--runs 3]        (make bench-e2e; needs make engine)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from lib import engine  # noqa: E402
from lib.chartrepo import ChartRepo  # noqa: E402
from lib.cluster import LocalCluster  # noqa: E402
from lib.stack import E2EStack, existing_config  # noqa: E402


def timed(fn: Callable[..., object], *args: object) -> float:
    t0 = time.monotonic()
    fn(*args)
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ok, why = engine.check()
    if not ok:
        print(f"bench-e2e needs the engine: {why}", file=sys.stderr)
        return 1
    times: dict[str, list[float]] = {"full up": [], "no-op up": [], "preview": []}
    with tempfile.TemporaryDirectory(prefix="k8sp-bench-e2e-") as tmp:
        base = Path(tmp)
        cluster = LocalCluster(base / "cluster").start()
        repo = ChartRepo(base / "charts").start()
        try:
            for run in range(args.runs):
                cfg = existing_config(kubeconfig=str(cluster.kubeconfig), charts_url=repo.url,
                                      chart_versions=repo.versions)
                stack = E2EStack.create(base / f"run{run}", cfg, {"mysqlRootPassword": f"bench-root-{run}-x9",
                                                                  "mysqlReplicationPassword": f"bench-repl-{run}-x9"})
                times["full up"].append(timed(stack.up, 900))
                times["no-op up"].append(timed(stack.up, 900))
                times["preview"].append(timed(stack.preview, 600))
                stack.destroy(900)
                cluster.reset_baseline()
                print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
        finally:
            repo.stop()
            cluster.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedian of {args.runs} runs (mode: existing, local control plane + KWOK):")
    for k, v in med.items():
        print(f"  {k:<9} {v:6.1f} s")
    print(f"  no-op / full ratio: {med['no-op up'] / med['full up']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

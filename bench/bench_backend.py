"""What a shared S3 backend adds to `pulumi up`: the same stack on the file backend and on S3.

Starts the local control plane, the loopback chart repository and SeaweedFS's S3 gateway
(tests/e2e/lib). Each run deploys the e2e platform in existing mode (add-ons, a Helm
release, an app; no MySQL) once on the local file backend and once on S3, alternating
which goes first: full `up`, no-op `up`, `destroy`. Prints the median of each per
backend and the ratio S3 / file, from the same run.

    .venv/bin/python bench/bench_backend.py [--runs 3]   (make bench-backend)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT)]

from lib import engine, setups  # noqa: E402
from lib.chartrepo import ChartRepo  # noqa: E402
from lib.cluster import LocalCluster  # noqa: E402
from lib.objectstore import ObjectStore  # noqa: E402
from lib.stack import E2EStack  # noqa: E402

STEPS = ("full up", "no-op up", "destroy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ok, why = engine.check()
    if not ok:
        print(f"bench-backend needs the engine: {why}", file=sys.stderr)
        return 1
    times: dict[str, dict[str, list[float]]] = {b: {s: [] for s in STEPS} for b in ("file", "s3")}
    with tempfile.TemporaryDirectory(prefix="k8sp-bench-backend-") as tmp:
        base = Path(tmp)
        cluster = LocalCluster(base / "cluster").start()
        repo = ChartRepo(base / "charts").start()
        store = ObjectStore(base / "s3")
        try:
            store.start()
            # the e2e tests' own setup (tests/e2e/lib/setups.py)
            cfg = setups.existing_stack(cluster=cluster, repo=repo, overrides={"mysql": {"enabled": False}})
            for run in range(args.runs):
                order = ("file", "s3") if run % 2 == 0 else ("s3", "file")
                for kind in order:
                    backend = store.backend(f"bench-{run}") if kind == "s3" else None
                    stack = E2EStack.create(base / f"{kind}-{run}", cfg, backend=backend)
                    for step, call in (("full up", stack.up), ("no-op up", stack.up), ("destroy", stack.destroy)):
                        t0 = time.monotonic()
                        call(900)
                        times[kind][step].append(time.monotonic() - t0)
                    cluster.reset_baseline()
                print(f"run {run + 1}/{args.runs}: " + "; ".join(
                    f"{k} " + ", ".join(f"{s} {times[k][s][-1]:.1f}s" for s in STEPS) for k in ("file", "s3")
                ), flush=True)  # fmt: skip
        finally:
            store.stop(5)
            repo.stop()
            cluster.stop()
    med = {k: {s: statistics.median(v) for s, v in steps.items()} for k, steps in times.items()}
    print(f"\nmedian of {args.runs} runs (existing mode, local control plane + KWOK), file vs S3 (SeaweedFS):")
    for s in STEPS:
        f, s3 = med["file"][s], med["s3"][s]
        print(f"  {s:<10} file {f:6.1f} s   s3 {s3:6.1f} s   s3/file {s3 / f:4.2f}   (+{s3 - f:.1f} s)")
    print(json.dumps({"median_s": med}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

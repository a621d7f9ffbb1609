"""Wall time of the real engine: full `pulumi up`, no-op `up`, `preview`, add-worker `up`, `destroy`.

Starts the local control plane, the loopback chart repository and (kubespray mode) the
sshd control host with kubespray v2.31.0's own tree (tests/e2e/lib). Each run brings a
fresh stack with the e2e platform (add-ons, a Helm release, MySQL, an app) up from
nothing (full), up again unchanged (no-op), previews it, adds a worker (kubespray mode),
and destroys it; then times the floor, an empty Python program's no-op `up` and `preview`
on the same engine. Prints medians per operation, the playbooks each step ran, the ratios
no-op / full and no-op / floor, and the size of the state after the full up. The control host's kubespray
venv is built before the first run (as a team's control host keeps one), so "full up"
is a first deployment with kubespray already prepared.

    .venv/bin/python bench/bench_e2e.py [--runs 3] [--mode kubespray|existing]   (make bench-e2e)
"""

from __future__ import annotations

import argparse
import gzip
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT)]

from lib import engine, setups  # noqa: E402
from lib.chartrepo import ChartRepo  # noqa: E402
from lib.cluster import LocalCluster  # noqa: E402
from lib.sshd import ControlHost  # noqa: E402
from lib.stack import E2EStack  # noqa: E402
from lib.standin import KubesprayUnderTest  # noqa: E402

from tests.support.kubespray_tree import ensure_wheelhouse  # noqa: E402


def timed(fn: Callable[..., object], *args: object) -> float:
    t0 = time.monotonic()
    fn(*args)
    return time.monotonic() - t0


def state_bytes(stack: E2EStack) -> int:
    total = 0
    for p in stack.state_files():
        if "/stacks/" in str(p) and p.name.startswith(stack.name + ".json"):
            data = p.read_bytes()
            total += len(gzip.decompress(data) if p.suffix == ".gz" else data)
    return total


def floor_stack(base: Path) -> E2EStack:
    """The floor: an empty Python program (no resource, no provider) on the same engine, language
    host, venv and kind of backend as the platform's stacks."""
    project = base / "project"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(
        "name: floor\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: .venv\n"
    )
    (project / "__main__.py").write_text("import pulumi  # noqa: F401\n")
    (project / ".venv").symlink_to(ROOT / ".venv")
    stack = E2EStack(dir=project, state_dir=base / "state", name="floor")
    stack.state_dir.mkdir(parents=True)
    stack.run("stack", "init", "floor", "--secrets-provider", "passphrase", timeout=120)
    stack.up(300)
    return stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mode", choices=("kubespray", "existing"), default="kubespray")
    args = parser.parse_args()
    ok, why = engine.check()
    if not ok:
        print(f"bench-e2e needs the engine: {why}", file=sys.stderr)
        return 1
    ks = args.mode == "kubespray"
    floor_steps = ["floor no-op up", "floor preview"]
    steps = ["full up", "no-op up", "preview"] + (["add-worker up"] if ks else []) + ["destroy"] + floor_steps
    times: dict[str, list[float]] = {k: [] for k in steps}
    playbooks: dict[str, list[str]] = {}
    sizes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="k8sp-bench-e2e-") as tmp:
        base = Path(tmp)
        cluster = LocalCluster(base / "cluster").start()
        repo = ChartRepo(base / "charts").start()
        host: ControlHost | None = None
        try:
            si: KubesprayUnderTest | None = None
            if ks:
                assert cluster.kubeconfig is not None
                si = KubesprayUnderTest(base / "kubespray", admin_conf=cluster.kubeconfig).build()
                wheels = ensure_wheelhouse(ROOT / "components" / "kubespray_releases" / "v2.31.0.requirements.txt")
                host = ControlHost(base / "control-host", env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)})
                host.start()
            floor = floor_stack(base / "floor")
            for run in range(args.runs):
                secret_cfg = {"mysqlRootPassword": "root-" + secrets.token_urlsafe(12),
                              "mysqlReplicationPassword": "repl-" + secrets.token_urlsafe(12)}  # fmt: skip
                cfg: dict[str, Any]
                if si is not None and host is not None:
                    # the e2e tests' own setup (tests/e2e/lib/setups.py)
                    cfg, ssh = setups.kubespray_stack(si=si, host=host, cluster=cluster, repo=repo,
                                                      workdir=base / "workdir")  # fmt: skip
                    secret_cfg.update(ssh)
                else:
                    cfg = setups.existing_stack(cluster=cluster, repo=repo)
                stack = E2EStack.create(base / f"run{run}", cfg, secret_cfg)
                if si is not None and run == 0:
                    # warm-up, not counted: builds the control host's kubespray venv once, as a
                    # team's control host keeps one
                    stack.up(900)
                    stack.destroy(900)
                    cluster.reset_baseline()

                def step(name: str, fn: Callable[..., object], *a: object) -> None:
                    if si is not None:
                        si.clear_invocations()
                    times[name].append(timed(fn, *a))
                    if si is not None:
                        playbooks[name] = [f"{c['playbook']}{' --limit ' + c['limit'] if c['limit'] else ''}"
                                           for c in si.invocations()]  # fmt: skip

                step("full up", stack.up, 900)
                sizes.append(state_bytes(stack))
                step("no-op up", stack.up, 900)
                step("preview", stack.preview, 600)
                if ks:
                    c = stack.config()
                    c["cluster"]["nodes"].append({"name": "node4", "address": "127.0.1.4", "roles": ["worker"]})
                    stack.write_config(c)
                    step("add-worker up", stack.up, 900)
                step("destroy", stack.destroy, 900)
                cluster.reset_baseline()
                # side by side with the platform's, in the same run
                times["floor no-op up"].append(timed(floor.up, 300))
                times["floor preview"].append(timed(floor.preview, 300))
                print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()),
                      flush=True)  # fmt: skip
        finally:
            if host is not None:
                host.stop()
            repo.stop()
            cluster.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedian of {args.runs} runs (mode: {args.mode}, local control plane + KWOK):")
    for k, v in med.items():
        ran = f"   playbooks: {', '.join(playbooks[k]) or 'none'}" if k in playbooks else ""
        print(f"  {k:<14} {v:6.1f} s{ran}")
    print(f"  no-op / full ratio: {med['no-op up'] / med['full up']:.2f}")
    print(f"  no-op up / the floor's: {med['no-op up'] / med['floor no-op up']:.2f}×; "
          f"preview / the floor's: {med['preview'] / med['floor preview']:.2f}× "
          "(the floor: an empty Python program on the same engine)")  # fmt: skip
    print(f"  state after a full up: {statistics.median(sizes) / 1024:.0f} KiB")
    print(json.dumps({"mode": args.mode, "median_s": med, "state_bytes": sizes}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

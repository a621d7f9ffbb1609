#!/usr/bin/env python3
"""A local Kubernetes cluster for trying the program: the e2e tier's fixtures, kept running.

    scripts/local_cluster.py start [--dir DIR] [--all]   # etcd + kube-* + kwok, nodes node1..node3
    scripts/local_cluster.py status [--dir DIR]
    scripts/local_cluster.py stop [--dir DIR] [--purge]
    scripts/local_cluster.py node add NAME [--role worker|control-plane|control-plane-worker]
    scripts/local_cluster.py node remove NAME

Runs the same code as tests/e2e/conftest.py (tests/e2e/lib): everything listens on
127.0.0.1 only, ports are picked at start, and `stop` ends exactly the processes
`start` recorded (by PID, checked against their executable). `--all` also starts the
control host (a real sshd, as root), the kubespray STAND-IN repository (real kubespray
needs internet and VMs) and the test chart repository, and writes a ready-to-use
`Pulumi.local.yaml` beside the state for either cluster mode.

Needs the engine (`make engine`); run it with the project's venv: `.venv/bin/python`.
Default state dir: ${XDG_CACHE_HOME:-~/.cache}/k8s-platform/local-cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT)]  # the e2e helpers (`lib`) and `tests.support`

import yaml  # noqa: E402
from lib import engine, kwok_node  # noqa: E402
from lib.chartrepo import ChartRepo  # noqa: E402
from lib.cluster import LocalCluster  # noqa: E402
from lib.kube import Kube  # noqa: E402
from lib.sshd import ControlHost  # noqa: E402
from lib.stack import existing_config, kubespray_config  # noqa: E402
from lib.standin import KubesprayUnderTest  # noqa: E402
from lib.util import CACHE_ROOT, Proc, pid_matches  # noqa: E402

from tests.support.kubespray_tree import ensure_wheelhouse  # noqa: E402

DEFAULT_DIR = CACHE_ROOT / "local-cluster"


def _extras_file(d: Path) -> Path:
    return d / "extras.json"


def _running(d: Path) -> bool:
    state = d / "cluster" / "state.json"
    if not state.exists():
        return False
    return any(LocalCluster.from_state(d / "cluster").alive().values())


def start(d: Path, everything: bool) -> int:
    if _running(d):
        print(f"already running (state in {d}); `scripts/local_cluster.py stop` first", file=sys.stderr)
        return 1
    gone = engine.missing(engine.CLUSTER_BINARIES)
    if gone:
        print(f"not built yet in {engine.bin_dir()}: {', '.join(gone)} (run `make engine`)", file=sys.stderr)
        return 1
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    cluster = LocalCluster(d / "cluster")
    cluster.start()
    print(f"cluster up in {cluster.timings['total']:.1f}s: {cluster.server}")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    extras: list[dict[str, object]] = []
    info: dict[str, object] = {"kubeconfig": str(cluster.kubeconfig), "server": cluster.server}
    if everything:
        try:
            charts = ChartRepo(d / "chart-repo").start()
            assert charts.proc is not None
            extras.append(charts.proc.describe())
            info["charts"] = charts.url
            standin = KubesprayUnderTest(d / "kubespray-standin", admin_conf=Path(str(cluster.kubeconfig))).build()
            info["kubespray_standin"] = standin.source
            if os.geteuid() == 0:
                wh = ensure_wheelhouse(ROOT / "components" / "kubespray_releases" / "v2.31.0.requirements.txt")
                ch = ControlHost(d / "control-host", env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wh)}).start()
                assert ch.proc is not None
                extras.append(ch.proc.describe())
                info["control_host"] = f"root@127.0.0.1:{ch.port} (key {ch.client_key})"
                kcfg = kubespray_config(
                    control_host_port=ch.port,
                    host_key=ch.host_public_key,
                    user=ch.user,
                    kubespray_source=standin.source,
                    workdir=str(d / "control-host-workdir" / "kubespray"),
                    api_server=cluster.server,
                    charts_url=charts.url,
                    chart_versions=charts.versions,
                )
                _write_stack(d / "Pulumi.local-kubespray.yaml", kcfg)
                info["ssh_private_key"] = str(ch.client_key)
            else:
                print("  (not root: no sshd control host, so no kubespray-mode stack file)")
            _write_stack(
                d / "Pulumi.local-existing.yaml",
                existing_config(
                    kubeconfig=str(cluster.kubeconfig), charts_url=charts.url, chart_versions=charts.versions
                ),
            )
        except BaseException:
            for e in extras:
                Proc(str(e["name"]), [str(e["argv0"])], Path(str(e["log"])), pid=int(str(e["pid"]))).stop()
            cluster.stop()
            raise
    _extras_file(d).write_text(json.dumps({"processes": extras, "info": info}, indent=2))
    for k, v in info.items():
        print(f"  {k}: {v}")
    if everything:
        print(f"  stack files (copy next to Pulumi.yaml, then set the secrets): {d}/Pulumi.local-*.yaml")
    print(f"  stop: {sys.executable} {Path(__file__).relative_to(ROOT)} stop")
    return 0


def _write_stack(path: Path, cfg: dict[str, object]) -> None:
    doc = {"config": {f"k8s-platform:{k}": v for k, v in cfg.items()}}
    path.write_text(
        "# generated by scripts/local_cluster.py for the local cluster; secrets: pulumi config set --secret …\n"
        + yaml.safe_dump(doc, sort_keys=False, width=1000)
    )


def _extra_procs(d: Path) -> list[Proc]:
    f = _extras_file(d)
    if not f.exists():
        return []
    return [
        Proc(str(e["name"]), [str(e["argv0"])], Path(str(e["log"])), pid=int(e["pid"]))
        for e in json.loads(f.read_text())["processes"]
    ]


def stop(d: Path, purge: bool) -> int:
    if not (d / "cluster" / "state.json").exists():
        print(f"nothing recorded in {d}")
        return 0
    for p in _extra_procs(d):
        print(f"{p.name} (pid {p.pid}): {p.stop()}")
    cluster = LocalCluster.from_state(d / "cluster")
    for name, how in cluster.stop().items():
        print(f"{name}: {how}")
    if purge:
        shutil.rmtree(d)
        print(f"removed {d}")
    else:
        print(f"logs kept in {cluster.logs}")
    return 0


def status(d: Path) -> int:
    if not (d / "cluster" / "state.json").exists():
        print(f"not started (no state in {d})")
        return 1
    cluster = LocalCluster.from_state(d / "cluster")
    up = True
    for p in [*cluster.procs, *_extra_procs(d)]:
        alive = p.pid is not None and pid_matches(p.pid, p.argv[0])
        up &= alive
        print(f"{p.name:<24} pid {p.pid:<8} {'running' if alive else 'DOWN'}  {p.log}")
    if cluster.alive().get("kube-apiserver"):
        try:
            print("nodes:", ", ".join(f"{n}({'Ready' if r else 'NotReady'})" for n, r in _nodes(cluster)))
        except Exception as exc:
            print(f"API not answering: {exc}")
            up = False
    f = _extras_file(d)
    if f.exists():
        for k, v in json.loads(f.read_text())["info"].items():
            print(f"{k}: {v}")
    return 0 if up else 1


def _nodes(cluster: LocalCluster) -> list[tuple[str, bool]]:
    return [(n, n in cluster.ready_nodes()) for n in cluster.node_names()]


def node(d: Path, action: str, name: str, role: str) -> int:
    kube = Kube(str(d / "cluster" / "admin.conf"))
    if action == "add":
        kwok_node.add_node(kube, name, role)
        kwok_node.wait_ready(kube, [name], 60)
        print(f"node {name} Ready")
    else:
        print(f"node {name} {'deleted' if kwok_node.remove_node(kube, name) else 'was not there'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state dir (default {DEFAULT_DIR})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--all", action="store_true", help="also the sshd control host, kubespray stand-in, chart repo")
    sp = sub.add_parser("stop")
    sp.add_argument("--purge", action="store_true", help="also delete the state dir (data, certs, logs)")
    sub.add_parser("status")
    n = sub.add_parser("node")
    n.add_argument("action", choices=("add", "remove"))
    n.add_argument("name")
    n.add_argument("--role", choices=kwok_node.ROLES, default="worker")
    args = ap.parse_args(argv)
    d = args.dir.expanduser().resolve()
    if args.cmd == "start":
        return start(d, args.all)
    if args.cmd == "stop":
        return stop(d, args.purge)
    if args.cmd == "status":
        return status(d)
    return node(d, args.action, args.name, args.role)


if __name__ == "__main__":
    sys.exit(main())

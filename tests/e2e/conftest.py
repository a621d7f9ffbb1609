"""Fixtures of the e2e tier: the real Pulumi engine against a local cluster.

Session-scoped, each started once and stopped (by PID) at the end:

- `local_cluster`   -> lib.cluster.LocalCluster: etcd + kube-apiserver + controller-manager +
                       scheduler + kwok on 127.0.0.1; KWOK nodes node1 (control plane, tainted),
                       node2, node3; default StorageClass `e2e-static` + 12 static 20Gi PVs.
                       `.kubeconfig`, `.server`, `.kube` (REST client), `.kubectl(...)`,
                       `.add_node(name, role)`, `.remove_node(name)`, `.reset_baseline()`, `.add_pvs(n)`,
                       `.set_load_balancer(True)` (KWOK then gives LoadBalancer Services and Ingresses
                       status.loadBalancer 127.0.0.1; off by default, like bare metal without MetalLB;
                       K8SP_E2E_LOAD_BALANCER=1 starts with it on).
- `control_host`    -> lib.sshd.ControlHost: a real sshd on 127.0.0.1:<port>, user root, key auth;
                       `.port`, `.private_key`, `.host_public_key`, `.ssh(cmd)`.
- `kubespray_standin` -> lib.standin.KubesprayUnderTest: kubespray v2.31.0's own tree (boilerplate,
                       validate_inventory, confirmation gates run for real) with a STAND-IN only
                       for the plays that need real machines or the internet, acting on the KWOK
                       cluster; a git repo tagged v2.31.0; `.source`, `.commit`, `.invocations()`,
                       `.playbooks_run()`, `.fail_next(pb)`.
- `real_node`       -> lib.realnode.RealNode: a second local control plane whose only schedulable
                       node is real (containerd + runc + CNI bridge + kubelet + kube-proxy on this
                       machine; images built offline, lib/images.py) beside KWOK's node1 (control
                       plane, tainted); `.cluster`, `.running_containers()`, `.pods()`.
- `chart_repo`      -> lib.chartrepo.ChartRepo: the test charts on http://127.0.0.1:<port>;
                       `.url`, `.versions` ({chart: [versions]}), `.version(chart, i)`.
Per test:
- `stack_factory`   -> callable `(mode="kubespray"|"existing", overrides=None, name="e2e",
                       secrets=None) -> lib.stack.E2EStack`; stacks are destroyed (bounded) at teardown
                       and the cluster reset to its baseline
                       (node1..node3 with default roles, extra nodes deleted, PVs recycled).

Without a built engine (`scripts/engine.sh --check` fails) every e2e test is skipped with
one line. K8SP_E2E_PARTIAL=1 runs them anyway; fixtures whose binaries are missing then
skip on their own (useful while `make engine` is still building).
Setup times are printed at the end of the session and written to <basetemp>/e2e-times.json.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets as pysecrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lib import engine, setups
from lib.chartrepo import ChartRepo
from lib.cluster import LocalCluster
from lib.objectstore import ObjectStore
from lib.realnode import NODE_BINARIES, RealNode
from lib.skips import need_binaries
from lib.sshd import SSHD, ControlHost
from lib.stack import Backend, E2EStack
from lib.standin import KubesprayUnderTest
from lib.util import REPO_ROOT, Timer

from tests.support.kubespray_tree import ensure_wheelhouse

TIMER = Timer()
_ENGINE: tuple[bool, str] | None = None
_STOPPERS: list[Callable[[], object]] = []


def _engine_status() -> tuple[bool, str]:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = engine.check()
    return _ENGINE


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the Pulumi engine and local control plane (make engine)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [i for i in items if i.get_closest_marker("e2e")]
    if not e2e or os.environ.get("K8SP_E2E_PARTIAL") == "1":
        return
    ok, why = _engine_status()
    if not ok:
        skip = pytest.mark.skip(reason=f"e2e skipped: {why}")
        for item in e2e:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMER.times:
        return
    tr = terminalreporter
    tr.section("e2e fixture setup times (s)")
    for name, secs in TIMER.times.items():
        tr.write_line(f"{name:<40} {secs:>8.2f}")
    base = getattr(tr.config, "_e2e_basetemp", None)
    if base:
        TIMER.dump(Path(base) / "e2e-times.json")
        tr.write_line(f"(written to {Path(base) / 'e2e-times.json'}; logs of every process are under {base})")


@atexit.register
def _stop_everything() -> None:
    # fixtures stop their processes at teardown; this covers an interpreter exit without it
    for stop in reversed(_STOPPERS):
        with contextlib.suppress(Exception):
            stop()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    d = tmp_path_factory.mktemp("e2e", numbered=True)
    request.config._e2e_basetemp = str(d)  # type: ignore[attr-defined]
    return d


@pytest.fixture(scope="session")
def e2e_times() -> dict[str, float]:
    """Setup durations measured so far (seconds), by fixture name."""
    return TIMER.times


@pytest.fixture(scope="session")
def local_cluster(e2e_dir: Path) -> Iterator[LocalCluster]:
    need_binaries(engine.CLUSTER_BINARIES)
    cluster = LocalCluster(e2e_dir / "cluster", load_balancer=os.environ.get("K8SP_E2E_LOAD_BALANCER") == "1")
    _STOPPERS.append(cluster.stop)
    with TIMER.measure("local_cluster"):
        cluster.start()  # raises with the log paths and tails on failure
    for k, v in cluster.timings.items():
        TIMER.times[f"local_cluster.{k}"] = v
    yield cluster
    outcome = cluster.stop()
    print(f"\nlocal cluster stopped: {outcome}; logs kept in {cluster.logs}")


@pytest.fixture(scope="session")
def control_host(e2e_dir: Path, kubespray_standin: KubesprayUnderTest) -> Iterator[ControlHost]:
    if os.geteuid() != 0:
        pytest.fail("the e2e control host runs sshd as root (it must read its host key and switch users)")
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} missing: `make setup` installs openssh-server (apt-get install -y openssh-server)")
    with TIMER.measure("control_host"):
        # the hash-pinned lock the prepare step installs (what kubespray's requirements.txt resolves to)
        wheelhouse = ensure_wheelhouse(REPO_ROOT / "components" / "kubespray_releases" / "v2.31.0.requirements.txt")
        host = ControlHost(
            e2e_dir / "control-host",
            env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        _STOPPERS.append(host.stop)
        host.start()
    yield host
    print(f"\ncontrol host sshd stopped: {host.stop()}; log {host.log}")


@pytest.fixture(scope="session")
def kubespray_standin(e2e_dir: Path, local_cluster: LocalCluster) -> KubesprayUnderTest:
    """kubespray v2.31.0 with a stand-in for machines (see tests/e2e/lib/standin.py), tagged v2.31.0."""
    assert local_cluster.kubeconfig is not None
    with TIMER.measure("kubespray_standin"):
        return KubesprayUnderTest(e2e_dir / "kubespray", admin_conf=local_cluster.kubeconfig).build()


@pytest.fixture(scope="session")
def real_node(e2e_dir: Path) -> Iterator[RealNode]:
    """Its own local cluster (KWOK node1 as the tainted control plane) with one real node."""
    need_binaries(engine.CLUSTER_BINARIES + NODE_BINARIES)
    if os.geteuid() != 0:
        pytest.fail("the real node runs containerd and the kubelet as root")
    cluster = LocalCluster(e2e_dir / "real-cluster", nodes=(("node1", "control-plane"),), pv_count=2)
    _STOPPERS.append(cluster.stop)
    with TIMER.measure("real_node.cluster"):
        cluster.start()
    node = RealNode(e2e_dir / "real-node", cluster)
    _STOPPERS.append(node.stop)  # stopped before its cluster (reverse order)
    with TIMER.measure("real_node"):
        node.start()
    for k, v in node.timings.items():
        TIMER.times[f"real_node.{k}"] = v
    yield node
    print(f"\nreal node stopped: {node.stop()}; logs kept in {node.logs}")
    print(f"real node's cluster stopped: {cluster.stop()}")


@pytest.fixture(scope="session")
def chart_repo(e2e_dir: Path) -> Iterator[ChartRepo]:
    with TIMER.measure("chart_repo"):
        repo = ChartRepo(e2e_dir / "chart-repo")
        _STOPPERS.append(repo.stop)
        repo.start()
    yield repo
    repo.stop()


@pytest.fixture(scope="session")
def object_store(e2e_dir: Path) -> Iterator[ObjectStore]:
    """SeaweedFS's S3 gateway on loopback, with one bucket: a team's shared state backend."""
    need_binaries(("weed",))
    store = ObjectStore(e2e_dir / "object-store")
    _STOPPERS.append(store.stop)
    with TIMER.measure("object_store"):
        store.start()
    yield store
    print(f"\nobject store stopped: {store.stop()}; log {store.log}")


@pytest.fixture
def stack_factory(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    e2e_dir: Path,
    chart_repo: ChartRepo,
    local_cluster: LocalCluster,
) -> Iterator[Callable[..., E2EStack]]:
    """Make an E2EStack in kubespray mode (needs control_host + kubespray_standin) or existing mode."""
    need_binaries(("pulumi", "pulumi-language-python"))
    made: list[E2EStack] = []

    def make(
        mode: str = "kubespray",
        overrides: dict[str, Any] | None = None,
        name: str = "e2e",
        secrets: dict[str, str] | None = None,
        backend: Backend | None = None,
    ) -> E2EStack:
        t0 = time.monotonic()
        secret_config = {
            "mysqlRootPassword": "root-" + pysecrets.token_urlsafe(18),
            "mysqlReplicationPassword": "repl-" + pysecrets.token_urlsafe(18),
        }
        # one kubespray workdir on the control host for the session, as a team's control host
        # keeps one: the venv with kubespray's ansible is built by the first prepare only
        kubespray_workdir = e2e_dir / "kubespray-workdir"
        if mode == "kubespray":
            cfg, ssh = setups.kubespray_stack(
                si=request.getfixturevalue("kubespray_standin"), host=request.getfixturevalue("control_host"),
                cluster=local_cluster, repo=chart_repo, workdir=kubespray_workdir, name=name, overrides=overrides,
            )  # fmt: skip
            secret_config.update(ssh)
        elif mode == "existing":
            cfg = setups.existing_stack(cluster=local_cluster, repo=chart_repo, overrides=overrides)
        else:
            raise ValueError(f"mode must be kubespray or existing, not {mode!r}")
        secret_config.update(secrets or {})
        stack = E2EStack.create(
            tmp_path / f"stack-{name}-{len(made)}", cfg, secret_config, name=name, backend=backend
        )
        stack.diagnose = local_cluster.not_ready_report
        made.append(stack)
        TIMER.times.setdefault(f"stack_factory.create[{mode}]", round(time.monotonic() - t0, 2))
        return stack

    yield make
    for stack in made:
        if stack.has_resources():
            res = stack.destroy(timeout=600, check=False)
            if res.returncode != 0:
                print(f"\nteardown: destroy of {stack.dir} failed:\n{res}")
    local_cluster.reset_baseline()

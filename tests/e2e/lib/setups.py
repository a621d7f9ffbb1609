"""How an e2e stack is set up against the loopback site, shared by the tests' fixtures and the
benchmarks (bench/), so that a benchmark measures exactly what the tests run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import engine
from .chartrepo import ChartRepo
from .cluster import LocalCluster
from .sshd import ControlHost
from .stack import existing_config, kubespray_config
from .standin import KubesprayUnderTest


def kubespray_stack(
    *, si: KubesprayUnderTest, host: ControlHost, cluster: LocalCluster, repo: ChartRepo, workdir: Path,
    name: str = "e2e", overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:  # fmt: skip
    """A kubespray-mode stack's config and its SSH key secret, with the stand-in's etcd member
    prepared for the inventory the stack `name` uploads (the first etcd member is this machine,
    reaching the local cluster's real etcd: the program's etcd snapshots and the kubeconfig read
    from the first control-plane node run there)."""
    cfg = kubespray_config(
        control_host_port=host.port, host_key=host.host_public_key, user=host.user, kubespray_source=si.source,
        kubespray_commit=si.commit, workdir=str(workdir), api_server=cluster.server, charts_url=repo.url,
        chart_versions=repo.versions, overrides=overrides,
    )  # fmt: skip
    si.etcd_member(
        workdir / "inventory" / f"k8s-platform-{name}",
        f"http://127.0.0.1:{cluster.ports['etcd']}",
        str(Path(engine.binary("etcdctl")).parent),
    )
    return cfg, {"sshPrivateKey": host.private_key}


def existing_stack(
    *, cluster: LocalCluster, repo: ChartRepo, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An existing-mode stack's config on the local cluster's kubeconfig."""
    assert cluster.kubeconfig is not None
    return existing_config(kubeconfig=str(cluster.kubeconfig), charts_url=repo.url, chart_versions=repo.versions,
                           overrides=overrides)  # fmt: skip

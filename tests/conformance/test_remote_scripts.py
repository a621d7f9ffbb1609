"""Every script the cluster component hands to remote.Command is valid bash (bash -n, shellcheck)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pulumi
import pytest

ROOT = Path(__file__).resolve().parents[2]

from components.kubespray import KubesprayCluster, KubesprayClusterArgs  # noqa: E402
from stacks.config import parse_config  # noqa: E402
from tests.support.mocks import PlatformMocks, kubespray_config, run_program  # noqa: E402


def all_scripts() -> list[tuple[str, str]]:
    cfg = kubespray_config()
    cfg["cluster"]["resetOnDestroy"] = True
    cfg["cluster"]["ansibleKeyPath"] = "~/.ssh/id_ed25519"
    cfg["cluster"]["controlHost"]["proxyJump"] = {"host": "bastion.example.com", "user": "jump"}
    cfg["cluster"]["nodes"].append({"name": "node4", "address": "10.4.17.170", "roles": ["worker"]})
    found: list[tuple[str, str]] = []
    for variant in (cfg, {**copy.deepcopy(cfg), "cluster": {**cfg["cluster"], "kubeVersion": ""}}):
        spec = parse_config(variant)
        mocks = PlatformMocks()
        pulumi.runtime.set_mocks(mocks, project="k8s-platform", stack="dev", preview=False)
        run_program(
            lambda spec=spec: KubesprayCluster(
                "cluster",
                KubesprayClusterArgs(spec.cluster, spec.schedulable_control_plane, pulumi.Output.secret("k"), "inv"),
            )
        )
        for res in mocks.of_type("command:remote:Command"):
            for key in ("create", "update", "delete"):
                if res.inputs.get(key):
                    found.append((f"{res.name}.{key}", res.inputs[key]))
    return found


SCRIPTS = all_scripts()


def test_every_job_is_covered() -> None:
    names = {n for n, _ in SCRIPTS}
    for job in ("prepare.create", "inventory.create", "cluster.create", "node-node4.create", "node-node4.delete",
                "upgrade.create", "upgrade.update", "kubeconfig.create", "reset.create", "reset.delete"):
        assert f"cluster-{job}" in names


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_bash_syntax(name: str, script: str) -> None:
    res = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, f"{name}: {res.stderr}"


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_shellcheck(name: str, script: str) -> None:
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.skip("shellcheck not installed (make setup installs it from Debian)")
    # SC2016: single quotes on purpose (printf '%s'); SC2088: ~ is expanded by the remote shell via $HOME
    res = subprocess.run([tool, "-s", "bash", "-S", "warning", "-e", "SC2016", "-"], input=script,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"{name}:\n{res.stdout}"

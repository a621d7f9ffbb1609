"""A user's own, newer Pulumi CLI drives `make preview` / `make up`; the offline engine is not involved.

The user's CLI is Pulumi v3.274.1 (newer than the v3.259.0 SDK pin, built once from the
Go module proxy into its own cache dir as a stand-in for the official download; beside
it the v3.259.0 Python language host, the one buildable here) with its
own PULUMI_HOME, where the provider plugins are installed by version exactly as
`pulumi plugin install resource kubernetes 4.25.0` would (here `--file` with the same
binaries, since this machine has no internet). The Makefile must pick that CLI, and
never start the offline engine build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lib import engine
from lib.util import CACHE_ROOT, REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]

USER_CLI_VERSION = "3.274.1"
USER_CLI_DIR = CACHE_ROOT / "user-cli" / USER_CLI_VERSION


@pytest.fixture(scope="module")
def user_cli() -> Path:
    """Pulumi v3.274.1, built once (like the engine, from the Go module proxy) and cached."""
    cli = USER_CLI_DIR / "bin" / "pulumi"
    if not cli.exists():
        skip = ("langhost kubernetes-provider command-provider etcd kubernetes kwok seaweedfs etcdctl kubernetes-node "
                "machine-runtime machine-net machine-mirror")
        env = {**os.environ, "K8SP_ENGINE_PULUMI_CLI": USER_CLI_VERSION, "K8SP_ENGINE_DIR": str(USER_CLI_DIR),
               "K8SP_ENGINE_SKIP": skip}  # fmt: skip
        res = subprocess.run([str(REPO_ROOT / "scripts" / "engine.sh")], env=env, capture_output=True, text=True,
                             timeout=2400)  # fmt: skip
        assert res.returncode == 0 and cli.exists(), res.stderr[-3000:]
    # The official download ships its language hosts beside the CLI. v3.274.1's Python host
    # cannot be built here (its module is not served, only v3.259.0's source is vendored):
    # the engine's v3.259.0 host stands in, beside the user's CLI.
    for name in ("pulumi-language-python", "pulumi-language-python-exec"):
        shutil.copy2(engine.bin_dir() / name, cli.parent / name)
    return cli


def test_make_preview_and_up_with_the_users_own_newer_pulumi(
    user_cli: Path, stack_factory: Any, local_cluster: Any, tmp_path: Path
) -> None:
    stack = stack_factory("existing", {"mysql": {"enabled": False}})
    project = stack.dir
    for name in ("Makefile", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, project / name)
    shutil.copytree(REPO_ROOT / "scripts", project / "scripts", dirs_exist_ok=True)
    # the user's PULUMI_HOME: plugins by version, as `pulumi plugin install resource NAME VERSION` puts them
    home = tmp_path / "pulumi-home"
    for name, version in (("kubernetes", "4.25.0"), ("command", "1.2.1")):
        binary = engine.engine_dir() / "providers" / f"pulumi-resource-{name}"
        subprocess.run([str(user_cli), "plugin", "install", "resource", name, version, "--file", str(binary)],
                       env={**os.environ, "PULUMI_HOME": str(home)}, check=True, capture_output=True, timeout=120)  # fmt: skip
    times = engine.engine_dir() / "build-times.tsv"
    built_before = times.read_text()
    env = {
        **{k: v for k, v in stack.env().items() if k not in ("PULUMI_HOME", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION")},
        # the user's machine: their pulumi first on PATH, no engine binaries, their own PULUMI_HOME
        "PATH": f"{user_cli.parent}:/usr/local/bin:/usr/bin:/bin",
        "PULUMI_HOME": str(home),
    }

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "--no-print-directory", *args, f"STACK={stack.name}"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip

    preview = make("preview")
    out = preview.stdout + preview.stderr
    assert preview.returncode == 0, out[-4000:]
    assert f"using pulumi v{USER_CLI_VERSION} from {user_cli}" in out
    assert "to create" in out
    up = make("up", "ARGS=--yes --skip-preview")
    out = up.stdout + up.stderr
    assert up.returncode == 0, out[-4000:]
    assert f"using pulumi v{USER_CLI_VERSION}" in out
    assert local_cluster.kubectl("get", "deployment", "my-nginx", "-n", "web", "-o", "name").strip()
    assert times.read_text() == built_before and "building" not in out, "the offline engine was not built"
    # the same stack is in reach of bare pulumi with the same backend: nothing left to do
    check = subprocess.run([str(user_cli), "preview", "--expect-no-changes", "--stack", stack.name,
                            "--non-interactive"], cwd=project, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert check.returncode == 0, (check.stdout + check.stderr)[-3000:]

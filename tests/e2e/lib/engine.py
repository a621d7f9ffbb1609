"""Where scripts/engine.sh keeps the engine: Pulumi CLI + plugins, etcd, kube-*, kwok."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from .util import REPO_ROOT

ENGINE_SH = REPO_ROOT / "scripts" / "engine.sh"
CLUSTER_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PULUMI_BINARIES = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes", "pulumi-resource-command")


@functools.cache
def engine_dir() -> Path:
    if os.environ.get("K8SP_ENGINE_DIR"):
        return Path(os.environ["K8SP_ENGINE_DIR"])
    out = subprocess.run([str(ENGINE_SH), "--print-dir"], capture_output=True, text=True, timeout=30, check=True)
    return Path(out.stdout.strip())


def bin_dir() -> Path:
    return engine_dir() / "bin"


def binary(name: str) -> str:
    p = bin_dir() / name
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise FileNotFoundError(f"{p} is not built yet (run `make engine`)")
    return str(p)


def missing(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if not os.access(bin_dir() / n, os.X_OK)]


def check() -> tuple[bool, str]:
    """(ok, one line): `scripts/engine.sh --check`, bounded."""
    try:
        cp = subprocess.run([str(ENGINE_SH), "--check"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"scripts/engine.sh --check did not run: {exc}"
    if cp.returncode == 0:
        return True, "engine built"
    gone = missing((*CLUSTER_BINARIES, "pulumi", "pulumi-language-python"))
    gone += [f"plugin {p}" for p in ("kubernetes", "command") if not plugins_installed(p)]
    what = f"missing: {', '.join(gone)}" if gone else "engine.sh --check failed"
    return False, f"the engine is not built ({what}; {engine_dir()}); run `make engine`"


def pulumi_env() -> dict[str, str]:
    """PATH/PULUMI_HOME the way <engine>/env.sh sets them (without sourcing a shell file)."""
    env = {"PATH": f"{bin_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    home = engine_dir() / "pulumi-home"
    env_sh = engine_dir() / "env.sh"
    # engine.sh leaves PULUMI_HOME alone when it reuses a pulumi already on PATH
    if not env_sh.exists() or "PULUMI_HOME" in env_sh.read_text():
        env["PULUMI_HOME"] = str(home)
    return env


def plugins_installed(name: str) -> list[str]:
    """Versions of resource plugin `name` installed in the engine's PULUMI_HOME."""
    plugins = engine_dir() / "pulumi-home" / "plugins"
    prefix = f"resource-{name}-v"
    return sorted(
        p.name[len(prefix) :]
        for p in plugins.glob(prefix + "*")
        if p.is_dir() and not p.name.endswith((".partial", ".lock"))
    )

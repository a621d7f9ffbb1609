"""pytest skips for a partly built engine (K8SP_E2E_PARTIAL=1), one clear line each."""

from __future__ import annotations

import pytest

from . import engine


def need_binaries(names: tuple[str, ...]) -> None:
    gone = engine.missing(names)
    if gone:
        pytest.skip(f"not built yet in {engine.bin_dir()}: {', '.join(gone)} (run `make engine`)")


def need_plugin(name: str) -> None:
    """Skip unless the engine's PULUMI_HOME has resource plugin `name` (kubernetes, command)."""
    if not engine.plugins_installed(name):
        pytest.skip(
            f"pulumi plugin {name!r} not installed in {engine.engine_dir() / 'pulumi-home'} (run `make engine`)"
        )

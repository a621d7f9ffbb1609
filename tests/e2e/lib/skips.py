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
        if name == "command":
            pytest.skip(
                "BLOCKED: pulumi plugin 'command' (pulumi-resource-command v1.2.1) cannot be built here: "
                "the Go module proxy serves no version of github.com/pulumi/pulumi-command/provider (403)"
            )
        pytest.skip(
            f"pulumi plugin {name!r} not installed in {engine.engine_dir() / 'pulumi-home'} (run `make engine`)"
        )

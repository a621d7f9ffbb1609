"""Fixtures of the unit tests (the conformance tier imports the same helpers from
tests/support/mocks.py).

`mocks` installs a fresh `PlatformMocks` per test; `preview_mocks` the same in preview
mode; `opts_recorder` records the ResourceOptions of a component's children; `ks_config`
is a valid kubespray-mode config.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.support.mocks import OptsRecorder, PlatformMocks, kubespray_config


@pytest.fixture
def mocks() -> PlatformMocks:
    m = PlatformMocks()
    pulumi.runtime.set_mocks(m, project="k8s-platform", stack="dev", preview=False)
    return m


@pytest.fixture
def preview_mocks() -> PlatformMocks:
    m = PlatformMocks()
    pulumi.runtime.set_mocks(m, project="k8s-platform", stack="dev", preview=True)
    return m


@pytest.fixture
def opts_recorder() -> OptsRecorder:
    return OptsRecorder()


@pytest.fixture
def ks_config() -> dict[str, Any]:
    return kubespray_config()

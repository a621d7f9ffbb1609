"""The example stacks' placeholder secrets are recognised without exposing any secret value."""

from __future__ import annotations

import pytest
from pulumi.runtime import config as runtime_config

from stacks.files import PLACEHOLDER_PREFIX, placeholder_secrets


@pytest.fixture
def runtime_config_values(monkeypatch: pytest.MonkeyPatch):
    def install(values: dict[str, str]) -> None:
        monkeypatch.setenv("PULUMI_CONFIG", "{}")
        token = runtime_config.CONFIG.set(values)
        monkeypatch.setattr(runtime_config, "_test_token", token, raising=False)

    yield install
    runtime_config.CONFIG.set({})


def test_placeholders_found(runtime_config_values) -> None:
    runtime_config_values(
        {
            "k8s-platform:sshPrivateKey": f"{PLACEHOLDER_PREFIX} pulumi config set --secret sshPrivateKey",
            "k8s-platform:mysqlRootPassword": "a-real-password",
            "other:key": f"{PLACEHOLDER_PREFIX} x",
        }
    )
    assert placeholder_secrets() == ["sshPrivateKey"]


def test_no_placeholders(runtime_config_values) -> None:
    runtime_config_values({"k8s-platform:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----"})
    assert placeholder_secrets() == []

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


def _mysql(**kw: object):
    from components.mysql_config import MySQLSpec, MySQLUserSpec

    users = (MySQLUserSpec(name="orders", databases=("orders",), password_secret="ordersDbPassword"),)
    return MySQLSpec(**{"enabled": True, "users": users, **kw})  # type: ignore[arg-type]


def test_mysql_passwords_mysql_cannot_take_are_refused_by_key_without_their_value(runtime_config_values) -> None:
    from stacks.files import mysql_password_problems

    too_long_repl = "r" * 31 + "ü"  # 32 characters, 33 bytes
    runtime_config_values(
        {
            "k8s-platform:mysqlRootPassword": "r00t 'Pa55\\word\" #x ü",  # hard, and fine
            "k8s-platform:mysqlReplicationPassword": too_long_repl,
            "k8s-platform:ordersDbPassword": "",
        }
    )
    problems = mysql_password_problems(_mysql())
    assert [p.path for p in problems] == ["mysqlReplicationPassword", "ordersDbPassword"]
    assert "33 bytes" in problems[0].message and "at most 32 bytes" in problems[0].message
    assert "empty" in problems[1].message
    assert all(too_long_repl not in str(p) and "Pa55" not in str(p) for p in problems)


def test_mysql_password_rules_skip_placeholders_and_a_disabled_cluster(runtime_config_values) -> None:
    from stacks.files import mysql_password_problems

    runtime_config_values({"k8s-platform:mysqlReplicationPassword": f"{PLACEHOLDER_PREFIX} pulumi config set --secret x"})
    assert mysql_password_problems(_mysql()) == []  # the example stacks still preview
    runtime_config_values({"k8s-platform:mysqlReplicationPassword": "x" * 40})
    assert mysql_password_problems(_mysql(enabled=False)) == []
    assert [p.path for p in mysql_password_problems(_mysql())] == ["mysqlReplicationPassword"]

"""The whole program under mocks: what each stack registers, in which order, with which provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest

from stacks.config import ConfigError
from stacks.files import config_from_file, stack_file
from stacks.program import ProgramSecrets, deploy
from tests.support.mocks import PROJECT_ROOT, PlatformMocks, existing_config, kubespray_config, run_program

SECRETS = ProgramSecrets(
    ssh_private_key=pulumi.Output.secret("ssh-key-under-test"),
    mysql_root_password=pulumi.Output.secret("root-pw-under-test"),
    mysql_replication_password=pulumi.Output.secret("repl-pw-under-test"),
)


def run_stack(raw: dict[str, Any], secrets: ProgramSecrets = SECRETS) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def program() -> None:
        out.update(deploy(raw, secrets, PROJECT_ROOT, stack="test"))

    run_program(program)
    return out


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_project_stack_registers_everything_through_the_cluster_provider(mocks: PlatformMocks, stack: str) -> None:
    run_stack(config_from_file(stack_file(stack)))
    types = {r.type for r in mocks.resources}
    assert "command:remote:Command" in types and "pulumi:providers:kubernetes" in types
    in_cluster = [r for r in mocks.resources if r.type.startswith("kubernetes:")]
    assert in_cluster, "no Kubernetes objects registered"
    for r in in_cluster:
        assert "pulumi:providers:kubernetes::k8s" in r.provider, f"{r.type} {r.name} uses provider {r.provider!r}"
    assert any(r.type == "kubernetes:helm.sh/v3:Release" for r in in_cluster)
    assert any(r.type == "kubernetes:apps/v1:StatefulSet" for r in in_cluster)
    assert any(r.type == "kubernetes:apps/v1:Deployment" for r in in_cluster)


def test_provider_kubeconfig_comes_from_the_cluster(mocks: PlatformMocks) -> None:
    run_stack(config_from_file(stack_file("staging")))
    provider = mocks.named("k8s")
    kubeconfig = provider.inputs["kubeconfig"]
    assert "server: https://10.4.17.167:6443" in str(kubeconfig), "provider not built from admin.conf read back"
    order = [r.name for r in mocks.resources]
    assert order.index("cluster-kubeconfig") < order.index("k8s")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(environment="qa"),
        lambda c: c["cluster"].update(nodes=[]),
        lambda c: c.update(apps=[{"name": "x", "namespace": "web", "image": "nginx:latest"}]),
    ],
)
def test_bad_config_registers_no_resource(mocks: PlatformMocks, mutate: Any) -> None:
    raw = kubespray_config()
    mutate(raw)
    with pytest.raises(ConfigError):
        run_stack(raw)
    assert mocks.resources == [], [r.name for r in mocks.resources]


def test_existing_mode_creates_no_remote_commands(mocks: PlatformMocks, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    raw = existing_config()
    raw["cluster"]["kubeconfig"] = str(kubeconfig)
    raw["cluster"]["nodes"] = [{"name": "cp-0", "roles": ["control-plane"]}]
    outputs = run_stack(raw, ProgramSecrets())
    assert not mocks.of_type("command:remote:Command")
    assert outputs["clusterMode"] == "existing"
    # schedulableControlPlane in existing mode: taints removed by server-side apply patches
    assert [r.name for r in mocks.of_type("kubernetes:core/v1:NodePatch")], "no taint patch for cp-0"


def test_existing_mode_missing_kubeconfig_file_is_a_config_error(mocks: PlatformMocks, tmp_path: Path) -> None:
    raw = existing_config()
    raw["cluster"]["kubeconfig"] = str(tmp_path / "missing")
    with pytest.raises(ConfigError) as err:
        run_stack(raw, ProgramSecrets())
    assert err.value.problems[0].path == "cluster.kubeconfig"


def test_outputs_never_contain_secrets(mocks: PlatformMocks) -> None:
    outputs = run_stack(config_from_file(stack_file("staging")))
    import asyncio

    plain: list[str] = []
    for key, value in outputs.items():
        if key == "kubeconfig":
            assert asyncio.get_event_loop().run_until_complete(value.is_secret())
            continue
        resolved = asyncio.get_event_loop().run_until_complete(pulumi.Output.from_input(value).future())
        plain.append(repr(resolved))
    text = " ".join(plain)
    for secret in ("ssh-key-under-test", "root-pw-under-test", "repl-pw-under-test"):
        assert secret not in text
    assert "mysql-primary.data.svc.cluster.local" in text


def test_mysql_storage_change_is_refused_from_the_stacks_own_record(mocks: PlatformMocks) -> None:
    raw = config_from_file(stack_file("staging"))  # 20Gi on local-path
    mocks.stack_outputs = {"mysql": {"storage": {"name": "mysql", "namespace": "data", "size": "10Gi",
                                                  "storageClass": "local-path"}}}  # fmt: skip
    with pytest.raises(Exception) as refused:
        run_stack(raw)
    assert "mysql.storage.size: cannot change from 10Gi to 20Gi" in str(refused.value)
    assert not mocks.of_type("kubernetes:apps/v1:StatefulSet")


def test_mysql_downgrade_is_refused_from_the_stacks_own_record(mocks: PlatformMocks) -> None:
    raw = config_from_file(stack_file("staging"))
    assert raw["mysql"]["image"].startswith("mysql:8.4.")
    mocks.stack_outputs = {"mysql": {"server": {"name": "mysql", "namespace": "data", "image": "mysql:9.7.4",
                                                 "members": raw["mysql"]["replicas"]}}}  # fmt: skip
    with pytest.raises(Exception) as refused:
        run_stack(raw)
    assert "mysql.image: cannot go from the deployed mysql:9.7.4 (9.7.4) down to mysql:8.4" in str(refused.value)
    assert not mocks.of_type("kubernetes:apps/v1:StatefulSet")


def test_mysql_unchanged_storage_deploys(mocks: PlatformMocks) -> None:
    raw = config_from_file(stack_file("staging"))
    mocks.stack_outputs = {"mysql": {"storage": {"name": "mysql", "namespace": "data", "size": "20Gi",
                                                  "storageClass": "local-path"}}}
    outputs = run_stack(raw)
    assert mocks.of_type("kubernetes:apps/v1:StatefulSet")
    assert "storage" in outputs["mysql"]

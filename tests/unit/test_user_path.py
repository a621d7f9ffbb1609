"""What a new user trips over first: mistyped namespaces, cross-checks a reviewer would make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT

from stacks.config import ConfigError, strip_namespace


@pytest.mark.parametrize("key", ["k8s_platform:mysql", "k8s-platfrom:apps", "K8s-Platform:apps", "k8splatform:helm"])
def test_mistyped_namespace_is_an_error_with_did_you_mean(key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        strip_namespace({key: {"enabled": True}, "k8s-platform:environment": "dev"})
    (problem,) = exc.value.problems
    name = key.split(":", 1)[1]
    assert str(problem) == f"{key}: unknown config namespace {key.split(':')[0]!r} (did you mean 'k8s-platform:{name}'?)"


@pytest.mark.parametrize("key", ["kubernetes:context", "aws:region", "pulumi:tags", "k8s:x"])
def test_other_providers_namespaces_are_left_alone(key: str) -> None:
    assert strip_namespace({key: "x", "k8s-platform:environment": "dev"}) == {"environment": "dev"}


def test_validate_reports_the_mistyped_namespace(tmp_path: Path) -> None:
    doc = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["k8s_platform:mysql"] = doc["config"].pop("k8s-platform:mysql")
    path = tmp_path / "Pulumi.typo.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "stacks", "validate", "--config-file", str(path)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1
    assert "k8s_platform:mysql: unknown config namespace 'k8s_platform' (did you mean 'k8s-platform:mysql'?)" in res.stderr


def _problems_of(cfg: dict) -> list[str]:
    from stacks.config import parse_config

    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, project_root=PROJECT_ROOT)
    return [str(p) for p in exc.value.problems]


def _ks(env: str = "staging") -> dict:
    from conftest import kubespray_config

    return kubespray_config(env)


@pytest.mark.parametrize("pool", ["10.4.17.160/28", "10.4.17.168-10.4.17.180", "10.4.17.169/32"])
def test_metallb_pool_overlapping_a_node_is_an_error(pool: str) -> None:
    cfg = _ks()
    cfg["addons"] = {"loadBalancer": {"enabled": True, "addresses": ["10.4.17.240/29", pool]}}
    problems = _problems_of(cfg)
    assert any(p.startswith("addons.loadBalancer.addresses[1]: overlaps the address of node(s)") for p in problems), problems
    assert not any(p.startswith("addons.loadBalancer.addresses[0]") for p in problems)


def test_api_endpoint_outside_the_node_networks_is_a_warning() -> None:
    from stacks.config import parse_config

    cfg = _ks()
    cfg["cluster"]["apiServerEndpoint"] = "https://203.0.113.10:6443"
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    assert any(w.startswith("cluster.apiServerEndpoint: 203.0.113.10 is outside the nodes' networks") for w in spec.warnings)
    cfg["cluster"]["apiServerEndpoint"] = "https://10.4.17.200:6443"
    assert parse_config(cfg, project_root=PROJECT_ROOT).warnings == ()


@pytest.mark.parametrize(("old", "new"), [("master", "control-plane"), ("kube-master", "control-plane"), ("node", "worker")])
def test_old_role_names_suggest_the_new_ones(old: str, new: str) -> None:
    cfg = _ks()
    cfg["cluster"]["nodes"][0]["roles"] = [old, "etcd"]
    assert f"cluster.nodes[0].roles[0]: unknown role {old!r}; use control-plane, etcd, worker (did you mean {new!r}? '{old}' is the old name)" in _problems_of(cfg)


def test_one_problem_is_reported_once() -> None:
    cfg = _ks()
    cfg["cluster"]["nodes"][2]["roles"] = "worker"
    problems = _problems_of(cfg)
    assert len(problems) == len(set(problems)), problems
    assert [p for p in problems if p.startswith("cluster.nodes[2].roles")] == [
        "cluster.nodes[2].roles: must be a list, e.g. [worker] (one or more of control-plane, etcd, worker)"
    ]


def test_a_plain_text_secret_is_one_problem() -> None:
    cfg = _ks()
    cfg["sshPrivateKey"] = "-----BEGIN OPENSSH PRIVATE KEY----- not really"
    problems = _problems_of(cfg)
    assert [p for p in problems if p.startswith("sshPrivateKey")] == [
        "sshPrivateKey: is in plain text; set it as a secret: pulumi config set --secret sshPrivateKey"
    ]
    assert all("not really" not in p for p in problems)

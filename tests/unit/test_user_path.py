"""What a new user trips over first: mistyped namespaces, cross-checks a reviewer would make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError, strip_namespace
from tests.support.mocks import PROJECT_ROOT


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
    from tests.support.mocks import kubespray_config

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


def _stacks(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stacks", "--root", str(root), *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_new_user_path_new_edit_validate_plan(tmp_path: Path) -> None:
    """`stacks new lab --from staging`, fill in the machines, validate and plan before any secret exists."""
    import shutil

    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        shutil.copy2(PROJECT_ROOT / name, tmp_path / name)
    shutil.copytree(PROJECT_ROOT / "values", tmp_path / "values")
    made = _stacks(tmp_path, "new", "lab", "--from", "staging")
    assert made.returncode == 0, made.stderr
    assert "pulumi config set --secret sshPrivateKey --stack lab < ~/.ssh/id_ed25519" in made.stdout
    assert "pulumi config set --secret mysqlRootPassword --stack lab" in made.stdout
    text = (tmp_path / "Pulumi.lab.yaml").read_text()
    assert "secure:" not in text and "encryptionsalt" not in text, "no example secrets, no example passphrase salt"
    assert "10.4.17." not in text and "example.com" not in text.split("k8s-platform:helm")[0], "no example addresses"
    assert "k8s-platform:environment: staging" in text and "# staging:" in text, "structure and comments kept"
    # before the edits: validate says exactly what to fill in
    before = _stacks(tmp_path, "validate", "lab")
    assert before.returncode == 1
    assert "cluster.nodes[0].address: is required" in before.stderr and "cluster.controlHost.host: is required" in before.stderr

    # the user's edits: their machines
    doc = yaml.safe_load(text)
    cluster = doc["config"]["k8s-platform:cluster"]
    cluster["controlHost"]["host"] = "192.168.50.10"
    for i, node in enumerate(cluster["nodes"]):
        node["address"] = f"192.168.50.{21 + i}"
    cluster["proxy"] = {"http": "", "https": "", "noProxy": ""}
    cluster["imageRepos"] = {}
    doc["config"]["k8s-platform:addons"]["loadBalancer"]["addresses"] = ["192.168.50.200-192.168.50.220"]
    doc["config"]["k8s-platform:apps"][0]["ingress"]["host"] = "nginx.lab.internal"
    (tmp_path / "Pulumi.lab.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    ok = _stacks(tmp_path, "validate", "lab")
    assert ok.returncode == 0, ok.stderr
    assert "lab: warning: sshPrivateKey: is required in kubespray mode" in ok.stderr, "missing secrets are warned"
    inv = _stacks(tmp_path, "inventory", "lab", "--out", str(tmp_path / "build" / "inventory"))
    assert inv.returncode == 0, inv.stderr
    assert "192.168.50.21" in (tmp_path / "build" / "inventory" / "hosts.yaml").read_text()
    rendered = _stacks(tmp_path, "render", "lab", "--out", str(tmp_path / "build" / "manifests"))
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "build" / "manifests" / "web.Deployment.my-nginx.yaml").exists()


def test_new_refuses_to_overwrite_and_needs_a_source(tmp_path: Path) -> None:
    import shutil

    shutil.copy2(PROJECT_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy2(PROJECT_ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    assert "exists already" in _stacks(tmp_path, "new", "dev", "--from", "dev").stderr
    assert "no such stack file" in _stacks(tmp_path, "new", "lab", "--from", "nope").stderr
    assert _stacks(tmp_path, "new", "a b", "--from", "dev").returncode == 2
    made = _stacks(tmp_path, "new", "prod2", "--from", "dev", "--environment", "prod")
    assert made.returncode == 0 and "k8s-platform:environment: prod" in (tmp_path / "Pulumi.prod2.yaml").read_text()


def _make(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=env)  # fmt: skip


@pytest.mark.parametrize(("stack", "expected"), [("dev", "k8s-platform-example"), ("prod", "k8s-platform-example"),
                                                 ("lab", ""), ("mine", "")])  # fmt: skip
def test_example_passphrase_only_for_the_example_stacks(stack: str, expected: str) -> None:
    res = _make("--eval", 'show-passphrase: ; @echo "[$$PULUMI_CONFIG_PASSPHRASE]"', "show-passphrase", f"STACK={stack}")
    assert res.stdout.strip() == f"[{expected}]", res.stdout + res.stderr


def test_setup_refuses_an_old_python_before_making_a_venv(tmp_path: Path) -> None:
    import shutil

    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy2(PROJECT_ROOT / name, tmp_path / name)
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "Python 3.10.12"; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    res = _make(f"PY={fake}", ".venv/.installed", cwd=tmp_path)
    assert res.returncode != 0
    assert "k8s-platform needs Python 3.11 or newer" in res.stdout + res.stderr and "Python 3.10.12" in res.stdout
    assert not (tmp_path / ".venv").exists()


def test_the_config_reference_in_docs_validates(tmp_path: Path) -> None:
    """docs/config.md's example is a real stack file: every key it shows is one the program reads."""
    text = (PROJECT_ROOT / "docs" / "config.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    doc = yaml.safe_load(block)
    cfg = doc["config"]
    cfg["k8s-platform:cluster"].pop("kubeconfig")  # the example shows both modes' keys
    cfg["k8s-platform:cluster"].pop("context")
    for key in ("sshPrivateKey", "mysqlRootPassword", "mysqlReplicationPassword"):
        cfg[f"k8s-platform:{key}"] = {"secure": "v1:example"}
    path = tmp_path / "Pulumi.reference.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = subprocess.run([sys.executable, "-m", "stacks", "validate", "--config-file", str(path)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr

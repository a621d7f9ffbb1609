"""Hostile values a stack file (or a pull request changing one) may carry, refused by class.

1. Anything that reaches Ansible (every `cluster.*` value) is data: no template syntax,
   no control characters, no stray whitespace; `extraVars` stays the escape hatch but may
   not set how Ansible connects, nor carry a secret.
2. Every pattern matches the whole value: a trailing newline is not a valid name.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
import yaml
from conftest import PROJECT_ROOT, assert_problem, kubespray_config

from stacks.config import NAMESPACE, SECRET, ConfigError, parse_config

TEMPLATES = [
    "{{ lookup('pipe', 'id > /tmp/x') }}",
    "{% for x in range(3) %}x{% endfor %}",
    "{# hidden #}",
    "10.4.18.0/24,{{ lookup('pipe','id') }}",
]

# (path in the cluster mapping, a valid value to prefix/suffix the payload onto)
ANSIBLE_REACHED = [
    (("proxy", "http"), "http://10.4.17.1:3128"),
    (("proxy", "https"), "http://10.4.17.1:3128"),
    (("proxy", "noProxy"), "10.4.17.0/24"),
    (("imageRepos", "files"), "https://files.mirror.example.com"),
    (("imageRepos", "kube"), "registry.mirror.example.com/k8s"),
    (("kubespray", "workdir"), "~/kubespray"),
    (("kubespray", "source"), "https://github.com/kubernetes-sigs/kubespray.git"),
    (("controlHost", "user"), "tiger"),
    (("apiServerEndpoint",), "https://10.4.17.200:6443"),
    (("ansibleUser",), "tiger"),
    (("kubeVersion",), "1.34.4"),
]


def _set(cfg: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    node = cfg["cluster"]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return cfg


def _problems(cfg: dict[str, Any]) -> list[Any]:
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, project_root=PROJECT_ROOT)
    return exc.value.problems


@pytest.mark.parametrize(("path", "valid"), ANSIBLE_REACHED, ids=[".".join(p) for p, _ in ANSIBLE_REACHED])
@pytest.mark.parametrize("payload", TEMPLATES, ids=["lookup", "for", "comment", "in-list"])
def test_template_syntax_never_reaches_ansible(path: tuple[str, ...], valid: str, payload: str) -> None:
    problems = _problems(_set(kubespray_config("prod"), path, valid + payload))
    where = "cluster." + ".".join(path)
    assert_problem(problems, where, "Ansible template syntax")
    assert all(payload not in str(p) for p in problems), "a hostile value is never echoed"


@pytest.mark.parametrize(("path", "valid"), ANSIBLE_REACHED, ids=[".".join(p) for p, _ in ANSIBLE_REACHED])
@pytest.mark.parametrize("suffix", ["\n", "\nrm -rf /", "\t", " "], ids=["newline", "newline-cmd", "tab", "space"])
def test_control_characters_and_stray_whitespace_are_refused(path: tuple[str, ...], valid: str, suffix: str) -> None:
    problems = _problems(_set(kubespray_config("prod"), path, valid + suffix))
    assert [p for p in problems if p.path == "cluster." + ".".join(path)], [str(p) for p in problems]


@pytest.mark.parametrize("name", ["worker3\n", "worker3\nid", "node1 ", "no\x00de"])
def test_node_names_and_addresses_match_whole_values(name: str) -> None:
    cfg = kubespray_config("prod")
    cfg["cluster"]["nodes"][2]["name"] = name
    cfg["cluster"]["nodes"][1]["address"] = "10.4.17.168\n"
    problems = _problems(cfg)
    assert [p for p in problems if p.path == "cluster.nodes[2].name"], [str(p) for p in problems]
    assert [p for p in problems if p.path == "cluster.nodes[1].address"], [str(p) for p in problems]


@pytest.mark.parametrize(
    "value", ["10.4.18.0/24, localhost", "10.4.18.0/24,$(id)", "a b", ",", "10.4.18.0/24,,x", "`id`"]
)
def test_no_proxy_is_a_list_of_hosts_ips_cidrs_and_domains(value: str) -> None:
    problems = _problems(_set(kubespray_config("prod"), ("proxy", "noProxy"), value))
    assert_problem(problems, "cluster.proxy.noProxy", "comma-separated list")


@pytest.mark.parametrize("value", ["10.4.17.0/24,127.0.0.1,localhost,.svc,.cluster.local", "*.example.com,fd00::/8"])
def test_no_proxy_accepts_real_lists(value: str) -> None:
    spec = parse_config(_set(kubespray_config("prod"), ("proxy", "noProxy"), value), project_root=PROJECT_ROOT)
    assert spec.cluster.proxy.no_proxy == value


@pytest.mark.parametrize(
    "key",
    ["ansible_host", "ansible_ssh_common_args", "ansible_become_password", "ansible_python_interpreter", "ansible_user"],
)
def test_extra_vars_may_not_set_ansible_connection_variables(key: str) -> None:
    problems = _problems(_set(kubespray_config(), ("extraVars",), {key: "x"}))
    assert_problem(problems, f"cluster.extraVars.{key}", "ansible_* variables")


@pytest.mark.parametrize("value", [SECRET, {"nested": SECRET}, [1, SECRET]])
def test_a_secret_in_extra_vars_is_refused_not_crashed_on(value: Any) -> None:
    problems = _problems(_set(kubespray_config(), ("extraVars",), {"some_token": value}))
    assert_problem(problems, "cluster.extraVars.some_token", "secrets cannot go through extraVars")


def test_inventory_cli_refuses_a_secret_extra_var_without_a_traceback(tmp_path: Any) -> None:
    cfg = _set(kubespray_config(), ("extraVars",), {"some_token": {"secure": "v1:abc"}})
    doc = {"config": {f"{NAMESPACE}:{k}": ({"secure": "v1:x"} if repr(v) == "<secret>" else v) for k, v in cfg.items()}}
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "stacks", "inventory", "--config-file", str(path)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "cluster.extraVars.some_token: is a secret" in res.stderr


def test_the_reported_exploit_no_longer_validates(tmp_path: Any) -> None:
    """proxy.noProxy with a pipe lookup validated in prod and ran `id` as root on the control host."""
    cfg = _set(kubespray_config("prod"), ("proxy", "noProxy"), "10.4.18.0/24,{{ lookup('pipe','id > /tmp/x') }}")
    doc = {"config": {f"{NAMESPACE}:{k}": ({"secure": "v1:x"} if repr(v) == "<secret>" else v) for k, v in cfg.items()}}
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "inv"
    res = subprocess.run([sys.executable, "-m", "stacks", "inventory", "--config-file", str(path), "--out", str(out)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1
    assert "cluster.proxy.noProxy: contains Ansible template syntax" in res.stderr
    assert not out.exists(), "nothing is written for a refused config"

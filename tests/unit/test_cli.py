"""`python -m stacks`: exit codes, one problem per line on stderr, inventory output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.mocks import PROJECT_ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stacks", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)


def test_validate_all_project_stacks() -> None:
    res = run("validate", "dev", "staging", "prod")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(": ok") == 3


def test_two_etcd_members_rejected_naming_cluster_nodes(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "Pulumi.staging.yaml").read_text()
    bad = text.replace("roles: [etcd, worker]}", "roles: [worker]}")
    assert bad != text
    f = tmp_path / "Pulumi.bad.yaml"
    f.write_text(bad)
    res = run("validate", "--config-file", str(f))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert any(line.startswith("cluster.nodes: 2 etcd members is an even number") for line in lines), res.stderr


def test_every_problem_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "config:\n  k8s-platform:environment: qa\n  k8s-platform:cluster:\n    mode: kubespray\n"
        "  k8s-platform:sshPrivateKey: plain-key-material\n"
    )
    res = run("validate", "--config-file", str(f))
    assert res.returncode == 1
    problems = res.stderr.strip().splitlines()[1:]
    assert len(problems) >= 4
    assert all(": " in line and not line.startswith(" ") for line in problems)
    assert "plain-key-material" not in res.stderr + res.stdout
    assert "Traceback" not in res.stderr


def test_yaml_syntax_error_is_clean(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("config:\n  k8s-platform:cluster: {mode: [\n")
    res = run("validate", "--config-file", str(f))
    assert res.returncode == 1 and "line" in res.stderr and "Traceback" not in res.stderr


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("validate").returncode == 2
    assert run("validate", "dev", "--config-file", "x").returncode == 2
    assert run("frobnicate").returncode == 2


def test_missing_stack_file() -> None:
    res = run("validate", "nosuchstack")
    assert res.returncode == 1 and "no such stack file" in res.stderr


def test_inventory_matches_component_bytes(tmp_path: Path) -> None:
    from components import kubespray_inventory as inv
    from stacks.files import load_spec_file, stack_file

    spec = load_spec_file(stack_file("staging"))
    rendered = inv.render(spec.cluster, spec.schedulable_control_plane)
    res = run("inventory", "staging")
    assert res.returncode == 0
    assert rendered.hosts_yaml in res.stdout and rendered.group_vars_yaml in res.stdout
    res = run("inventory", "staging", "--out", str(tmp_path))
    assert res.returncode == 0
    assert (tmp_path / "hosts.yaml").read_text() == rendered.hosts_yaml
    assert (tmp_path / inv.GROUP_VARS_PATH).read_text() == rendered.group_vars_yaml

"""A release's values as validation reads them (valuesFiles, then inline values, merged as the
program merges them): a warning when replicas > 1 would share one ReadWriteOnce claim, and an
error when a values file cannot be loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.helm_values import shared_claim_problem
from stacks.config import ConfigError, parse_config
from stacks.files import load_spec_file, stack_file
from tests.support.mocks import PROJECT_ROOT, assert_problem, existing_config

_REL = {"name": "grafana", "namespace": "monitoring", "repo": "https://grafana.github.io/helm-charts",
        "chart": "grafana", "version": "8.5.0"}  # fmt: skip
WHERE = "helm.releases[0].values"


def _warnings(root: Path, files: dict[str, str], values: dict[str, Any] | None = None) -> list[str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    cfg = {
        **existing_config("dev"),
        "helm": {"releases": [{**_REL, "valuesFiles": list(files), "values": values or {}}]},
    }
    return [w for w in parse_config(cfg, project_root=root).warnings if w.startswith(f"{WHERE}:")]


def test_replicas_2_with_a_readwriteonce_claim_warns_with_the_fixes(tmp_path: Path) -> None:
    # the shape of the old prod example: persistence in the shared file, replicas in prod's
    (warning,) = _warnings(tmp_path, {"values/base.yaml": "persistence: {enabled: true, size: 5Gi}\n",
                                      "values/prod.yaml": "replicas: 2\npersistence: {size: 20Gi}\n"})  # fmt: skip
    assert "replicas: 2" in warning and "ReadWriteOnce" in warning
    for fix in ("replicas: 1", "external database with persistence.enabled: false", "ReadWriteMany"):
        assert fix in warning, warning


@pytest.mark.parametrize(
    "values",
    [
        {"replicas": 1, "persistence": {"enabled": True}},
        {"replicas": 2, "persistence": {"enabled": False}},
        {"replicas": 2},  # the chart's default: no persistence
        {"replicas": 3, "persistence": {"enabled": True, "accessModes": ["ReadWriteMany"]}},
        {"replicas": 2, "persistence": {"enabled": True, "type": "statefulset"}},  # a claim per replica
        {"replicas": 2, "useStatefulSet": True, "persistence": {"enabled": True}},
        {"replicas": "2", "persistence": {"enabled": "true"}},  # not what the values clearly say: no guess
    ],
    ids=["one-replica", "persistence-off", "persistence-unset", "rwx", "sts-type", "use-sts", "strings"],
)
def test_no_warning_where_the_claim_is_not_shared(tmp_path: Path, values: dict[str, Any]) -> None:
    assert _warnings(tmp_path, {}, values) == []
    assert shared_claim_problem(values) is None


@pytest.mark.parametrize(
    "values",
    [
        {"replicas": 2, "persistence": {"enabled": True, "accessModes": ["ReadWriteOnce"]}},
        {"replicas": 2, "persistence": {"enabled": True, "accessModes": ["ReadWriteOncePod"]}},
        {"replicas": 4, "persistence": {"enabled": True, "type": "pvc", "existingClaim": "grafana-data"}},
    ],
    ids=["rwo", "rwop", "existing-claim"],
)
def test_inline_values_alone_warn(tmp_path: Path, values: dict[str, Any]) -> None:
    (warning,) = _warnings(tmp_path, {}, values)
    assert f"replicas: {values['replicas']}" in warning


def test_inline_values_override_the_files_as_the_program_merges_them(tmp_path: Path) -> None:
    files = {"values/v.yaml": "replicas: 2\npersistence: {enabled: true}\n"}
    assert len(_warnings(tmp_path, files)) == 1
    assert _warnings(tmp_path, files, {"replicas": 1}) == []
    assert _warnings(tmp_path, files, {"persistence": {"enabled": False}}) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [("- a\n- b\n", "must hold a YAML mapping"), ("replicas: [1\n", "cannot be loaded"), (b"\xff\xfe", "not UTF-8")],
    ids=["list", "bad-yaml", "binary"],
)  # fmt: skip
def test_a_values_file_the_program_could_not_load_is_an_error(tmp_path: Path, text: str | bytes, words: str) -> None:
    path = tmp_path / "values" / "bad.yaml"
    path.parent.mkdir()
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    cfg = {**existing_config("dev"), "helm": {"releases": [{**_REL, "valuesFiles": ["values/bad.yaml"]}]}}
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, project_root=tmp_path)
    assert_problem(exc.value.problems, "helm.releases[0].valuesFiles[0]", words)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_stacks_run_grafana_without_a_shared_claim(stack: str) -> None:
    spec = load_spec_file(stack_file(stack, PROJECT_ROOT), PROJECT_ROOT)
    assert not [w for w in spec.warnings if "replicas" in w], spec.warnings

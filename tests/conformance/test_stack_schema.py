"""The stack files' JSON Schema (stacks/stack.schema.json): generated from the config models,
committed, named by every committed stack, and checked with check-jsonschema, the tool an
editor or a PR check would run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stacks import schema
from stacks.cli import main

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(ROOT.glob("Pulumi.*.yaml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
SCHEMA_LINE = "# yaml-language-server: $schema=./stacks/stack.schema.json"


def _check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(schema.SCHEMA_FILE), *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_committed_schema_is_the_generated_one() -> None:
    assert schema.SCHEMA_FILE.read_text() == schema.render(), "stale: run python -m stacks schema --write"


def test_schema_check_fails_when_the_committed_copy_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "stacks").mkdir()
    assert main(["--root", str(tmp_path), "schema", "--check"]) == 1
    assert "stacks/stack.schema.json is stale: run python -m stacks schema --write" in capsys.readouterr().err
    assert main(["--root", str(tmp_path), "schema", "--write"]) == 0
    assert main(["--root", str(tmp_path), "schema", "--check"]) == 0
    assert (tmp_path / "stacks" / "stack.schema.json").read_text() == schema.render()
    assert (tmp_path / "docs" / "config-reference.md").read_text() == schema.reference()


def test_the_committed_reference_is_the_generated_one() -> None:
    assert schema.REFERENCE_FILE.read_text() == schema.reference(), "stale: run python -m stacks schema --write"


def test_the_reference_has_a_row_for_every_key_of_every_model() -> None:
    rows = {line.split("`")[1] for line in schema.reference().splitlines() if line.startswith("| `")}
    leaves = {row.rsplit(".", 1)[-1] for row in rows}
    defs = schema.stack_schema()["$defs"]
    for name, model in defs.items():
        for key in model.get("properties") or {}:
            if name != "Secret":
                assert key in leaves, f"{name}.{key} has no row"
    # the settings a user types most, with their type and default as the models give them
    table = {line.split("`")[1]: line for line in schema.reference().splitlines() if line.startswith("| `")}
    assert "| integer 1–9 | `3` |" in table["mysql.replicas"]
    assert "| string | `mysql:8.4` |" in table["mysql.image"]
    assert "| string | required |" in table["cluster.nodes[].name"]
    assert "| map of sections |" in table["cluster.registryMirrors"]
    assert "| secret |" in table["mysqlRootPassword"]


@pytest.mark.parametrize("stack", STACKS, ids=lambda p: p.name)
def test_committed_stacks_name_the_schema_and_satisfy_it(stack: Path) -> None:
    assert stack.read_text().splitlines()[0] == SCHEMA_LINE
    res = _check(stack)
    assert res.returncode == 0, res.stdout + res.stderr


FIXTURES = sorted((ROOT / "tests" / "unit" / "fixtures").glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("stack", FIXTURES, ids=lambda p: p.name)
def test_the_test_stacks_satisfy_it_too(stack: Path) -> None:
    """The showcase uses every optional feature: the schema must not refuse what the parser takes."""
    res = _check(stack)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("  k8s-platform:addons:\n", "  k8s-platform:addons:\n    ingres: {}\n"), "'ingres' was unexpected"),
        (("  k8s-platform:addons:\n", "  k8s-platform:adons: {}\n  k8s-platform:addons:\n"),
         "$.config['k8s-platform:adons']: 'secure' is a required property"),
        (("k8s-platform:environment: dev", "k8s-platform:environment: test"), "'test' is not one of"),
        (("    mode: kubespray\n", "    mode: existing\n"), "should not be valid under"),  # controlHost & co.
        (("roles: [control-plane, etcd, worker]", "roles: [master, etcd, worker]"), "'master' is not one of"),
        (("      port: 22\n", "      port: '22x'\n"), "controlHost.port: '22x' is not of type 'integer'"),
    ],
)  # fmt: skip
def test_the_schema_rejects_unknown_keys_and_values(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    assert edit[0] in text
    bad = tmp_path / "Pulumi.dev.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    res = _check(bad)
    assert res.returncode == 1 and expected in res.stdout, res.stdout + res.stderr


def test_editors_and_the_parser_agree_on_strings_pulumi_config_set_stores(tmp_path: Path) -> None:
    """`pulumi config set --path addons.mesh.enabled true` stores the string "true"; both accept it."""
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(text.replace("  k8s-platform:addons:\n", "  k8s-platform:addons:\n    mesh:\n      enabled: 'false'\n", 1))
    assert _check(stack).returncode == 0
    assert main(["validate", "--config-file", str(stack)]) == 0


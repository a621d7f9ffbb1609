"""One way to break a stack config and to see it refused, shared by every rejection table.

A table row is (id, mutation, key path, words). `set_path` builds mutations of the config
(keys after `k8s-platform:`, secrets as `SECRET`); `ENTRY_POINTS` runs the broken config
through each way a user meets validation, and returns the problem lines it printed or raised:

- `parser`:  `stacks.config.parse_config` (what every entry point calls);
- `cli`:     `python -m stacks validate --config-file FILE` (in-process), on a stack file
             written with `secure:` values, as a user's file is (a secret not set yet is a
             warning there, since planning works before secrets exist: its lines count too);
- `program`: the Pulumi program's entry point, `stacks.program.deploy`, under mocks; it must
             raise `ConfigError` and register no resource at all.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.config_model import SecretMarker
from stacks import cli
from stacks.config import ConfigError, parse_config
from stacks.files import config_from_file
from stacks.program import ProgramSecrets, deploy
from tests.support.mocks import PROJECT_ROOT, PlatformMocks, run_program

NS = "k8s-platform:"
DELETE = object()
SECURE = {"secure": "v1:AAAAAAAAAAAAAAAA:placeholder"}

Mutator = Callable[[dict[str, Any]], None]


def set_path(path: str, value: Any) -> Mutator:
    """Set (or with DELETE, remove) `a.b.0.c` in a config (keys after `k8s-platform:`)."""

    def mutate(cfg: dict[str, Any]) -> None:
        node: Any = cfg
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        last: Any = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
        if value is DELETE:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)

    return mutate


def all_of(*mutations: Mutator) -> Mutator:
    def mutate(cfg: dict[str, Any]) -> None:
        for m in mutations:
            m(cfg)

    return mutate


def stack_document(cfg: dict[str, Any]) -> dict[str, Any]:
    """The stack file a user would have written for `cfg`: namespaced keys, `secure:` secrets."""

    def unmark(value: Any) -> Any:
        if isinstance(value, SecretMarker):
            return dict(SECURE)
        if isinstance(value, dict):
            return {k: unmark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unmark(v) for v in value]
        return value

    return {"config": {f"{NS}{k}": unmark(v) for k, v in cfg.items()}}


def _parser(cfg: dict[str, Any], tmp: Path) -> list[str]:
    try:
        parse_config(cfg, project_root=PROJECT_ROOT)
    except ConfigError as err:
        return [str(p) for p in err.problems]
    return []


def _write(cfg: dict[str, Any], tmp: Path) -> Path:
    path = tmp / "Pulumi.case.yaml"
    path.write_text(yaml.safe_dump(stack_document(cfg), sort_keys=False))
    return path


def _cli(cfg: dict[str, Any], tmp: Path) -> list[str]:
    path = _write(cfg, tmp)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["--root", str(PROJECT_ROOT), "validate", "--config-file", str(path)])
    assert "Traceback" not in err.getvalue() and code in (0, 1), code
    lines = err.getvalue().splitlines()
    warnings = [line.split(": warning: ", 1)[1] for line in lines if line.startswith(f"{path}: warning: ")]
    if code == 0:
        return warnings
    assert out.getvalue() == "", out.getvalue()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"{path}: ") and line.endswith("problem(s)"))
    return [line.strip() for line in lines[head + 1 :] if re.match(r"^\s*\S.*: \S", line)] + warnings


SECRETS = ProgramSecrets(
    ssh_private_key=pulumi.Output.secret("ssh-key-under-test"),
    mysql_root_password=pulumi.Output.secret("root-pw-under-test"),
    mysql_replication_password=pulumi.Output.secret("repl-pw-under-test"),
)


def _program(cfg: dict[str, Any], tmp: Path) -> list[str]:
    raw = config_from_file(_write(cfg, tmp))
    mocks = PlatformMocks()
    pulumi.runtime.set_mocks(mocks, project="k8s-platform", stack="dev", preview=False)

    def program() -> None:
        deploy(raw, SECRETS, PROJECT_ROOT, stack="case")

    try:
        run_program(program)
    except ConfigError as err:
        assert mocks.resources == [], [r.name for r in mocks.resources]
        return [str(p) for p in err.problems]
    return []


ENTRY_POINTS: dict[str, Callable[[dict[str, Any], Path], list[str]]] = {
    "parser": _parser,
    "cli": _cli,
    "program": _program,
}


def assert_refused(lines: list[str], path: str, words: str) -> None:
    hits = [line for line in lines if line.startswith(f"{path}: ")]
    assert hits, f"no problem at {path!r}; got {lines}"
    assert any(words in line for line in hits), f"{path}: expected {words!r} in {hits}"

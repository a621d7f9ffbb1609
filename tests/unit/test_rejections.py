"""Every rejection table, through every entry point a user meets validation by (the parser,
`python -m stacks validate`, the Pulumi program: tests/support/rejections.py). The tables live
beside the features they cover; each row is (id, mutation, key path, words in the message)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.mocks import kubespray_config
from tests.support.rejections import ENTRY_POINTS, Mutator, assert_refused
from tests.unit.test_config import BAD_INPUTS, PROD_RULES
from tests.unit.test_config_features import REJECTED, base

# table name -> (the stack each row breaks, the rows)
TABLES: dict[str, tuple[Callable[[], dict[str, Any]], list[Any]]] = {
    "config": (kubespray_config, BAD_INPUTS),
    "prod": (lambda: kubespray_config("prod"), PROD_RULES),
    "features": (base, REJECTED),
}
CASES = [
    pytest.param(stack, mutate, path, words, id=f"{name}-{case_id}")
    for name, (stack, rows) in TABLES.items()
    for case_id, mutate, path, words in rows
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(("stack", "mutate", "path", "words"), CASES)
def test_refused_with_key_path_and_hint(
    entry: str, stack: Callable[[], dict[str, Any]], mutate: Mutator, path: str, words: str, tmp_path: Path
) -> None:
    cfg = stack()
    mutate(cfg)
    assert_refused(ENTRY_POINTS[entry](cfg, tmp_path), path, words)

"""`python -m stacks.drift`: summary of `pulumi preview --refresh --expect-no-changes --json`.

preview-drift-create.json was recorded with the real CLI (a component added after
the last update; source positions stripped). The update/refresh steps below follow
Pulumi's PreviewStep (pkg/display/json.go)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from stacks import drift
from stacks.plumbing import Result

FIXTURES = Path(__file__).parent / "fixtures"
DEPLOY = "urn:pulumi:dev::k8s-platform::k8s-platform:webapp:WebApp$kubernetes:apps/v1:Deployment::my-nginx"


class Runner:
    def __init__(self, code: int, stdout: str = "", stderr: str = "", pulumi: bool = True) -> None:
        self.result = Result(code, stdout, stderr)
        self.pulumi = pulumi
        self.calls: list[list[str]] = []

    def which(self, program: str) -> str | None:
        return "/bin/pulumi" if self.pulumi else None

    def run(self, args: Sequence[str], *, capture: bool) -> Result:
        self.calls.append(list(args))
        return self.result

    def git_head(self) -> str | None:
        return None

    def confirm(self, prompt: str) -> bool | None:
        return None


def check(runner: Runner) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = drift.check("dev", runner=runner, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def scaled_by_hand() -> dict[str, Any]:
    """Someone ran `kubectl scale --replicas=5`: refresh sees it, the preview would put 2 back."""
    old = {"outputs": {"spec": {"replicas": 2, "template": {"x": 1}}, "status": {"readyReplicas": 2},
                       "metadata": {"resourceVersion": "1", "labels": {"a": "b"}}}}  # fmt: skip
    new = {"outputs": {"spec": {"replicas": 5, "template": {"x": 1}}, "status": {"readyReplicas": 5},
                       "metadata": {"resourceVersion": "9", "labels": {"a": "b"}}}}  # fmt: skip
    return {
        "steps": [
            {"op": "refresh", "urn": DEPLOY, "oldState": old, "newState": new, "detailedDiff": None},
            {
                "op": "update",
                "urn": DEPLOY,
                "oldState": new,
                "newState": old,
                "diffReasons": ["spec"],
                "detailedDiff": {"spec.replicas": {"kind": "update", "inputDiff": False}},
            },
        ],
        "changeSummary": {"update": 1, "same": 30},
    }


def test_command_line() -> None:
    runner = Runner(0, "{}")
    assert check(runner)[0] == 0
    assert runner.calls == [["pulumi", "preview", "--refresh", "--expect-no-changes", "--json", "--stack", "dev"]]


def test_recorded_preview_with_changes() -> None:
    text = (FIXTURES / "preview-drift-create.json").read_text()
    report = drift.summarize(json.loads(text))
    assert [(c.op, c.type, c.name) for c in report.changes] == [("create", "drift:test:Thing", "b")]
    assert report.refreshed == []
    code, out, _ = check(Runner(drift.EXIT_CHANGES_PROPOSED, text))
    assert code == 1
    assert "drift in stack dev: 1 to create" in out and "  create drift:test:Thing b" in out


def test_summary_names_resources_and_properties_never_values() -> None:
    code, out, _ = check(Runner(drift.EXIT_CHANGES_PROPOSED, json.dumps(scaled_by_hand())))
    assert code == 1
    assert "  refreshed kubernetes:apps/v1:Deployment my-nginx: spec.replicas" in out
    assert "  update kubernetes:apps/v1:Deployment my-nginx: spec.replicas" in out
    assert "status" not in out and "resourceVersion" not in out  # the cluster rewrites those on every read
    assert "5" not in out.replace("1 to update", "")


def test_no_drift() -> None:
    code, out, _ = check(Runner(0, json.dumps({"steps": [{"op": "same", "urn": DEPLOY}]})))
    assert code == 0 and "no drift" in out


def test_preview_failure_is_not_reported_as_drift() -> None:
    code, out, err = check(Runner(6, "", "error: no stack named 'dev' found"))
    assert code == 1 and out == ""
    assert "pulumi preview failed for stack dev (exit 6)" in err and "no stack named 'dev'" in err
    diag = {"diagnostics": [{"severity": "error", "message": "kubernetes cluster unreachable"}]}
    code, _, err = check(Runner(255, json.dumps(diag)))
    assert code == 1 and "kubernetes cluster unreachable" in err


def test_missing_engine() -> None:
    code, _, err = check(Runner(0, pulumi=False))
    assert code == 1 and "make engine" in err


def test_drift_is_a_subcommand_of_the_stacks_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from stacks import cli

    seen: dict[str, Any] = {}

    def fake_check(stack: str, runner: Any) -> int:
        seen.update(stack=stack, root=runner.root)
        return 1

    monkeypatch.setattr(drift, "check", fake_check)
    assert cli.main(["--root", str(tmp_path), "drift", "prod"]) == 1
    assert seen == {"stack": "prod", "root": tmp_path}
    # the module entry point stays, for scripts written against it
    assert drift.main(["prod", "--root", str(tmp_path)]) == 1

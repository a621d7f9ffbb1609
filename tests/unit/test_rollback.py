"""`python -m stacks rollback`: the planner on history JSON recorded with the real Pulumi
CLI (tests/unit/fixtures/record-history.sh), and the runner with a fake `pulumi`."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from stacks import rollback as rb
from stacks import yamledit as ye
from stacks.plumbing import Result
from stacks.rollback_runner import run_rollback
from tests.support.mocks import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
NGINX_OLD = "nginxinc/nginx-unprivileged:1.27.5"
NGINX_NEW = "nginxinc/nginx-unprivileged:1.28.0"


def history_dev() -> list[dict[str, Any]]:
    """Scratch project: v1 ok, v2 ok, v3 failed, v4 refresh, v5 ok from a dirty tree (newest first)."""
    return json.loads((FIXTURES / "history-dev.json").read_text())


def history_real_config() -> list[dict[str, Any]]:
    """The project's dev config: v1 (nginx 1.27.5), v2 (1.28.0); the recorded v3 rollback left out."""
    return json.loads((FIXTURES / "history-rollback-dev.json").read_text())[1:]


def commits() -> dict[str, str]:
    """Commit message (A..D) → sha of the scratch repo history-dev.json was recorded in."""
    lines = (FIXTURES / "history-dev.commits.txt").read_text().split("\n")
    return {subject: sha for sha, subject in (line.split(" ", 1) for line in lines if line)}


# --------------------------------------------------------------------------- history parsing


def test_recorded_history_has_the_shape_pulumi_documents() -> None:
    raw = history_dev()
    assert [u["kind"] for u in raw] == ["update", "refresh", "update", "update", "update"]
    assert [u["result"] for u in raw] == ["succeeded", "succeeded", "failed", "succeeded", "succeeded"]
    # the DIY (file://) backend records no version numbers
    assert {u["version"] for u in raw} == {0}
    for update in raw:
        secret = update["config"]["k8s-platform:sshPrivateKey"]
        assert secret == {"secret": True}, "a secret's value (or ciphertext) leaked into the history"
        assert update["config"]["k8s-platform:apps"]["secret"] is False
        assert "objectValue" in update["config"]["k8s-platform:apps"]
        assert {"git.head", "git.dirty"} <= set(update["environment"])
    text = (FIXTURES / "history-dev.json").read_text() + (FIXTURES / "history-rollback-dev.json").read_text()
    assert "fixture-not-a-real-key" not in text and "fixture-sshPrivateKey" not in text


def test_parse_numbers_diy_updates_by_position_oldest_first() -> None:
    updates = rb.parse_history(json.dumps(history_dev()))
    assert [u.version for u in updates] == [1, 2, 3, 4, 5]
    assert [(u.kind, u.result) for u in updates] == [
        ("update", "succeeded"), ("update", "succeeded"), ("update", "failed"),
        ("refresh", "succeeded"), ("update", "succeeded"),
    ]  # fmt: skip
    sha = commits()
    assert [u.git_head for u in updates] == [sha["A"], sha["B"], sha["C"], sha["C"], sha["D"]]
    assert [u.git_dirty for u in updates] == [False, False, False, False, True]
    v1 = updates[0]
    assert v1.config["k8s-platform:apps"].value[0]["image"] == "nginxinc/nginx-unprivileged:1.27.4"
    assert v1.config["k8s-platform:environment"] == rb.HistoryValue("dev", False)
    assert v1.config["k8s-platform:sshPrivateKey"] == rb.HistoryValue(None, True)


def test_cloud_version_numbers_are_used_as_recorded() -> None:
    raw = history_dev()
    for update, version in zip(raw, (15, 14, 13, 12, 11), strict=True):
        update["version"] = version
    assert [u.version for u in rb.parse_history(raw)] == [11, 12, 13, 14, 15]
    target, current = rb.choose_target(rb.parse_history(raw), "dev")
    assert (target.version, current.version) == (12, 15)


def test_bad_history_json_is_a_clear_error() -> None:
    with pytest.raises(rb.RollbackError, match="not JSON"):
        rb.parse_history("error: no stack")
    with pytest.raises(rb.RollbackError, match="list of updates"):
        rb.parse_history('{"version": 1}')


# --------------------------------------------------------------------------- choosing the target


def test_default_target_is_last_successful_update_before_the_latest() -> None:
    target, current = rb.choose_target(rb.parse_history(history_dev()), "dev")
    # v5 is the latest; v4 is a refresh and v3 failed, so v2
    assert (target.version, current.version) == (2, 5)
    assert target.config["k8s-platform:apps"].value[0]["image"] == "nginxinc/nginx-unprivileged:1.27.5"


def test_default_after_a_failed_latest_update_goes_to_the_one_before() -> None:
    raw = history_dev()[2:]  # history as it stood right after the failed v3
    target, current = rb.choose_target(rb.parse_history(raw), "dev")
    assert (target.version, current.version) == (2, 3)


def test_to_picks_a_version() -> None:
    updates = rb.parse_history(history_dev())
    assert rb.choose_target(updates, "dev", 1)[0].version == 1
    assert rb.choose_target(updates, "dev", 5)[0].version == 5  # re-apply the current one


@pytest.mark.parametrize(
    ("to", "message"),
    [
        (3, "version 3 did not succeed .*successful updates: v1, v2, v5"),
        (4, "version 4 is a refresh, not an update"),
        (9, r"version 9 does not exist in the history of stack dev \(versions 1-5"),
        (0, "version 0 does not exist"),
    ],
)
def test_bad_to(to: int, message: str) -> None:
    with pytest.raises(rb.RollbackError, match=message):
        rb.choose_target(rb.parse_history(history_dev()), "dev", to)


def test_no_history_and_nothing_before() -> None:
    for empty in ("", "[]", "null"):
        with pytest.raises(rb.RollbackError, match="stack dev has no update history"):
            rb.choose_target(rb.parse_history(empty), "dev")
    only_refresh = [u for u in history_dev() if u["kind"] == "refresh"]
    with pytest.raises(rb.RollbackError, match=r"no `update` in its history \(only refresh\)"):
        rb.choose_target(rb.parse_history(only_refresh), "dev")
    first_only = history_dev()[-1:]
    with pytest.raises(rb.RollbackError, match="no successful update before its latest"):
        rb.choose_target(rb.parse_history(first_only), "dev")


# --------------------------------------------------------------------------- restoring config


def plan_real(text: str | None = None, head: str | None = None, raw: list[dict[str, Any]] | None = None) -> Any:
    updates = rb.parse_history(raw if raw is not None else history_real_config())
    target, current = rb.choose_target(updates, "dev")
    text = text if text is not None else (FIXTURES / "Pulumi.rollback-dev.yaml").read_text()
    return rb.plan_restore(text, target, current, stack="dev", head=head)


def test_restore_changes_only_what_differed_and_keeps_secrets_byte_for_byte() -> None:
    before = (FIXTURES / "Pulumi.rollback-dev.yaml").read_text()
    plan = plan_real(before)
    assert plan.target.version == 1 and plan.current.version == 2
    assert rb.diff_lines(plan) == [
        "  helm.releases.grafana.version: 8.5.1 → 8.5.0",
        f"  apps.my-nginx.image: {NGINX_NEW} → {NGINX_OLD}",
    ]
    b, a = before.splitlines(), plan.new_text.splitlines()
    assert len(a) == len(b)
    changed = [(x, y) for x, y in zip(b, a, strict=True) if x != y]
    assert changed == [
        ("        version: 8.5.1", "        version: 8.5.0"),
        (f"      image: {NGINX_NEW}", f"      image: {NGINX_OLD}"),
    ]
    assert sorted(k.split(":")[1] for k in plan.kept_secrets) == [
        "mysqlReplicationPassword", "mysqlRootPassword", "sshPrivateKey",
    ]  # fmt: skip
    assert not plan.problems


def test_commit_mismatch_warns_and_names_the_commit() -> None:
    plan = plan_real(head="f" * 40)
    target_sha = plan.target.git_head
    assert len(target_sha) == 40
    mismatch = [w for w in plan.warnings if "HEAD is" in w]
    assert mismatch and f"git checkout {target_sha}" in mismatch[0]
    assert not [w for w in plan_real(head=target_sha).warnings if "HEAD is" in w]


def test_dirty_tree_and_missing_commit_are_warned() -> None:
    updates = rb.parse_history(history_dev())
    text = "config:\n  k8s-platform:sshPrivateKey:\n    secure: v1:x\n"
    plan = rb.plan_restore(text, updates[4], updates[4], stack="dev", head=updates[4].git_head)
    assert any("uncommitted changes" in w for w in plan.warnings)
    raw = history_dev()
    for u in raw:
        u["environment"].pop("git.head")
    updates = rb.parse_history(raw)
    plan = rb.plan_restore(text, updates[1], updates[4], stack="dev", head="abc")
    assert any("recorded no git commit" in w for w in plan.warnings)


def test_a_secret_the_file_no_longer_has_is_a_problem() -> None:
    text = (FIXTURES / "Pulumi.rollback-dev.yaml").read_text()
    without = text.replace(
        "  k8s-platform:sshPrivateKey:\n    secure: v1:cGxhY2Vob2xkZXI=:placeholder-sshPrivateKey\n", ""
    )
    assert without != text
    plan = plan_real(without)
    assert [str(p) for p in plan.problems] == [
        "k8s-platform:sshPrivateKey: was a secret in v1 and is not in Pulumi.dev.yaml now; the history never "
        "holds secret values: set it first (pulumi config set --secret sshPrivateKey --stack dev)"
    ]


def test_plain_then_but_secret_now_stays_secret() -> None:
    raw = history_real_config()
    raw[-1]["config"]["k8s-platform:mysqlRootPassword"] = {"value": "hunter2", "secret": False}
    plan = plan_real(raw=raw)
    assert "hunter2" not in plan.new_text
    assert "placeholder-mysqlRootPassword" in plan.new_text
    assert any("is a secret now; kept the secret" in w for w in plan.warnings)


def test_keys_the_target_did_not_have_are_removed_but_secrets_kept() -> None:
    text = (FIXTURES / "Pulumi.rollback-dev.yaml").read_text()
    text = text.replace(
        "  k8s-platform:schedulableControlPlane: true\n",
        "  k8s-platform:schedulableControlPlane: true\n  k8s-platform:extra: 1\n  k8s-platform:kubeconfig:\n"
        "    secure: v1:abc\n",
    )
    plan = plan_real(text)
    assert "k8s-platform:extra" not in plan.new_text
    assert "  k8s-platform:kubeconfig:\n    secure: v1:abc\n" in plan.new_text
    assert any("k8s-platform:kubeconfig: a secret that v1 did not have; kept" in w for w in plan.warnings)


def test_scalar_types_follow_the_file() -> None:
    """History stores every scalar as a string; `true` in the file equals "true" in history."""
    raw = history_real_config()
    plan = plan_real(raw=raw)
    assert not any("schedulableControlPlane" in line for line in rb.diff_lines(plan))
    raw[-1]["config"]["k8s-platform:schedulableControlPlane"] = {"value": "false", "secret": False}
    plan = plan_real(raw=raw)
    assert "  k8s-platform:schedulableControlPlane: false\n" in plan.new_text
    assert ye.plain(ye.load(plan.new_text))["config"]["k8s-platform:schedulableControlPlane"] is False


# --------------------------------------------------------------------------- the runner


class FakeRunner:
    def __init__(
        self,
        history: str,
        root: Path,
        *,
        pulumi: bool = True,
        head: str | None = None,
        answer: bool | None = True,
        codes: dict[str, int] | None = None,
    ) -> None:
        self.history, self.root, self.pulumi, self.head, self.answer = history, root, pulumi, head, answer
        self.codes = codes or {}
        self.calls: list[list[str]] = []
        self.file_at: dict[str, str] = {}
        self.prompts: list[str] = []

    def which(self, program: str) -> str | None:
        return "/opt/pulumi/bin/pulumi" if self.pulumi and program == "pulumi" else None

    def run(self, args: Sequence[str], *, capture: bool) -> Result:
        args = list(args)
        self.calls.append(args)
        if args[1:3] == ["stack", "history"]:
            step = "history"
        elif args[1] == "up":
            step = "up"
        elif "--expect-no-changes" in args:
            step = "check"
        else:
            step = "preview"
        self.file_at[step] = (self.root / "Pulumi.dev.yaml").read_text()
        code = self.codes.get(step, 0)
        if step == "history":
            return Result(code, self.history if code == 0 else "", "error: failed to load stack" if code else "")
        return Result(code)

    def git_head(self) -> str | None:
        return self.head

    def confirm(self, prompt: str) -> bool | None:
        self.prompts.append(prompt)
        return self.answer

    def steps(self) -> list[str]:
        names = {"stack": "history", "up": "up"}
        return [names.get(c[1], "check" if "--expect-no-changes" in c else "preview") for c in self.calls]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(FIXTURES / "Pulumi.rollback-dev.yaml", tmp_path / "Pulumi.dev.yaml")
    shutil.copytree(PROJECT_ROOT / "values", tmp_path / "values")
    return tmp_path


def rollback(root: Path, runner: FakeRunner, to: int | None = None, yes: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_rollback("dev", to=to, yes=yes, root=root, runner=runner, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


REAL = json.dumps(history_real_config())


def test_missing_engine(root: Path) -> None:
    runner = FakeRunner(REAL, root, pulumi=False)
    code, _, err = rollback(root, runner)
    assert code == 1 and "make engine" in err and "not on PATH" in err
    assert runner.calls == []


def test_history_command_failure(root: Path) -> None:
    code, _, err = rollback(root, FakeRunner(REAL, root, codes={"history": 6}))
    assert code == 1 and "pulumi stack history --stack dev failed: error: failed to load stack" in err


def test_no_history_bad_n_failed_n(root: Path) -> None:
    assert "has no update history" in rollback(root, FakeRunner("[]", root))[2]
    code, _, err = rollback(root, FakeRunner(REAL, root), to=7)
    assert code == 1 and "version 7 does not exist" in err
    code, _, err = rollback(root, FakeRunner(json.dumps(history_dev()), root), to=3)
    assert code == 1 and "version 3 did not succeed" in err


def test_happy_path_with_yes(root: Path) -> None:
    before = (root / "Pulumi.dev.yaml").read_text()
    runner = FakeRunner(REAL, root, head="0" * 40)
    code, out, err = rollback(root, runner, yes=True)
    assert code == 0, err
    assert runner.steps() == ["history", "preview", "up", "check"]
    assert runner.calls[0] == [
        "pulumi", "stack", "history", "--json", "--show-secrets=false", "--page-size", "0", "--stack", "dev",
    ]  # fmt: skip
    assert runner.calls[1] == ["pulumi", "preview", "--diff", "--stack", "dev"]
    assert runner.calls[2][:5] == ["pulumi", "up", "--yes", "--skip-preview", "--stack"]
    assert runner.calls[3] == ["pulumi", "preview", "--expect-no-changes", "--stack", "dev"]
    # the preview already saw the restored file
    assert NGINX_OLD in runner.file_at["preview"] and NGINX_NEW in runner.file_at["history"]
    after = (root / "Pulumi.dev.yaml").read_text()
    assert after == before.replace(NGINX_NEW, NGINX_OLD).replace("version: 8.5.1", "version: 8.5.0")
    assert f"apps.my-nginx.image: {NGINX_NEW} → {NGINX_OLD}" in out
    assert "git checkout" in err and runner.prompts == []
    assert "placeholder-" not in out + err


def test_confirmation_declined_or_impossible_restores_the_file(root: Path) -> None:
    before = (root / "Pulumi.dev.yaml").read_bytes()
    for answer, message in ((False, "cancelled"), (None, "rerun with --yes")):
        runner = FakeRunner(REAL, root, answer=answer)
        code, _, err = rollback(root, runner)
        assert code == 1 and message in err
        assert runner.steps() == ["history", "preview"]
        assert runner.prompts == ["Roll back stack dev to v1? [y/N] "]
        assert (root / "Pulumi.dev.yaml").read_bytes() == before


def test_confirmed_interactively(root: Path) -> None:
    runner = FakeRunner(REAL, root, answer=True)
    assert rollback(root, runner)[0] == 0
    assert runner.steps() == ["history", "preview", "up", "check"]


def test_preview_failure_restores_the_file(root: Path) -> None:
    before = (root / "Pulumi.dev.yaml").read_bytes()
    runner = FakeRunner(REAL, root, codes={"preview": 1})
    code, _, err = rollback(root, runner, yes=True)
    assert code == 1 and "pulumi preview failed" in err
    assert runner.steps() == ["history", "preview"]
    assert (root / "Pulumi.dev.yaml").read_bytes() == before


def test_up_failure_keeps_the_restored_config_and_says_how_to_undo(root: Path) -> None:
    code, _, err = rollback(root, FakeRunner(REAL, root, codes={"up": 255}), yes=True)
    assert code == 1 and "pulumi up failed" in err and "git checkout -- Pulumi.dev.yaml" in err
    assert NGINX_OLD in (root / "Pulumi.dev.yaml").read_text()


def test_changes_left_after_up_fail(root: Path) -> None:
    code, _, err = rollback(root, FakeRunner(REAL, root, codes={"check": 7}), yes=True)
    assert code == 1 and "still finds changes" in err


def test_config_the_current_program_rejects_is_refused(root: Path) -> None:
    """history-dev.json comes from a scratch program whose config this schema rejects."""
    before = (root / "Pulumi.dev.yaml").read_bytes()
    runner = FakeRunner(json.dumps(history_dev()), root)
    code, _, err = rollback(root, runner, to=1, yes=True)
    assert code == 1 and "does not validate with the current program" in err
    assert f"ran commit {commits()['A']}" in err
    assert runner.steps() == ["history"]
    assert (root / "Pulumi.dev.yaml").read_bytes() == before


def test_cli_wiring(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from stacks import cli

    monkeypatch.setenv("PATH", str(root))  # no pulumi here
    assert cli.main(["--root", str(root), "rollback", "dev", "--to", "1", "--yes"]) == 1
    assert "make engine" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["--root", str(root), "rollback", "dev", "--to", "x"])
    assert exc.value.code == 2


def test_list_prints_the_numbers_to_takes(root: Path) -> None:
    runner = FakeRunner(json.dumps(history_dev()), root)
    out, err = io.StringIO(), io.StringIO()
    assert run_rollback("dev", to=None, yes=False, root=root, runner=runner, list_only=True, out=out, err=err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "history of stack dev (newest first; --to takes the v number):"
    assert [line.split()[:3] for line in lines[1:]] == [
        ["v5", "update", "succeeded"], ["v4", "refresh", "succeeded"], ["v3", "update", "failed"],
        ["v2", "update", "succeeded"], ["v1", "update", "succeeded"],
    ]  # fmt: skip
    assert lines[1].endswith("(current)") and f"{commits()['D'][:12]}+dirty" in lines[1]
    assert runner.steps() == ["history"]


def rollback_only(root: Path, runner: FakeRunner, only: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_rollback("dev", to=None, yes=True, root=root, runner=runner, only=only, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_only_restores_just_the_selected_settings(root: Path) -> None:
    before = (root / "Pulumi.dev.yaml").read_text()
    code, out, err = rollback_only(root, FakeRunner(REAL, root), ["apps.my-nginx"])
    assert code == 0, err
    after = (root / "Pulumi.dev.yaml").read_text()
    assert after == before.replace(NGINX_NEW, NGINX_OLD), "the chart version (8.5.1) must stay"
    assert f"apps.my-nginx.image: {NGINX_NEW} → {NGINX_OLD}" in out and "8.5.0" not in out


def test_only_with_a_selector_that_matches_nothing_is_a_clear_error(root: Path) -> None:
    before = (root / "Pulumi.dev.yaml").read_text()
    code, _, err = rollback_only(root, FakeRunner(REAL, root), ["apps.nope"])
    assert code == 1 and "--only apps.nope: matches no rollback-able setting" in err
    assert (root / "Pulumi.dev.yaml").read_text() == before


def test_a_rollback_never_downgrades_kubernetes(root: Path) -> None:
    path = root / "Pulumi.dev.yaml"
    upgraded = path.read_text().replace("kubeVersion: 1.34.4", "kubeVersion: 1.35.4")
    assert upgraded != path.read_text(), "fixture has kubeVersion 1.34.4"
    path.write_text(upgraded)
    runner = FakeRunner(REAL, root)
    code, _, err = rollback(root, runner, yes=True)
    assert code == 1 and "cluster.kubeVersion would go from 1.35.4 back to 1.34.4" in err, err
    assert path.read_text() == upgraded and runner.steps() == ["history"]
    # rolling back only the app leaves Kubernetes where it is
    code, _, err = rollback_only(root, FakeRunner(REAL, root), ["apps.my-nginx"])
    assert code == 0, err
    assert "kubeVersion: 1.35.4" in path.read_text() and NGINX_OLD in path.read_text()

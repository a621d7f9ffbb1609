"""Runs a rollback: reads the stack's history with the Pulumi CLI, writes the restored
stack file, previews, applies, and checks that nothing is left to change.

Every external call goes through a `Runner` (stacks/plumbing.py), so tests drive the
whole flow with a fake one; `SubprocessRunner` is the real thing. The planning itself is
`stacks.rollback` (pure).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from stacks import promotion
from stacks import rollback as rb
from stacks.files import stack_file
from stacks.plumbing import Runner, UsageError, cli_problem, first_line, validate_text, write_atomic


def _project_name(root: Path) -> str:
    try:
        doc = yaml.safe_load((root / "Pulumi.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return rb.NAMESPACE
    name = doc.get("name") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and name else rb.NAMESPACE


def _exit_on_termination() -> dict[int, Any]:
    """Until the user has confirmed, SIGTERM/SIGHUP unwind (and so restore the stack file) like Ctrl-C."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous

    def leave(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, leave)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def run_rollback(
    stack: str,
    *,
    to: int | None,
    yes: bool,
    root: Path,
    runner: Runner,
    list_only: bool = False,
    only: Sequence[str] = (),
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The whole rollback; returns the exit code (0 done, 1 a problem)."""
    out = out or sys.stdout
    err = err or sys.stderr

    def fail(message: str) -> int:
        print(f"rollback: {message}", file=err)
        return 1

    if why := cli_problem(stack, root, runner):
        return fail(why)
    path = stack_file(stack, root)

    history = runner.run(
        ["pulumi", "stack", "history", "--json", "--show-secrets=false", "--page-size", "0", "--stack", stack],
        capture=True,
    )
    if history.returncode != 0:
        return fail(f"pulumi stack history --stack {stack} failed: {first_line(history.stderr or history.stdout)}")
    try:
        updates = rb.parse_history(history.stdout)
        if list_only:
            if not updates:
                raise rb.RollbackError(f"stack {stack} has no update history")
            deployments = [u for u in updates if u.kind == "update"]
            print(f"history of stack {stack} (newest first; --to takes the v number):", file=out)
            for line in rb.history_lines(updates, deployments[-1] if deployments else None):
                print(line, file=out)
            return 0
        target, current = rb.choose_target(updates, stack, to)
        original = path.read_text(encoding="utf-8")
        plan = rb.plan_restore(
            original, target, current, stack=stack, head=runner.git_head(), project=_project_name(root)
        )
    except rb.RollbackError as exc:
        return fail(str(exc))

    lines = rb.diff_lines(plan)
    if only and not plan.problems:
        # part of the config only: exactly what `promote --only` would carry from that update
        try:
            part = promotion.plan_promotion(plan.new_text, original, src=f"v{target.version}", dst=stack, only=only)
        except UsageError as exc:
            return fail(str(exc).replace("promotable setting", "rollback-able setting"))
        plan.problems.extend(part.problems)
        plan.new_text = part.new_text
        lines = promotion.diff_lines(part)
    downgrade = rb.kube_version_downgrade(original, plan.new_text)
    if downgrade:
        return fail(f"{downgrade}; {path.name} unchanged")

    print(f"rollback {stack}: {current.describe()} → {target.describe()}", file=out)
    if lines:
        print(f"{path.name}, config to restore:", file=out)
        for line in lines:
            print(line, file=out)
    else:
        print(f"{path.name} already has v{target.version}'s config; re-applying it", file=out)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=err)
    if plan.problems:
        for problem in plan.problems:
            print(str(problem), file=err)
        return fail(f"not rolled back; {path.name} unchanged")

    problems = validate_text(plan.new_text, str(path), root)
    if problems:
        for problem in problems:
            print(str(problem), file=err)
        hint = f" (v{target.version} ran commit {target.git_head}: check it out and rerun)" if target.git_head else ""
        return fail(
            f"v{target.version}'s config does not validate with the current program{hint}; {path.name} unchanged"
        )

    def restore_original() -> None:
        if plan.new_text != original:
            write_atomic(path, original)

    previous = _exit_on_termination()
    if plan.new_text != original:
        write_atomic(path, plan.new_text)
    try:
        preview = runner.run(["pulumi", "preview", "--diff", "--stack", stack], capture=False)
        if preview.returncode != 0:
            restore_original()
            return fail(f"pulumi preview failed; {path.name} restored to what it was")
        if not yes:
            answer = runner.confirm(f"Roll back stack {stack} to v{target.version}? [y/N] ")
            if answer is None:
                restore_original()
                return fail(f"no terminal to confirm on; rerun with --yes to apply. {path.name} restored")
            if not answer:
                restore_original()
                return fail(f"cancelled; {path.name} restored")
    except BaseException:
        restore_original()
        raise
    finally:
        _restore_handlers(previous)

    up = runner.run(
        ["pulumi", "up", "--yes", "--skip-preview", "--stack", stack, "--message", f"rollback to v{target.version}"],
        capture=False,
    )
    if up.returncode != 0:
        return fail(
            f"pulumi up failed; {path.name} keeps v{target.version}'s config: fix the cause and rerun "
            f"`pulumi up --stack {stack}`, or `git checkout -- {path.name}` to drop the rollback"
        )
    check = runner.run(["pulumi", "preview", "--expect-no-changes", "--stack", stack], capture=False)
    if check.returncode != 0:
        return fail(
            f"rolled back, but `pulumi preview --expect-no-changes --stack {stack}` still finds changes (drift?)"
        )
    print(f"rolled back {stack} to v{target.version}; commit {path.name}", file=out)
    return 0

"""After a crashed `pulumi up`: clear the stack's lock and the operations it left in flight.

A run that dies (a killed CI job, a laptop gone for good) leaves two things behind: its
lock on a shared backend (every later update is refused with "the stack is currently
locked") and, in the state, *pending operations*: resources it had started to create or
change and never recorded. `python -m stacks recover STACK` does what a careful operator
would, in order:

1. reads the pending operations from `pulumi stack export` and, for each Helm release among
   them, what Helm holds under that name (`helm history`, against the stack's cluster);
2. prints what it will remove and what it leaves alone, and asks that nobody else runs on
   the stack (or takes `--yes`); then `pulumi cancel`;
3. Helm releases the crash interrupted (the only kind that cannot simply be created
   again: Helm refuses "a name that is still in use", and a release left
   `pending-install`/`pending-upgrade` blocks every later upgrade):
   - an interrupted install, finished or not (`deployed`, `pending-install`, `failed`):
     uninstalled, so the next `up` installs it again — but only when the crashed run
     installed it: its first revision is no older than the run's start (`run_start`). It
     never reached the state, so nothing in the stack depends on it. (Pulumi's `refresh
     --import-pending-creates` would be the gentler way, but Pulumi 3.259 drops such
     imports during the refresh: the next `up` then fails on the name in use, which is
     what happened in the e2e test of this command.) A release of that name that existed
     before the run (installed by hand, by another stack or tool) is not this stack's:
     it is reported and left alone with everything it made, claims included; if the run
     left it stuck in a change made since it began, that change is rolled back as for an
     interrupted upgrade;
   - an update left `pending-upgrade`/`pending-rollback`: `helm rollback` to the last
     good revision, which the next `up` upgrades again;
4. `pulumi refresh --clear-pending-creates`: every other interrupted create is dropped
   from the state (Kubernetes objects are adopted by server-side apply on the next `up`;
   remote commands run again, and kubespray's playbooks are idempotent).

Then `pulumi up` converges. Every external call goes through the rollback `Runner`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TextIO

from stacks.config import ConfigError
from stacks.files import load_spec_file
from stacks.plumbing import Runner, cli_problem, first_line

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Helm release states that hold Helm's per-release lock: nothing else can run on the release
HELM_STUCK = ("pending-install", "pending-upgrade", "pending-rollback", "uninstalling")
# One lock of Pulumi's "the stack is currently locked" message (pkg/backend/diy/lock.go):
#   s3://…/<id>.json: created by ci@runner-7 (pid 4242) at 2026-12-01T10:00:00Z
LOCK_LINE = re.compile(r"created by (?P<holder>.+) \(pid (?P<pid>\d+)\) at (?P<at>\S+)\s*$", re.M)
# The advice for a release this command leaves alone (one wording for every case)
LEFT_ALONE = (
    "the next up fails on its name until it is adopted (`pulumi import`) or removed by its owner (`helm uninstall`)"
)


@dataclass(frozen=True)
class Pending:
    urn: str
    type: str
    operation: str  # creating | updating | deleting | reading | importing
    name: str = ""  # Helm releases: release name and namespace from the inputs
    namespace: str = ""


@dataclass(frozen=True)
class Revision:
    """One revision of a Helm release, from `helm history -o json`."""

    number: int
    updated: datetime | None  # None: Helm recorded no time (or one without its UTC offset)
    status: str


@dataclass(frozen=True)
class RunStart:
    """When the interrupted update began, and what says so (`at` None: `source` says why it is unknown)."""

    at: datetime | None
    source: str


@dataclass
class Plan:
    helm: list[tuple[list[str], str]] = field(default_factory=list)  # (helm args, why)
    notes: list[str] = field(default_factory=list)  # the creates the refresh drops from the state, and the like
    kept: list[str] = field(default_factory=list)  # Helm releases left alone, and why


def pending_operations(export: str) -> list[Pending]:
    """The pending operations of a `pulumi stack export` document."""
    doc = json.loads(export or "{}")
    ops = ((doc.get("deployment") or {}).get("pending_operations")) or []
    out = []
    for op in ops:
        res = op.get("resource") or {}
        inputs = res.get("inputs") or {}
        name, namespace = (str(v) if isinstance(v := inputs.get(k), str) else "" for k in ("name", "namespace"))
        out.append(Pending(str(res.get("urn", "")), str(res.get("type", "")), str(op.get("type", "")), name, namespace))
    return out


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time as Go prints it (`2026-12-03T10:14:05.123456789+01:00`, `…Z`), or None.

    Helm and Pulumi print each machine's local time with its UTC offset; compared as aware
    datetimes, two zones (or a summer-time change) between them do not matter. A time
    without an offset is refused, never guessed; Go's zero time (year 1) means "no time"."""
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value)  # keeps the offset; nanoseconds are cut to microseconds
    except ValueError:
        return None
    return at if at.tzinfo is not None and at.year > 1 else None


def parse_history(text: str) -> list[Revision]:
    """`helm history -o json` output → its revisions, oldest first. ValueError when it is not that."""
    try:
        entries = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("expected a list of revisions")
    revisions = []
    for entry in entries:
        number = entry.get("revision")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"a revision without a number: {entry!r}")
        revisions.append(Revision(number, parse_time(entry.get("updated")), str(entry.get("status", ""))))
    return sorted(revisions, key=lambda r: r.number)


def run_start(runner: Runner, stack: str) -> RunStart:
    """When the interrupted update of `stack` began, read before its lock is removed.

    A service backend lists the update in the stack's history, still `in-progress`. A
    DIY backend (file, S3, …) records an update in its history only when it ends; what
    dates the crashed one is its lock (`pulumi cancel` removes it), and Pulumi shows a
    lock's holder and time only when it refuses a command that takes the lock.
    `pulumi stack rename STACK` onto its own name is such a command that changes nothing
    either way: refused by the lock, or else refused because the name exists.

    The lock's time (the crashed CLI's clock, to the second, rounded down) and the Helm
    revisions the crashed run made (its provider plugin's clock) come from the same
    machine, so clock skew cannot make the run's own release look older than the run. (A
    service's history is the service's clock: a runner behind it makes the run's release
    look older, and it is then left alone and reported, the safe side.) This machine's
    clock is never used. Of several locks, the latest counts: a later start can only make
    fewer releases look like the run's."""
    history = runner.run(
        ["pulumi", "stack", "history", "--json", "--show-secrets=false", "--page-size", "1", "--stack", stack],
        capture=True,
    )
    if history.returncode == 0:
        with contextlib.suppress(json.JSONDecodeError):
            entries = json.loads(history.stdout or "[]")
            newest = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], dict) else {}
            if newest.get("result") == "in-progress" and (at := parse_time(newest.get("startTime"))):
                return RunStart(at, "the stack's update history")
    probe = runner.run(["pulumi", "stack", "rename", stack, "--stack", stack, "--non-interactive"], capture=True)
    text = f"{probe.stderr}\n{probe.stdout}"
    locks = [(at, m["holder"], m["pid"]) for m in LOCK_LINE.finditer(text) if (at := parse_time(m["at"]))]
    if locks:
        at, holder, pid = max(locks, key=lambda lock: lock[0])
        return RunStart(at, f"the lock of {holder}, pid {pid}")
    if "currently locked" in text:
        return RunStart(None, "Pulumi did not say when the stack's lock was taken")
    return RunStart(None, "the stack holds no lock (was `pulumi cancel` run already?), and only the lock dates the run")


def _at(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _plan_install(plan: Plan, op: Pending, revisions: Sequence[Revision], start: RunStart) -> None:
    """An interrupted install whose name Helm holds: the run's own release, or someone else's."""
    release = f"{op.namespace}/{op.name}"
    ns_name = ["--namespace", op.namespace, op.name]
    first, last = revisions[0], revisions[-1]
    if start.at is None:
        plan.kept.append(
            f"Helm release {release} ({last.status}): cannot tell whether the interrupted run installed it: "
            f"{start.source}. If `helm history` dates its revision 1 after the run began, `helm uninstall` it; "
            f"otherwise it is not this stack's, and {LEFT_ALONE}"
        )
        return
    began = f"the run began at {_at(start.at)} per {start.source}"
    # a create makes revision 1; only the first revision's time says who installed the release
    if first.number == 1 and first.updated is not None and first.updated >= start.at:
        plan.helm.append(
            (["uninstall", *ns_name, "--wait", "--timeout", "10m"],
             f"Helm release {release} is {last.status} from the interrupted install (revision 1 at "
             f"{_at(first.updated)}; {began}), which never reached the state; uninstalling it, with the objects "
             "its chart made, so the next up installs it cleanly")
        )  # fmt: skip
        return
    if first.number != 1:
        since = f"Helm keeps revisions {first.number}–{last.number} only, so it was upgraded since its install"
    elif first.updated is None:
        plan.kept.append(
            f"Helm release {release} ({last.status}): its revision 1 has no time, so nothing shows that the "
            f"interrupted run installed it ({began}); it stays: {LEFT_ALONE}"
        )
        return
    else:
        since = f"revision 1 at {_at(first.updated)}"
    if last.status in HELM_STUCK and last.updated is not None and last.updated >= start.at:
        # the run (or someone during it) changed a release it did not install: an upgrade, not a create
        plan.helm.append(
            (["rollback", *ns_name, "--wait", "--timeout", "10m"],
             f"Helm release {release} existed before the interrupted run ({since}; {began}) and is {last.status} "
             f"from revision {last.number} at {_at(last.updated)}; rolling it back to its last good revision, as an "
             f"interrupted upgrade. It is not this stack's and stays installed: {LEFT_ALONE}")
        )  # fmt: skip
        return
    plan.kept.append(
        f"Helm release {release} ({last.status}) existed before the interrupted run ({since}; {began}): it is "
        f"not this stack's and stays, with every object it made; {LEFT_ALONE}"
    )


def plan_recovery(
    pending: Sequence[Pending],
    helm_history: Callable[[str, str], Sequence[Revision]],
    started: Callable[[], RunStart],
) -> Plan:
    """What to uninstall, roll back or leave alone. `helm_history(namespace, name)` returns the
    release's revisions, oldest first ([] when Helm has no such release); `started()` says when
    the interrupted run began (asked only when an interrupted install finds its name taken)."""
    plan = Plan()
    for op in pending:
        if op.type != HELM_RELEASE:
            if op.operation == "creating":
                plan.notes.append(f"{op.urn}: interrupted create, dropped from the state (the next up makes it)")
            continue
        if not op.name or not op.namespace:
            plan.notes.append(f"{op.urn}: a Helm release without a name/namespace in its inputs; check it by hand")
            continue
        release = f"{op.namespace}/{op.name}"
        revisions = helm_history(op.namespace, op.name)
        status = revisions[-1].status if revisions else ""
        if op.operation == "creating":
            if not revisions:
                plan.notes.append(f"Helm release {release}: never installed; the next up installs it")
            else:
                _plan_install(plan, op, revisions, started())
        elif status in HELM_STUCK:
            plan.helm.append(
                (["rollback", "--namespace", op.namespace, op.name, "--wait", "--timeout", "10m"],
                 f"Helm release {release} is {status}; rolling back to its last good revision (the next up "
                 "upgrades it again)")
            )  # fmt: skip
    return plan


def confirmation(stack: str, plan: Plan) -> str:
    """The question asked before anything changes: exactly what goes, and what stays."""
    lines = [
        f"recover will, on stack {stack}:",
        "  - remove its lock: no pulumi command may be running on it now (a CI job, a colleague)",
        *(f"  - helm {args[0]} {args[2]}/{args[3]}: {why}" for args, why in plan.helm),
        *(f"  - {note}" for note in plan.notes),
    ]
    if plan.kept:
        lines += ["and leave alone:", *(f"  - {kept}" for kept in plan.kept)]
    return "\n".join([*lines, "Go on? [y/N] "])


def _stack_kubeconfig_path(root: Path, stack: str) -> str | None:
    """`cluster.kubeconfig` of an existing-mode stack (a path on this machine), if it names one."""
    try:
        spec = load_spec_file(root / f"Pulumi.{stack}.yaml", root)
    except ConfigError:
        return None
    if spec.cluster.mode == "existing" and spec.cluster.kubeconfig:
        return str(Path(spec.cluster.kubeconfig).expanduser())
    return None


@contextmanager
def _kubeconfig_file(runner: Runner, root: Path, stack: str, given: str | None) -> Iterator[str | None]:
    """The stack's cluster for helm: --kubeconfig, else the stack's `kubeconfig` output (a
    secret, written to a private temporary file and removed after), else an existing-mode
    stack's `cluster.kubeconfig` path. Never the ambient KUBECONFIG: that may be another cluster."""
    if given:
        yield given
        return
    res = runner.run(["pulumi", "stack", "output", "kubeconfig", "--show-secrets", "--stack", stack], capture=True)
    text = res.stdout.strip() if res.returncode == 0 else ""
    if not text.startswith(("apiVersion", "{", "clusters", "kind")):
        yield _stack_kubeconfig_path(root, stack)
        return
    fd, path = tempfile.mkstemp(prefix="k8sp-recover-", suffix=".kubeconfig")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        yield path
    finally:
        os.unlink(path)


def run_recover(
    stack: str,
    *,
    yes: bool,
    root: Path,
    runner: Runner,
    kubeconfig: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The whole recovery; returns the exit code (0 done, 1 a problem)."""
    out = out or sys.stdout
    err = err or sys.stderr

    def fail(message: str) -> int:
        print(f"recover: {message}", file=err)
        return 1

    if problem := cli_problem(stack, root, runner):
        return fail(problem)
    # everything is read before the lock goes: the lock dates the crashed run, and a refusal
    # (no helm, no kubeconfig, a helm error) leaves the stack as it was for the next attempt
    export = runner.run(["pulumi", "stack", "export", "--stack", stack], capture=True)
    if export.returncode != 0:
        return fail(f"pulumi stack export --stack {stack} failed: {first_line(export.stderr or export.stdout)}")
    try:
        pending = pending_operations(export.stdout)
    except json.JSONDecodeError as exc:
        return fail(f"pulumi stack export --stack {stack}: not JSON ({exc.msg})")

    helm_pending = [p for p in pending if p.type == HELM_RELEASE]
    if helm_pending and runner.which("helm") is None:
        return fail(
            "Helm releases were left in flight and helm is not on PATH: install helm (`make setup` puts one "
            "in ~/.cache/k8s-platform/tools/bin), then run recover again"
        )
    kube_file = _kubeconfig_file(runner, root, stack, kubeconfig) if helm_pending else contextlib.nullcontext(None)
    with kube_file as kube:
        if helm_pending and not kube:
            return fail(
                "Helm releases were left in flight and the stack has no kubeconfig output yet: "
                "pass --kubeconfig with the cluster's admin kubeconfig"
            )
        helm_base = ["helm", "--kubeconfig", kube or ""]
        problems: list[str] = []

        def helm_history(namespace: str, name: str) -> list[Revision]:
            res = runner.run([*helm_base, "history", name, "--namespace", namespace, "-o", "json"], capture=True)
            if res.returncode != 0:
                if "not found" not in (res.stderr + res.stdout).lower():
                    problems.append(f"helm history {namespace}/{name}: {first_line(res.stderr or res.stdout)}")
                return []
            try:
                return parse_history(res.stdout)
            except ValueError as exc:
                problems.append(f"helm history {namespace}/{name} -o json: {exc}")
                return []

        plan = plan_recovery(pending, helm_history, cache(lambda: run_start(runner, stack)))
        if problems:
            return fail("; ".join(problems))
        if not yes:
            answer = runner.confirm(confirmation(stack, plan))
            if answer is None:
                return fail("no terminal to confirm on: run with --yes once you know nothing else runs on the stack")
            if not answer:
                print("recover: nothing changed", file=out)
                return 1

        cancel = runner.run(["pulumi", "cancel", "--yes", "--stack", stack], capture=True)
        if cancel.returncode != 0:
            return fail(f"pulumi cancel --stack {stack} failed: {first_line(cancel.stderr or cancel.stdout)}")
        print(f"recover: the lock of stack {stack} is cleared", file=out)
        if not pending:
            print("recover: no operation was left in flight; run `pulumi up` when you are ready", file=out)
            return 0
        for args, why in plan.helm:
            print(f"recover: {why}", file=out)
            res = runner.run([*helm_base, *args], capture=True)
            if res.returncode != 0:
                return fail(f"helm {' '.join(args[:1])} failed: {first_line(res.stderr or res.stdout)}")
    for kept in plan.kept:
        print(f"recover: left alone: {kept}", file=out)
    for note in plan.notes:
        print(f"recover: {note}", file=out)
    refresh = ["pulumi", "refresh", "--yes", "--skip-preview", "--stack", stack, "--clear-pending-creates"]
    res = runner.run(refresh, capture=False)
    if res.returncode != 0:
        return fail(f"pulumi refresh --stack {stack} failed (see above)")
    if plan.kept:
        print(f"recover: stack {stack} is consistent again; settle the Helm releases left alone above, then run "
              f"`pulumi up --stack {stack}` to converge", file=out)  # fmt: skip
    else:
        print(f"recover: stack {stack} is consistent again; run `pulumi up --stack {stack}` to converge", file=out)
    return 0

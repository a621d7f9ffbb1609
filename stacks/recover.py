"""After a crashed `pulumi up`: clear the stack's lock and the operations it left in flight.

A run that dies (a killed CI job, a laptop gone for good) leaves two things behind: its
lock on a shared backend (every later update is refused with "the stack is currently
locked") and, in the state, *pending operations*: resources it had started to create or
change and never recorded. `python -m stacks recover STACK` does what a careful operator
would, in order:

1. asks that nobody else runs on the stack (or takes `--yes`), then `pulumi cancel`;
2. reads the pending operations from `pulumi stack export`;
3. Helm releases the crash interrupted (the only kind that cannot simply be created
   again: Helm refuses "a name that is still in use", and a release left
   `pending-install`/`pending-upgrade` blocks every later upgrade), with `helm` against
   the stack's cluster:
   - an interrupted install, finished or not (`deployed`, `pending-install`, `failed`):
     uninstalled, so the next `up` installs it again. It never reached the state, so
     nothing in the stack depends on it. (Pulumi's `refresh --import-pending-creates`
     would be the gentler way, but Pulumi 3.259 drops such imports during the refresh:
     the next `up` then fails on the name in use, which is what happened in the e2e test
     of this command.)
   - an update left `pending-upgrade`/`pending-rollback`: `helm rollback` to the last
     good revision, which the next `up` upgrades again;
4. `pulumi refresh --clear-pending-creates`: every other interrupted create is dropped
   from the state (Kubernetes objects are adopted by server-side apply on the next `up`;
   remote commands run again, and kubespray's playbooks are idempotent).

Then `pulumi up` converges. Every external call goes through the rollback `Runner`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from stacks.config import ConfigError
from stacks.files import load_spec_file
from stacks.plumbing import Runner, cli_problem, first_line

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Helm release states that hold Helm's per-release lock: nothing else can run on the release
HELM_STUCK = ("pending-install", "pending-upgrade", "pending-rollback", "uninstalling")


@dataclass(frozen=True)
class Pending:
    urn: str
    type: str
    operation: str  # creating | updating | deleting | reading | importing
    name: str = ""  # Helm releases: release name and namespace from the inputs
    namespace: str = ""


@dataclass
class Plan:
    helm: list[tuple[list[str], str]] = field(default_factory=list)  # (helm args, why)
    notes: list[str] = field(default_factory=list)


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


def plan_recovery(pending: Sequence[Pending], helm_status: Any) -> Plan:
    """What to uninstall or roll back; `helm_status(namespace, name)` returns the release's
    status ("" when there is no such release)."""
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
        status = helm_status(op.namespace, op.name)
        ns_name = ["--namespace", op.namespace, op.name]
        if op.operation == "creating":
            if not status:
                plan.notes.append(f"Helm release {release}: never installed; the next up installs it")
            else:
                plan.helm.append(
                    (["uninstall", *ns_name, "--wait", "--timeout", "10m"],
                     f"Helm release {release} is {status} from the interrupted install, which never reached the "
                     "state; uninstalling it so the next up installs it cleanly")
                )  # fmt: skip
        elif status in HELM_STUCK:
            plan.helm.append(
                (["rollback", *ns_name, "--wait", "--timeout", "10m"],
                 f"Helm release {release} is {status}; rolling back to its last good revision (the next up "
                 "upgrades it again)")
            )  # fmt: skip
    return plan


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
    if not yes:
        answer = runner.confirm(
            f"No pulumi command may be running on stack {stack} now (a CI job, a colleague): "
            "its lock is about to be removed. Go on? [y/N] "
        )
        if answer is None:
            return fail("no terminal to confirm on: run with --yes once you know nothing else runs on the stack")
        if not answer:
            print("recover: nothing changed", file=out)
            return 1

    cancel = runner.run(["pulumi", "cancel", "--yes", "--stack", stack], capture=True)
    if cancel.returncode != 0:
        return fail(f"pulumi cancel --stack {stack} failed: {first_line(cancel.stderr or cancel.stdout)}")
    print(f"recover: the lock of stack {stack} is cleared", file=out)

    export = runner.run(["pulumi", "stack", "export", "--stack", stack], capture=True)
    if export.returncode != 0:
        return fail(f"pulumi stack export --stack {stack} failed: {first_line(export.stderr or export.stdout)}")
    try:
        pending = pending_operations(export.stdout)
    except json.JSONDecodeError as exc:
        return fail(f"pulumi stack export --stack {stack}: not JSON ({exc.msg})")
    if not pending:
        print("recover: no operation was left in flight; run `pulumi up` when you are ready", file=out)
        return 0

    helm_pending = [p for p in pending if p.type == HELM_RELEASE]
    with _kubeconfig_file(runner, root, stack, kubeconfig) as kube:
        helm_base = ["helm", "--kubeconfig", kube or ""]
        if helm_pending and runner.which("helm") is None:
            return fail(
                "Helm releases were left in flight and helm is not on PATH: install helm (`make setup` puts one "
                "in ~/.cache/k8s-platform/tools/bin), then run recover again"
            )
        if helm_pending and not kube:
            return fail(
                "Helm releases were left in flight and the stack has no kubeconfig output yet: "
                "pass --kubeconfig with the cluster's admin kubeconfig"
            )
        problems: list[str] = []

        def helm_status(namespace: str, name: str) -> str:
            res = runner.run([*helm_base, "status", name, "--namespace", namespace, "-o", "json"], capture=True)
            if res.returncode != 0:
                if "not found" in (res.stderr + res.stdout).lower():
                    return ""
                problems.append(f"helm status {namespace}/{name}: {first_line(res.stderr or res.stdout)}")
                return "unknown"
            info = (json.loads(res.stdout or "{}").get("info")) or {}
            return str(info.get("status", ""))

        plan = plan_recovery(pending, helm_status)
        if problems:
            return fail("; ".join(problems))
        for args, why in plan.helm:
            print(f"recover: {why}", file=out)
            res = runner.run([*helm_base, *args], capture=True)
            if res.returncode != 0:
                return fail(f"helm {' '.join(args[:1])} failed: {first_line(res.stderr or res.stdout)}")
    for note in plan.notes:
        print(f"recover: {note}", file=out)
    refresh = ["pulumi", "refresh", "--yes", "--skip-preview", "--stack", stack, "--clear-pending-creates"]
    res = runner.run(refresh, capture=False)
    if res.returncode != 0:
        return fail(f"pulumi refresh --stack {stack} failed (see above)")
    print(f"recover: stack {stack} is consistent again; run `pulumi up --stack {stack}` to converge", file=out)
    return 0

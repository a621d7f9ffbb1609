"""Drift check: does what runs still match the program and the stack file?

`python -m stacks drift STACK` (and, as before, `python -m stacks.drift STACK`) runs
`pulumi preview --refresh --expect-no-changes --json --stack STACK`: the refresh
reads every resource back from the cluster, then the preview shows what an
update would change to bring it back in line. Exit 0 when nothing would change,
1 on drift (with a summary: which resources, which properties — never values,
they may be secret) or when the preview itself failed.

The JSON is Pulumi's `PreviewDigest` (pkg/display/json.go): `steps[]` with
`op`, `urn`, `oldState`/`newState` (`inputs`, `outputs`), `diffReasons`,
`replaceReasons`, `detailedDiff`; `changeSummary`; `diagnostics[]`. The CLI
exits 7 (`ExitNoChanges`, pkg/cmd/pulumi/cmd/exit_codes.go) when
--expect-no-changes finds changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from stacks.files import PROJECT_ROOT
from stacks.plumbing import ENGINE_HINT, Runner, SubprocessRunner

EXIT_CHANGES_PROPOSED = 7
# steps that change nothing; a "refresh" step only reads the resource back (its drift is reported separately)
_NO_CHANGE_OPS = {"same", "read", "refresh", "discard", "discard-replaced"}
# outputs the cluster rewrites on every read: not drift
_VOLATILE = {
    "status",
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.managedFields",
    "metadata.uid",
    "metadata.creationTimestamp",
    "metadata.annotations.deployment.kubernetes.io/revision",
}


@dataclass
class ResourceDrift:
    op: str  # what an update would do: update, replace, create, delete, …
    type: str
    name: str
    properties: list[str] = field(default_factory=list)  # what differs, paths only

    def line(self) -> str:
        props = f": {', '.join(self.properties)}" if self.properties else ""
        return f"  {self.op} {self.type} {self.name}{props}"


@dataclass
class DriftReport:
    changes: list[ResourceDrift]
    refreshed: list[ResourceDrift]  # resources whose live state changed since the last update
    summary: Mapping[str, int]


def _split_urn(urn: str) -> tuple[str, str]:
    # urn:pulumi:<stack>::<project>::<parent$type>::<name>
    parts = urn.split("::")
    if len(parts) < 4:
        return "", urn
    return parts[2].rsplit("$", 1)[-1], "::".join(parts[3:])


def _changed_paths(old: Any, new: Any, prefix: str = "", depth: int = 0) -> list[str]:
    if prefix in _VOLATILE:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping) and depth < 4:
        out: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            path = f"{prefix}.{key}" if prefix else str(key)
            if old.get(key) != new.get(key):
                out.extend(_changed_paths(old.get(key), new.get(key), path, depth + 1))
        return out
    return [prefix] if old != new else []


def summarize(preview: Mapping[str, Any]) -> DriftReport:
    changes: list[ResourceDrift] = []
    refreshed: list[ResourceDrift] = []
    for step in preview.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        op = str(step.get("op", ""))
        rtype, name = _split_urn(str(step.get("urn", "")))
        if op == "refresh":
            old = (step.get("oldState") or {}).get("outputs") or {}
            new = (step.get("newState") or {}).get("outputs") or {}
            paths = _changed_paths(old, new)
            if paths or (step.get("oldState") and not step.get("newState")):
                refreshed.append(ResourceDrift("refreshed", rtype, name, paths or ["(deleted outside Pulumi)"]))
            continue
        if op in _NO_CHANGE_OPS:
            continue
        detailed = step.get("detailedDiff") or {}
        props = sorted(detailed) if isinstance(detailed, Mapping) and detailed else []
        if not props:
            props = sorted({str(p) for p in (step.get("diffReasons") or []) + (step.get("replaceReasons") or [])})
        changes.append(ResourceDrift(op, rtype, name, props))
    summary = preview.get("changeSummary") or {}
    return DriftReport(changes, refreshed, {str(k): int(v) for k, v in summary.items()})


def _diagnostics(preview: Mapping[str, Any]) -> list[str]:
    return [
        str(d.get("message", "")).strip()
        for d in preview.get("diagnostics") or []
        if isinstance(d, Mapping) and d.get("severity") == "error"
    ]


def check(stack: str, *, runner: Runner, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if runner.which("pulumi") is None:
        print(f"drift: {ENGINE_HINT}", file=err)
        return 1
    res = runner.run(
        ["pulumi", "preview", "--refresh", "--expect-no-changes", "--json", "--stack", stack], capture=True
    )
    try:
        preview = json.loads(res.stdout) if res.stdout.strip() else {}
    except json.JSONDecodeError:
        preview = {}
    if not isinstance(preview, Mapping):
        preview = {}
    if res.returncode == 0:
        print(f"no drift: stack {stack} matches its program and Pulumi.{stack}.yaml", file=out)
        return 0
    if res.returncode != EXIT_CHANGES_PROPOSED or not preview.get("steps"):
        errors = _diagnostics(preview) or [line for line in res.stderr.splitlines() if line.strip()][-3:]
        print(f"drift: pulumi preview failed for stack {stack} (exit {res.returncode}):", file=err)
        for line in errors or ["(no output)"]:
            print(f"  {line}", file=err)
        return 1
    report = summarize(preview)
    counts = ", ".join(f"{n} to {op}" for op, n in sorted(report.summary.items()) if op != "same" and n)
    print(f"drift in stack {stack}: {counts or 'changes proposed'}", file=out)
    if report.refreshed:
        print("changed outside Pulumi (seen by refresh):", file=out)
        for item in report.refreshed:
            print(item.line(), file=out)
    if report.changes:
        print("an update would:", file=out)
        for item in report.changes:
            print(item.line(), file=out)
    print(
        f"to put it back: pulumi up --stack {stack}; to accept the live state: pulumi refresh --stack {stack}", file=out
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stacks.drift STACK [--root DIR]`: the same as `python -m stacks [--root DIR] drift STACK`."""
    parser = argparse.ArgumentParser(prog="python -m stacks.drift", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="project root (where Pulumi.yaml is)")
    args = parser.parse_args(argv)
    return check(args.stack, runner=SubprocessRunner(args.root))


if __name__ == "__main__":
    raise SystemExit(main())

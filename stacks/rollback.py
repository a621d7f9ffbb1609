"""Rollback: re-apply the config of an earlier successful `pulumi up`.

Pulumi has no rollback command. What it has is the stack's update history,
`pulumi stack history --json --show-secrets=false`, one entry per operation
(see pulumi/pkg/v3 `cmd/pulumi/stack/stack_history.go`, `updateInfoJSON`):

    version      the update's number. The Pulumi Cloud numbers updates 1, 2, …;
                 the DIY backends (file://, s3://, …) record 0 for every entry,
                 so here updates are then numbered by position, 1 = oldest,
                 which is how the Cloud counts them too.
    kind         update | preview | refresh | destroy | import | rename
    result       succeeded | failed | in-progress
    startTime, endTime, message, resourceChanges
    environment  where it ran: git.head, git.dirty, git.headName, ci.*, …
    config       the whole stack config of the update, by full key
                 ("k8s-platform:apps"): {"value": "<string>", "objectValue": <parsed
                 JSON for objects>, "secret": false}, or just {"secret": true}
                 for a secret (no value, not even ciphertext, without
                 --show-secrets — which this module never passes).

This module is the pure planner: parse the history, choose the update to go
back to, compute the stack file that re-creates its config and the warnings to
show. `stacks.rollback_runner` does the `pulumi` calls. Secrets are never
restored from history (it has none): the current file's `secure:` values are
kept as they are, and a secret the stack file no longer has is a problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap

from stacks import yamledit as ye
from stacks.config import NAMESPACE, Problem


class RollbackError(Exception):
    """The rollback cannot be planned; the message says why and what to do."""


@dataclass(frozen=True)
class HistoryValue:
    value: Any  # objectValue when present, else the string; None for a secret
    secret: bool


@dataclass(frozen=True)
class Update:
    version: int
    kind: str
    result: str
    start_time: str
    message: str
    environment: Mapping[str, str]
    config: Mapping[str, HistoryValue]

    @property
    def git_head(self) -> str:
        return self.environment.get("git.head", "")

    @property
    def git_dirty(self) -> bool:
        return self.environment.get("git.dirty", "") == "true"

    @property
    def succeeded(self) -> bool:
        return self.result == "succeeded"

    def describe(self) -> str:
        head = f", commit {self.git_head[:12]}" if self.git_head else ""
        message = f' "{self.message}"' if self.message else ""
        return f"v{self.version} ({self.kind} {self.result}, {self.start_time}{head}){message}"


def parse_history(data: str | Sequence[Any]) -> list[Update]:
    """`pulumi stack history --json` output → updates, oldest first, numbered."""
    if isinstance(data, str):
        text = data.strip()
        if not text:
            return []
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RollbackError(f"pulumi stack history --json: not JSON ({exc.msg} at line {exc.lineno})") from None
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(u, Mapping) for u in data):
        raise RollbackError("pulumi stack history --json: expected a list of updates")
    newest_first = list(data)  # the order every backend returns
    numbered = all(isinstance(u.get("version"), int) and u["version"] > 0 for u in newest_first)
    updates = []
    for position, raw in enumerate(reversed(newest_first), start=1):
        config: dict[str, HistoryValue] = {}
        for key, value in (raw.get("config") or {}).items():
            if not isinstance(value, Mapping):
                raise RollbackError(f"pulumi stack history --json: config {key!r} is not an object")
            if value.get("secret"):
                config[key] = HistoryValue(None, True)
            elif "objectValue" in value:
                config[key] = HistoryValue(value["objectValue"], False)
            else:
                config[key] = HistoryValue(value.get("value", ""), False)
        updates.append(
            Update(
                version=int(raw["version"]) if numbered else position,
                kind=str(raw.get("kind", "")),
                result=str(raw.get("result", "")),
                start_time=str(raw.get("startTime", "")),
                message=str(raw.get("message", "")),
                environment={str(k): str(v) for k, v in (raw.get("environment") or {}).items()},
                config=config,
            )
        )
    updates.sort(key=lambda u: u.version)
    return updates


def choose_target(updates: Sequence[Update], stack: str, to: int | None = None) -> tuple[Update, Update]:
    """(target, current): the update to go back to and the newest `update` it replaces.

    Default target: the last successful `update` before the newest one (refreshes,
    previews and failed updates are skipped). `to` picks a version explicitly; it
    must be a successful `update`.
    """
    deployments = [u for u in updates if u.kind == "update"]
    if not deployments:
        what = (
            "no update history"
            if not updates
            else "no `update` in its history (only " + ", ".join(sorted({u.kind for u in updates})) + ")"
        )
        raise RollbackError(f"stack {stack} has {what}: there is nothing to roll back to (deploy it with pulumi up)")
    current = deployments[-1]
    if to is not None:
        found = [u for u in updates if u.version == to]
        if not found:
            raise RollbackError(
                f"version {to} does not exist in the history of stack {stack} "
                f"(versions {updates[0].version}-{updates[-1].version}; list them: python -m stacks rollback {stack} --list)"
            )
        target = found[0]
        if target.kind != "update":
            raise RollbackError(
                f"version {to} is a {target.kind}, not an update: only an update's config was deployed; "
                f"{_suggest(deployments)}"
            )
        if not target.succeeded:
            raise RollbackError(
                f"version {to} did not succeed (result: {target.result or 'unknown'}); "
                f"roll back to a successful update: {_suggest(deployments)}"
            )
        return target, current
    earlier = [u for u in deployments if u.version < current.version and u.succeeded]
    if not earlier:
        raise RollbackError(
            f"stack {stack} has no successful update before its latest, {current.describe()}; "
            "there is nothing to roll back to"
        )
    return earlier[-1], current


def history_lines(updates: Sequence[Update], current: Update | None = None) -> list[str]:
    """The history as `rollback --list` prints it, newest first, with the numbers `--to` takes."""
    lines = []
    for u in reversed(updates):
        marks = " (current)" if current is not None and u.version == current.version else ""
        dirty = "+dirty" if u.git_dirty else ""
        commit = f"{u.git_head[:12]}{dirty}" if u.git_head else "-"
        lines.append(
            f"  v{u.version:<4} {u.kind:<8} {u.result:<10} {u.start_time:<25} {commit:<19} {u.message}{marks}".rstrip()
        )
    return lines


def _suggest(deployments: Sequence[Update]) -> str:
    ok = [u.version for u in deployments if u.succeeded]
    return f"successful updates: {', '.join(f'v{v}' for v in ok)}" if ok else "the stack has no successful update"


# --------------------------------------------------------------------------- config restore


@dataclass
class RestorePlan:
    target: Update
    current: Update
    new_text: str
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (full key, now, then)
    kept_secrets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _is_secure(node: Any) -> bool:
    return isinstance(node, Mapping) and set(node) == {"secure"}


def _config_string(value: Any) -> str:
    """How Pulumi stores a scalar stack-file value (every config value is a string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _scalar_from_history(text: str, current: Any) -> Any:
    """The history's string back as the YAML type the file used (or would naturally use)."""
    if isinstance(current, str) and current is not ye.MISSING:
        return text
    if text in ("true", "false") and (isinstance(current, bool) or current is ye.MISSING):
        return text == "true"
    if re.fullmatch(r"-?\d+", text) and (
        (isinstance(current, int) and not isinstance(current, bool)) or current is ye.MISSING
    ):
        return int(text)
    return text


def plan_restore(
    current_text: str,
    target: Update,
    current: Update,
    *,
    stack: str,
    head: str | None,
    project: str = NAMESPACE,
) -> RestorePlan:
    """The stack file that re-creates `target`'s config, and what to tell the user.

    Non-secret keys become exactly what the target update ran with (keys it did
    not have are removed); `secure:` values of the current file are kept as they
    are, since the history holds no secret values.
    """
    file_name = f"Pulumi.{stack}.yaml"
    try:
        doc = ye.load(current_text)
    except ye.YAMLError as exc:
        raise RollbackError(f"{file_name}: invalid YAML: {exc}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise RollbackError(f"{file_name}: a stack file is a mapping with a 'config:' key")
    if doc.get("config") is None:
        doc["config"] = CommentedMap()
    config = doc["config"]
    if not isinstance(config, CommentedMap):
        raise RollbackError(f"{file_name}: config: must be a mapping of 'k8s-platform:<key>: value'")
    plan = RestorePlan(target=target, current=current, new_text=current_text)

    def full(key: str) -> str:
        return key if ":" in key else f"{project}:{key}"

    file_keys = {full(str(k)): k for k in config}
    for key in [k for k in list(config) if full(str(k)) not in target.config]:
        if _is_secure(config[key]):
            plan.kept_secrets.append(full(str(key)))
            plan.warnings.append(
                f"{full(str(key))}: a secret that v{target.version} did not have; kept (rollback never removes secrets)"
            )
            continue
        plan.changes.append((full(str(key)), ye.plain(config[key]), ye.MISSING))
        ye.sync_key(config, key, ye.MISSING)

    in_file_order = sorted(target.config, key=lambda k: list(file_keys).index(k) if k in file_keys else len(file_keys))
    for key in in_file_order:
        recorded = target.config[key]
        file_key = file_keys.get(key, key)
        now = config.get(file_key, ye.MISSING)
        if recorded.secret:
            if now is ye.MISSING:
                name = key.split(":", 1)[-1]
                plan.problems.append(
                    Problem(
                        key,
                        f"was a secret in v{target.version} and is not in {file_name} now; the history never holds "
                        f"secret values: set it first (pulumi config set --secret {name} --stack {stack})",
                    )
                )
            elif _is_secure(now):
                plan.kept_secrets.append(key)
            else:
                plan.warnings.append(
                    f"{key}: was a secret in v{target.version}, is plain text now; kept the current value"
                )
            continue
        if _is_secure(now):
            plan.kept_secrets.append(key)
            plan.warnings.append(
                f"{key}: was plain text in v{target.version}, is a secret now; kept the secret (never written back in clear)"
            )
            continue
        then = recorded.value
        if isinstance(then, Mapping | list):
            if now is not ye.MISSING and ye.same(ye.plain(now), then):
                continue
            plan.changes.append((key, ye.plain(now), then))
            ye.sync_key(config, file_key, then)
        else:
            text = _config_string(then)
            if now is not ye.MISSING and not isinstance(now, Mapping | list) and _config_string(now) == text:
                continue
            value = _scalar_from_history(text, now)
            plan.changes.append((key, ye.plain(now), value))
            ye.sync_key(config, file_key, value)

    if plan.kept_secrets:
        names = ", ".join(sorted({k.split(":", 1)[-1] for k in plan.kept_secrets}))
        plan.warnings.append(
            f"secrets are not restored (the history has no secret values): kept the current {names}; "
            f"if one was rotated after v{target.version}, the rotated value is deployed"
        )
    if not target.git_head:
        plan.warnings.append(f"v{target.version} recorded no git commit: check the program matches what ran then")
    elif head and target.git_head != head:
        plan.warnings.append(
            f"v{target.version} was deployed by the program at commit {target.git_head}, HEAD is {head}: "
            f"this re-applies v{target.version}'s config with HEAD's program; to roll back the program too, "
            f"`git checkout {target.git_head}` (or revert the commits since) and rerun"
        )
    if target.git_dirty:
        plan.warnings.append(
            f"v{target.version} ran from a working tree with uncommitted changes: commit "
            f"{target.git_head[:12] or '?'} alone may not be the program that ran"
        )
    plan.new_text = ye.dump(doc) if plan.changes else current_text
    return plan


def format_value(value: Any, secret: bool = False) -> str:
    if secret:
        return "[secret]"
    if value is ye.MISSING:
        return "(unset)"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, separators=(", ", ": "))


def diff_lines(plan: RestorePlan) -> list[str]:
    """One line per changed leaf: `key.path: now → then`."""
    lines = []
    for key, now, then in plan.changes:
        short = key.removeprefix(f"{NAMESPACE}:")
        for path, old, new in ye.leaf_diffs(short, now, then):
            lines.append(f"  {path}: {format_value(old)} → {format_value(new)}")
    return lines


def _kube_version(text: str) -> str:
    doc = ye.load(text) or {}
    cluster = (doc.get("config") or {}).get(f"{NAMESPACE}:cluster") or {}
    return str(cluster.get("kubeVersion") or "") if isinstance(cluster, Mapping) else ""


def kube_version_downgrade(current_text: str, new_text: str) -> str | None:
    """Why writing `new_text` would downgrade Kubernetes, or None.

    Kubernetes does not support downgrades (etcd data, API versions, kubeadm): a rollback
    of the apps after an upgrade must not take the cluster back with it.
    """
    now, then = _kube_version(current_text).removeprefix("v"), _kube_version(new_text).removeprefix("v")
    if not now or not then or now == then:
        return None
    key = lambda v: tuple(int(x) for x in v.split(".") if x.isdigit())  # noqa: E731
    if key(then) < key(now):
        return (
            f"cluster.kubeVersion would go from {now} back to {then}: Kubernetes does not support downgrades. "
            "Roll back only what you mean to, e.g. --only apps.<name>,helm.releases.<name>"
        )
    return None

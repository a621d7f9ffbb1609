"""Promotion: copy what was tried in one environment into the next one's stack file.

`PROMOTABLE` is the one place that says which settings travel from
`Pulumi.<SRC>.yaml` to `Pulumi.<DST>.yaml`: what runs (images, chart versions,
chart values, the Kubernetes and kubespray versions). Everything else — nodes,
addresses, the control host, proxy and mirrors, replica counts, storage sizes,
`valuesFiles` (per-environment paths), secrets, `environment` — belongs to the
environment and is never touched.

Paths are dotted keys under `k8s-platform:`; `key[name]` walks a list whose
items are matched by their `name` between the two files. After a promotion every
promotable path of DST equals SRC's, including "unset" (SRC relying on a
default removes DST's override).

Items that exist only in SRC (an app or release DST does not have) are reported,
not created: a new app needs settings only DST's owner can choose (replicas,
service type, ingress host, resources).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap

from components.catalog import DEFAULT_ADDON_CHARTS
from stacks import yamledit as ye
from stacks.config import NAMESPACE, Problem
from stacks.plumbing import UsageError

PROMOTABLE: tuple[str, ...] = (
    "apps[name].image",
    "apps[name].initContainers[name].image",
    "helm.releases[name].version",
    "helm.releases[name].values",
    *(f"addons.{addon}.version" for addon in DEFAULT_ADDON_CHARTS),
    "mysql.image",
    "cluster.kubespray.version",
    # the commit the version must resolve to travels with it
    "cluster.kubespray.commit",
    "cluster.kubeVersion",
)

_SEGMENT = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9]*)(?P<named>\[name\])?$")


class PromotionError(Exception):
    """The promotion cannot be done; `problems` says why, one line each."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Change:
    path: str  # dotted, names instead of indexes: apps.my-nginx.image
    old: Any  # DST's value (MISSING when unset)
    new: Any  # SRC's value (MISSING when unset)


@dataclass
class Plan:
    src: str
    dst: str
    changes: list[Change] = field(default_factory=list)
    only_in_src: list[str] = field(default_factory=list)  # items DST lacks: reported, not created
    problems: list[Problem] = field(default_factory=list)
    new_text: str = ""  # DST after the promotion
    candidates: list[str] = field(default_factory=list)  # every promotable path found (changed or not)


def _segments(pattern: str) -> list[tuple[str, bool]]:
    out = []
    for part in pattern.split("."):
        m = _SEGMENT.match(part)
        if not m:
            raise ValueError(f"bad promotable path {pattern!r} at {part!r}")
        out.append((m.group("key"), bool(m.group("named"))))
    return out


def _config(doc: Any, label: str) -> Any:
    if doc is None or not isinstance(doc, Mapping):
        raise PromotionError([Problem(label, "a stack file is a mapping with a 'config:' key")])
    config = doc.get("config")
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise PromotionError([Problem(f"{label}: config", "must be a mapping of 'k8s-platform:<key>: value'")])
    return config


def _top_key(config: Mapping[str, Any] | None, key: str) -> str:
    """The key as written in the file: `k8s-platform:apps`, or the un-namespaced `apps`."""
    if config is not None and key in config and f"{NAMESPACE}:{key}" not in config:
        return key
    return f"{NAMESPACE}:{key}"


def _get(node: Any, key: str) -> Any:
    if isinstance(node, Mapping) and key in node:
        return node[key]
    return ye.MISSING


def _find_named(items: Any, name: str) -> Any:
    if not isinstance(items, list):
        return ye.MISSING
    found = [i for i in items if isinstance(i, Mapping) and i.get("name") == name]
    return found[0] if len(found) == 1 else ye.MISSING


def _names(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(i["name"]) for i in items if isinstance(i, Mapping) and isinstance(i.get("name"), str)]


@dataclass(frozen=True)
class _Hit:
    path: str  # display path
    steps: tuple[tuple[str, str | None], ...]  # (key, name) from the config root; name: pick list item
    src: Any
    dst: Any


def _walk(
    pattern: list[tuple[str, bool]],
    src: Any,
    dst: Any,
    path: str,
    steps: tuple[tuple[str, str | None], ...],
    only_in_src: dict[str, None],
    problems: list[Problem],
    labels: tuple[str, str],
) -> Iterator[_Hit]:
    (key, named), rest = pattern[0], pattern[1:]
    file_key = key
    here = f"{path}.{key}" if path else key
    src_value, dst_value = _get(src, file_key), _get(dst, file_key)
    if not named:
        if not rest:
            yield _Hit(here, (*steps, (file_key, None)), src_value, dst_value)
            return
        for node, label in ((src_value, labels[0]), (dst_value, labels[1])):
            if node is not ye.MISSING and node is not None and not isinstance(node, Mapping):
                problems.append(Problem(here, f"must be a mapping in {label}, not {type(node).__name__}"))
                return
        yield from _walk(rest, src_value, dst_value, here, (*steps, (file_key, None)), only_in_src, problems, labels)
        return
    src_names, dst_names = _names(src_value), _names(dst_value)
    for names, label in ((src_names, labels[0]), (dst_names, labels[1])):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(
                Problem(here, f"{label} has more than one item named {dupes[0]!r}; promotion matches items by name")
            )
            return
    for name in src_names:
        item_path = f"{here}.{name}"
        if name not in dst_names:
            only_in_src[item_path] = None
            continue
        yield from _walk(
            rest,
            _find_named(src_value, name),
            _find_named(dst_value, name),
            item_path,
            (*steps, (file_key, name)),
            only_in_src,
            problems,
            labels,
        )


def _has_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return set(value) == {"secure"} or any(_has_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secret(v) for v in value)
    return False


def _detached(node: Any) -> Any:
    """A copy of a SRC node without its comments (they describe SRC), scalars kept as written."""
    if isinstance(node, Mapping):
        return {k: _detached(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_detached(v) for v in node]
    return node


def _apply(dst_config: Any, hit: _Hit) -> None:
    """Make DST's value at `hit.steps` equal SRC's, creating intermediate mappings as needed."""
    node = dst_config
    target = ye.MISSING if hit.src is ye.MISSING else _detached(hit.src)
    steps = list(hit.steps)
    for i, (key, name) in enumerate(steps):
        last = i == len(steps) - 1
        if name is not None:
            node = _find_named(node[key], name)  # exists: only items present in both are walked
            continue
        if last:
            ye.sync_key(node, key, target)
            return
        if key not in node or node[key] is None:
            if target is ye.MISSING:
                return
            nested: Any = target
            for later_key, _ in reversed(steps[i + 1 :]):
                nested = {later_key: nested}
            ye.sync_key(node, key, nested)
            return
        node = node[key]


def plan_promotion(
    src_text: str,
    dst_text: str,
    *,
    src: str = "SRC",
    dst: str = "DST",
    only: Sequence[str] = (),
) -> Plan:
    """Compute what promoting SRC into DST changes, and DST's new text. Writes nothing.

    Raises `UsageError` when an `only` selector matches no promotable setting.
    """
    plan = Plan(src=src, dst=dst)
    try:
        src_doc = ye.load(src_text)
        dst_doc = ye.load(dst_text)
    except ye.YAMLError as exc:
        raise PromotionError([Problem("stack file", f"invalid YAML: {exc}")]) from None
    src_config = _config(src_doc, src)
    dst_config = _config(dst_doc, dst)
    src_view = {} if src_config is None else src_config
    dst_view = {} if dst_config is None else dst_config

    only_in_src: dict[str, None] = {}
    hits: list[_Hit] = []
    for pattern in PROMOTABLE:
        segments = _segments(pattern)
        top, _ = segments[0]
        src_top = _get(src_view, _top_key(src_config, top))
        dst_top = _get(dst_view, _top_key(dst_config, top))
        # the first segment is a config key; walk the rest below it
        wrapped_src = {top: src_top} if src_top is not ye.MISSING else {}
        wrapped_dst = {top: dst_top} if dst_top is not ye.MISSING else {}
        for hit in _walk(segments, wrapped_src, wrapped_dst, "", (), only_in_src, plan.problems, (src, dst)):
            first_key, first_name = hit.steps[0]
            steps = ((_top_key(dst_config, first_key), first_name), *hit.steps[1:])
            hits.append(_Hit(hit.path, steps, hit.src, hit.dst))

    plan.candidates = [h.path for h in hits] + list(only_in_src)
    selectors = [_normalize_selector(s) for s in only]
    for selector in selectors:
        if not any(_selected(path, [selector]) for path in plan.candidates):
            raise UsageError(
                f"--only {selector}: matches no promotable setting of {src}; promotable: "
                + ", ".join(sorted({_top_selector(p) for p in plan.candidates}) or ["(none)"])
            )
    if selectors:
        hits = [h for h in hits if _selected(h.path, selectors)]
        plan.only_in_src = [p for p in only_in_src if _selected(p, selectors)]
        explicit_missing = [s for s in selectors if all(not _selected(h.path, [s]) for h in hits)]
        for selector in explicit_missing:
            plan.problems.append(
                Problem(selector, f"exists only in {src}; add it to {dst} with {dst}'s own settings first")
            )
    else:
        plan.only_in_src = list(only_in_src)

    changed = [h for h in hits if not ye.same(h.src, h.dst)]
    for hit in changed:
        if _has_secret(hit.src):
            plan.problems.append(
                Problem(
                    hit.path,
                    f"holds a secret (secure:) in {src}; secrets are per stack and never promoted: "
                    f"set it in {dst} with pulumi config set --path --secret",
                )
            )
        elif _has_secret(hit.dst):
            plan.problems.append(
                Problem(hit.path, f"holds a secret (secure:) in {dst} that promoting {src}'s value would remove")
            )
    if plan.problems:
        return plan
    if dst_config is None and changed:
        dst_doc["config"] = CommentedMap()
        dst_config = dst_doc["config"]
    for hit in changed:
        _apply(dst_config, hit)
        plan.changes.append(Change(hit.path, ye.plain(hit.dst), ye.plain(hit.src)))
    plan.new_text = ye.dump(dst_doc) if changed else dst_text
    return plan


def _normalize_selector(selector: str) -> str:
    """`apps[my-nginx].image` and `apps.my-nginx.image` both name the same setting."""
    selector = selector.strip().removeprefix(f"{NAMESPACE}:")
    return re.sub(r"\[([^\]]+)\]", r".\1", selector).strip(".")


def _selected(path: str, selectors: Sequence[str]) -> bool:
    return any(path == s or path.startswith(s + ".") for s in selectors)


def _top_selector(path: str) -> str:
    parts = path.split(".")
    if parts[0] in ("apps",) and len(parts) > 1:
        return ".".join(parts[:2])
    if parts[:2] == ["helm", "releases"] and len(parts) > 2:
        return ".".join(parts[:3])
    return path


# --------------------------------------------------------------------------- diff text


def _fmt(value: Any) -> str:
    if value is ye.MISSING:
        return "(unset)"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def diff_lines(plan: Plan) -> list[str]:
    lines = []
    for change in plan.changes:
        for path, old, new in ye.leaf_diffs(change.path, change.old, change.new):
            lines.append(f"  {path}: {_fmt(old)} → {_fmt(new)}")
    return lines


# --------------------------------------------------------------------------- validate + write

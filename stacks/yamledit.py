"""Round-trip edits of `Pulumi.<stack>.yaml`: change values, keep every other byte.

`promote` and `rollback` rewrite stack files that people also edit by hand, so
comments, key order, flow style (`{name: node1, ...}`, `[a, b]`), quoting and
`secure:` values must survive. ruamel.yaml's round-trip mode keeps them for
untouched nodes; `sync` changes a node into a target value while reusing every
node that already has the right content, and moves the comment that follows a
changed subtree (ruamel attaches "the comment before the next key" to the last
leaf before it) so it stays in front of the key it was written for.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.tokens import CommentToken

__all__ = ["MISSING", "YAMLError", "dump", "leaf_diffs", "load", "plain", "same", "sync", "sync_key"]


class _Missing:
    def __repr__(self) -> str:
        return "(unset)"


MISSING: Any = _Missing()


def _yaml() -> YAML:
    y = YAML()  # round-trip
    y.preserve_quotes = True
    y.width = 4096  # never fold the long `secure:` ciphertexts
    y.indent(mapping=2, sequence=4, offset=2)  # the layout of the project's stack files
    return y


def load(text: str) -> Any:
    return _yaml().load(text)


def dump(doc: Any) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def plain(node: Any) -> Any:
    """The node as plain Python data (dict, list, str, int, float, bool, None)."""
    if isinstance(node, Mapping):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def same(a: Any, b: Any) -> bool:
    """Equal as data, with bool and int kept apart (YAML `true` is not `1`)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(plain(a)) is type(plain(b)) and plain(a) == plain(b)


def _is_block(node: Any) -> bool:
    return isinstance(node, CommentedMap | CommentedSeq) and len(node) > 0 and not node.fa.flow_style()


def _slot(container: Any) -> int:
    # ruamel keeps the comment after a mapping value at items[key][2], after a sequence item at items[i][0]
    return 2 if isinstance(container, CommentedMap) else 0


def _last_key(node: Any) -> Any:
    return list(node.keys())[-1] if isinstance(node, CommentedMap) else len(node) - 1


def _take_trailing(container: Any, key: Any) -> str:
    """Remove and return the full-line comments that follow the subtree at `container[key]`.

    An end-of-line comment on the last line stays where it is; only the lines
    after it (which describe whatever comes next) are taken.
    """
    value = container[key]
    if _is_block(value):
        return _take_all(value)
    entry = container.ca.items.get(key)
    slot = _slot(container)
    if not entry or len(entry) <= slot or entry[slot] is None:
        return ""
    token = entry[slot]
    text: str = token.value
    head, sep, rest = text.partition("\n")
    if not sep:
        return ""
    if head.strip():  # an end-of-line comment: keep it, take what follows
        token.value = head + "\n"
        return rest
    entry[slot] = None
    return rest


def _take_all(node: Any) -> str:
    """Remove and return the comment lines after a block collection's last entry."""
    if not _is_block(node):
        return ""
    taken = _take_trailing(node, _last_key(node))
    if node.ca.end:
        for token in node.ca.end:
            taken += " " * (token.column or 0) + token.value if not token.value.startswith("\n") else token.value[1:]
        node.ca.end = []
    return taken


def _put_all(node: Any, text: str) -> None:
    if text and isinstance(node, CommentedMap | CommentedSeq) and len(node):
        _put_trailing(node, _last_key(node), text)


def _put_trailing(container: Any, key: Any, text: str) -> None:
    """Attach comment lines after the subtree at `container[key]` (inverse of `_take_trailing`)."""
    if not text:
        return
    value = container[key]
    if (
        isinstance(value, Mapping | list)
        and value
        and not _is_block(value)
        and not isinstance(value, CommentedMap | CommentedSeq)
    ):
        value = _commented(value)
        container[key] = value
    if _is_block(value):
        _put_trailing(value, _last_key(value), text)
        return

    slot = _slot(container)
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    if entry[slot] is not None:
        entry[slot].value = entry[slot].value.rstrip("\n") + "\n" + text
    else:
        entry[slot] = CommentToken("\n" + text, CommentMark(0), None)


def _commented(value: Any) -> Any:
    """Plain data as ruamel containers (block style), so comments can be attached."""
    if isinstance(value, Mapping):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _commented(v)
        return out
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


def _named(items: list[Any]) -> bool:
    names = [i.get("name") for i in items if isinstance(i, Mapping)]
    return len(names) == len(items) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def sync(node: Any, target: Any) -> Any:
    """Return `node` changed to equal `target`, reusing every part that already does.

    Mappings are edited in place (existing keys keep their position, new keys are
    appended, missing keys removed). Lists whose items are mappings with unique
    `name`s are matched by name, other lists item by item. Anything else that
    differs is replaced by the target value.
    """
    if same(node, target):
        return node
    if isinstance(node, CommentedMap) and isinstance(target, Mapping):
        whole = _take_all(node)
        for key in [k for k in node if k not in target]:
            _delete(node, key)
        for key, value in target.items():
            sync_key(node, key, value)
        _put_all(node, whole)
        return node
    if isinstance(node, CommentedSeq) and isinstance(target, list):
        whole = _take_all(node)
        if _named(list(node)) and _named(target) and [i["name"] for i in target] != [i["name"] for i in node]:
            by_name = {item["name"]: item for item in node}
            rebuilt = CommentedSeq()
            if node.fa.flow_style():
                rebuilt.fa.set_flow_style()
            for item in target:
                old = by_name.get(item["name"])
                rebuilt.append(sync(old, item) if old is not None else _commented(item))
            node = rebuilt
        else:
            while len(node) > len(target):
                node.ca.items.pop(len(node) - 1, None)
                del node[-1]
            for i, item in enumerate(target):
                if i < len(node):
                    _sync_index(node, i, item)
                else:
                    node.append(_commented(item))
        _put_all(node, whole)
        return node
    return _commented(target) if isinstance(target, Mapping | list) else target


def _sync_index(seq: CommentedSeq, i: int, target: Any) -> None:
    if same(seq[i], target):
        return
    trailing = _take_trailing(seq, i)
    seq[i] = sync(seq[i], target)
    _put_trailing(seq, i, trailing)


def sync_key(mapping: CommentedMap, key: str, target: Any) -> None:
    """Set `mapping[key]` to `target` (MISSING removes it), keeping surrounding comments in place."""
    if (target is MISSING and key not in mapping) or (key in mapping and same(mapping[key], target)):
        return
    whole = _take_all(mapping)
    if target is MISSING:
        _delete(mapping, key)
    elif key in mapping:
        trailing = _take_trailing(mapping, key)
        mapping[key] = sync(mapping[key], target)
        _put_trailing(mapping, key, trailing)
    else:
        mapping[key] = _commented(target) if isinstance(target, Mapping | list) else target
    _put_all(mapping, whole)


def _delete(mapping: CommentedMap, key: str) -> None:
    keys = list(mapping.keys())
    trailing = _take_trailing(mapping, key)
    index = keys.index(key)
    del mapping[key]
    mapping.ca.items.pop(key, None)
    if trailing and index > 0:
        _put_trailing(mapping, keys[index - 1], trailing)


def leaf_diffs(path: str, old: Any, new: Any) -> Iterator[tuple[str, Any, Any]]:
    """Differences between two values as (dotted path, old, new), one per changed leaf of nested mappings."""
    if isinstance(old, Mapping) and new is MISSING and old:
        new = {}
    if isinstance(new, Mapping) and old is MISSING and new:
        old = {}
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in list(old) + [k for k in new if k not in old]:
            o, n = old.get(key, MISSING), new.get(key, MISSING)
            if not same(o, n):
                yield from leaf_diffs(f"{path}.{key}", o, n)
        return
    if isinstance(old, list) and isinstance(new, list) and old and new and _named(old) and _named(new):
        before = {item["name"]: item for item in old}
        after = {item["name"]: item for item in new}
        for name in list(before) + [n for n in after if n not in before]:
            o, n = before.get(name, MISSING), after.get(name, MISSING)
            if not same(o, n):
                yield from leaf_diffs(f"{path}.{name}", o, n)
        return
    yield path, old, new

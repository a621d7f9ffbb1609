"""The base of every component's config model, and how a model's errors reach users.

A component owns the model of its piece of a stack's `k8s-platform:` config (a pydantic v2
model: camelCase keys, unknown keys refused, field descriptions that become the stack
file's JSON Schema) and builds its `Args` from it. This module gives those models their
shared field types and turns a `ValidationError` into the project's error contract:

- every problem at once, as `Problem(<key.path>, <message>)`;
- the project's own words ("must be a whole number, not a string", "unknown key (did you
  mean 'addresses'?)"), never pydantic's, and never the input value: pydantic's own
  `str(ValidationError)` prints `input_value=…`, and secrets pass through config;
- rules that span fields (`ConfigModel.checks`) still report when an unrelated field is
  wrong: a section that fails is validated again without the wrong keys, so its defaults
  stand in for them, the way a user would expect the rest of the file to be checked.

Values come from YAML and from `pulumi config set`, which stores strings: `"true"` and
`"false"` are read as booleans and `"3"` as 3; `"yes"` is not a boolean and `1.5` is not
a whole number.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from types import UnionType
from typing import Annotated, Any, ClassVar, NoReturn, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# --------------------------------------------------------------------------- vocabulary


class SecretMarker:
    """Stands for a value that was set as a secret (`secure:`); carries no plaintext."""

    def __repr__(self) -> str:
        return "<secret>"


SECRET = SecretMarker()


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        # Paths carry keys from the file, which may hold a newline: keep one problem per line.
        path = self.path if self.path.isprintable() else repr(self.path)[1:-1]
        return f"{path}: {self.message}"


def type_name(value: Any) -> str:
    """What a user typed, in words ("a string", "a list"), never the value itself."""
    if isinstance(value, SecretMarker):
        return "a secret"
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "a mapping" if isinstance(value, Mapping) else type(value).__name__
    )


# the old names users still type, and what they are called now
_RENAMED = {"master": "control-plane", "kube-master": "control-plane", "kube_control_plane": "control-plane",
            "node": "worker", "kube-node": "worker", "kube_node": "worker"}  # fmt: skip


def did_you_mean(value: str, candidates: Sequence[str]) -> str:
    if _RENAMED.get(value) in candidates:
        return f" (did you mean {_RENAMED[value]!r}? '{value}' is the old name)"
    lowered = {c.lower(): c for c in candidates}
    if value.lower() in lowered:
        return f" (did you mean {lowered[value.lower()]!r}?)"
    close = difflib.get_close_matches(value, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key:
        return path
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------- field types

_ERROR = "k8s_platform"


def reject(message: str, key: str = "") -> NoReturn:
    """Fail validation with the project's own message (under `key` below the value's path)."""
    raise PydanticCustomError(_ERROR, "{message}", {"message": message, "key": key})


def checked(check: Callable[[str], str | None]) -> AfterValidator:
    """A text check (message or None) as a validator; an empty value is not checked."""

    def run(value: str) -> str:
        if value != "" and (message := check(value)):
            reject(message)
        return value

    return AfterValidator(run)


def _text_in(value: Any) -> Any:
    if isinstance(value, SecretMarker):
        reject("is not a secret setting; set it in plain text")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _flag_in(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _whole_in(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def list_in(value: Any) -> Any:
    if not isinstance(value, list):
        reject(f"must be a list, not {type_name(value)}")
    return value


def _mapping_in(value: Any) -> Any:
    if not isinstance(value, Mapping):
        reject(f"must be a mapping, not {type_name(value)}")
    if not all(isinstance(k, str) for k in value):
        reject("keys must be strings")
    return dict(value)


# a string; numbers are read as their text (`version: 1.10`), booleans and secrets are not
Text = Annotated[str, BeforeValidator(_text_in), Strict(), WithJsonSchema({"type": ["string", "number"]})]
# true/false (also the strings pulumi config set stores)
Flag = Annotated[
    bool,
    BeforeValidator(_flag_in),
    Strict(),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": ["true", "false"]}]}),
]
# any mapping with string keys (Helm values, extra variables): its content is the tool's to read
AnyMap = Annotated[dict[str, Any], BeforeValidator(_mapping_in), WithJsonSchema({"type": "object"})]


def _text_map_in(value: Any) -> Any:
    if not isinstance(value, Mapping):
        reject(f"must be a mapping, not {type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            reject(f"keys must be strings, not {type_name(key)}")
    return dict(value)


# a mapping of strings to strings (labels, mirrors, env)
TextMap = Annotated[
    dict[str, Text],
    BeforeValidator(_text_map_in),
    WithJsonSchema({"type": "object", "additionalProperties": {"type": ["string", "number"]}}),
]


def _not_empty(value: str) -> str:
    if value == "":
        reject("is required")
    return value


# a string that must be given and not be empty
Required = AfterValidator(_not_empty)


def whole(minimum: int | None = None, maximum: int | None = None) -> Any:
    """A whole number (also its digits as a string, as pulumi config set stores it) within
    bounds (inclusive)."""
    bounds = {k: v for k, v in (("minimum", minimum), ("maximum", maximum)) if v is not None}
    return Annotated[
        int,
        BeforeValidator(_whole_in),
        Strict(),
        Field(ge=minimum, le=maximum),
        WithJsonSchema({"anyOf": [{"type": "integer", **bounds}, {"type": "string", "pattern": "^-?[0-9]+$"}]}),
    ]

def text_list(check: Callable[[str], str | None] | None = None) -> Any:
    """A list of strings, each checked."""
    item: Any = Annotated[Text, checked(check)] if check else Text
    return Annotated[tuple[item, ...], BeforeValidator(list_in)]


def choice(*values: str, required: bool = False) -> Any:
    """One of `values` (a did-you-mean for anything else); `required`: not empty either."""

    def check(value: str) -> str:
        if required and value == "":
            reject("is required")
        if value not in values:
            reject(f"{value!r} is not one of {', '.join(values)}{did_you_mean(value, values)}")
        return value

    return Annotated[str, BeforeValidator(_text_in), Strict(), AfterValidator(check), WithJsonSchema({"enum": list(values)})]


def items(model: Any) -> Any:
    """A list of mappings, each read by `model`."""
    return Annotated[tuple[model, ...], BeforeValidator(list_in)]


# --------------------------------------------------------------------------- the base model


@dataclass
class Findings:
    """What a section's cross-field checks found: problems stop a deployment, warnings do not."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # what the rules may depend on beyond the section (the environment, the project root)
    context: Mapping[str, Any] = field(default_factory=dict)

    def error(self, key: str, message: str) -> None:
        self.problems.append(Problem(join_path(self.path, key), message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(Problem(join_path(self.path, key), message))

    def under(self, key: str | int) -> Findings:
        """The same findings, for the value at `key` below this path."""
        return Findings(join_path(self.path, key), self.problems, self.warnings, self.context)

    def problems_under(self, key: str = "") -> bool:
        """Whether a problem was already recorded at `key` or below it (a check on a value
        that was wrong, and replaced by its default, would only repeat it)."""
        path = join_path(self.path, key)
        return any(p.path == path or p.path.startswith((f"{path}.", f"{path}[")) for p in self.problems)


class ConfigModel(BaseModel):
    """A component's piece of the stack config: camelCase keys, no unknown key, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        hide_input_in_errors=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _a_mapping_without_nulls(cls, data: Any) -> Any:
        # `key:` with nothing after it (null) means "not set": the default applies
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, Mapping):
            reject(f"must be a mapping (key: value), not {type_name(data)}")
        return {k: v for k, v in data.items() if v is not None}

    # what an unknown key is called here, when "unknown key (did you mean …)" would not help
    unknown_key: ClassVar[str] = ""

    def checks(self, found: Findings) -> None:
        """Rules across this section's fields (and its children's); none by default."""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.alias or name for name, f in cls.model_fields.items()]


M = TypeVar("M", bound=ConfigModel)
A = TypeVar("A")


def build(args_type: type[A], model: BaseModel, **overrides: Any) -> A:
    """The component's args (a dataclass) from the model's fields of the same names; what the
    model holds differently (nested parts, defaults that depend on the stack) is in `overrides`."""
    fields = type(model).model_fields
    values = {
        f.name: getattr(model, f.name)
        for f in dataclass_fields(args_type)  # type: ignore[arg-type]
        if f.name in fields and f.name not in overrides
    }
    return args_type(**values, **overrides)


def _model_in(annotation: Any) -> type[ConfigModel] | None:
    """The ConfigModel an annotation holds (through Annotated, Optional, tuple, dict)."""
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
        return annotation
    origin = get_origin(annotation)
    if origin is Annotated:
        return _model_in(get_args(annotation)[0])
    if origin in (Union, UnionType, tuple, list, dict):
        for arg in get_args(annotation):
            if (found := _model_in(arg)) is not None:
                return found
    return None


def _model_at(model: type[ConfigModel], loc: Sequence[str | int]) -> type[ConfigModel] | None:
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        if part not in fields:
            return None
        inner = _model_in(fields[part].annotation)
        if inner is None:
            return None
        model = inner
    return model


def _message(error: Mapping[str, Any], model: type[ConfigModel]) -> tuple[str, str]:
    """(key below the error's location, message) in the project's words."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    loc = error["loc"]
    if kind == _ERROR:
        return ctx.get("key", ""), ctx["message"]
    if kind == "missing":
        return "", "is required"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        if parent is not None and parent.unknown_key:
            return "", parent.unknown_key.format(key=str(loc[-1]))
        return "", "unknown key" + did_you_mean(str(loc[-1]), parent.keys() if parent else [])
    if kind == "bool_type":
        return "", f"must be true or false, not {type_name(value)}"
    if kind in ("int_type", "int_from_float"):
        return "", f"must be a whole number, not {type_name(value)}"
    if kind == "string_type":
        return "", f"must be a string, not {type_name(value)}"
    if kind == "greater_than_equal":
        return "", f"must be at least {ctx['ge']}, got {value}"
    if kind == "less_than_equal":
        return "", f"must be at most {ctx['le']}, got {value}"
    # a kind the project has no words for yet: pydantic's message, which never holds the value
    text = str(error.get("msg", "is not valid"))
    return "", text[:1].lower() + text[1:]


def problems_of(exc: ValidationError, model: type[ConfigModel], path: str) -> list[Problem]:
    out: list[Problem] = []
    for error in exc.errors(include_url=False, include_context=True, include_input=True):
        where = path
        # a mapping's key that is wrong: the message names the key, the path is the mapping's
        for part in _entry_loc(tuple(error["loc"]))[:-1] if error["loc"][-1:] == (KEY_LOC,) else error["loc"]:
            where = join_path(where, part)
        key, message = _message(error, model)
        out.append(Problem(join_path(where, key) if key else where, message))
    return out


# where pydantic places an error about a mapping's key (after the key itself)
KEY_LOC = "[key]"


def _entry_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The location of the mapping entry a key error is about (the key, without the marker)."""
    return loc[:-1] if loc[-1:] == (KEY_LOC,) else loc


def _without(data: Any, locs: Iterator[tuple[str | int, ...]]) -> tuple[Any, bool, bool]:
    """`data` without the values at `locs`: (data, whether anything was removed, whether a
    list item was, which shifts the indices of the items after it)."""
    # a value that is not a mapping at all: its defaults stand in for the whole of it
    replaced = not isinstance(data, Mapping)
    data = copy.deepcopy(dict(data)) if isinstance(data, Mapping) else {}
    removed, shifted = replaced, False
    # deepest first, and the last index of a list first, so earlier removals move nothing
    order = sorted(set(locs), key=lambda loc: [(0, p) if isinstance(p, int) else (1, p) for p in loc], reverse=True)
    for loc in order:
        if not loc:
            return {}, replaced or bool(data), False
        parent: Any = data
        for part in loc[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = loc[-1]
        if isinstance(parent, dict) and last in parent:
            del parent[last]
            removed = True
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
            removed = shifted = True
    return data, removed, shifted


def run_checks(section: ConfigModel, found: Findings) -> None:
    """A model's cross-field checks, its children's first (each under its own path)."""
    for name, info in type(section).model_fields.items():
        value, key = getattr(section, name), info.alias or name
        if isinstance(value, ConfigModel):
            run_checks(value, found.under(key))
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if isinstance(item, ConfigModel):
                    run_checks(item, found.under(key).under(index))
        elif isinstance(value, Mapping):
            for item_key, item in value.items():
                if isinstance(item, ConfigModel):
                    run_checks(item, found.under(key).under(str(item_key)))
    section.checks(found)


def validate_section(
    model: type[M], raw: Any, path: str, found: Findings, *, context: Mapping[str, Any] | None = None
) -> M | None:
    """Validate one section, recording its problems in `found` under `path`.

    Returns the model, with defaults standing in for wrong values, so that its cross-field
    `checks` and the rules that span sections still run; None when it cannot be built
    (a required key is missing or wrong). When an item of a list had to be dropped, the
    section's own checks are skipped: they would name the items after it by the wrong index."""
    data = {} if raw is None else raw
    context = dict(context or {})
    shifted = False
    for attempt in range(6):  # each attempt removes at least one wrong value
        try:
            section = model.model_validate(data, context=context)
        except ValidationError as exc:
            if attempt == 0:  # later attempts only look for defaults; the user's mistakes are these
                found.problems.extend(problems_of(exc, model, path))
            locs = []
            for error in exc.errors(include_url=False):
                loc = tuple(error["loc"])
                # a missing key: drop the mapping that needs it (its parent falls back to a default)
                # a wrong key of a mapping: drop its entry
                locs.append(loc[:-1] if error["type"] == "missing" else _entry_loc(loc))
            data, removed, dropped = _without(data, iter(locs))
            shifted = shifted or dropped
            if not removed:
                return None
            continue
        if not shifted:
            run_checks(section, Findings(path, found.problems, found.warnings, context))
        return section
    return None

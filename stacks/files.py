"""Read stack config from `Pulumi.<stack>.yaml` files or from the running Pulumi program.

Both paths produce the same `{key: value}` mapping (namespace stripped) in which
secret values are replaced by `config.SECRET`, so `parse_config` never sees a
secret's plaintext and the CLI validates exactly what `pulumi preview` validates.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from components.mysql_config import MySQLSpec, password_limits, password_problem
from stacks.config import NAMESPACE, SECRET, ConfigError, PlatformSpec, Problem, parse_config, strip_namespace

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def stack_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def _unsecure(value: Any) -> Any:
    """Replace `{secure: ...}` leaves with the SECRET marker, recursively."""
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return SECRET
        return {k: _unsecure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecure(v) for v in value]
    return value


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; syntax errors become a ConfigError naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "no such stack file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), f"is not UTF-8 text (byte {exc.start + 1} cannot be decoded)")]) from None
    except OSError as exc:
        raise ConfigError([Problem(str(path), f"cannot read: {exc.strerror}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([Problem(str(path), f"{problem}{where}")]) from None
    except RecursionError:
        raise ConfigError(
            [Problem(str(path), "is nested too deeply to load (or a YAML alias refers to itself)")]
        ) from None
    except ValueError as exc:  # a scalar YAML cannot convert, e.g. the date 2026-13-45 or a 5000-digit number
        raise ConfigError([Problem(str(path), f"a value cannot be loaded: {str(exc).split(';')[0]}")]) from None


def config_from_file(path: Path) -> dict[str, Any]:
    """The `k8s-platform:` keys of a stack file, secrets as markers."""
    doc = load_yaml(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError([Problem(str(path), "a stack file is a mapping with a 'config:' key")])
    unknown = [
        k for k in doc if k not in ("config", "secretsprovider", "encryptionsalt", "encryptedkey", "environment")
    ]
    if unknown:
        raise ConfigError(
            [Problem(str(path), f"unknown top-level key {unknown[0]!r}; stack settings go under 'config:'")]
        )
    config = doc.get("config") or {}
    if not isinstance(config, Mapping):
        raise ConfigError([Problem("config", "must be a mapping of 'k8s-platform:<key>: value'")], str(path))
    try:
        unsecured = _unsecure(config)
    except RecursionError:
        raise ConfigError(
            [Problem(str(path), "a YAML alias refers to itself (or the file is nested too deeply)")]
        ) from None
    return strip_namespace(unsecured, str(path))


def load_spec_file(path: Path, root: Path = PROJECT_ROOT, secrets_required: bool = False) -> PlatformSpec:
    """The stack file's spec; secrets not set yet are warnings unless `secrets_required`."""
    return parse_config(
        config_from_file(path), project_root=root, source=str(path), secrets_required=secrets_required
    )


def runtime_config_stack() -> str:
    import pulumi  # only inside a Pulumi program: the CLI need not load pulumi

    return pulumi.get_stack()


def config_from_runtime() -> dict[str, Any]:
    """The `k8s-platform:` keys as the Pulumi engine passed them to this program.

    Values the engine hands over are strings (objects as JSON); secret keys are
    replaced by the marker so the plaintext goes no further than `pulumi.Config`.
    """
    from pulumi.runtime import config as runtime_config  # only inside a Pulumi program: the CLI need not load pulumi

    values = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys.update(k for k in values if runtime_config.is_config_secret(k))
    raw: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    # a key in a mistyped namespace (k8s_platform:mysql) is an error, not silently absent
    strip_namespace({k: None for k in values if not k.startswith(prefix)}, f"stack {runtime_config_stack()}")
    for full_key, value in values.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        if full_key in secret_keys:
            raw[key] = SECRET
            continue
        try:
            raw[key] = json.loads(value)
        except (TypeError, ValueError):
            raw[key] = value
    return raw


# The committed example stacks carry placeholder secrets that begin with this text.
PLACEHOLDER_PREFIX = "placeholder: replace with"


def secret_value_problems(rules: Mapping[str, Callable[[str], str | None]]) -> list[Problem]:
    """Problems with the values of secret keys (namespace stripped), by `rules[key](value)`.

    Reads the decrypted values the engine handed to the program, like `placeholder_secrets`;
    a problem names the key and what is wrong, never the value. The example stacks'
    placeholders are left to `placeholder_secrets` (they preview, and never deploy).
    """
    from pulumi.runtime import config as runtime_config  # only inside a Pulumi program: the CLI need not load pulumi

    values = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    problems = []
    for key, rule in sorted(rules.items()):
        value = values.get(f"{NAMESPACE}:{key}")
        if not isinstance(value, str) or value.startswith(PLACEHOLDER_PREFIX):
            continue
        message = rule(value)
        if message:
            problems.append(Problem(key, message))
    return problems


def mysql_password_problems(mysql: MySQLSpec) -> list[Problem]:
    """The MySQL passwords (root, replication, `mysql.users`) the cluster could not use, by
    `components.mysql_config.password_problem`: refused before any resource is registered,
    rather than found by a pod that never becomes ready."""
    if not mysql.enabled:
        return []
    return secret_value_problems(
        {key: functools.partial(password_problem, max_bytes=n) for key, n in password_limits(mysql).items()}
    )


def placeholder_secrets() -> list[str]:
    """Secret keys (namespace stripped) that still hold the example placeholder.

    Reads the decrypted value the engine handed to the program only to compare its
    prefix; the value itself is never returned or printed.
    """
    from pulumi.runtime import config as runtime_config  # only inside a Pulumi program: the CLI need not load pulumi

    values = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    prefix = f"{NAMESPACE}:"
    return sorted(
        key[len(prefix) :]
        for key, value in values.items()
        if key.startswith(prefix) and isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX)
    )

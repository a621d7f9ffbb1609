"""A Helm release's values as the program sends them, and the checks validation makes on them.

Values are `valuesFiles` (YAML, relative to the project root, deep-merged in order) with the
inline `values` deep-merged over them, as `helm install -f a -f b --set ...` would. Kept free
of the Pulumi SDK: `components/helm_release.py` sends these values, and `python -m stacks
validate` (through `components/helm_config.py`) checks the same merge without loading Pulumi.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from components.config_model import Findings


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge rule: maps merge key by key, recursively; lists and scalars replace."""
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_values_file(path: Path) -> dict[str, Any]:
    """One values file's mapping (empty file: {}); ValueError when it holds something else."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: a values file must hold a YAML mapping, got {type(loaded).__name__}")
    return dict(loaded)


def merged_values(values_files: Sequence[str], values: Mapping[str, Any], project_root: str | Path) -> dict[str, Any]:
    """The effective values of a release: values files in order, then inline values."""
    merged: dict[str, Any] = {}
    for rel in values_files:
        merged = deep_merge(merged, read_values_file(Path(project_root) / rel))
    return deep_merge(merged, values)


# Access modes that let one node (or one pod) use a volume: a claim in one of them cannot
# serve replicas spread over nodes.
_SINGLE_NODE_MODES = ("ReadWriteOnce", "ReadWriteOncePod")


def shared_claim_problem(values: Mapping[str, Any]) -> str | None:
    """Why `replicas` > 1 cannot share the one persistent claim these values ask for, or None.

    The convention of the grafana chart (and many others): top-level `replicas`, and
    `persistence.enabled` renders one PersistentVolumeClaim (`persistence.type: pvc`, the
    default) that every replica mounts, ReadWriteOnce unless `persistence.accessModes` says
    otherwise. Conservative: only what the values themselves show counts (an explicit
    `persistence.enabled: true`, an integer `replicas` above 1); a StatefulSet layout
    (`persistence.type: statefulset`/`sts`, `useStatefulSet: true`) gives each replica its
    own claim and is left alone.
    """
    replicas = values.get("replicas")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas <= 1:
        return None
    persistence = values.get("persistence")
    if not isinstance(persistence, Mapping) or persistence.get("enabled") is not True:
        return None
    if persistence.get("type", "pvc") != "pvc" or values.get("useStatefulSet") is True:
        return None
    modes = persistence.get("accessModes")
    if modes is None:
        how = "persistence.accessModes unset (the chart default, ReadWriteOnce)"
    elif isinstance(modes, list) and (single := [m for m in modes if m in _SINGLE_NODE_MODES]):
        how = f"persistence.accessModes {single[0]}"
    else:
        return None
    claim = "persistence.existingClaim" if persistence.get("existingClaim") else "one PersistentVolumeClaim"
    return (
        f"the merged values (valuesFiles, then values) set replicas: {replicas} with persistence.enabled and "
        f"{how}: every replica mounts {claim}, which "
        "a second node cannot attach and which replicas on one node share (for Grafana, one SQLite "
        "database); run replicas: 1, or keep the state in an external database with "
        "persistence.enabled: false, or use ReadWriteMany storage (persistence.accessModes: [ReadWriteMany] "
        "on a storage class that provides it)"
    )


def check_release_values(
    values_files: Sequence[str], values: Mapping[str, Any], project_root: str | Path, found: Findings
) -> None:
    """Read the release's values as the program will (each file must load as a mapping) and
    warn where they ask for more replicas than their storage can serve."""
    merged: dict[str, Any] = {}
    readable = True
    for i, rel in enumerate(values_files):
        try:
            merged = deep_merge(merged, read_values_file(Path(project_root) / rel))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            found.error(f"valuesFiles[{i}]", f"{rel!r} cannot be loaded: {problem}{where}")
            readable = False
        except UnicodeDecodeError as exc:
            found.error(f"valuesFiles[{i}]", f"{rel!r} is not UTF-8 text (byte {exc.start + 1} cannot be decoded)")
            readable = False
        except OSError as exc:
            found.error(f"valuesFiles[{i}]", f"{rel!r} cannot be read: {exc.strerror or exc}")
            readable = False
        except RecursionError:
            found.error(f"valuesFiles[{i}]", f"{rel!r} is nested too deeply to load (or a YAML alias refers to itself)")
            readable = False
        except ValueError as exc:  # not a mapping, or a scalar YAML cannot convert (a date like 2026-13-45)
            found.error(f"valuesFiles[{i}]", f"{rel!r} cannot be loaded: {str(exc).split(': ', 1)[-1]}")
            readable = False
    if readable and (message := shared_claim_problem(deep_merge(merged, values))):
        found.warn("values", message)

"""Config every workload's pods share: resource requests and limits, and which pods may
reach a service (NetworkPolicy peers). Read by MySQL's and apps' config models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema

from components.checks import label_check, parse_quantity
from components.config_model import ConfigModel, Findings, Required, Text, TextMap, checked, did_you_mean, list_in

# --------------------------------------------------------------------------- args: what the component receives

@dataclass(frozen=True)
class Resources:
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PeerSelector:
    """Pods allowed to reach a service: a namespace plus pod labels."""

    namespace: str
    pod_labels: Mapping[str, str] = field(default_factory=dict)


ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


# Modes that attach a volume to one node (or one pod): only one replica can use the claim.
SINGLE_ATTACH_MODES = frozenset({"ReadWriteOnce", "ReadWriteOncePod"})


def quantity_check(value: str) -> str | None:
    if parse_quantity(value) is None:
        return f"{value!r} is not a Kubernetes quantity like '250m', '512Mi' or '2Gi'"
    return None


Quantity = Annotated[Text, checked(quantity_check)]


class ResourceAmounts(ConfigModel):
    """Amounts of one kind (requests or limits) per resource."""

    unknown_key = "unknown resource {key!r}; use cpu, memory or ephemeral-storage"

    cpu: Quantity | None = Field(None, description="cores, e.g. '250m' or '2'")
    memory: Quantity | None = Field(None, description="bytes, e.g. '512Mi' or '2Gi'")
    ephemeral_storage: Quantity | None = Field(None, alias="ephemeral-storage", description="bytes, e.g. '1Gi'")

    def amounts(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump(by_alias=True, exclude_none=True).items()}


class ResourcesConfig(ConfigModel):
    """Resource requests (what the scheduler reserves) and limits (the most a container may use)."""

    requests: ResourceAmounts = Field(default_factory=ResourceAmounts)
    limits: ResourceAmounts = Field(default_factory=ResourceAmounts)

    def checks(self, found: Findings) -> None:
        requests = self.requests.amounts()
        for key, limit in self.limits.amounts().items():
            request = requests.get(key)
            if request is not None and (parse_quantity(request) or 0) > (parse_quantity(limit) or 0):
                found.error(f"requests.{key}", f"request {request} is larger than the limit {limit}")

    def args(self) -> Resources:
        return Resources(requests=self.requests.amounts(), limits=self.limits.amounts())


class PeerConfig(ConfigModel):
    """Pods allowed to reach a service: a namespace, and labels its pods carry."""

    namespace: Annotated[Text, Required, checked(label_check("namespace"))] = Field(description="namespace of the pods")
    pod_labels: TextMap = Field(default_factory=dict, description="labels the pods carry (all of them)")

    def args(self) -> PeerSelector:
        return PeerSelector(namespace=self.namespace, pod_labels=dict(self.pod_labels))


# --------------------------------------------------------------------------- labels and volumes

LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def label_key_check(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if len(prefix) > 253 or len(name) > 63 or not LABEL_KEY.fullmatch(key):
        return f"{key!r} is not a valid label key like 'tier' or 'example.com/tier'"
    return None


def label_value_check(value: str) -> str | None:
    if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        return f"{value!r} is not a valid label value (at most 63 letters, digits, '-', '_', '.')"
    return None


def check_labels(labels: Mapping[str, str], key: str, found: Findings) -> None:
    """Each label's key and value, reported at `<key>.<label>`."""
    for name, value in labels.items():
        if message := label_key_check(name) or label_value_check(value):
            found.error(f"{key}.{name}", message)


def size_check(value: str) -> str | None:
    return None if (parse_quantity(value) or 0) > 0 else f"{value!r} is not a storage size like '10Gi'"


def abs_path_check(value: str) -> str | None:
    if not value.startswith("/") or ".." in value.split("/") or "\n" in value:
        return f"{value!r} must be an absolute path like '/srv/data' (no '..')"
    return None


# a list of PersistentVolume access modes (checked by `check_access_modes`, so that every
# wrong entry is named with its own words)
AccessModes = Annotated[
    tuple[Text, ...],
    BeforeValidator(list_in),
    WithJsonSchema({"type": "array", "items": {"enum": list(ACCESS_MODES)}, "minItems": 1, "uniqueItems": True}),
]


def check_access_modes(modes: tuple[str, ...] | None, key: str, found: Findings, *, required: bool) -> None:
    if modes is None:
        if required and not found.problems_under(key):
            found.error(key, f"is required: one or more of {', '.join(ACCESS_MODES)}")
        return
    if not modes:
        found.error(key, f"is empty; list one or more of {', '.join(ACCESS_MODES)}")
    for j, mode in enumerate(modes):
        if mode not in ACCESS_MODES:
            found.error(
                f"{key}[{j}]",
                f"unknown access mode {mode!r}; use {', '.join(ACCESS_MODES)}{did_you_mean(mode, ACCESS_MODES)}",
            )
        elif mode in modes[:j]:
            found.error(f"{key}[{j}]", f"{mode!r} is listed twice")
    valid = set(modes) & set(ACCESS_MODES)
    if "ReadWriteOncePod" in valid and len(valid) > 1:
        found.error(key, "ReadWriteOncePod cannot be combined with other access modes")


def single_attach(modes: tuple[str, ...]) -> bool:
    """A claim only one node (RWO) or one pod (RWOP) can use: no multi-node mode in it."""
    return bool(modes) and not ({"ReadWriteMany", "ReadOnlyMany"} & set(modes))

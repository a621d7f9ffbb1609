"""The `storage:` section of a stack: statically provisioned PersistentVolumes (NFS exports,
local disks) that apps' claims and MySQL bind by StorageClass. Builds `StorageSpec`.

Whether a local volume's node is in the cluster, and whether a class collides with the dynamic
default, span sections: the stack's rules check them (stacks/config.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from components.checks import host_check, subdomain_check
from components.config_model import ConfigModel, Findings, Required, Text, TextMap, build, checked, choice, items
from components.pod_config import AccessModes, abs_path_check, check_access_modes, check_labels, size_check
from policy.guardrails import is_system_path

# --------------------------------------------------------------------------- args: what the component receives

RECLAIM_POLICIES = ("Retain", "Delete")


@dataclass(frozen=True)
class NfsSource:
    server: str
    path: str


@dataclass(frozen=True)
class LocalSource:
    path: str
    node: str  # kubernetes.io/hostname of the node holding the disk


@dataclass(frozen=True)
class StaticVolumeSpec:
    """A statically provisioned PersistentVolume (exactly one of nfs/local)."""

    name: str
    capacity: str
    access_modes: tuple[str, ...]
    reclaim_policy: str = "Retain"
    storage_class: str = "manual"
    labels: Mapping[str, str] = field(default_factory=dict)
    nfs: NfsSource | None = None
    local: LocalSource | None = None


@dataclass(frozen=True)
class StorageSpec:
    volumes: tuple[StaticVolumeSpec, ...] = ()

    @property
    def static_classes(self) -> frozenset[str]:
        return frozenset(v.storage_class for v in self.volumes)


def local_path_check(value: str) -> str | None:
    if problem := abs_path_check(value):
        return problem
    if is_system_path(value):
        return (
            f"{value!r} is the node's root, a top-level or a system directory; a pod using the volume could "
            "read or overwrite the node: give it its own directory, e.g. /mnt/disks/<name>"
        )
    return None


class NfsConfig(ConfigModel):
    """An NFS export."""

    server: Annotated[Text, Required, checked(host_check)] = Field(description="NFS server (IP or hostname)")
    path: Annotated[Text, Required, checked(abs_path_check)] = Field(description="exported path")


class LocalConfig(ConfigModel):
    """A directory on one node's disk (the volume is pinned to that node)."""

    path: Annotated[Text, Required, checked(local_path_check)] = Field(description="directory on the node")
    node: Annotated[Text, Required, checked(subdomain_check("node name"))] = Field(
        description="the node holding the disk (a name in cluster.nodes)"
    )


class StaticVolumeConfig(ConfigModel):
    """One PersistentVolume; exactly one of nfs or local."""

    name: Annotated[Text, Required, checked(subdomain_check("PersistentVolume name"))] = Field(
        description="PersistentVolume name"
    )
    capacity: Annotated[Text, Required, checked(size_check)] = Field(description="size, e.g. '10Gi'")
    access_modes: AccessModes | None = Field(None, description="ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod")
    reclaim_policy: choice(*RECLAIM_POLICIES) = Field(  # type: ignore[valid-type]
        "Retain", description="what happens to the data when the claim goes: Retain (kept) or Delete"
    )
    storage_class: Annotated[Text, checked(subdomain_check("StorageClass name"))] = Field(
        "manual", description="claims bind it by this class (not the dynamic default class)"
    )
    labels: TextMap = Field(default_factory=dict, description="labels claims may select it by (claim.selector)")
    nfs: NfsConfig | None = None
    local: LocalConfig | None = None

    def checks(self, found: Findings) -> None:
        check_access_modes(self.access_modes, "accessModes", found, required=True)
        check_labels(self.labels, "labels", found)
        if self.nfs and self.local:
            found.error("local", "a volume has one source: nfs or local, not both")
        elif not self.nfs and not self.local and not found.problems_under("nfs") and not found.problems_under("local"):
            found.error("", "needs a source: nfs {server, path} or local {path, node}")

    def args(self) -> StaticVolumeSpec:
        return build(
            StaticVolumeSpec,
            self,
            access_modes=tuple(dict.fromkeys(self.access_modes or ())),
            nfs=build(NfsSource, self.nfs) if self.nfs else None,
            local=build(LocalSource, self.local) if self.local else None,
        )


class StorageConfig(ConfigModel):
    """Statically provisioned PersistentVolumes."""

    volumes: items(StaticVolumeConfig) = Field((), description="the volumes")  # type: ignore[valid-type]

    def checks(self, found: Findings) -> None:
        names: dict[str, int] = {}
        for i, volume in enumerate(self.volumes):
            if volume.name in names:
                found.error(
                    f"volumes[{i}].name", f"volume {volume.name!r} is already declared (storage.volumes[{names[volume.name]}])"
                )
            names.setdefault(volume.name, i)

    def args(self) -> StorageSpec:
        return StorageSpec(volumes=tuple(v.args() for v in self.volumes))

"""Creates the statically provisioned PersistentVolumes of `k8s-platform:storage.volumes`
(NFS exports and local disks, the notes' "static PV"), and builds the claim specs apps
use to bind to them or to a dynamic class.

A claim binds a static volume through its `storageClassName` (the volume's class, e.g.
`manual`) and, optionally, a label selector; `stacks.config` checks before anything is
created that every such claim has a volume of its own. `local` volumes carry node
affinity on `kubernetes.io/hostname`, so the scheduler places their pods on that node.

PersistentVolumes are `retain_on_delete`: the claims that bind them are retained on
`pulumi destroy` (their data must survive), and a bound PV cannot be deleted anyway
(its `kubernetes.io/pv-protection` finalizer would keep a destroy waiting forever).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.storage_config import StaticVolumeSpec
from components.vocabulary import HOSTNAME_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from components.webapp_config import ClaimSpec


def volume_spec(volume: StaticVolumeSpec) -> k8s.core.v1.PersistentVolumeSpecArgs:
    node_affinity = None
    if volume.local is not None:
        node_affinity = k8s.core.v1.VolumeNodeAffinityArgs(
            required=k8s.core.v1.NodeSelectorArgs(
                node_selector_terms=[
                    k8s.core.v1.NodeSelectorTermArgs(
                        match_expressions=[
                            k8s.core.v1.NodeSelectorRequirementArgs(
                                key=HOSTNAME_LABEL, operator="In", values=[volume.local.node]
                            )
                        ]
                    )
                ]
            )
        )
    return k8s.core.v1.PersistentVolumeSpecArgs(
        capacity={"storage": volume.capacity},
        access_modes=list(volume.access_modes),
        persistent_volume_reclaim_policy=volume.reclaim_policy,
        storage_class_name=volume.storage_class,
        volume_mode="Filesystem",
        nfs=(
            k8s.core.v1.NFSVolumeSourceArgs(server=volume.nfs.server, path=volume.nfs.path)
            if volume.nfs is not None
            else None
        ),
        local=k8s.core.v1.LocalVolumeSourceArgs(path=volume.local.path) if volume.local is not None else None,
        node_affinity=node_affinity,
    )


def claim_spec(claim: ClaimSpec) -> k8s.core.v1.PersistentVolumeClaimSpecArgs:
    """An empty storageClass stays unset: the cluster's default class provisions the volume."""
    return k8s.core.v1.PersistentVolumeClaimSpecArgs(
        access_modes=list(claim.access_modes),
        storage_class_name=claim.storage_class or None,
        selector=(
            k8s.meta.v1.LabelSelectorArgs(match_labels=dict(sorted(claim.selector.items()))) if claim.selector else None
        ),
        resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": claim.size}),
        volume_mode="Filesystem",
    )


@dataclass(frozen=True)
class StaticVolumesArgs:
    volumes: tuple[StaticVolumeSpec, ...]
    protect: bool = False  # prod: a PV leaves the stack only on purpose


class StaticVolumes(pulumi.ComponentResource):
    """One cluster-scoped PersistentVolume per `storage.volumes` entry."""

    by_name: dict[str, k8s.core.v1.PersistentVolume]

    def __init__(self, name: str, args: StaticVolumesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:volumes:StaticVolumes", name, None, opts)
        self.by_name = {}
        for volume in sorted(args.volumes, key=lambda v: v.name):
            labels: Mapping[str, str] = {**dict(volume.labels), MANAGED_BY_LABEL: MANAGED_BY}
            self.by_name[volume.name] = k8s.core.v1.PersistentVolume(
                f"{name}-{volume.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=volume.name, labels=dict(sorted(labels.items()))),
                spec=volume_spec(volume),
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, protect=args.protect),
            )
        self.register_outputs({"names": sorted(self.by_name)})

"""Creates the platform's Kubernetes Namespaces, one per name, all labelled as managed by k8s-platform.

Each namespace carries Pod Security Admission labels: `enforce` at the level its
workloads need (`restricted` unless told otherwise), `warn` and `audit` at
`restricted`, so a pod that needs more than the strictest level is visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.vocabulary import MANAGED_BY, MANAGED_BY_LABEL

PSA_PREFIX = "pod-security.kubernetes.io"
PSA_LEVELS = ("restricted", "baseline", "privileged")


# the server-side-apply field manager of objects that outlive `pulumi destroy`
RETAINED_FIELD_MANAGER = "k8s-platform"


@dataclass(frozen=True)
class NamespacesArgs:
    names: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    # Pod Security Admission level to enforce per namespace; absent names get `restricted`
    pod_security: Mapping[str, str] = field(default_factory=dict)


def pod_security_labels(level: str) -> dict[str, str]:
    if level not in PSA_LEVELS:
        raise ValueError(f"pod security level {level!r} is not one of {', '.join(PSA_LEVELS)}")
    return {
        f"{PSA_PREFIX}/enforce": level,
        f"{PSA_PREFIX}/enforce-version": "latest",
        f"{PSA_PREFIX}/warn": "restricted",
        f"{PSA_PREFIX}/audit": "restricted",
    }


class PlatformNamespaces(pulumi.ComponentResource):
    """One `Namespace` per name; `by_name` maps each name to its resource for `depends_on`."""

    by_name: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:namespaces:PlatformNamespaces", name, None, opts)
        # Given labels first so the managed-by label cannot be overridden: it is how
        # operators find what this program owns (`kubectl get ns -l ...`).
        labels = {**dict(args.labels), MANAGED_BY_LABEL: MANAGED_BY}
        self.by_name = {}
        # sorted + de-duplicated: resource order and names must not depend on config order
        for ns in sorted(set(args.names)):
            ns_labels = {**labels, **pod_security_labels(args.pod_security.get(ns, "restricted"))}
            self.by_name[ns] = k8s.core.v1.Namespace(
                f"{name}-{ns}",
                # Retained on destroy (below), so a later `pulumi up` adopts it by server-side
                # apply: a fixed field manager makes that an update of our own fields rather
                # than a conflict with the previous (randomly named) Pulumi manager.
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ns, labels=ns_labels, annotations={"pulumi.com/patchFieldManager": RETAINED_FIELD_MANAGER}
                ),
                # Deleting a namespace deletes every PVC in it, whatever the StatefulSet's
                # retention policy says (found by the e2e destroy scenario): `pulumi destroy`
                # leaves the namespaces, and with them MySQL's and the apps' data.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
        self.register_outputs({"names": [n.metadata.name for n in self.by_name.values()]})

"""Creates the platform's Kubernetes Namespaces, one per name, all labelled as managed by k8s-platform."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "k8s-platform"


# the server-side-apply field manager of objects that outlive `pulumi destroy`
RETAINED_FIELD_MANAGER = "k8s-platform"


@dataclass(frozen=True)
class NamespacesArgs:
    names: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)


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
            self.by_name[ns] = k8s.core.v1.Namespace(
                f"{name}-{ns}",
                # Retained on destroy (below), so a later `pulumi up` adopts it by server-side
                # apply: a fixed field manager makes that an update of our own fields rather
                # than a conflict with the previous (randomly named) Pulumi manager.
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ns, labels=labels, annotations={"pulumi.com/patchFieldManager": RETAINED_FIELD_MANAGER}
                ),
                # Deleting a namespace deletes every PVC in it, whatever the StatefulSet's
                # retention policy says (found by the e2e destroy scenario): `pulumi destroy`
                # leaves the namespaces, and with them MySQL's and the apps' data.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
        self.register_outputs({"names": [n.metadata.name for n in self.by_name.values()]})

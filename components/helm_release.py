"""Creates one real Helm release (`kubernetes:helm.sh/v3:Release`) from a `HelmReleaseSpec`.

Backed by `helm.v3.Release` rather than `helm.v4.Chart` on purpose: the release is
stored by Helm itself, so `helm list/status/history/rollback` keep working next to
Pulumi. Values are `valuesFiles` (YAML, relative to the project root, deep-merged in
order) with the inline `values` deep-merged over them, as `helm install -f a -f b
--set ...` would (`components/helm_values.py`), and passed inline so `pulumi preview`
shows the effective values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.helm_config import HelmReleaseSpec, chart_reference
from components.helm_values import deep_merge as deep_merge  # re-exported: add-ons and the mesh merge with it
from components.helm_values import merged_values


def load_values(spec: HelmReleaseSpec, project_root: str | Path) -> dict[str, Any]:
    """The effective values of a release: values files in order, then inline values."""
    return merged_values(spec.values_files, spec.values, project_root)


@dataclass(frozen=True)
class HelmReleaseArgs:
    spec: HelmReleaseSpec
    project_root: str
    # The Namespace resource the program created for this release, if any; without
    # it Helm creates the namespace itself (`--create-namespace`).
    namespace_resource: k8s.core.v1.Namespace | None = None


class HelmRelease(pulumi.ComponentResource):
    """A pinned chart installed as a Helm release; outputs mirror `helm status`."""

    release: k8s.helm.v3.Release
    release_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    chart: pulumi.Output[str]
    version: pulumi.Output[str]
    revision: pulumi.Output[int]

    def __init__(self, name: str, args: HelmReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:helm_release:HelmRelease", name, None, opts)
        spec = args.spec
        values = load_values(spec, args.project_root)

        depends_on: list[pulumi.Resource] = []
        namespace: pulumi.Input[str] = spec.namespace
        if args.namespace_resource is not None:
            # Taking the name from the resource orders the install after the namespace.
            namespace = args.namespace_resource.metadata.name
            depends_on.append(args.namespace_resource)

        # spec.repo is already the mirror (helm.repoMirrors) when there is one
        chart, repo = chart_reference(spec.repo, spec.chart)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            # An explicit name: Pulumi would otherwise add a random suffix and the
            # release would not be the one `helm list` / runbooks refer to.
            name=spec.name,
            namespace=namespace,
            create_namespace=args.namespace_resource is None,
            chart=chart,
            version=spec.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo) if repo else None,
            values=values,
            atomic=spec.atomic,
            cleanup_on_fail=spec.cleanup_on_fail,
            timeout=spec.timeout,
            max_history=spec.max_history,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        # Helm fills every status field once installed; the fallbacks only satisfy
        # the Optional types of the generated SDK.
        status = self.release.status
        self.release_name = status.apply(lambda s: s.name or spec.name)
        self.namespace = status.apply(lambda s: s.namespace or spec.namespace)
        self.chart = status.apply(lambda s: s.chart or spec.chart)
        self.version = status.apply(lambda s: s.version or spec.version)
        self.revision = status.apply(lambda s: int(s.revision or 0))
        self.register_outputs(
            {
                "name": self.release_name,
                "namespace": self.namespace,
                "chart": self.chart,
                "version": self.version,
                "revision": self.revision,
            }
        )

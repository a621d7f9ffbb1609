"""The `addons:` section of a stack: which cluster add-ons `ClusterAddons` installs, from
which chart, with which values. Builds `AddonsSpec`, the component's args.

Kept apart from `components/addons.py` so that reading a stack (`python -m stacks validate`,
PR checks) never imports the Pulumi SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from components.catalog import DEFAULT_ADDON_CHARTS, MESH_BASE_CHART, ChartSource
from components.checks import (
    CHART_REPO_SCHEMES,
    chart_name_check,
    label_check,
    pool_check,
    semver_check,
    subdomain_check,
    url_check,
)
from components.config_model import AnyMap, ConfigModel, Findings, Flag, Text, checked, text_list
from components.helm_config import HelmSpec

# --------------------------------------------------------------------------- args: what the component receives

@dataclass(frozen=True)
class Addon:
    enabled: bool
    chart: ChartSource


@dataclass(frozen=True)
class IngressAddon(Addon):
    class_name: str = "traefik"


@dataclass(frozen=True)
class StorageAddon(Addon):
    default_class: str = "local-path"


@dataclass(frozen=True)
class LoadBalancerAddon(Addon):
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeshAddon(Addon):
    """The service mesh (Istio): `chart` is the control plane (istiod); `base_chart` (CRDs,
    cluster roles) comes from the same repo at the same version into the same namespace,
    because Istio supports base and istiod only in lockstep."""

    base_chart: str = "base"
    base_values: Mapping[str, Any] = field(default_factory=dict)
    cluster_domain: str = "cluster.local"  # Service FQDNs in VirtualService/DestinationRule hosts

    @property
    def base(self) -> ChartSource:
        c = self.chart
        return ChartSource(
            repo=c.repo,
            chart=self.base_chart,
            version=c.version,
            namespace=c.namespace,
            values=self.base_values,
            upstream_repo=c.upstream_repo,
        )


@dataclass(frozen=True)
class AddonsSpec:
    ingress: IngressAddon
    storage: StorageAddon
    metrics_server: Addon
    load_balancer: LoadBalancerAddon
    mesh: MeshAddon | None = None  # None: no mesh (as `enabled: false`)

    @property
    def mesh_enabled(self) -> bool:
        return self.mesh is not None and self.mesh.enabled


class AddonConfig(ConfigModel):
    """One add-on: a Helm release whose chart defaults to the catalog's pin."""

    enabled: Flag = Field(True, description="install this add-on")
    repo: Annotated[Text, checked(url_check(CHART_REPO_SCHEMES))] | None = Field(
        None, description="chart repository (https:// or oci://); default: the catalog's"
    )
    chart: Text | None = Field(None, description="chart name; default: the catalog's")
    version: Annotated[Text, checked(semver_check)] | None = Field(
        None, description="chart version (semver, pinned); default: the catalog's"
    )
    namespace: Annotated[Text, checked(label_check("namespace"))] | None = Field(
        None, description="namespace of the release; default: the catalog's"
    )
    values: AnyMap = Field(default_factory=dict, description="Helm values over the platform's defaults")

    def chart_source(self, catalog_name: str, helm: HelmSpec) -> ChartSource:
        """The chart as installed: the catalog's pin with this stack's overrides; the catalog's
        repo goes through helm.repoMirrors, a repo the stack names is used as written."""
        default = DEFAULT_ADDON_CHARTS[catalog_name]
        return ChartSource(
            repo=helm.mirror_of(default.repo) if self.repo is None else self.repo,
            chart=default.chart if self.chart is None else self.chart,
            version=default.version if self.version is None else self.version,
            namespace=default.namespace if self.namespace is None else self.namespace,
            values=self.values or dict(default.values),
            upstream_repo=default.repo if self.repo is None else self.repo,
        )


class IngressConfig(AddonConfig):
    """The ingress controller (Traefik)."""

    class_name: Annotated[Text, checked(subdomain_check("IngressClass name"))] = Field(
        "traefik", description="IngressClass apps' Ingresses use"
    )


class StorageAddonConfig(AddonConfig):
    """The default StorageClass's provisioner (local-path)."""

    default_class: Annotated[Text, checked(subdomain_check("StorageClass name"))] = Field(
        "local-path", description="name of the default StorageClass"
    )


class MetricsServerConfig(AddonConfig):
    """metrics-server (resource metrics for `kubectl top` and HPAs)."""


class LoadBalancerConfig(AddonConfig):
    """MetalLB: addresses for LoadBalancer Services on bare metal (layer 2)."""

    enabled: Flag = Field(False, description="install MetalLB")
    addresses: text_list(pool_check) = Field(  # type: ignore[valid-type]
        (), description="address pools MetalLB hands out: CIDRs ('10.0.0.0/28') or ranges ('10.0.0.10-10.0.0.20')"
    )

    def checks(self, found: Findings) -> None:
        if not self.enabled or found.problems_under("addresses"):
            return
        if "addresses" not in self.model_fields_set:
            found.error(
                "addresses", "is required when the load balancer is enabled: CIDRs or ranges like '10.0.0.10-10.0.0.20'"
            )
        elif not self.addresses:
            found.error("addresses", "is empty; MetalLB needs at least one address range to hand out")


class MeshConfig(AddonConfig):
    """The Istio service mesh that apps with `mesh: true` join."""

    enabled: Flag = Field(False, description="install Istio (base, then istiod)")
    base_chart: Annotated[Text, checked(chart_name_check)] = Field(
        MESH_BASE_CHART, description="Istio's base chart (CRDs), installed first from the same repo at the same version"
    )
    base_values: AnyMap = Field(default_factory=dict, description="Helm values of the base chart")
    cluster_domain: Annotated[Text, checked(subdomain_check("cluster DNS domain"))] = Field(
        "cluster.local", description="cluster DNS domain of Service FQDNs; must match kubespray's dns_domain"
    )


class AddonsConfig(ConfigModel):
    """Cluster add-ons, each a Helm release with a pinned default chart (components/catalog.py)."""

    ingress: IngressConfig = Field(default_factory=IngressConfig)
    storage: StorageAddonConfig = Field(default_factory=StorageAddonConfig)
    metrics_server: MetricsServerConfig = Field(default_factory=MetricsServerConfig)
    load_balancer: LoadBalancerConfig = Field(default_factory=LoadBalancerConfig)
    mesh: MeshConfig = Field(default_factory=MeshConfig)

    def catalog_repos(self) -> frozenset[str]:
        """The catalog repos the enabled add-ons fetch from (those without a repo of their own):
        what helm.repoMirrors can redirect here."""
        return frozenset(
            DEFAULT_ADDON_CHARTS[key].repo
            for key, addon in self._by_catalog_name().items()
            if addon.enabled and addon.repo is None
        )

    def _by_catalog_name(self) -> dict[str, AddonConfig]:
        return {
            "ingress": self.ingress,
            "storage": self.storage,
            "metricsServer": self.metrics_server,
            "loadBalancer": self.load_balancer,
            "mesh": self.mesh,
        }

    def args(self, helm: HelmSpec | None = None) -> AddonsSpec:
        """`helm`: the stack's helm section, whose repoMirrors apply to the catalog's repos."""
        helm = helm or HelmSpec()
        mesh = self.mesh
        return AddonsSpec(
            ingress=IngressAddon(
                enabled=self.ingress.enabled,
                chart=self.ingress.chart_source("ingress", helm),
                class_name=self.ingress.class_name,
            ),
            storage=StorageAddon(
                enabled=self.storage.enabled,
                chart=self.storage.chart_source("storage", helm),
                default_class=self.storage.default_class,
            ),
            metrics_server=Addon(
                enabled=self.metrics_server.enabled, chart=self.metrics_server.chart_source("metricsServer", helm)
            ),
            load_balancer=LoadBalancerAddon(
                enabled=self.load_balancer.enabled,
                chart=self.load_balancer.chart_source("loadBalancer", helm),
                addresses=tuple(self.load_balancer.addresses),
            ),
            mesh=MeshAddon(
                enabled=mesh.enabled,
                chart=mesh.chart_source("mesh", helm),
                base_chart=mesh.base_chart,
                base_values=mesh.base_values,
                cluster_domain=mesh.cluster_domain,
            ),
        )

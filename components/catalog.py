"""Default charts of the cluster add-ons: maintained upstreams at pinned versions.

Every field can be overridden per stack under `k8s-platform:addons.<addon>`. The repos
here are upstreams: `k8s-platform:helm.repoMirrors` redirects them like any chart's, unless
the stack names an add-on's repo itself.

Versions are pinned on purpose: an add-on upgrade is a reviewed change of this
file (or of a stack's override), never whatever the repository serves today.
Each entry says why this chart, and where its version was checked to exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- args: what the component receives

@dataclass(frozen=True)
class ChartSource:
    """Where an add-on's chart comes from; every field is overridable per stack."""

    repo: str  # fetched from: after helm.repoMirrors, for the catalog's repo
    chart: str
    version: str
    namespace: str
    values: Mapping[str, Any] = field(default_factory=dict)
    upstream_repo: str = ""  # the repo before mirroring (the catalog's, or the stack's own); "" = `repo`


DEFAULT_ADDON_CHARTS: dict[str, ChartSource] = {
    # Traefik instead of ingress-nginx, which Kubernetes SIG Network retired
    # (best-effort maintenance ended March 2026). Traefik is actively released
    # (37.x in 2025, 38.x by early 2026), implements both networking.k8s.io/v1
    # Ingress (the DESIGN's apps use it) and Gateway API (chart 37.3 ships Gateway
    # API v1.4 CRDs; `providers.kubernetesGateway.enabled` switches it on), and its
    # chart exposes exactly the knobs the platform needs: `ingressClass.name` /
    # `ingressClass.isDefaultClass` and `service.type`.
    # Verified: "## 37.1.1 (AppVersion v3.5.2)" in the chart's Changelog.md
    # (traefik/traefik-helm-chart, mirrored in marcel-dempers/docker-development-
    # youtube-series traefik/Changelog.md). Kept on 37.1.1 rather than 38.x: a major
    # bump is a reviewed change with its own values migration.
    "ingress": ChartSource(
        repo="https://traefik.github.io/charts",
        chart="traefik",
        version="37.1.1",
        namespace="ingress",
    ),
    # OpenEBS Dynamic LocalPV (hostpath) — a bare-metal local-path provisioner that
    # is published in a real Helm repository. Rancher's local-path-provisioner has
    # only an in-git chart (`deploy/chart`; its "publish the chart in a repository"
    # issue rancher/local-path-provisioner#89 is still open), so it cannot be
    # pinned by repo + version. The chart's `hostpathClass.{name,isDefaultClass}`
    # make the platform's default StorageClass (templates/hostpath-class.yaml).
    # Verified: v4.3.0 release (changelog PR openebs/dynamic-localpv-provisioner#265,
    # release/4.3 branch); 4.4.0 also exists (May 2026) — 4.3.0 kept as the
    # proven line; upgrading is a one-line change here.
    "storage": ChartSource(
        repo="https://openebs.github.io/dynamic-localpv-provisioner",
        chart="localpv-provisioner",
        version="4.3.0",
        namespace="storage",
    ),
    # The kubernetes-sigs chart is the upstream of metrics-server itself.
    # Verified: GitHub release tag `metrics-server-helm-chart-3.13.0` (2025-07-22,
    # app v0.8.0); it is still the newest chart release (v0.8.1 of the app shipped
    # without a new chart).
    "metricsServer": ChartSource(
        repo="https://kubernetes-sigs.github.io/metrics-server/",
        chart="metrics-server",
        version="3.13.0",
        namespace="kube-system",
    ),
    # MetalLB's own chart: the bare-metal LoadBalancer implementation; the pool is
    # configured with `IPAddressPool` + `L2Advertisement` (metallb.io/v1beta1) that
    # ClusterAddons creates after the release. Kubespray with kube-proxy in IPVS mode
    # needs `kube_proxy_strict_arp: true` for L2 mode.
    # Verified: chart package `metallb-0.15.2` (vendored as charts/metallb-0.15.2 in
    # oracle-cne/catalog and several GitOps repos; 0.15.3 exists as well).
    "loadBalancer": ChartSource(
        repo="https://metallb.github.io/metallb",
        chart="metallb",
        version="0.15.2",
        namespace="metallb-system",
    ),
    # Istio rather than Linkerd for the optional mesh: the notes ask for resilience
    # in the "sidecar mode", and Istio's VirtualService (timeout, retries) and
    # DestinationRule (outlierDetection = circuit breaking, connectionPool limits)
    # express every knob of `apps[].resilience` natively; Linkerd has timeouts and
    # retries but its circuit breaking is a separate failure-accrual annotation
    # model without connection-pool limits. The entry is the control-plane chart
    # (istiod); the `base` chart (CRDs) is installed first from the same repo at the
    # same version (`addons.mesh.baseChart`), since Istio supports them only in
    # lockstep. Replacing the mesh means this entry, ClusterAddons' mesh releases and
    # components/mesh.py (injection + resilience rendering), nothing else.
    # Verified: git tag 1.29.2 (2026-04-13) of istio/istio; the charts are published
    # under that version in this repo (e.g. czy21/container istio/chart/Chart.yaml
    # depends on base/istiod 1.29.2 from istio-release). Istio 1.29 supports
    # Kubernetes >= 1.30 (istioctl MinK8SVersion = 30), so the cluster's 1.34 is in.
    "mesh": ChartSource(
        repo="https://istio-release.storage.googleapis.com/charts",
        chart="istiod",
        version="1.29.2",
        namespace="istio-system",
    ),
}

# The mesh's CRD chart, installed before DEFAULT_ADDON_CHARTS["mesh"] at its version.
MESH_BASE_CHART = "base"

"""Default charts of the cluster add-ons: maintained upstreams at pinned versions.

Every field can be overridden per stack under `k8s-platform:addons.<addon>`.
"""

from __future__ import annotations

from stacks.spec import ChartSource

# Versions are pinned on purpose: an add-on upgrade is a reviewed change of this
# file (or of a stack's override), never whatever the repository serves today.
DEFAULT_ADDON_CHARTS: dict[str, ChartSource] = {
    "ingress": ChartSource(
        repo="https://traefik.github.io/charts",
        chart="traefik",
        version="37.1.1",
        namespace="ingress",
    ),
    "storage": ChartSource(
        repo="https://openebs.github.io/dynamic-localpv-provisioner",
        chart="localpv-provisioner",
        version="4.3.0",
        namespace="storage",
    ),
    "metricsServer": ChartSource(
        repo="https://kubernetes-sigs.github.io/metrics-server/",
        chart="metrics-server",
        version="3.13.0",
        namespace="kube-system",
    ),
    "loadBalancer": ChartSource(
        repo="https://metallb.github.io/metallb",
        chart="metallb",
        version="0.15.2",
        namespace="metallb-system",
    ),
}

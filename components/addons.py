"""Creates the cluster add-ons: ingress controller, default StorageClass provisioner,
metrics-server and MetalLB (each a Helm release), MetalLB's `IPAddressPool` +
`L2Advertisement`, the optional service mesh (Istio `base`, then `istiod`), and
`NodePatch`es that make control-plane nodes schedulable.

Each add-on's chart values are layered: platform defaults, then the stack's
`addons.<addon>.values`, then the few settings the rest of the platform relies on
(IngressClass name, default StorageClass name). The last layer wins so a stack
override cannot silently break the contract apps and MySQL are written against.

Each chart is fetched from `spec`'s repo: the catalog's upstream through `helm.repoMirrors`,
or the add-on's own repo as the stack wrote it (`components/addons_config.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import mesh
from components.addons_config import AddonsSpec
from components.catalog import ChartSource
from components.helm_config import HelmReleaseSpec
from components.helm_release import HelmRelease, HelmReleaseArgs, deep_merge

# Taints kubeadm (and so kubespray) puts on control-plane nodes; `master` is the
# pre-1.24 key that clusters upgraded from old releases may still carry.
CONTROL_PLANE_TAINT_KEYS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
TAINT_FIELD_MANAGER = "k8s-platform-schedulable-control-plane"

METALLB_API_VERSION = "metallb.io/v1beta1"
METALLB_POOL_NAME = "default"


@dataclass(frozen=True)
class ClusterAddonsArgs:
    spec: AddonsSpec
    schedulable_control_plane: bool = False
    # Node names whose control-plane taints are removed (only for `mode: existing`;
    # kubespray leaves nodes in kube_node untainted by itself).
    remove_taints_from: tuple[str, ...] = ()
    # Values files are resolved against this; add-on charts only use inline values.
    project_root: str = "."
    # metrics-server verifies the kubelets' serving certificates (they are CA-signed)
    verify_kubelet_tls: bool = False


def _release_spec(chart: ChartSource, values: Mapping[str, Any]) -> HelmReleaseSpec:
    # The chart name doubles as the release name: `helm list -A` then reads like the
    # add-on list, and switching to another chart is (rightly) a new release.
    return HelmReleaseSpec(
        name=chart.chart,
        namespace=chart.namespace,
        repo=chart.repo,
        chart=chart.chart,
        version=chart.version,
        values=values,
        upstream_repo=chart.upstream_repo or chart.repo,
    )


def ingress_values(class_name: str, load_balancer_available: bool, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Traefik chart values: the platform IngressClass, default, exposed without a cloud LB."""
    defaults: dict[str, Any] = {
        # Without MetalLB a LoadBalancer Service never gets an address and the
        # atomic (waiting) release would time out and roll back; NodePort works
        # on any bare-metal cluster.
        "service": {"type": "LoadBalancer" if load_balancer_available else "NodePort"},
    }
    enforced = {"ingressClass": {"enabled": True, "isDefaultClass": True, "name": class_name}}
    return deep_merge(deep_merge(defaults, overrides), enforced)


def storage_values(default_class: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """OpenEBS localpv-provisioner values: its hostpath StorageClass is the cluster default."""
    # The chart phones home by default; a platform install should not.
    defaults: dict[str, Any] = {"analytics": {"enabled": False}}
    enforced = {"hostpathClass": {"enabled": True, "name": default_class, "isDefaultClass": True}}
    return deep_merge(deep_merge(defaults, overrides), enforced)


def metrics_server_values(overrides: Mapping[str, Any], verify_kubelet_tls: bool = False) -> dict[str, Any]:
    """metrics-server values; kubelet TLS is verified when the kubelets' serving certs are CA-signed."""
    # Kubelets with self-signed serving certs (kubespray's default before the program set
    # kubelet_rotate_server_certificates, or an existing cluster) cannot be verified, so
    # `kubectl top` and every HPA would fail without --kubelet-insecure-tls. Kubespray
    # clusters of this program get CA-signed kubelet certs; prod verifies them.
    defaults: dict[str, Any] = {"args": [] if verify_kubelet_tls else ["--kubelet-insecure-tls"]}
    return deep_merge(defaults, overrides)


class ClusterAddons(pulumi.ComponentResource):
    """The enabled add-ons as Helm releases, plus MetalLB CRs and control-plane taint removal."""

    releases: dict[str, HelmRelease]
    address_pool: k8s.apiextensions.CustomResource | None
    l2_advertisement: k8s.apiextensions.CustomResource | None
    taint_patches: dict[str, k8s.core.v1.NodePatch]

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:addons:ClusterAddons", name, None, opts)
        spec = args.spec
        self.releases = {}
        self.address_pool = None
        self.l2_advertisement = None
        self.taint_patches = {}

        # Taints first: with a single schedulable node set, add-on pods may only fit
        # on the control plane, and a release waits for its pods.
        taint_deps: list[pulumi.Resource] = []
        # Both must say so: the node list alone is not consent to schedule on the control plane.
        nodes = args.remove_taints_from if args.schedulable_control_plane else ()
        for node in sorted(set(nodes)):
            patch = self._untaint(name, node)
            self.taint_patches[node] = patch
            taint_deps.append(patch)
        after_taints = pulumi.ResourceOptions(parent=self, depends_on=taint_deps)

        lb = spec.load_balancer
        lb_ready: list[pulumi.Resource] = []
        if lb.enabled:
            metallb = HelmRelease(
                f"{name}-metallb",
                HelmReleaseArgs(_release_spec(lb.chart, dict(lb.chart.values)), args.project_root),
                opts=after_taints,
            )
            self.releases["loadBalancer"] = metallb
            lb_ready.append(metallb.release)
            if lb.addresses:
                # CRDs come with the chart: the CRs must wait for the release (which
                # is atomic, so "created" means the CRDs and webhook are ready).
                after_release = pulumi.ResourceOptions(parent=self, depends_on=[metallb.release])
                self.address_pool = k8s.apiextensions.CustomResource(
                    f"{name}-metallb-pool",
                    api_version=METALLB_API_VERSION,
                    kind="IPAddressPool",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=METALLB_POOL_NAME, namespace=lb.chart.namespace),
                    spec={"addresses": list(lb.addresses)},
                    opts=after_release,
                )
                self.l2_advertisement = k8s.apiextensions.CustomResource(
                    f"{name}-metallb-l2",
                    api_version=METALLB_API_VERSION,
                    kind="L2Advertisement",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=METALLB_POOL_NAME, namespace=lb.chart.namespace),
                    spec={"ipAddressPools": [METALLB_POOL_NAME]},
                    opts=after_release,
                )
                lb_ready = [self.address_pool, self.l2_advertisement]

        if spec.ingress.enabled:
            values = ingress_values(
                spec.ingress.class_name, bool(lb.enabled and lb.addresses), spec.ingress.chart.values
            )
            self.releases["ingress"] = HelmRelease(
                f"{name}-ingress",
                HelmReleaseArgs(_release_spec(spec.ingress.chart, values), args.project_root),
                # With MetalLB, the controller's LoadBalancer Service needs the pool
                # to exist or the waiting release times out.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*taint_deps, *lb_ready]),
            )
        if spec.storage.enabled:
            values = storage_values(spec.storage.default_class, spec.storage.chart.values)
            self.releases["storage"] = HelmRelease(
                f"{name}-storage",
                HelmReleaseArgs(_release_spec(spec.storage.chart, values), args.project_root),
                opts=after_taints,
            )
        if spec.metrics_server.enabled:
            values = metrics_server_values(spec.metrics_server.chart.values, args.verify_kubelet_tls)
            self.releases["metricsServer"] = HelmRelease(
                f"{name}-metrics-server",
                HelmReleaseArgs(_release_spec(spec.metrics_server.chart, values), args.project_root),
                opts=after_taints,
            )

        if spec.mesh is not None and spec.mesh.enabled:
            mesh_spec = spec.mesh
            ns = mesh_spec.chart.namespace
            base = HelmRelease(
                f"{name}-mesh-base",
                HelmReleaseArgs(
                    _release_spec(mesh_spec.base, mesh.base_values(ns, mesh_spec.base_values)), args.project_root
                ),
                opts=after_taints,
            )
            self.releases["meshBase"] = base
            # istiod validates and serves the CRDs the base chart installs: base first.
            self.releases["mesh"] = HelmRelease(
                f"{name}-mesh",
                HelmReleaseArgs(
                    _release_spec(mesh_spec.chart, mesh.istiod_values(ns, mesh_spec.chart.values)), args.project_root
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*taint_deps, base.release]),
            )

        self.register_outputs(
            {
                "releases": {k: r.revision for k, r in sorted(self.releases.items())},
                "ingressClass": spec.ingress.class_name if spec.ingress.enabled else None,
                "defaultStorageClass": spec.storage.default_class if spec.storage.enabled else None,
                "untaintedNodes": sorted(self.taint_patches),
            }
        )

    def _untaint(self, name: str, node: str) -> k8s.core.v1.NodePatch:
        # Server-side apply semantics decide how this works:
        # * `Node.spec.taints` is `x-kubernetes-list-type: atomic`: SSA cannot drop
        #   single entries; whoever applies the list owns and replaces it whole.
        # * An empty list does not work: pulumi-kubernetes leaves empty lists out of the
        #   apply patch (seen with the real engine: the patch owned no spec field and the
        #   taint stayed). So the list is replaced by one soft taint: the NoSchedule
        #   control-plane (and legacy `master`) taints are gone, workloads schedule on
        #   the node, and the scheduler still prefers workers that have room.
        # * The taints were written by kubeadm/kubelet under their own field manager,
        #   so a plain apply is a conflict error; `pulumi.com/patchForce` takes the
        #   field over deliberately. A fixed `patchFieldManager` (instead of Pulumi's
        #   random one) keeps the owner recognisable in `managedFields` and stable
        #   across re-creates of this resource.
        # * Taking the whole list also clears any other taint present at apply time.
        #   Control-plane nodes of a cluster marked schedulable carry no other static
        #   taints; the node lifecycle controller re-adds its condition taints
        #   (not-ready, unreachable, unschedulable) by update, taking the list back.
        # * `retain_on_delete`: deleting a Patch relinquishes its fields, it does not
        #   restore the old taints. Turning schedulableControlPlane off therefore needs
        #   `kubectl taint` by an operator, and deleting the resource should not pretend
        #   otherwise by touching the node.
        return k8s.core.v1.NodePatch(
            f"{name}-untaint-{node}",
            metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                name=node,
                annotations={
                    "pulumi.com/patchForce": "true",
                    "pulumi.com/patchFieldManager": TAINT_FIELD_MANAGER,
                },
            ),
            spec=k8s.core.v1.NodeSpecPatchArgs(
                taints=[k8s.core.v1.TaintPatchArgs(key=CONTROL_PLANE_TAINT_KEYS[0], effect="PreferNoSchedule")]
            ),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )

"""Creates a stateless web application: Deployment, Service, and optionally an
Ingress and a HorizontalPodAutoscaler (autoscaling/v2, CPU), from an `AppSpec`.

Every object has an explicit `metadata.name` (the app name): rendering is
deterministic, runbooks can name objects, and a rolling update keeps the same
Deployment so its old ReplicaSets stay available to `kubectl rollout undo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.spec import AppSpec, ProbeSpec

PORT_NAME = "http"
MANAGED_BY = "k8s-platform"


@dataclass(frozen=True)
class WebAppArgs:
    spec: AppSpec
    ingress_class: str = ""  # the ingress add-on's IngressClass, used when the app names none
    load_balancer_available: bool = False  # MetalLB (or a cloud LB) can assign addresses


def selector_labels(app: AppSpec) -> dict[str, str]:
    """The immutable selector: name + instance only, so adding labels later never orphans pods."""
    return {"app.kubernetes.io/name": app.name, "app.kubernetes.io/instance": app.name}


def app_labels(app: AppSpec) -> dict[str, str]:
    return {**selector_labels(app), "app.kubernetes.io/managed-by": MANAGED_BY}


def _int_or_percent(value: str) -> int | str:
    # The API accepts an int or an "N%" string; a bare "0" string is rejected.
    return int(value) if value.strip().isdigit() else value


def _probe(probe: ProbeSpec) -> k8s.core.v1.ProbeArgs:
    common: dict[str, Any] = {
        "initial_delay_seconds": probe.initial_delay_seconds,
        "period_seconds": probe.period_seconds,
    }
    if probe.path:
        return k8s.core.v1.ProbeArgs(http_get=k8s.core.v1.HTTPGetActionArgs(path=probe.path, port=PORT_NAME), **common)
    return k8s.core.v1.ProbeArgs(tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=PORT_NAME), **common)


def _resources(app: AppSpec) -> k8s.core.v1.ResourceRequirementsArgs | None:
    if not app.resources.requests and not app.resources.limits:
        return None
    return k8s.core.v1.ResourceRequirementsArgs(
        requests=dict(sorted(app.resources.requests.items())) or None,
        limits=dict(sorted(app.resources.limits.items())) or None,
    )


class WebApp(pulumi.ComponentResource):
    """Deployment + Service (+ Ingress, + HPA) for one app."""

    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    service_name: pulumi.Output[str]
    ingress: k8s.networking.v1.Ingress | None
    hpa: k8s.autoscaling.v2.HorizontalPodAutoscaler | None
    url: pulumi.Output[str] | None

    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:webapp:WebApp", name, None, opts)
        app = args.spec
        labels = app_labels(app)

        def meta(annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=app.name, namespace=app.namespace, labels=labels, annotations=annotations
            )

        security = k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            run_as_non_root=app.run_as_non_root,
            run_as_user=app.run_as_user,
            read_only_root_filesystem=app.read_only_root_filesystem,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        )
        container = k8s.core.v1.ContainerArgs(
            name=app.name,
            image=app.image,
            ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=app.port, protocol="TCP")],
            # Sorted: the pod template (and so the rollout) must not change when only
            # the order of keys in the stack file does.
            env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(app.env.items())] or None,
            resources=_resources(app),
            readiness_probe=_probe(app.readiness),
            liveness_probe=_probe(app.liveness),
            security_context=security,
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # With an HPA the autoscaler owns the replica count; declaring it here
                # too would make every `pulumi up` reset the scale.
                replicas=None if app.hpa else app.replicas,
                revision_history_limit=app.revision_history_limit,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(app)),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=_int_or_percent(app.strategy.max_surge),
                        max_unavailable=_int_or_percent(app.strategy.max_unavailable),
                    ),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=app.run_as_non_root,
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                        ),
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        svc = app.service
        annotations: dict[str, str] | None = None
        if svc.type == "LoadBalancer" and not args.load_balancer_available:
            pulumi.log.warn(
                f"app {app.name!r}: service type LoadBalancer but no load balancer add-on is enabled; "
                "on bare metal the Service would wait forever for an external address, so Pulumi will "
                "not await it (enable addons.loadBalancer or use NodePort)."
            )
            annotations = {"pulumi.com/skipAwait": "true"}
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(annotations),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=svc.type,
                selector=selector_labels(app),
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=PORT_NAME,
                        port=svc.port,
                        target_port=PORT_NAME,
                        protocol="TCP",
                        node_port=svc.node_port if svc.type != "ClusterIP" else None,
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.service_name = self.service.metadata.name

        self.ingress = None
        self.url = None
        if app.ingress is not None:
            ing = app.ingress
            tls = (
                [k8s.networking.v1.IngressTLSArgs(hosts=[ing.host], secret_name=ing.tls_secret)]
                if ing.tls_secret
                else None
            )
            self.ingress = k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=meta(),
                spec=k8s.networking.v1.IngressSpecArgs(
                    ingress_class_name=ing.class_name or args.ingress_class or None,
                    tls=tls,
                    rules=[
                        k8s.networking.v1.IngressRuleArgs(
                            host=ing.host,
                            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                                paths=[
                                    k8s.networking.v1.HTTPIngressPathArgs(
                                        path=ing.path,
                                        path_type="Prefix",
                                        backend=k8s.networking.v1.IngressBackendArgs(
                                            service=k8s.networking.v1.IngressServiceBackendArgs(
                                                name=app.name,
                                                port=k8s.networking.v1.ServiceBackendPortArgs(name=PORT_NAME),
                                            )
                                        ),
                                    )
                                ]
                            ),
                        )
                    ],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            scheme = "https://" if ing.tls_secret else "http://"
            self.url = pulumi.Output.concat(scheme, ing.host, ing.path)

        self.hpa = None
        if app.hpa is not None:
            self.hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=meta(),
                spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                    scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                        api_version="apps/v1", kind="Deployment", name=app.name
                    ),
                    min_replicas=app.hpa.min_replicas,
                    max_replicas=app.hpa.max_replicas,
                    metrics=[
                        k8s.autoscaling.v2.MetricSpecArgs(
                            type="Resource",
                            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                                name="cpu",
                                target=k8s.autoscaling.v2.MetricTargetArgs(
                                    type="Utilization", average_utilization=app.hpa.cpu_utilization
                                ),
                            ),
                        )
                    ],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.register_outputs(
            {
                "deployment": self.deployment.metadata.name,
                "service": self.service_name,
                "serviceType": svc.type,
                "url": self.url,
            }
        )

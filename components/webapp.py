"""Creates a stateless web application: Deployment, Service, and optionally an
Ingress and a HorizontalPodAutoscaler (autoscaling/v2, CPU), from an `AppSpec`; with
`config` a ConfigMap `<app>-config` (env and/or files), with `secretEnv` a Secret
`<app>-secret` (env via secretKeyRef), with `volumes` one PersistentVolumeClaim
`<app>-<volume>` each, and with `mesh` + `resilience` the mesh's traffic policy
(components/mesh.py).

A change of the ConfigMap's or Secret's content rolls the Deployment: the pod template
carries `k8s-platform/config-hash`, a digest of both (see `config_hash`).

Every object has an explicit `metadata.name` (the app name): rendering is
deterministic, runbooks can name objects, and a rolling update keeps the same
Deployment so its old ReplicaSets stay available to `kubectl rollout undo`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import mesh
from components.vocabulary import ENV_NAME, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL
from components.volumes import claim_spec
from components.webapp_config import AppSpec, ProbeSpec

PORT_NAME = "http"
CONFIG_HASH_ANNOTATION = "k8s-platform/config-hash"
CONFIG_VOLUME = "config"


@dataclass(frozen=True)
class WebAppArgs:
    spec: AppSpec
    ingress_class: str = ""  # the ingress add-on's IngressClass, used when the app names none
    load_balancer_available: bool = False  # MetalLB (or a cloud LB) can assign addresses
    # Values of the secret config keys the app's `secretEnv` names (key -> Pulumi secret).
    secret_values: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    cluster_domain: str = "cluster.local"  # for the mesh's Service FQDNs
    protect: bool = False  # prod: PVCs leave the stack only on purpose


def config_map_name(app: AppSpec) -> str:
    return f"{app.name}-config"


def secret_name(app: AppSpec) -> str:
    return f"{app.name}-secret"


def claim_name(app: AppSpec, volume: str) -> str:
    return f"{app.name}-{volume}"


def _digest_config(data: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()


def _digest_secrets(app: AppSpec, names: Sequence[str], values: Sequence[str]) -> str:
    # A slow, salted KDF rather than sha256: the annotation is readable by anyone who may
    # read Deployments (and sits in plain text in the Pulumi state), so guessing a short
    # secret from it must cost real work per guess and per app.
    payload = json.dumps(dict(zip(names, values, strict=True)), sort_keys=True).encode()
    salt = f"k8s-platform/config-hash/{app.namespace}/{app.name}".encode()
    return hashlib.scrypt(payload, salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


def config_hash(app: AppSpec, secret_values: Mapping[str, pulumi.Input[str]]) -> pulumi.Output[str] | None:
    """Digest of the app's ConfigMap data and Secret values, for the pod-template annotation.

    None when the app has neither (existing Deployments keep their template, so upgrading
    the program rolls nobody). The secret part is computed inside `apply` and the result is
    deliberately *not* a secret: a secret annotation would make Pulumi treat the Deployment's
    whole pod template (and, through the provider, its `spec`) as secret, so `pulumi
    preview --diff` would show `[secret]` instead of e.g. the image change. The value is a
    one-way, salted scrypt digest, so nothing of the plaintext is recoverable from it.
    """
    if app.config is None and not app.secret_env:
        return None
    config_part = _digest_config(app.config.data) if app.config is not None else ""
    if not app.secret_env:
        return pulumi.Output.from_input(hashlib.sha256(f"{config_part}:".encode()).hexdigest())
    names = sorted(app.secret_env)
    values = [pulumi.Output.from_input(secret_values[app.secret_env[n]]) for n in names]

    def combine(plain: list[Any]) -> str:
        secret_part = _digest_secrets(app, names, [str(v) for v in plain])
        return hashlib.sha256(f"{config_part}:{secret_part}".encode()).hexdigest()

    return pulumi.Output.unsecret(pulumi.Output.all(*values).apply(combine))


def selector_labels(app: AppSpec) -> dict[str, str]:
    """The immutable selector: name + instance only, so adding labels later never orphans pods."""
    return {NAME_LABEL: app.name, INSTANCE_LABEL: app.name}


def app_labels(app: AppSpec) -> dict[str, str]:
    return {**selector_labels(app), MANAGED_BY_LABEL: MANAGED_BY}


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


def _port_sysctls(app: AppSpec) -> list[k8s.core.v1.SysctlArgs] | None:
    """A port below 1024 needs CAP_NET_BIND_SERVICE, which every app drops; this namespaced,
    "safe" sysctl (allowed by the restricted Pod Security Standard) lets the app's process
    bind it in its own network namespace, as root or not. None for ports from 1024."""
    if app.port >= 1024:
        return None
    return [k8s.core.v1.SysctlArgs(name="net.ipv4.ip_unprivileged_port_start", value=str(app.port))]


def _resources(app: AppSpec) -> k8s.core.v1.ResourceRequirementsArgs | None:
    if not app.resources.requests and not app.resources.limits:
        return None
    return k8s.core.v1.ResourceRequirementsArgs(
        requests=dict(sorted(app.resources.requests.items())) or None,
        limits=dict(sorted(app.resources.limits.items())) or None,
    )


def _security(app: AppSpec) -> k8s.core.v1.SecurityContextArgs:
    """Every container of the app: non-root unless allowed, no capabilities, RuntimeDefault seccomp."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        run_as_non_root=app.run_as_non_root,
        run_as_user=app.run_as_user,
        read_only_root_filesystem=app.read_only_root_filesystem,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def _env(app: AppSpec) -> list[k8s.core.v1.EnvVarArgs]:
    # Sorted: the pod template (and so the rollout) must not change when only
    # the order of keys in the stack file does. The ConfigMap and Secret are named
    # literally (not via their outputs): an output of a Secret is itself secret and
    # would hide the Deployment's diff; `depends_on` keeps the order instead.
    env: list[k8s.core.v1.EnvVarArgs] = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in app.env.items()]
    if app.config is not None and app.config.env:
        env += [
            k8s.core.v1.EnvVarArgs(
                name=k,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    config_map_key_ref=k8s.core.v1.ConfigMapKeySelectorArgs(name=config_map_name(app), key=k)
                ),
            )
            for k in app.config.data
            if ENV_NAME.fullmatch(k)
        ]
    env += [
        k8s.core.v1.EnvVarArgs(
            name=k,
            value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret_name(app), key=k)
            ),
        )
        for k in app.secret_env
    ]
    env.sort(key=lambda e: str(e.name))
    return env


def _volumes(app: AppSpec) -> tuple[list[k8s.core.v1.VolumeArgs], list[k8s.core.v1.VolumeMountArgs]]:
    """The pod's volumes (the config ConfigMap, one claim per volume) and the container's mounts."""
    volumes: list[k8s.core.v1.VolumeArgs] = []
    mounts: list[k8s.core.v1.VolumeMountArgs] = []
    if app.config is not None and app.config.mount_path:
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name=CONFIG_VOLUME,
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=config_map_name(app)),
            )
        )
        mounts.append(k8s.core.v1.VolumeMountArgs(name=CONFIG_VOLUME, mount_path=app.config.mount_path, read_only=True))
    for vol in app.volumes:
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name=vol.name,
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                    claim_name=claim_name(app, vol.name), read_only=vol.read_only
                ),
            )
        )
        mounts.append(k8s.core.v1.VolumeMountArgs(name=vol.name, mount_path=vol.mount_path, read_only=vol.read_only))
    return volumes, mounts


def _containers(
    app: AppSpec, env: list[k8s.core.v1.EnvVarArgs], mounts: list[k8s.core.v1.VolumeMountArgs]
) -> tuple[list[k8s.core.v1.ContainerArgs], k8s.core.v1.ContainerArgs]:
    """(init containers, the app's container)."""
    security = _security(app)
    # Init containers share the app's environment, mounts and restrictions: a migration
    # reads the same config and secrets the app does.
    init_containers = [
        k8s.core.v1.ContainerArgs(
            name=init.name,
            image=init.image,
            command=list(init.command),
            env=env or None,
            volume_mounts=mounts or None,
            resources=_resources(app),
            security_context=security,
        )
        for init in app.init_containers
    ]
    container = k8s.core.v1.ContainerArgs(
        name=app.name,
        image=app.image,
        ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=app.port, protocol="TCP")],
        env=env or None,
        volume_mounts=mounts or None,
        resources=_resources(app),
        readiness_probe=_probe(app.readiness),
        liveness_probe=_probe(app.liveness),
        security_context=security,
    )
    return init_containers, container


def _ingress_spec(app: AppSpec, default_class: str) -> k8s.networking.v1.IngressSpecArgs:
    assert app.ingress is not None
    ing = app.ingress
    tls = [k8s.networking.v1.IngressTLSArgs(hosts=[ing.host], secret_name=ing.tls_secret)] if ing.tls_secret else None
    return k8s.networking.v1.IngressSpecArgs(
        ingress_class_name=ing.class_name or default_class or None,
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
    )


def _hpa_spec(app: AppSpec) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs:
    assert app.hpa is not None
    return k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
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
    )


class WebApp(pulumi.ComponentResource):
    """Deployment + Service (+ Ingress, + HPA) for one app."""

    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    service_name: pulumi.Output[str]
    ingress: k8s.networking.v1.Ingress | None
    hpa: k8s.autoscaling.v2.HorizontalPodAutoscaler | None
    url: pulumi.Output[str] | None
    config_map: k8s.core.v1.ConfigMap | None
    secret: k8s.core.v1.Secret | None
    claims: dict[str, k8s.core.v1.PersistentVolumeClaim]
    traffic_policy: mesh.AppTrafficPolicy | None

    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:webapp:WebApp", name, None, opts)
        self._app = app = args.spec
        missing = sorted(k for k in app.secret_env.values() if k not in args.secret_values)
        if missing:
            raise ValueError(f"app {app.name!r}: no value passed for the secret config key(s) {', '.join(missing)}")
        deps = self._config_and_secret(name, args)
        deps += self._claims(name, args)
        self._deployment(name, args, deps)
        self._service(name, args)
        self._ingress(name, args)
        self._traffic_policy(name, args)
        self._hpa(name, app)
        self.register_outputs(
            {
                "deployment": self.deployment.metadata.name,
                "service": self.service_name,
                "serviceType": app.service.type,
                "url": self.url,
            }
        )

    def _meta(self, object_name: str = "", annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
        app = self._app
        return k8s.meta.v1.ObjectMetaArgs(
            name=object_name or app.name, namespace=app.namespace, labels=app_labels(app), annotations=annotations
        )

    def _config_and_secret(self, name: str, args: WebAppArgs) -> list[pulumi.Resource]:
        """ConfigMap `<app>-config` (app.config) and Secret `<app>-secret` (secretEnv), when set."""
        app = args.spec
        deps: list[pulumi.Resource] = []
        self.config_map = None
        if app.config is not None:
            self.config_map = k8s.core.v1.ConfigMap(
                f"{name}-config",
                metadata=self._meta(config_map_name(app)),
                data=dict(sorted(app.config.data.items())),
                opts=pulumi.ResourceOptions(parent=self),
            )
            deps.append(self.config_map)
        self.secret = None
        if app.secret_env:
            self.secret = k8s.core.v1.Secret(
                f"{name}-secret",
                metadata=self._meta(secret_name(app)),
                type="Opaque",
                string_data={
                    env_name: pulumi.Output.secret(args.secret_values[key])
                    for env_name, key in sorted(app.secret_env.items())
                },
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"]),
            )
            deps.append(self.secret)
        return deps

    def _claims(self, name: str, args: WebAppArgs) -> list[pulumi.Resource]:
        """A PersistentVolumeClaim per volume, retained on delete."""
        app = args.spec
        self.claims = {}
        for vol in app.volumes:
            self.claims[vol.name] = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-pvc-{vol.name}",
                metadata=self._meta(claim_name(app, vol.name)),
                spec=claim_spec(vol.claim),
                # The data outlives the app: `pulumi destroy` or dropping the volume from the
                # stack leaves the claim (and its volume) in the cluster.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, protect=args.protect),
            )
        return list(self.claims.values())

    def _deployment(self, name: str, args: WebAppArgs, deps: list[pulumi.Resource]) -> None:
        """The Deployment, after its ConfigMap, Secret and claims."""
        app = args.spec
        labels = app_labels(app)
        digest = config_hash(app, args.secret_values)
        volumes, mounts = _volumes(app)
        init_containers, container = _containers(app, _env(app), mounts)

        rollout = pulumi.CustomTimeouts(create=f"{app.rollout_timeout}s", update=f"{app.rollout_timeout}s")
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=self._meta(),
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
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels={**labels, **mesh.injection_labels(app)},
                        annotations={CONFIG_HASH_ANNOTATION: digest} if digest is not None else None,
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        # a token in every pod is a credential an exploited app does not need
                        automount_service_account_token=app.service_account_token,
                        init_containers=init_containers or None,
                        containers=[container],
                        volumes=volumes or None,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=app.run_as_non_root,
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                            sysctls=_port_sysctls(app),
                        ),
                    ),
                ),
            ),
            # how long `pulumi up` waits for every replica to be Ready before it fails with
            # the pods' reasons (the old ReplicaSet keeps serving meanwhile)
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps, custom_timeouts=rollout),
        )

    def _service(self, name: str, args: WebAppArgs) -> None:
        """The Service; LoadBalancer without a load balancer add-on is not awaited."""
        app = args.spec
        rollout = pulumi.CustomTimeouts(create=f"{app.rollout_timeout}s", update=f"{app.rollout_timeout}s")
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
            metadata=self._meta(annotations=annotations),
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
            # the provider waits for the Service to select a Ready pod: with pods that never get
            # Ready it would wait its default 10 minutes after the Deployment had already failed
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=rollout),
        )

        self.service_name = self.service.metadata.name

    def _ingress(self, name: str, args: WebAppArgs) -> None:
        """The Ingress and the app's URL, when app.ingress is set."""
        app = args.spec
        self.ingress = None
        self.url = None
        if app.ingress is not None:
            ing = app.ingress
            # The controller writes an address into the Ingress status only when its own Service
            # has one; without a load balancer (NodePort on bare metal) that never happens, and
            # Pulumi would wait for it until the update times out.
            ingress_annotations = None if args.load_balancer_available else {"pulumi.com/skipAwait": "true"}
            self.ingress = k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=self._meta(annotations=ingress_annotations),
                spec=_ingress_spec(app, args.ingress_class),
                opts=pulumi.ResourceOptions(parent=self),
            )
            scheme = "https://" if ing.tls_secret else "http://"
            self.url = pulumi.Output.concat(scheme, ing.host, ing.path)

    def _traffic_policy(self, name: str, args: WebAppArgs) -> None:
        """The mesh's traffic policy, for a meshed app with resilience settings."""
        app = args.spec
        self.traffic_policy = None
        if app.mesh and app.resilience is not None:
            self.traffic_policy = mesh.AppTrafficPolicy(
                f"{name}-mesh",
                mesh.AppTrafficPolicyArgs(
                    spec=app, service_port=app.service.port, cluster_domain=args.cluster_domain, labels=app_labels(app)
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.service]),
            )

    def _hpa(self, name: str, app: AppSpec) -> None:
        """The HorizontalPodAutoscaler, when app.hpa is set."""
        self.hpa = None
        if app.hpa is not None:
            self.hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=self._meta(),
                spec=_hpa_spec(app),
                opts=pulumi.ResourceOptions(parent=self),
            )

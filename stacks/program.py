"""The composition of k8s-platform: a validated `PlatformSpec` in, resources out.

Creates, in order: the cluster (kubespray over SSH, or an existing kubeconfig), a
Kubernetes provider built from its kubeconfig, the stack's namespaces, the cluster
add-ons (with the optional service mesh), the static PersistentVolumes, Helm releases,
MySQL and the stateless apps (with their ConfigMaps, Secrets, claims and mesh policies). Everything in-cluster uses
that provider, so nothing is created before the cluster exists. `__main__.py`
calls `build` with real secrets; `python -m stacks render` calls it under mocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import cluster_plan, kubespray_release
from components.addons import ClusterAddons, ClusterAddonsArgs
from components.etcd_backup import (
    KUBESPRAY_BIN_DIR,
    KUBESPRAY_ETCD_CERT_DIR,
    EtcdSnapshots,
    EtcdSnapshotsArgs,
    cronjob_name,
    mirrored,
)
from components.helm_release import HelmRelease, HelmReleaseArgs
from components.kubespray import KubesprayCluster, KubesprayClusterArgs, client_cert_not_after
from components.mysql import MySQLCluster, MySQLClusterArgs
from components.namespaces import NamespacesArgs, PlatformNamespaces
from components.volumes import StaticVolumes, StaticVolumesArgs
from components.webapp import WebApp, WebAppArgs
from stacks.config import ConfigError, PlatformSpec, Problem, parse_config

# what stands for a secret wherever its value is not available or must not appear
# (`python -m stacks render`, the rendered manifests)
REDACTED = "<redacted>"

@dataclass(frozen=True)
class ProgramSecrets:
    """Secret config values, as Pulumi secrets; None where the key is not set."""

    ssh_private_key: pulumi.Output[str] | None = None
    kubeconfig: pulumi.Output[str] | None = None
    mysql_root_password: pulumi.Output[str] | None = None
    mysql_replication_password: pulumi.Output[str] | None = None
    # The secret keys the settings name (apps' `secretEnv`, MySQL app users' passwords;
    # `spec.named_secret_keys`), read with
    # `require_secret`. None means "no values available" (`python -m stacks render`):
    # every referenced key then gets a redacted placeholder.
    extra: Mapping[str, pulumi.Output[str]] | None = field(default_factory=dict)


def _named_secret_values(spec: PlatformSpec, secrets: ProgramSecrets) -> dict[str, pulumi.Output[str]]:
    if secrets.extra is None:
        return {key: pulumi.Output.secret(REDACTED) for key in spec.named_secret_keys}
    missing = [key for key in spec.named_secret_keys if key not in secrets.extra]
    if missing:
        raise ConfigError(
            [Problem(key, f"is referenced by the stack's settings but was not read (pulumi config set --secret {key})")
             for key in missing]
        )  # fmt: skip
    return {key: pulumi.Output.secret(secrets.extra[key]) for key in spec.named_secret_keys}


def _existing_kubeconfig(spec: PlatformSpec, secrets: ProgramSecrets) -> pulumi.Output[str]:
    if secrets.kubeconfig is not None:
        return secrets.kubeconfig
    path = Path(spec.cluster.kubeconfig).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [Problem("cluster.kubeconfig", f"cannot read {str(path)!r}: {exc.strerror or exc}")]
        ) from None
    # the file's content goes into the provider's inputs, so it is stored encrypted
    return pulumi.Output.secret(text)


def pod_security_levels(spec: PlatformSpec) -> dict[str, str]:
    """The Pod Security Admission level each namespace's workloads need (the strictest that fits).

    - `restricted`: the program's own workloads (apps running as non-root, MySQL) comply.
    - `baseline`: Helm charts (their pods are the chart's, not ours), and apps that set
      `runAsNonRoot: false`.
    - `privileged`: namespaces with mesh-injected apps; Istio's `istio-init` container
      needs NET_ADMIN and NET_RAW, which even `baseline` forbids (without istio-cni).
    """
    order = ("restricted", "baseline", "privileged")
    levels: dict[str, str] = {}

    def need(namespace: str, level: str) -> None:
        levels[namespace] = max(levels.get(namespace, "restricted"), level, key=order.index)

    for release in spec.helm.releases:
        need(release.namespace, "baseline")
    for app in spec.apps:
        need(app.namespace, "privileged" if app.mesh else ("baseline" if not app.run_as_non_root else "restricted"))
    if spec.mysql.enabled:
        need(spec.mysql.namespace, "restricted")
    return levels


def _effective_kube_version(spec: PlatformSpec) -> str:
    """The Kubernetes version a kubespray stack runs: kubeVersion, or the pinned release's default."""
    cluster = spec.cluster
    if cluster.kube_version or cluster.kubespray is None:
        return cluster.kube_version
    rel = kubespray_release.release(cluster.kubespray.version)
    return rel.default_kube_version if rel else ""


@dataclass
class _Build:
    """What every step of `build` shares: the stack's spec and secrets, and what it has built."""

    spec: PlatformSpec
    secrets: ProgramSecrets
    project_root: Path
    stack: str
    outputs: dict[str, Any]
    # what every in-cluster resource waits for (the kubespray cluster, when there is one)
    cluster_deps: list[pulumi.Resource] = field(default_factory=list)
    self_ref: pulumi.StackReference | None = None

    def previous_output(self, key: str) -> pulumi.Output[Any]:
        """This stack's own output `key` from its last update (guards compare against it)."""
        if self.self_ref is None:
            self.self_ref = pulumi.StackReference(
                f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
            )
        return self.self_ref.get_output(key)


def build(spec: PlatformSpec, secrets: ProgramSecrets, project_root: Path, stack: str = "") -> dict[str, Any]:
    """Register every resource of the stack; returns the stack outputs."""
    b = _Build(spec, secrets, project_root, stack or pulumi.get_stack(),
               {"environment": spec.environment, "clusterMode": spec.cluster.mode})  # fmt: skip
    taints_from: tuple[str, ...] = ()
    if spec.cluster.mode == "kubespray":
        kubeconfig = _kubespray_cluster(b)
    else:
        kubeconfig = _existing_kubeconfig(spec, secrets)
        if spec.schedulable_control_plane:
            taints_from = tuple(n.name for n in spec.cluster.nodes if n.is_control_plane)
    provider = _provider(b, kubeconfig)
    in_cluster = pulumi.ResourceOptions(provider=provider, depends_on=b.cluster_deps)
    namespaces = _namespaces(b, in_cluster)
    addons = _addons(b, taints_from, in_cluster)
    if spec.cluster.mode == "kubespray" and spec.cluster.etcd_backup.schedule:
        _etcd_snapshots(b, in_cluster)
    volumes = _volumes(b, in_cluster)

    def after_addons() -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(provider=provider, depends_on=[*b.cluster_deps, addons])

    _releases(b, namespaces, after_addons)
    secret_values = _named_secret_values(spec, secrets)
    if spec.mysql.enabled:
        _mysql(b, namespaces, secret_values, after_addons())
    _apps(b, provider, namespaces, addons, volumes, secret_values)
    return b.outputs


def _kubespray_cluster(b: _Build) -> pulumi.Output[str]:
    """The cluster kubespray installs on the stack's machines, and the records the next run's
    guards read; returns its kubeconfig."""
    spec, secrets, project_root, stack, outputs = b.spec, b.secrets, b.project_root, b.stack, b.outputs
    previous_output = b.previous_output
    if secrets.ssh_private_key is None:
        raise ConfigError([Problem("sshPrivateKey", "is required in kubespray mode")])
    cluster = KubesprayCluster(
        "cluster",
        KubesprayClusterArgs(
            cluster=spec.cluster,
            schedulable_control_plane=spec.schedulable_control_plane,
            ssh_private_key=secrets.ssh_private_key,
            inventory_name=f"k8s-platform-{stack}",
            kube_version=_effective_kube_version(spec),
            previous=pulumi.Output.all(
                kubeVersion=previous_output("kubeVersion"), clusterLayout=previous_output("clusterLayout")
            ),
            previous_kubeconfig=previous_output("kubeconfig"),
            previous_kubeconfig_refresh=previous_output("kubeconfigRefresh"),
            registry_cas={
                m.registry: (project_root / m.ca).read_text(encoding="utf-8")
                for m in spec.cluster.registry_mirrors
                if m.ca
            },
        ),
    )
    kubeconfig = cluster.kubeconfig
    b.cluster_deps.append(cluster)
    outputs["inventoryDir"] = cluster.inventory_dir
    # recorded only once the cluster (and any upgrade) went through: the next run's guard
    # (the reader's stdout is secret; the version derived from its completion is not)
    outputs["kubeVersion"] = pulumi.Output.unsecret(
        cluster.kubeconfig_reader.stdout.apply(lambda _: _effective_kube_version(spec))
    )
    # the layout the plan of the next update starts from, recorded the same way
    layout = cluster_plan.layout(spec.cluster, spec.schedulable_control_plane)
    outputs["clusterLayout"] = pulumi.Output.unsecret(cluster.kubeconfig_reader.stdout.apply(lambda _: layout))
    outputs["nodes"] = [n.name for n in spec.cluster.members]
    # the refresh token the next run compares with, and when the exported client certificate
    # ends (a date, no secret)
    outputs["kubeconfigRefresh"] = cluster.kubeconfig_refresh
    outputs["kubeconfigExpires"] = pulumi.Output.unsecret(
        cluster.kubeconfig.apply(lambda k: (d.date().isoformat() if (d := client_cert_not_after(k)) else ""))
    )
    return kubeconfig


def _provider(b: _Build, kubeconfig: Any) -> k8s.Provider:
    spec, cluster_deps = b.spec, b.cluster_deps
    provider = k8s.Provider(
        "k8s",
        kubeconfig=kubeconfig,
        context=spec.cluster.context or None,
        opts=pulumi.ResourceOptions(depends_on=cluster_deps, additional_secret_outputs=["kubeconfig"]),
    )
    b.outputs["kubeconfig"] = pulumi.Output.secret(kubeconfig)
    return provider


def _namespaces(b: _Build, in_cluster: pulumi.ResourceOptions) -> PlatformNamespaces:
    spec = b.spec
    return PlatformNamespaces(
        "namespaces",
        NamespacesArgs(
            names=spec.namespaces,
            labels={"k8s-platform/environment": spec.environment},
            pod_security=pod_security_levels(spec),
        ),
        opts=in_cluster,
    )


def _addons(b: _Build, taints_from: tuple[str, ...], in_cluster: pulumi.ResourceOptions) -> ClusterAddons:
    spec = b.spec
    return ClusterAddons(
        "addons",
        ClusterAddonsArgs(
            spec=spec.addons,
            schedulable_control_plane=spec.schedulable_control_plane,
            remove_taints_from=taints_from,
            # kubespray clusters get CA-signed kubelet serving certs (group_vars); prod verifies them
            verify_kubelet_tls=spec.environment == "prod" and spec.cluster.mode == "kubespray",
        ),
        opts=in_cluster,
    )


def _etcd_snapshots(b: _Build, in_cluster: pulumi.ResourceOptions) -> None:
    spec, outputs = b.spec, b.outputs
    extra = spec.cluster.extra_vars
    snapshots = EtcdSnapshots(
        "etcd-snapshots",
        EtcdSnapshotsArgs(
            backup=spec.cluster.etcd_backup,
            members=tuple(n.name for n in spec.cluster.members if n.is_etcd),
            image=mirrored(spec.cluster.etcd_backup.image, spec.cluster.image_repos.docker),
            # kubespray's own variables, when the stack changes them through extraVars
            bin_dir=str(extra.get("bin_dir", KUBESPRAY_BIN_DIR)),
            cert_dir=str(extra.get("etcd_cert_dir", KUBESPRAY_ETCD_CERT_DIR)),
        ),
        opts=in_cluster,
    )
    outputs["etcdSnapshots"] = {
        "schedule": spec.cluster.etcd_backup.schedule,
        "cronjobs": [f"kube-system/{cronjob_name(m)}" for m in snapshots.cronjobs],
    }


def _volumes(b: _Build, in_cluster: pulumi.ResourceOptions) -> StaticVolumes | None:
    spec, outputs = b.spec, b.outputs
    volumes = None
    if spec.storage.volumes:
        volumes = StaticVolumes(
            "volumes",
            StaticVolumesArgs(volumes=spec.storage.volumes, protect=spec.environment == "prod"),
            opts=in_cluster,
        )
        outputs["persistentVolumes"] = sorted(volumes.by_name)
    return volumes


def _releases(
    b: _Build, namespaces: PlatformNamespaces, after_addons: Callable[[], pulumi.ResourceOptions]
) -> None:
    spec, outputs, project_root = b.spec, b.outputs, b.project_root
    releases = []
    for release in spec.helm.releases:
        ns = namespaces.by_name.get(release.namespace)
        releases.append(
            HelmRelease(
                f"release-{release.namespace}-{release.name}",
                HelmReleaseArgs(spec=release, project_root=str(project_root), namespace_resource=ns),
                opts=after_addons(),
            )
        )
    outputs["helmReleases"] = [
        pulumi.Output.all(r.release_name, r.namespace, r.chart, r.version, r.revision).apply(
            lambda v: {"name": v[0], "namespace": v[1], "chart": v[2], "version": v[3], "revision": v[4]}
        )
        for r in releases
    ]


def _mysql(
    b: _Build, namespaces: PlatformNamespaces, secret_values: Mapping[str, Any], after_addons: pulumi.ResourceOptions
) -> None:
    spec, secrets, outputs, previous_output = b.spec, b.secrets, b.outputs, b.previous_output
    # Kubernetes forbids changing a StatefulSet's volumeClaimTemplates: compare with what this
    # stack deployed last time (its own previous outputs) and refuse before the StatefulSet is sent.
    # Likewise a change of image MySQL cannot make (a downgrade, a skipped LTS series, a scale
    # while the series changes).
    previous_storage = previous_output("mysql").apply(lambda m: (m or {}).get("storage"))
    previous_server = previous_output("mysql").apply(lambda m: (m or {}).get("server"))
    if secrets.mysql_root_password is None or secrets.mysql_replication_password is None:
        raise ConfigError([Problem("mysqlRootPassword", "MySQL passwords are required when mysql.enabled is true")])
    mysql = MySQLCluster(
        spec.mysql.name,
        MySQLClusterArgs(
            spec=spec.mysql,
            root_password=secrets.mysql_root_password,
            replication_password=secrets.mysql_replication_password,
            user_passwords={u.name: secret_values[u.password_secret] for u in spec.mysql.users},
            protect=spec.environment == "prod",
            required_anti_affinity=spec.environment == "prod",
            namespace_resource=namespaces.by_name.get(spec.mysql.namespace),
            previous_storage=previous_storage,
            previous_server=previous_server,
        ),
        opts=after_addons,
    )
    outputs["mysql"] = {
        "primaryHost": mysql.primary_host,
        "readHost": mysql.read_host,
        "members": mysql.members,
        "storage": mysql.storage,
        "server": mysql.server,
        "users": [u.name for u in spec.mysql.users],
    }


def _apps(
    b: _Build,
    provider: k8s.Provider,
    namespaces: PlatformNamespaces,
    addons: ClusterAddons,
    volumes: StaticVolumes | None,
    secret_values: Mapping[str, Any],
) -> None:
    spec, cluster_deps = b.spec, b.cluster_deps
    apps = {}
    cluster_domain = spec.addons.mesh.cluster_domain if spec.addons.mesh is not None else "cluster.local"
    for app in spec.apps:
        # Apps wait for the add-ons (the mesh's CRDs and injector before a sidecar-injected
        # pod or a VirtualService) and for the static volumes their claims bind.
        web = WebApp(
            f"app-{app.namespace}-{app.name}",
            WebAppArgs(
                spec=app,
                ingress_class=spec.addons.ingress.class_name,
                load_balancer_available=spec.addons.load_balancer.enabled,
                secret_values={k: secret_values[k] for k in app.secret_env.values()},
                cluster_domain=cluster_domain,
                protect=spec.environment == "prod",
            ),
            opts=pulumi.ResourceOptions(
                provider=provider,
                depends_on=[*cluster_deps, namespaces, addons, *([volumes] if volumes and app.volumes else [])],
            ),
        )
        apps[f"{app.namespace}/{app.name}"] = {"service": web.service_name, "url": web.url}
    b.outputs["apps"] = apps


def deploy(raw_config: dict[str, Any], secrets: ProgramSecrets, project_root: Path, stack: str = "") -> dict[str, Any]:
    """Validate the whole config, then build; a bad config registers no resource at all."""
    spec = parse_config(raw_config, project_root=project_root, source=f"stack {stack or pulumi.get_stack()}")
    return build(spec, secrets, project_root, stack)

"""EtcdSnapshots: scheduled etcd snapshots on every etcd member (`cluster.etcdBackup.schedule`).

One CronJob per etcd member in kube-system, pinned to that node, on the host network:
a small shell image runs the same `kubespray_scripts/etcd-snapshot.sh` the program runs
before the cluster changes, with the node's own `etcdctl` (installed by kubespray, so the
client matches the server) and that member's admin certificate, both mounted read-only
from the host. Snapshots land on the member's disk under
`<directory>/k8s-platform-etcd/scheduled`, the newest `retention` kept: every member keeps
its own, so losing a machine loses none of the others'.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.checks import image_registry
from components.cluster_config import EtcdBackup
from components.kubespray import ETCD_SNAPSHOT_SCRIPT
from components.vocabulary import HOSTNAME_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL

NAMESPACE = "kube-system"
APP = "etcd-snapshot"
SCRIPT_KEY = "etcd-snapshot.sh"
CRONJOB_NAME_MAX = 52  # CronJob names leave room for the Job's suffix
# kubespray's defaults; a stack that changes them through extraVars changes them here too
KUBESPRAY_BIN_DIR = "/usr/local/bin"  # bin_dir: where etcdctl is on the node
KUBESPRAY_ETCD_CERT_DIR = "/etc/ssl/etcd/ssl"  # etcd_cert_dir


@dataclass(frozen=True)
class EtcdSnapshotsArgs:
    backup: EtcdBackup
    members: tuple[str, ...]  # the etcd members (Kubernetes nodes), by node name
    image: str  # the shell image, after the stack's registry mirror
    bin_dir: str = KUBESPRAY_BIN_DIR
    cert_dir: str = KUBESPRAY_ETCD_CERT_DIR


def mirrored(image: str, docker_repo: str) -> str:
    """A Docker Hub image through the stack's `imageRepos.docker` mirror (others unchanged)."""
    registry, path = image_registry(image)
    if not docker_repo or registry != "docker.io" or image.startswith("docker.io/"):
        return image
    return f"{docker_repo.rstrip('/')}/{path}"


def cronjob_name(member: str) -> str:
    name = f"{APP}-{member}"
    if len(name) <= CRONJOB_NAME_MAX:
        return name
    digest = hashlib.sha256(member.encode()).hexdigest()[:8]
    return f"{name[: CRONJOB_NAME_MAX - 9].rstrip('-.')}-{digest}"


def pod_spec(args: EtcdSnapshotsArgs, member: str, script_config_map: pulumi.Input[str]) -> k8s.core.v1.PodSpecArgs:
    backup = args.backup
    return k8s.core.v1.PodSpecArgs(
        node_selector={HOSTNAME_LABEL: member},
        # etcd members are control-plane nodes: tolerate their taint (and nothing else)
        tolerations=[
            k8s.core.v1.TolerationArgs(key="node-role.kubernetes.io/control-plane", operator="Exists", effect="NoSchedule")
        ],
        host_network=True,  # kubespray's etcd listens on https://127.0.0.1:2379
        restart_policy="Never",
        automount_service_account_token=False,
        priority_class_name="system-cluster-critical",
        security_context=k8s.core.v1.PodSecurityContextArgs(run_as_user=0, run_as_group=0),  # the certificates are root's
        containers=[
            k8s.core.v1.ContainerArgs(
                name="snapshot",
                image=args.image,
                image_pull_policy="IfNotPresent",
                command=["/bin/sh", f"/scripts/{SCRIPT_KEY}", "/backup", str(backup.retention)],
                env=[
                    k8s.core.v1.EnvVarArgs(name="ETCDCTL", value="/host/etcdctl"),
                    k8s.core.v1.EnvVarArgs(name="ETCDCTL_ENDPOINTS", value="https://127.0.0.1:2379"),
                    k8s.core.v1.EnvVarArgs(name="ETCDCTL_CERT", value=f"/etcd-certs/admin-{member}.pem"),
                    k8s.core.v1.EnvVarArgs(name="ETCDCTL_KEY", value=f"/etcd-certs/admin-{member}-key.pem"),
                    k8s.core.v1.EnvVarArgs(name="ETCDCTL_CACERT", value="/etcd-certs/ca.pem"),
                ],
                resources=k8s.core.v1.ResourceRequirementsArgs(
                    requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"}
                ),
                security_context=k8s.core.v1.SecurityContextArgs(
                    allow_privilege_escalation=False,
                    read_only_root_filesystem=True,
                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"], add=["DAC_OVERRIDE"]),
                ),
                volume_mounts=[
                    k8s.core.v1.VolumeMountArgs(name="script", mount_path="/scripts", read_only=True),
                    k8s.core.v1.VolumeMountArgs(name="etcdctl", mount_path="/host/etcdctl", read_only=True),
                    k8s.core.v1.VolumeMountArgs(name="etcd-certs", mount_path="/etcd-certs", read_only=True),
                    k8s.core.v1.VolumeMountArgs(name="backup", mount_path="/backup"),
                ],
            )
        ],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="script",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=script_config_map, default_mode=0o555),
            ),
            k8s.core.v1.VolumeArgs(
                name="etcdctl",
                host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=f"{args.bin_dir}/etcdctl", type="File"),
            ),
            k8s.core.v1.VolumeArgs(
                name="etcd-certs", host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=args.cert_dir, type="Directory")
            ),
            k8s.core.v1.VolumeArgs(
                name="backup",
                host_path=k8s.core.v1.HostPathVolumeSourceArgs(
                    path=f"{backup.directory.rstrip('/')}/k8s-platform-etcd/scheduled", type="DirectoryOrCreate"
                ),
            ),
        ],
    )


class EtcdSnapshots(pulumi.ComponentResource):
    """A CronJob per etcd member taking etcd snapshots on `cluster.etcdBackup.schedule`."""

    def __init__(self, name: str, args: EtcdSnapshotsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:cluster:EtcdSnapshots", name, None, opts)
        labels = {NAME_LABEL: APP, MANAGED_BY_LABEL: MANAGED_BY}
        child = pulumi.ResourceOptions(parent=self)

        # 1. the script, the same one the pre-change playbook runs
        script = k8s.core.v1.ConfigMap(
            f"{name}-script",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{APP}-script", namespace=NAMESPACE, labels=labels),
            data={SCRIPT_KEY: ETCD_SNAPSHOT_SCRIPT.read_text(encoding="utf-8")},
            opts=child,
        )

        # 2. a CronJob per member, pinned to it
        self.cronjobs: dict[str, k8s.batch.v1.CronJob] = {}
        for member in args.members:
            self.cronjobs[member] = k8s.batch.v1.CronJob(
                f"{name}-{member}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=cronjob_name(member), namespace=NAMESPACE, labels={**labels, "k8s-platform/etcd-member": member}
                ),
                spec=k8s.batch.v1.CronJobSpecArgs(
                    schedule=args.backup.schedule,
                    time_zone="Etc/UTC",
                    concurrency_policy="Forbid",
                    starting_deadline_seconds=600,
                    successful_jobs_history_limit=1,
                    failed_jobs_history_limit=3,
                    job_template=k8s.batch.v1.JobTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                        spec=k8s.batch.v1.JobSpecArgs(
                            backoff_limit=1,
                            active_deadline_seconds=900,
                            ttl_seconds_after_finished=86400,
                            template=k8s.core.v1.PodTemplateSpecArgs(
                                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                                spec=pod_spec(args, member, script.metadata.name),
                            ),
                        ),
                    ),
                ),
                opts=child,
            )

        self.register_outputs({"cronjobs": {m: cronjob_name(m) for m in args.members}})

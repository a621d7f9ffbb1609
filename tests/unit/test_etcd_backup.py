"""Scheduled etcd snapshots (`cluster.etcdBackup.schedule`): one CronJob per etcd member, under mocks."""

from __future__ import annotations

from typing import Any

import pulumi

from components.etcd_backup import EtcdSnapshots, EtcdSnapshotsArgs, cronjob_name, mirrored
from components.kubespray import ETCD_SNAPSHOT_SCRIPT
from stacks.config import parse_config
from stacks.program import ProgramSecrets, deploy
from tests.support.mocks import PROJECT_ROOT, PlatformMocks, kubespray_config, run_program

CRONJOB = "kubernetes:batch/v1:CronJob"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"


def cronjobs(mocks: PlatformMocks) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in mocks.of_type(CRONJOB)}


def test_one_cronjob_per_member_pinned_to_it(mocks: PlatformMocks) -> None:
    cfg = kubespray_config()
    cfg["cluster"]["etcdBackup"] = {"schedule": "17 */6 * * *", "retention": 7, "directory": "/srv/backups"}
    spec = parse_config(cfg, project_root=PROJECT_ROOT).cluster
    run_program(lambda: EtcdSnapshots("etcd-snapshots", EtcdSnapshotsArgs(
        backup=spec.etcd_backup, members=("node1", "node2", "node3"), image="busybox:1.37")))  # fmt: skip
    jobs = cronjobs(mocks)
    assert sorted(jobs) == ["etcd-snapshot-node1", "etcd-snapshot-node2", "etcd-snapshot-node3"]
    job = jobs["etcd-snapshot-node2"]
    assert job["metadata"]["namespace"] == "kube-system"
    assert job["spec"]["schedule"] == "17 */6 * * *" and job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node2"} and pod["hostNetwork"] is True
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["/bin/sh", "/scripts/etcd-snapshot.sh", "/backup", "7"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"ETCDCTL": "/host/etcdctl", "ETCDCTL_ENDPOINTS": "https://127.0.0.1:2379",
                   "ETCDCTL_CERT": "/etcd-certs/admin-node2.pem", "ETCDCTL_KEY": "/etcd-certs/admin-node2-key.pem",
                   "ETCDCTL_CACERT": "/etcd-certs/ca.pem"}  # fmt: skip
    host = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {"etcdctl": {"path": "/usr/local/bin/etcdctl", "type": "File"},
                    "etcd-certs": {"path": "/etc/ssl/etcd/ssl", "type": "Directory"},
                    "backup": {"path": "/srv/backups/k8s-platform-etcd/scheduled", "type": "DirectoryOrCreate"}}  # fmt: skip
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["etcdctl"]["readOnly"] and mounts["etcd-certs"]["readOnly"] and "readOnly" not in mounts["backup"]
    (script,) = [r.inputs for r in mocks.of_type(CONFIGMAP)]
    assert script["data"]["etcd-snapshot.sh"] == ETCD_SNAPSHOT_SCRIPT.read_text(), "the script the playbook runs"


def test_the_program_schedules_them_in_prod_by_default(mocks: PlatformMocks) -> None:
    cfg = kubespray_config("prod")
    cfg["cluster"]["nodes"] += [{"name": "node4", "address": "10.4.17.170", "roles": ["worker"]}]
    cfg["cluster"]["imageRepos"] = {"docker": "registry.mirror.example.com/docker"}
    cfg["cluster"]["extraVars"] = {"bin_dir": "/opt/bin"}
    cfg.update(mysql={"enabled": False}, apps=[], helm={"releases": []})
    out: dict[str, Any] = {}
    secrets = ProgramSecrets(ssh_private_key=pulumi.Output.secret("k"))
    run_program(lambda: out.update(deploy(cfg, secrets, PROJECT_ROOT, stack="test")))
    jobs = cronjobs(mocks)
    assert sorted(jobs) == ["etcd-snapshot-node1", "etcd-snapshot-node2", "etcd-snapshot-node3"], "etcd members only"
    pod = jobs["etcd-snapshot-node1"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert jobs["etcd-snapshot-node1"]["spec"]["schedule"] == "17 */6 * * *"
    assert pod["containers"][0]["image"] == "registry.mirror.example.com/docker/library/busybox:1.37"
    assert {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}["etcdctl"] == "/opt/bin/etcdctl"


def test_not_scheduled_outside_prod_unless_asked(mocks: PlatformMocks) -> None:
    cfg = kubespray_config("staging")
    cfg.update(mysql={"enabled": False}, apps=[], helm={"releases": []})
    secrets = ProgramSecrets(ssh_private_key=pulumi.Output.secret("k"))
    run_program(lambda: deploy(cfg, secrets, PROJECT_ROOT, stack="test"))
    assert cronjobs(mocks) == {}


def test_names_and_mirrors() -> None:
    assert cronjob_name("node1") == "etcd-snapshot-node1"
    long = cronjob_name("a" * 60)
    assert len(long) <= 52 and long != cronjob_name("a" * 61)
    assert mirrored("busybox:1.37", "") == "busybox:1.37"
    assert mirrored("busybox:1.37", "mirror.example.com/hub") == "mirror.example.com/hub/library/busybox:1.37"
    assert mirrored("acme/tools:1", "mirror.example.com/hub") == "mirror.example.com/hub/acme/tools:1"
    assert mirrored("registry.example.com/tools:1", "mirror.example.com/hub") == "registry.example.com/tools:1"

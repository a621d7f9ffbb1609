"""Static PersistentVolumes (NFS, local with node affinity) and apps' claims: one PVC per
volume, mounted read-only by default, retained on destroy, protected in prod."""

from __future__ import annotations

from typing import Any

import pulumi

from components.storage_config import LocalSource, NfsSource, StaticVolumeSpec
from components.volumes import StaticVolumes, StaticVolumesArgs
from components.webapp import WebApp, WebAppArgs
from components.webapp_config import AppVolumeSpec, ClaimSpec
from stacks.program import ProgramSecrets, deploy
from tests.support.mocks import PROJECT_ROOT, OptsRecorder, PlatformMocks, app_spec, kubespray_config, run_program

PV = "kubernetes:core/v1:PersistentVolume"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"

NFS = StaticVolumeSpec(
    name="shared", capacity="20Gi", access_modes=("ReadWriteMany",), labels={"tier": "shared"},
    nfs=NfsSource("10.0.0.5", "/exports/shared"),
)  # fmt: skip
LOCAL = StaticVolumeSpec(
    name="disk1", capacity="10Gi", access_modes=("ReadWriteOnce",), reclaim_policy="Delete", storage_class="local",
    local=LocalSource("/mnt/disk1", "node3"),
)  # fmt: skip


def _by_name(mocks: PlatformMocks, typ: str) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in mocks.of_type(typ)}


def test_static_volumes(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    run_program(
        lambda: StaticVolumes(
            "volumes",
            StaticVolumesArgs(volumes=(NFS, LOCAL), protect=True),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )
    )
    pvs = _by_name(mocks, PV)
    assert pvs["shared"]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "k8s-platform", "tier": "shared"}
    assert pvs["shared"]["spec"] == {
        "capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteMany"], "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "manual", "volumeMode": "Filesystem", "nfs": {"server": "10.0.0.5", "path": "/exports/shared"},
    }  # fmt: skip
    local = pvs["disk1"]["spec"]
    assert local["local"] == {"path": "/mnt/disk1"} and local["persistentVolumeReclaimPolicy"] == "Delete"
    assert local["storageClassName"] == "local"
    assert local["nodeAffinity"] == {
        "required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node3"]}
        ]}]}
    }  # fmt: skip
    for name in ("volumes-shared", "volumes-disk1"):
        assert opts_recorder.opts[name].retain_on_delete is True, name
        assert opts_recorder.opts[name].protect is True, name


VOLS = (
    AppVolumeSpec("assets", ClaimSpec("5Gi", "manual", ("ReadOnlyMany",), {"tier": "shared"}), "/srv/assets"),
    AppVolumeSpec("scratch", ClaimSpec("2Gi"), "/var/scratch", read_only=False),
)


def test_app_claims_and_mounts(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    run_program(
        lambda: WebApp(
            "app",
            WebAppArgs(spec=app_spec(volumes=VOLS), protect=True),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )
    )
    pvcs = _by_name(mocks, PVC)
    assert set(pvcs) == {"api-assets", "api-scratch"}, "one claim per volume, named <app>-<volume>"
    assert pvcs["api-assets"]["metadata"]["namespace"] == "shop"
    assert pvcs["api-assets"]["spec"] == {
        "accessModes": ["ReadOnlyMany"], "storageClassName": "manual", "selector": {"matchLabels": {"tier": "shared"}},
        "resources": {"requests": {"storage": "5Gi"}}, "volumeMode": "Filesystem",
    }  # fmt: skip
    assert "storageClassName" not in pvcs["api-scratch"]["spec"], "no class: the cluster's default provisions it"
    assert pvcs["api-scratch"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = mocks.of_type(DEPLOYMENT)[0].inputs["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "assets", "persistentVolumeClaim": {"claimName": "api-assets", "readOnly": True}},
        {"name": "scratch", "persistentVolumeClaim": {"claimName": "api-scratch", "readOnly": False}},
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "assets", "mountPath": "/srv/assets", "readOnly": True},
        {"name": "scratch", "mountPath": "/var/scratch", "readOnly": False},
    ]
    for name in ("app-pvc-assets", "app-pvc-scratch"):
        assert opts_recorder.opts[name].retain_on_delete is True, f"{name}: data must survive destroy"
        assert opts_recorder.opts[name].protect is True, name
    deps = opts_recorder.depends_on("app-deployment")
    assert sum(isinstance(d, pulumi.CustomResource) for d in deps) == 2, "the Deployment waits for its claims"


def test_claims_unprotected_outside_prod(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    run_program(
        lambda: WebApp(
            "app",
            WebAppArgs(spec=app_spec(volumes=VOLS[:1])),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )
    )
    assert not opts_recorder.opts["app-pvc-assets"].protect
    assert opts_recorder.opts["app-pvc-assets"].retain_on_delete is True


def test_program_creates_volumes_before_apps(mocks: PlatformMocks) -> None:
    cfg = kubespray_config("prod")
    cfg["storage"] = {"volumes": [{"name": "shared", "capacity": "20Gi", "accessModes": ["ReadWriteMany"],
                                   "nfs": {"server": "10.0.0.5", "path": "/x"}}]}  # fmt: skip
    cfg["apps"] = [{"name": "api", "namespace": "shop", "image": "nginx:1.27.5", "replicas": 2,
                    "volumes": [{"name": "s", "claim": {"size": "1Gi", "storageClass": "manual",
                                 "accessModes": ["ReadWriteMany"]}, "mountPath": "/s"}]}]  # fmt: skip
    cfg["cluster"]["nodes"] = [
        {"name": f"node{i}", "address": f"10.4.17.{166 + i}", "roles": ["control-plane", "etcd", "worker"]}
        for i in (1, 2, 3)
    ]
    out: dict[str, Any] = {}
    secrets = ProgramSecrets(ssh_private_key=pulumi.Output.secret("k"))
    run_program(lambda: out.update(deploy(cfg, secrets, PROJECT_ROOT, stack="test")))
    assert out["persistentVolumes"] == ["shared"]
    order = [r.type for r in mocks.resources]
    assert order.index(PV) < order.index(PVC)
    assert all("pulumi:providers:kubernetes::k8s" in r.provider for r in mocks.resources if r.type in (PV, PVC))

"""The real Pulumi engine (CLI + python host + kubernetes plugin) against the local cluster.

`mode: existing` against the local control plane's kubeconfig: add-ons and a Helm release
from the loopback chart repository, MySQL, an app; the policy pack. Kubespray mode is in
test_kubespray_mode.py.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
from lib.stack import E2EStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

APP_NS, APP = "web", "my-nginx"


def replica_sets(cluster: Any) -> list[dict[str, Any]]:
    items = cluster.get("replicasets", "-n", APP_NS, "-l", f"app.kubernetes.io/name={APP}")["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))


def set_app(stack: E2EStack, **fields: Any) -> None:
    cfg = stack.config()
    cfg["apps"][0].update(fields)
    stack.write_config(cfg)


def test_existing_mode_lifecycle(stack_factory: Any, local_cluster: Any) -> None:
    web_db_password = "web-db-" + secrets.token_urlsafe(18)
    users = [{"name": "web", "databases": ["web"], "passwordSecret": "webDbPassword"}]
    stack = stack_factory("existing", {"mysql": {"users": users}}, secrets={"webDbPassword": web_db_password})

    # 1. pulumi up: everything exists and workloads are Ready
    stack.up()
    for ns in ("web", "data", "monitoring"):
        labels = local_cluster.get("namespace", ns)["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/managed-by") == "k8s-platform", ns
    deploy = local_cluster.get("deployment", APP, "-n", APP_NS)
    assert deploy["status"].get("readyReplicas") == 2
    sts = local_cluster.get("statefulset", "mysql", "-n", "data")
    assert sts["status"].get("readyReplicas") == 2
    pvcs = local_cluster.get("pvc", "-n", "data")["items"]
    assert sorted(p["metadata"]["name"] for p in pvcs) == ["data-mysql-0", "data-mysql-1"]
    assert all(p["status"]["phase"] == "Bound" for p in pvcs)
    # real Helm releases: helm's own storage Secrets exist for the release and each add-on
    helm = local_cluster.get("secrets", "-A", "-l", "owner=helm")["items"]
    released = {s["metadata"]["labels"]["name"] for s in helm}
    assert {"grafana", "traefik", "localpv-provisioner", "metrics-server"} <= released, released
    # schedulableControlPlane in existing mode: node1's NoSchedule control-plane taint is gone
    taints = local_cluster.get("node", "node1")["spec"].get("taints") or []
    assert not [t for t in taints if t["effect"] == "NoSchedule"], taints
    outputs = stack.outputs()
    assert outputs["mysql"]["primaryHost"] == "mysql-primary.data.svc.cluster.local"
    assert outputs["mysql"]["users"] == ["web"]
    assert outputs["kubeconfig"] == "[secret]"
    # the app's MySQL account: its list and password reach the cluster, and only the
    # primary's sidecar mounts them (the password itself never shows in output or state: leaks())
    listed = local_cluster.get("configmap", "mysql-users", "-n", "data")["data"]
    assert listed == {"users": "web readWrite web\n"}
    app_users = local_cluster.get("secret", "mysql-app-users", "-n", "data")["data"]
    assert base64.b64decode(app_users["web"]).decode() == web_db_password
    pod = sts["spec"]["template"]["spec"]
    mounts = {c["name"]: {m["name"] for m in c.get("volumeMounts", [])} for c in pod["containers"]}
    assert "app-users" in mounts["replication"] and "app-users" not in mounts["mysql"]

    # 2. no perpetual diffs
    stack.preview(600, True, "--expect-no-changes")
    second = stack.up()
    assert "unchanged" in second.stdout and " created" not in second.stdout and "updated" not in second.stdout

    # 3a. a new image rolls out: a new ReplicaSet, the old one kept for rollback
    set_app(stack, image="nginxinc/nginx-unprivileged:1.27.4")
    stack.up()
    rs = replica_sets(local_cluster)
    assert len(rs) == 2, [r["metadata"]["name"] for r in rs]
    assert rs[0]["spec"]["replicas"] == 0 and rs[1]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.27.4")
    # 3b. only replicas: scaled, no new ReplicaSet
    set_app(stack, replicas=3)
    stack.up()
    rs_after = replica_sets(local_cluster)
    assert [r["metadata"]["name"] for r in rs_after] == [r["metadata"]["name"] for r in rs]
    assert local_cluster.get("deployment", APP, "-n", APP_NS)["spec"]["replicas"] == 3

    # 6. destroy: the app is gone, MySQL's data is retained
    stack.destroy()
    gone = local_cluster.kubectl("get", "deployment", APP, "-n", APP_NS, check=False)
    assert APP not in gone
    pvcs = local_cluster.get("pvc", "-n", "data")["items"]
    assert sorted(p["metadata"]["name"] for p in pvcs) == ["data-mysql-0", "data-mysql-1"], "PVCs must survive destroy"

    assert stack.leaks() == [], "secret plaintext in pulumi output or state"


def test_rollback_restores_previous_image(stack_factory: Any, local_cluster: Any) -> None:
    stack = stack_factory("existing", {"mysql": {"enabled": False}})
    stack.up()
    set_app(stack, image="nginxinc/nginx-unprivileged:1.27.4")
    stack.up()
    res = stack.stacks("rollback", stack.name, "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    image = local_cluster.get("deployment", APP, "-n", APP_NS)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nginxinc/nginx-unprivileged:1.27.5"
    stack.preview(600, True, "--expect-no-changes")
    assert stack.leaks() == []


def test_drift_is_reported(stack_factory: Any, local_cluster: Any) -> None:
    stack = stack_factory("existing", {"mysql": {"enabled": False}})
    stack.up()
    clean = stack.stacks("drift", stack.name)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    local_cluster.kubectl("scale", "deployment", APP, "-n", APP_NS, "--replicas=5")
    drift = stack.stacks("drift", stack.name)
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert APP in drift.stdout + drift.stderr


def test_policy_pack_blocks_violation(stack_factory: Any) -> None:
    # prod: no-nodeport-services is mandatory by tier (k8s-platform:environment)
    stack = stack_factory("existing", {"environment": "prod", "mysql": {"enabled": False}})
    pack = str(stack.dir / "policy")
    ok = stack.run("preview", "--policy-pack", pack, timeout=600, check=False)
    out = ok.stdout + ok.stderr
    assert ok.returncode == 0, f"a compliant stack must pass the policy pack:\n{out[-3000:]}"
    assert "k8s-platform-guardrails" in out or "Policies:" in out, out[-2000:]

    # replicas: 1 passes config validation, so in prod the pack is what stops it
    cfg = stack.config()
    cfg["apps"][0]["replicas"] = 1
    stack.write_config(cfg)
    bad = stack.run("preview", "--policy-pack", pack, timeout=600, check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0, out[-3000:]
    assert "deployment-replicas" in out and "mandatory" in out, out[-3000:]

    # the same rules are advisory in staging: reported, not blocking
    cfg["environment"] = "staging"
    cfg["apps"][0]["service"] = {"type": "NodePort", "port": 80}
    stack.write_config(cfg)
    advisory = stack.run("preview", "--policy-pack", pack, timeout=600, check=False)
    out = advisory.stdout + advisory.stderr
    assert advisory.returncode == 0, out[-3000:]
    assert "no-nodeport-services" in out and "advisory" in out, out[-3000:]

    # NodePort in prod never reaches the pack: validation refuses it first, with the fix
    cfg["environment"] = "prod"
    cfg["apps"][0]["replicas"] = 2
    stack.write_config(cfg)
    refused = stack.run("preview", "--policy-pack", pack, timeout=600, check=False)
    assert refused.returncode != 0, refused.output
    assert "apps[0].service.type: NodePort is refused in prod" in refused.output, refused.output[-3000:]


def helm_revisions(cluster: Any, namespace: str, release: str) -> list[tuple[int, str]]:
    """(revision, status) of a Helm release, from Helm's own storage Secrets."""
    items = cluster.get("secrets", "-n", namespace, "-l", f"owner=helm,name={release}")["items"]
    return sorted((int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"]) for s in items)


def test_broken_chart_release_rolls_back_atomically(stack_factory: Any, local_cluster: Any) -> None:
    stack = stack_factory("existing", {"mysql": {"enabled": False}})
    stack.up()
    assert helm_revisions(local_cluster, "monitoring", "grafana") == [(1, "deployed")]
    cfg = stack.config()
    cfg["helm"]["releases"][0]["values"]["e2eBreak"] = True
    stack.write_config(cfg)
    res = stack.up(600, False)
    assert res.returncode != 0, res.output[-2000:]
    # the cause, in Helm's words (the Python SDK's shutdown traceback that follows is Pulumi's own)
    assert "has been rolled back due to atomic being set" in res.output, res.output[-3000:]
    revisions = helm_revisions(local_cluster, "monitoring", "grafana")
    # atomic: the failed upgrade (2) was rolled back (3 = revision 1 again), which is what runs
    assert revisions[-1][1] == "deployed" and (2, "failed") in revisions, revisions
    deploy = local_cluster.get("deployments", "-n", "monitoring")["items"]
    assert deploy and all(d["status"].get("readyReplicas") == d["spec"]["replicas"] for d in deploy)
    cfg["helm"]["releases"][0]["values"].pop("e2eBreak")
    stack.write_config(cfg)
    stack.up()
    stack.preview(600, True, "--expect-no-changes")


def test_api_server_unavailable_then_next_up_converges(stack_factory: Any, local_cluster: Any) -> None:
    stack = stack_factory("existing", {"mysql": {"enabled": False}})
    stack.up()
    set_app(stack, replicas=3)
    local_cluster.stop_apiserver()
    try:
        res = stack.up(420, False)
    finally:
        local_cluster.start_apiserver()
    assert res.returncode != 0, res.output[-2000:]
    assert "configured Kubernetes cluster is unreachable" in res.output, res.output[-3000:]
    stack.up()
    assert local_cluster.get("deployment", APP, "-n", APP_NS)["spec"]["replicas"] == 3
    stack.preview(600, True, "--expect-no-changes")


def test_up_after_destroy_reuses_retained_data(stack_factory: Any, local_cluster: Any) -> None:
    stack = stack_factory("existing")
    stack.up()
    stack.destroy()
    again = stack.up(900, False)
    assert again.returncode == 0, "\n".join(line for line in again.output.splitlines() if "error" in line.lower())[:4000]
    pvcs = local_cluster.get("pvc", "-n", "data")["items"]
    assert sorted(p["metadata"]["name"] for p in pvcs) == ["data-mysql-0", "data-mysql-1"]


def test_prod_destroy_refused_while_mysql_is_protected(stack_factory: Any, local_cluster: Any) -> None:
    stack = stack_factory("existing", {"environment": "prod", "mysql": {"replicas": 3}})
    stack.up()
    refused = stack.destroy(600, False)
    assert refused.returncode != 0, refused.output
    assert "protected" in refused.output, refused.output[-3000:]
    assert local_cluster.get("statefulset", "mysql", "-n", "data")["status"].get("readyReplicas") == 3
    # lifting protection is a deliberate, separate step
    stack.run("state", "unprotect", "--all", "--yes")
    stack.destroy()
    pvcs = local_cluster.get("pvc", "-n", "data")["items"]
    assert len(pvcs) == 3, "PVCs survive even an unprotected destroy"


def _statefulset_image_and_replicas(local_cluster: Any) -> tuple[set[str], int]:
    sts = local_cluster.get("statefulset", "mysql", "-n", "data")
    images = {c["image"] for c in sts["spec"]["template"]["spec"]["containers"]}
    return images, sts["spec"]["replicas"]


def test_mysql_upgrade_is_guarded_by_the_last_deployment(stack_factory: Any, local_cluster: Any) -> None:
    """The upgrade guard reads what the previous run deployed (the stack's own outputs, through a
    StackReference in the real engine): a scale during a change of series and a downgrade are refused
    with the reason and send the deployed StatefulSet; an upgrade to the next LTS series rolls."""
    stack = stack_factory("existing", {"mysql": {"image": "mysql:8.4.6", "replicas": 2}})
    stack.up()
    assert _statefulset_image_and_replicas(local_cluster) == ({"mysql:8.4.6"}, 2)

    stack.update_config({"mysql": {"image": "mysql:9.7.4", "replicas": 3}})
    refused = stack.up(900, False)
    assert refused.returncode != 0, refused.output
    assert "mysql.replicas: cannot change from 2 to 3 while mysql.image moves from mysql:8.4.6 to mysql:9.7.4" in (
        refused.output
    ), refused.output[-3000:]
    assert _statefulset_image_and_replicas(local_cluster) == ({"mysql:8.4.6"}, 2)

    stack.update_config({"mysql": {"replicas": 2}})
    stack.up()
    assert _statefulset_image_and_replicas(local_cluster) == ({"mysql:9.7.4"}, 2)
    assert stack.outputs()["mysql"]["server"] == {"name": "mysql", "namespace": "data", "image": "mysql:9.7.4",
                                                  "members": 2}  # fmt: skip

    stack.update_config({"mysql": {"image": "mysql:8.4.6"}})
    downgrade = stack.up(900, False)
    assert downgrade.returncode != 0
    assert "mysql.image: cannot go from the deployed mysql:9.7.4 (9.7.4) down to mysql:8.4.6" in downgrade.output, (
        downgrade.output[-3000:]
    )
    assert _statefulset_image_and_replicas(local_cluster) == ({"mysql:9.7.4"}, 2)

    # the storage guard takes the same path: before the real engine showed it, an error it logged
    # left `pulumi up` exiting 0
    stack.update_config({"mysql": {"image": "mysql:9.7.4", "storage": {"size": "2Gi"}}})
    grown = stack.up(900, False)
    assert grown.returncode != 0
    assert "mysql.storage.size: cannot change from 1Gi to 2Gi" in grown.output, grown.output[-3000:]
    claim = local_cluster.get("statefulset", "mysql", "-n", "data")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"

"""MySQLCluster under Pulumi mocks: every object, option, selector and guard."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.mysql import (
    CNF_FILES,
    SCRIPT_FILES,
    DeployedServer,
    MySQLCluster,
    MySQLClusterArgs,
    check_storage_change,
    check_version_change,
    server_from_output,
    server_output,
    storage_from_output,
    storage_output,
)
from components.mysql_config import (
    DEFAULT_MYSQL_IMAGE,
    MYSQL_LTS_SERIES,
    MYSQL_PASSWORD_MAX_BYTES,
    MYSQL_REPLICATION_PASSWORD_MAX_BYTES,
    MySQLSpec,
    MySQLStorage,
    MySQLUserSpec,
    mysql_version,
    password_limits,
    password_problem,
)
from components.pod_config import PeerSelector, Resources
from tests.support.mocks import OptsRecorder, PlatformMocks, Registered, resolve, run_program

# How the SDK marks a secret value on the wire (pulumi.runtime.rpc).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
ROOT_PW = "r00t-Pa55'word\\with\"quotes"
APP_PW = "orders-S3cret-app-789"
REPL_PW = "repl-S3cret-Value-0123"

SPEC = MySQLSpec(
    enabled=True,
    name="mysql",
    namespace="data",
    replicas=3,
    image="mysql:8.4",
    storage=MySQLStorage(size="20Gi", storage_class="local-path"),
    resources=Resources(requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}),
    allow_from=(
        PeerSelector(namespace="web", pod_labels={"app.kubernetes.io/name": "my-nginx"}),
        PeerSelector(namespace="jobs"),
    ),
)

SELECTOR = {"app.kubernetes.io/name": "mysql", "app.kubernetes.io/instance": "mysql"}
TYPES = {
    "secret": "kubernetes:core/v1:Secret",
    "config": "kubernetes:core/v1:ConfigMap",
    "users": "kubernetes:core/v1:ConfigMap",
    "app-users": "kubernetes:core/v1:Secret",
    "headless": "kubernetes:core/v1:Service",
    "primary": "kubernetes:core/v1:Service",
    "read": "kubernetes:core/v1:Service",
    "statefulset": "kubernetes:apps/v1:StatefulSet",
    "pdb": "kubernetes:policy/v1:PodDisruptionBudget",
    "netpol": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
}


def build(
    spec: MySQLSpec = SPEC,
    recorder: OptsRecorder | None = None,
    **kwargs: Any,
) -> MySQLCluster:
    """Runs a program that creates one MySQLCluster and returns it."""
    built: list[MySQLCluster] = []
    args: dict[str, Any] = {
        "spec": spec,
        "root_password": pulumi.Output.secret(ROOT_PW),
        "replication_password": pulumi.Output.secret(REPL_PW),
        "protect": False,
        "required_anti_affinity": False,
        **kwargs,
    }

    def program() -> None:
        opts = pulumi.ResourceOptions(transformations=[recorder.transformation]) if recorder else None
        built.append(MySQLCluster("db", MySQLClusterArgs(**args), opts=opts))

    run_program(program)
    return built[0]


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_MARK:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def child(mocks: PlatformMocks, role: str) -> Registered:
    res = mocks.named(f"db-{role}")
    assert res.type == TYPES[role], f"db-{role}: type {res.type}"
    return res


def pod_spec(mocks: PlatformMocks) -> dict[str, Any]:
    return child(mocks, "statefulset").inputs["spec"]["template"]["spec"]


def all_containers(mocks: PlatformMocks) -> list[dict[str, Any]]:
    ps = pod_spec(mocks)
    return [*ps["initContainers"], *ps["containers"]]


# --------------------------------------------------------------------------- objects


def test_every_object_has_explicit_name_namespace_and_labels(mocks: PlatformMocks) -> None:
    build()
    expected_names = {
        "secret": "mysql-credentials",
        "config": "mysql-config",
        "users": "mysql-users",
        "app-users": "mysql-app-users",
        "headless": "mysql",
        "primary": "mysql-primary",
        "read": "mysql-read",
        "statefulset": "mysql",
        "pdb": "mysql",
        "netpol": "mysql",
    }
    for role, k8s_name in expected_names.items():
        meta = child(mocks, role).inputs["metadata"]
        assert meta["name"] == k8s_name, f"db-{role}: metadata.name {meta.get('name')!r}"
        assert meta["namespace"] == "data", f"db-{role}: namespace {meta.get('namespace')!r}"
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "mysql", f"db-{role}"
        assert labels["app.kubernetes.io/instance"] == "mysql", f"db-{role}"
        assert labels["app.kubernetes.io/managed-by"] == "k8s-platform", f"db-{role}"
    component_children = [r for r in mocks.resources if r.type.startswith("kubernetes:")]
    assert len(component_children) == len(expected_names)


def test_children_are_parented_and_wait_for_the_namespace(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    ns_holder: list[k8s.core.v1.Namespace] = []

    def program() -> None:
        ns = k8s.core.v1.Namespace("ns-data", metadata={"name": "data"})
        ns_holder.append(ns)
        MySQLCluster(
            "db",
            MySQLClusterArgs(
                spec=SPEC,
                root_password=pulumi.Output.secret(ROOT_PW),
                replication_password=pulumi.Output.secret(REPL_PW),
                protect=False,
                required_anti_affinity=False,
                namespace_resource=ns,
            ),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )

    run_program(program)
    for role in TYPES:
        name = f"db-{role}"
        assert isinstance(opts_recorder.opts[name].parent, MySQLCluster), name
        assert ns_holder[0] in opts_recorder.depends_on(name), f"{name} does not wait for the namespace"


# --------------------------------------------------------------------------- services


def test_headless_service_publishes_not_ready_members(mocks: PlatformMocks) -> None:
    build()
    svc = child(mocks, "headless").inputs["spec"]
    assert svc["clusterIP"] == "None"
    assert svc["publishNotReadyAddresses"] is True
    assert svc["selector"] == SELECTOR
    assert svc["ports"] == [{"name": "mysql", "port": 3306, "protocol": "TCP", "targetPort": "mysql"}]
    assert child(mocks, "statefulset").inputs["spec"]["serviceName"] == "mysql"


def test_primary_service_selects_only_ordinal_zero(mocks: PlatformMocks) -> None:
    build()
    svc = child(mocks, "primary").inputs["spec"]
    assert svc["selector"] == {**SELECTOR, "statefulset.kubernetes.io/pod-name": "mysql-0"}
    assert svc["ports"][0]["port"] == 3306
    assert not svc.get("publishNotReadyAddresses")


def test_read_service_spans_every_ready_member(mocks: PlatformMocks) -> None:
    build()
    svc = child(mocks, "read").inputs["spec"]
    assert svc["selector"] == SELECTOR
    assert not svc.get("publishNotReadyAddresses"), "read service must only route to ready members"
    pod_labels = child(mocks, "statefulset").inputs["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= pod_labels.items()


# --------------------------------------------------------------------------- statefulset


def test_statefulset_shape(mocks: PlatformMocks) -> None:
    build()
    sts = child(mocks, "statefulset").inputs["spec"]
    assert sts["replicas"] == 3
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["selector"] == {"matchLabels": SELECTOR}
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (vct,) = sts["volumeClaimTemplates"]
    assert vct["metadata"]["name"] == "data"
    assert vct["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert vct["spec"]["resources"] == {"requests": {"storage": "20Gi"}}
    assert vct["spec"]["storageClassName"] == "local-path"
    ps = sts["template"]["spec"]
    assert [c["name"] for c in ps["initContainers"]] == ["config", "seed"]
    assert [c["name"] for c in ps["containers"]] == ["mysql", "replication"]
    assert ps["automountServiceAccountToken"] is False
    assert all(c["image"] == "mysql:8.4" for c in all_containers(mocks))


def test_default_storage_class_is_left_to_the_cluster(mocks: PlatformMocks) -> None:
    build(replace(SPEC, storage=MySQLStorage(size="5Gi")))
    vct = child(mocks, "statefulset").inputs["spec"]["volumeClaimTemplates"][0]
    assert "storageClassName" not in vct["spec"]
    assert vct["spec"]["resources"]["requests"]["storage"] == "5Gi"


@pytest.mark.parametrize("protect", [True, False])
def test_statefulset_protect_and_retain_on_delete(
    mocks: PlatformMocks, opts_recorder: OptsRecorder, protect: bool
) -> None:
    build(recorder=opts_recorder, protect=protect)
    opts = opts_recorder.opts["db-statefulset"]
    assert opts.protect is protect, "db-statefulset: protect must follow args.protect"
    assert opts.retain_on_delete is True, "db-statefulset: retain_on_delete"
    assert opts.custom_timeouts is not None and opts.custom_timeouts.create == "30m"
    deps = {getattr(d, "_name", None) for d in opts_recorder.depends_on("db-statefulset")}
    assert {"db-secret", "db-config", "db-headless"} <= deps


def test_resources_come_from_the_spec(mocks: PlatformMocks) -> None:
    build()
    (mysql,) = [c for c in pod_spec(mocks)["containers"] if c["name"] == "mysql"]
    assert mysql["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    (seed,) = [c for c in pod_spec(mocks)["initContainers"] if c["name"] == "seed"]
    assert seed["resources"] == mysql["resources"], "the seed runs a mysqld: same resources"


def test_probes(mocks: PlatformMocks) -> None:
    build()
    (mysql,) = [c for c in pod_spec(mocks)["containers"] if c["name"] == "mysql"]
    for probe, kind in (("startupProbe", "startup"), ("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
        assert mysql[probe]["exec"]["command"] == ["/opt/k8s-platform/mysql/probe.sh", kind], probe
    # the first initialization of the primary must fit in the startup budget
    startup = mysql["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_security_context_restrictive_everywhere(mocks: PlatformMocks) -> None:
    build()
    psc = pod_spec(mocks)["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 999
    assert psc["fsGroup"] == 999
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in all_containers(mocks):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert sc["runAsUser"] == 999, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]


@pytest.mark.parametrize(
    ("required", "present", "absent"),
    [
        (True, "requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"),
        (False, "preferredDuringSchedulingIgnoredDuringExecution", "requiredDuringSchedulingIgnoredDuringExecution"),
    ],
)
def test_anti_affinity(mocks: PlatformMocks, required: bool, present: str, absent: str) -> None:
    build(required_anti_affinity=required)
    anti = pod_spec(mocks)["affinity"]["podAntiAffinity"]
    assert absent not in anti
    (term,) = anti[present]
    if not required:
        assert term["weight"] == 100
        term = term["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"] == {"matchLabels": SELECTOR}


def test_config_map_carries_role_files_and_scripts(mocks: PlatformMocks) -> None:
    build()
    data = child(mocks, "config").inputs["data"]
    assert set(data) == {*CNF_FILES, *SCRIPT_FILES}
    assert "gtid_mode=ON" in data["mysql.cnf"]
    assert "enforce_gtid_consistency=ON" in data["mysql.cnf"]
    assert "plugin_load_add=mysql_clone.so" in data["mysql.cnf"]
    assert "super_read_only=ON" in data["replica.cnf"]
    assert "super_read_only=OFF" in data["primary.cnf"]
    assert "server_id=$((100 + ord))" in data["init-config.sh"]
    assert "CLONE INSTANCE FROM" in data["init-data.sh"]
    assert "SOURCE_AUTO_POSITION = 1" in data["replication-agent.sh"]
    assert "GET_SOURCE_PUBLIC_KEY = 1" in data["replication-agent.sh"]
    assert "caching_sha2_password" in data["init-data.sh"]
    assert "GRANT REPLICATION SLAVE, BACKUP_ADMIN ON *.*" in data["init-data.sh"]
    assert "SHOW REPLICA STATUS" in data["probe.sh"]
    legacy = ("CHANGE MASTER", "START SLAVE", "STOP SLAVE", "SHOW SLAVE", "MASTER_", "RESET SLAVE")
    for fname, text in data.items():
        for word in legacy:
            assert word not in text.upper(), f"{fname}: uses removed syntax {word!r}"
    # a script change rolls the pods
    annotations = child(mocks, "statefulset").inputs["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["k8s-platform/config-sha256"]) == 64


def test_volumes_wire_scripts_and_memory_only_credentials(mocks: PlatformMocks) -> None:
    build()
    volumes = {v["name"]: v for v in pod_spec(mocks)["volumes"]}
    assert volumes["scripts"]["configMap"] == {"name": "mysql-config", "defaultMode": 0o555}
    assert "initdb" not in volumes, "seed initializes the primary; the image's initdb hooks never run"
    assert volumes["client"]["emptyDir"]["medium"] == "Memory"
    (mysql,) = [c for c in pod_spec(mocks)["containers"] if c["name"] == "mysql"]
    mounts = {m["mountPath"]: m for m in mysql["volumeMounts"]}
    assert mounts["/var/lib/mysql"]["name"] == "data"
    assert "/docker-entrypoint-initdb.d" not in mounts
    assert mounts["/etc/mysql/client"].get("readOnly") is True


def test_each_container_gets_only_the_passwords_it_uses(mocks: PlatformMocks) -> None:
    build()
    expected = {
        "config": {"MYSQL_ROOT_PASSWORD"},  # root's option file
        "seed": {"MYSQL_ROOT_PASSWORD", "MYSQL_REPLICATION_PASSWORD"},  # the primary's first initialization, clones
        # the image's entrypoint finds the data directory made: it must not get a password to put into SQL
        "mysql": set(),
        "replication": {"MYSQL_REPLICATION_PASSWORD"},  # CHANGE REPLICATION SOURCE
    }
    for c in all_containers(mocks):
        assert {e["name"] for e in c.get("env", []) if "PASSWORD" in e["name"]} == expected[c["name"]], c["name"]


# --------------------------------------------------------------------------- secrets


def _walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _walk(v, f"{path}[{i}]")]
    return [(path, value)]


def test_passwords_only_through_secret_key_refs(mocks: PlatformMocks) -> None:
    build()
    sts = child(mocks, "statefulset").inputs
    for path, value in _walk(sts):
        if isinstance(value, str):
            assert ROOT_PW not in value and REPL_PW not in value, f"db-statefulset: literal password at {path}"
    for c in all_containers(mocks):
        for arg in [*c.get("command", []), *c.get("args", [])]:
            assert not arg.startswith("-p") and "--password" not in arg, f"{c['name']}: password flag in argv"
        for env in c.get("env", []):
            if "PASSWORD" in env["name"] or "PWD" in env["name"]:
                assert "value" not in env, f"{c['name']}: {env['name']} has a literal value"
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "mysql-credentials", f"{c['name']}: {env['name']}"
                assert ref["key"] in {"root-password", "replication-password"}
    for role in ("config", "headless", "primary", "read", "pdb", "netpol"):
        text = json.dumps(child(mocks, role).inputs)
        assert ROOT_PW not in text and REPL_PW not in text, f"db-{role} contains a password"


def test_secret_holds_both_passwords_as_pulumi_secrets(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    cluster = build(recorder=opts_recorder)
    secret = child(mocks, "secret").inputs
    assert secret["type"] == "Opaque"
    # the engine receives stringData wrapped as a secret value
    assert secret["stringData"].get(SECRET_SIG) == SECRET_MARK, "db-secret: stringData not sent as a secret"
    assert unwrap_secrets(secret["stringData"]) == {"root-password": ROOT_PW, "replication-password": REPL_PW}
    assert set(opts_recorder.opts["db-secret"].additional_secret_outputs or []) >= {"data", "stringData"}

    is_secret = asyncio.get_event_loop().run_until_complete(cluster.secret.string_data.is_secret())
    assert is_secret, "db-secret: stringData must stay a Pulumi secret"


USERS = (
    MySQLUserSpec(name="orders", databases=("orders", "orders_audit"), password_secret="ordersDbPassword"),
    MySQLUserSpec(name="reports", databases=("orders",), password_secret="reportsDbPassword", access="readOnly"),
)


def test_app_users_are_a_list_and_a_secret_only_the_primarys_sidecar_reads(
    mocks: PlatformMocks, opts_recorder: OptsRecorder
) -> None:
    build(
        replace(SPEC, users=USERS),
        recorder=opts_recorder,
        user_passwords={"orders": pulumi.Output.secret(APP_PW), "reports": pulumi.Output.secret(REPL_PW + "x")},
    )
    assert child(mocks, "users").inputs["data"] == {
        "users": "orders readWrite orders,orders_audit\nreports readOnly orders\n"
    }
    secret = child(mocks, "app-users").inputs
    assert secret["stringData"].get(SECRET_SIG) == SECRET_MARK, "passwords must reach the engine as a secret"
    assert unwrap_secrets(secret["stringData"]) == {"orders": APP_PW, "reports": REPL_PW + "x"}
    assert set(opts_recorder.opts["db-app-users"].additional_secret_outputs or []) >= {"data", "stringData"}
    # nothing about the users in the StatefulSet's own config: adding one restarts no pod
    assert "orders" not in json.dumps(child(mocks, "config").inputs["data"])
    ps = pod_spec(mocks)
    volume = next(v for v in ps["volumes"] if v["name"] == "app-users")
    sources = volume["projected"]["sources"]
    assert sources[0] == {"configMap": {"name": "mysql-users"}}
    assert sources[1]["secret"] == {
        "name": "mysql-app-users",
        "items": [{"key": "orders", "path": "passwords/orders"}, {"key": "reports", "path": "passwords/reports"}],
    }
    assert volume["projected"]["defaultMode"] == 0o440
    for c in [*ps["initContainers"], *ps["containers"]]:
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        assert ("app-users" in mounts) == (c["name"] == "replication"), c["name"]
    agent = next(c for c in ps["containers"] if c["name"] == "replication")
    assert {"name": "MYSQL_APP_USERS_DIR", "value": "/etc/mysql/app-users"} in agent["env"]
    assert APP_PW not in json.dumps(ps)


def test_without_app_users_the_secret_carries_no_empty_string_data(mocks: PlatformMocks) -> None:
    # an empty stringData is dropped by the API server and would diff on every preview
    build()
    assert "stringData" not in child(mocks, "app-users").inputs
    assert child(mocks, "users").inputs["data"] == {"users": ""}


def test_app_users_need_a_password_each(mocks: PlatformMocks) -> None:
    with pytest.raises(Exception, match=r"mysql\.users without a password: reports"):
        build(replace(SPEC, users=USERS), user_passwords={"orders": APP_PW})


# --------------------------------------------------------------------------- policies


def test_pdb_allows_one_member_down(mocks: PlatformMocks) -> None:
    build()
    pdb = child(mocks, "pdb").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"] == {"matchLabels": SELECTOR}


def test_network_policy_admits_allow_from_and_members_on_3306_only(mocks: PlatformMocks) -> None:
    build()
    np = child(mocks, "netpol").inputs["spec"]
    assert np["podSelector"] == {"matchLabels": SELECTOR}
    assert np["policyTypes"] == ["Ingress"]
    (rule,) = np["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 3306}]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "my-nginx"}},
        },
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "jobs"}}},
        {"podSelector": {"matchLabels": SELECTOR}},
    ]


def test_network_policy_without_allow_from_admits_members_only(mocks: PlatformMocks) -> None:
    build(replace(SPEC, allow_from=()))
    (rule,) = child(mocks, "netpol").inputs["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": SELECTOR}}]


# --------------------------------------------------------------------------- outputs


def test_outputs_name_hosts_and_never_passwords(mocks: PlatformMocks) -> None:
    cluster = build()
    assert resolve(cluster.primary_host) == "mysql-primary.data.svc.cluster.local"
    assert resolve(cluster.read_host) == "mysql-read.data.svc.cluster.local"
    assert resolve(cluster.members) == 3
    assert resolve(cluster.port) == 3306
    assert resolve(cluster.secret_name) == "mysql-credentials"
    assert resolve(cluster.storage) == storage_output(SPEC)
    for out in (cluster.primary_host, cluster.read_host, cluster.members, cluster.storage, cluster.secret_name):
        text = json.dumps(resolve(out))
        assert ROOT_PW not in text and REPL_PW not in text


def test_single_member_cluster(mocks: PlatformMocks) -> None:
    cluster = build(replace(SPEC, replicas=1))
    assert child(mocks, "statefulset").inputs["spec"]["replicas"] == 1
    assert resolve(cluster.members) == 1


def test_preview_with_unknown_passwords(preview_mocks: PlatformMocks) -> None:
    unknown: pulumi.Output[str] = pulumi.Output(
        resources=set(),
        future=_done(None),
        is_known=_done(False),
        is_secret=_done(True),
    )
    cluster = build(root_password=unknown, replication_password=unknown, previous_storage=None)
    sts = preview_mocks.named("db-statefulset").inputs
    assert sts["spec"]["replicas"] == 3
    assert preview_mocks.named("db-secret").type == "kubernetes:core/v1:Secret"
    assert resolve(cluster.primary_host) == "mysql-primary.data.svc.cluster.local"


def _done(value: Any) -> Any:
    fut: asyncio.Future[Any] = asyncio.get_event_loop().create_future()
    fut.set_result(value)
    return fut


# --------------------------------------------------------------------------- storage guard


def test_check_storage_change_accepts_first_deploy_and_no_change() -> None:
    assert check_storage_change(None, MySQLStorage("10Gi")) == []
    assert check_storage_change(MySQLStorage("10Gi", "fast"), MySQLStorage("10Gi", "fast")) == []


def test_check_storage_change_rejects_size_and_class_with_explanations() -> None:
    problems = check_storage_change(MySQLStorage("10Gi", ""), MySQLStorage("20Gi", "fast"))
    assert len(problems) == 2
    size, klass = problems
    assert size.startswith("mysql.storage.size: cannot change from 10Gi to 20Gi")
    assert "volumeClaimTemplates" in size and "expand each PVC" in size
    assert klass.startswith("mysql.storage.storageClass: cannot change from (cluster default) to fast")


def test_storage_output_round_trip_and_foreign_clusters() -> None:
    exported = storage_output(SPEC)
    assert exported == {"name": "mysql", "namespace": "data", "size": "20Gi", "storageClass": "local-path"}
    assert storage_from_output(exported, SPEC) == SPEC.storage
    assert storage_from_output(None, SPEC) is None
    assert storage_from_output({}, SPEC) is None
    assert storage_from_output({**exported, "name": "other"}, SPEC) is None
    assert storage_from_output({**exported, "namespace": "other"}, SPEC) is None


def test_guard_passes_unchanged_storage_to_the_claim(mocks: PlatformMocks) -> None:
    build(previous_storage=pulumi.Output.from_input(storage_output(SPEC)))
    vct = child(mocks, "statefulset").inputs["spec"]["volumeClaimTemplates"][0]
    assert vct["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_guard_rejects_a_storage_change_and_stops_before_the_statefulset(mocks: PlatformMocks) -> None:
    previous = {**storage_output(SPEC), "size": "10Gi", "storageClass": "fast"}
    with pytest.raises(Exception) as refused:
        build(previous_storage=pulumi.Output.from_input(previous))
    text = str(refused.value)
    assert "mysql.storage.size: cannot change from 10Gi to 20Gi" in text
    assert "mysql.storage.storageClass: cannot change from fast" in text
    assert "2 MySQL change(s) refused; the StatefulSet was not changed" in text
    assert not [r for r in mocks.resources if r.type == "kubernetes:apps/v1:StatefulSet"]


# --------------------------------------------------------------------------- version guard


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("mysql:8.4", (8, 4)),
        ("mysql:8.4.6", (8, 4, 6)),
        ("mysql:9.7.4-oraclelinux9", (9, 7, 4)),
        ("registry.example.com:5000/db/mysql:9.7.4@sha256:" + "a" * 64, (9, 7, 4)),
        ("mysql@sha256:" + "a" * 64, None),
        ("corp/mysql:prod", None),
        ("mysql:8", None),
        ("mysql:8.4.6.1", None),
    ],
)
def test_mysql_version_is_read_from_the_tag(image: str, version: tuple[int, ...] | None) -> None:
    assert mysql_version(image) == version


def test_default_image_is_the_older_supported_lts() -> None:
    assert MYSQL_LTS_SERIES == ((8, 4), (9, 7))
    assert mysql_version(DEFAULT_MYSQL_IMAGE) == MYSQL_LTS_SERIES[0] and SPEC.image == DEFAULT_MYSQL_IMAGE


@pytest.mark.parametrize(
    ("deployed", "image", "replicas"),
    [
        ("mysql:8.4.6", "mysql:8.4.6", 5),  # no version change: scaling is free
        ("mysql:8.4.6", "mysql:8.4.7", 3),  # patch upgrade
        ("mysql:8.4.7", "mysql:8.4.6", 3),  # patch downgrade within the LTS series
        ("mysql:8.4.7", "mysql:8.4.7-oraclelinux9", 5),  # another variant of one version
        ("mysql:8.4.6", "mysql:9.7.4", 3),  # the next LTS series
        ("mysql:8.4", "mysql:9.7", 3),
        ("mysql:8.4.6", "corp/mysql:prod", 5),  # no version in the tag: validate warns instead
    ],
)
def test_version_changes_mysql_makes_in_place_are_accepted(deployed: str, image: str, replicas: int) -> None:
    assert check_version_change(DeployedServer(deployed, 3), image, replicas) == []


def test_first_deploy_has_nothing_to_guard() -> None:
    assert check_version_change(None, "mysql:9.7.4", 5) == []


def test_downgrade_to_an_older_series_is_refused_with_the_way_back() -> None:
    (problem,) = check_version_change(DeployedServer("mysql:9.7.4", 3), "mysql:8.4.6", 3)
    assert problem.startswith("mysql.image: cannot go from the deployed mysql:9.7.4 (9.7.4) down to mysql:8.4.6")
    assert "does not downgrade a data directory" in problem and "logical dump" in problem


def test_skipping_an_lts_series_is_refused() -> None:
    (problem,) = check_version_change(DeployedServer("mysql:8.0.40", 3), "mysql:9.7.4", 3)
    assert problem.startswith("mysql.image: cannot go from the deployed mysql:8.0.40 (8.0.40) to mysql:9.7.4")
    assert "Go to 8.4 first" in problem


def test_scaling_while_the_series_changes_is_refused() -> None:
    (problem,) = check_version_change(DeployedServer("mysql:8.4.6", 3), "mysql:9.7.4", 5)
    assert problem.startswith("mysql.replicas: cannot change from 3 to 5 while mysql.image moves")
    assert "CLONE refuses a donor of another series" in problem
    # a patch release and a scale together are fine: CLONE takes a donor of the same series
    assert check_version_change(DeployedServer("mysql:8.4.6", 3), "mysql:8.4.7", 5) == []


def test_server_output_round_trip_and_foreign_clusters() -> None:
    exported = server_output(SPEC)
    assert exported == {"name": "mysql", "namespace": "data", "image": "mysql:8.4", "members": 3}
    assert server_from_output(exported, SPEC) == DeployedServer("mysql:8.4", 3)
    assert server_from_output({**exported, "members": 3.0}, SPEC) == DeployedServer("mysql:8.4", 3)  # JSON number
    for other in (
        None,
        {},
        {**exported, "name": "x"},
        {**exported, "namespace": "x"},
        {**exported, "members": True},
        {**exported, "image": ""},
    ):
        assert server_from_output(other, SPEC) is None


def test_version_guard_sends_an_allowed_upgrade(mocks: PlatformMocks) -> None:
    spec = replace(SPEC, image="mysql:9.7.4")
    cluster = build(spec, previous_server=pulumi.Output.from_input({**server_output(SPEC), "image": "mysql:8.4.6"}))
    sts = child(mocks, "statefulset").inputs["spec"]
    assert {c["image"] for c in all_containers(mocks)} == {"mysql:9.7.4"}
    assert sts["replicas"] == 3
    assert resolve(cluster.server)["image"] == "mysql:9.7.4"


def test_version_guard_refuses_with_every_problem_and_sends_nothing(mocks: PlatformMocks) -> None:
    spec = replace(SPEC, image="mysql:9.7.4", replicas=5, storage=MySQLStorage("30Gi", "local-path"))
    with pytest.raises(Exception) as refused:
        build(
            spec,
            previous_storage=pulumi.Output.from_input(storage_output(SPEC)),
            previous_server=pulumi.Output.from_input({**server_output(SPEC), "image": "mysql:8.4.6"}),
        )
    lines = str(refused.value).splitlines()
    assert [line.split(":", 1)[0] for line in lines[-3:-1]] == ["mysql.storage.size", "mysql.replicas"], lines
    assert lines[-1].endswith("2 MySQL change(s) refused; the StatefulSet was not changed")
    assert not [r for r in mocks.resources if r.type == "kubernetes:apps/v1:StatefulSet"]


def test_guard_reads_records_a_stack_reference_returns_as_secret(mocks: PlatformMocks) -> None:
    previous = pulumi.Output.secret({**server_output(SPEC), "image": "mysql:8.4.6"})
    build(replace(SPEC, image="mysql:9.7.4"), previous_server=previous)
    sts = child(mocks, "statefulset").inputs["spec"]
    assert sts["replicas"] == 3 and {c["image"] for c in all_containers(mocks)} == {"mysql:9.7.4"}


# --------------------------------------------------------------------------- schema


def test_objects_validate_strictly_against_kubernetes_1_34(mocks: PlatformMocks) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (requirements-dev.txt)"
    )
    build(required_anti_affinity=True)
    build_preferred = [r for r in mocks.resources if r.type.startswith("kubernetes:")]
    assert len(build_preferred) == len(TYPES)
    for res in build_preferred:
        manifest = unwrap_secrets({k: v for k, v in res.inputs.items() if not k.startswith("__")})
        try:
            kubernetes_validate.validate(manifest, "1.34", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{res.name} ({res.type}): {exc.message} at {list(exc.path)}")


# --------------------------------------------------------------------------- password rules


@pytest.mark.parametrize(
    ("value", "max_bytes", "words"),
    [
        ("r00t 'Pa55\\word\" #x ü€\n\t;--", MYSQL_PASSWORD_MAX_BYTES, None),  # any character works
        ("é" * 128, MYSQL_PASSWORD_MAX_BYTES, None),  # 256 bytes: the most caching_sha2_password takes
        ("é" * 128 + "x", MYSQL_PASSWORD_MAX_BYTES, "257 bytes"),
        ("x" * 32, MYSQL_REPLICATION_PASSWORD_MAX_BYTES, None),
        ("x" * 31 + "é", MYSQL_REPLICATION_PASSWORD_MAX_BYTES, "CHANGE REPLICATION SOURCE"),  # 32 chars, 33 bytes
        ("", MYSQL_PASSWORD_MAX_BYTES, "empty"),
        ("a\0b", MYSQL_PASSWORD_MAX_BYTES, "NUL"),
        ("\udc80", MYSQL_PASSWORD_MAX_BYTES, "Unicode"),
    ],
)
def test_password_problem(value: str, max_bytes: int, words: str | None) -> None:
    problem = password_problem(value, max_bytes)
    if words is None:
        assert problem is None
    else:
        assert problem is not None and words in problem
        assert value not in problem or not value


def test_password_limits_name_every_secret_of_the_cluster() -> None:
    assert password_limits(replace(SPEC, users=USERS)) == {
        "mysqlRootPassword": 256,
        "mysqlReplicationPassword": 32,
        "ordersDbPassword": 256,
        "reportsDbPassword": 256,
    }

"""Config schema of the mesh, app configuration and volume features: every option parses into
the typed spec, and every rejection names its key path and says what would be right."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.checks import format_seconds, parse_duration
from components.mysql_config import MySQLUserSpec
from components.storage_config import LocalSource, NfsSource
from components.webapp_config import (
    AppConfigSpec,
    CircuitBreakerSpec,
    ClaimSpec,
    ConnectionPoolSpec,
    RetrySpec,
    StrategySpec,
)
from stacks.config import SECRET, ConfigError, parse_config
from stacks.files import config_from_file
from tests.support.mocks import PROJECT_ROOT, existing_config, kubespray_config
from tests.support.rejections import Mutator

SHOWCASE = PROJECT_ROOT / "tests" / "unit" / "fixtures" / "Pulumi.showcase.yaml"


_MESH_APP: dict[str, Any] = {"name": "api", "namespace": "shop", "image": "nginx:1.27.5", "mesh": True}
_NFS = {
    "name": "nfs-1",
    "capacity": "10Gi",
    "accessModes": ["ReadWriteMany"],
    "nfs": {"server": "10.0.0.5", "path": "/x"},
}


def parse(cfg: dict[str, Any]):
    return parse_config(cfg, project_root=PROJECT_ROOT)


def base() -> dict[str, Any]:
    cfg = kubespray_config()
    cfg["addons"] = {"mesh": {"enabled": True}}
    return cfg


def app(**kw: Any) -> Mutator:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["apps"] = [{**copy.deepcopy(_MESH_APP), **kw}]

    return mutate


def res(**kw: Any) -> Mutator:
    return app(resilience=kw)


def both(*mutators: Mutator) -> Mutator:
    def mutate(cfg: dict[str, Any]) -> None:
        for m in mutators:
            m(cfg)

    return mutate


def top(key: str, value: Any) -> Mutator:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg[key] = value

    return mutate


def vols(*volumes: dict[str, Any]) -> Mutator:
    return top("storage", {"volumes": list(volumes)})


def claim(**kw: Any) -> dict[str, Any]:
    return {"name": "data", "claim": {"size": "1Gi", **kw}, "mountPath": "/data"}


# --------------------------------------------------------------------------- accepted


def test_showcase_fixture_parses_every_feature() -> None:
    spec = parse(config_from_file(SHOWCASE))
    assert spec.addons.mesh is not None and spec.addons.mesh.enabled
    api, worker = spec.apps
    assert api.mesh and api.resilience is not None
    assert api.resilience.retries == RetrySpec(3, "1s", "5xx,connect-failure,reset")
    assert api.resilience.circuit_breaker == CircuitBreakerSpec(5, "10s", "30s", 50)
    assert api.resilience.connection_pool == ConnectionPoolSpec(100, 50, 10)
    assert api.config is not None and api.config.env and api.config.mount_path == "/etc/api"
    assert dict(api.secret_env) == {"API_TOKEN": "apiToken", "DB_PASSWORD": "shopDbPassword"}
    assert spec.named_secret_keys == ("apiToken", "reportsDbPassword", "shopDbPassword")
    assert {"apiToken", "reportsDbPassword", "shopDbPassword"} <= spec.secrets_set
    assert spec.mysql.users == (
        MySQLUserSpec("shop", ("shop",), "shopDbPassword", "readWrite"),
        MySQLUserSpec("shop_reports", ("shop",), "reportsDbPassword", "readOnly"),
    )
    assert api.volumes[0].claim == ClaimSpec("5Gi", "manual", ("ReadOnlyMany",), {"tier": "shared"})
    assert api.volumes[0].read_only is True, "volumes are read-only unless said otherwise"
    assert worker.strategy == StrategySpec("0", "1"), "a RWO volume replaces pods instead of surging"
    assert [v.name for v in spec.storage.volumes][:2] == ["shared-nfs", "node3-disk1"]
    assert spec.storage.volumes[0].nfs == NfsSource("10.4.17.10", "/exports/shared")
    assert spec.storage.volumes[1].local == LocalSource("/mnt/disks/disk1", "node3")
    assert spec.storage.volumes[1].storage_class == "manual" and spec.storage.volumes[1].reclaim_policy == "Retain"


def test_mesh_addon_defaults_and_overrides() -> None:
    spec = parse(kubespray_config())
    assert spec.addons.mesh is not None and not spec.addons.mesh.enabled, "the mesh is opt-in"
    cfg = base()
    cfg["addons"]["mesh"].update(
        repo="https://mirror.example.com/istio", version="1.30.3", namespace="mesh", values={"pilot": {"x": 1}},
        baseChart="istio-base", baseValues={"y": 2}, clusterDomain="corp.local",
    )  # fmt: skip
    mesh = parse(cfg).addons.mesh
    assert mesh is not None
    assert (mesh.chart.repo, mesh.chart.chart, mesh.chart.version, mesh.chart.namespace) == (
        "https://mirror.example.com/istio", "istiod", "1.30.3", "mesh",
    )  # fmt: skip
    assert (mesh.base.chart, mesh.base.version, mesh.base.repo, dict(mesh.base.values)) == (
        "istio-base", "1.30.3", "https://mirror.example.com/istio", {"y": 2},
    )  # fmt: skip
    assert mesh.cluster_domain == "corp.local"


def test_config_env_defaults_follow_mount_path() -> None:
    cfg = base()
    cfg["apps"] = [
        {**_MESH_APP, "name": "a", "config": {"data": {"A": "1"}}},
        {**_MESH_APP, "name": "b", "config": {"data": {"b.conf": "x"}, "mountPath": "/etc/b"}},
    ]
    a, b = parse(cfg).apps
    assert a.config == AppConfigSpec({"A": "1"}, "", True), "without a mountPath the config is env"
    assert b.config == AppConfigSpec({"b.conf": "x"}, "/etc/b", False), "with one, files only unless env: true"


def test_claims_bind_static_volumes_and_mysql_uses_a_static_class() -> None:
    cfg = base()
    local = [{"name": f"m{i}", "capacity": "10Gi", "accessModes": ["ReadWriteOnce"], "storageClass": "db",
              "local": {"path": "/mnt/db", "node": f"node{i + 1}"}} for i in range(3)]  # fmt: skip
    vols(_NFS, *local)(cfg)
    cfg["mysql"] = {"enabled": True, "replicas": 3, "storage": {"size": "10Gi", "storageClass": "db"}}
    cfg["mysqlRootPassword"] = cfg["mysqlReplicationPassword"] = SECRET
    app(replicas=3, volumes=[claim(storageClass="manual", accessModes=["ReadWriteMany"])])(cfg)
    spec = parse(cfg)
    assert len(spec.storage.volumes) == 4 and spec.mysql.storage.storage_class == "db"


def test_dynamic_claim_needs_no_static_volume() -> None:
    cfg = base()
    app(volumes=[claim(), claim(storageClass="fast-ssd") | {"name": "b", "mountPath": "/b"}])(cfg)
    assert [v.claim.storage_class for v in parse(cfg).apps[0].volumes] == ["", "fast-ssd"]


def test_durations_are_go_durations() -> None:
    assert parse_duration("250ms") == 0.25 and parse_duration("1m30s") == 90 and parse_duration("1.5h") == 5400
    assert parse_duration("5") is None and parse_duration("5 s") is None and parse_duration("") is None
    assert format_seconds(8) == "8s" and format_seconds(0.75) == "750ms" and format_seconds(1.5) == "1.5s"


def test_retries_zero_attempts_need_no_budget() -> None:
    cfg = base()
    res(retries={"attempts": 0})(cfg)
    assert parse(cfg).apps[0].resilience.retries == RetrySpec(0)  # type: ignore[union-attr]


def test_retries_exactly_filling_the_budget_pass() -> None:
    cfg = base()
    res(timeout="4s", retries={"attempts": 3, "perTryTimeout": "1s"})(cfg)
    parse(cfg)


@pytest.mark.parametrize("key", ["mysqlRootPassword", "mysqlReplicationPassword"])
def test_secret_env_may_not_hand_mysql_admin_passwords_to_an_app(key: str) -> None:
    cfg = base()
    cfg[key] = SECRET
    app(secretEnv={"DB_PASSWORD": key})(cfg)
    with pytest.raises(ConfigError) as exc:
        parse(cfg)
    assert any("infrastructure credential" in str(p) for p in exc.value.problems), exc.value.problems


def test_existing_mode_local_volume_node_is_not_checked_without_nodes() -> None:
    cfg = existing_config()
    cfg["storage"] = {"volumes": [{"name": "l", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"],
                                   "local": {"path": "/mnt/x", "node": "anything"}}]}  # fmt: skip
    assert parse(cfg).storage.volumes[0].local == LocalSource("/mnt/x", "anything")


def _mysql(image: str) -> Mutator:
    return both(top("mysql", {"enabled": True, "image": image}), top("mysqlRootPassword", SECRET),
                top("mysqlReplicationPassword", SECRET))  # fmt: skip


@pytest.mark.parametrize("image", ["mysql:8.4", "mysql:8.4.6", "mysql:9.7.4", "mysql:9.7.4-oraclelinux9"])
def test_mysql_lts_images_pass_without_a_warning(image: str) -> None:
    cfg = base()
    _mysql(image)(cfg)
    spec = parse(cfg)
    assert spec.mysql.image == image and not [w for w in spec.warnings if w.startswith("mysql.image")]


def test_a_mysql_image_without_a_version_is_a_warning_with_the_fix() -> None:
    cfg = base()
    _mysql("registry.example.com/db/mysql@sha256:" + "a" * 64)(cfg)
    (warning,) = [w for w in parse(cfg).warnings if w.startswith("mysql.image")]
    assert "names no MySQL version" in warning and "'registry.example.com/db/mysql:9.7'" in warning


# --------------------------------------------------------------------------- rejected

_BREAKER = {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 50}

# (id, mutation, key path, words in the message)
REJECTED: list[tuple[str, Mutator, str, str]] = [
    # mesh
    ("mesh-addon-typo", top("addons", {"mesh": {"enabeld": True}}), "addons.mesh.enabeld", "did you mean 'enabled'"),
    (
        "mesh-version",
        top("addons", {"mesh": {"enabled": True, "version": "1.29"}}),
        "addons.mesh.version",
        "semantic version",
    ),
    ("mesh-repo", top("addons", {"mesh": {"repo": "istio-release"}}), "addons.mesh.repo", "not a valid URL"),
    ("mesh-domain", top("addons", {"mesh": {"clusterDomain": "Corp_Local"}}), "addons.mesh.clusterDomain", "RFC 1123"),
    (
        "mesh-domain-vs-kubespray",
        both(
            top("addons", {"mesh": {"enabled": True, "clusterDomain": "a.local"}}),
            lambda c: c["cluster"].update(extraVars={"dns_domain": "b.local"}),
        ),
        "addons.mesh.clusterDomain",
        "dns_domain",
    ),
    ("app-mesh-without-addon", both(top("addons", {}), app()), "apps[0].mesh", "addons.mesh.enabled: true"),
    ("app-mesh-type", app(mesh="yes"), "apps[0].mesh", "true or false"),
    (
        "resilience-without-mesh",
        app(mesh=False, resilience={"timeout": "5s"}),
        "apps[0].resilience",
        "needs mesh: true",
    ),
    (
        "resilience-mesh-disabled",
        both(top("addons", {"mesh": {"enabled": False}}), res(timeout="5s")),
        "apps[0].resilience",
        "addons.mesh.enabled: true",
    ),
    ("resilience-empty", res(), "apps[0].resilience", "is empty"),
    ("resilience-typo", res(timeot="5s"), "apps[0].resilience.timeot", "did you mean 'timeout'"),
    ("timeout-zero", res(timeout="0s"), "apps[0].resilience.timeout", "at least 1ms"),
    ("timeout-negative", res(timeout="-5s"), "apps[0].resilience.timeout", "negative"),
    ("timeout-no-unit", res(timeout=5), "apps[0].resilience.timeout", "'250ms', '5s' or '1m'"),
    ("timeout-words", res(timeout="five seconds"), "apps[0].resilience.timeout", "not a duration"),
    (
        "retries-no-timeout",
        res(retries={"attempts": 3, "perTryTimeout": "1s"}),
        "apps[0].resilience.retries",
        "timeout budget",
    ),
    (
        "retries-over-budget",
        res(timeout="5s", retries={"attempts": 5, "perTryTimeout": "1s"}),
        "apps[0].resilience.retries",
        "(1 try + 5 retries) × perTryTimeout 1s = 6s exceeds timeout 5s",
    ),
    (
        "retries-over-budget-ms",
        res(timeout="1s", retries={"attempts": 2, "perTryTimeout": "500ms"}),
        "apps[0].resilience.retries",
        "= 1.5s exceeds timeout 1s",
    ),
    (
        "retries-no-per-try",
        res(timeout="5s", retries={"attempts": 2}),
        "apps[0].resilience.retries.perTryTimeout",
        "required with retries",
    ),
    (
        "retries-no-attempts",
        res(timeout="5s", retries={"perTryTimeout": "1s"}),
        "apps[0].resilience.retries.attempts",
        "required",
    ),
    (
        "retries-attempts-negative",
        res(timeout="5s", retries={"attempts": -1, "perTryTimeout": "1s"}),
        "apps[0].resilience.retries.attempts",
        "at least 0",
    ),
    (
        "retries-per-try-zero",
        res(timeout="5s", retries={"attempts": 1, "perTryTimeout": "0ms"}),
        "apps[0].resilience.retries.perTryTimeout",
        "at least 1ms",
    ),
    (
        "retry-on-unknown",
        res(timeout="5s", retries={"attempts": 1, "perTryTimeout": "1s", "retryOn": "5xx,conect-failure"}),
        "apps[0].resilience.retries.retryOn",
        "did you mean 'connect-failure'",
    ),
    (
        "breaker-interval-zero",
        res(circuitBreaker={**_BREAKER, "interval": "0s"}),
        "apps[0].resilience.circuitBreaker.interval",
        "at least 1ms",
    ),
    (
        "breaker-ejection-negative",
        res(circuitBreaker={**_BREAKER, "baseEjectionTime": "-30s"}),
        "apps[0].resilience.circuitBreaker.baseEjectionTime",
        "negative",
    ),
    (
        "breaker-errors-zero",
        res(circuitBreaker={**_BREAKER, "consecutive5xxErrors": 0}),
        "apps[0].resilience.circuitBreaker.consecutive5xxErrors",
        "at least 1",
    ),
    (
        "breaker-percent",
        res(circuitBreaker={**_BREAKER, "maxEjectionPercent": 150}),
        "apps[0].resilience.circuitBreaker.maxEjectionPercent",
        "at most 100",
    ),
    (
        "breaker-typo",
        res(circuitBreaker={"consecutiveErrors": 5}),
        "apps[0].resilience.circuitBreaker.consecutiveErrors",
        "did you mean 'consecutive5xxErrors'",
    ),
    ("pool-empty", res(connectionPool={}), "apps[0].resilience.connectionPool", "is empty"),
    (
        "pool-zero",
        res(connectionPool={"maxConnections": 0}),
        "apps[0].resilience.connectionPool.maxConnections",
        "at least 1",
    ),
    (
        "pool-typo",
        res(connectionPool={"maxConnection": 10}),
        "apps[0].resilience.connectionPool.maxConnection",
        "did you mean 'maxConnections'",
    ),
    # app config
    ("config-no-data", app(config={"mountPath": "/etc/a"}), "apps[0].config.data", "required"),
    (
        "config-bad-key",
        app(config={"data": {"a b": "x"}, "mountPath": "/etc/a"}),
        "apps[0].config.data.a b",
        "not a valid ConfigMap key",
    ),
    (
        "config-dotdot-key",
        app(config={"data": {"..x": "x"}, "mountPath": "/etc/a"}),
        "apps[0].config.data...x",
        "not starting with '..'",
    ),
    (
        "config-file-key-as-env",
        app(config={"data": {"app.conf": "x"}}),
        "apps[0].config.data.app.conf",
        "set mountPath",
    ),
    ("config-nowhere", app(config={"data": {"A": "1"}, "env": False}), "apps[0].config.env", "never see the config"),
    (
        "config-relative-mount",
        app(config={"data": {"A": "1"}, "mountPath": "etc/app"}),
        "apps[0].config.mountPath",
        "absolute",
    ),
    (
        "config-too-big",
        app(config={"data": {"big": "x" * (1024 * 1024)}, "mountPath": "/etc/a"}),
        "apps[0].config.data",
        "at most 1 MiB",
    ),
    ("config-env-clash", app(env={"A": "x"}, config={"data": {"A": "1"}}), "apps[0].config.data.A", "also set in env"),
    (
        "config-typo",
        app(config={"data": {"A": "1"}, "mountpath": "/x"}),
        "apps[0].config.mountpath",
        "did you mean 'mountPath'",
    ),
    (
        "config-mount-clash",
        app(config={"data": {"a": "1"}, "mountPath": "/data"}, volumes=[claim()]),
        "apps[0].config.mountPath",
        "also the mountPath of a volume",
    ),
    # secretEnv
    (
        "secret-missing",
        app(secretEnv={"TOKEN": "apiToken"}),
        "apps[0].secretEnv.TOKEN",
        "pulumi config set --secret apiToken",
    ),
    (
        "secret-plaintext",
        both(top("apiToken", "hunter2"), app(secretEnv={"TOKEN": "apiToken"})),
        "apiToken",
        "pulumi config set --secret apiToken",
    ),
    ("secret-unreferenced", top("apiToken", SECRET), "apiToken", "unknown key"),
    (
        "secret-typo",
        both(top("apiTokn", SECRET), app(secretEnv={"TOKEN": "apiToken"})),
        "apiTokn",
        "did you mean 'apiToken'",
    ),
    (
        "secret-env-name",
        both(top("t", SECRET), app(secretEnv={"1TOKEN": "t"})),
        "apps[0].secretEnv.1TOKEN",
        "environment variable name",
    ),
    (
        "secret-namespaced",
        app(secretEnv={"T": "k8s-platform:apiToken"}),
        "apps[0].secretEnv.T",
        "without the namespace",
    ),
    ("secret-setting", app(secretEnv={"T": "cluster"}), "apps[0].secretEnv.T", "platform setting"),
    ("secret-ssh-key", app(secretEnv={"T": "sshPrivateKey"}), "apps[0].secretEnv.T", "infrastructure credential"),
    (
        "secret-mysql-root",
        app(secretEnv={"T": "mysqlRootPassword"}),
        "apps[0].secretEnv.T",
        "infrastructure credential",
    ),
    (
        "secret-env-clash",
        both(top("t", SECRET), app(env={"T": "x"}, secretEnv={"T": "t"})),
        "apps[0].secretEnv.T",
        "also set in env",
    ),
    (
        "secret-config-clash",
        both(top("t", SECRET), app(config={"data": {"T": "x"}}, secretEnv={"T": "t"})),
        "apps[0].secretEnv.T",
        "also a key of config.data",
    ),
    # static volumes
    (
        "pv-no-source",
        vols({"name": "a", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}),
        "storage.volumes[0]",
        "needs a source",
    ),
    (
        "pv-two-sources",
        vols({**_NFS, "local": {"path": "/x", "node": "node1"}}),
        "storage.volumes[0].local",
        "not both",
    ),
    ("pv-capacity", vols({**_NFS, "capacity": "10 GB"}), "storage.volumes[0].capacity", "storage size"),
    (
        "pv-capacity-missing",
        vols({k: v for k, v in _NFS.items() if k != "capacity"}),
        "storage.volumes[0].capacity",
        "required",
    ),
    (
        "pv-modes-missing",
        vols({k: v for k, v in _NFS.items() if k != "accessModes"}),
        "storage.volumes[0].accessModes",
        "required",
    ),
    (
        "pv-mode-typo",
        vols({**_NFS, "accessModes": ["ReadWriteMany", "ReadWriteOnse"]}),
        "storage.volumes[0].accessModes[1]",
        "did you mean 'ReadWriteOnce'",
    ),
    (
        "pv-rwop-mixed",
        vols({**_NFS, "accessModes": ["ReadWriteOncePod", "ReadWriteOnce"]}),
        "storage.volumes[0].accessModes",
        "cannot be combined",
    ),
    (
        "pv-reclaim",
        vols({**_NFS, "reclaimPolicy": "Recycle"}),
        "storage.volumes[0].reclaimPolicy",
        "not one of Retain, Delete",
    ),
    (
        "pv-nfs-server",
        vols({**_NFS, "nfs": {"server": "nfs server", "path": "/x"}}),
        "storage.volumes[0].nfs.server",
        "IP address or hostname",
    ),
    (
        "pv-nfs-path",
        vols({**_NFS, "nfs": {"server": "10.0.0.5", "path": "exports"}}),
        "storage.volumes[0].nfs.path",
        "absolute path",
    ),
    (
        "pv-local-node",
        vols(
            {"name": "l", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"], "local": {"path": "/x", "node": "node4"}}
        ),
        "storage.volumes[0].local.node",
        "not in cluster.nodes",
    ),
    (
        "pv-local-no-node",
        vols({"name": "l", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"], "local": {"path": "/x"}}),
        "storage.volumes[0].local.node",
        "required",
    ),
    ("pv-dup", vols(_NFS, _NFS), "storage.volumes[1].name", "already declared"),
    (
        "pv-default-class",
        vols({**_NFS, "storageClass": "local-path"}),
        "storage.volumes[0].storageClass",
        "dynamic default class",
    ),
    ("pv-label", vols({**_NFS, "labels": {"tier": "a b"}}), "storage.volumes[0].labels.tier", "label value"),
    (
        "pv-typo",
        vols({**_NFS, "reclaimPolicey": "Retain"}),
        "storage.volumes[0].reclaimPolicey",
        "did you mean 'reclaimPolicy'",
    ),
    ("storage-typo", top("storage", {"volume": []}), "storage.volume", "did you mean 'volumes'"),
    # app volumes
    (
        "vol-rwo-replicas",
        app(replicas=2, volumes=[claim()]),
        "apps[0].volumes[0].claim.accessModes",
        "pods on other nodes could not mount it",
    ),
    (
        "vol-rwop-hpa",
        app(replicas=1, hpa={"minReplicas": 1, "maxReplicas": 3}, volumes=[claim(accessModes=["ReadWriteOncePod"])]),
        "apps[0].volumes[0].claim.accessModes",
        "hpa.maxReplicas 3",
    ),
    ("vol-rwo-surge", app(strategy={"maxSurge": 1}, volumes=[claim()]), "apps[0].strategy.maxSurge", "must be 0"),
    (
        "vol-rox-rw",
        app(volumes=[{**claim(accessModes=["ReadOnlyMany"]), "readOnly": False}]),
        "apps[0].volumes[0].readOnly",
        "ReadOnlyMany",
    ),
    ("vol-size", app(volumes=[claim(size="lots")]), "apps[0].volumes[0].claim.size", "storage size"),
    ("vol-no-claim", app(volumes=[{"name": "d", "mountPath": "/d"}]), "apps[0].volumes[0].claim.size", "required"),
    ("vol-mount", app(volumes=[{**claim(), "mountPath": "data"}]), "apps[0].volumes[0].mountPath", "absolute"),
    ("vol-name", app(volumes=[{**claim(), "name": "Data"}]), "apps[0].volumes[0].name", "RFC 1123"),
    ("vol-reserved", app(volumes=[{**claim(), "name": "config"}]), "apps[0].volumes[0].name", "reserved"),
    (
        "vol-dup-name",
        app(volumes=[claim(), {**claim(), "mountPath": "/b"}]),
        "apps[0].volumes[1].name",
        "already declared",
    ),
    (
        "vol-dup-mount",
        app(volumes=[claim(), {**claim(), "name": "b"}]),
        "apps[0].volumes[1].mountPath",
        "already the mountPath",
    ),
    (
        "vol-selector-dynamic",
        app(volumes=[claim(selector={"labels": {"tier": "x"}})]),
        "apps[0].volumes[0].claim.selector",
        "never provisioned dynamically",
    ),
    (
        "vol-no-static-fits",
        both(vols(_NFS), app(volumes=[claim(storageClass="manual", size="20Gi", accessModes=["ReadWriteMany"])])),
        "apps[0].volumes[0].claim",
        "no volume in storage.volumes can bind it",
    ),
    (
        "vol-static-taken",
        both(
            vols(_NFS),
            app(
                volumes=[
                    claim(storageClass="manual", accessModes=["ReadWriteMany"]),
                    {**claim(storageClass="manual", accessModes=["ReadWriteMany"]), "name": "b", "mountPath": "/b"},
                ]
            ),
        ),
        "apps[0].volumes[1].claim",
        "taken by another claim",
    ),
    (
        "vol-selector-mismatch",
        both(
            vols({**_NFS, "labels": {"tier": "a"}}),
            app(
                volumes=[
                    claim(storageClass="manual", accessModes=["ReadWriteMany"], selector={"labels": {"tier": "b"}})
                ]
            ),
        ),
        "apps[0].volumes[0].claim",
        "labels {'tier': 'b'}",
    ),
    (
        "vol-modes-mismatch",
        both(vols(_NFS), app(volumes=[claim(storageClass="manual", accessModes=["ReadWriteOnce"])])),
        "apps[0].volumes[0].claim",
        "access modes ReadWriteOnce",
    ),
    (
        "vol-selector-label",
        app(volumes=[claim(selector={"labels": {"bad key!": "x"}})]),
        "apps[0].volumes[0].claim.selector.labels.bad key!",
        "label key",
    ),
    (
        "vol-claim-typo",
        app(volumes=[claim(storageClas="manual")]),
        "apps[0].volumes[0].claim.storageClas",
        "did you mean 'storageClass'",
    ),
    (
        "mysql-static-short",
        both(
            vols(
                {
                    "name": "m0",
                    "capacity": "10Gi",
                    "accessModes": ["ReadWriteOnce"],
                    "storageClass": "db",
                    "local": {"path": "/m", "node": "node1"},
                }
            ),
            top("mysql", {"enabled": True, "replicas": 3, "storage": {"size": "10Gi", "storageClass": "db"}}),
            top("mysqlRootPassword", SECRET),
            top("mysqlReplicationPassword", SECRET),
        ),
        "mysql.storage.storageClass",
        "taken by another claim",
    ),
    ("mysql-innovation", both(_mysql("mysql:9.6.0")), "mysql.image", "innovation release (9.6)"),
    ("mysql-future-innovation", both(_mysql("mysql:9.8.0")), "mysql.image", "use an LTS series: 8.4 and 9.7"),
    ("mysql-old", both(_mysql("mysql:8.0.40")), "mysql.image", "older than MySQL 8.4 LTS"),
]


def test_plaintext_secret_is_never_echoed() -> None:
    cfg = base()
    cfg["apiToken"] = "hunter2-plaintext"
    app(secretEnv={"TOKEN": "apiToken"})(cfg)
    with pytest.raises(ConfigError) as err:
        parse(cfg)
    assert "hunter2" not in str(err.value)


def test_rejections_cover_every_feature() -> None:
    prefixes = {i.split("-")[0] for i, *_ in REJECTED}
    assert {"mesh", "resilience", "timeout", "retries", "breaker", "pool", "config", "secret", "pv", "vol"} <= prefixes
    assert len(REJECTED) >= 80

"""The policy pack (`policy/`): every rule passes the real stacks' manifests and catches its mutation.

Three layers, all without the Pulumi engine:
* the pure validators in `policy/guardrails.py` on manifests rendered from the
  real stacks (`stacks.render`), then on mutated copies;
* the pulumi-policy objects (`policy/policies.py`) fed resource inputs the way
  the SDK hands them over (deserialized props behind the unknown-checking proxy);
* the pack itself as the engine starts it (`python -m pulumi.policy`), spoken to
  over its gRPC Analyzer interface with the stack config in PULUMI_CONFIG.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.mocks import PROJECT_ROOT

POLICY_DIR = PROJECT_ROOT / "policy"
sys.path.insert(0, str(POLICY_DIR))

import guardrails as g  # noqa: E402

from stacks.files import load_spec_file, stack_file  # noqa: E402
from stacks.render import render_objects  # noqa: E402

STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, dict[str, Any]]]:
    """stack -> file name -> manifest, as `python -m stacks render` writes them."""
    return {s: render_objects(load_spec_file(stack_file(s)), PROJECT_ROOT) for s in STACKS}


def violations(rule: g.Rule, objects: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    names = list(objects)
    if rule.is_stack:
        assert rule.stack_check is not None
        return [(names[i], msg) for i, msg in rule.stack_check(list(objects.values()))]
    return [(name, msg) for name, obj in objects.items() for msg in g.resource_violations(rule, obj)]


def test_rule_set() -> None:
    names = [r.name for r in g.RULES]
    assert len(names) == len(set(names)) == 11
    assert {r.name for r in g.RULES if r.tier == "prod"} == {
        "no-nodeport-services", "deployment-replicas", "deployment-replicas-hpa", "readiness-probes",
    }  # fmt: skip
    assert {r.name for r in g.RULES if r.is_stack} == {"statefulset-pdb", "deployment-replicas-hpa"}
    for rule in g.RULES:
        assert (rule.check is None) != (rule.stack_check is None), rule.name


def test_allow_lists_give_reasons() -> None:
    for key, (paths, reason) in g.HOSTPATH_ALLOWED.items():
        assert paths and len(reason) > 20, key
    for key, reason in g.READINESS_EXEMPT.items():
        assert len(reason) > 20, key


@pytest.mark.parametrize("stack", STACKS)
def test_real_stacks_pass_every_mandatory_rule(rendered: dict[str, Any], stack: str) -> None:
    objects = rendered[stack]
    kinds = {o["kind"] for o in objects.values()}
    assert {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget"} <= kinds
    for rule in g.RULES:
        found = violations(rule, objects)
        if g.enforcement(rule, stack) == "mandatory":
            assert not found, f"{stack}: {rule.name}: {found}"


def test_prod_stack_has_no_violation_at_all(rendered: dict[str, Any]) -> None:
    assert {r.name: violations(r, rendered["prod"]) for r in g.RULES} == {r.name: [] for r in g.RULES}


def test_dev_nodeport_is_advisory_in_dev_and_would_block_prod(rendered: dict[str, Any]) -> None:
    rule = g.RULES_BY_NAME["no-nodeport-services"]
    found = violations(rule, rendered["dev"])
    assert [name for name, _ in found] == ["web.Service.my-nginx.yaml"]
    assert g.enforcement(rule, "dev") == "advisory"
    assert g.enforcement(rule, "staging") == "advisory"
    assert g.enforcement(rule, "prod") == "mandatory"


@pytest.mark.parametrize("env", [*STACKS, None, "", "production", '"prod"', '"dev"'])
def test_enforcement_levels_per_environment(env: Any) -> None:
    resolved, note = g.resolve_environment(env)
    expected = {"dev": "dev", "staging": "staging", '"dev"': "dev"}.get(env, "prod")  # type: ignore[arg-type]
    assert resolved == expected
    assert (note is None) == (env in (*STACKS, '"prod"', '"dev"'))
    for rule in g.RULES:
        want = "mandatory" if rule.tier == "always" or resolved == "prod" else "advisory"
        assert g.enforcement(rule, resolved) == want, (rule.name, env)


# --------------------------------------------------------------------------- mutations

Mutation = Callable[[dict[str, dict[str, Any]]], None]
STS = "data.StatefulSet.mysql.yaml"
DEP = "web.Deployment.my-nginx.yaml"
SVC = "web.Service.my-nginx.yaml"
PDB = "data.PodDisruptionBudget.mysql.yaml"
HPA = "web.HorizontalPodAutoscaler.my-nginx.yaml"


def pod(objs: dict[str, Any], name: str) -> dict[str, Any]:
    return objs[name]["spec"]["template"]["spec"]


def _container(name: str, field: str = "containers", i: int = 0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda objs: pod(objs, name)[field][i]


def edit(get: Callable[[dict[str, Any]], dict[str, Any]], fn: Callable[[dict[str, Any]], Any]) -> Mutation:
    return lambda objs: fn(get(objs))


MYSQL = _container(STS)
MYSQL_INIT = _container(STS, "initContainers")
MYSQL_SIDECAR = _container(STS, "containers", 1)
NGINX = _container(DEP)

# (id, rule, mutation, words expected in the message)
MUTATIONS: list[tuple[str, str, Mutation, str]] = [
    ("no-resources", "container-resources", edit(NGINX, lambda c: c.pop("resources")), "requests.cpu"),
    ("no-memory-limit", "container-resources", edit(NGINX, lambda c: c["resources"]["limits"].pop("memory")), "limits.memory"),
    ("init-no-requests", "container-resources", edit(MYSQL_INIT, lambda c: c["resources"].pop("requests")), "initContainers[0] (config)"),
    ("sidecar-no-cpu-request", "container-resources", edit(MYSQL_SIDECAR, lambda c: c["resources"]["requests"].pop("cpu")), "requests.cpu"),
    ("latest", "pinned-images", edit(NGINX, lambda c: c.update(image="nginx:latest")), "'latest'"),
    ("tagless", "pinned-images", edit(NGINX, lambda c: c.update(image="nginx")), "no tag"),
    ("registry-port-tagless", "pinned-images", edit(NGINX, lambda c: c.update(image="registry.local:5000/nginx")), "no tag"),
    ("init-latest", "pinned-images", edit(MYSQL_INIT, lambda c: c.update(image="mysql:latest")), "initContainers[0]"),
    ("no-image", "pinned-images", edit(NGINX, lambda c: c.pop("image")), "no image"),
    ("ephemeral-latest", "pinned-images", lambda o: pod(o, DEP).update(ephemeralContainers=[{"name": "dbg", "image": "busybox"}]), "ephemeralContainers[0] (dbg)"),
    ("privileged", "no-privileged-containers", edit(NGINX, lambda c: c.setdefault("securityContext", {}).update(privileged=True)), "privileged"),
    ("init-privileged", "no-privileged-containers", edit(MYSQL_INIT, lambda c: c["securityContext"].update(privileged=True)), "initContainers[0] (config)"),
    ("hostpath", "no-hostpath-volumes", lambda o: pod(o, DEP).setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/var/run"}}), "'/var/run'"),
    ("hostpath-sts", "no-hostpath-volumes", lambda o: pod(o, STS)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volumes[4] (h)"),
    ("pv-hostpath", "no-hostpath-volumes", lambda o: o.update(pv={"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"}, "spec": {"hostPath": {"path": "/data"}}}), "spec.hostPath"),
    ("mysql-literal-password", "mysql-passwords-from-secrets", edit(MYSQL, lambda c: c["env"].append({"name": "MYSQL_ROOT_PASSWORD", "value": "hunter2"})), "literal value"),
    ("mysql-init-literal-pwd", "mysql-passwords-from-secrets", edit(MYSQL_INIT, lambda c: c["env"].append({"name": "MYSQL_PWD", "value": "hunter2"})), "MYSQL_PWD"),
    ("mysql-password-configmap", "mysql-passwords-from-secrets", edit(MYSQL, lambda c: c["env"].append({"name": "REPL_PASSWORD", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}})), "other than secretKeyRef"),
    ("mysql-args-password", "mysql-passwords-from-secrets", edit(MYSQL, lambda c: c.update(args=["mysqld", "--password=hunter2"])), "command line"),
    ("mysql-sh-dash-p", "mysql-passwords-from-secrets", edit(MYSQL_SIDECAR, lambda c: c.update(command=["sh", "-c", 'mysql -uroot -p"$MYSQL_ROOT_PASSWORD" -e "select 1"'])), "mysql -p"),
    ("mysql-identified-by", "mysql-passwords-from-secrets", edit(MYSQL_INIT, lambda c: c.update(command=["sh", "-c", "mysql -e \"CREATE USER r IDENTIFIED BY 'hunter2'\""])), "IDENTIFIED BY"),
    ("mysql-argv-password", "mysql-passwords-from-secrets", edit(MYSQL, lambda c: c.update(args=["mysqladmin", "--password", "hunter2", "ping"])), "command line"),
    ("pvc-retention-missing", "statefulset-pvc-retention", lambda o: o[STS]["spec"].pop("persistentVolumeClaimRetentionPolicy"), "whenDeleted=None"),
    ("pvc-retention-delete", "statefulset-pvc-retention", lambda o: o[STS]["spec"]["persistentVolumeClaimRetentionPolicy"].update(whenScaled="Delete"), "whenScaled=Delete"),
    ("pdb-missing", "statefulset-pdb", lambda o: o.pop(PDB), "no PodDisruptionBudget"),
    ("pdb-other-namespace", "statefulset-pdb", lambda o: o[PDB]["metadata"].update(namespace="web"), "no PodDisruptionBudget"),
    ("pdb-wrong-selector", "statefulset-pdb", lambda o: o[PDB]["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "postgres"}), "no PodDisruptionBudget"),
    ("pdb-expression-excludes", "statefulset-pdb", lambda o: o[PDB]["spec"]["selector"].update(matchExpressions=[{"key": "app.kubernetes.io/instance", "operator": "NotIn", "values": ["mysql"]}]), "no PodDisruptionBudget"),
    ("nodeport", "no-nodeport-services", lambda o: o[SVC]["spec"].update(type="NodePort"), "NodePort"),
    ("one-replica", "deployment-replicas", lambda o: o[DEP]["spec"].update(replicas=1), "spec.replicas is 1"),
    ("zero-replicas-float", "deployment-replicas", lambda o: o[DEP]["spec"].update(replicas=0.0), "spec.replicas is 0"),
    ("no-replicas-no-hpa", "deployment-replicas-hpa", lambda o: o.pop(HPA), "no HPA"),
    ("hpa-min-one", "deployment-replicas-hpa", lambda o: o[HPA]["spec"].update(minReplicas=1), "minReplicas 1"),
    ("hpa-other-target", "deployment-replicas-hpa", lambda o: o[HPA]["spec"]["scaleTargetRef"].update(name="other"), "no HPA"),
    ("no-readiness", "readiness-probes", edit(NGINX, lambda c: c.pop("readinessProbe")), "no readinessProbe"),
    ("mysql-no-readiness", "readiness-probes", edit(MYSQL, lambda c: c.pop("readinessProbe")), "containers[0] (mysql)"),
    ("sidecar-init-no-readiness", "readiness-probes", lambda o: pod(o, DEP).update(initContainers=[{"name": "proxy", "image": "envoy:1.30", "restartPolicy": "Always"}]), "initContainers[0] (proxy)"),
]  # fmt: skip


def test_every_rule_has_a_mutation() -> None:
    assert {rule for _, rule, _, _ in MUTATIONS} == set(g.RULES_BY_NAME)


@pytest.mark.parametrize(("rule_name", "mutate", "words"), [pytest.param(r, m, w, id=i) for i, r, m, w in MUTATIONS])
def test_mutated_prod_manifest_fails(rendered: dict[str, Any], rule_name: str, mutate: Mutation, words: str) -> None:
    objects = copy.deepcopy(rendered["prod"])
    rule = g.RULES_BY_NAME[rule_name]
    assert violations(rule, objects) == []
    mutate(objects)
    found = violations(rule, objects)
    assert found, f"{rule_name} did not catch the mutation"
    assert any(words in msg for _, msg in found), found
    for _, msg in found:
        assert "hunter2" not in msg, "a violation message echoed a secret value"


@pytest.mark.parametrize(
    "image",
    [
        "nginx:1.27.5",
        "registry.local:5000/team/app:2.0",
        "ghcr.io/a/b@sha256:" + "0" * 64,
        "a/b:latest@sha256:" + "f" * 64,
    ],
)
def test_pinned_image_shapes(image: str) -> None:
    assert g.image_problem(image) is None


def test_unchanged_init_containers_need_no_probe_and_exemptions_are_scoped(rendered: dict[str, Any]) -> None:
    rule = g.RULES_BY_NAME["readiness-probes"]
    sts = rendered["prod"][STS]
    # the mysql init containers have no probes and are not reported; the sidecar is exempt by name
    assert g.check_readiness_probes(sts) == []
    assert [m for m in g.check_readiness_probes(sts, exempt={}) if "replication" in m]
    # a Job's containers are run-to-completion: no readiness probe needed
    job = {"kind": "Job", "spec": {"template": {"spec": {"containers": [{"name": "j", "image": "busybox:1.36"}]}}}}
    assert g.resource_violations(rule, job) == []


def test_hostpath_allow_list_is_path_specific() -> None:
    ds = {
        "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "ops"},
        "spec": {"template": {"spec": {"volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}]}}},
    }  # fmt: skip
    assert g.check_no_hostpath(ds)
    allowed = {("ops", "DaemonSet", "agent"): (("/var/log",), "ships node logs; read-only mount")}
    assert g.check_no_hostpath(ds, allowed) == []
    ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] = "/"
    assert g.check_no_hostpath(ds, allowed)


def test_patches_are_not_checked_for_missing_fields() -> None:
    patch = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}}
    assert g.resource_violations(g.RULES_BY_NAME["container-resources"], patch, is_patch=True) == []
    assert g.resource_violations(g.RULES_BY_NAME["readiness-probes"], patch, is_patch=True) == []
    patch["spec"]["template"]["spec"]["containers"][0]["image"] = "a:latest"
    assert g.resource_violations(g.RULES_BY_NAME["pinned-images"], patch, is_patch=True)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("kubernetes:apps/v1:Deployment", ("apps/v1", "Deployment", False)),
        ("kubernetes:core/v1:Service", ("v1", "Service", False)),
        ("kubernetes:policy/v1:PodDisruptionBudget", ("policy/v1", "PodDisruptionBudget", False)),
        ("kubernetes:batch/v1:CronJob", ("batch/v1", "CronJob", False)),
        ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", ("autoscaling/v2", "HorizontalPodAutoscaler", False)),
        ("kubernetes:apps/v1:StatefulSetPatch", ("apps/v1", "StatefulSet", True)),
        ("kubernetes:core/v1:NodePatch", ("v1", "Node", True)),
        ("kubernetes:metallb.io/v1beta1:IPAddressPool", ("metallb.io/v1beta1", "IPAddressPool", False)),
        ("kubernetes:helm.sh/v3:Release", None),
        ("kubernetes:helm.sh/v4:Chart", None),
        ("kubernetes:yaml/v2:ConfigGroup", None),
        ("kubernetes:apps/v1:DeploymentList", None),
        ("pulumi:providers:kubernetes", None),
        ("command:remote:Command", None),
    ],
)
def test_type_tokens_map_to_manifest_shape(token: str, expected: tuple[str, str, bool] | None) -> None:
    info = g.parse_type(token)
    assert (None if info is None else (info.api_version, info.kind, info.is_patch)) == expected


def test_manifest_view_takes_type_meta_from_the_token(rendered: dict[str, Any]) -> None:
    props = {k: v for k, v in rendered["prod"][STS].items() if k not in ("apiVersion", "kind")}
    view, is_patch = g.manifest_view("kubernetes:apps/v1:StatefulSet", props)  # type: ignore[misc]
    assert view["kind"] == "StatefulSet" and view["apiVersion"] == "apps/v1" and not is_patch
    assert set(view) == {"apiVersion", "kind", *props}
    assert g.check_pvc_retention(view) == [] and g.check_readiness_probes(view) == []


# --------------------------------------------------------------------------- pulumi-policy objects

needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("pulumi_policy") is None, reason="pulumi-policy is not installed (requirements-dev.txt)"
)


def _props(manifest: dict[str, Any]) -> Any:
    """Resource inputs as pulumi-policy passes them: deserialized, behind the unknown-checking proxy."""
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.proxy import unknown_checking_proxy

    return unknown_checking_proxy(
        deserialize_properties({k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")})
    )


def _token(manifest: dict[str, Any]) -> str:
    group, _, version = manifest["apiVersion"].rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{manifest['kind']}"


def _policies(env: str) -> dict[str, Any]:
    import policies

    return {p.name: p for p in policies.build_policies(env)}


def _run_resource_policy(policy: Any, token: str, props: Any) -> list[str]:
    from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs

    reported: list[str] = []
    opts = PolicyResourceOptions(False, [], None, [], None, [], None)  # type: ignore[arg-type]
    args = ResourceValidationArgs(token, props, "urn:pulumi:prod::k8s-platform::x::y", "y", opts, None)
    policy.validate(args, lambda msg, urn=None: reported.append(msg))
    return reported


@needs_sdk
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_policy_levels_follow_the_environment(env: str) -> None:
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    built = _policies(env)
    assert list(built) == [r.name for r in g.RULES]
    for rule in g.RULES:
        policy = built[rule.name]
        assert isinstance(policy, StackValidationPolicy if rule.is_stack else ResourceValidationPolicy)
        want = EnforcementLevel.MANDATORY if g.enforcement(rule, env) == "mandatory" else EnforcementLevel.ADVISORY
        assert policy.enforcement_level == want, rule.name


@needs_sdk
def test_resource_policies_on_sdk_shaped_inputs(rendered: dict[str, Any]) -> None:
    built = _policies("prod")
    for name, manifest in rendered["prod"].items():
        for rule in g.RULES:
            if not rule.is_stack:
                assert _run_resource_policy(built[rule.name], _token(manifest), _props(manifest)) == [], (
                    name,
                    rule.name,
                )
    bad = copy.deepcopy(rendered["prod"][SVC])
    bad["spec"]["type"] = "NodePort"
    assert _run_resource_policy(built["no-nodeport-services"], _token(bad), _props(bad))
    # a Helm v3 release is opaque: no rule applies to it
    assert _run_resource_policy(built["pinned-images"], "kubernetes:helm.sh/v3:Release", _props({"chart": "x"})) == []


@needs_sdk
def test_unknown_values_surface_as_the_sdk_preview_error(rendered: dict[str, Any]) -> None:
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

    manifest = copy.deepcopy(rendered["prod"][DEP])
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = UNKNOWN_STRING_VALUE
    with pytest.raises(UnknownValueError):
        _run_resource_policy(_policies("prod")["pinned-images"], _token(manifest), _props(manifest))
    # rules that do not read the unknown field still run
    assert _run_resource_policy(_policies("prod")["deployment-replicas"], _token(manifest), _props(manifest)) == []


@needs_sdk
def test_stack_policy_reports_the_offending_urn(rendered: dict[str, Any]) -> None:
    from pulumi_policy import PolicyResource, PolicyResourceOptions, StackValidationArgs

    objects = copy.deepcopy(rendered["prod"])
    del objects[PDB]
    opts = PolicyResourceOptions(False, [], None, [], None, [], None)  # type: ignore[arg-type]
    resources = [
        PolicyResource(_token(m), _props(m), f"urn:{name}", name, opts, None, None, [], {})
        for name, m in objects.items()
    ]
    resources.append(PolicyResource("kubernetes:helm.sh/v3:Release", {}, "urn:rel", "rel", opts, None, None, [], {}))
    reported: list[tuple[str, str | None]] = []
    _policies("prod")["statefulset-pdb"].validate(
        StackValidationArgs(resources), lambda msg, urn=None: reported.append((msg, urn))
    )
    assert [urn for _, urn in reported] == [f"urn:{STS}"]


# --------------------------------------------------------------------------- the pack process


class _Pack:
    """`python -m pulumi.policy <engine> policy`, as the python language host starts a pack."""

    def __init__(self, environment: str | None) -> None:
        env = {
            **os.environ,
            "PULUMI_PROJECT": "k8s-platform",
            "PULUMI_STACK": environment or "x",
            "PULUMI_DRY_RUN": "true",
        }
        config = {"k8s-platform:environment": environment} if environment else {}
        env["PULUMI_CONFIG"] = json.dumps({**config, "k8s-platform:mysqlRootPassword": "hunter2-config"})
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(POLICY_DIR)],
            cwd=POLICY_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        port = self.proc.stdout.readline().strip()
        if not port.isdigit():
            self.proc.kill()
            raise AssertionError(f"policy pack did not start: {port!r} {self.proc.communicate(timeout=10)}")
        import grpc
        from pulumi.runtime.proto import analyzer_pb2_grpc

        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def close(self) -> str:
        self.channel.close()
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return err


@pytest.fixture(scope="module")
def prod_pack() -> Iterator[_Pack]:
    pack = _Pack("prod")
    yield pack
    pack.close()


def _struct(manifest: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update({k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")})
    return s


def _levels(pack: _Pack) -> dict[str, int]:
    from google.protobuf import empty_pb2

    info = pack.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "k8s-platform-guardrails"
    return {p.name: p.enforcementLevel for p in info.policies}


@needs_sdk
def test_pack_process_levels_and_verdicts_in_prod(prod_pack: _Pack, rendered: dict[str, Any]) -> None:
    from pulumi.runtime.proto import analyzer_pb2 as pb

    assert _levels(prod_pack) == {r.name: pb.MANDATORY for r in g.RULES}
    for name, manifest in rendered["prod"].items():
        res = prod_pack.stub.Analyze(
            pb.AnalyzeRequest(type=_token(manifest), properties=_struct(manifest), urn=f"urn:{name}", name=name),
            timeout=30,
        )
        assert list(res.diagnostics) == [], (name, res.diagnostics)
    svc = copy.deepcopy(rendered["prod"][SVC])
    svc["spec"]["type"] = "NodePort"
    res = prod_pack.stub.Analyze(
        pb.AnalyzeRequest(type=_token(svc), properties=_struct(svc), urn="urn:svc", name="svc"), timeout=30
    )
    assert [(d.policyName, d.enforcementLevel) for d in res.diagnostics] == [("no-nodeport-services", pb.MANDATORY)]

    objects = copy.deepcopy(rendered["prod"])
    del objects[PDB]
    resources = [
        pb.AnalyzerResource(type=_token(m), properties=_struct(m), urn=f"urn:{n}", name=n) for n, m in objects.items()
    ]
    res = prod_pack.stub.AnalyzeStack(pb.AnalyzeStackRequest(resources=resources), timeout=30)
    assert [(d.policyName, d.urn) for d in res.diagnostics] == [("statefulset-pdb", f"urn:{STS}")]
    assert all("hunter2" not in d.message for d in res.diagnostics)


@needs_sdk
def test_pack_process_is_advisory_for_prod_tier_in_dev(rendered: dict[str, Any]) -> None:
    from pulumi.runtime.proto import analyzer_pb2 as pb

    pack = _Pack("dev")
    try:
        levels = _levels(pack)
        svc = rendered["dev"][SVC]
        res = pack.stub.Analyze(
            pb.AnalyzeRequest(type=_token(svc), properties=_struct(svc), urn="urn:svc", name="svc"), timeout=30
        )
    finally:
        err = pack.close()
    assert levels == {r.name: pb.MANDATORY if r.tier == "always" else pb.ADVISORY for r in g.RULES}
    assert [(d.policyName, d.enforcementLevel) for d in res.diagnostics] == [("no-nodeport-services", pb.ADVISORY)]
    assert "hunter2" not in err


@needs_sdk
def test_pack_without_environment_fails_closed() -> None:
    from pulumi.runtime.proto import analyzer_pb2 as pb

    pack = _Pack(None)
    try:
        levels = _levels(pack)
    finally:
        err = pack.close()
    assert set(levels.values()) == {pb.MANDATORY}
    assert "k8s-platform:environment is not set" in err


def test_the_etcd_snapshot_cronjobs_may_mount_only_etcd_paths() -> None:
    """The per-member CronJobs are allowed by app label, and only for their own kind of path."""

    def cronjob(path: str, managed: bool = True) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": "etcd-snapshot"}
        if managed:
            labels["app.kubernetes.io/managed-by"] = "k8s-platform"
        volumes = [{"name": "etcd-certs", "hostPath": {"path": "/etc/ssl/etcd/ssl"}},
                   {"name": "backup", "hostPath": {"path": "/var/backups/k8s-platform-etcd/scheduled"}},
                   {"name": "x", "hostPath": {"path": path}}]  # fmt: skip
        return {"kind": "CronJob", "metadata": {"name": "etcd-snapshot-cp9", "namespace": "kube-system", "labels": labels},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": {"volumes": volumes}}}}}}  # fmt: skip

    assert g.check_no_hostpath(cronjob("/opt/bin/etcdctl")) == []
    assert [m for m in g.check_no_hostpath(cronjob("/")) if "volumes[2]" in m]
    assert [m for m in g.check_no_hostpath(cronjob("/root/.ssh")) if "volumes[2]" in m]
    assert len(g.check_no_hostpath(cronjob("/opt/bin/etcdctl", managed=False))) == 3, "only the program's own"

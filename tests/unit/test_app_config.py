"""App configuration: ConfigMap (env and/or files), Secret from secret config (secretKeyRef),
the config-hash annotation that rolls the Deployment, and how the program passes the secrets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import checks
from components.webapp import CONFIG_HASH_ANNOTATION, WebApp, WebAppArgs
from components.webapp_config import ROOT_IMAGE_DOC, ROOT_IMAGE_SECTION, AppConfigSpec, AppSpec, InitContainerSpec
from stacks.config import ConfigError, parse_config
from stacks.files import config_from_file
from stacks.program import ProgramSecrets, build
from stacks.render import render_objects
from tests.support.mocks import PROJECT_ROOT, OptsRecorder, PlatformMocks, app_spec, run_program

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
SHOWCASE = PROJECT_ROOT / "tests" / "unit" / "fixtures" / "Pulumi.showcase.yaml"
PLAINTEXT = "s3cr3t-value-under-test"


CONFIG = AppConfigSpec(data={"LOG_LEVEL": "info", "app.conf": "a=1\n"}, mount_path="/etc/api", env=True)


def _run(app: AppSpec, secrets: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
    values = {k: pulumi.Output.secret(v) for k, v in (secrets or {}).items()}
    run_program(lambda: WebApp("app", WebAppArgs(spec=app, secret_values=values), opts=opts))


def _one(mocks: PlatformMocks, typ: str) -> dict[str, Any]:
    found = mocks.of_type(typ)
    assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
    return found[0].inputs


def _pod(mocks: PlatformMocks) -> dict[str, Any]:
    return _one(mocks, DEPLOYMENT)["spec"]["template"]


def test_config_map_as_env_and_files(mocks: PlatformMocks) -> None:
    _run(app_spec(config=CONFIG, env={"A": "1"}))
    cm = _one(mocks, CONFIG_MAP)
    assert cm["metadata"]["name"] == "api-config" and cm["metadata"]["namespace"] == "shop"
    assert cm["data"] == {"LOG_LEVEL": "info", "app.conf": "a=1\n"}
    pod = _pod(mocks)
    (c,) = pod["spec"]["containers"]
    assert c["env"] == [
        {"name": "A", "value": "1"},
        {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "api-config", "key": "LOG_LEVEL"}}},
    ], "env-name keys become variables; file-like keys stay files"
    assert c["volumeMounts"] == [{"name": "config", "mountPath": "/etc/api", "readOnly": True}]
    assert pod["spec"]["volumes"] == [{"name": "config", "configMap": {"name": "api-config"}}]


def test_config_files_only(mocks: PlatformMocks) -> None:
    _run(app_spec(config=dataclasses.replace(CONFIG, env=False)))
    (c,) = _pod(mocks)["spec"]["containers"]
    assert "env" not in c and c["volumeMounts"][0]["mountPath"] == "/etc/api"


def test_config_env_only(mocks: PlatformMocks) -> None:
    _run(app_spec(config=AppConfigSpec(data={"B": "2"}, env=True)))
    pod = _pod(mocks)
    assert "volumes" not in pod["spec"] and "volumeMounts" not in pod["spec"]["containers"][0]


def test_secret_env_via_secret_key_ref(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    _run(
        app_spec(secret_env={"API_TOKEN": "apiToken"}),
        {"apiToken": PLAINTEXT},
        opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
    )
    secret = _one(mocks, SECRET)
    assert secret["metadata"]["name"] == "api-secret" and secret["type"] == "Opaque"
    # the engine receives stringData wrapped as a secret (Pulumi's secret envelope)
    assert secret["stringData"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    assert secret["stringData"]["value"] == {"API_TOKEN": PLAINTEXT}
    assert set(opts_recorder.opts["app-secret"].additional_secret_outputs or []) >= {"data", "stringData"}
    (c,) = _pod(mocks)["spec"]["containers"]
    assert c["env"] == [
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-secret", "key": "API_TOKEN"}}}
    ]
    deps = opts_recorder.depends_on("app-deployment")
    assert any(isinstance(d, pulumi.CustomResource) and d._name == "app-secret" for d in deps), (
        "pods need the Secret before they start"
    )


def test_secret_values_stay_pulumi_secrets() -> None:
    made: dict[str, WebApp] = {}
    seen: list[bool] = []

    def program() -> pulumi.Output[None]:
        made["w"] = w = WebApp(
            "app",
            WebAppArgs(spec=app_spec(secret_env={"T": "k"}), secret_values={"k": pulumi.Output.secret(PLAINTEXT)}),
        )
        assert w.secret is not None

        def check(args: list[Any]) -> None:
            seen.append(args[0])

        return pulumi.Output.all(pulumi.Output.is_secret(w.secret.string_data)).apply(check)  # type: ignore[attr-defined]

    mocks = PlatformMocks()
    pulumi.runtime.set_mocks(mocks, project="k8s-platform", stack="dev", preview=False)
    run_program(program)
    assert seen == [True], "stringData must be a secret output"


def test_missing_secret_value_is_an_error(mocks: PlatformMocks) -> None:
    with pytest.raises(ValueError, match="apiToken"):
        _run(app_spec(secret_env={"T": "apiToken"}), {})


def _hash(mocks: PlatformMocks, app: AppSpec, secrets: dict[str, str] | None = None) -> str | None:
    mocks.resources.clear()
    _run(app, secrets)
    return (_pod(mocks)["metadata"].get("annotations") or {}).get(CONFIG_HASH_ANNOTATION)


def test_config_hash_changes_exactly_with_content(mocks: PlatformMocks) -> None:
    assert _hash(mocks, app_spec()) is None, "apps without config keep their pod template (no roll on upgrade)"
    base = _hash(mocks, app_spec(config=CONFIG, secret_env={"T": "k"}), {"k": PLAINTEXT})
    assert base and len(base) == 64
    assert _hash(mocks, app_spec(config=CONFIG, secret_env={"T": "k"}), {"k": PLAINTEXT}) == base, "deterministic"
    changed_cm = dataclasses.replace(CONFIG, data={**CONFIG.data, "LOG_LEVEL": "debug"})
    assert _hash(mocks, app_spec(config=changed_cm, secret_env={"T": "k"}), {"k": PLAINTEXT}) != base
    assert _hash(mocks, app_spec(config=CONFIG, secret_env={"T": "k"}), {"k": PLAINTEXT + "2"}) != base
    assert _hash(mocks, app_spec(config=CONFIG)) not in (None, base)


def test_config_hash_leaks_nothing_and_is_not_secret() -> None:
    seen: list[Any] = []

    def program() -> pulumi.Output[None]:
        from components.webapp import config_hash

        out = config_hash(app_spec(secret_env={"T": "k"}), {"k": pulumi.Output.secret(PLAINTEXT)})
        assert out is not None

        def check(args: list[Any]) -> None:
            seen.extend(args)

        return pulumi.Output.all(out, pulumi.Output.is_secret(out)).apply(check)  # type: ignore[attr-defined]

    pulumi.runtime.set_mocks(PlatformMocks(), project="k8s-platform", stack="dev", preview=False)
    run_program(program)
    value, secret = seen
    assert len(value) == 64 and PLAINTEXT not in value
    assert secret is False, "a secret annotation would hide the Deployment's diff"


def test_rendered_deployment_diff_is_readable_and_plaintext_free() -> None:
    spec = parse_config(config_from_file(SHOWCASE), project_root=PROJECT_ROOT)
    secrets = ProgramSecrets(
        ssh_private_key=pulumi.Output.secret("k"),
        mysql_root_password=pulumi.Output.secret("r"),
        mysql_replication_password=pulumi.Output.secret("p"),
        extra={
            "apiToken": pulumi.Output.secret(PLAINTEXT),
            "shopDbPassword": pulumi.Output.secret("db-" + PLAINTEXT),
            "reportsDbPassword": pulumi.Output.secret("ro-" + PLAINTEXT),
        },
    )
    objects = render_objects(spec, PROJECT_ROOT, builder=lambda s, sec, root: build(s, sec, root), secrets=secrets)
    dep = objects["shop.Deployment.api.yaml"]
    assert "<redacted>" not in json.dumps(dep), "no part of the Deployment is a secret: its diff stays visible"
    assert PLAINTEXT not in json.dumps(objects), "no plaintext anywhere in the rendered objects"
    assert objects["shop.Secret.api-secret.yaml"]["stringData"] == {
        "API_TOKEN": "<redacted>",
        "DB_PASSWORD": "<redacted>",
    }
    # the api's MySQL account gets the same secret the api reads as DB_PASSWORD
    assert objects["data.Secret.mysql-app-users.yaml"]["stringData"] == {
        "shop": "<redacted>",
        "shop_reports": "<redacted>",
    }
    assert objects["data.ConfigMap.mysql-users.yaml"]["data"] == {
        "users": "shop readWrite shop\nshop_reports readOnly shop\n"
    }


def test_program_requires_the_referenced_secrets(mocks: PlatformMocks) -> None:
    spec = parse_config(config_from_file(SHOWCASE), project_root=PROJECT_ROOT)
    secrets = ProgramSecrets(
        ssh_private_key=pulumi.Output.secret("k"),
        mysql_root_password=pulumi.Output.secret("r"),
        mysql_replication_password=pulumi.Output.secret("p"),
        extra={"apiToken": pulumi.Output.secret("t")},
    )
    with pytest.raises(ConfigError) as err:
        run_program(lambda: build(spec, secrets, Path(PROJECT_ROOT), stack="test"))
    assert [p.path for p in err.value.problems] == ["reportsDbPassword", "shopDbPassword"]
    assert "pulumi config set --secret shopDbPassword" in err.value.problems[1].message


def test_render_uses_placeholders_for_app_secrets() -> None:
    spec = parse_config(config_from_file(SHOWCASE), project_root=PROJECT_ROOT)
    objects = render_objects(spec, PROJECT_ROOT)
    assert objects["shop.Secret.api-secret.yaml"]["stringData"] == {
        "API_TOKEN": "<redacted>",
        "DB_PASSWORD": "<redacted>",
    }
    annotations = objects["shop.Deployment.api.yaml"]["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations[CONFIG_HASH_ANNOTATION]) == 64


# ---------------------------------------------------------------------- init containers, rollout, low ports
def test_init_containers_share_the_apps_env_mounts_and_restrictions(mocks: PlatformMocks) -> None:

    init = InitContainerSpec(name="migrate", command=("./migrate", "--up"), image="nginx:1.27")
    _run(app_spec(config=CONFIG, secret_env={"DB_PASSWORD": "dbPassword"}, init_containers=(init,)), {"dbPassword": PLAINTEXT})
    spec = _pod(mocks)["spec"]
    (ic,) = spec["initContainers"]
    (c,) = spec["containers"]
    assert ic["name"] == "migrate" and ic["command"] == ["./migrate", "--up"] and ic["image"] == "nginx:1.27"
    assert ic["env"] == c["env"] and ic["volumeMounts"] == c["volumeMounts"]
    assert ic["securityContext"] == c["securityContext"]
    assert "ports" not in ic and "readinessProbe" not in ic  # an init container has neither


def test_no_init_containers_key_without_init_containers(mocks: PlatformMocks) -> None:
    _run(app_spec())
    assert "initContainers" not in _pod(mocks)["spec"]


def test_rollout_timeout_bounds_the_deployment_and_service_waits(opts_recorder: OptsRecorder) -> None:
    _run(app_spec(rollout_timeout=90), opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]))
    for child in ("app-deployment", "app-service"):
        timeouts = opts_recorder.opts[child].custom_timeouts
        assert timeouts is not None and (timeouts.create, timeouts.update) == ("90s", "90s"), child


@pytest.mark.parametrize(("port", "sysctls"), [
    (80, [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]),
    (1023, [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "1023"}]),
    (1024, None),
    (8080, None),
])  # fmt: skip
def test_a_port_below_1024_is_bindable_without_capabilities(
    mocks: PlatformMocks, port: int, sysctls: list[dict[str, str]] | None
) -> None:
    _run(app_spec(port=port))
    pod_sc = _pod(mocks)["spec"]["securityContext"]
    assert pod_sc.get("sysctls") == sysctls
    assert _pod(mocks)["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(("image", "warned"), [
    ("nginx:1.27", True),
    ("docker.io/library/nginx:1.27", True),
    ("redis@sha256:" + "a" * 64, True),
    ("nginxinc/nginx-unprivileged:1.27", False),
    ("registry.example.com/nginx:1.27", False),
])  # fmt: skip
def test_an_official_image_under_run_as_non_root_is_warned_about(image: str, warned: bool) -> None:
    def parse(**app: Any) -> tuple[str, ...]:
        cfg = json.loads(SHOWCASE_CFG)
        cfg["apps"] = [{"name": "web", "namespace": "web", "port": 8080, "image": image, **app}]
        return parse_config(cfg).warnings

    hits = [w for w in parse() if w.startswith("apps[0].image:")]
    assert bool(hits) is warned, parse()
    if warned:
        # one line (validate prints it per app and per stack file); the details are in the docs it names
        (hint,) = hits
        assert f"apps[0].image: {image!r} is a Docker Official Image" in hint and "runAsUser" in hint
        assert "\n" not in hint and len(hint) - len(image) < 250, hint
        assert f'({ROOT_IMAGE_DOC}, "{ROOT_IMAGE_SECTION}")' in hint
    # an explicit user, or an app that knowingly runs as root, is not warned about
    assert not [w for w in parse(runAsUser=101) if w.startswith("apps[0].image:")]
    assert not [w for w in parse(runAsNonRoot=False) if w.startswith("apps[0].image:")]


def test_the_docs_the_official_image_warning_names_explain_it() -> None:
    text = (PROJECT_ROOT / ROOT_IMAGE_DOC).read_text()
    assert f"\n## {ROOT_IMAGE_SECTION}\n" in text, f"{ROOT_IMAGE_DOC}: no section {ROOT_IMAGE_SECTION!r}"
    section = text.split(f"\n## {ROOT_IMAGE_SECTION}\n", 1)[1].split("\n## ", 1)[0]
    for fact in ("image will run as root", "CreateContainerConfigError", "nginxinc/nginx-unprivileged",
                 "runAsUser", "runAsNonRoot: false", "capabilities"):  # fmt: skip
        assert fact in section, fact


SHOWCASE_CFG = json.dumps({"environment": "dev", "cluster": {"mode": "existing", "kubeconfig": "/dev/null",
                                                             "nodes": [{"name": "node1", "roles": ["control-plane"]}]}})  # fmt: skip


@pytest.mark.parametrize(
    "image",
    [
        "172.30.59.1:5000/k8s-platform.test/web:1",  # a lab registry by address and port
        "registry.local:5000/team/app:2.0",
        "localhost:5000/a/b:2",
        "docker.io/library/nginx:1.27",
        "ghcr.io/a/b@sha256:" + "0" * 64,
        "a__b/c-d.e:1",
    ],
)
def test_an_image_from_a_registry_with_a_port_is_a_reference(image: str) -> None:
    # found on the real machines: every `host:port/name` was refused before
    assert checks.image_problem(image) is None


@pytest.mark.parametrize("image", ["Nginx:1", "a//b:1", "my_reg:5000/x:1", "reg:5000/:1", "/x:1"])
def test_malformed_image_references_are_refused(image: str) -> None:
    assert "is not an image reference" in (checks.image_problem(image) or "")

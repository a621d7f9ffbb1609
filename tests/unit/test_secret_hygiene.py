"""Secrets hygiene: known secret values go in, and no plaintext comes out anywhere we write.

Fed to the program under mocks (kubespray mode: SSH key + MySQL passwords;
existing mode: a kubeconfig secret) and to the CLI. Scanned:

* every resource input the program registers: a secret may only appear inside
  Pulumi's secret envelope (so state and previews show `[secret]`);
* remote-command scripts (`create`/`update`/`delete`): no secret at all, since a
  failing command's error quotes its script; the SSH key rides only in the
  `connection`, which is secret as a whole;
* stack outputs, rendered manifests (`render_stack`), CLI stdout/stderr of
  validate/inventory/render, and exception messages of failing configs.

Each secret is also searched base64-encoded (Kubernetes Secret data) and by a
distinctive fragment (a secret reformatted or truncated in a message).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from stacks import cli
from stacks.config import ConfigError, parse_config
from stacks.files import config_from_file, load_spec_file, stack_file
from stacks.program import ProgramSecrets, deploy
from stacks.render import render_stack
from tests.support.mocks import PROJECT_ROOT, OptsRecorder, PlatformMocks, run_program

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VAL = "1b47061264138c4ac30d75fd1eb44270"

SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAAHygieneSshKeyMaterial0451xQ\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
ROOT_PW = "hygiene-root-pw-7c1e"
REPL_PW = "hygiene-repl-pw-93ab"
KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: 'https://10.9.9.9:6443'}\n  name: c\n"
    "contexts:\n- context: {cluster: c, user: u}\n  name: c\ncurrent-context: c\n"
    "users:\n- name: u\n  user: {token: hygiene-kubeconfig-token-5d2f}\n"
)
# name -> (value, distinctive fragment)
SECRETS = {
    "sshPrivateKey": (SSH_KEY, "HygieneSshKeyMaterial0451"),
    "mysqlRootPassword": (ROOT_PW, "root-pw-7c1e"),
    "mysqlReplicationPassword": (REPL_PW, "repl-pw-93ab"),
    "kubeconfig": (KUBECONFIG, "kubeconfig-token-5d2f"),
}


def needles() -> dict[str, str]:
    out = {}
    for name, (value, fragment) in SECRETS.items():
        out[f"{name}"] = value.strip()
        out[f"{name} (fragment)"] = fragment
        out[f"{name} (base64)"] = base64.b64encode(value.encode()).decode()
        out[f"{name} (fragment, base64)"] = base64.b64encode(fragment.encode()).decode()[:16]
    return out


NEEDLES = needles()


def leaks(text: str) -> list[str]:
    return [name for name, needle in NEEDLES.items() if needle in text]


def program_secrets(*, kubeconfig: bool = False) -> ProgramSecrets:
    return ProgramSecrets(
        ssh_private_key=None if kubeconfig else pulumi.Output.secret(SSH_KEY),
        kubeconfig=pulumi.Output.secret(KUBECONFIG) if kubeconfig else None,
        mysql_root_password=pulumi.Output.secret(ROOT_PW),
        mysql_replication_password=pulumi.Output.secret(REPL_PW),
    )


def existing_raw() -> dict[str, Any]:
    """An existing-mode stack with MySQL and an app: kubeconfig + passwords as secrets."""
    raw = config_from_file(stack_file("dev"))
    raw["cluster"] = {"mode": "existing"}
    raw.pop("sshPrivateKey")
    raw["kubeconfig"] = config_from_file(stack_file("dev"))["mysqlRootPassword"]  # the SECRET marker
    return raw


def plaintext_outside_envelopes(value: Any, path: str = "") -> list[tuple[str, list[str]]]:
    """Paths where a secret's plaintext sits in a value not wrapped as a Pulumi secret."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VAL:
            return []
        return [hit for k, v in value.items() for hit in plaintext_outside_envelopes(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [hit for i, v in enumerate(value) for hit in plaintext_outside_envelopes(v, f"{path}[{i}]")]
    found = leaks(str(value))
    return [(path, found)] if found else []


def run(raw: dict[str, Any], secrets: ProgramSecrets) -> dict[str, Any]:
    out: dict[str, Any] = {}
    run_program(lambda: out.update(deploy(raw, secrets, PROJECT_ROOT, stack="hygiene")))
    return out


CASES = {
    "kubespray": (lambda: config_from_file(stack_file("staging")), lambda: program_secrets()),
    "existing": (existing_raw, lambda: program_secrets(kubeconfig=True)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_secrets_stay_inside_envelopes(mocks: PlatformMocks, case: str) -> None:
    raw_fn, secrets_fn = CASES[case]
    run(raw_fn(), secrets_fn())
    assert mocks.resources
    carried: set[str] = set()
    for r in mocks.resources:
        hits = plaintext_outside_envelopes(r.inputs)
        assert not hits, f"{r.type} {r.name}: secret plaintext outside a secret at {hits}"
        carried.update(leaks(json.dumps(r.inputs, default=str)))
    # the secrets did reach the resources that need them (else this test would prove nothing)
    expected = {"mysqlRootPassword", "mysqlReplicationPassword"} | (
        {"kubeconfig (fragment)"} if case == "existing" else {"sshPrivateKey (fragment)"}
    )
    assert expected <= carried, carried


def test_remote_command_scripts_hold_no_secret(mocks: PlatformMocks) -> None:
    """A failing command's error quotes its script: create/update/delete must be secret-free."""
    raw = config_from_file(stack_file("staging"))
    raw["cluster"]["resetOnDestroy"] = True  # adds the reset command's delete script
    raw["cluster"]["nodes"].append({"name": "node4", "address": "10.4.17.170", "roles": ["worker"]})
    run(raw, program_secrets())
    commands = mocks.of_type("command:remote:Command")
    scripts = [(c.name, k) for c in commands for k in ("create", "update", "delete") if c.inputs.get(k)]
    assert {k for _, k in scripts} == {"create", "update", "delete"}, scripts
    for c in commands:
        for key in ("create", "update", "delete"):
            script = c.inputs.get(key)
            assert not isinstance(script, dict), f"{c.name}.{key} is secret-wrapped: its text would be hidden"
            assert not leaks(str(script or "")), f"{c.name}.{key} contains {leaks(str(script))}"
        conn = c.inputs["connection"]
        assert conn.get(SECRET_SIG) == SECRET_VAL, f"{c.name}: connection is not secret"
        assert conn["value"]["privateKey"] == SSH_KEY
        if "proxy" in conn["value"]:
            assert conn["value"]["proxy"]["privateKey"] == SSH_KEY
        assert "environment" not in c.inputs or not leaks(json.dumps(c.inputs["environment"]))
        assert "stdin" not in c.inputs, f"{c.name}: stdin would be stored in state"


def test_kubeconfig_reader_hides_its_output(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    from components.kubespray import KubesprayCluster, KubesprayClusterArgs

    spec = load_spec_file(stack_file("staging"))
    opts = pulumi.ResourceOptions(transformations=[opts_recorder.transformation])

    def program() -> None:
        KubesprayCluster(
            "cluster", KubesprayClusterArgs(spec.cluster, True, pulumi.Output.secret(SSH_KEY), "inv"), opts
        )

    run_program(program)
    reader = mocks.named("cluster-kubeconfig")
    assert reader.inputs.get("logging") == "none"
    assert set(opts_recorder.opts["cluster-kubeconfig"].additional_secret_outputs or []) >= {"stdout", "stderr"}


@pytest.mark.parametrize("case", list(CASES))
def test_stack_outputs_hold_no_plaintext(mocks: PlatformMocks, case: str) -> None:
    raw_fn, secrets_fn = CASES[case]
    outputs = run(raw_fn(), secrets_fn())
    loop = asyncio.get_event_loop()
    for key, value in outputs.items():
        out = pulumi.Output.from_input(value)
        if loop.run_until_complete(out.is_secret()):
            continue
        resolved = loop.run_until_complete(out.future())
        assert not leaks(json.dumps(resolved, default=str)), (
            f"output {key!r} exposes {leaks(json.dumps(resolved, default=str))}"
        )
    assert loop.run_until_complete(pulumi.Output.from_input(outputs["kubeconfig"]).is_secret())


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_manifests_hold_no_plaintext(tmp_path: Path, case: str) -> None:
    raw_fn, secrets_fn = CASES[case]
    spec = parse_config(raw_fn(), project_root=PROJECT_ROOT)
    written = render_stack(spec, PROJECT_ROOT, tmp_path / "out", secrets=secrets_fn())
    assert any(p.name.endswith("Secret.mysql-credentials.yaml") for p in written)
    for path in written:
        text = path.read_text()
        assert not leaks(text), f"{path.name} contains {leaks(text)}"
    secret = yaml.safe_load(next(p for p in written if p.name.endswith("Secret.mysql-credentials.yaml")).read_text())
    assert set((secret.get("stringData") or secret.get("data") or {}).values()) == {"<redacted>"}


# --------------------------------------------------------------------------- the CLI and failing configs

PLAIN_SECRETS = {"sshPrivateKey": SSH_KEY, "mysqlRootPassword": ROOT_PW, "mysqlReplicationPassword": REPL_PW}


def stack_with_plain_secrets(tmp_path: Path, **extra: Any) -> Path:
    """Staging with the secrets pasted in plain text (the mistake the config must refuse quietly)."""
    doc = yaml.safe_load(stack_file("staging").read_text())
    for key, value in {**PLAIN_SECRETS, **extra}.items():
        doc["config"][f"k8s-platform:{key}"] = value
    path = tmp_path / "Pulumi.plain.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("command", ["validate", "inventory", "render"])
def test_cli_never_echoes_plain_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    f = stack_with_plain_secrets(tmp_path, kubeconfig=KUBECONFIG)
    argv = [command, "--config-file", str(f)] + (["--out", str(tmp_path / "out")] if command == "render" else [])
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert "plain text" in err
    assert not leaks(out + err), leaks(out + err)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_subprocess_never_echoes_plain_secrets(tmp_path: Path) -> None:
    f = stack_with_plain_secrets(tmp_path)
    for argv in (
        ["validate", "--config-file", str(f)],
        ["render", "--config-file", str(f), "--out", str(tmp_path / "o")],
    ):
        res = subprocess.run(
            [sys.executable, "-m", "stacks", *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert not leaks(res.stdout + res.stderr), (argv, leaks(res.stdout + res.stderr))


@pytest.mark.parametrize("command", ["validate", "inventory", "render"])
def test_cli_output_of_valid_stacks_has_no_secret_material(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The stack files hold only ciphertext; not even that is echoed, and the render shows placeholders."""
    argv = [command, "staging"] + (["--out", str(tmp_path / "out")] if command == "render" else [])
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    ciphertexts = [
        v["secure"]
        for v in yaml.safe_load(stack_file("staging").read_text())["config"].values()
        if isinstance(v, dict) and "secure" in v
    ]
    assert ciphertexts
    for c in ciphertexts:
        assert c not in out + err
        if command == "render":
            assert all(c not in p.read_text() for p in (tmp_path / "out").glob("*.yaml"))


@pytest.mark.parametrize("key", [*PLAIN_SECRETS, "kubeconfig"])
def test_config_error_for_a_plain_secret_does_not_quote_it(key: str) -> None:
    raw = config_from_file(stack_file("staging"))
    raw[key] = SSH_KEY if key in ("sshPrivateKey", "kubeconfig") else {"nested": ROOT_PW}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, project_root=PROJECT_ROOT)
    assert any(p.path == key and "plain text" in p.message for p in err.value.problems)
    assert not leaks(str(err.value)) and not leaks(repr(err.value.problems))


def test_deploy_error_for_plain_secrets_does_not_quote_them(mocks: PlatformMocks) -> None:
    """What `pulumi up` shows: __main__ turns the ConfigError into a RunError with str(exc)."""
    raw = config_from_file(stack_file("staging"))
    raw.update(PLAIN_SECRETS)
    with pytest.raises(ConfigError) as err:
        run(raw, program_secrets())
    assert not leaks(str(err.value)) and mocks.resources == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http", f"http://deploy:{ROOT_PW}@10.4.17.1:3128"),
        ("https", f"http://deploy:{ROOT_PW}@10.4.17.1:99999"),  # malformed as well: still not echoed
        ("https", f"deploy:{ROOT_PW}@10.4.17.1:3128"),  # no scheme
    ],
)
def test_proxy_password_is_refused_without_echo(key: str, value: str) -> None:
    raw = config_from_file(stack_file("staging"))
    raw["cluster"]["proxy"][key] = value
    with pytest.raises(ConfigError) as err:
        parse_config(raw, project_root=PROJECT_ROOT)
    assert any(p.path == f"cluster.proxy.{key}" for p in err.value.problems)
    assert ROOT_PW not in str(err.value) and "root-pw-7c1e" not in str(err.value)

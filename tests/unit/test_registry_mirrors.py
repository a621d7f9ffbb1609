"""cluster.registryMirrors: containerd's mirrors on every node, the image names unchanged.

What the stack says becomes kubespray's `containerd_registries_mirrors` (its hosts.toml
template's fields), a mirror's CA certificate reaches every node through the program's own
playbook before cluster.yml, and wrong settings are refused before anything runs.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.kubespray import KubesprayCluster, KubesprayClusterArgs
from components.kubespray_inventory import group_vars
from stacks.config import ConfigError, parse_config
from stacks.program import ProgramSecrets, deploy
from tests.support.mocks import (
    PROJECT_ROOT,
    OptsRecorder,
    PlatformMocks,
    assert_problem,
    existing_config,
    kubespray_config,
    run_program,
)

CMD = "command:remote:Command"


def _cfg(mirrors: dict[str, Any], environment: str = "staging", **cluster: Any) -> dict[str, Any]:
    cfg = kubespray_config(environment)
    cfg["cluster"]["registryMirrors"] = copy.deepcopy(mirrors)
    del cfg["cluster"]["imageRepos"]  # no name rewrites: the mirrors serve the upstream names
    cfg["cluster"].update(cluster)
    return cfg


def _problems(cfg: dict[str, Any], root: Path = PROJECT_ROOT) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, project_root=root)
    return [str(p) for p in exc.value.problems]


@pytest.fixture
def ca_project(tmp_path: Path) -> Path:
    """A project root holding a real (self-signed) CA certificate at certs/mirror-ca.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8s-platform test mirror CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "mirror-ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "certs" / "not-a-cert.pem").write_text("hello\n")
    return tmp_path


def test_each_mirror_becomes_a_containerd_hosts_entry_with_the_names_unchanged() -> None:
    spec = parse_config(_cfg({
        "docker.io": {"url": "https://registry.mirror.example.com/docker"},
        "registry.k8s.io": {"url": "https://k8s-mirror.example.com:5000/"},
        "quay.io": {"url": "https://registry.mirror.example.com/proxy/quay", "capabilities": ["pull"]},
    }), project_root=PROJECT_ROOT)  # fmt: skip
    assert spec.warnings == ()
    gv = group_vars(spec.cluster)
    assert gv["containerd_registries_mirrors"] == [
        # a path on the mirror (a proxy-cache project): containerd must not add its own /v2
        {"prefix": "docker.io", "mirrors": [{"host": "https://registry.mirror.example.com/v2/docker",
                                             "capabilities": ["pull", "resolve"], "skip_verify": False,
                                             "override_path": True}],
         "server": "https://registry-1.docker.io"},
        {"prefix": "quay.io", "mirrors": [{"host": "https://registry.mirror.example.com/v2/proxy/quay",
                                           "capabilities": ["pull"], "skip_verify": False, "override_path": True}]},
        {"prefix": "registry.k8s.io", "mirrors": [{"host": "https://k8s-mirror.example.com:5000",
                                                   "capabilities": ["pull", "resolve"], "skip_verify": False,
                                                   "override_path": False}]},
    ]  # fmt: skip
    # the images keep their upstream names: no *_image_repo rewrite comes from the mirrors
    assert not any(key.endswith("_image_repo") for key in gv)


def test_no_mirrors_leave_kubesprays_default_alone() -> None:
    spec = parse_config(kubespray_config(), project_root=PROJECT_ROOT)
    assert "containerd_registries_mirrors" not in group_vars(spec.cluster)


@pytest.mark.parametrize(
    ("mirrors", "path", "words"),
    [
        ({"https://docker.io": {"url": "https://m.example.com"}}, "cluster.registryMirrors", "'https://docker.io' is not a registry"),
        ({"docker.io/library": {"url": "https://m.example.com"}}, "cluster.registryMirrors", "no scheme, no path"),
        ({"docker.io": {}}, "cluster.registryMirrors.docker.io.url", "is required"),
        ({"docker.io": {"url": "m.example.com/docker"}}, "cluster.registryMirrors.docker.io.url", "not a valid URL"),
        ({"docker.io": {"url": "https://user:token@m.example.com"}}, "cluster.registryMirrors.docker.io.url", "must not carry credentials"),
        ({"docker.io": {"url": "https://m.example.com/d?x=1"}}, "cluster.registryMirrors.docker.io.url", "must not have a query"),
        ({"docker.io": {"url": "http://m.example.com"}}, "cluster.registryMirrors.docker.io.url", "staging needs https://"),
        ({"docker.io": {"url": "https://m.example.com", "skipVerify": True}}, "cluster.registryMirrors.docker.io.skipVerify", "dev only"),
        ({"docker.io": {"url": "https://m.example.com", "capabilities": ["pul"]}}, "cluster.registryMirrors.docker.io.capabilities[0]", "'pul' is not one of pull, resolve, push"),
        ({"docker.io": {"url": "https://m.example.com", "capabilities": []}}, "cluster.registryMirrors.docker.io.capabilities", "needs pull"),
        ({"docker.io": {"url": "https://m.example.com", "ca": "certs/nope.pem"}}, "cluster.registryMirrors.docker.io.ca", "'certs/nope.pem' does not exist"),
        ({"docker.io": {"url": "https://m.example.com", "ca": "/etc/ssl/ca.pem"}}, "cluster.registryMirrors.docker.io.ca", "inside the project"),
        ({"docker.io": {"url": "https://m.example.com", "cache": True}}, "cluster.registryMirrors.docker.io.cache", "unknown key"),
        ({"docker.io": {"url": "https://m.example.com/v2/docker"}}, "cluster.registryMirrors.docker.io.url", "the program adds /v2"),
        ({"docker.io": {"url": "https://m.example.com", "capabilities": ["resolve"]}}, "cluster.registryMirrors.docker.io.capabilities", "needs pull"),
        ({"docker.io": {"url": "https://m.example.com", "capabilities": ["pull", "pull"]}}, "cluster.registryMirrors.docker.io.capabilities", "twice"),
        ({"myreg": {"url": "https://m.example.com"}}, "cluster.registryMirrors", "a bare name is a Docker Hub user"),
        ({"Docker.io": {"url": "https://m.example.com"}}, "cluster.registryMirrors", "lowercase"),
        ({"index.docker.io": {"url": "https://m.example.com"}}, "cluster.registryMirrors", "use docker.io"),
    ],
)  # fmt: skip
def test_wrong_mirror_settings_are_refused_naming_the_key(mirrors: dict[str, Any], path: str, words: str) -> None:
    assert_problem(_raw_problems(_cfg(mirrors)), path, words)


def _raw_problems(cfg: dict[str, Any]) -> list[Any]:
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, project_root=PROJECT_ROOT)
    return list(exc.value.problems)


def test_a_wrong_key_does_not_hide_the_rest_of_the_cluster_section() -> None:
    # the bad entry is dropped; the other keys are still read (no spurious "kubespray is required")
    problems = _problems(_cfg({"https://docker.io": {"url": "https://m.example.com"}}))
    assert len(problems) == 1, problems


def test_dev_may_use_a_plain_http_mirror_and_skip_verify_with_warnings() -> None:
    spec = parse_config(_cfg({"docker.io": {"url": "http://10.4.17.1:5000/docker"},
                              "quay.io": {"url": "https://10.4.17.1:5443", "skipVerify": True}}, "dev"),
                        project_root=PROJECT_ROOT)  # fmt: skip
    assert [w.split(":")[0] for w in spec.warnings] == ["cluster.registryMirrors.docker.io.url"]
    assert "dev allows it" in spec.warnings[0]
    (quay,) = [e for e in group_vars(spec.cluster)["containerd_registries_mirrors"] if e["prefix"] == "quay.io"]
    assert quay["mirrors"][0]["skip_verify"] is True


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"hello\n", "holds no PEM certificate"), (b"\x30\x82\x01\xff\x80", "convert it: openssl x509 -inform der"),
     (b"-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMII\n", "private key")],
)  # fmt: skip
def test_a_ca_file_must_hold_a_certificate_alone(ca_project: Path, content: bytes, words: str) -> None:
    (ca_project / "certs" / "bad.pem").write_bytes(content)
    problems = _problems(_cfg({"docker.io": {"url": "https://m.example.com", "ca": "certs/bad.pem"}}), ca_project)
    assert any(p.startswith("cluster.registryMirrors.docker.io.ca: ") and words in p for p in problems), problems


def test_a_ca_is_named_in_hosts_toml_at_its_node_path(ca_project: Path) -> None:
    spec = parse_config(_cfg({"docker.io": {"url": "https://m.example.com", "ca": "certs/mirror-ca.pem"}}),
                        project_root=ca_project)  # fmt: skip
    (entry,) = group_vars(spec.cluster)["containerd_registries_mirrors"]
    assert entry["mirrors"][0]["ca"] == "/etc/containerd/certs.d/docker.io/k8s-platform-mirror-ca.crt"


def test_existing_mode_warns_that_the_cluster_owner_configures_the_mirrors() -> None:
    cfg = existing_config()
    cfg["cluster"]["registryMirrors"] = {"docker.io": {"url": "https://m.example.com"}}
    spec = parse_config(cfg, project_root=PROJECT_ROOT, secrets_required=False)
    assert len(spec.warnings) == 1 and spec.warnings[0].startswith("cluster.registryMirrors: are not configured")
    assert "/etc/containerd/certs.d" in spec.warnings[0]


def test_mirrors_need_containerd() -> None:
    problems = _problems(_cfg({"docker.io": {"url": "https://m.example.com"}}, containerManager="crio"))
    assert any(p.startswith("cluster.registryMirrors: ") and "containerManager is crio" in p for p in problems)


def test_an_image_repo_rewrite_beside_a_mirror_of_the_same_registry_is_a_warning() -> None:
    cfg = _cfg({"quay.io": {"url": "https://registry.mirror.example.com/quay"}},
               imageRepos={"quay": "registry.mirror.example.com/quay"})  # fmt: skip
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    assert [w.split(":")[0] for w in spec.warnings] == ["cluster.imageRepos.quay"]
    assert "bypass registryMirrors.quay.io" in spec.warnings[0]


def test_extra_vars_may_set_containerds_mirrors_only_without_registry_mirrors() -> None:
    raw = [{"prefix": "mirror.lab:5000", "mirrors": [{"host": "http://mirror.lab:5000", "capabilities": ["pull"]}]}]
    spec = parse_config(_cfg({}, extraVars={"containerd_registries_mirrors": raw}), project_root=PROJECT_ROOT)
    assert group_vars(spec.cluster)["containerd_registries_mirrors"] == raw  # as written, as before
    problems = _problems(_cfg({"docker.io": {"url": "https://m.example.com"}}, extraVars={"containerd_registries_mirrors": raw}))
    assert any(p.startswith("cluster.extraVars.containerd_registries_mirrors: is what the program writes from registryMirrors")
               for p in problems), problems  # fmt: skip


def test_downloading_on_the_control_host_beside_mirrors_is_a_warning() -> None:
    spec = parse_config(_cfg({"docker.io": {"url": "https://m.example.com"}}, download={"runOnce": True, "localhost": True}),
                        project_root=PROJECT_ROOT)  # fmt: skip
    assert [w.split(":")[0] for w in spec.warnings] == ["cluster.download.localhost"]


def test_docker_hubs_entry_falls_back_to_its_registry_api() -> None:
    spec = parse_config(_cfg({"docker.io": {"url": "https://m.example.com"}}), project_root=PROJECT_ROOT)
    (entry,) = group_vars(spec.cluster)["containerd_registries_mirrors"]
    assert entry["server"] == "https://registry-1.docker.io"


# ----------------------------------------------------------------- the CA reaches the nodes
SECRETS = ProgramSecrets(ssh_private_key=pulumi.Output.secret("ssh-key-under-test"))


def _run(cfg: dict[str, Any], root: Path) -> None:
    run_program(lambda: deploy(cfg, SECRETS, root, stack="test"))


def _decoded_files(script: str) -> dict[str, str]:
    """path -> content of every file a remote script writes (printf '<base64>' | base64 -d > path.tmp)."""
    out = {}
    for encoded, path in re.findall(r"printf '%s' '?([A-Za-z0-9+/=]+)'? \| base64 -d > (\S+)\.tmp", script):
        out[path] = base64.b64decode(encoded).decode()
    return out


def test_a_mirrors_ca_goes_to_every_node_before_cluster_yml(mocks: PlatformMocks, ca_project: Path) -> None:
    cfg = _cfg({"docker.io": {"url": "https://m.example.com", "ca": "certs/mirror-ca.pem"},
                "quay.io": {"url": "https://m.example.com/quay"}})  # fmt: skip
    _run(cfg, ca_project)
    step = mocks.named("cluster-registry-mirrors")
    files = _decoded_files(step.inputs["create"])
    pem = (ca_project / "certs" / "mirror-ca.pem").read_text()
    (cert_path,) = [p for p in files if p.endswith("/registry-ca/docker.io.crt")]
    assert files[cert_path] == pem  # only the mirror with a CA
    (vars_path,) = [p for p in files if p.endswith("/registry-mirrors.yaml")]
    assert yaml.safe_load(files[vars_path]) == {
        "k8s_platform_registries": ["docker.io", "quay.io"],
        "k8s_platform_registry_cas": [{"src": "~/kubespray/inventory/k8s-platform-test/registry-ca/docker.io.crt",
                                       "dest": "/etc/containerd/certs.d/docker.io/k8s-platform-mirror-ca.crt"}],
    }  # fmt: skip
    (playbook,) = [p for p in files if p.endswith("/registry-mirrors.yml")]
    plays = yaml.safe_load(files[playbook])
    assert plays[0]["hosts"] == "k8s_cluster" and plays[0]["become"] is True
    # every member node, and the playbook's failure is its own (set -e would cut its log tail)
    assert "--limit node1,node2,node3" in step.inputs["create"]
    assert step.inputs["create"].index("set +e") < step.inputs["create"].index("ansible-playbook")


def test_when_the_last_mirror_leaves_its_delete_unconfigures_the_nodes_but_not_on_destroy(mocks: PlatformMocks) -> None:
    _run(_cfg({"docker.io": {"url": "https://m.example.com"}}), PROJECT_ROOT)
    delete = mocks.named("cluster-registry-mirrors").inputs["delete"]
    # a destroy leaves the inventory as it was (naming the mirrors): the nodes are left alone
    guard = "grep -q '^containerd_registries_mirrors:' \"$HOME\"/kubespray/inventory/k8s-platform-test/group_vars/all/k8s-platform.yml"
    assert delete.index(guard) < delete.index("exit 0") < delete.index("ansible-playbook")
    files = _decoded_files(delete)
    (vars_path,) = [p for p in files if p.endswith("/registry-mirrors.yaml")]
    assert yaml.safe_load(files[vars_path]) == {"k8s_platform_registries": [], "k8s_platform_registry_cas": []}


def test_cluster_yml_runs_after_the_mirror_step(mocks: PlatformMocks, opts_recorder: OptsRecorder) -> None:
    spec = parse_config(_cfg({"docker.io": {"url": "https://m.example.com"}}), project_root=PROJECT_ROOT)
    holder: dict[str, KubesprayCluster] = {}

    def program() -> None:
        holder["c"] = KubesprayCluster(
            "cluster",
            KubesprayClusterArgs(cluster=spec.cluster, schedulable_control_plane=True,
                                 ssh_private_key=pulumi.Output.secret("k"), inventory_name="k8s-platform-test"),
            opts=pulumi.ResourceOptions(transformations=[opts_recorder.transformation]),
        )  # fmt: skip

    run_program(program)
    c = holder["c"]
    assert c.registry_mirrors in opts_recorder.depends_on("cluster-cluster")
    assert c.inventory in opts_recorder.depends_on("cluster-registry-mirrors")


def test_every_remote_script_of_a_stack_with_mirrors_is_valid_shell(mocks: PlatformMocks, ca_project: Path) -> None:
    cfg = _cfg({"docker.io": {"url": "https://m.example.com", "ca": "certs/mirror-ca.pem"}})
    cfg["cluster"]["nodes"].append({"name": "node4", "address": "10.4.17.170", "roles": ["worker"]})
    _run(cfg, ca_project)
    for r in mocks.of_type(CMD):
        for key in ("create", "update", "delete"):
            script = r.inputs.get(key)
            if script:
                cp = subprocess.run(["bash", "-n"], input=str(script), capture_output=True, text=True, timeout=30)
                assert cp.returncode == 0, f"{r.name} {key}: {cp.stderr}"


def test_no_mirrors_no_mirror_step(mocks: PlatformMocks) -> None:
    _run(kubespray_config(), PROJECT_ROOT)
    assert not [r for r in mocks.of_type(CMD) if r.name.endswith("registry-mirrors")]

"""Hostile values a stack file (or a pull request changing one) may carry, refused by class.

1. Anything that reaches Ansible (every `cluster.*` value) is data: no template syntax,
   no control characters, no stray whitespace; `extraVars` stays the escape hatch but may
   not set how Ansible connects, nor carry a secret.
2. Every pattern matches the whole value: a trailing newline is not a valid name.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
import yaml

from stacks.config import NAMESPACE, SECRET, ConfigError, parse_config
from tests.support.mocks import PROJECT_ROOT, assert_problem, kubespray_config

TEMPLATES = [
    "{{ lookup('pipe', 'id > /tmp/x') }}",
    "{% for x in range(3) %}x{% endfor %}",
    "{# hidden #}",
    "10.4.18.0/24,{{ lookup('pipe','id') }}",
]

# (path in the cluster mapping, a valid value to prefix/suffix the payload onto)
ANSIBLE_REACHED = [
    (("proxy", "http"), "http://10.4.17.1:3128"),
    (("proxy", "https"), "http://10.4.17.1:3128"),
    (("proxy", "noProxy"), "10.4.17.0/24"),
    (("imageRepos", "files"), "https://files.mirror.example.com"),
    (("imageRepos", "kube"), "registry.mirror.example.com/k8s"),
    (("kubespray", "workdir"), "~/kubespray"),
    (("kubespray", "source"), "https://github.com/kubernetes-sigs/kubespray.git"),
    (("controlHost", "user"), "tiger"),
    (("apiServerEndpoint",), "https://10.4.17.200:6443"),
    (("ansibleUser",), "tiger"),
    (("kubeVersion",), "1.34.4"),
]


def _set(cfg: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    node = cfg["cluster"]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return cfg


def _problems(cfg: dict[str, Any]) -> list[Any]:
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, project_root=PROJECT_ROOT)
    return exc.value.problems


@pytest.mark.parametrize(("path", "valid"), ANSIBLE_REACHED, ids=[".".join(p) for p, _ in ANSIBLE_REACHED])
@pytest.mark.parametrize("payload", TEMPLATES, ids=["lookup", "for", "comment", "in-list"])
def test_template_syntax_never_reaches_ansible(path: tuple[str, ...], valid: str, payload: str) -> None:
    problems = _problems(_set(kubespray_config("prod"), path, valid + payload))
    where = "cluster." + ".".join(path)
    assert_problem(problems, where, "Ansible template syntax")
    assert all(payload not in str(p) for p in problems), "a hostile value is never echoed"


@pytest.mark.parametrize(("path", "valid"), ANSIBLE_REACHED, ids=[".".join(p) for p, _ in ANSIBLE_REACHED])
@pytest.mark.parametrize("suffix", ["\n", "\nrm -rf /", "\t", " "], ids=["newline", "newline-cmd", "tab", "space"])
def test_control_characters_and_stray_whitespace_are_refused(path: tuple[str, ...], valid: str, suffix: str) -> None:
    problems = _problems(_set(kubespray_config("prod"), path, valid + suffix))
    assert [p for p in problems if p.path == "cluster." + ".".join(path)], [str(p) for p in problems]


@pytest.mark.parametrize("name", ["worker3\n", "worker3\nid", "node1 ", "no\x00de"])
def test_node_names_and_addresses_match_whole_values(name: str) -> None:
    cfg = kubespray_config("prod")
    cfg["cluster"]["nodes"][2]["name"] = name
    cfg["cluster"]["nodes"][1]["address"] = "10.4.17.168\n"
    problems = _problems(cfg)
    assert [p for p in problems if p.path == "cluster.nodes[2].name"], [str(p) for p in problems]
    assert [p for p in problems if p.path == "cluster.nodes[1].address"], [str(p) for p in problems]


@pytest.mark.parametrize(
    "value", ["10.4.18.0/24, localhost", "10.4.18.0/24,$(id)", "a b", ",", "10.4.18.0/24,,x", "`id`"]
)
def test_no_proxy_is_a_list_of_hosts_ips_cidrs_and_domains(value: str) -> None:
    problems = _problems(_set(kubespray_config("prod"), ("proxy", "noProxy"), value))
    assert_problem(problems, "cluster.proxy.noProxy", "comma-separated list")


@pytest.mark.parametrize("value", ["10.4.17.0/24,127.0.0.1,localhost,.svc,.cluster.local", "*.example.com,fd00::/8"])
def test_no_proxy_accepts_real_lists(value: str) -> None:
    spec = parse_config(_set(kubespray_config("prod"), ("proxy", "noProxy"), value), project_root=PROJECT_ROOT)
    assert spec.cluster.proxy.no_proxy == value


@pytest.mark.parametrize(
    "key",
    ["ansible_host", "ansible_ssh_common_args", "ansible_become_password", "ansible_python_interpreter", "ansible_user"],
)
def test_extra_vars_may_not_set_ansible_connection_variables(key: str) -> None:
    problems = _problems(_set(kubespray_config(), ("extraVars",), {key: "x"}))
    assert_problem(problems, f"cluster.extraVars.{key}", "ansible_* variables")


@pytest.mark.parametrize("value", [SECRET, {"nested": SECRET}, [1, SECRET]])
def test_a_secret_in_extra_vars_is_refused_not_crashed_on(value: Any) -> None:
    problems = _problems(_set(kubespray_config(), ("extraVars",), {"some_token": value}))
    assert_problem(problems, "cluster.extraVars.some_token", "secrets cannot go through extraVars")


def test_inventory_cli_refuses_a_secret_extra_var_without_a_traceback(tmp_path: Any) -> None:
    cfg = _set(kubespray_config(), ("extraVars",), {"some_token": {"secure": "v1:abc"}})
    doc = {"config": {f"{NAMESPACE}:{k}": ({"secure": "v1:x"} if repr(v) == "<secret>" else v) for k, v in cfg.items()}}
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "stacks", "inventory", "--config-file", str(path)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "cluster.extraVars.some_token: is a secret" in res.stderr


def test_the_reported_exploit_no_longer_validates(tmp_path: Any) -> None:
    """proxy.noProxy with a pipe lookup validated in prod and ran `id` as root on the control host."""
    cfg = _set(kubespray_config("prod"), ("proxy", "noProxy"), "10.4.18.0/24,{{ lookup('pipe','id > /tmp/x') }}")
    doc = {"config": {f"{NAMESPACE}:{k}": ({"secure": "v1:x"} if repr(v) == "<secret>" else v) for k, v in cfg.items()}}
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "inv"
    res = subprocess.run([sys.executable, "-m", "stacks", "inventory", "--config-file", str(path), "--out", str(out)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1
    assert "cluster.proxy.noProxy: contains Ansible template syntax" in res.stderr
    assert not out.exists(), "nothing is written for a refused config"


# 3. Downloads: authenticated transports outside dev, no credentials in any URL, pinned kubespray commit

SOURCES = [
    (("cluster", "kubespray", "source"), "{scheme}://{cred}git.example.com/kubespray.git"),
    (("cluster", "imageRepos", "files"), "{scheme}://{cred}files.example.com"),
    (("addons", "ingress", "repo"), "{scheme}://{cred}charts.example.com"),
    (("helm", "releases", 0, "repo"), "{scheme}://{cred}charts.example.com"),
]


def _set_any(cfg: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    node: Any = cfg
    for key in path[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[path[-1]] = value
    return cfg


def _platform(env: str) -> dict[str, Any]:
    cfg = kubespray_config(env)
    cfg["helm"] = {"releases": [{"name": "grafana", "namespace": "monitoring", "chart": "grafana", "version": "8.5.0",
                                 "repo": "https://grafana.github.io/helm-charts"}]}  # fmt: skip
    return cfg


def _where(path: tuple[Any, ...]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


@pytest.mark.parametrize(("path", "template"), SOURCES, ids=[_where(p) for p, _ in SOURCES])
@pytest.mark.parametrize("cred", ["user:s3cr3t-token@", "ghp_abcdefTOKEN123@", "oauth2:glpat-xyz@"])
def test_credentials_in_a_url_are_refused_and_never_echoed(path: tuple[Any, ...], template: str, cred: str) -> None:
    scheme = "https"
    problems = _problems(_set_any(_platform("dev"), path, template.format(scheme=scheme, cred=cred)))
    assert_problem(problems, _where(path), "must not carry credentials")
    assert all(cred.split("@")[0] not in str(p) for p in problems)


@pytest.mark.parametrize(("path", "template"), SOURCES, ids=[_where(p) for p, _ in SOURCES])
@pytest.mark.parametrize("env", ["staging", "prod"])
def test_unauthenticated_transports_are_refused_outside_dev(path: tuple[Any, ...], template: str, env: str) -> None:
    scheme = "git" if path[-1] == "source" else "http"
    problems = _problems(_set_any(_platform(env), path, template.format(scheme=scheme, cred="")))
    assert_problem(problems, _where(path), "does not authenticate the server")


@pytest.mark.parametrize(("path", "template"), SOURCES, ids=[_where(p) for p, _ in SOURCES])
def test_dev_may_use_plain_http_with_a_warning(path: tuple[Any, ...], template: str) -> None:
    scheme = "git" if path[-1] == "source" else "http"
    spec = parse_config(_set_any(_platform("dev"), path, template.format(scheme=scheme, cred="")),
                        project_root=PROJECT_ROOT)  # fmt: skip
    assert any(w.startswith(f"{_where(path)}: is fetched over {scheme}://") for w in spec.warnings), spec.warnings


def test_loopback_mirrors_are_local_in_every_tier() -> None:
    spec = parse_config(_set_any(_platform("prod"), ("helm", "releases", 0, "repo"), "http://127.0.0.1:8879/charts"),
                        project_root=PROJECT_ROOT)  # fmt: skip
    assert spec.helm.releases[0].repo == "http://127.0.0.1:8879/charts"


def test_repo_mirror_with_a_token_is_refused() -> None:
    cfg = _platform("dev")
    cfg["helm"]["repoMirrors"] = {"https://grafana.github.io/helm-charts": "https://robot:tok3n@mirror.example.com"}
    problems = _problems(cfg)
    assert_problem(problems, "helm.repoMirrors", "must not carry credentials")
    assert all("tok3n" not in str(p) for p in problems)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_an_unknown_kubespray_release_needs_a_pinned_commit_outside_dev(env: str) -> None:
    cfg = kubespray_config(env)
    cfg["cluster"]["kubespray"]["version"] = "v2.32.0"
    assert_problem(_problems(cfg), "cluster.kubespray.commit", "tags move")
    cfg["cluster"]["kubespray"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    assert parse_config(cfg, project_root=PROJECT_ROOT).cluster.kubespray.commit.startswith("0123")  # type: ignore[union-attr]


# 5. Kubernetes defaults a hardened platform ships


def _local_volume_cfg(path: str) -> dict[str, Any]:
    cfg = kubespray_config("prod")
    cfg["storage"] = {"volumes": [{"name": "disk1", "capacity": "10Gi", "accessModes": ["ReadWriteOnce"],
                                   "local": {"path": path, "node": "node3"}}]}  # fmt: skip
    return cfg


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/kubernetes", "/var/lib/kubelet/pods", "/var/lib/etcd", "/root",
                                  "/usr/local", "/var", "/home", "/mnt", "/proc/1", "/srv/", "//etc//ssl"])  # fmt: skip
def test_local_volume_paths_may_not_be_system_directories(path: str) -> None:
    assert_problem(_problems(_local_volume_cfg(path)), "storage.volumes[0].local.path", "system directory")


@pytest.mark.parametrize("path", ["/mnt/disks/disk1", "/srv/data", "/data/mysql", "/var/lib/k8s-volumes/disk1"])
def test_local_volume_paths_of_their_own_are_accepted(path: str) -> None:
    spec = parse_config(_local_volume_cfg(path), project_root=PROJECT_ROOT)
    assert spec.storage.volumes[0].local is not None and spec.storage.volumes[0].local.path == path


@pytest.mark.parametrize(("path", "violations"), [("/etc", 1), ("/", 1), ("/mnt/disks/disk1", 0)])
def test_policy_pack_flags_local_persistent_volumes_in_system_directories(path: str, violations: int) -> None:
    from policy.guardrails import check_no_hostpath

    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "disk1"},
          "spec": {"local": {"path": path}, "capacity": {"storage": "10Gi"}}}  # fmt: skip
    found = check_no_hostpath(pv)
    assert len(found) == violations, found
    assert all(path not in v or path == "/" for v in found), "messages name fields, not values"


def test_node_port_is_refused_in_prod_by_validation() -> None:
    app = {"name": "web", "namespace": "web", "image": "nginxinc/nginx-unprivileged:1.27.5", "port": 8080,
           "replicas": 2, "service": {"type": "NodePort", "port": 80},
           "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}  # fmt: skip
    cfg = kubespray_config("prod")
    cfg["apps"] = [app]
    assert_problem(_problems(cfg), "apps[0].service.type", "NodePort is refused in prod")
    cfg["environment"] = "staging"
    assert parse_config(cfg, project_root=PROJECT_ROOT).apps[0].service.type == "NodePort"


@pytest.mark.parametrize("plugin", ["flannel", "macvlan"])
def test_mysql_network_policy_needs_a_plugin_that_enforces_it(plugin: str) -> None:
    cfg = kubespray_config("prod")
    cfg["cluster"]["networkPlugin"] = plugin
    cfg["mysql"] = {"enabled": True, "replicas": 3}
    cfg["mysqlRootPassword"] = cfg["mysqlReplicationPassword"] = SECRET
    assert_problem(_problems(cfg), "cluster.networkPlugin", "does not enforce NetworkPolicy")
    cfg["environment"] = "staging"
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    assert any(w.startswith("cluster.networkPlugin: ") for w in spec.warnings)
    cfg["cluster"]["networkPlugin"] = "calico"
    assert parse_config(cfg, project_root=PROJECT_ROOT).warnings == ()


def test_metrics_server_verifies_kubelet_tls_in_prod_kubespray_clusters() -> None:
    from components.addons import metrics_server_values
    from components.kubespray_inventory import group_vars

    assert metrics_server_values({}, verify_kubelet_tls=True)["args"] == []
    assert metrics_server_values({}, verify_kubelet_tls=False)["args"] == ["--kubelet-insecure-tls"]
    spec = parse_config(kubespray_config("prod"), project_root=PROJECT_ROOT)
    assert group_vars(spec.cluster)["kubelet_rotate_server_certificates"] is True


@pytest.mark.parametrize(("env", "on"), [("dev", False), ("staging", True), ("prod", True)])
def test_control_plane_certificates_renew_themselves_outside_dev(env: str, on: bool) -> None:
    from components.kubespray_inventory import group_vars

    spec = parse_config(kubespray_config(env), project_root=PROJECT_ROOT)
    gv = group_vars(spec.cluster)
    assert gv["auto_renew_certificates"] is on
    assert gv.get("auto_renew_certificates_systemd_calendar") == ("Mon *-*-1,2,3,4,5,6,7 03:00:00" if on else None)
    cfg = kubespray_config(env)
    cfg["cluster"]["certificates"] = {"autoRenew": True, "schedule": "Sun *-*-1..7 02:30"}
    gv = group_vars(parse_config(cfg, project_root=PROJECT_ROOT).cluster)
    assert gv["auto_renew_certificates"] is True and gv["auto_renew_certificates_systemd_calendar"] == "Sun *-*-1..7 02:30"


def test_certificate_renewal_off_in_prod_is_a_warning_and_extra_vars_cannot_set_it() -> None:
    cfg = kubespray_config("prod")
    cfg["cluster"]["certificates"] = {"autoRenew": False}
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    assert any(w.startswith("cluster.certificates.autoRenew: is off in prod") for w in spec.warnings), spec.warnings
    cfg = kubespray_config("staging")
    cfg["cluster"]["extraVars"] = {"auto_renew_certificates": False}
    with pytest.raises(ConfigError) as err:
        parse_config(cfg, project_root=PROJECT_ROOT)
    assert_problem(err.value.problems, "cluster.extraVars.auto_renew_certificates", "set cluster.certificates.autoRenew instead")

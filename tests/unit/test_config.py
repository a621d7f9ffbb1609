"""The config schema: valid stacks parse, and every kind of bad input is refused with its key path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stacks.config import SECRET, ConfigError, parse_config
from stacks.files import load_spec_file, stack_file
from tests.support.mocks import PROJECT_ROOT, existing_config, kubespray_config
from tests.support.rejections import DELETE, Mutator, set_path


def parse(cfg: dict[str, Any]):
    return parse_config(cfg, project_root=PROJECT_ROOT)


def test_project_stacks_are_valid() -> None:
    for name in ("dev", "staging", "prod"):
        spec = load_spec_file(stack_file(name))
        assert spec.environment == name


def test_staging_is_the_notes_layout() -> None:
    spec = load_spec_file(stack_file("staging"))
    cluster = spec.cluster
    assert [n.name for n in cluster.control_plane] == ["node1", "node2"]
    assert sum(n.is_etcd for n in cluster.nodes) == 3
    assert cluster.proxy.http and not cluster.image_repos.gcr
    assert {m.registry for m in cluster.registry_mirrors} == {"registry.k8s.io", "docker.io", "quay.io", "ghcr.io"}
    assert cluster.control_host is not None and cluster.control_host.host not in {n.address for n in cluster.nodes}


def test_prod_is_stricter_than_dev() -> None:
    prod = load_spec_file(stack_file("prod"))
    assert prod.cluster.reset_on_destroy is False
    assert sum(n.is_etcd for n in prod.cluster.nodes) >= 3
    assert all(r.version for r in prod.helm.releases)


def test_spec_is_typed_and_frozen(ks_config: dict[str, Any]) -> None:
    spec = parse(ks_config)
    assert spec.cluster.nodes[0].ip == "10.4.17.167"  # ip defaults to address
    assert spec.cluster.kube_version == "1.34.4"
    with pytest.raises(AttributeError):
        spec.environment = "prod"  # type: ignore[misc]


def test_kube_version_v_prefix_is_normalized(ks_config: dict[str, Any]) -> None:
    ks_config["cluster"]["kubeVersion"] = "v1.34.4"
    assert parse(ks_config).cluster.kube_version == "1.34.4"


def test_helm_mirror_rewrites_repo() -> None:
    cfg = kubespray_config()
    cfg["helm"] = {
        "repoMirrors": {"https://grafana.github.io/helm-charts/": "https://mirror.example.com/grafana"},
        "releases": [{"name": "grafana", "namespace": "monitoring", "repo": "https://grafana.github.io/helm-charts",
                      "chart": "grafana", "version": "8.5.0"}],
    }
    release = parse(cfg).helm.releases[0]
    assert release.repo == "https://mirror.example.com/grafana"
    assert release.upstream_repo == "https://grafana.github.io/helm-charts"


def test_existing_mode_needs_no_ssh_key() -> None:
    spec = parse(existing_config())
    assert spec.cluster.mode == "existing" and spec.cluster.kubeconfig == "~/.kube/config"


def test_all_problems_reported_at_once(ks_config: dict[str, Any]) -> None:
    ks_config["cluster"]["nodes"][0]["roles"] = ["master"]
    ks_config["cluster"]["controlHost"]["port"] = 70000
    ks_config["environment"] = "production"
    with pytest.raises(ConfigError) as err:
        parse(ks_config)
    paths = {p.path for p in err.value.problems}
    assert {"cluster.nodes[0].roles[0]", "cluster.controlHost.port", "environment"} <= paths


def test_secret_plaintext_never_echoed(ks_config: dict[str, Any]) -> None:
    ks_config["sshPrivateKey"] = "-----BEGIN OPENSSH PRIVATE KEY----- hunter2"
    with pytest.raises(ConfigError) as err:
        parse(ks_config)
    assert "hunter2" not in str(err.value)
    assert any(p.path == "sshPrivateKey" and "secret" in p.message for p in err.value.problems)


# --------------------------------------------------------------------------- bad-input matrix

def _nodes(*nodes: dict[str, Any]) -> Mutator:
    return set_path("cluster.nodes", list(nodes))


def _n(name: str, addr: str, *roles: str) -> dict[str, Any]:
    return {"name": name, "address": addr, "roles": list(roles)}


_APP = {"name": "web", "namespace": "web", "image": "nginx:1.27.5"}
_REL = {"name": "grafana", "namespace": "monitoring", "repo": "https://grafana.github.io/helm-charts",
        "chart": "grafana", "version": "8.5.0"}


def _app(**kw: Any) -> Mutator:
    return set_path("apps", [{**copy.deepcopy(_APP), **kw}])


def _rel(**kw: Any) -> Mutator:
    return set_path("helm", {"releases": [{**copy.deepcopy(_REL), **kw}]})


# (id, mutation, expected key path, expected words in the message): run through every entry
# point by tests/unit/test_rejections.py, like PROD_RULES (on a prod stack)
BAD_INPUTS: list[tuple[str, Mutator, str, str]] = [
    ("unknown-top-key", set_path("schedulableControlPlan", True), "schedulableControlPlan", "did you mean 'schedulableControlPlane'"),
    ("unknown-cluster-key", set_path("cluster.kubesprya", {}), "cluster.kubesprya", "did you mean 'kubespray'"),
    ("unknown-node-key", set_path("cluster.nodes.0.adress", "1.2.3.4"), "cluster.nodes[0].adress", "did you mean 'address'"),
    ("env-missing", set_path("environment", DELETE), "environment", "required"),
    ("env-unknown", set_path("environment", "production"), "environment", "not one of"),
    ("mode-unknown", set_path("cluster.mode", "kubeadm"), "cluster.mode", "not one of"),
    ("nodes-not-list", set_path("cluster.nodes", "node1"), "cluster.nodes", "must be a list"),
    ("node-name-upper", set_path("cluster.nodes.0.name", "Node_1"), "cluster.nodes[0].name", "RFC 1123"),
    ("node-name-dup", set_path("cluster.nodes.1.name", "node1"), "cluster.nodes[1].name", "duplicate node name"),
    ("node-addr-dup", set_path("cluster.nodes.2.address", "10.4.17.167"), "cluster.nodes[2].address", "duplicate address"),
    ("node-addr-bad", set_path("cluster.nodes.0.address", "10.4.17.300"), "cluster.nodes[0].address", "not a valid IP address or hostname"),
    ("node-ip-bad", set_path("cluster.nodes.0.ip", "node.local"), "cluster.nodes[0].ip", "not a valid IP address"),
    ("node-hostname-no-ip", set_path("cluster.nodes.0.address", "node1.lab"), "cluster.nodes[0].ip", "required when address"),
    ("role-unknown", set_path("cluster.nodes.0.roles", ["master", "etcd"]), "cluster.nodes[0].roles[0]", "unknown role 'master'"),
    ("role-typo", set_path("cluster.nodes.2.roles", ["etcd", "wroker"]), "cluster.nodes[2].roles[1]", "did you mean 'worker'"),
    ("roles-empty", set_path("cluster.nodes.2.roles", []), "cluster.nodes[2].roles", "required"),
    ("no-control-plane", _nodes(_n("a", "10.0.0.1", "etcd", "worker")), "cluster.nodes", "control-plane"),
    ("even-etcd", _nodes(_n("a", "10.0.0.1", "control-plane", "etcd", "worker"), _n("b", "10.0.0.2", "etcd", "worker")), "cluster.nodes", "even number"),
    ("no-etcd", _nodes(_n("a", "10.0.0.1", "control-plane", "worker")), "cluster.nodes", "etcd"),
    ("no-worker", _nodes(_n("a", "10.0.0.1", "control-plane", "etcd")), "cluster.nodes", "worker"),
    ("no-nodes", set_path("cluster.nodes", []), "cluster.nodes", "at least one node"),
    ("ssh-key-missing", set_path("sshPrivateKey", DELETE), "sshPrivateKey", "required in kubespray mode"),
    ("ssh-key-plaintext", set_path("sshPrivateKey", "-----BEGIN KEY-----"), "sshPrivateKey", "plain text"),
    ("mysql-pw-plaintext", set_path("mysqlRootPassword", "s3cret"), "mysqlRootPassword", "plain text"),
    ("kubespray-version-bad", set_path("cluster.kubespray.version", "2.31"), "cluster.kubespray.version", "release tag"),
    ("kubespray-version-missing", set_path("cluster.kubespray.version", DELETE), "cluster.kubespray.version", "required"),
    ("kubespray-source-bad", set_path("cluster.kubespray.source", "github.com/x/y"), "cluster.kubespray.source", "git URL"),
    ("workdir-relative", set_path("cluster.kubespray.workdir", "kubespray"), "cluster.kubespray.workdir", "absolute"),
    ("kube-version-bad", set_path("cluster.kubeVersion", "1.34"), "cluster.kubeVersion", "Kubernetes version"),
    ("kubeconfig-in-kubespray", set_path("cluster.kubeconfig", "~/.kube/config"), "cluster.kubeconfig", "only applies to mode: existing"),
    ("control-host-missing", set_path("cluster.controlHost", DELETE), "cluster.controlHost.host", "required"),
    ("control-host-port-type", set_path("cluster.controlHost.port", "ssh"), "cluster.controlHost.port", "whole number"),
    ("control-host-port-range", set_path("cluster.controlHost.port", 0), "cluster.controlHost.port", "at least 1"),
    ("host-key-bad", set_path("cluster.controlHost.hostKey", "AAAA"), "cluster.controlHost.hostKey", "public host key"),
    ("jump-without-user", set_path("cluster.controlHost.proxyJump", {"host": "bastion.example.com"}), "cluster.controlHost.proxyJump.user", "required"),
    ("ansible-user-missing", set_path("cluster.ansibleUser", DELETE), "cluster.ansibleUser", "required"),
    ("proxy-bad", set_path("cluster.proxy.http", "proxy:3128"), "cluster.proxy.http", "proxy URL"),
    ("proxy-password", set_path("cluster.proxy.http", "http://u:p@proxy:3128"), "cluster.proxy.http", "password"),
    ("registry-scheme", set_path("cluster.imageRepos.gcr", "https://mirror"), "cluster.imageRepos.gcr", "registry"),
    ("files-repo-bad", set_path("cluster.imageRepos.files", "mirror/files"), "cluster.imageRepos.files", "URL"),
    ("network-plugin", set_path("cluster.networkPlugin", "weave"), "cluster.networkPlugin", "not one of"),
    ("container-manager", set_path("cluster.containerManager", "Containerd"), "cluster.containerManager", "did you mean 'containerd'"),
    ("extra-vars-managed", set_path("cluster.extraVars", {"kube_version": "1.30.0"}), "cluster.extraVars.kube_version", "cluster.kubeVersion"),
    ("extra-vars-type", set_path("cluster.extraVars", ["a"]), "cluster.extraVars", "mapping"),
    ("reset-type", set_path("cluster.resetOnDestroy", "yes"), "cluster.resetOnDestroy", "true or false"),
    ("download-localhost-alone", set_path("cluster.download", {"localhost": True}), "cluster.download.localhost", "runOnce"),
    ("endpoint-bad", set_path("cluster.apiServerEndpoint", "https://"), "cluster.apiServerEndpoint", "https URL"),
    ("schedulable-type", set_path("schedulableControlPlane", 3), "schedulableControlPlane", "true or false"),
    ("lb-no-addresses", set_path("addons", {"loadBalancer": {"enabled": True}}), "addons.loadBalancer.addresses", "required"),
    ("lb-bad-range", set_path("addons", {"loadBalancer": {"enabled": True, "addresses": ["10.0.0.1-x"]}}), "addons.loadBalancer.addresses[0]", "CIDR"),
    ("addon-version", set_path("addons", {"ingress": {"version": "latest"}}), "addons.ingress.version", "semantic version"),
    ("release-no-version-staging", _rel(version=None), "helm.releases[0].version", "required in staging"),
    ("release-bad-semver", _rel(version="8.5"), "helm.releases[0].version", "semantic version"),
    ("release-bad-repo", _rel(repo="grafana.github.io/helm-charts"), "helm.releases[0].repo", "not a valid URL"),
    ("release-missing-values-file", _rel(valuesFiles=["values/nope.yaml"]), "helm.releases[0].valuesFiles[0]", "does not exist"),
    ("release-values-file-escape", _rel(valuesFiles=["../etc/passwd"]), "helm.releases[0].valuesFiles[0]", "inside the project"),
    ("release-dup", set_path("helm", {"releases": [_REL, _REL]}), "helm.releases[1].name", "already exists"),
    ("release-name-long", _rel(name="g" * 60), "helm.releases[0].name", "RFC 1123"),
    ("mirror-bad", set_path("helm", {"repoMirrors": {"https://a.example.com": "mirror"}}), "helm.repoMirrors.https://a.example.com", "repository URL"),
    ("mysql-replicas-zero", set_path("mysql", {"replicas": 0}), "mysql.replicas", "at least 1"),
    ("mysql-size", set_path("mysql", {"storage": {"size": "10 GB"}}), "mysql.storage.size", "storage size"),
    ("mysql-latest", set_path("mysql", {"image": "mysql:latest"}), "mysql.image", "latest"),
    ("mysql-untagged", set_path("mysql", {"image": "mysql"}), "mysql.image", "no tag"),
    ("mysql-old", set_path("mysql", {"enabled": True, "image": "mysql:5.7"}), "mysql.image", "8.4"),
    ("mysql-no-passwords", set_path("mysql", {"enabled": True}), "mysqlRootPassword", "required when mysql.enabled"),
    ("app-nodeport-range", _app(service={"type": "NodePort", "nodePort": 8080}), "apps[0].service.nodePort", "30000-32767"),
    ("app-service-type-typo", _app(service={"type": "Nodeport"}), "apps[0].service.type", "did you mean 'NodePort'"),
    ("app-nodeport-wrong-type", _app(service={"type": "ClusterIP", "nodePort": 30080}), "apps[0].service.nodePort", "only applies to type NodePort"),
    ("app-lb-without-metallb", _app(service={"type": "LoadBalancer"}), "apps[0].service.type", "loadBalancer"),
    ("app-latest", _app(image="nginx:latest"), "apps[0].image", "latest"),
    ("app-name", _app(name="My_App"), "apps[0].name", "RFC 1123"),
    ("app-port", _app(port=70000), "apps[0].port", "at most 65535"),
    ("app-replicas-type", _app(replicas="two"), "apps[0].replicas", "whole number"),
    ("app-cpu-quantity", _app(resources={"requests": {"cpu": "lots"}}), "apps[0].resources.requests.cpu", "quantity"),
    ("app-request-over-limit", _app(resources={"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}), "apps[0].resources.requests.memory", "larger than the limit"),
    ("app-env-name", _app(env={"1BAD": "x"}), "apps[0].env.1BAD", "environment variable"),
    ("app-ingress-host", _app(ingress={"host": "Not A Host"}), "apps[0].ingress.host", "DNS host"),
    ("app-ingress-path", _app(ingress={"host": "a.example.com", "path": "api"}), "apps[0].ingress.path", "start with '/'"),
    ("app-strategy-zero", _app(strategy={"maxSurge": "0", "maxUnavailable": "0"}), "apps[0].strategy.maxUnavailable", "both be 0"),
    ("app-hpa-range", _app(hpa={"minReplicas": 5, "maxReplicas": 2}), "apps[0].hpa.maxReplicas", "below minReplicas"),
    ("app-root-user", _app(runAsUser=0), "apps[0].runAsUser", "root"),
    ("apps-not-list", set_path("apps", {"name": "x"}), "apps", "must be a list"),
]


def test_matrix_is_broad() -> None:
    assert len(BAD_INPUTS) >= 30


PROD_RULES = [
    ("prod-two-etcd-fails-as-even", _nodes(_n("a", "10.0.0.1", "control-plane", "etcd"), _n("b", "10.0.0.2", "control-plane", "etcd"), _n("c", "10.0.0.3", "worker")), "cluster.nodes", "even number"),
    ("prod-one-etcd", _nodes(_n("a", "10.0.0.1", "control-plane", "etcd", "worker")), "cluster.nodes", "at least 3 etcd"),
    ("prod-one-control-plane", _nodes(_n("a", "10.0.0.1", "control-plane", "etcd"), _n("b", "10.0.0.2", "etcd", "worker"), _n("c", "10.0.0.3", "etcd", "worker")), "cluster.nodes", "at least 2 control-plane"),
    ("prod-reset", set_path("cluster.resetOnDestroy", True), "cluster.resetOnDestroy", "must be false in prod"),
    ("prod-host-key", set_path("cluster.controlHost.hostKey", DELETE), "cluster.controlHost.hostKey", "prod requires"),
    ("prod-mysql-replicas", set_path("mysql", {"enabled": True, "replicas": 2}), "mysql.replicas", "at least 3"),
    ("prod-unpinned-release", _rel(version=None), "helm.releases[0].version", "required in prod"),
]


def test_same_rules_pass_in_dev() -> None:
    cfg = kubespray_config("dev")
    _nodes(_n("a", "10.0.0.1", "control-plane", "etcd", "worker"))(cfg)
    _rel(version=None)(cfg)
    cfg["cluster"]["resetOnDestroy"] = True
    spec = parse(cfg)
    assert spec.helm.releases[0].version == ""


def test_existing_mode_rejects_kubespray_keys() -> None:
    cfg = existing_config()
    cfg["cluster"]["controlHost"] = {"host": "10.0.0.1", "user": "x"}
    with pytest.raises(ConfigError) as err:
        parse(cfg)
    assert any(p.path == "cluster.controlHost" and "mode: kubespray" in p.message for p in err.value.problems)


def test_existing_mode_needs_a_kubeconfig() -> None:
    cfg = existing_config()
    del cfg["cluster"]["kubeconfig"]
    with pytest.raises(ConfigError) as err:
        parse(cfg)
    assert [p.path for p in err.value.problems] == ["cluster.kubeconfig"]
    cfg["kubeconfig"] = SECRET
    assert parse(cfg).cluster.mode == "existing"

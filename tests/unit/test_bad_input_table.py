"""Bad input through the user's entry points, and a fuzzer of the config loader.

Each case is a real stack file (a project stack with one thing broken) and goes
through what a user runs:

* `python -m stacks validate --config-file FILE` (in-process `stacks.cli.main`
  per case, plus real subprocesses: one `validate` over every case by STACK name
  with `--root`, and a few `--config-file` runs): exit 1, `<key.path>: <hint>`
  on stderr, never a traceback;
* the Pulumi program's entry point `stacks.program.deploy` under mocks:
  `ConfigError`, and not a single resource registered.

The Hypothesis fuzzer feeds random shapes (and shapes close to the schema, and
raw YAML text) to `stacks.files` and `stacks.config.parse_config`: the only
exception allowed out is `ConfigError`.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacks import cli
from stacks.config import SECRET, TOP_LEVEL_KEYS, ConfigError, parse_config
from stacks.files import config_from_file, load_spec_file, stack_file
from stacks.program import deploy
from tests.support.mocks import EXAMPLE_HOST_KEYS, PROJECT_ROOT, PlatformMocks, run_program
from tests.support.rejections import DELETE, NS, SECRETS, SECURE, all_of, set_path

Doc = dict[str, Any]
Mutation = Callable[[Doc], None]


def _base(name: str) -> Doc:
    if name == "existing":
        return {
            "config": {f"{NS}environment": "dev", f"{NS}cluster": {"mode": "existing", "kubeconfig": "~/.kube/config"}}
        }
    return yaml.safe_load(stack_file(name).read_text())


BASES = {name: _base(name) for name in ("dev", "staging", "prod", "existing")}


def _set(path: str, value: Any) -> Mutation:
    """Set `a.b.0.c` in the stack file's config (`a` is the key after `k8s-platform:`)."""
    mutate = set_path(NS + path, value)
    return lambda doc: mutate(doc["config"])


def _app(**kw: Any) -> Mutation:
    return all_of(*(_set(f"apps.0.{k}", v) for k, v in kw.items()))


def _release(**kw: Any) -> Mutation:
    return all_of(*(_set(f"helm.releases.0.{k}", v) for k, v in kw.items()))


def _user(**kw: Any) -> Mutation:
    """One mysql.users entry (orders on its database), with `kw` overriding its keys."""
    user = {"name": "orders", "databases": ["orders"], "passwordSecret": "ordersDbPassword", **kw}
    return all_of(_set("mysql.users", [user]), _set("ordersDbPassword", SECURE))


_N = "cluster.nodes"
_APP2 = {"name": "api", "namespace": "web", "image": "nginx:1.27.5", "service": {"type": "NodePort", "nodePort": 30080}}

# (id, base stack, mutation, key path expected on stderr, words expected in its message)
CASES: list[tuple[str, str, Mutation, str, str]] = [
    # environment / top level
    ("env-typo", "staging", _set("environment", "stagin"), "environment", "did you mean 'staging'"),
    ("env-number", "staging", _set("environment", 3), "environment", "not one of dev, staging, prod"),
    ("env-list", "staging", _set("environment", ["prod"]), "environment", "must be a string, not a list"),
    ("env-missing", "staging", _set("environment", DELETE), "environment", "is required"),
    ("top-key-typo", "staging", _set("schedulableControlPlan", True), "schedulableControlPlan", "did you mean 'schedulableControlPlane'"),
    ("schedulable-word", "staging", _set("schedulableControlPlane", "yes"), "schedulableControlPlane", "true or false"),
    # cluster: shape and mode
    ("cluster-scalar", "staging", _set("cluster", "kubespray"), "cluster", "must be a mapping"),
    ("mode-unknown", "staging", _set("cluster.mode", "kubeadm"), "cluster.mode", "not one of kubespray, existing"),
    ("mode-existing-with-kubespray-keys", "staging", _set("cluster.mode", "existing"), "cluster.controlHost", "only applies to mode: kubespray"),
    ("kubeconfig-in-kubespray-mode", "staging", _set("cluster.kubeconfig", "~/.kube/config"), "cluster.kubeconfig", "only applies to mode: existing"),
    ("existing-without-kubeconfig", "existing", _set("cluster.kubeconfig", DELETE), "cluster.kubeconfig", "needs a kubeconfig"),
    ("existing-two-kubeconfigs", "existing", _set("kubeconfig", SECURE), "cluster.kubeconfig", "not both"),
    # kubespray source
    ("kubespray-version-no-v", "staging", _set("cluster.kubespray.version", "2.31.0"), "cluster.kubespray.version", "release tag like 'v2.31.0'"),
    ("kubespray-version-number", "staging", _set("cluster.kubespray.version", 2.31), "cluster.kubespray.version", "release tag"),
    ("kubespray-source-ftp", "staging", _set("cluster.kubespray.source", "ftp://mirror/kubespray.git"), "cluster.kubespray.source", "git URL"),
    ("kubespray-source-space", "staging", _set("cluster.kubespray.source", "https://git.example.com/kube spray.git"), "cluster.kubespray.source", "whitespace"),
    ("kubespray-source-query", "staging", _set("cluster.kubespray.source", "https://github.com/kubernetes-sigs/kubespray.git?ref=v2.31.0"), "cluster.kubespray.source", "query"),
    ("kubespray-source-file-host", "staging", _set("cluster.kubespray.source", "file://mirror.example.com/srv/kubespray.git"), "cluster.kubespray.source", "file:///path"),
    ("workdir-quote", "staging", _set("cluster.kubespray.workdir", "~/kube'spray"), "cluster.kubespray.workdir", "quotes"),
    ("workdir-relative", "staging", _set("cluster.kubespray.workdir", "kubespray"), "cluster.kubespray.workdir", "absolute"),
    # control host
    ("control-host-short-ip", "staging", _set("cluster.controlHost.host", "10.4.17"), "cluster.controlHost.host", "not a valid IP address or hostname"),
    ("control-host-port-big", "staging", _set("cluster.controlHost.port", 65536), "cluster.controlHost.port", "at most 65535"),
    ("control-host-port-word", "staging", _set("cluster.controlHost.port", "ssh"), "cluster.controlHost.port", "whole number"),
    ("control-host-user-upper", "staging", _set("cluster.controlHost.user", "Tiger"), "cluster.controlHost.user", "not a valid user name"),
    ("control-host-key-bare", "staging", _set("cluster.controlHost.hostKey", "AAAAC3NzaC1lZDI1NTE5"), "cluster.controlHost.hostKey", "public host key"),
    ("control-host-key-undecodable", "staging", _set("cluster.controlHost.hostKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleOnly"), "cluster.controlHost.hostKey", "copy it whole"),
    ("control-host-key-known-hosts-line", "staging", _set("cluster.controlHost.hostKey", f"10.4.17.165 {EXAMPLE_HOST_KEYS[0]}"), "cluster.controlHost.hostKey", "without the host"),
    ("control-host-key-dsa", "staging", _set("cluster.controlHost.hostKey", "ssh-dss AAAAB3NzaC1kc3MAAACBAMZpKaJCHcS3"), "cluster.controlHost.hostKey", "DSA keys are refused by OpenSSH"),
    ("control-host-key-type-mismatch", "staging", _set("cluster.controlHost.hostKey", "ssh-rsa " + EXAMPLE_HOST_KEYS[0].split()[1]), "cluster.controlHost.hostKey", "not a valid ssh-rsa key"),
    ("proxy-jump-port", "staging", _set("cluster.controlHost.proxyJump", {"host": "bastion.example.com", "user": "jump", "port": 0}), "cluster.controlHost.proxyJump.port", "at least 1"),
    ("proxy-jump-no-user", "staging", _set("cluster.controlHost.proxyJump", {"host": "bastion.example.com"}), "cluster.controlHost.proxyJump.user", "required when proxyJump.host"),
    ("ansible-user-missing", "staging", _set("cluster.ansibleUser", DELETE), "cluster.ansibleUser", "is required"),
    ("ansible-key-relative", "staging", _set("cluster.ansibleKeyPath", "id_ed25519"), "cluster.ansibleKeyPath", "absolute"),
    # nodes, addresses, roles
    ("nodes-mapping", "staging", _set(_N, {"node1": {"address": "10.4.17.167"}}), _N, "must be a list"),
    ("node-scalar", "staging", _set(f"{_N}.0", "node1"), f"{_N}[0]", "must be a mapping"),
    ("node-name-missing", "staging", _set(f"{_N}.0.name", DELETE), f"{_N}[0].name", "is required"),
    ("node-name-underscore", "staging", _set(f"{_N}.0.name", "node_1"), f"{_N}[0].name", "RFC 1123"),
    ("node-address-cidr", "staging", _set(f"{_N}.0.address", "10.4.17.0/24"), f"{_N}[0].address", "not a valid IP address or hostname"),
    ("node-address-octet", "staging", _set(f"{_N}.1.address", "10.4.17.268"), f"{_N}[1].address", "not a valid IP address or hostname"),
    ("node-ip-hostname", "staging", _set(f"{_N}.0.ip", "node1.lab"), f"{_N}[0].ip", "not a valid IP address"),
    ("node-address-duplicate", "staging", _set(f"{_N}.2.address", "10.4.17.168"), f"{_N}[2].address", "duplicate address"),
    ("node-hostname-without-ip", "staging", _set(f"{_N}.0.address", "node1.lab"), f"{_N}[0].ip", "is required when address"),
    ("role-master", "staging", _set(f"{_N}.0.roles", ["master", "etcd"]), f"{_N}[0].roles[0]", "unknown role 'master'"),
    ("role-twice", "staging", _set(f"{_N}.2.roles", ["etcd", "etcd", "worker"]), f"{_N}[2].roles[1]", "listed twice"),
    ("roles-string", "staging", _set(f"{_N}.2.roles", "etcd"), f"{_N}[2].roles", "must be a list"),
    ("etcd-even", "staging", _set(f"{_N}.2.roles", ["worker"]), _N, "even number"),
    ("no-worker", "staging", all_of(*(_set(f"{_N}.{i}.roles", r) for i, r in enumerate([["control-plane", "etcd"], ["control-plane", "etcd"], ["etcd"]]))), _N, "'worker' role"),
    # versions, plugins, endpoint
    ("kube-version-major", "staging", _set("cluster.kubeVersion", "2.0.0"), "cluster.kubeVersion", "Kubernetes version"),
    ("kube-version-float", "staging", _set("cluster.kubeVersion", 1.34), "cluster.kubeVersion", "Kubernetes version"),
    ("network-plugin", "staging", _set("cluster.networkPlugin", "weave"), "cluster.networkPlugin", "not one of"),
    ("container-manager-case", "staging", _set("cluster.containerManager", "Docker"), "cluster.containerManager", "did you mean 'docker'"),
    ("api-endpoint-no-host", "staging", _set("cluster.apiServerEndpoint", "https://:6443"), "cluster.apiServerEndpoint", "https URL"),
    ("api-endpoint-space", "staging", _set("cluster.apiServerEndpoint", "https://k8s.example.com:6443/a b"), "cluster.apiServerEndpoint", "whitespace"),
    # proxy, mirrors, URLs, extra vars
    ("proxy-no-scheme", "staging", _set("cluster.proxy.http", "10.4.17.1:3128"), "cluster.proxy.http", "proxy URL"),
    ("proxy-password", "staging", _set("cluster.proxy.https", "http://user:pw@10.4.17.1:3128"), "cluster.proxy.https", "must not contain a password"),
    ("proxy-port-range", "staging", _set("cluster.proxy.http", "http://10.4.17.1:99999"), "cluster.proxy.http", "proxy URL"),
    ("proxy-bad-percent", "staging", _set("cluster.proxy.http", "http://10.4.17.1:3128/%zz"), "cluster.proxy.http", "percent-encode"),
    ("files-repo-fragment", "staging", _set("cluster.imageRepos.files", "https://files.mirror.example.com/k8s#v1"), "cluster.imageRepos.files", "fragment"),
    ("registry-with-scheme", "staging", _set("cluster.imageRepos.kube", "https://registry.mirror.example.com"), "cluster.imageRepos.kube", "no scheme"),
    ("files-repo-no-scheme", "staging", _set("cluster.imageRepos.files", "files.mirror.example.com"), "cluster.imageRepos.files", "not a valid URL"),
    ("extra-vars-managed", "staging", _set("cluster.extraVars.http_proxy", "http://x:3128"), "cluster.extraVars.http_proxy", "cluster.proxy.http"),
    ("extra-vars-list", "staging", _set("cluster.extraVars", ["kube_proxy_strict_arp"]), "cluster.extraVars", "must be a mapping"),
    ("download-localhost-alone", "staging", _set("cluster.download", {"runOnce": False, "localhost": True}), "cluster.download.localhost", "runOnce"),
    ("reset-word", "staging", _set("cluster.resetOnDestroy", "no"), "cluster.resetOnDestroy", "true or false"),
    # secrets in plain text, missing secrets
    ("ssh-key-plain", "staging", _set("sshPrivateKey", "-----BEGIN OPENSSH PRIVATE KEY-----"), "sshPrivateKey", "plain text"),
    ("mysql-root-plain", "staging", _set("mysqlRootPassword", "hunter2"), "mysqlRootPassword", "plain text"),
    ("mysql-repl-plain", "staging", _set("mysqlReplicationPassword", 12345), "mysqlReplicationPassword", "plain text"),
    ("kubeconfig-plain", "existing", _set("kubeconfig", "apiVersion: v1\nkind: Config\n"), "kubeconfig", "plain text"),
    ("secret-for-plain-key", "staging", _set("cluster.ansibleUser", SECURE), "cluster.ansibleUser", "not a secret setting"),
    # add-ons
    ("lb-addresses-empty", "staging", _set("addons.loadBalancer.addresses", []), "addons.loadBalancer.addresses", "is empty"),
    ("lb-address-prefix", "staging", _set("addons.loadBalancer.addresses", ["10.4.17.200/33"]), "addons.loadBalancer.addresses[0]", "CIDR"),
    ("ingress-version-v", "staging", _set("addons.ingress.version", "v37"), "addons.ingress.version", "semantic version"),
    ("ingress-repo-no-scheme", "staging", _set("addons.ingress.repo", "traefik.github.io/charts"), "addons.ingress.repo", "not a valid URL"),
    ("ingress-repo-pipe", "staging", _set("addons.ingress.repo", "https://traefik.github.io/charts|x"), "addons.ingress.repo", "percent-encode"),
    ("storage-class-upper", "staging", _set("addons.storage.defaultClass", "Local-Path"), "addons.storage.defaultClass", "StorageClass name"),
    ("addon-key-typo", "staging", _set("addons.ingress.enable", True), "addons.ingress.enable", "did you mean 'enabled'"),
    ("addon-enabled-word", "staging", _set("addons.metricsServer.enabled", "on"), "addons.metricsServer.enabled", "true or false"),
    # helm releases
    ("release-name-upper", "staging", _release(name="Grafana"), "helm.releases[0].name", "RFC 1123"),
    ("release-unpinned-staging", "staging", _release(version=None), "helm.releases[0].version", "required in staging"),
    ("release-version-short", "staging", _release(version="8.5"), "helm.releases[0].version", "semantic version"),
    ("release-repo-no-scheme", "staging", _release(repo="grafana.github.io/helm-charts"), "helm.releases[0].repo", "not a valid URL"),
    ("release-repo-space", "staging", _release(repo="https://charts.example.com/my charts"), "helm.releases[0].repo", "whitespace"),
    ("release-repo-template", "staging", _release(repo="https://charts.example.com/{{ .Values.env }}"), "helm.releases[0].repo", "template text"),
    ("release-repo-port", "staging", _release(repo="https://charts.example.com:0/charts"), "helm.releases[0].repo", "port"),
    ("release-chart-spaces", "staging", _release(chart="Grafana Chart"), "helm.releases[0].chart", "not a chart name"),
    ("release-values-list", "staging", _release(values=["adminUser"]), "helm.releases[0].values", "must be a mapping"),
    ("release-values-file-missing", "staging", _release(valuesFiles=["values/nope.yaml"]), "helm.releases[0].valuesFiles[0]", "does not exist"),
    ("release-values-file-escape", "staging", _release(valuesFiles=["../Pulumi.yaml"]), "helm.releases[0].valuesFiles[0]", "inside the project"),
    ("release-timeout-zero", "staging", _release(timeout=0), "helm.releases[0].timeout", "at least 1"),
    ("release-mirror-no-scheme", "staging", _set("helm.repoMirrors", {"https://grafana.github.io/helm-charts": "charts.mirror"}), "helm.repoMirrors.https://grafana.github.io/helm-charts", "repository URL"),
    ("release-mirror-space", "staging", _set("helm.repoMirrors", {"https://grafana.github.io/helm-charts": "https://mirror.example.com/helm charts"}), "helm.repoMirrors.https://grafana.github.io/helm-charts", "whitespace"),
    # mysql: quantities, images, replicas
    ("health-timeout-low", "staging", _set("cluster.healthGate", {"timeout": 5}), "cluster.healthGate.timeout", "at least 30"),
    ("health-timeout-word", "staging", _set("cluster.healthGate", {"timeout": "10m"}), "cluster.healthGate.timeout", "whole number"),
    ("health-typo", "staging", _set("cluster.healthGate", {"timout": 60}), "cluster.healthGate.timout", "did you mean 'timeout'"),
    ("health-off-prod", "prod", _set("cluster.healthGate", {"enabled": False}), "cluster.healthGate.enabled", "must be true in prod"),
    ("health-existing", "existing", _set("cluster.healthGate", {"timeout": 60}), "cluster.healthGate", "kubespray"),
    ("upgrade-serial-zero", "staging", _set("cluster.upgrade", {"serial": "0"}), "cluster.upgrade.serial", "node count"),
    ("upgrade-serial-pct", "staging", _set("cluster.upgrade", {"serial": "150%"}), "cluster.upgrade.serial", "percentage"),
    ("upgrade-serial-injection", "staging", _set("cluster.upgrade", {"serial": "1 -e x=y"}), "cluster.upgrade.serial", ""),
    ("upgrade-drain-timeout", "staging", _set("cluster.upgrade", {"drainTimeout": "6 minutes"}), "cluster.upgrade.drainTimeout", ""),
    ("upgrade-drain-timeout-bare", "staging", _set("cluster.upgrade", {"drainTimeout": "360"}), "cluster.upgrade.drainTimeout", "in seconds like '360s'"),
    ("upgrade-drain-timeout-minutes", "staging", _set("cluster.upgrade", {"drainTimeout": "15m"}), "cluster.upgrade.drainTimeout", "like '900s'"),
    ("removal-drain-timeout-minutes", "staging", _set("cluster.nodeRemoval", {"drainTimeout": "10m"}), "cluster.nodeRemoval.drainTimeout", "like '600s'"),
    ("removal-drain-retries", "staging", _set("cluster.nodeRemoval", {"drainRetries": 0}), "cluster.nodeRemoval.drainRetries", ""),
    ("removal-unknown-key", "staging", _set("cluster.nodeRemoval", {"drainTimout": "60s"}), "cluster.nodeRemoval.drainTimout", "drainTimeout"),
    ("host-key-checking-off-staging", "staging", _set("cluster.hostKeyChecking", "off"), "cluster.hostKeyChecking", "off is for dev only"),
    ("host-key-checking-off-prod", "prod", _set("cluster.hostKeyChecking", "off"), "cluster.hostKeyChecking", "acceptNew"),
    ("host-key-checking-unknown", "staging", _set("cluster.hostKeyChecking", "strict"), "cluster.hostKeyChecking", "pinned"),
    ("host-key-pinned-missing", "staging", _set("cluster.hostKeyChecking", "pinned"), "cluster.nodes[0].hostKey", "ssh-keyscan -t ed25519 10.4.17.167"),
    ("node-host-key-malformed", "staging", _set("cluster.nodes.0.hostKey", "AAAAC3Nza"), "cluster.nodes[0].hostKey", "ssh-keyscan"),
    ("node-host-key-undecodable", "staging", _set("cluster.nodes.0.hostKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINode1Key"), "cluster.nodes[0].hostKey", "copy it whole"),
    ("node-host-key-hashed-host", "staging", _set("cluster.nodes.0.hostKey", f"|1|c2FsdA==|aGFzaA== {EXAMPLE_HOST_KEYS[0]}"), "cluster.nodes[0].hostKey", "starts with a host field"),
    ("control-host-pip-index-space", "staging", _set("cluster.controlHost.pip", {"indexUrl": "https://pypi.example.com/my index/simple"}), "cluster.controlHost.pip.indexUrl", "whitespace"),
    ("node-host-key-existing", "existing", _set("cluster.nodes", [{"name": "cp1", "roles": ["control-plane"], "hostKey": EXAMPLE_HOST_KEYS[0]}]), "cluster.nodes[0].hostKey", "only applies to mode: kubespray"),
    ("control-host-pip-credentials", "staging", _set("cluster.controlHost.pip", {"indexUrl": "https://bob:s3cret@pypi.example.com/simple"}), "cluster.controlHost.pip.indexUrl", "credentials"),
    ("control-host-pip-http", "staging", _set("cluster.controlHost.pip", {"indexUrl": "http://10.4.17.5:8080/simple"}), "cluster.controlHost.pip.trustedHost", "plain-HTTP"),
    ("control-host-pip-trusted-alone", "staging", _set("cluster.controlHost.pip", {"trustedHost": "10.4.17.5"}), "cluster.controlHost.pip.trustedHost", "without indexUrl"),
    ("control-host-pip-unknown", "staging", _set("cluster.controlHost.pip", {"index": "https://pypi.example.com/simple"}), "cluster.controlHost.pip.index", "indexUrl"),
    ("control-host-proxy-password", "staging", _set("cluster.controlHost.proxy", {"https": "http://u:pw@10.4.17.1:3128"}), "cluster.controlHost.proxy.https", "must not contain a password"),
    ("api-access-mode", "staging", _set("cluster.apiAccess", {"mode": "vip"}), "cluster.apiAccess.mode", "kubeVip"),
    ("api-access-vip-missing", "staging", _set("cluster.apiAccess", {"mode": "kubeVip", "subnet": "10.4.17.0/24"}), "cluster.apiAccess.address", "is required for mode kubeVip"),
    ("api-access-vip-subnet-missing", "staging", _set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.17.5"}), "cluster.apiAccess.subnet", "is required for mode kubeVip"),
    ("api-access-vip-outside", "staging", _set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.99.5", "subnet": "10.4.17.0/24"}), "cluster.apiAccess.address", "is not in subnet 10.4.17.0/24"),
    ("api-access-vip-node", "staging", _set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.17.167", "subnet": "10.4.17.0/24"}), "cluster.apiAccess.address", "node1's own address"),
    ("api-access-vip-broadcast", "staging", _set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.17.255", "subnet": "10.4.17.0/24"}), "cluster.apiAccess.address", "broadcast"),
    ("api-access-subnet-misses-cp", "staging", _set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.17.5", "subnet": "10.4.17.0/30"}), "cluster.apiAccess.subnet", "control-plane node node1"),
    ("api-access-vip-port", "staging", _set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.17.5", "subnet": "10.4.17.0/24", "port": 8443}), "cluster.apiAccess.port", "does not apply to mode kubeVip"),
    ("api-access-local-address", "staging", _set("cluster.apiAccess", {"address": "10.4.17.5"}), "cluster.apiAccess.address", "does not apply to mode localProxy"),
    ("api-access-lb-hostname", "staging", _set("cluster.apiAccess", {"mode": "externalLB", "address": "lb.example.com"}), "cluster.apiAccess.address", "valid IP"),
    ("api-access-with-endpoint", "staging", all_of(_set("cluster.apiAccess", {"mode": "externalLB", "address": "10.4.17.6"}), _set("cluster.apiServerEndpoint", "https://k8s.example.com:6443")), "cluster.apiServerEndpoint", "follows apiAccess"),
    ("api-access-vip-in-pool", "staging", all_of(_set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.17.240", "subnet": "10.4.17.0/24"}), _set("addons.loadBalancer", {"enabled": True, "addresses": ["10.4.17.240-10.4.17.250"]})), "addons.loadBalancer.addresses[0]", "API server's address 10.4.17.240"),
    ("api-access-strict-arp", "staging", all_of(_set("cluster.apiAccess", {"mode": "kubeVip", "address": "10.4.17.5", "subnet": "10.4.17.0/24"}), _set("cluster.extraVars", {"kube_proxy_strict_arp": False})), "cluster.extraVars.kube_proxy_strict_arp", "must stay true"),
    ("api-access-managed-var", "staging", _set("cluster.extraVars", {"kube_vip_address": "10.4.17.5"}), "cluster.extraVars.kube_vip_address", "cluster.apiAccess.address"),
    ("etcd-backup-schedule", "staging", _set("cluster.etcdBackup", {"schedule": "every 6 hours"}), "cluster.etcdBackup.schedule", "five fields"),
    ("etcd-backup-schedule-template", "staging", _set("cluster.etcdBackup", {"schedule": "{{ lookup('pipe','id') }}"}), "cluster.etcdBackup.schedule", ""),
    ("etcd-backup-schedule-hour", "staging", _set("cluster.etcdBackup", {"schedule": "0 24 * * *"}), "cluster.etcdBackup.schedule", "out of range 0-23"),
    ("etcd-backup-schedule-sunday-7", "staging", _set("cluster.etcdBackup", {"schedule": "0 3 * * 7"}), "cluster.etcdBackup.schedule", "out of range 0-6"),
    ("etcd-backup-schedule-time-zone", "staging", _set("cluster.etcdBackup", {"schedule": "CRON_TZ=UTC 0 3 * * *"}), "cluster.etcdBackup.schedule", "time zone"),
    ("etcd-backup-schedule-wraps", "staging", _set("cluster.etcdBackup", {"schedule": "0 3 * * fri-mon"}), "cluster.etcdBackup.schedule", "runs backwards"),
    ("etcd-backup-schedule-seconds", "staging", _set("cluster.etcdBackup", {"schedule": "0 0 3 * * *"}), "cluster.etcdBackup.schedule", "seconds field"),
    ("etcd-backup-schedule-never", "staging", _set("cluster.etcdBackup", {"schedule": "0 3 30 2 *"}), "cluster.etcdBackup.schedule", "never occurs"),
    ("etcd-backup-retention", "staging", _set("cluster.etcdBackup", {"retention": 0}), "cluster.etcdBackup.retention", ""),
    ("etcd-backup-directory", "staging", _set("cluster.etcdBackup", {"directory": "backups"}), "cluster.etcdBackup.directory", "absolute directory"),
    ("etcd-backup-directory-dotdot", "staging", _set("cluster.etcdBackup", {"directory": "/var/../etc"}), "cluster.etcdBackup.directory", "absolute directory"),
    ("etcd-backup-image", "staging", _set("cluster.etcdBackup", {"image": "busybox latest"}), "cluster.etcdBackup.image", ""),
    ("etcd-backup-etcd-only-member", "staging", all_of(_set("cluster.etcdBackup", {"schedule": "@daily"}), _set("cluster.nodes.2.roles", ["etcd"])), "cluster.etcdBackup.schedule", "node3 is not a Kubernetes node"),
    ("etcd-backup-managed-var", "staging", _set("cluster.extraVars", {"etcd_backup_retention_count": 3}), "cluster.extraVars.etcd_backup_retention_count", "cluster.etcdBackup.retention"),
    ("control-host-no-proxy", "staging", _set("cluster.controlHost.proxy", {"noProxy": "a b"}), "cluster.controlHost.proxy.noProxy", "comma-separated"),
    ("node-state-unknown", "staging", _set("cluster.nodes.2.state", "gone"), "cluster.nodes[2].state", "unreachable"),
    ("upgrade-pause-negative", "staging", _set("cluster.upgrade", {"pauseSeconds": -1}), "cluster.upgrade.pauseSeconds", "at least 0"),
    ("upgrade-no-drain-prod", "prod", _set("cluster.upgrade", {"drain": False}), "cluster.upgrade.drain", "must be true in prod"),
    ("upgrade-drain-word", "staging", _set("cluster.upgrade", {"drain": "yes"}), "cluster.upgrade.drain", "true or false"),
    ("upgrade-typo", "staging", _set("cluster.upgrade", {"serail": "1"}), "cluster.upgrade.serail", "did you mean 'serial'"),
    ("certs-schedule-shell", "staging", _set("cluster.certificates", {"schedule": "Mon $(reboot)"}), "cluster.certificates.schedule", "OnCalendar"),
    ("certs-schedule-template", "staging", _set("cluster.certificates", {"schedule": "{{ lookup('pipe','id') }}"}), "cluster.certificates.schedule", "template syntax"),
    ("certs-schedule-word", "staging", _set("cluster.certificates", {"schedule": "sometimes"}), "cluster.certificates.schedule", "OnCalendar"),
    ("certs-schedule-hour", "staging", _set("cluster.certificates", {"schedule": "*-*-* 25:00:00"}), "cluster.certificates.schedule", "out of range"),
    ("certs-schedule-backwards", "staging", _set("cluster.certificates", {"schedule": "Fri..Mon 03:00"}), "cluster.certificates.schedule", "runs backwards"),
    ("certs-schedule-time-zone", "staging", _set("cluster.certificates", {"schedule": "Mon *-*-1..7 03:00 Europe/Berlin"}), "cluster.certificates.schedule", "time zone"),
    ("certs-auto-word", "staging", _set("cluster.certificates", {"autoRenew": "please"}), "cluster.certificates.autoRenew", "true or false"),
    ("mysql-replicas-ten", "staging", _set("mysql.replicas", 10), "mysql.replicas", "at most 9"),
    ("mysql-replicas-word", "staging", _set("mysql.replicas", "three"), "mysql.replicas", "whole number"),
    ("mysql-image-latest", "staging", _set("mysql.image", "mysql:latest"), "mysql.image", "'latest'"),
    ("mysql-image-57", "staging", _set("mysql.image", "mysql:5.7.44"), "mysql.image", "8.4"),
    ("mysql-size-gb", "staging", _set("mysql.storage.size", "10GB"), "mysql.storage.size", "storage size"),
    ("mysql-cpu-words", "staging", _set("mysql.resources.requests.cpu", "1 core"), "mysql.resources.requests.cpu", "Kubernetes quantity"),
    ("mysql-request-over-limit", "staging", _set("mysql.resources.requests.memory", "4Gi"), "mysql.resources.requests.memory", "larger than the limit"),
    ("mysql-resource-gpu", "staging", _set("mysql.resources.limits.gpu", "1"), "mysql.resources.limits.gpu", "unknown resource"),
    ("mysql-allow-from-namespace", "staging", _set("mysql.allowFrom.0.namespace", "Web"), "mysql.allowFrom[0].namespace", "namespace"),
    # mysql.users: an app's own account, never the platform's, never a system schema
    ("mysql-user-root", "staging", _user(name="root"), "mysql.users[0].name", "platform's own account"),
    ("mysql-user-repl", "staging", _user(name="repl"), "mysql.users[0].name", "platform's own account"),
    ("mysql-user-quote", "staging", _user(name="x'@'%"), "mysql.users[0].name", "not a MySQL user name"),
    ("mysql-user-newline", "staging", _user(name="orders\n"), "mysql.users[0].name", "not a MySQL user name"),
    ("mysql-user-too-long", "staging", _user(name="u" * 33), "mysql.users[0].name", "not a MySQL user name"),
    ("mysql-user-system-db", "staging", _user(databases=["mysql"]), "mysql.users[0].databases[0]", "system schema"),
    ("mysql-user-system-db-case", "staging", _user(databases=["Performance_Schema"]), "mysql.users[0].databases[0]", "system schema"),
    ("mysql-user-wildcard-db", "staging", _user(databases=["orders%"]), "mysql.users[0].databases[0]", "not a database name"),
    ("mysql-user-backtick-db", "staging", _user(databases=["a`b"]), "mysql.users[0].databases[0]", "not a database name"),
    ("mysql-user-no-db", "staging", _user(databases=[]), "mysql.users[0].databases", "list the databases"),
    ("mysql-user-db-twice", "staging", _user(databases=["orders", "orders"]), "mysql.users[0].databases[1]", "listed twice"),
    ("mysql-user-root-pw", "staging", _user(passwordSecret="mysqlRootPassword"), "mysql.users[0].passwordSecret", "infrastructure credential"),
    ("mysql-user-ssh-pw", "staging", _user(passwordSecret="sshPrivateKey"), "mysql.users[0].passwordSecret", "infrastructure credential"),
    ("mysql-user-setting-pw", "staging", _user(passwordSecret="apps"), "mysql.users[0].passwordSecret", "platform setting"),
    ("mysql-user-pw-plain", "staging", all_of(_user(), _set("ordersDbPassword", "hunter2")), "ordersDbPassword", "plain text"),
    ("mysql-user-access", "staging", _user(access="admin"), "mysql.users[0].access", "not one of readWrite, readOnly"),
    ("mysql-user-access-case", "staging", _user(access="readwrite"), "mysql.users[0].access", "did you mean 'readWrite'"),
    ("mysql-user-unknown-key", "staging", _user(privileges="ALL"), "mysql.users[0].privileges", "unknown key"),
    ("mysql-user-twice", "staging", all_of(_user(), _set("mysql.users", [{"name": "orders", "databases": [d], "passwordSecret": "ordersDbPassword"} for d in ("a", "b")])), "mysql.users[1].name", "already defined"),
    ("mysql-user-disabled", "staging", all_of(_user(), _set("mysql.enabled", False)), "mysql.users", "needs mysql.enabled: true"),
    # apps: names, images, ports, services
    ("app-name-missing", "staging", _set("apps.0.name", DELETE), "apps[0].name", "is required"),
    ("app-image-tagless", "staging", _app(image="nginx"), "apps[0].image", "no tag"),
    ("app-port-zero", "staging", _app(port=0), "apps[0].port", "at least 1"),
    ("app-port-name", "staging", _app(port="http"), "apps[0].port", "whole number"),
    ("app-replicas-negative", "staging", _app(replicas=-1), "apps[0].replicas", "at least 0"),
    ("app-nodeport-range", "staging", _app(service={"type": "NodePort", "nodePort": 8080}), "apps[0].service.nodePort", "30000-32767"),
    ("app-nodeport-twice", "dev", lambda d: d["config"][f"{NS}apps"].append(copy.deepcopy(_APP2)), "apps[1].service.nodePort", "already used by apps[0]"),
    ("app-loadbalancer-without-metallb", "dev", _app(service={"type": "LoadBalancer", "port": 80}), "apps[0].service.type", "addons.loadBalancer.enabled"),
    ("app-env-name-dash", "staging", _app(env={"my-var": "1"}), "apps[0].env.my-var", "environment variable"),
    ("app-env-value-map", "staging", _app(env={"CONF": {"a": 1}}), "apps[0].env.CONF", "must be a string"),
    ("app-ingress-host-underscore", "staging", _app(ingress={"host": "nginx_staging.example.com"}), "apps[0].ingress.host", "DNS host name"),
    ("app-probe-path", "staging", _app(readiness={"path": "healthz"}), "apps[0].readiness.path", "must start with '/'"),
    ("app-surge-percent", "staging", _app(strategy={"maxSurge": "150%"}), "apps[0].strategy.maxSurge", "percentage"),
    ("app-hpa-cpu-zero", "staging", _app(hpa={"minReplicas": 2, "maxReplicas": 4, "cpuUtilization": 0}), "apps[0].hpa.cpuUtilization", "at least 1"),
    ("app-duplicate", "staging", lambda d: d["config"][f"{NS}apps"].append(copy.deepcopy(d["config"][f"{NS}apps"][0])), "apps[1].name", "already exists"),
    ("app-run-as-root", "staging", _app(runAsUser=0), "apps[0].runAsUser", "root"),
    ("app-init-no-command", "staging", _app(initContainers=[{"name": "migrate"}]), "apps[0].initContainers[0].command", "is required"),
    ("app-init-command-map", "staging", _app(initContainers=[{"name": "migrate", "command": {"sh": 1}}]), "apps[0].initContainers[0].command", "must be a list"),
    ("app-init-bad-name", "staging", _app(initContainers=[{"name": "Migrate_1", "command": ["true"]}]), "apps[0].initContainers[0].name", "container name"),
    ("app-init-app-name", "staging", _app(initContainers=[{"name": "my-nginx", "command": ["true"]}]), "apps[0].initContainers[0].name", "the app's own container"),
    ("app-init-twice", "staging", _app(initContainers=[{"name": "a", "command": ["true"]}, {"name": "a", "command": ["true"]}]), "apps[0].initContainers[1].name", "names must be unique"),
    ("app-init-unpinned", "staging", _app(initContainers=[{"name": "a", "command": ["true"], "image": "busybox"}]), "apps[0].initContainers[0].image", "has no tag"),
    ("app-init-key-typo", "staging", _app(initContainers=[{"name": "a", "commands": ["true"]}]), "apps[0].initContainers[0].commands", "did you mean 'command'"),
    ("app-rollout-timeout-short", "staging", _app(rolloutTimeout=5), "apps[0].rolloutTimeout", "at least 30"),
    ("app-rollout-timeout-text", "staging", _app(rolloutTimeout="10m"), "apps[0].rolloutTimeout", "whole number"),
    ("apps-mapping", "staging", _set("apps", {"my-nginx": {"image": "nginx:1.27.5"}}), "apps", "must be a list"),
    # prod tier rules
    ("prod-reset-on-destroy", "prod", _set("cluster.resetOnDestroy", True), "cluster.resetOnDestroy", "must be false in prod"),
    ("prod-host-key-missing", "prod", _set("cluster.controlHost.hostKey", DELETE), "cluster.controlHost.hostKey", "prod requires"),
    ("prod-one-etcd", "prod", all_of(_set(f"{_N}.1.roles", ["control-plane"]), _set(f"{_N}.2.roles", ["control-plane"])), _N, "at least 3 etcd"),
    ("prod-one-control-plane", "prod", all_of(_set(f"{_N}.1.roles", ["etcd"]), _set(f"{_N}.2.roles", ["etcd"])), _N, "at least 2 control-plane"),
    ("prod-mysql-two", "prod", _set("mysql.replicas", 2), "mysql.replicas", "at least 3"),
    ("prod-release-unpinned", "prod", _release(version=DELETE), "helm.releases[0].version", "required in prod"),
]  # fmt: skip

# Broken files rather than broken settings: only the CLI path applies (no config to deploy).
# (id, file text or bytes, words expected in the one problem line, which names the file)
FILE_CASES: list[tuple[str, str | bytes, str]] = [
    ("yaml-syntax", "config:\n  k8s-platform:cluster: {mode: [\n", "line"),
    ("yaml-tab", "config:\n\tk8s-platform:environment: dev\n", "line 2"),
    ("not-utf8", b"config:\n  k8s-platform:environment: d\xe9v\n", "UTF-8"),
    ("top-level-list", "- config\n", "mapping with a 'config:' key"),
    ("top-level-typo", "configs:\n  k8s-platform:environment: dev\n", "unknown top-level key 'configs'"),
    ("config-list", "config:\n  - k8s-platform:environment: dev\n", "must be a mapping"),
    ("config-int-key", "config:\n  1: dev\n", "config keys must be strings"),
    ("python-tag", "config:\n  k8s-platform:environment: !!python/object/apply:os.system [ls]\n", "constructor"),
    ("impossible-date", "config:\n  k8s-platform:environment: 2026-13-45\n", "month must be in 1..12"),
    ("huge-number", "config:\n  k8s-platform:mysql: {replicas: " + "9" * 5000 + "}\n", "digits"),
    ("alias-cycle", "config:\n  k8s-platform:apps: &apps [*apps]\n", "refers to itself"),
    ("deep-nesting", "config:\n  k8s-platform:helm: " + "[" * 3000 + "]" * 3000 + "\n", "too deeply"),
]


# Secrets not set yet: the program refuses to deploy; validate/inventory/render (planning) warn.
MISSING_SECRET_CASES: list[tuple[str, str, Mutation, str, str]] = [
    ("ssh-key-missing", "staging", _set("sshPrivateKey", DELETE), "sshPrivateKey", "required in kubespray mode"),
    ("mysql-password-missing", "staging", _set("mysqlRootPassword", DELETE), "mysqlRootPassword", "required when mysql.enabled"),
    ("mysql-user-password-missing", "staging", all_of(_user(), _set("ordersDbPassword", DELETE)), "mysql.users[0].passwordSecret", "which is not set"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case_id", "base", "mutate", "path", "words"), [pytest.param(*c, id=c[0]) for c in MISSING_SECRET_CASES]
)
def test_missing_secrets_warn_when_planning_and_stop_the_program(
    mocks: PlatformMocks, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    case_id: str, base: str, mutate: Mutation, path: str, words: str,
) -> None:  # fmt: skip
    f = tmp_path / f"Pulumi.{case_id}.yaml"
    f.write_text(yaml.safe_dump(_doc(base, mutate), sort_keys=False))
    assert cli.main(["--root", str(PROJECT_ROOT), "validate", "--config-file", str(f)]) == 0
    _, err = capsys.readouterr()
    assert any(line.startswith(f"{f}: warning: {path}: ") and words in line for line in err.splitlines()), err
    raw = config_from_file(f)

    def program() -> None:
        deploy(raw, SECRETS, PROJECT_ROOT, stack=case_id)

    with pytest.raises(ConfigError) as exc:
        run_program(program)
    assert mocks.resources == []
    _assert_reported([str(p) for p in exc.value.problems], path, words)


def test_table_is_broad() -> None:
    assert len(CASES) >= 60
    sections = {path.split(".")[0].split("[")[0] for _, _, _, path, _ in CASES}
    assert {"environment", "cluster", "schedulableControlPlane", "addons", "helm", "mysql", "apps", "sshPrivateKey",
            "mysqlRootPassword", "kubeconfig"} <= sections  # fmt: skip
    assert len({c[0] for c in CASES}) == len(CASES)


def _doc(base: str, mutate: Mutation) -> Doc:
    doc = copy.deepcopy(BASES[base])
    mutate(doc)
    # placeholder ciphertexts stay: the CLI never decrypts, the program sees markers
    return doc


@pytest.fixture(scope="module")
def case_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root holding Pulumi.<case>.yaml for every case (and the values files they name)."""
    root = tmp_path_factory.mktemp("bad-input")
    shutil.copytree(PROJECT_ROOT / "values", root / "values")
    (root / "Pulumi.yaml").write_text((PROJECT_ROOT / "Pulumi.yaml").read_text())
    for case_id, base, mutate, _, _ in CASES:
        (root / f"Pulumi.{case_id}.yaml").write_text(yaml.safe_dump(_doc(base, mutate), sort_keys=False))
    for case_id, text, _ in FILE_CASES:
        path = root / f"Pulumi.{case_id}.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def _problem_lines(stderr: str, label: str) -> list[str]:
    """The problem lines printed under `<label>: N problem(s)`."""
    lines = stderr.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"{label}: ") and line.endswith("problem(s)")))
    out = []
    for line in lines[start + 1 :]:
        if re.match(r"^\S+: \d+ problem\(s\)$", line) and not line.startswith(label):
            break
        out.append(line)
    return out


def _assert_reported(lines: list[str], path: str, words: str) -> None:
    hits = [line for line in lines if line.startswith(f"{path}: ")]
    assert hits, f"no problem at {path!r}; got {lines}"
    assert any(words in line for line in hits), f"{path}: expected {words!r} in {hits}"


@pytest.mark.parametrize(("case_id", "path", "words"), [pytest.param(c, p, w, id=c) for c, _, _, p, w in CASES])
def test_cli_validate_config_file(
    case_root: Path, capsys: pytest.CaptureFixture[str], case_id: str, path: str, words: str
) -> None:
    f = case_root / f"Pulumi.{case_id}.yaml"
    assert cli.main(["--root", str(PROJECT_ROOT), "validate", "--config-file", str(f)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = _problem_lines(err, str(f))
    assert lines and all(re.match(r"^\S.*: \S", line) for line in lines), lines
    _assert_reported(lines, path, words)


@pytest.mark.parametrize(("case_id", "words"), [pytest.param(c, w, id=c) for c, _, w in FILE_CASES])
def test_cli_validate_broken_file(
    case_root: Path, capsys: pytest.CaptureFixture[str], case_id: str, words: str
) -> None:
    f = case_root / f"Pulumi.{case_id}.yaml"
    assert cli.main(["validate", "--config-file", str(f)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = _problem_lines(err, str(f))
    assert len(lines) == 1 and words in lines[0], lines
    assert lines[0].split(": ", 1)[0] in (str(f), "config", "1"), lines


def test_one_real_validate_over_every_case(case_root: Path) -> None:
    """The real entry point, once for all cases: `python -m stacks --root DIR validate STACK...`."""
    names = [c[0] for c in CASES] + [c[0] for c in FILE_CASES]
    res = subprocess.run(
        [sys.executable, "-m", "stacks", "--root", str(case_root), "validate", *names],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1 and res.stdout == "", res.stdout
    assert "Traceback" not in res.stderr
    for case_id, _, _, path, words in CASES:
        _assert_reported(_problem_lines(res.stderr, case_id), path, words)
    for case_id, _, words in FILE_CASES:
        assert any(words in line for line in _problem_lines(res.stderr, case_id)), case_id


@pytest.mark.parametrize("case_id", ["env-typo", "proxy-password", "app-nodeport-twice", "not-utf8", "alias-cycle"])
def test_real_validate_config_file(case_root: Path, case_id: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "stacks", "validate", "--config-file", str(case_root / f"Pulumi.{case_id}.yaml")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1, res
    assert "Traceback" not in res.stderr and res.stderr.count("problem(s)") == 1


@pytest.mark.parametrize(("case_id", "path", "words"), [pytest.param(c, p, w, id=c) for c, _, _, p, w in CASES])
def test_deploy_refuses_and_registers_nothing(
    mocks: PlatformMocks, case_root: Path, case_id: str, path: str, words: str
) -> None:
    raw = config_from_file(case_root / f"Pulumi.{case_id}.yaml")

    def program() -> None:
        deploy(raw, SECRETS, PROJECT_ROOT, stack=case_id)

    with pytest.raises(ConfigError) as err:
        run_program(program)
    assert mocks.resources == [], [r.name for r in mocks.resources]
    _assert_reported([str(p) for p in err.value.problems], path, words)


def test_base_stacks_are_valid(tmp_path: Path) -> None:
    for name, doc in BASES.items():
        path = tmp_path / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        parse_config(config_from_file(path), project_root=PROJECT_ROOT)


# --------------------------------------------------------------------------- fuzzer

FUZZ_EXAMPLES = int(os.environ.get("K8S_PLATFORM_FUZZ_EXAMPLES", "300"))
# Deterministic by default so CI is stable; set K8S_PLATFORM_FUZZ_EXAMPLES to explore more, with random seeds.
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    derandomize="K8S_PLATFORM_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

_SCHEMA_WORDS = [
    *TOP_LEVEL_KEYS, "mode", "kubespray", "existing", "nodes", "name", "address", "ip", "roles", "control-plane",
    "etcd", "worker", "controlHost", "host", "port", "user", "hostKey", "proxyJump", "version", "source", "workdir",
    "ingress", "storage", "metricsServer", "loadBalancer", "enabled", "addresses", "releases", "repo", "chart",
    "values", "valuesFiles", "replicas", "image", "service", "type", "nodePort", "resources", "requests", "limits",
    "cpu", "memory", "env", "secure", "prod", "dev", "staging", "NodePort", "LoadBalancer", "10.0.0.1", "v2.31.0",
    "nginx:1.27", "10Gi", "https://example.com", "~/x", "", "repoMirrors", "allowFrom", "podLabels", "hpa",
]  # fmt: skip

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.sampled_from(_SCHEMA_WORDS), st.text(max_size=20),
)  # fmt: skip
_keys = st.one_of(st.sampled_from(_SCHEMA_WORDS), st.text(max_size=12), st.integers(-5, 5), st.booleans(), st.none())


def _tree(with_markers: bool) -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(_keys, inner, max_size=5),
            st.builds(lambda v: {"secure": v}, st.text(max_size=5)),
            *([st.just(SECRET)] if with_markers else []),
        ),
        max_leaves=25,
    )


_values = _tree(with_markers=True)  # what parse_config receives: secrets as markers
_plain = _tree(with_markers=False)  # what a YAML file can hold


def _only_config_errors(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except ConfigError as exc:
        assert exc.problems, "a ConfigError without problems"
        for problem in exc.problems:
            text = str(problem)
            assert "\n" not in text, f"a problem spans lines: {text!r}"
            assert "Traceback" not in text


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(TOP_LEVEL_KEYS), _keys), _values, max_size=8))
def test_fuzz_parse_config_random_shapes(config: dict[Any, Any]) -> None:
    _only_config_errors(lambda: parse_config(config, project_root=PROJECT_ROOT))


def _valid_raw() -> dict[str, Any]:
    return config_from_file(stack_file("staging"))


_VALID = _valid_raw()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@FUZZ
@given(st.data())
def test_fuzz_near_schema(data: st.DataObject) -> None:
    """A valid stack with 1-4 subtrees replaced, deleted or given an extra key."""
    config = copy.deepcopy(_VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p in _paths(config) if p]
        path = data.draw(st.sampled_from(paths))
        parent: Any = config
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[path[-1]] = data.draw(_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][data.draw(_keys)] = data.draw(_values)
    _only_config_errors(lambda: parse_config(config, project_root=PROJECT_ROOT))


_yaml_text = st.one_of(
    st.builds(lambda v: yaml.safe_dump({"config": v}), st.dictionaries(st.sampled_from([NS + k for k in TOP_LEVEL_KEYS]), _plain, max_size=6)),
    st.builds(lambda v: yaml.safe_dump(v), _plain),
    st.text(alphabet=st.sampled_from(list("config: k8s-platform:[]{}-&*!|>'\"\n\t #?,.0123456789abc")), max_size=120),
    st.builds(lambda a, b: a + b, st.sampled_from(["config:\n  k8s-platform:environment: ", "config:\n  k8s-platform:mysql: "]), st.text(max_size=40)),
)  # fmt: skip


@FUZZ
@given(_yaml_text)
def test_fuzz_stack_file_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """Raw stack-file text through stacks.files (YAML parsing, secure: markers, namespaces)."""
    path = tmp_path_factory.getbasetemp() / "Pulumi.fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates make it invalid UTF-8, on purpose
    _only_config_errors(lambda: load_spec_file(path, PROJECT_ROOT))

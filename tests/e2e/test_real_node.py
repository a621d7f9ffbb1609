"""Workloads on a real kubelet: they must run, not only be accepted.

`pulumi up` of stacks in existing mode against the `real_node` fixture: a local control
plane whose only schedulable node is real (containerd + runc + CNI + kubelet + kube-proxy on
this machine, tests/e2e/lib/realnode.py), with images built offline from Debian's packages
(tests/e2e/lib/images.py). KWOK's node1 is the tainted control plane, so every pod lands on
the real node. What KWOK cannot show is checked here: HTTP served through the Service from a
pod and through the NodePort from the host, readiness gating a rollout, config changes
reaching new pods, init containers, the seed example's image under the platform's defaults,
and no container left after `pulumi destroy`.
"""

from __future__ import annotations

import datetime as dt
import secrets as pysecrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lib import images
from lib.kube import condition
from lib.realnode import RealNode
from lib.stack import E2EStack
from lib.util import wait_until

from components.webapp_config import ROOT_IMAGE_DOC, ROOT_IMAGE_SECTION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

WEB_1 = f"{images.WEB}:1"
CLIENT_NS = "e2e-client"


def _config(kubeconfig: str, apps: list[dict[str, Any]]) -> dict[str, Any]:
    """Existing mode, no add-ons or charts (their images are not here): the apps alone."""
    return {
        "environment": "dev",
        "cluster": {"mode": "existing", "kubeconfig": kubeconfig, "nodes": [{"name": "node1", "roles": ["control-plane"]}]},
        "schedulableControlPlane": False,
        "addons": {name: {"enabled": False} for name in ("ingress", "storage", "metricsServer", "loadBalancer")},
        "helm": {"releases": []},
        "mysql": {"enabled": False},
        "apps": apps,
    }  # fmt: skip


@pytest.fixture
def real_stack(real_node: RealNode, tmp_path: Path) -> Iterator[Callable[..., E2EStack]]:
    made: list[E2EStack] = []
    cluster = real_node.cluster

    def make(apps: list[dict[str, Any]], secrets: dict[str, str] | None = None) -> E2EStack:
        assert cluster.kubeconfig is not None
        stack = E2EStack.create(tmp_path / f"stack-{len(made)}", _config(str(cluster.kubeconfig), apps), secrets or {})
        stack.diagnose = cluster.not_ready_report
        made.append(stack)
        return stack

    yield make
    for stack in made:
        if stack.has_resources():
            stack.destroy(timeout=600, check=False)
    selector = "app.kubernetes.io/managed-by=k8s-platform"
    for ns in cluster.kube.list("Namespace", selector=selector):
        cluster.kube.delete("Namespace", ns["metadata"]["name"])
    cluster.kube.delete("Namespace", CLIENT_NS)
    # the next test reuses the namespace names: wait until these are really gone
    wait_until(lambda: not cluster.kube.list("Namespace", selector=selector) and not cluster.kube.read("Namespace", CLIENT_NS),
               180, "the tests' namespaces deleted")  # fmt: skip
    wait_until(lambda: not real_node.running_containers(), 120, "no container running on the real node")


# ---------------------------------------------------------------------- helpers
def from_host(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return str(r.read().decode()).strip()


def from_pod(node: RealNode, url: str, timeout: float = 90) -> str:
    """GET `url` with curl from a throwaway pod on the real node; the body, or raise with why."""
    kube = node.cluster.kube
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLIENT_NS}})
    name = f"client-{pysecrets.token_hex(3)}"
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": CLIENT_NS},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "curl",
                        "image": WEB_1,
                        "command": ["curl", "-fsS", "-m", "10", "-o", "/dev/termination-log", url],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": {"runAsUser": 33, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}},
                    }
                ],
            },
        }
    )  # fmt: skip

    def finished() -> dict[str, Any] | None:
        pod = kube.read("Pod", name, CLIENT_NS)
        return pod if pod and pod["status"].get("phase") in ("Succeeded", "Failed") else None

    try:
        pod = wait_until(finished, timeout, f"client pod {name} to finish")
    finally:
        kube.delete("Pod", name, CLIENT_NS)
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    if pod["status"]["phase"] != "Succeeded":
        raise AssertionError(f"curl {url} from a pod failed (exit {state.get('exitCode')}): {state.get('message')}")
    return str(state.get("message", "")).strip()


def app_pods(node: RealNode, namespace: str, app: str) -> list[dict[str, Any]]:
    return [p for p in node.cluster.kube.list("Pod", namespace, selector=f"app.kubernetes.io/name={app}")
            if not p["metadata"].get("deletionTimestamp")]  # fmt: skip


def ready_pods(node: RealNode, namespace: str, app: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in app_pods(node, namespace, app) if condition(p, "Ready") == "True")


def cluster_ip(node: RealNode, namespace: str, name: str) -> str:
    svc = node.cluster.kube.read("Service", name, namespace)
    assert svc is not None, f"Service {namespace}/{name} missing"
    return str(svc["spec"]["clusterIP"])


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------------- tests
def test_an_app_serves_rolls_its_config_and_survives_a_bad_release(
    real_node: RealNode, real_stack: Callable[..., E2EStack], e2e_times: dict[str, float]
) -> None:
    token1, token2 = pysecrets.token_hex(8), pysecrets.token_hex(8)
    node_port = 30480
    app = {
        "name": "web",
        "namespace": "shop",
        "image": WEB_1,
        "replicas": 2,
        "port": 8080,
        "service": {"type": "NodePort", "port": 80, "nodePort": node_port},
        "readiness": {"path": "/healthz", "periodSeconds": 2},
        "rolloutTimeout": 60,
        "config": {"data": {"APP_COLOR": "blue", "greeting.txt": "hello"}, "mountPath": "/etc/web", "env": True},
        "secretEnv": {"APP_TOKEN": "webToken"},
    }
    stack = real_stack([app], {"webToken": token1})
    t0 = time.monotonic()
    stack.up()
    e2e_times["real_node.first_up"] = round(time.monotonic() - t0, 2)

    # the project's defaults (non-root, no capabilities, read-only token off) run for real
    assert len(ready_pods(real_node, "shop", "web")) == 2
    assert all(p["spec"]["nodeName"] == real_node.name for p in app_pods(real_node, "shop", "web"))
    running = real_node.running_containers()
    assert len([c for c in running if c.startswith("shop/web-")]) == 2, running
    assert from_host(node_port) == "v1"  # NodePort from the host (kube-proxy's rules)
    ip = cluster_ip(real_node, "shop", "web")
    assert from_pod(real_node, f"http://{ip}/") == "v1"  # ClusterIP from a pod
    env = from_pod(real_node, f"http://{ip}/env.txt")
    assert "APP_COLOR=blue" in env and f"APP_TOKEN={token1}" in env
    assert from_pod(real_node, f"http://{ip}/config/greeting.txt") == "hello"

    # a config change (ConfigMap data and the secret) rolls the pods; the new ones see it
    before = ready_pods(real_node, "shop", "web")
    stack.update_config({"apps": [{**app, "config": {**app["config"], "data": {"APP_COLOR": "green",  # type: ignore[dict-item]
                                                                                 "greeting.txt": "hello again"}}}]})  # fmt: skip
    stack.set_secret("webToken", token2)
    stack.up()
    after = ready_pods(real_node, "shop", "web")
    assert len(after) == 2 and not set(after) & set(before), (before, after)
    env = from_pod(real_node, f"http://{ip}/env.txt")
    assert "APP_COLOR=green" in env and f"APP_TOKEN={token2}" in env
    assert from_pod(real_node, f"http://{ip}/config/greeting.txt") == "hello again"

    # a release whose readiness probe never passes: `pulumi up` fails with the pods' reason,
    # and the old ReplicaSet keeps serving (maxUnavailable 0)
    stack.update_config({"apps": [{**stack.config()["apps"][0], "image": f"{images.WEB}:unready"}]})
    res = stack.up(check=False)
    assert res.returncode != 0, res
    assert "containers with unready status: [web]" in res.output, res
    # within rolloutTimeout (60 s) plus the program's own start, not the provider's 10 minutes
    assert res.seconds < 60 + 90, res
    assert sorted(ready_pods(real_node, "shop", "web")) == sorted(after)
    assert from_host(node_port) == "v1"
    assert stack.leaks() == []

    stack.destroy()
    wait_until(lambda: not [c for c in real_node.running_containers() if c.startswith("shop/")], 120,
               "the app's containers to stop after pulumi destroy")  # fmt: skip


def test_init_containers_run_first_and_a_failing_one_blocks_the_rollout(
    real_node: RealNode, real_stack: Callable[..., E2EStack]
) -> None:
    app = {
        "name": "api",
        "namespace": "shop",
        "image": WEB_1,
        "port": 8080,
        "readiness": {"path": "/healthz", "periodSeconds": 2},
        "rolloutTimeout": 45,
        "initContainers": [{"name": "migrate", "command": ["/bin/sh", "-c", "echo schema v1 applied; sleep 2"]}],
    }
    stack = real_stack([app])
    stack.up()
    (pod,) = app_pods(real_node, "shop", "api")
    init = pod["status"]["initContainerStatuses"][0]
    assert init["name"] == "migrate" and init["state"]["terminated"]["reason"] == "Completed", init
    assert init["state"]["terminated"]["exitCode"] == 0
    started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert _ts(init["state"]["terminated"]["finishedAt"]) <= _ts(started), (init, started)
    # the init container ran with the app's restrictions
    assert pod["spec"]["initContainers"][0]["securityContext"]["runAsNonRoot"] is True
    serving = ready_pods(real_node, "shop", "api")

    failing = {"name": "migrate", "command": ["/bin/sh", "-c", "echo 'schema v2: column exists' >&2; exit 3"]}
    stack.update_config({"apps": [{**app, "initContainers": [failing]}]})
    res = stack.up(check=False)
    assert res.returncode != 0, res
    assert "migrate" in res.output, res
    new = [p for p in app_pods(real_node, "shop", "api") if p["metadata"]["name"] not in serving]
    assert new, "the rollout made no new pod"
    statuses = new[0]["status"].get("initContainerStatuses") or []
    last = statuses[0].get("lastState", {}).get("terminated") or statuses[0].get("state", {}).get("terminated") or {}
    assert last.get("exitCode") == 3, statuses
    assert ready_pods(real_node, "shop", "api") == serving  # the old pod still serves


def test_the_seed_example_warns_before_anything_is_created_and_its_fix_runs(
    real_node: RealNode, real_stack: Callable[..., E2EStack]
) -> None:
    # DESIGN's example as written: the official nginx image (here a local stand-in with the
    # same traits: root, port 80), no securityContext settings
    seed = {"name": "my-nginx", "namespace": "web", "image": "nginx:1.27", "replicas": 2, "port": 80,
            "service": {"type": "ClusterIP", "port": 80}, "rolloutTimeout": 45}  # fmt: skip
    stack = real_stack([seed])
    validated = stack.stacks("validate", stack.name)
    assert validated.returncode == 0, validated.stderr
    assert "apps[0].image: 'nginx:1.27' is a Docker Official Image" in validated.stderr, validated.stderr
    # one line that names the docs with the fixes (nginxinc/nginx-unprivileged, runAsUser)
    assert f'({ROOT_IMAGE_DOC}, "{ROOT_IMAGE_SECTION}")' in validated.stderr, validated.stderr
    preview = stack.preview()
    assert "is a Docker Official Image" in preview.output, preview
    res = stack.up(check=False)
    assert res.returncode != 0, res
    assert "runAsNonRoot" in res.output and "will run as root" in res.output, res

    # the fix the warning gives: an image built to run unprivileged; it keeps port 80 (the
    # platform lets a non-root process bind it, with no capability)
    fixed = {**seed, "image": WEB_1, "env": {"WEB_LISTEN": "80"}}
    stack.update_config({"apps": [fixed]})
    validated = stack.stacks("validate", stack.name)
    assert "Docker Official Image" not in validated.stderr, validated.stderr
    stack.up()
    assert len(ready_pods(real_node, "web", "my-nginx")) == 2
    assert from_pod(real_node, f"http://{cluster_ip(real_node, 'web', 'my-nginx')}/") == "v1"

"""kubespray installs a real Kubernetes cluster on real machines, through `pulumi up`.

The machines are systemd-nspawn containers booting Debian with systemd, sshd, python3 and
sudo on a bridge of the test's own (tests/e2e/lib/machines.py); they reach nothing but the
site's mirror and proxy on that bridge (tests/e2e/lib/mirror.py): kubespray's files and
every image it pulls, self-built from the Go module proxy, and an HTTP proxy that forwards
only to the Debian mirror for the packages kubespray installs. The control host is the
loopback sshd; kubespray v2.31.0's tree is unchanged — all of its roles run for real.

The scenarios share one stack and run in order (each starts from where the last one left
the cluster), recording which playbooks ran and their wall time:
full `up` from nothing → no-op preview and `up` → a machine killed during `cluster.yml` (the
`up` fails naming it; the etcd snapshot taken before is real; the next `up` converges) → add
a worker (`scale.yml`) → remove it (`remove-node.yml`) → `destroy` with `resetOnDestroy:
true` (`reset.yml`).
"""

from __future__ import annotations

import json
import re
import secrets as pysecrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lib import engine, mirror
from lib.realcluster import APP_IMAGE, RealSite, leftovers
from lib.sshd import ControlHost
from lib.stack import E2EStack
from lib.util import REPO_ROOT, wait_until

from stacks.config import parse_config
from stacks.mirror_list import MirrorList, full_image, mirror_list
from tests.support import kubespray_tree
from tests.support.kubespray_tree import ensure_wheelhouse

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NODE_PORT = 30080
CONTROL_PLANE = {"name": "node1", "roles": ["control-plane", "etcd", "worker"]}
WORKER = {"name": "node2", "roles": ["worker"]}
ADDED = {"name": "node3", "roles": ["worker"]}
TIMES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def real_site(e2e_dir: Path) -> Iterator[RealSite]:
    site = RealSite(e2e_dir / "real-site")
    try:
        t0 = time.monotonic()
        site.start()
        for spec in (CONTROL_PLANE, WORKER):
            site.machine(spec["name"])
        TIMES["site setup (s)"] = round(time.monotonic() - t0, 1)
        yield site
    finally:
        out = site.stop()
        print(f"\nreal site stopped: {out}")
        print("real machines, playbooks and wall times: " + json.dumps(TIMES, indent=1))
        (e2e_dir / "real-machines-times.json").write_text(json.dumps(TIMES, indent=1))


@pytest.fixture(scope="module")
def real_control_host(e2e_dir: Path) -> Iterator[ControlHost]:
    wheelhouse = ensure_wheelhouse(REPO_ROOT / "components" / "kubespray_releases" / "v2.31.0.requirements.txt")
    host = ControlHost(e2e_dir / "real-control-host",
                       env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})  # fmt: skip
    host.start()
    yield host
    host.stop()


def node_spec(site: RealSite, spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "address": site.machines[spec["name"]].address}


def config(site: RealSite, ch: ControlHost, workdir: Path, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    assert site.site is not None
    return {
        "environment": "dev",
        "cluster": {
            "mode": "kubespray",
            "kubespray": {"version": "v2.31.0", "source": site.kubespray_source, "workdir": str(workdir),
                          "commit": site.kubespray_commit},
            "controlHost": {"host": "127.0.0.1", "port": ch.port, "user": ch.user, "hostKey": ch.host_public_key},
            "containerManager": "containerd",
            "resetOnDestroy": True,
            **site.cluster_settings([node_spec(site, n) for n in nodes]),
        },
        "schedulableControlPlane": True,
        # the add-ons' and charts' images are not on this site: the cluster and an app
        "addons": {name: {"enabled": False} for name in ("ingress", "storage", "metricsServer", "loadBalancer")},
        "helm": {"releases": []},
        "mysql": {"enabled": False},
        "apps": [{
            "name": "web", "namespace": "web", "image": f"{site.site.registry}/{APP_IMAGE}:1", "replicas": 2,
            "port": 8080, "service": {"type": "NodePort", "port": 80, "nodePort": NODE_PORT},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
            "rolloutTimeout": 300,
        }],
    }  # fmt: skip


@pytest.fixture(scope="module")
def real_stack(real_site: RealSite, real_control_host: ControlHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    base = tmp_path_factory.mktemp("real-stack")
    workdir = base / "kubespray-workdir"
    stack = E2EStack.create(
        base / "stack", config(real_site, real_control_host, workdir, [CONTROL_PLANE, WORKER]),
        {"sshPrivateKey": real_control_host.private_key}, name="real",
    )  # fmt: skip
    stack.workdir = workdir  # type: ignore[attr-defined]
    yield stack
    if stack.has_resources():
        res = stack.destroy(timeout=1200, check=False)
        print(f"\nteardown destroy of the real stack: exit {res.returncode}")


# ---------------------------------------------------------------------- helpers
def playbook_logs(stack: E2EStack) -> list[Path]:
    logs = stack.workdir / "logs"  # type: ignore[attr-defined]
    return sorted(logs.glob("*-2*.log"), key=lambda p: p.stat().st_mtime) if logs.exists() else []


def runs_since(stack: E2EStack, before: list[Path]) -> list[tuple[str, float]]:
    """(label, wall seconds) of each playbook the program ran since `before`, from its logs on the
    control host (kubespray's ansible.cfg times every task: the last stamp is the playbook's total)."""
    out = []
    for log in playbook_logs(stack):
        if log in before:
            continue
        label = re.sub(r"-\d{8}T\d{6}Z\.log$", "", log.name)
        totals = re.findall(r"\)\s+(\d+):(\d\d):(\d\d)\.\d+ \*+\s*$", log.read_text(errors="replace"), re.M)
        h, mi, sec = map(int, totals[-1]) if totals else (0, 0, 0)
        out.append((label, float(h * 3600 + mi * 60 + sec)))
    return out


def timed(stack: E2EStack, what: str, step: Any, timeout: float) -> tuple[Any, list[tuple[str, float]]]:
    """Run `step` (stack.up, stack.destroy), recording its wall time and the playbooks it ran."""
    before = playbook_logs(stack)
    t0 = time.monotonic()
    res = step(timeout=timeout)
    TIMES[f"{what} (s)"] = round(time.monotonic() - t0, 1)
    TIMES[f"{what}: playbooks"] = runs = runs_since(stack, before)
    return res, runs


def kubectl(stack: E2EStack, *args: str, timeout: float = 60) -> str:
    kubeconfig = stack.dir / "real-kubeconfig"
    if not kubeconfig.exists():
        kubeconfig.write_text(stack.outputs(show_secrets=True)["kubeconfig"])
        kubeconfig.chmod(0o600)
    cp = subprocess.run([engine.binary("kubectl"), "--kubeconfig", str(kubeconfig), *args], capture_output=True,
                        text=True, timeout=timeout)  # fmt: skip
    if cp.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {cp.stderr.strip()}")
    return cp.stdout


def nodes(stack: E2EStack) -> dict[str, dict[str, Any]]:
    doc = json.loads(kubectl(stack, "get", "nodes", "-o", "json"))
    return {n["metadata"]["name"]: n for n in doc["items"]}


def ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:  # the bridge: no proxy in between
        return str(r.read().decode())


def from_pod(site: RealSite, stack: E2EStack, url: str, timeout: float = 180, node: str | None = None) -> str:
    """GET `url` with curl from a throwaway pod (bound to `node` when given); the body (its
    termination message), or raise with the pod's description and events."""
    assert site.site is not None
    name = f"client-{pysecrets.token_hex(3)}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                    "containers": [{"name": "curl", "image": f"{site.site.registry}/{APP_IMAGE}:1",
                                    "command": ["curl", "-fsS", "-m", "10", "-o", "/dev/termination-log", url],
                                    "terminationMessagePolicy": "FallbackToLogsOnError"}]}}  # fmt: skip
    if node is not None:
        pod["spec"]["nodeName"] = node
    manifest = stack.dir / f"{name}.json"
    manifest.write_text(json.dumps(pod))
    kubectl(stack, "apply", "-f", str(manifest))

    def finished() -> dict[str, Any] | None:
        doc = json.loads(kubectl(stack, "get", "pod", name, "-n", "default", "-o", "json"))
        return doc if doc["status"].get("phase") in ("Succeeded", "Failed") else None

    try:
        doc = wait_until(finished, timeout, f"client pod {name} to finish",
                         on_timeout=lambda: describe(stack, "pod", name, "-n", "default"))  # fmt: skip
    finally:
        kubectl(stack, "delete", "pod", name, "-n", "default", "--wait=false")
    state = doc["status"]["containerStatuses"][0]["state"]["terminated"]
    if doc["status"]["phase"] != "Succeeded":
        raise AssertionError(f"curl {url} from a pod failed (exit {state.get('exitCode')}): {state.get('message')}")
    return str(state.get("message", ""))


def describe(stack: E2EStack, *what: str) -> str:
    """`kubectl describe` of `what` for a timeout message (never raises)."""
    try:
        return kubectl(stack, "describe", *what)
    except Exception as exc:  # the diagnosis must not hide the timeout
        return f"kubectl describe {' '.join(what)}: {exc}"


def node_image_refs(site: RealSite, machine: str) -> set[str]:
    """Every image containerd holds on `machine`, by its full name and tag."""
    doc = json.loads(site.ssh(machine, "sudo /usr/local/bin/crictl images -o json").stdout)
    return {full_image(ref) for image in doc["images"] for ref in image.get("repoTags") or []}


def stack_mirror_list(stack: E2EStack) -> MirrorList:
    """`mirror-list` of the stack as configured, with kubespray's tree and its ansible."""
    spec = parse_config(stack.config(), project_root=REPO_ROOT, secrets_required=False)
    tree = Path(spec.cluster.kubespray.source)  # type: ignore[union-attr]  # the unchanged tree, a git work tree
    ansible = kubespray_tree.ansible_venv(tree / "requirements.txt") / "ansible-playbook"
    return mirror_list(spec, REPO_ROOT, kubespray_dir=tree, ansible_playbook=str(ansible))


def node_images(site: RealSite, machine: str) -> set[str]:
    """The repositories of every image containerd holds on `machine`, as the mirror serves them
    (an upstream name as it is; the site registry's own images without the registry's address)."""
    assert site.site is not None
    doc = json.loads(site.ssh(machine, "sudo /usr/local/bin/crictl images -o json").stdout)
    out = set()
    for image in doc["images"]:
        for ref in image.get("repoTags") or [d.split("@")[0] + ":" for d in image.get("repoDigests") or []]:
            repo = ref.rsplit(":", 1)[0]
            out.add(repo.removeprefix(f"{site.site.registry}/"))
    return out


def unit_active(site: RealSite, machine: str, unit: str) -> bool:
    return site.ssh(machine, f"systemctl is-active {unit}", check=False).stdout.strip() == "active"


# ---------------------------------------------------------------------- scenarios
def test_full_up_installs_a_real_cluster_from_the_mirror(real_site: RealSite, real_stack: E2EStack) -> None:
    # the site mirrors exactly what the stack's mirror-list says it needs: a download kubespray
    # adds, or one the site holds for nothing, fails here before anything is installed
    assert real_site.site is not None
    listed = stack_mirror_list(real_stack)
    site_files, site_images = mirror.content_names()
    app = f"{real_site.site.registry}/{APP_IMAGE}:1"
    assert {i.fetched_from for i in listed.of("file")} == {f"{real_site.site.files_repo}/{p}" for p in site_files}
    assert {i.upstream for i in listed.of("image")} == site_images | {app}, listed.as_text()

    res, runs = timed(real_stack, "full up", real_stack.up, 2700)
    # the program's registry-mirrors step first (cluster.registryMirrors), then kubespray's cluster.yml
    assert [label for label, _ in runs] == ["registry-mirrors", "cluster"], f"{runs}\n{res}"

    # every node Ready, with kubespray's kubelet/containerd (and etcd on node1) as systemd units
    got = nodes(real_stack)
    assert set(got) == {"node1", "node2"} and all(ready(n) for n in got.values()), json.dumps(
        {k: v["status"].get("conditions") for k, v in got.items()})
    for machine in ("node1", "node2"):
        for unit in ("kubelet", "containerd"):
            assert unit_active(real_site, machine, unit), f"{unit} is not active on {machine}"
    assert unit_active(real_site, "node1", "etcd")
    assert got["node1"]["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.4"
    # CoreDNS and the CNI (flannel) running
    pods = json.loads(kubectl(real_stack, "get", "pods", "-n", "kube-system", "-o", "json"))["items"]
    running = sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")
    for prefix in ("coredns-", "kube-flannel-", "kube-proxy-", "kube-apiserver-node1", "nginx-proxy-node2"):
        assert any(name.startswith(prefix) for name in running), (prefix, running)
    # the app serves through its NodePort on every node, from this machine
    for machine in ("node1", "node2"):
        body = wait_until(lambda m=machine: http_get(f"http://{real_site.machines[m].address}:{NODE_PORT}/"), 120,
                          f"the app through the NodePort on {machine}")  # fmt: skip
        assert "v1" in body
    # ... and through its Service's DNS name from a pod (CoreDNS + the Service + the CNI across nodes)
    assert "v1" in from_pod(real_site, real_stack, "http://web.web.svc.cluster.local/")
    # every image on every node came through the site's registry (cluster.registryMirrors: the
    # nodes pulled upstream names, containerd fetched them from the mirror)
    pulled = {p.split(":", 1)[0] for p in real_site.site.registry_pulls()}  # type: ignore[union-attr]
    assert "registry.k8s.io/kube-apiserver" in pulled and APP_IMAGE in pulled, pulled
    for machine in ("node1", "node2"):
        on_node = node_images(real_site, machine)
        assert on_node and on_node <= pulled, (machine, sorted(on_node - pulled), sorted(pulled))
    # ... and every image and file the nodes fetched is on the stack's mirror-list (kubespray's own
    # download table for this inventory, the program's objects): a download missing from the
    # list fails here
    listed = stack_mirror_list(real_stack)
    images = {i.upstream for i in listed.of("image")}
    for machine in ("node1", "node2"):
        refs = node_image_refs(real_site, machine)
        assert refs and refs <= images, (machine, sorted(refs - images), sorted(images))
    files = {i.fetched_from for i in listed.of("file")}
    fetched = {real_site.site.files_repo + path for path in real_site.site.files_fetched()}  # type: ignore[union-attr]
    assert fetched and fetched <= files, (sorted(fetched - files), sorted(files))


def test_no_op_preview_and_up_run_no_playbook(real_stack: E2EStack) -> None:
    before = playbook_logs(real_stack)
    t0 = time.monotonic()
    real_stack.preview(600, True, "--expect-no-changes")
    res = real_stack.up(timeout=900)
    TIMES["no-op preview + up (s)"] = round(time.monotonic() - t0, 1)
    assert runs_since(real_stack, before) == [], res
    assert "plan: no playbook runs" in res.output


def test_a_machine_dying_mid_cluster_yml_fails_the_up_and_the_next_up_converges(
    real_site: RealSite, real_stack: E2EStack
) -> None:
    # a group_vars change: cluster.yml runs again on the running cluster, after an etcd snapshot
    cfg = real_stack.config()
    cfg["cluster"]["extraVars"]["kube_log_level"] = 2
    real_stack.write_config(cfg)
    before = playbook_logs(real_stack)
    proc = real_stack.spawn("up", "--yes", "--skip-preview", log=real_stack.dir / "up-killed.log")

    def cluster_yml_at_node2() -> bool:
        logs = [p for p in playbook_logs(real_stack) if p not in before and p.name.startswith("cluster-")]
        return bool(logs) and "TASK [kubernetes/preinstall" in logs[-1].read_text(errors="replace")

    wait_until(cluster_yml_at_node2, 600, "cluster.yml to reach kubernetes/preinstall")
    real_site.machines["node2"].kill()
    t0 = time.monotonic()
    try:
        proc.wait(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (real_stack.dir / "up-killed.log").read_text(errors="replace")
    TIMES["up with node2 killed: fails after (s)"] = round(time.monotonic() - t0, 1)
    TIMES["up with node2 killed: playbooks"] = runs_since(real_stack, before)
    assert proc.returncode != 0, out[-3000:]
    # the playbook's tail names the host that went away
    assert "cluster failed" in out and re.search(r"node2\s+:.*unreachable=[1-9]|\[node2\]: UNREACHABLE", out), out[-3000:]
    # a real snapshot of the real member, taken before cluster.yml touched the running cluster
    snaps = real_site.ssh("node1", "sudo sh -c 'ls -1t /var/backups/k8s-platform-etcd/before-changes/*.db'").stdout.split()
    assert snaps, "no etcd snapshot before the change"
    status = json.loads(real_site.ssh("node1", f"sudo /usr/local/bin/etcdutl snapshot status {snaps[0]} -w json").stdout)
    assert status["totalKey"] > 0, status

    real_site.machine("node2")  # the machine is back, its disk as it was
    res, runs = timed(real_stack, "up after node2 is back", real_stack.up, 2400)
    assert [label for label, _ in runs][-1] == "cluster", (runs, res)
    wait_until(lambda: all(ready(n) for n in nodes(real_stack).values()), 300, "every node Ready again")
    body = wait_until(lambda: http_get(f"http://{real_site.machines['node2'].address}:{NODE_PORT}/"), 180,
                      "the app through node2's NodePort again")  # fmt: skip
    assert "v1" in body


def test_a_worker_joins_with_scale_and_leaves_with_remove_node(real_site: RealSite, real_stack: E2EStack) -> None:
    real_site.machine("node3")
    cfg = real_stack.config()
    cfg["cluster"]["nodes"].append(node_spec(real_site, ADDED))
    real_stack.write_config(cfg)
    res, runs = timed(real_stack, "add node3", real_stack.up, 1800)
    # kubespray's documented --limit: facts of every node first, then scale.yml for node3 only
    # (the registry-mirrors step again first: the member list changed)
    assert [label for label, _ in runs] == ["registry-mirrors", "facts", "scale-node3"], (runs, res)
    assert ready(nodes(real_stack)["node3"])
    # a pod runs on the new node: its image pulled through the mirror there, and it reaches the
    # app's Service by DNS across the CNI (the scheduler is not asked to pick node3: which node it
    # picks for a scaled Deployment is its own business)
    assert "v1" in from_pod(real_site, real_stack, "http://web.web.svc.cluster.local/", node="node3")
    kubectl(real_stack, "scale", "deployment/web", "-n", "web", "--replicas=6")
    wait_until(lambda: [p["status"].get("phase") for p in
                        json.loads(kubectl(real_stack, "get", "pods", "-n", "web", "-o", "json"))["items"]] == ["Running"] * 6,
               180, "the app's 6 pods running", on_timeout=lambda: describe(real_stack, "pods", "-n", "web"))  # fmt: skip

    cfg["cluster"]["nodes"] = [n for n in cfg["cluster"]["nodes"] if n["name"] != "node3"]
    real_stack.write_config(cfg)
    res, runs = timed(real_stack, "remove node3", real_stack.up, 1800)
    assert [label for label, _ in runs] == ["registry-mirrors", "remove-node-node3"], (runs, res)
    assert "node3" not in nodes(real_stack)
    # drained: the app's pods moved to the other nodes (the DaemonSets' pods of the deleted node
    # go with the pod garbage collector's next pass); reset: nothing of Kubernetes left on it
    def app_moved() -> bool:
        pods = json.loads(kubectl(real_stack, "get", "pods", "-n", "web", "-o", "json"))["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return len(running) == 6 and all(p["spec"].get("nodeName") != "node3" for p in pods)

    wait_until(app_moved, 180, "the app's 6 pods running on node1 and node2")
    wait_until(lambda: "node3" not in kubectl(real_stack, "get", "pods", "-A", "-o", "wide"), 180,
               "no pod left bound to node3")  # fmt: skip
    left = [line for line in leftovers(real_site) if line.startswith("node3:")]
    assert left == [], left


def test_destroy_with_reset_leaves_every_machine_clean(real_site: RealSite, real_stack: E2EStack) -> None:
    res, runs = timed(real_stack, "destroy", real_stack.destroy, 1800)
    assert [label for label, _ in runs] == ["reset"], (runs, res)
    assert leftovers(real_site) == []
    for machine in real_site.machines:
        assert not unit_active(real_site, machine, "kubelet")

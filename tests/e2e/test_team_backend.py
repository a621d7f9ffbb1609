"""A team's shared state: the real Pulumi engine on a real S3 server (SeaweedFS on loopback).

What a platform team relies on when several people and CI jobs share stacks:
- the whole workflow (up, no-op up, `stacks rollback` from the update history, drift,
  destroy) works unchanged on `PULUMI_BACKEND_URL=s3://…`, and no secret reaches an object;
- a second `pulumi up` of a stack while one runs is refused with Pulumi's lock message and
  changes nothing, and the first completes;
- a killed `pulumi up` leaves its lock; `pulumi cancel` and `pulumi refresh
  --clear-pending-creates` (docs/environments.md, "Working as a team") get the team going,
  and the next `up` converges;
- `stacks recover` after a killed `up` whose Helm install found its name taken by a release
  installed by hand before the run: that release, its revision and its claim stay untouched;
- a deployed stack moves from the file backend to S3 (`pulumi stack export` / `stack init`
  / `stack import`) and a no-op `preview --expect-no-changes` passes after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lib.chartrepo import ChartRepo
from lib.cluster import LocalCluster
from lib.objectstore import ObjectStore
from lib.stack import E2EStack
from lib.util import TOOLS_BIN, run, tail, wait_until

from stacks.recover import HELM_RELEASE, pending_operations

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

APP_NS, APP = "web", "my-nginx"
# no MySQL, no Helm release: what is under test is the backend, not the workloads
LEAN = {"mysql": {"enabled": False}, "helm": {"releases": []}}
PROJECT = "k8s-platform"
# the stack's own Helm release (lib/stack.py's platform config), and the repository it names
GRAFANA_NS, GRAFANA, GRAFANA_UPSTREAM = "monitoring", "grafana", "https://grafana.github.io/helm-charts"


def lock_keys(store: ObjectStore, prefix: str, stack: E2EStack) -> list[str]:
    return store.keys(f"{prefix}/.pulumi/locks/organization/{PROJECT}/{stack.name}")


def updates(stack: E2EStack) -> list[dict[str, Any]]:
    out = stack.run("stack", "history", "--json", "--show-secrets=false", timeout=60).stdout
    return list(json.loads(out or "[]"))


def up_holding_the_lock(
    stack_factory: Any, store: ObjectStore, prefix: str, log: Path
) -> tuple[E2EStack, subprocess.Popen[bytes], list[str]]:
    """A stack on S3 under `prefix` whose `pulumi up` runs in the background and holds its lock."""
    stack = stack_factory("existing", LEAN, backend=store.backend(prefix))
    proc = stack.spawn("up", "--yes", "--skip-preview", log=log)
    try:
        held = wait_until(lambda: lock_keys(store, prefix, stack), 120, f"the lock of {prefix}'s update in S3",
                          interval=0.2, on_timeout=lambda: tail(log))  # fmt: skip
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        raise
    return stack, proc, held


class HoldingMirror:
    """A chart repository mirror on loopback in front of `upstream` that answers like it until
    `chart`'s archive has been served once, then holds every request until `open()`.

    The kubernetes provider loads a release's chart twice: in Check, and in Create, after
    the engine has recorded the pending create in the state and before Helm installs. A
    request held there keeps that create pending for as long as the test needs."""

    def __init__(self, upstream: str, chart: str) -> None:
        self.upstream, self.chart = upstream.rstrip("/"), chart
        self.served, self.holding, self.opened = threading.Event(), threading.Event(), threading.Event()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if mirror.served.is_set() and not mirror.opened.is_set():
                    mirror.holding.set()
                    mirror.opened.wait(900)
                try:
                    with urllib.request.urlopen(mirror.upstream + self.path, timeout=30) as res:
                        body = res.read()
                    if self.path.endswith("/index.yaml"):  # its chart URLs are absolute: point them here
                        body = body.replace(mirror.upstream.encode(), mirror.url.encode())
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client was killed while held
                name = self.path.rsplit("/", 1)[-1]
                if name.startswith(f"{mirror.chart}-") and name.endswith(".tgz"):
                    mirror.served.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="holding-mirror", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> HoldingMirror:
        self.thread.start()
        return self

    def open(self) -> None:
        self.opened.set()

    def stop(self) -> None:
        self.open()
        self.server.shutdown()
        self.server.server_close()


def helm_history(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    res = run([str(TOOLS_BIN / "helm"), "--kubeconfig", str(cluster.kubeconfig), "history", name,
               "--namespace", namespace, "-o", "json"], 60, check=False)  # fmt: skip
    return list(json.loads(res.stdout)) if res.returncode == 0 else []


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise AssertionError(f"pulumi did not finish in {timeout}s:\n{tail(log, 60)}") from None


def test_team_workflow_on_s3(stack_factory: Any, local_cluster: Any, object_store: ObjectStore) -> None:
    stack = stack_factory("existing", LEAN, backend=object_store.backend("workflow"))

    stack.up()
    keys = object_store.keys("workflow")
    assert f"workflow/.pulumi/stacks/{PROJECT}/{stack.name}.json" in keys, keys
    assert any(k.startswith(f"workflow/.pulumi/history/{PROJECT}/{stack.name}/") for k in keys), keys
    assert lock_keys(object_store, "workflow", stack) == [], "the lock is released after the update"

    # a no-op stays a no-op on the shared backend
    stack.preview(600, True, "--expect-no-changes")
    assert "unchanged" in stack.up().stdout

    # rollback reads the update history from S3
    cfg = stack.config()
    cfg["apps"][0]["image"] = "nginxinc/nginx-unprivileged:1.27.4"
    stack.write_config(cfg)
    stack.up()
    listed = stack.stacks("rollback", stack.name, "--list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "v3" in listed.stdout and "v1" in listed.stdout, listed.stdout
    back = stack.stacks("rollback", stack.name, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    image = local_cluster.get("deployment", APP, "-n", APP_NS)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nginxinc/nginx-unprivileged:1.27.5"
    stack.preview(600, True, "--expect-no-changes")

    # drift detection refreshes against the cluster and compares with S3's state
    clean = stack.stacks("drift", stack.name)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    local_cluster.kubectl("scale", "deployment", APP, "-n", APP_NS, "--replicas=5")
    drifted = stack.stacks("drift", stack.name)
    assert drifted.returncode == 1 and APP in drifted.stdout + drifted.stderr, drifted.stdout + drifted.stderr

    stack.destroy()
    assert not stack.has_resources()
    # every object the backend holds, and every line pulumi printed: no secret, and the
    # backend's own credentials never appear either (they live in the environment only)
    assert stack.leaks({"backend secret key": object_store.secret_key}) == [], (
        "secret plaintext in output or in an S3 object"
    )


def test_second_update_is_refused_while_the_first_runs(
    stack_factory: Any, local_cluster: Any, object_store: ObjectStore, tmp_path: Path
) -> None:
    log = tmp_path / "first-up.log"
    stack, first, held = up_holding_the_lock(stack_factory, object_store, "lock", log)
    try:
        assert len(held) == 1
        second = stack.up(600, False)
        assert second.returncode != 0, second.output[-3000:]
        assert "the stack is currently locked by 1 lock(s)" in second.output, second.output[-3000:]
        assert "pulumi cancel" in second.output, "Pulumi's message names the way out"
        assert f"pid {first.pid}" in second.output, "the lock names the update that holds it"
    finally:
        code = finish(first, log, 900)
    assert code == 0, tail(log, 80)
    assert lock_keys(object_store, "lock", stack) == []
    # one update ran: the refused one left no trace in the history
    assert [u["kind"] for u in updates(stack)] == ["update"]
    assert local_cluster.get("deployment", APP, "-n", APP_NS)["status"].get("readyReplicas") == 2
    stack.preview(600, True, "--expect-no-changes")


def test_killed_update_leaves_a_lock_that_the_documented_recovery_clears(
    stack_factory: Any, local_cluster: Any, object_store: ObjectStore, tmp_path: Path
) -> None:
    log = tmp_path / "killed-up.log"
    stack, doomed, _ = up_holding_the_lock(stack_factory, object_store, "crash", log)
    try:
        # mid-update: the lock is held and Helm is installing the add-ons (the hardest moment:
        # a half-installed release blocks its name until someone settles it)
        wait_until(lambda: local_cluster.get("secrets", "-A", "-l", "owner=helm")["items"], 300,
                   "a Helm release being installed by the update", interval=0.2, on_timeout=lambda: tail(log))  # fmt: skip
    finally:
        # like a CI runner that dies: the CLI and its plugins go at once, nothing cleans up
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(30)

    stale = lock_keys(object_store, "crash", stack)
    assert len(stale) == 1, "a killed update leaves its lock behind"
    refused = stack.up(600, False)
    assert refused.returncode != 0 and "currently locked" in refused.output, refused.output[-3000:]

    # the recovery in docs/environments.md
    recovered = stack.stacks("recover", stack.name, "--yes")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "the lock of stack e2e is cleared" in recovered.stdout
    # the kill came while Helm installed the add-ons: recover settled at least one release
    assert "from the interrupted install" in recovered.stdout, recovered.stdout
    assert lock_keys(object_store, "crash", stack) == []
    stack.up()
    assert local_cluster.get("deployment", APP, "-n", APP_NS)["status"].get("readyReplicas") == 2
    stack.preview(600, True, "--expect-no-changes")
    assert stack.leaks({"backend secret key": object_store.secret_key}) == []


def test_recover_leaves_alone_a_release_that_existed_before_the_killed_update(
    stack_factory: Any, local_cluster: LocalCluster, object_store: ObjectStore, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    helm = [str(TOOLS_BIN / "helm"), "--kubeconfig", str(local_cluster.kubeconfig)]
    # Someone else's grafana, with a claim, in the namespace and under the name of the stack's
    # own release, installed by hand before the run: the run's install would fail on the name
    run([*helm, "install", GRAFANA, GRAFANA, "--repo", chart_repo.url, "--version", chart_repo.version("grafana"),
         "--namespace", GRAFANA_NS, "--create-namespace", "--set", "persistence.enabled=true",
         "--set", "persistence.storageClassName=hand-made"], 120)  # fmt: skip
    theirs = helm_history(local_cluster, GRAFANA_NS, GRAFANA)
    assert [(r["revision"], r["status"]) for r in theirs] == [(1, "deployed")], theirs
    claims = sorted(c["metadata"]["name"] for c in local_cluster.get("pvc", "-n", GRAFANA_NS)["items"])
    assert claims, "the hand-made release has a claim"
    mirror = HoldingMirror(chart_repo.url, GRAFANA).start()
    log = tmp_path / "killed-up.log"
    try:
        stack = stack_factory("existing", {"mysql": {"enabled": False}, "helm": {"repoMirrors": {GRAFANA_UPSTREAM: mirror.url}}},
                              backend=object_store.backend("preexisting"))  # fmt: skip
        doomed = stack.spawn("up", "--yes", "--skip-preview", log=log)
        try:
            # the run's create of grafana is recorded and its chart download held: the moment
            # before Helm would have refused the name
            wait_until(lambda: mirror.holding.is_set() or doomed.poll() is not None, 600,
                       "the update's install of grafana, held at its chart download", on_timeout=lambda: tail(log))  # fmt: skip
            assert doomed.poll() is None, f"the update ended before its grafana install began:\n{tail(log, 60)}"

            def grafana_pending() -> bool:
                ops = pending_operations(stack.run("stack", "export", timeout=60).stdout)
                return any(op.type == HELM_RELEASE and op.operation == "creating" and op.name == GRAFANA for op in ops)

            wait_until(grafana_pending, 60, "grafana's pending create in the state", interval=1)
        finally:
            # like a CI runner that dies: the CLI and its plugins go at once, nothing cleans up
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait(30)
            mirror.open()
        assert len(lock_keys(object_store, "preexisting", stack)) == 1, "a killed update leaves its lock behind"

        # without --yes and without a terminal: refused after reading (the lock's time too), and
        # nothing changed, the lock neither
        asked = subprocess.run([sys.executable, "-m", "stacks", "--root", str(stack.dir), "recover", stack.name],
                               cwd=stack.dir, env=stack.env(), stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert asked.returncode == 1 and "run with --yes" in asked.stderr, asked.stdout + asked.stderr
        assert len(lock_keys(object_store, "preexisting", stack)) == 1

        recovered = stack.stacks("recover", stack.name, "--yes")
        out = recovered.stdout + recovered.stderr
        assert recovered.returncode == 0, out
        assert "the lock of stack e2e is cleared" in recovered.stdout
        left_alone = f"left alone: Helm release {GRAFANA_NS}/{GRAFANA} (deployed) existed before the interrupted run"
        assert left_alone in out, out
        # (the run's own installs it interrupted, if any, are still undone; grafana is not one)
        assert f"{GRAFANA_NS}/{GRAFANA} is deployed from the interrupted install" not in out, out
        assert lock_keys(object_store, "preexisting", stack) == []
        # their release is as it was: same single revision, same time, and its claim
        assert helm_history(local_cluster, GRAFANA_NS, GRAFANA) == theirs
        assert sorted(c["metadata"]["name"] for c in local_cluster.get("pvc", "-n", GRAFANA_NS)["items"]) == claims
        assert "settle the Helm releases left alone above" in recovered.stdout

        # its owner takes it away (recover's advice); then the stack installs its own
        run([*helm, "uninstall", GRAFANA, "--namespace", GRAFANA_NS, "--wait"], 300)
        wait_until(lambda: not local_cluster.get("pvc", "-n", GRAFANA_NS)["items"], 120, "the hand-made claim gone")
        stack.up()
        ours = helm_history(local_cluster, GRAFANA_NS, GRAFANA)
        assert [r["revision"] for r in ours] == [1] and ours[0]["updated"] != theirs[0]["updated"], ours
        stack.preview(600, True, "--expect-no-changes")
        assert stack.leaks({"backend secret key": object_store.secret_key}) == []
    finally:
        mirror.stop()
        if helm_history(local_cluster, GRAFANA_NS, GRAFANA)[:1] == theirs[:1]:
            run([*helm, "uninstall", GRAFANA, "--namespace", GRAFANA_NS, "--wait"], 300, check=False)


def test_migrate_a_deployed_stack_from_the_file_backend_to_s3(
    stack_factory: Any, object_store: ObjectStore, tmp_path: Path
) -> None:
    stack = stack_factory("existing", LEAN)  # file backend
    stack.up()
    before = stack.outputs()
    salt = stack.stack_file.read_text().split("encryptionsalt:")[1].split()[0]
    exported = tmp_path / "e2e.state.json"
    # secrets stay ciphertext in the export (no --show-secrets): the passphrase still opens them
    stack.run("stack", "export", "--file", str(exported), timeout=120)

    stack.backend = object_store.backend("migrated")
    stack.run("stack", "init", stack.name, "--secrets-provider", "passphrase", timeout=120)
    assert f"encryptionsalt: {salt}" in stack.stack_file.read_text(), "stack init must keep the stack's salt"
    stack.run("stack", "import", "--file", str(exported), timeout=120)

    stack.preview(600, True, "--expect-no-changes")
    assert stack.outputs() == before
    assert f"migrated/.pulumi/stacks/{PROJECT}/{stack.name}.json" in object_store.keys("migrated")
    assert stack.has_resources()
    exported.unlink()
    assert stack.leaks({"backend secret key": object_store.secret_key}) == []


def test_backend_credentials_are_required(stack_factory: Any, object_store: ObjectStore) -> None:
    backend = object_store.backend("denied")
    stack = stack_factory("existing", LEAN, backend=backend)
    stack.backend = type(backend)(url=backend.url, env={**backend.env, "AWS_SECRET_ACCESS_KEY": "wrong"},
                                  objects=backend.objects)  # fmt: skip
    res = stack.preview(120, False)
    assert res.returncode != 0
    assert "SignatureDoesNotMatch" in res.output or "403" in res.output, res.output[-2000:]
    assert object_store.secret_key not in res.output

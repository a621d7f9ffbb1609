"""A team's shared state: the real Pulumi engine on a real S3 server (SeaweedFS on loopback).

What a platform team relies on when several people and CI jobs share stacks:
- the whole workflow (up, no-op up, `stacks rollback` from the update history, drift,
  destroy) works unchanged on `PULUMI_BACKEND_URL=s3://…`, and no secret reaches an object;
- a second `pulumi up` of a stack while one runs is refused with Pulumi's lock message and
  changes nothing, and the first completes;
- a killed `pulumi up` leaves its lock; `pulumi cancel` and `pulumi refresh
  --clear-pending-creates` (docs/environments.md, "Working as a team") get the team going,
  and the next `up` converges;
- a deployed stack moves from the file backend to S3 (`pulumi stack export` / `stack init`
  / `stack import`) and a no-op `preview --expect-no-changes` passes after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lib.objectstore import ObjectStore
from lib.stack import E2EStack
from lib.util import tail, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

APP_NS, APP = "web", "my-nginx"
# no MySQL, no Helm release: what is under test is the backend, not the workloads
LEAN = {"mysql": {"enabled": False}, "helm": {"releases": []}}
PROJECT = "k8s-platform"


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

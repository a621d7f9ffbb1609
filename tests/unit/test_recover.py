"""`python -m stacks recover`: what it does after a crashed run, driven by a fake pulumi/helm.

The real thing (a `pulumi up` killed mid-way on an S3 backend, then `recover`, then an
`up` that converges; and a release of the same name installed before the killed run,
which `recover` leaves alone) is tests/e2e/test_team_backend.py.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from stacks import cli
from stacks.plumbing import Result
from stacks.recover import (
    HELM_RELEASE,
    Pending,
    Revision,
    RunStart,
    parse_history,
    parse_time,
    pending_operations,
    plan_recovery,
    run_recover,
    run_start,
)
from tests.support.mocks import PROJECT_ROOT

URN = "urn:pulumi:dev::k8s-platform::k8s-platform:addons:Addons$kubernetes:helm.sh/v3:Release::addons-{}-release"
NS_URN = "urn:pulumi:dev::k8s-platform::kubernetes:core/v1:Namespace::ns-web"
CMD_URN = "urn:pulumi:dev::k8s-platform::command:remote:Command::cluster-kubespray"
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"
# The crashed run took its lock at 09:14:05 UTC, as Pulumi prints it (the writer's zone, to the second)
LOCK_AT = "2026-12-03T10:14:05+01:00"
LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete "
    "the lock file with `pulumi cancel`.\n  s3://state/.pulumi/locks/organization/k8s-platform/dev/3f1c.json: "
    f"created by ci@runner-7 (pid 4242) at {LOCK_AT}\n"
)
NOT_LOCKED = "error: a stack named dev already exists\n"
# Helm's times, each in its writer's zone: after the lock although its wall clock reads
# earlier, and before it although its wall clock reads later
AFTER = "2026-12-03T04:20:00.123456789-05:00"  # 09:20:00 UTC
BEFORE = "2026-12-03T11:00:00.5+03:00"  # 08:00:00 UTC


def export(*ops: tuple[str, str, str, dict[str, Any]]) -> str:
    return json.dumps(
        {
            "version": 3,
            "deployment": {
                "resources": [],
                "pending_operations": [
                    {"resource": {"urn": urn, "type": typ, "inputs": inputs}, "type": op}
                    for urn, typ, op, inputs in ops
                ],
            },
        }
    )


def helm_create(name: str, namespace: str = "kube-system") -> tuple[str, str, str, dict[str, Any]]:
    return (URN.format(name), HELM_RELEASE, "creating", {"name": name, "namespace": namespace, "chart": name})


def revisions(*entries: tuple[str, str]) -> list[dict[str, Any]]:
    """`helm history -o json` of a release: one (updated, status) per revision, from 1."""
    return [{"revision": n, "updated": at, "status": status, "chart": "c-1.0.0", "app_version": "1.0",
             "description": "Install complete" if n == 1 else "Upgrade complete"}
            for n, (at, status) in enumerate(entries, 1)]  # fmt: skip


def installed(status: str = "deployed", at: str = AFTER) -> list[dict[str, Any]]:
    return revisions((at, status))


class FakeRunner:
    def __init__(
        self,
        export_json: str,
        releases: dict[str, list[dict[str, Any]] | str] | None = None,
        *,
        helm: bool = True,
        answer: bool | None = True,
        kubeconfig: str = KUBECONFIG,
        codes: dict[str, int] | None = None,
        lock: str = LOCKED,
        history: str = "[]",
    ) -> None:
        # releases: name -> its revisions, or a status (one revision, installed by the run)
        self.releases = {k: installed(v) if isinstance(v, str) else v for k, v in (releases or {}).items()}
        self.export_json, self.helm = export_json, helm
        self.answer, self.kubeconfig, self.codes = answer, kubeconfig, codes or {}
        self.lock, self.history = lock, history
        self.calls: list[list[str]] = []
        self.kubeconfig_seen: list[str] = []
        self.prompts: list[str] = []

    def which(self, program: str) -> str | None:
        return f"/usr/bin/{program}" if program == "pulumi" or (program == "helm" and self.helm) else None

    def run(self, args: Sequence[str], *, capture: bool) -> Result:
        args = list(args)
        self.calls.append(args)
        if args[0] == "helm":
            path = args[args.index("--kubeconfig") + 1]
            self.kubeconfig_seen.append(Path(path).read_text() if Path(path).is_file() else f"(missing {path})")
            verb, name = args[3], args[4]
            if verb == "history":
                if name not in self.releases:
                    return Result(1, "", "Error: release: not found")
                return Result(self.codes.get("helm history", 0), json.dumps(self.releases[name]), "Error: boom")
            return Result(self.codes.get(f"helm {verb}", 0))
        step = " ".join(args[1:3])
        if step == "stack export":
            return Result(0, self.export_json)
        if step == "stack history":
            return Result(0, self.history)
        if step == "stack rename":
            return Result(255, "", self.lock)
        if step == "stack output":
            return Result(0 if self.kubeconfig else 255, self.kubeconfig, "" if self.kubeconfig else "error: no output")
        return Result(self.codes.get(args[1], 0), "", "error: the backend said no" if self.codes.get(args[1]) else "")

    def git_head(self) -> str | None:
        return None

    def confirm(self, prompt: str) -> bool | None:
        self.prompts.append(prompt)
        return self.answer

    def verbs(self) -> list[str]:
        return [" ".join(c[1:3] if c[1] == "stack" else c[1:2] if c[0] == "pulumi" else ["helm", c[3]])
                for c in self.calls]  # fmt: skip

    def changes(self) -> list[list[str]]:
        """The calls that change something: the lock, a release, the state."""
        return [c for c in self.calls if c[:2] in (["pulumi", "cancel"], ["pulumi", "refresh"])
                or (c[0] == "helm" and c[3] in ("uninstall", "rollback"))]  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(PROJECT_ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    return tmp_path


def recover(root: Path, runner: FakeRunner, yes: bool = True, **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_recover("dev", yes=yes, root=root, runner=runner, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def refresh_call(runner: FakeRunner) -> list[str]:
    (call,) = [c for c in runner.calls if c[:2] == ["pulumi", "refresh"]]
    return call


def test_pending_operations_are_read_from_the_export() -> None:
    ops = pending_operations(export(helm_create("ingress"), (NS_URN, "kubernetes:core/v1:Namespace", "creating", {})))
    assert ops == [
        Pending(URN.format("ingress"), HELM_RELEASE, "creating", "ingress", "kube-system"),
        Pending(NS_URN, "kubernetes:core/v1:Namespace", "creating"),
    ]
    assert pending_operations(json.dumps({"deployment": {}})) == []


STARTED = RunStart(parse_time(LOCK_AT), "the lock of ci@runner-7, pid 4242")


def history_of(releases: dict[str, list[dict[str, Any]]]) -> Any:
    return lambda ns, name: parse_history(json.dumps(releases[name])) if name in releases else []


def test_plan_per_helm_state() -> None:
    pending = [
        *(Pending(URN.format(n), HELM_RELEASE, "creating", n, "kube-system") for n in ("done", "half", "none")),
        Pending(URN.format("upg"), HELM_RELEASE, "updating", "upg", "web"),
        Pending(URN.format("fine"), HELM_RELEASE, "updating", "fine", "web"),
        Pending(NS_URN, "kubernetes:core/v1:Namespace", "creating"),
    ]
    releases = {"done": installed("deployed"), "half": installed("pending-install"),
                "upg": revisions((BEFORE, "superseded"), (AFTER, "pending-upgrade")), "fine": installed("deployed")}  # fmt: skip
    plan = plan_recovery(pending, history_of(releases), lambda: STARTED)
    assert [args[:4] for args, _ in plan.helm] == [
        ["uninstall", "--namespace", "kube-system", "done"],
        ["uninstall", "--namespace", "kube-system", "half"],
        ["rollback", "--namespace", "web", "upg"],
    ]
    assert plan.kept == []
    assert any("never installed" in n for n in plan.notes)
    assert any(NS_URN in n and "dropped from the state" in n for n in plan.notes)


def test_parse_time_keeps_the_offset_and_refuses_to_guess_one() -> None:
    assert parse_time(AFTER) == parse_time("2026-12-03T09:20:00.123456Z")
    assert parse_time(BEFORE) == parse_time("2026-12-03T08:00:00.5+00:00")
    assert parse_time(BEFORE) < parse_time(LOCK_AT) < parse_time(AFTER)  # type: ignore[operator]
    # Helm's table format (ANSIC, local time without its zone), Go's zero time, nothing, not a string
    for no_time in ("Thu Dec  3 10:14:05 2026", "2026-12-03T10:14:05", "0001-01-01T00:00:00Z", "", None, 1764753245):
        assert parse_time(no_time) is None, no_time


def test_parse_history_orders_revisions_and_rejects_what_is_not_helms() -> None:
    text = json.dumps(list(reversed(revisions((BEFORE, "superseded"), (AFTER, "deployed")))))
    assert parse_history(text) == [
        Revision(1, parse_time(BEFORE), "superseded"),
        Revision(2, parse_time(AFTER), "deployed"),
    ]
    assert parse_history("[]") == [] and parse_history(json.dumps([{"revision": 1, "updated": ""}]))[0].updated is None
    for bad in ("Error: boom", json.dumps({"revision": 1}), json.dumps([{"updated": AFTER}])):
        with pytest.raises(ValueError):
            parse_history(bad)


@pytest.mark.parametrize(
    ("history", "verb", "words"),
    [
        # installed by the run: revision 1 after the run began (in another zone)
        (installed("deployed", AFTER), "uninstall", "revision 1 at 2026-12-03T04:20:00-05:00"),
        # to the second of the lock (which Pulumi prints rounded down): still the run's
        (installed("pending-install", "2026-12-03T09:14:05Z"), "uninstall", "from the interrupted install"),
        # upgraded since the run installed it: the first revision says who installed it
        (revisions((AFTER, "superseded"), (AFTER, "deployed")), "uninstall", "revision 1 at"),
        # there before the run, although its wall clock reads later than the lock's
        (installed("deployed", BEFORE), None, "existed before the interrupted run (revision 1 at 2026-12-03T11:00:00+03:00"),
        (revisions((BEFORE, "superseded"), (BEFORE, "failed")), None, "existed before"),
        # there before, and stuck in a change made since the run began: an upgrade, rolled back
        (revisions((BEFORE, "superseded"), (AFTER, "pending-upgrade")), "rollback", "as an interrupted upgrade"),
        # stuck since before the run: not the run's doing
        (revisions((BEFORE, "superseded"), (BEFORE, "pending-upgrade")), None, "existed before"),
        # Helm pruned revision 1: upgraded since its install, whenever that was
        ([{**r, "revision": r["revision"] + 4} for r in revisions((AFTER, "superseded"), (AFTER, "deployed"))],
         None, "revisions 5–6 only"),
        # no time on revision 1: nothing shows the run made it
        (installed("deployed", ""), None, "has no time"),
    ],
)  # fmt: skip
def test_an_interrupted_install_removes_only_what_the_run_installed(
    history: list[dict[str, Any]], verb: str | None, words: str
) -> None:
    op = Pending(URN.format("grafana"), HELM_RELEASE, "creating", "grafana", "monitoring")
    plan = plan_recovery([op], history_of({"grafana": history}), lambda: STARTED)
    assert [args[0] for args, _ in plan.helm] == ([verb] if verb else [])
    text = " ".join([*(why for _, why in plan.helm), *plan.kept])
    assert words in text, text
    if verb is None:
        (kept,) = plan.kept
        assert kept.startswith("Helm release monitoring/grafana") and "pulumi import" in kept
    if verb:
        assert "the run began at 2026-12-03T10:14:05+01:00 per the lock of ci@runner-7, pid 4242" in text


def test_an_install_is_left_alone_when_the_run_start_is_unknown() -> None:
    op = Pending(URN.format("grafana"), HELM_RELEASE, "creating", "grafana", "monitoring")
    unknown = RunStart(None, "the stack holds no lock")
    plan = plan_recovery([op], history_of({"grafana": installed()}), lambda: unknown)
    assert plan.helm == []
    (kept,) = plan.kept
    assert "cannot tell whether the interrupted run installed it: the stack holds no lock" in kept


def test_the_run_start_is_asked_for_only_when_a_name_is_taken() -> None:
    asked: list[int] = []

    def started() -> RunStart:
        asked.append(1)
        return STARTED

    ops = [Pending(URN.format(n), HELM_RELEASE, o, n, "web") for n, o in (("new", "creating"), ("upg", "updating"))]
    plan_recovery(ops, history_of({"upg": installed("pending-upgrade")}), started)
    assert asked == []


def test_the_run_start_comes_from_the_lock_before_it_is_removed() -> None:
    runner = FakeRunner(export())
    assert run_start(runner, "dev") == STARTED
    assert [c[:3] for c in runner.calls] == [["pulumi", "stack", "history"], ["pulumi", "stack", "rename"]]
    assert runner.calls[1][3:6] == ["dev", "--stack", "dev"], "renamed onto its own name: refused either way"
    # of several locks, the latest: fewer releases can look like the run's
    two = LOCKED + "  s3://state/…/9a.json: created by bob@laptop (pid 7) at 2026-12-03T09:30:00Z\n"
    assert run_start(FakeRunner(export(), lock=two), "dev").at == parse_time("2026-12-03T09:30:00Z")
    gone = run_start(FakeRunner(export(), lock=NOT_LOCKED), "dev")
    assert gone.at is None and "holds no lock" in gone.source
    # a service backend lists the crashed update in its history, still in progress
    history = json.dumps([{"kind": "update", "result": "in-progress", "startTime": "2026-12-03T09:10:00.000Z"}])
    runner = FakeRunner(export(), history=history)
    assert run_start(runner, "dev") == RunStart(parse_time("2026-12-03T09:10:00Z"), "the stack's update history")
    assert [c[:3] for c in runner.calls] == [["pulumi", "stack", "history"]]
    finished = json.dumps([{"kind": "update", "result": "succeeded", "startTime": "2026-12-01T09:10:00.000Z"}])
    assert run_start(FakeRunner(export(), history=finished), "dev") == STARTED


def test_recover_clears_the_lock_settles_helm_and_refreshes(root: Path) -> None:
    runner = FakeRunner(
        export(helm_create("ingress"), helm_create("storage"), helm_create("metrics"),
               (NS_URN, "kubernetes:core/v1:Namespace", "creating", {}), (CMD_URN, "command:remote:Command", "creating", {})),
        {"ingress": "deployed", "storage": "pending-install"},
    )  # fmt: skip
    code, out, err = recover(root, runner)
    assert code == 0, err
    # everything is read (the lock's time too) before the lock goes
    assert runner.verbs() == [
        "stack export", "stack output", "helm history", "stack history", "stack rename", "helm history",
        "helm history", "cancel", "helm uninstall", "helm uninstall", "refresh",
    ]  # fmt: skip
    assert runner.calls[2][:2] == ["helm", "--kubeconfig"]
    # helm saw the stack's own kubeconfig (from its secret output), in a file removed afterwards
    assert set(runner.kubeconfig_seen) == {KUBECONFIG}
    path = runner.calls[2][2]
    assert not Path(path).exists(), "the kubeconfig copy must not outlive the recovery"
    # finished or not, an install the run made and the state never recorded is undone; a release never begun is left
    assert [c[3:7] for c in runner.calls[8:10]] == [
        ["uninstall", "--namespace", "kube-system", "ingress"],
        ["uninstall", "--namespace", "kube-system", "storage"],
    ]
    refresh = refresh_call(runner)
    assert refresh[:3] == ["pulumi", "refresh", "--yes"]
    assert "--clear-pending-creates" in refresh and "--import-pending-creates" not in refresh
    assert "kube-system/storage is pending-install" in out and "kube-system/ingress is deployed" in out
    assert "kube-system/metrics: never installed" in out
    assert "left alone" not in out
    assert "run `pulumi up --stack dev`" in out


def test_a_release_that_was_there_before_the_run_is_left_alone(root: Path) -> None:
    runner = FakeRunner(
        export(helm_create("ingress"), helm_create("grafana", "monitoring")),
        {"ingress": installed("pending-install"), "grafana": revisions((BEFORE, "superseded"), (BEFORE, "deployed"))},
        answer=True,
    )
    code, out, err = recover(root, runner, yes=False)
    assert code == 0, err
    # the question lists exactly what goes, and what stays
    (prompt,) = runner.prompts
    goes, stays = prompt.split("and leave alone:")
    assert "remove its lock" in goes
    assert "helm uninstall kube-system/ingress: Helm release kube-system/ingress is pending-install" in goes
    assert "grafana" not in goes
    assert "Helm release monitoring/grafana (deployed) existed before the interrupted run" in stays
    assert stays.rstrip().endswith("Go on? [y/N]")
    uninstalled = [c[3:7] for c in runner.changes() if c[0] == "helm"]
    assert uninstalled == [["uninstall", "--namespace", "kube-system", "ingress"]]
    assert "recover: left alone: Helm release monitoring/grafana" in out
    assert "settle the Helm releases left alone above" in out


def test_nothing_in_flight_only_clears_the_lock(root: Path) -> None:
    runner = FakeRunner(export())
    code, out, _ = recover(root, runner)
    assert code == 0 and "no operation was left in flight" in out
    assert runner.verbs() == ["stack export", "cancel"]


def test_asks_before_removing_someone_elses_lock(root: Path) -> None:
    for answer, words in ((False, "nothing changed"), (None, "run with --yes")):
        runner = FakeRunner(export(helm_create("ingress")), {"ingress": "deployed"}, answer=answer)
        code, out, err = recover(root, runner, yes=False)
        assert code == 1 and words in out + err
        assert runner.changes() == [], "nothing changes without a yes"
        assert "helm uninstall kube-system/ingress" in runner.prompts[0]


@pytest.mark.parametrize(
    ("runner_kw", "words"),
    [
        ({"helm": False}, "helm is not on PATH"),
        ({"codes": {"cancel": 1}}, "pulumi cancel --stack dev failed: error: the backend said no"),
        ({"codes": {"helm history": 1}, "releases": {"ingress": "failed"}}, "helm history kube-system/ingress: Error: boom"),
        ({"codes": {"helm uninstall": 1}, "releases": {"ingress": "failed"}}, "helm uninstall failed"),
        ({"codes": {"refresh": 1}}, "pulumi refresh --stack dev failed"),
    ],
)  # fmt: skip
def test_failures_stop_with_the_reason(root: Path, runner_kw: dict[str, Any], words: str) -> None:
    releases = runner_kw.pop("releases", {})
    runner = FakeRunner(export(helm_create("ingress")), releases, **runner_kw)
    code, _, err = recover(root, runner)
    assert code == 1 and words in err, err
    if "history" in words or "PATH" in words:
        assert runner.changes() == [], "a refusal before the lock goes leaves the lock (and its time) for the next try"


def test_a_kubespray_stack_without_kubeconfig_output_needs_one(root: Path, tmp_path: Path) -> None:
    runner = FakeRunner(export(helm_create("ingress")), kubeconfig="")
    code, _, err = recover(root, runner)
    assert code == 1 and "pass --kubeconfig" in err
    assert not [c for c in runner.calls if c[0] == "helm"], "never the ambient kubeconfig: it may be another cluster"
    assert runner.changes() == []
    given = tmp_path / "admin.conf"
    given.write_text(KUBECONFIG)
    runner = FakeRunner(export(helm_create("ingress")), {"ingress": "failed"}, kubeconfig="")
    code, _, err = recover(root, runner, kubeconfig=str(given))
    assert code == 0, err
    assert runner.calls[1][:3] == ["helm", "--kubeconfig", str(given)], "no stack output read when given one"


def test_cli_wires_the_subcommand(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake(stack: str, **kw: Any) -> int:
        seen.update(stack=stack, **kw)
        return 0

    monkeypatch.setattr("stacks.recover.run_recover", fake)
    assert cli.main(["--root", str(root), "recover", "dev", "--yes", "--kubeconfig", "/tmp/k"]) == 0
    assert seen["stack"] == "dev" and seen["yes"] is True and seen["kubeconfig"] == "/tmp/k"


def test_an_unknown_stack_is_refused_before_anything_runs(root: Path) -> None:
    runner = FakeRunner(export())
    out, err = io.StringIO(), io.StringIO()
    assert run_recover("nosuch", yes=True, root=root, runner=runner, out=out, err=err) == 1
    assert "Pulumi.nosuch.yaml: no such stack file" in err.getvalue() and runner.calls == []

"""`python -m stacks recover`: what it does after a crashed run, driven by a fake pulumi/helm.

The real thing (a `pulumi up` killed mid-way on an S3 backend, then `recover`, then an
`up` that converges) is tests/e2e/test_team_backend.py.
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
from stacks.recover import HELM_RELEASE, Pending, pending_operations, plan_recovery, run_recover
from tests.support.mocks import PROJECT_ROOT

URN = "urn:pulumi:dev::k8s-platform::k8s-platform:addons:Addons$kubernetes:helm.sh/v3:Release::addons-{}-release"
NS_URN = "urn:pulumi:dev::k8s-platform::kubernetes:core/v1:Namespace::ns-web"
CMD_URN = "urn:pulumi:dev::k8s-platform::command:remote:Command::cluster-kubespray"
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"


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


class FakeRunner:
    def __init__(
        self,
        export_json: str,
        statuses: dict[str, str] | None = None,
        *,
        helm: bool = True,
        answer: bool | None = True,
        kubeconfig: str = KUBECONFIG,
        codes: dict[str, int] | None = None,
    ) -> None:
        self.export_json, self.statuses, self.helm = export_json, statuses or {}, helm
        self.answer, self.kubeconfig, self.codes = answer, kubeconfig, codes or {}
        self.calls: list[list[str]] = []
        self.kubeconfig_seen: list[str] = []

    def which(self, program: str) -> str | None:
        return f"/usr/bin/{program}" if program == "pulumi" or (program == "helm" and self.helm) else None

    def run(self, args: Sequence[str], *, capture: bool) -> Result:
        args = list(args)
        self.calls.append(args)
        if args[0] == "helm":
            path = args[args.index("--kubeconfig") + 1]
            self.kubeconfig_seen.append(Path(path).read_text() if Path(path).is_file() else f"(missing {path})")
            verb, name = args[3], args[4]
            if verb == "status":
                status = self.statuses.get(name)
                if status is None:
                    return Result(1, "", "Error: release: not found")
                return Result(0, json.dumps({"name": name, "info": {"status": status}}))
            return Result(self.codes.get(f"helm {verb}", 0))
        step = " ".join(args[1:3])
        if step == "stack export":
            return Result(0, self.export_json)
        if step == "stack output":
            return Result(0 if self.kubeconfig else 255, self.kubeconfig, "" if self.kubeconfig else "error: no output")
        return Result(self.codes.get(args[1], 0), "", "error: the backend said no" if self.codes.get(args[1]) else "")

    def git_head(self) -> str | None:
        return None

    def confirm(self, prompt: str) -> bool | None:
        return self.answer

    def verbs(self) -> list[str]:
        return [" ".join(c[1:2] if c[0] == "pulumi" else ["helm", c[3]]) for c in self.calls]


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


def test_plan_per_helm_state() -> None:
    pending = [
        *(Pending(URN.format(n), HELM_RELEASE, "creating", n, "kube-system") for n in ("done", "half", "none")),
        Pending(URN.format("upg"), HELM_RELEASE, "updating", "upg", "web"),
        Pending(URN.format("fine"), HELM_RELEASE, "updating", "fine", "web"),
        Pending(NS_URN, "kubernetes:core/v1:Namespace", "creating"),
    ]
    statuses = {"done": "deployed", "half": "pending-install", "none": "", "upg": "pending-upgrade", "fine": "deployed"}
    plan = plan_recovery(pending, lambda ns, name: statuses[name])
    assert [args[:4] for args, _ in plan.helm] == [
        ["uninstall", "--namespace", "kube-system", "done"],
        ["uninstall", "--namespace", "kube-system", "half"],
        ["rollback", "--namespace", "web", "upg"],
    ]
    assert any("never installed" in n for n in plan.notes)
    assert any(NS_URN in n and "dropped from the state" in n for n in plan.notes)


def test_recover_clears_the_lock_settles_helm_and_refreshes(root: Path) -> None:
    runner = FakeRunner(
        export(helm_create("ingress"), helm_create("storage"), helm_create("metrics"),
               (NS_URN, "kubernetes:core/v1:Namespace", "creating", {}), (CMD_URN, "command:remote:Command", "creating", {})),
        {"ingress": "deployed", "storage": "pending-install"},
    )  # fmt: skip
    code, out, err = recover(root, runner)
    assert code == 0, err
    assert runner.verbs() == [
        "cancel", "stack", "stack", "helm status", "helm status", "helm status", "helm uninstall", "helm uninstall",
        "refresh",
    ]  # fmt: skip
    assert runner.calls[3][:2] == ["helm", "--kubeconfig"]
    # helm saw the stack's own kubeconfig (from its secret output), in a file removed afterwards
    assert set(runner.kubeconfig_seen) == {KUBECONFIG}
    path = runner.calls[3][2]
    assert not Path(path).exists(), "the kubeconfig copy must not outlive the recovery"
    # finished or not, an install the state never recorded is undone; a release never begun is left
    assert [c[3:7] for c in runner.calls[6:8]] == [
        ["uninstall", "--namespace", "kube-system", "ingress"],
        ["uninstall", "--namespace", "kube-system", "storage"],
    ]
    refresh = refresh_call(runner)
    assert refresh[:3] == ["pulumi", "refresh", "--yes"]
    assert "--clear-pending-creates" in refresh and "--import-pending-creates" not in refresh
    assert "kube-system/storage is pending-install" in out and "kube-system/ingress is deployed" in out
    assert "kube-system/metrics: never installed" in out
    assert "run `pulumi up --stack dev`" in out


def test_nothing_in_flight_only_clears_the_lock(root: Path) -> None:
    runner = FakeRunner(export())
    code, out, _ = recover(root, runner)
    assert code == 0 and "no operation was left in flight" in out
    assert runner.verbs() == ["cancel", "stack"]


def test_asks_before_removing_someone_elses_lock(root: Path) -> None:
    for answer, words in ((False, "nothing changed"), (None, "run with --yes")):
        runner = FakeRunner(export(helm_create("ingress")), answer=answer)
        code, out, err = recover(root, runner, yes=False)
        assert code == 1 and words in out + err
        assert runner.calls == [], "nothing runs without a yes"


@pytest.mark.parametrize(
    ("runner_kw", "words"),
    [
        ({"helm": False}, "helm is not on PATH"),
        ({"codes": {"cancel": 1}}, "pulumi cancel --stack dev failed: error: the backend said no"),
        ({"codes": {"helm uninstall": 1}, "statuses": {"ingress": "failed"}}, "helm uninstall failed"),
        ({"codes": {"refresh": 1}}, "pulumi refresh --stack dev failed"),
    ],
)
def test_failures_stop_with_the_reason(root: Path, runner_kw: dict[str, Any], words: str) -> None:
    statuses = runner_kw.pop("statuses", {})
    runner = FakeRunner(export(helm_create("ingress")), statuses, **runner_kw)
    code, _, err = recover(root, runner)
    assert code == 1 and words in err, err


def test_a_kubespray_stack_without_kubeconfig_output_needs_one(root: Path, tmp_path: Path) -> None:
    runner = FakeRunner(export(helm_create("ingress")), kubeconfig="")
    code, _, err = recover(root, runner)
    assert code == 1 and "pass --kubeconfig" in err
    assert not [c for c in runner.calls if c[0] == "helm"], "never the ambient kubeconfig: it may be another cluster"
    given = tmp_path / "admin.conf"
    given.write_text(KUBECONFIG)
    runner = FakeRunner(export(helm_create("ingress")), {"ingress": "failed"}, kubeconfig="")
    code, _, err = recover(root, runner, kubeconfig=str(given))
    assert code == 0, err
    assert runner.calls[2][:3] == ["helm", "--kubeconfig", str(given)], "no stack output read when given one"


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

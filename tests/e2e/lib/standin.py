"""The kubespray STAND-IN: a local git repository of real Ansible playbooks.

NOT kubespray. Real kubespray needs internet access and real machines; this repository
keeps kubespray's interface (entry-point playbooks, inventory groups and variable checks,
`artifacts/admin.conf`) and acts on the local KWOK cluster instead. Templates are in
tests/e2e/standin/ (see its README.md). The program fetches it exactly like upstream:
`git fetch --depth 1 <kubespray.source> refs/tags/<version>`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .util import REPO_ROOT, find_tool, run

TEMPLATE = REPO_ROOT / "tests" / "e2e" / "standin"
LIB = Path(__file__).resolve().parent
GIT = ["git", "-c", "user.name=k8s-platform e2e", "-c", "user.email=e2e@localhost", "-c", "init.defaultBranch=main"]
PLAYBOOKS = ("cluster.yml", "scale.yml", "remove-node.yml", "upgrade-cluster.yml", "reset.yml", "playbooks/facts.yml")


@dataclass
class KubesprayStandIn:
    """`dir/repo` is the git repository (`kubespray.source`); `dir/invocations.jsonl` the log."""

    dir: Path
    admin_conf: Path  # the local API server's admin kubeconfig, copied to artifacts/admin.conf
    kubectl: str = field(default_factory=lambda: find_tool("kubectl") or "/usr/bin/kubectl")
    versions: tuple[str, ...] = ("v2.31.0",)
    default_kube_version: str = "1.34.4"
    reset_deletes_nodes: bool = False

    @property
    def repo(self) -> Path:
        return self.dir / "repo"

    @property
    def source(self) -> str:
        """What goes into `kubespray.source` (an absolute path on the control host)."""
        return str(self.repo)

    @property
    def invocation_log(self) -> Path:
        return self.dir / "invocations.jsonl"

    def build(self) -> KubesprayStandIn:
        if self.repo.exists():
            shutil.rmtree(self.repo)
        shutil.copytree(TEMPLATE, self.repo)
        for name in ("kube.py", "kwok_node.py"):
            shutil.copy2(LIB / name, self.repo / "standin" / name)
        self.invocation_log.touch()
        config = {
            "standin_dir": str(self.dir),
            "standin_invocation_log": str(self.invocation_log),
            "standin_admin_conf": str(self.admin_conf),
            "standin_kubectl": self.kubectl,
            "standin_default_kube_version": self.default_kube_version,
            "standin_reset_deletes_nodes": self.reset_deletes_nodes,
        }
        (self.repo / "standin" / "config.yml").write_text(
            "# STAND-IN for kubespray: paths of this e2e run, written by tests/e2e/lib/standin.py\n"
            + yaml.safe_dump(config, sort_keys=False)
        )
        self._git("init", "-q")
        self._git("add", "-A")
        self._git("commit", "-q", "-m", "kubespray stand-in for the k8s-platform e2e tests")
        for v in self.versions:
            self.tag(v)
        return self

    def _git(self, *args: str) -> str:
        return run([*GIT, "-C", str(self.repo), *args], 30).stdout

    def tag(self, version: str, note: str | None = None) -> str:
        """Tag a new version (a new commit when `note` is given, like a new kubespray release)."""
        if note:
            (self.repo / "VERSION").write_text(f"{version}\n{note}\n")
            self._git("add", "VERSION")
            self._git("commit", "-q", "-m", f"stand-in {version}")
        self._git("tag", "-f", version)
        return self._git("rev-parse", version).strip()

    # ---------------------------------------------------------------- test hooks
    def invocations(self) -> list[dict[str, Any]]:
        text = self.invocation_log.read_text() if self.invocation_log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def fail_next(self, playbook: str) -> Path:
        """The next run of `playbook` (e.g. 'cluster.yml', 'scale.yml') fails midway."""
        path = self.dir / f"fail-next-{Path(playbook).name}"
        path.write_text("fail the next run of this playbook (STAND-IN failure switch)\n")
        return path

    def clear_invocations(self) -> None:
        self.invocation_log.write_text("")

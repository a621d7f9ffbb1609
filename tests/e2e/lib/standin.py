"""The kubespray the e2e tier deploys with: the real v2.31.0 tree, with a stand-in only for machines.

`KubesprayUnderTest.build()` unpacks kubespray v2.31.0 (the vendored `git archive` tarball,
sha256-checked) into a git repository tagged `v2.31.0`, which the program fetches exactly
as it fetches upstream (`git fetch --depth 1 <kubespray.source> refs/tags/v2.31.0`). The
prepare step then installs kubespray's own `requirements.txt` (ansible 11 = ansible-core
2.18) into its venv on the control host, from a local wheelhouse.

What runs for real, from kubespray's own files, on every playbook run:
- the top-level entry playbooks (`cluster.yml`, `scale.yml`, `upgrade-cluster.yml`,
  `remove-node.yml`, `reset.yml`) and `ansible.cfg`, unchanged;
- `playbooks/boilerplate.yml`: the ansible version check, `dynamic_groups`,
  `validate_inventory` with `kubespray_defaults` (every inventory/variable assertion,
  the supported-Kubernetes-version check against `checksums.yml`);
- the confirmation gates, task for task: `reset.yml`'s "Reset Confirmation" + "Check
  confirmation", `remove-node.yml`'s node assertion, "Confirm Execution" and "Fail if user
  does not confirm deletion".

What is a STAND-IN (tests/e2e/standin/*.yml, imported at the end of each
`playbooks/<entry>.yml` in place of the plays that need real machines or the internet:
`internal_facts.yml`, etcd, containerd, kubeadm, the CNI, reset and drain roles): it acts
on the local KWOK cluster — registers/deletes KWOK nodes, copies the local API server's
admin kubeconfig to `artifacts/admin.conf` — and appends one JSON line per invocation to
the invocation log. `<dir>/fail-next-<playbook>` makes the next run of that playbook fail
midway (the file is removed).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import kubespray_tree

from .util import REPO_ROOT, find_tool, run

STANDIN = REPO_ROOT / "tests" / "e2e" / "standin"
LIB = Path(__file__).resolve().parent
GIT = ["git", "-c", "user.name=k8s-platform e2e", "-c", "user.email=e2e@localhost", "-c", "init.defaultBranch=main"]
KUBESPRAY_VERSION = kubespray_tree.VERSION
# kubespray's playbooks/<entry>.yml that get the stand-in at their end
ENTRIES = ("cluster.yml", "scale.yml", "upgrade_cluster.yml", "reset.yml", "remove_node.yml", "facts.yml")
# tasks that run on the controller and need no machine: kubespray's checks and confirmation gates
GATE_MODULES = {"assert", "fail", "pause", "ansible.builtin.assert", "ansible.builtin.fail", "ansible.builtin.pause"}
# imported playbooks of kubespray that run as they are (everything else needs machines)
KEEP_IMPORTS = {"boilerplate.yml"}


def splice(plays: list[dict[str, Any]], standin: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Kubespray's plays that run without machines, then `import_playbook: standin`.

    Returns the new play list and a description of what was kept and what was replaced.
    """
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for play in plays:
        if "import_playbook" in play:
            target = play["import_playbook"]
            if target in KEEP_IMPORTS:
                out.append(play)
                notes.append(f"kubespray: import {target}")
            else:
                notes.append(f"replaced: import {target}")
            continue
        kept = dict(play)
        gates_left = 0
        for section in ("pre_tasks", "tasks", "post_tasks"):
            tasks = play.get(section) or []
            gates = [t for t in tasks if GATE_MODULES & set(t)]
            if gates:
                kept[section] = gates
                gates_left += len(gates)
            else:
                kept.pop(section, None)
            notes += [f"replaced: task {t.get('name')!r}" for t in tasks if not GATE_MODULES & set(t)]
        kept.pop("roles", None)
        kept.pop("environment", None)  # proxy_disable_env needs kubespray_defaults, which the roles bring
        if play.get("roles"):
            notes.append(f"replaced: roles of play {play.get('name')!r}")
        if gates_left:
            out.append(kept)
            notes.append(f"kubespray: play {play.get('name')!r}, its {gates_left} check/confirmation task(s)")
    out.append({"name": "STAND-IN for what needs real machines (tests/e2e/standin)", "import_playbook": standin})
    return out, notes


@dataclass
class KubesprayUnderTest:
    """`dir/repo` is the git repository (`kubespray.source`); `dir/invocations.jsonl` the log."""

    dir: Path
    admin_conf: Path  # the local API server's admin kubeconfig, copied to artifacts/admin.conf
    kubectl: str = field(default_factory=lambda: find_tool("kubectl") or "/usr/bin/kubectl")
    versions: tuple[str, ...] = (KUBESPRAY_VERSION,)
    default_kube_version: str = "1.34.4"
    reset_deletes_nodes: bool = False
    commit: str = ""  # of the tagged commit, set by build()

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

    @property
    def requirements(self) -> Path:
        return self.repo / "requirements.txt"

    def build(self) -> KubesprayUnderTest:
        if self.repo.exists():
            shutil.rmtree(self.repo)
        self.dir.mkdir(parents=True, exist_ok=True)
        unpack = self.dir / "unpack"
        shutil.rmtree(unpack, ignore_errors=True)
        kubespray_tree.unpack(unpack).rename(self.repo)
        unpack.rmdir()
        self._overlay()
        self.invocation_log.touch()
        self._git("init", "-q")
        self._git("add", "-A")
        self._git("commit", "-q", "-m", f"kubespray {KUBESPRAY_VERSION} + e2e stand-in for what needs machines")
        for v in self.versions:
            self.commit = self.tag(v)
        return self

    def _overlay(self) -> None:
        dest = self.repo / "standin"
        dest.mkdir()
        for f in STANDIN.glob("*.yml"):
            shutil.copy2(f, dest / f.name)
        for name in ("kube.py", "kwok_node.py"):
            shutil.copy2(LIB / name, dest / name)
        config = {
            "standin_dir": str(self.dir),
            "standin_invocation_log": str(self.invocation_log),
            "standin_admin_conf": str(self.admin_conf),
            "standin_kubectl": self.kubectl,
            "standin_default_kube_version": self.default_kube_version,
            "standin_reset_deletes_nodes": self.reset_deletes_nodes,
        }
        (dest / "config.yml").write_text(
            "# STAND-IN: paths of this e2e run, written by tests/e2e/lib/standin.py\n"
            + yaml.safe_dump(config, sort_keys=False)
        )
        report = [f"# What runs of kubespray {KUBESPRAY_VERSION} in the e2e tier", ""]
        for entry in ENTRIES:
            path = self.repo / "playbooks" / entry
            plays, notes = splice(yaml.safe_load(path.read_text()), f"../standin/{entry}")
            path.write_text(
                f"# kubespray {KUBESPRAY_VERSION} playbooks/{entry}, spliced by tests/e2e/lib/standin.py:\n"
                + "".join(f"#   {n}\n" for n in notes)
                + yaml.safe_dump(plays, sort_keys=False, width=1000)
            )
            report += [f"## playbooks/{entry}", *[f"- {n}" for n in notes], ""]
        (self.repo / "STANDIN.md").write_text("\n".join(report))

    @property
    def etcd_backups(self) -> Path:
        """Where the stand-in etcd member keeps its snapshots (etcd_backup_prefix)."""
        return self.dir / "etcd-backups"

    def etcd_member(self, inventory_dir: Path, etcd_endpoint: str, bin_dir: str, admin_conf: Path | None = None) -> Path:
        """Make the stack's first etcd member this machine, reaching the local cluster's real etcd.

        The program's own etcd-snapshot.yml (not kubespray's) runs on etcd[0] over SSH; the
        KWOK nodes have no SSH, so the inventory's etcd group gets connection: local, the
        engine's etcdctl and the local etcd's plain-http endpoint — kubespray's and the
        playbook's own variables, in an inventory group_vars file the program never writes.
        What runs is then the program's playbook and script for real: a real snapshot of the
        real etcd behind the API server.
        """
        path = inventory_dir / "group_vars" / "etcd" / "standin.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "ansible_connection": "local",
            "ansible_become": False,
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "bin_dir": bin_dir,
            "k8s_platform_etcd_endpoint": etcd_endpoint,
            "k8s_platform_etcd_tls": False,
            "etcd_backup_prefix": str(self.etcd_backups),
            # the first control-plane node's /etc/kubernetes/admin.conf (node1 is in both groups)
            "k8s_platform_admin_conf": str(admin_conf or self.admin_conf),
        }
        path.write_text(
            "# STAND-IN (tests/e2e/lib/standin.py): etcd[0] is this machine, its etcd the local cluster's\n"
            + yaml.safe_dump(doc, sort_keys=False)
        )
        return path

    def first_node_admin_conf(self, inventory_dir: Path, admin_conf: Path) -> None:
        """What the first control-plane node's /etc/kubernetes/admin.conf is, from now on."""
        path = inventory_dir / "group_vars" / "etcd" / "standin.yml"
        doc = yaml.safe_load(path.read_text())
        doc["k8s_platform_admin_conf"] = str(admin_conf)
        path.write_text(path.read_text().splitlines()[0] + "\n" + yaml.safe_dump(doc, sort_keys=False))

    def etcd_snapshots(self, kind: str = "before-changes") -> list[Path]:
        return sorted((self.etcd_backups / "k8s-platform-etcd" / kind).glob("etcd-snapshot-*.db"))

    def _git(self, *args: str) -> str:
        return run([*GIT, "-C", str(self.repo), *args], 60).stdout

    def tag(self, version: str, note: str | None = None) -> str:
        """Tag a new version (a new commit when `note` is given, like a new kubespray release)."""
        if note:
            (self.repo / "VERSION").write_text(f"{version}\n{note}\n")
            self._git("add", "VERSION")
            self._git("commit", "-q", "-m", f"kubespray under test {version}")
        self._git("tag", "-f", version)
        return self._git("rev-parse", f"{version}^{{commit}}").strip()

    # ---------------------------------------------------------------- test hooks
    def invocations(self) -> list[dict[str, Any]]:
        text = self.invocation_log.read_text() if self.invocation_log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def playbooks_run(self) -> list[str]:
        return [c["playbook"] for c in self.invocations()]

    def fail_next(self, playbook: str) -> Path:
        """The next run of `playbook` (e.g. 'cluster.yml', 'scale.yml') fails midway."""
        path = self.dir / f"fail-next-{Path(playbook).name}"
        path.write_text("fail the next run of this playbook (STAND-IN failure switch)\n")
        return path

    def clear_invocations(self) -> None:
        self.invocation_log.write_text("")

"""KubesprayCluster: a Kubernetes cluster installed by kubespray from a control host.

Creates pulumi-command `remote.Command` resources on the control host, each with
one job:

- `<name>-prepare`    fetch kubespray at the pinned version into `workdir`, with its
                      own Python venv (re-runs when version or source change)
- `<name>-inventory`  upload hosts.yaml, group_vars and the files the other steps read
                      (upgrade/remove vars, pinned host keys, nodes marked unreachable, the
                      etcd snapshot playbook); re-runs when they change
- `<name>-cluster`    on a running cluster an etcd snapshot first (cluster.etcdBackup), then
                      `remove-node.yml` for control-plane/etcd members that left, then
                      `cluster.yml` (re-runs when the control plane / etcd layout, group_vars
                      or the kubespray version change; never on a no-op up)
- `<name>-node-<n>`   one per worker-only node: `scale.yml --limit <n>` when it is
                      added to a running cluster, `remove-node.yml` when it is removed
                      from the config or marked unreachable (not when the stack is destroyed)
- `<name>-upgrade`    an etcd snapshot, then `upgrade-cluster.yml` when `kubeVersion` changes,
                      with `cluster.upgrade`'s drain/serial/pause controls (-e @upgrade-vars.yaml)
- `<name>-kubeconfig` fetches the first control-plane node's admin.conf and reads it back
                      (secret output); again when its client certificate nears its end

Before any of them, the update's playbook plan is printed and the changes kubespray cannot
make are refused (components/cluster_plan.py, from what this stack applied last).
- `<name>-health`     the health gate (`cluster.healthGate`): after the cluster is installed
                      or changed, waits until /readyz answers, every node is Ready and
                      kube-system's workloads are available (kubespray_scripts/health-gate.sh);
                      fails naming what is not. Everything deployed into the cluster waits for it
- `<name>-reset`      only with `resetOnDestroy: true`: `reset.yml` on destroy

Every playbook writes its full log on the control host (the path is printed); the
command's output keeps only a short tail, so state stays small and no secret is in it.
"""

from __future__ import annotations

import base64
import datetime as dt
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import yaml
from cryptography import x509

from components import cluster_plan
from components import kubespray_inventory as inv
from components.cluster_config import ClusterSpec, Node
from components.cluster_plan import check_kube_version_change

__all__ = ["KubesprayCluster", "KubesprayClusterArgs", "check_kube_version_change", "rewrite_server"]

LOG_TAIL_LINES = 40
# remove-node.yml for a machine that is gone: no facts, no reset, drain failures tolerated
UNREACHABLE_FLAGS = "-e reset_nodes=false -e allow_ungraceful_removal=true"
# The control-plane/etcd members in the inventory cluster.yml applied last (argv[1]) that the
# current one (argv[2]) no longer has: they leave through remove-node.yml before cluster.yml
LEAVING_MEMBERS_PY = (
    "import sys, yaml\n"
    "old, new = (yaml.safe_load(open(p)) or {} for p in sys.argv[1:3])\n"
    "def group(doc, name):\n"
    "    return list(((doc.get('all') or {}).get('children') or {}).get(name, {}).get('hosts') or {})\n"
    "def hosts(doc):\n"
    "    return set((doc.get('all') or {}).get('hosts') or {})\n"
    "members = dict.fromkeys(group(old, 'kube_control_plane') + group(old, 'etcd'))\n"
    "print(' '.join(n for n in members if n not in hosts(new)))\n"
)
SCRIPTS = Path(__file__).parent / "kubespray_scripts"
HEALTH_GATE_SCRIPT = SCRIPTS / "health-gate.sh"
# cluster.etcdBackup: the playbook the cluster and upgrade steps run first, and the script it
# (and the scheduled CronJob) runs on the etcd member
ETCD_SNAPSHOT_PLAYBOOK = SCRIPTS / "etcd-snapshot.yml"
ETCD_SNAPSHOT_SCRIPT = SCRIPTS / "etcd-snapshot.sh"
REGISTRY_MIRRORS_PLAYBOOK = SCRIPTS / "registry-mirrors.yml"
# sed -E script for the log tail a failed playbook shows: private keys, and values of
# password/token/secret-like keys, are replaced by [withheld]
REDACT_SED = (
    r"s/-----BEGIN [A-Z ]*PRIVATE KEY-----.*/[withheld: private key]/;"
    r"s/((password|passwd|token|secret|private_key)[A-Za-z_]*[\"']?[[:space:]]*[:=][[:space:]]*)[^,} ]+/\1[withheld]/Ig"
)


@dataclass(frozen=True)
class KubesprayClusterArgs:
    cluster: ClusterSpec
    schedulable_control_plane: bool
    ssh_private_key: pulumi.Input[str]
    inventory_name: str  # directory under <workdir>/inventory/, one per stack
    # the Kubernetes version this applies (kubeVersion, or the pinned kubespray's default) and,
    # when given, what this stack applied last (its own `kubeVersion` and `clusterLayout`
    # outputs, as {"kubeVersion": …, "clusterLayout": …}): the update's playbook plan is
    # printed from it, and a downgrade, a skipped minor or a layout change kubespray cannot
    # make is refused before any command runs
    kube_version: str = ""
    previous: pulumi.Input[Any] | None = None
    # the kubeconfig this stack exported last (secret) and the refresh token recorded with it:
    # admin.conf is re-read when that kubeconfig's client certificate nears its end
    previous_kubeconfig: pulumi.Input[Any] | None = None
    previous_kubeconfig_refresh: pulumi.Input[Any] | None = None
    # cluster.registryMirrors.<registry>.ca: registry -> its mirror's CA certificate (PEM),
    # delivered to every node before cluster.yml and scale.yml
    registry_cas: Mapping[str, str] = field(default_factory=dict)


def _q(value: str) -> str:
    """Quote for the remote shell, keeping a leading ~/ expandable."""
    if value.startswith("~/"):
        return '"$HOME"/' + shlex.quote(value[2:])
    return shlex.quote(value)


def _dq(value: str) -> str:
    """For inside a double-quoted remote string: ~/ becomes $HOME/ (paths are validated: no quotes, $ or `)."""
    return "$HOME/" + value[2:] if value.startswith("~/") else value


def _exports(env: dict[str, str]) -> list[str]:
    return [f"export {key}={shlex.quote(value)}" for key, value in env.items()]


def known_hosts_lines(cluster: ClusterSpec) -> str:
    """The pinned node host keys, as ssh's known_hosts lines (the address ansible connects to)."""
    return "".join(f"{n.address} {n.host_key}\n" for n in cluster.members if n.host_key)


def ssh_args(cluster: ClusterSpec, known_hosts: str) -> tuple[str, str]:
    """ANSIBLE_HOST_KEY_CHECKING and ANSIBLE_SSH_ARGS for cluster.hostKeyChecking.

    `known_hosts` is the learned file on the control host; `<known_hosts>.pinned` holds the
    nodes' configured keys (checked as ssh's global file, so learned keys never override them).
    """
    base = "-o ControlMaster=auto -o ControlPersist=30m -o ServerAliveInterval=30"
    mode = cluster.host_key_checking
    if mode == "off":
        return "False", base
    learned = "/dev/null" if mode == "pinned" else known_hosts
    strict = "yes" if mode == "pinned" else "accept-new"
    return "True", (
        f"{base} -o UserKnownHostsFile={learned} -o GlobalKnownHostsFile={known_hosts}.pinned "
        f"-o StrictHostKeyChecking={strict}"
    )


def _write_file(path: str, content: str) -> str:
    encoded = base64.b64encode(content.encode()).decode()
    return f"printf '%s' {shlex.quote(encoded)} | base64 -d > {path}.tmp && mv {path}.tmp {path}"


@dataclass(frozen=True)
class _Run:
    """What the steps of a KubesprayCluster share: where kubespray lives on the control host, how
    to reach it, and the ansible command line every playbook runs with."""

    name: str
    args: KubesprayClusterArgs
    ks: Any  # the stack's cluster.kubespray
    ch: Any  # the stack's cluster.controlHost
    src: str
    venv: str
    inv_dir: str
    logs: str
    connection: command.remote.ConnectionArgs
    ansible_env: str
    login: str
    playbook: Callable[..., str]
    digest: str
    snapshot: str
    removal_vars: str
    applied: str
    kubectl: str
    kube_version: str


class KubesprayCluster(pulumi.ComponentResource):
    """Runs kubespray over SSH from the control host; exports the admin kubeconfig as a secret."""

    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: KubesprayClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:cluster:KubesprayCluster", name, None, opts)
        run = self._context(name, args)
        self.workdir = run.ks.workdir
        self.inventory_dir = f"{run.ks.workdir}/inventory/{args.inventory_name}"
        self.admin_conf_path = f"{self.inventory_dir}/artifacts/admin.conf"
        self.cluster_digest = run.digest

        self._prepare(run)
        self._inventory(run)
        self._cluster(run)
        self._workers(run)
        self._upgrade(run)
        self._kubeconfig(run)
        self._health_gate(run)
        self._reset(run)
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "inventoryDir": self.inventory_dir,
                "clusterDigest": run.digest,
            }
        )

    @staticmethod
    def _context(name: str, args: KubesprayClusterArgs) -> _Run:
        """The control host's paths and connection, and the ansible command line every step uses."""
        cluster = args.cluster
        assert cluster.kubespray is not None and cluster.control_host is not None
        ks = cluster.kubespray
        ch = cluster.control_host
        src = f"{_q(ks.workdir)}/src"
        venv = f"{_q(ks.workdir)}/venv"
        inv_dir = f"{_q(ks.workdir)}/inventory/{shlex.quote(args.inventory_name)}"
        logs = f"{_q(ks.workdir)}/logs"

        proxy = None
        if ch.proxy_jump is not None:
            proxy = command.remote.ProxyConnectionArgs(
                host=ch.proxy_jump.host,
                port=ch.proxy_jump.port,
                user=ch.proxy_jump.user,
                private_key=args.ssh_private_key,
            )
        connection = command.remote.ConnectionArgs(
            host=ch.host,
            port=ch.port,
            user=ch.user,
            private_key=args.ssh_private_key,
            host_key=ch.host_key or None,
            proxy=proxy,
            # an unreachable control host fails within about a minute instead of hanging
            dial_error_limit=6,
            per_dial_timeout=10,
        )

        forks = min(max(len(cluster.nodes), 5), 50)
        key_flag = f" --private-key {_q(cluster.ansible_key_path)}" if cluster.ansible_key_path else ""
        checking, ssh_opts = ssh_args(cluster, f"{_dq(ks.workdir)}/inventory/{args.inventory_name}/known_hosts")
        ansible_env = (
            f"ANSIBLE_PIPELINING=True ANSIBLE_HOST_KEY_CHECKING={checking} ANSIBLE_FORCE_COLOR=False "
            f'ANSIBLE_SSH_ARGS="{ssh_opts}"'
        )
        login = f"--become --user {shlex.quote(cluster.ansible_user)}{key_flag}"
        base = f"{ansible_env} {venv}/bin/ansible-playbook -i {inv_dir}/hosts.yaml {login} --forks {forks}"

        def playbook(label: str, args_: str, pre: str = "") -> str:
            """Run one playbook with its log on the control host and a short tail in Pulumi."""
            label_q = shlex.quote(label)
            return "\n".join(
                [
                    "set -u",
                    # logs may carry what the nodes print: readable by the control host user only
                    "umask 077",
                    f"cd {src} || exit 1",
                    f"mkdir -p {logs}",
                    f'log={logs}/{shlex.quote(label + "-")}"$(date -u +%Y%m%dT%H%M%SZ)".log',
                    pre,
                    f'{base} {args_} > "$log" 2>&1',
                    "rc=$?",
                    'if [ "$rc" -ne 0 ]; then',
                    f"  printf '%s failed (exit %s); full log on the control host: %s\\n' {label_q} \"$rc\" \"$log\" >&2",
                    # the tail shown in Pulumi's output and state: lines that look like key
                    # material or credentials are withheld (they stay in the private log)
                    f'  tail -n {LOG_TAIL_LINES} "$log" | sed -E {shlex.quote(REDACT_SED)} >&2',
                    '  exit "$rc"',
                    "fi",
                    f"printf '%s ok; full log: %s\\n' {label_q} \"$log\"",
                    "grep -A20 'PLAY RECAP' \"$log\" | tail -n 20 || true",
                ]
            )

        digest = inv.cluster_digest(cluster, args.schedulable_control_plane)
        applied = f"{inv_dir}/hosts.applied.yaml"
        # cluster.etcdBackup.beforeChanges: a snapshot on the first etcd member before anything
        # changes a running cluster (admin.conf exists once cluster.yml has installed it)
        snapshot = (
            "\n".join(
                [
                    f"if [ -f {inv_dir}/artifacts/admin.conf ]; then",
                    playbook("etcd-snapshot", f"{inv_dir}/etcd-snapshot.yml"),
                    # where it went, in Pulumi's output
                    """grep -o 'etcd snapshot saved: [^"]*' "$log" | tail -n 1 || true""",
                    "fi",
                ]
            )
            if cluster.etcd_backup.before_changes
            else ""
        )
        removal_vars = f"-e skip_confirmation=true -e @{inv_dir}/remove-vars.yaml"
        kubectl = f"{inv_dir}/artifacts/kubectl --kubeconfig {inv_dir}/artifacts/admin.conf"
        kube_version = cluster.kube_version or "kubespray-default"
        return _Run(
            name=name, args=args, ks=ks, ch=ch, src=src, venv=venv, inv_dir=inv_dir, logs=logs,
            connection=connection, ansible_env=ansible_env, login=login, playbook=playbook, digest=digest,
            snapshot=snapshot, removal_vars=removal_vars, applied=applied, kubectl=kubectl, kube_version=kube_version,
        )  # fmt: skip

    def _prepare(self, run: _Run) -> None:
        """Fetches kubespray (its commit checked) and installs its requirements on the control host."""
        name, args, cluster, connection, src, venv, logs, ks, ch = run.name, run.args, run.args.cluster, run.connection, run.src, run.venv, run.logs, run.ks, run.ch
        # git fetch of a single tag works for any source: upstream, a mirror, or a local path
        ref = "refs/tags/" + ks.version if ks.version.startswith("v") else ks.version
        verify_commit = (
            [
                'got=$(git rev-parse "FETCH_HEAD^{commit}")',
                f'if [ "$got" != {shlex.quote(ks.commit)} ]; then',
                f"  echo {shlex.quote(f'kubespray {ks.version} from the source resolved to')} \"$got\""
                f" {shlex.quote(f', expected {ks.commit}: refusing to run it (tags move; if your mirror re-tagged the release, set cluster.kubespray.commit)')} >&2",
                "  exit 1",
                "fi",
            ]
            if ks.commit
            else []
        )
        # kubespray's own requirements (its pinned ansible), installed once per content; for a
        # known release from the program's hash-pinned lock of them (--require-hashes), after
        # checking the lock covers every pin of the fetched requirements.txt
        lock = f"{_q(ks.workdir)}/requirements-{shlex.quote(ks.version)}.lock"
        pip_args = f"--require-hashes -r {lock}" if ks.requirements_lock else "-r requirements.txt"
        install_requirements = [
            *(
                [
                    _write_file(lock, ks.requirements_lock),
                    "grep -v '^#' requirements.txt | grep -v '^[[:space:]]*$' | while read -r pin; do",
                    f'  grep -qixF "$pin \\\\" {lock} || {{ echo "kubespray requires $pin, which the lock of'
                    f' {ks.version} does not pin: refusing to install unverified packages" >&2; exit 1; }}',
                    "done",
                ]
                if ks.requirements_lock
                else []
            ),
            f'req=$(cat requirements.txt {lock if ks.requirements_lock else ""} | sha256sum | cut -d" " -f1)',
            f'if [ "$(cat {venv}/.k8s-platform-requirements 2>/dev/null)" != "$req" ]; then',
            f"  {venv}/bin/pip install -q {pip_args} > {logs}/prepare-pip.log 2>&1"
            f" || {{ tail -n {LOG_TAIL_LINES} {logs}/prepare-pip.log >&2; exit 1; }}",
            f'  printf "%s" "$req" > {venv}/.k8s-platform-requirements',
            "fi",
        ]
        prepare_script = "\n".join(
            [
                "set -eu",
                "umask 077",
                # controlHost.proxy / controlHost.pip: how this host reaches kubespray's source and PyPI
                *_exports(ch.proxy.env()),
                *_exports(ch.pip.env()),
                f"mkdir -p {_q(ks.workdir)} {logs}",
                f"if [ ! -d {src}/.git ]; then git init -q {src}; fi",
                f"cd {src}",
                f"git fetch -q --depth 1 {shlex.quote(ks.source)} {shlex.quote(ref)}",
                *verify_commit,
                "git checkout -q --force FETCH_HEAD",
                f"if [ ! -x {venv}/bin/python ]; then python3 -m venv {venv}; fi",
                *install_requirements,
                f"echo kubespray {shlex.quote(ks.version)} \"($(git rev-parse --short HEAD))\" ready in {src}",
            ]
        )
        create_prepare: pulumi.Input[str] = prepare_script
        if args.previous is not None:
            current = args.kube_version

            def guard(previous: Any) -> str:
                prev = previous if isinstance(previous, dict) else {}
                version, layout = prev.get("kubeVersion"), prev.get("clusterLayout")
                plan = cluster_plan.plan(
                    cluster,
                    args.schedulable_control_plane,
                    layout if isinstance(layout, dict) else None,
                    version if isinstance(version, str) else None,
                    current,
                )
                for line in plan.lines:
                    pulumi.log.info(f"plan: {line}", resource=self)
                if not plan.problems:
                    return prepare_script
                # the program stops with every problem in its error (a log call right before
                # might not be delivered before the program exits): the preview fails (a PR check
                # too), and an up registers no command at all — kubespray is not even fetched
                raise pulumi.RunError(
                    "\n".join(
                        [
                            *plan.problems,
                            f"{len(plan.problems)} cluster change(s) refused before anything runs; nothing was changed",
                        ]
                    )
                )

            # nothing in the record is secret; a StackReference output inherits the secrecy of the
            # stack's other outputs (the kubeconfig), which would turn this command's text secret
            # and make every preview show it as changed
            previous = pulumi.Output.unsecret(pulumi.Output.from_input(args.previous))
            create_prepare = previous.apply(guard)
        self.prepare = command.remote.Command(
            f"{name}-prepare",
            connection=connection,
            create=create_prepare,
            opts=pulumi.ResourceOptions(parent=self),
        )


    def _inventory(self, run: _Run) -> None:
        """Writes the inventory, group_vars and the files the playbooks read."""
        name, args, cluster, connection, inv_dir = run.name, run.args, run.args.cluster, run.connection, run.inv_dir
        rendered = inv.render(cluster, args.schedulable_control_plane)
        inventory_script = "\n".join(
            [
                "set -eu",
                f"mkdir -p {inv_dir}/group_vars/all {inv_dir}/artifacts",
                _write_file(f"{inv_dir}/hosts.yaml", rendered.hosts_yaml),
                _write_file(f"{inv_dir}/{inv.GROUP_VARS_PATH}", rendered.group_vars_yaml),
                # cluster.upgrade: extra vars of upgrade-cluster.yml only (`serial` is a play keyword)
                _write_file(f"{inv_dir}/upgrade-vars.yaml", yaml.safe_dump(cluster.upgrade.extra_vars(), sort_keys=True)),
                # cluster.nodeRemoval: extra vars of remove-node.yml; the nodes marked unreachable
                # (removed without touching the machine), read when a removal runs
                _write_file(f"{inv_dir}/remove-vars.yaml", yaml.safe_dump(cluster.removal.extra_vars(), sort_keys=True)),
                # cluster.hostKeyChecking: the nodes' pinned host keys (the learned ones are kept
                # in known_hosts beside it, which this step never rewrites)
                _write_file(f"{inv_dir}/known_hosts.pinned", known_hosts_lines(cluster)),
                # cluster.etcdBackup: the snapshot playbook and its script, beside the inventory
                _write_file(f"{inv_dir}/etcd-snapshot.yml", ETCD_SNAPSHOT_PLAYBOOK.read_text(encoding="utf-8")),
                _write_file(f"{inv_dir}/etcd-snapshot.sh", ETCD_SNAPSHOT_SCRIPT.read_text(encoding="utf-8")),
                _write_file(
                    f"{inv_dir}/unreachable-nodes",
                    "".join(f"{n.name}\n" for n in cluster.nodes if n.state == "unreachable"),
                ),
                f"echo inventory written to {inv_dir}",
            ]
        )
        self.inventory = command.remote.Command(
            f"{name}-inventory",
            connection=connection,
            create=inventory_script,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.prepare]),
        )


    def _cluster(self, run: _Run) -> None:
        """cluster.yml (after a snapshot and the members that leave), after the registry mirrors."""
        name, args, cluster, connection, playbook, venv, inv_dir = run.name, run.args, run.args.cluster, run.connection, run.playbook, run.venv, run.inv_dir
        digest, snapshot, removal_vars, applied = run.digest, run.snapshot, run.removal_vars, run.applied
        # Control-plane and etcd members leave the way kubespray documents: remove-node.yml with
        # the node still in the inventory (the one cluster.yml applied last), then cluster.yml
        # with the new one. Which members left is read on the control host, from that record.
        leaving_members = "\n".join(
            [
                f'if [ -f {applied} ]; then',
                f'  leaving=$({venv}/bin/python -c {shlex.quote(LEAVING_MEMBERS_PY)} {applied} {inv_dir}/hosts.yaml) || exit 1',
                '  for node in $leaving; do',
                f'    flags=""; if grep -qxF "$node" {inv_dir}/unreachable-nodes; then flags="{UNREACHABLE_FLAGS}"; fi',
                playbook("remove-node", f'-i {applied} remove-node.yml -e node="$node" {removal_vars} $flags'),
                '  done',
                'fi',
            ]
        )
        cluster_deps: list[pulumi.Resource] = [self.inventory]
        if cluster.registry_mirrors:
            self.registry_mirrors = self._registry_mirrors(name, args, connection, playbook, inv_dir)
            cluster_deps.append(self.registry_mirrors)
        self.cluster = command.remote.Command(
            f"{name}-cluster",
            connection=connection,
            # the digest is part of the command, so a changed layout is an update that re-runs
            # cluster.yml, and an unchanged one is no diff at all
            create="\n".join(
                [
                    snapshot,
                    leaving_members,
                    playbook("cluster", "cluster.yml", pre=f": cluster digest {digest}"),
                    f"cp {inv_dir}/hosts.yaml {applied}",
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=cluster_deps),
        )


    def _workers(self, run: _Run) -> None:
        """A command per worker-only node: scale.yml when it joins, remove-node.yml when it leaves."""
        name, cluster, connection, playbook, inv_dir = run.name, run.args.cluster, run.connection, run.playbook, run.inv_dir
        kubectl, removal_vars = run.kubectl, run.removal_vars
        self.nodes: dict[str, command.remote.Command] = {}
        for node in cluster.members:
            if not node.worker_only:
                continue
            self.nodes[node.name] = self._worker(name, node, connection, playbook, kubectl, inv_dir, removal_vars)


    def _upgrade(self, run: _Run) -> None:
        """upgrade-cluster.yml when cluster.kubeVersion changes."""
        name, args, connection, playbook, inv_dir = run.name, run.args, run.connection, run.playbook, run.inv_dir
        kubectl, snapshot, kube_version = run.kubectl, run.snapshot, run.kube_version
        self.upgrade = command.remote.Command(
            f"{name}-upgrade",
            connection=connection,
            # cluster.yml installs the version on first run; later changes of it upgrade
            create=f": kube_version {shlex.quote(kube_version)} installed by cluster.yml",
            # the drain/batch controls come from a file the inventory step writes, so changing them
            # alone is no diff here and upgrades nothing
            # (any change of this command's text re-runs it: it upgrades only while a node still
            # reports another kubelet version, so a changed script alone drains nothing)
            update="\n".join(
                [
                    f": kube_version {shlex.quote(kube_version)}",
                    *(
                        [
                            f"versions=$({kubectl} get nodes -o jsonpath='{{range .items[*]}}{{.status.nodeInfo.kubeletVersion}}{{\"\\n\"}}{{end}}' 2>/dev/null | sort -u)",
                            f'if [ "$versions" = {shlex.quote("v" + args.kube_version)} ]; then',
                            f"  echo every node already runs Kubernetes {shlex.quote(args.kube_version)}: upgrade-cluster.yml is not needed",
                            "  exit 0",
                            "fi",
                        ]
                        if args.kube_version
                        else []
                    ),
                    snapshot,
                    playbook("upgrade-cluster", f"upgrade-cluster.yml -e @{inv_dir}/upgrade-vars.yaml"),
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster, *self.nodes.values()]),
        )


    def _kubeconfig(self, run: _Run) -> None:
        """Reads admin.conf from the first control-plane node: the exported kubeconfig."""
        name, args, cluster, connection, src, venv, inv_dir, logs, ks = run.name, run.args, run.args.cluster, run.connection, run.src, run.venv, run.inv_dir, run.logs, run.ks
        ansible_env, login, digest, kube_version = run.ansible_env, run.login, run.digest, run.kube_version
        # admin.conf as the first control-plane node has it now (kubespray's client role copies
        # it on cluster.yml; the certificate renewal timer renews it there, not on this host),
        # then printed: the exported kubeconfig. Re-read after every cluster.yml and upgrade,
        # and when the exported one's client certificate nears its end (`refresh`, below).
        admin_conf_src = "{{ k8s_platform_admin_conf | default('/etc/kubernetes/admin.conf') }}"
        fetch_log = f"{logs}/kubeconfig-fetch.log"
        reader_script = "\n".join(
            [
                "set -u",
                "umask 077",
                f"cd {src} || exit 1",
                f"{ansible_env} {venv}/bin/ansible -i {inv_dir}/hosts.yaml 'kube_control_plane[0]' {login} "
                f"-m ansible.builtin.fetch -a \"src={admin_conf_src} dest={_dq(ks.workdir)}/inventory/"
                f"{args.inventory_name}/artifacts/admin.conf flat=true\" > {fetch_log} 2>&1"
                f" || {{ echo 'reading admin.conf from the first control-plane node failed:' >&2;"
                f" tail -n {LOG_TAIL_LINES} {fetch_log} | sed -E {shlex.quote(REDACT_SED)} >&2; exit 1; }}",
                f"cat {inv_dir}/artifacts/admin.conf",
            ]
        )
        refresh: pulumi.Input[str] = ""
        if args.previous_kubeconfig is not None:
            refresh = pulumi.Output.unsecret(
                pulumi.Output.all(args.previous_kubeconfig, args.previous_kubeconfig_refresh).apply(
                    lambda v: self._refresh_token(v[0], v[1])
                )
            )
        self.kubeconfig_refresh = pulumi.Output.from_input(refresh)
        self.kubeconfig_reader = command.remote.Command(
            f"{name}-kubeconfig",
            connection=connection,
            create=reader_script,
            triggers=[digest, kube_version, refresh],
            logging=command.remote.Logging.NONE,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.cluster, self.upgrade],
                additional_secret_outputs=["stdout", "stderr"],
            ),
        )
        server = inv.api_server_url(cluster)
        self.kubeconfig = pulumi.Output.secret(
            self.kubeconfig_reader.stdout.apply(lambda text: rewrite_server(text, server))
        )


    def _health_gate(self, run: _Run) -> None:
        """The health gate, after every change of the cluster."""
        name, cluster, connection, inv_dir = run.name, run.args.cluster, run.connection, run.inv_dir
        digest, kube_version = run.digest, run.kube_version
        self.health: command.remote.Command | None = None
        gate = cluster.health_gate
        if gate.enabled:
            script = f"{inv_dir}/health-gate.sh"
            node_args = " ".join(shlex.quote(n.name) for n in cluster.members)
            self.health = command.remote.Command(
                f"{name}-health",
                connection=connection,
                create="\n".join(
                    [
                        _write_file(script, HEALTH_GATE_SCRIPT.read_text(encoding="utf-8")),
                        f"bash {script} {inv_dir}/artifacts/kubectl {inv_dir}/artifacts/admin.conf "
                        f"{gate.timeout} {node_args}",
                    ]
                ),
                # re-checked whenever the cluster was changed: layout, version or node set
                triggers=[digest, kube_version, node_args],
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[self.cluster, *self.nodes.values(), self.upgrade, self.kubeconfig_reader],
                    custom_timeouts=pulumi.CustomTimeouts(create=f"{gate.timeout + 300}s"),
                ),
            )


    def _reset(self, run: _Run) -> None:
        """reset.yml on destroy, when cluster.resetOnDestroy is set."""
        name, cluster, connection, playbook = run.name, run.args.cluster, run.connection, run.playbook
        self.reset: command.remote.Command | None = None
        if cluster.reset_on_destroy:
            self.reset = command.remote.Command(
                f"{name}-reset",
                connection=connection,
                create="echo 'reset.yml runs when this stack is destroyed (resetOnDestroy: true)'",
                # kubespray's reset gate: skip_confirmation only skips the prompt, the
                # next task still fails unless reset_confirmation is set (v2.28+)
                delete=playbook("reset", "reset.yml -e reset_confirmation=yes"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
            )


    def _refresh_token(self, previous_kubeconfig: Any, previous_token: Any) -> str:
        """The reader's refresh trigger: unchanged until the exported certificate nears its end."""
        token, note = kubeconfig_refresh(
            previous_kubeconfig if isinstance(previous_kubeconfig, str) else "",
            previous_token if isinstance(previous_token, str) else "",
            dt.datetime.now(dt.UTC),
        )
        if note:
            pulumi.log.info(f"plan: {note}", resource=self)
        return token

    def _registry_mirrors(self, name: str, args: KubesprayClusterArgs, connection, playbook, inv_dir: str) -> command.remote.Command:  # type: ignore[no-untyped-def]
        """What kubespray leaves undone of cluster.registryMirrors on every member node (the
        mirrors' CA certificates, removing the registries that left the list: registry-mirrors.yml).
        The command holds the registries, the certificates and the member list, so any change of
        them runs it again, before cluster.yml and scale.yml pull through the mirrors. When the
        last mirror leaves, its delete removes what the program configured — unless the inventory
        still names mirrors (a destroy), which leaves the nodes as they are."""
        cluster = args.cluster
        members = ",".join(n.name for n in cluster.members)
        run = f"{inv_dir}/registry-mirrors.yml -e @{inv_dir}/registry-mirrors.yaml --limit {shlex.quote(members)}"
        cas = []
        lines = ["set -eu", "umask 022", f"mkdir -p {inv_dir}/registry-ca"]
        for m in cluster.registry_mirrors:
            if m.registry in args.registry_cas:
                lines.append(_write_file(f"{inv_dir}/registry-ca/{shlex.quote(m.registry)}.crt", args.registry_cas[m.registry]))
                cas.append({"src": f"{self.inventory_dir}/registry-ca/{m.registry}.crt", "dest": m.ca_node_path})
        managed = {"k8s_platform_registries": [m.registry for m in cluster.registry_mirrors], "k8s_platform_registry_cas": cas}
        playbook_file = _write_file(f"{inv_dir}/registry-mirrors.yml", REGISTRY_MIRRORS_PLAYBOOK.read_text(encoding="utf-8"))
        lines += [
            playbook_file,
            _write_file(f"{inv_dir}/registry-mirrors.yaml", yaml.safe_dump(managed, sort_keys=True)),
            "set +e",  # the playbook step reports its own failure, with its log's tail
            playbook("registry-mirrors", run),
        ]
        delete = "\n".join([
            f"if grep -q '^containerd_registries_mirrors:' {inv_dir}/{inv.GROUP_VARS_PATH} 2>/dev/null; then",
            "  echo the inventory still names registry mirrors: the stack is being destroyed, the nodes are left as they are",
            "  exit 0",
            "fi",
            playbook_file,
            _write_file(f"{inv_dir}/registry-mirrors.yaml", yaml.safe_dump(
                {"k8s_platform_registries": [], "k8s_platform_registry_cas": []}, sort_keys=True)),
            playbook("registry-mirrors", run),
        ])  # fmt: skip
        return command.remote.Command(
            f"{name}-registry-mirrors",
            connection=connection,
            create="\n".join(lines),
            delete=delete,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.inventory]),
        )

    def _worker(
        self, name, node: Node, connection, playbook, kubectl: str, inv_dir: str, removal_vars: str
    ) -> command.remote.Command:  # type: ignore[no-untyped-def]
        extra_inv = f"{inv_dir}/remove-{shlex.quote(node.name)}.yaml"
        node_q = shlex.quote(node.name)
        # A worker marked `state: unreachable` is no longer declared here: Pulumi deletes this
        # command, and the delete finds the node in unreachable-nodes (uploaded before deletes run).
        # Worker joins the cluster: scale.yml for just this node, after refreshing facts of all
        # nodes (kubespray's documented way to use --limit). A node that cluster.yml already
        # joined (first deployment) is skipped.
        create = "\n".join(
            [
                f"if {kubectl} get node {node_q} >/dev/null 2>&1; then echo node {node_q} already in the cluster; exit 0; fi",
                playbook("facts", "playbooks/facts.yml"),
                playbook(f"scale-{node.name}", f"scale.yml --limit {node_q}"),
            ]
        )
        # A node leaves the cluster only when it left the config: the inventory resource has
        # then already uploaded a hosts.yaml without it (deletes run after updates). On
        # `pulumi destroy` the node is still listed (the inventory is deleted after the
        # nodes), and the machines are left alone unless resetOnDestroy asks for reset.yml.
        delete = "\n".join(
            [
                f"if grep -qxF {shlex.quote('    ' + node.name + ':')} {inv_dir}/hosts.yaml 2>/dev/null; then",
                f"  echo node {node_q} is still in the inventory: the stack is being destroyed, the node is left as it is",
                "  exit 0",
                "fi",
                _write_file(extra_inv, inv.node_inventory(node)),
                f'flags=""; if grep -qxF {node_q} {inv_dir}/unreachable-nodes 2>/dev/null; then flags="{UNREACHABLE_FLAGS}"; fi',
                # (remove-vars.yaml: cluster.nodeRemoval as configured now, written by the inventory step)
                playbook(
                    f"remove-node-{node.name}",
                    f"-i {extra_inv} remove-node.yml -e node={node_q} {removal_vars} $flags",
                ),
            ]
        )
        return command.remote.Command(
            f"{name}-node-{node.name}",
            connection=connection,
            create=create,
            delete=delete,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
        )


KUBECONFIG_REFRESH_DAYS = 30


def client_cert_not_after(kubeconfig: str) -> dt.datetime | None:
    """When the (first) user's client certificate of a kubeconfig expires, or None."""
    try:
        doc = yaml.safe_load(kubeconfig) if kubeconfig else None
        users = doc.get("users") if isinstance(doc, dict) else None
        user = users[0].get("user") if isinstance(users, list) and users and isinstance(users[0], dict) else None
        data = user.get("client-certificate-data") if isinstance(user, dict) else None
        if not isinstance(data, str):
            return None
        cert = x509.load_pem_x509_certificate(base64.b64decode(data))
    except (ValueError, TypeError, yaml.YAMLError):
        return None
    return cert.not_valid_after_utc


def kubeconfig_refresh(previous_kubeconfig: str, previous_token: str, now: dt.datetime) -> tuple[str, str]:
    """(token, note): the exported kubeconfig is re-read when its client certificate expires
    within KUBECONFIG_REFRESH_DAYS; the token changes then and stays as it is otherwise (so the
    run after a refresh is no change at all)."""
    not_after = client_cert_not_after(previous_kubeconfig)
    if not_after is None or not_after - now > dt.timedelta(days=KUBECONFIG_REFRESH_DAYS):
        return previous_token, ""
    left = (not_after - now).days
    when = f"expired on {not_after:%Y-%m-%d}" if left < 0 else f"expires on {not_after:%Y-%m-%d} (in {left} days)"
    return (
        f"refreshed-{now:%Y-%m-%d}",
        f"kubeconfig: the exported client certificate {when}: admin.conf is read again from the first "
        "control-plane node (where the certificate renewal timer renews it)",
    )


def rewrite_server(kubeconfig: str, server: str) -> str:
    """Point every cluster entry of admin.conf at the API endpoint users can reach."""
    doc = yaml.safe_load(kubeconfig) if kubeconfig else None
    if not isinstance(doc, dict):
        return kubeconfig
    for entry in doc.get("clusters") or []:
        cluster = entry.get("cluster") if isinstance(entry, dict) else None
        if isinstance(cluster, dict):
            cluster["server"] = server
    return yaml.safe_dump(doc, sort_keys=False)

"""KubesprayCluster under Pulumi mocks: the command graph, its triggers and per-node operations."""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest
import yaml

from components import kubespray_inventory as inv
from components.kubespray import (
    ETCD_SNAPSHOT_PLAYBOOK,
    ETCD_SNAPSHOT_SCRIPT,
    KubesprayCluster,
    KubesprayClusterArgs,
    rewrite_server,
)
from stacks.config import parse_config
from tests.support.mocks import (
    EXAMPLE_HOST_KEYS,
    FAKE_ADMIN_CONF,
    PROJECT_ROOT,
    PlatformMocks,
    kubespray_config,
    run_program,
)

CMD = "command:remote:Command"


def build_cluster(cfg: dict[str, Any], previous: dict[str, Any] | None = None) -> KubesprayCluster:
    """The component under mocks; `previous`: what the stack applied last ({"kubeVersion", "clusterLayout"})."""
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    holder: dict[str, KubesprayCluster] = {}

    def program() -> Any:
        c = KubesprayCluster(
            "cluster",
            KubesprayClusterArgs(
                cluster=spec.cluster,
                schedulable_control_plane=spec.schedulable_control_plane,
                ssh_private_key=pulumi.Output.secret("test-key-material"),
                inventory_name="k8s-platform-test",
                kube_version=spec.cluster.kube_version,
                previous=previous,
            ),
        )
        holder["c"] = c
        return c.kubeconfig.apply(lambda k: holder.__setitem__("kubeconfig", k))

    run_program(program)
    return holder["c"]


def commands(mocks: PlatformMocks) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in mocks.of_type(CMD)}


def test_command_graph_and_jobs(mocks: PlatformMocks) -> None:
    build_cluster(kubespray_config())
    cmds = commands(mocks)
    # node3 has etcd, so no worker-only nodes in the notes' layout
    assert set(cmds) == {"cluster-prepare", "cluster-inventory", "cluster-cluster", "cluster-upgrade", "cluster-kubeconfig",
                         "cluster-health"}  # fmt: skip
    assert "git fetch -q --depth 1 https://github.com/kubernetes-sigs/kubespray.git refs/tags/v2.31.0" in cmds["cluster-prepare"]["create"]
    assert "-m venv" in cmds["cluster-prepare"]["create"] and "requirements.txt" in cmds["cluster-prepare"]["create"]
    cluster = cmds["cluster-cluster"]["create"]
    assert "ansible-playbook -i " in cluster and " cluster.yml" in cluster
    assert "--become --user tiger" in cluster and "ANSIBLE_PIPELINING=True" in cluster and "ControlPersist" in cluster
    assert "--forks 5" in cluster
    assert "PLAY RECAP" in cluster and "full log on the control host" in cluster
    assert "admin.conf" in cmds["cluster-kubeconfig"]["create"]
    assert "delete" not in cmds["cluster-cluster"]


def test_health_gate_runs_after_every_cluster_change_with_the_stacks_nodes(mocks: PlatformMocks) -> None:
    cfg = kubespray_config()
    c = build_cluster(cfg)
    gate = commands(mocks)["cluster-health"]
    script = gate["create"]
    # the script is uploaded (base64, like the inventory) and run with the stack's nodes
    inv_dir = '"$HOME"/kubespray/inventory/k8s-platform-test'
    assert f"base64 -d > {inv_dir}/health-gate.sh.tmp" in script
    names = " ".join(n["name"] for n in cfg["cluster"]["nodes"])
    assert script.endswith(
        f"bash {inv_dir}/health-gate.sh {inv_dir}/artifacts/kubectl {inv_dir}/artifacts/admin.conf 900 {names}"
    ), script[-300:]
    assert gate["triggers"][0] == c.cluster_digest and gate["triggers"][2] == names
    assert c.health is not None

    cfg["cluster"]["healthGate"] = {"timeout": 120}
    build_cluster(cfg)
    assert " 120 node1" in commands(mocks)["cluster-health"]["create"]
    cfg["cluster"]["healthGate"] = {"enabled": False}
    assert build_cluster(cfg).health is None


def test_dependencies_prepare_inventory_cluster_kubeconfig(mocks: PlatformMocks) -> None:
    c = build_cluster(kubespray_config())
    # ResourceOptions.depends_on is what orders the remote commands
    assert c.inventory._transformations is not None  # resource exists
    from pulumi.resource import Resource

    def deps(res: Resource) -> list[Resource]:
        opts = getattr(res, "_opts", None)
        return list(opts.depends_on) if opts and opts.depends_on else []

    # fall back to the recorded graph when the SDK keeps no opts on the resource
    graph = {
        "cluster-inventory": ["cluster-prepare"],
        "cluster-cluster": ["cluster-inventory"],
        "cluster-upgrade": ["cluster-cluster"],
        "cluster-kubeconfig": ["cluster-cluster", "cluster-upgrade"],
    }
    by_obj = {c.prepare: "cluster-prepare", c.inventory: "cluster-inventory", c.cluster: "cluster-cluster",
              c.upgrade: "cluster-upgrade", c.kubeconfig_reader: "cluster-kubeconfig"}
    for res, name in by_obj.items():
        recorded = [by_obj[d] for d in deps(res) if d in by_obj]
        if recorded or name == "cluster-prepare":
            assert recorded == graph.get(name, []), f"{name}: depends on {recorded}"


def test_uploaded_inventory_is_what_the_cli_prints(mocks: PlatformMocks) -> None:
    cfg = kubespray_config()
    build_cluster(cfg)
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    rendered = inv.render(spec.cluster, True)
    script = commands(mocks)["cluster-inventory"]["create"]
    files = _uploaded_files(script)
    assert [files["hosts.yaml"], files["k8s-platform.yml"]] == [rendered.hosts_yaml, rendered.group_vars_yaml]
    assert yaml.safe_load(files["upgrade-vars.yaml"]) == {
        "drain_nodes": True, "drain_timeout": "360s", "drain_grace_period": 300, "serial": "20%",
        "upgrade_node_pause_seconds": 0,
    }  # fmt: skip
    assert yaml.safe_load(files["remove-vars.yaml"]) == {"drain_timeout": "360s", "drain_grace_period": 300,
                                                           "drain_retries": 3}  # fmt: skip
    assert files["known_hosts.pinned"] == files["unreachable-nodes"] == "", "no pinned key, no node marked unreachable"
    assert files["etcd-snapshot.yml"] == ETCD_SNAPSHOT_PLAYBOOK.read_text()
    assert files["etcd-snapshot.sh"] == ETCD_SNAPSHOT_SCRIPT.read_text()
    assert len(files) == 8, sorted(files)


def test_kubeconfig_is_secret_and_points_at_endpoint(mocks: PlatformMocks) -> None:
    cfg = kubespray_config()
    cfg["cluster"]["apiServerEndpoint"] = "https://k8s.example.com:6443"
    c = build_cluster(cfg)
    secret_flag: dict[str, bool] = {}

    def check() -> Any:
        return pulumi.Output.is_secret(c.kubeconfig)

    import asyncio

    secret_flag["v"] = asyncio.get_event_loop().run_until_complete(c.kubeconfig.is_secret())
    assert secret_flag["v"] is True
    rewritten = rewrite_server(FAKE_ADMIN_CONF, "https://k8s.example.com:6443")
    assert "server: https://k8s.example.com:6443" in rewritten and "127.0.0.1" not in rewritten
    assert mocks.named("cluster-kubeconfig").inputs.get("logging") == "none"


def test_default_server_is_first_control_plane(ks_config: dict[str, Any]) -> None:
    spec = parse_config(ks_config, project_root=PROJECT_ROOT)
    assert inv.api_server_url(spec.cluster) == "https://10.4.17.167:6443"


def _with_worker(cfg: dict[str, Any], name: str = "node4", addr: str = "10.4.17.170") -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    cfg["cluster"]["nodes"].append({"name": name, "address": addr, "roles": ["worker"]})
    return cfg


def test_worker_only_node_gets_scale_and_remove(mocks: PlatformMocks) -> None:
    build_cluster(_with_worker(kubespray_config()))
    node = commands(mocks)["cluster-node-node4"]
    assert "scale.yml --limit node4" in node["create"]
    assert "playbooks/facts.yml" in node["create"]
    assert "get node node4" in node["create"]  # already joined by cluster.yml: skip
    assert "remove-node.yml -e node=node4 -e skip_confirmation=true -e @~/kubespray/inventory/k8s-platform-test/remove-vars.yaml $flags" in node["delete"].replace('"$HOME"/', "~/")
    # remove-node.yml needs the node in the inventory even after it left the config
    assert "remove-node4.yaml" in node["delete"]


def test_cluster_digest_ignores_workers_and_kube_version(ks_config: dict[str, Any]) -> None:
    base = parse_config(ks_config, project_root=PROJECT_ROOT).cluster
    with_worker = parse_config(_with_worker(ks_config), project_root=PROJECT_ROOT).cluster
    assert inv.cluster_digest(base, True) == inv.cluster_digest(with_worker, True)
    upgraded = copy.deepcopy(ks_config)
    upgraded["cluster"]["kubeVersion"] = "1.35.4"
    assert inv.cluster_digest(base, True) == inv.cluster_digest(parse_config(upgraded, project_root=PROJECT_ROOT).cluster, True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("cluster.kubespray.version", "v2.30.0"),
        ("cluster.kubespray.source", "https://mirror.example.com/kubespray.git"),
        ("cluster.proxy.http", "http://10.0.0.9:3128"),
        ("cluster.imageRepos.quay", "mirror.example.com/quay"),
        ("cluster.networkPlugin", "cilium"),
        ("cluster.containerManager", "crio"),
        ("cluster.extraVars", {"etcd_deployment_type": "host"}),
    ],
)
def test_cluster_digest_changes_with_each_input(ks_config: dict[str, Any], path: str, value: Any) -> None:
    before = parse_config(ks_config, project_root=PROJECT_ROOT)
    changed = copy.deepcopy(ks_config)
    node: Any = changed
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    if path == "cluster.kubespray.version":  # a release without a table entry: staging needs its commit
        changed["cluster"]["kubespray"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    after = parse_config(changed, project_root=PROJECT_ROOT)
    assert inv.cluster_digest(before.cluster, before.schedulable_control_plane) != inv.cluster_digest(
        after.cluster, after.schedulable_control_plane
    ), path


def test_schedulable_control_plane_changes_kube_node(ks_config: dict[str, Any]) -> None:
    ks_config["cluster"]["nodes"][0]["roles"] = ["control-plane", "etcd"]
    on = parse_config(ks_config, project_root=PROJECT_ROOT)
    ks_config["schedulableControlPlane"] = False
    off = parse_config(ks_config, project_root=PROJECT_ROOT)
    assert "node1" in inv.hosts_document(on.cluster, True)["all"]["children"]["kube_node"]["hosts"]
    assert "node1" not in inv.hosts_document(off.cluster, False)["all"]["children"]["kube_node"]["hosts"]
    assert inv.cluster_digest(on.cluster, True) != inv.cluster_digest(off.cluster, False)


def test_identical_config_gives_identical_commands() -> None:
    first, second = PlatformMocks(), PlatformMocks()
    for m in (first, second):
        pulumi.runtime.set_mocks(m, project="k8s-platform", stack="dev", preview=False)
        build_cluster(_with_worker(kubespray_config()))
    assert commands(first) == commands(second)


def commands_before_after(mocks: PlatformMocks, **cluster: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The commands of the test stack, then of the same stack with `cluster` keys changed."""
    cfg = kubespray_config()
    build_cluster(cfg)
    before = commands(mocks)
    mocks.resources.clear()
    changed = copy.deepcopy(cfg)
    changed["cluster"].update(cluster)
    build_cluster(changed)
    return before, commands(mocks)


def test_kube_version_change_is_an_upgrade_not_a_cluster_run(mocks: PlatformMocks) -> None:
    before, after = commands_before_after(mocks, kubeVersion="1.35.4")
    assert before["cluster-cluster"] == after["cluster-cluster"]
    assert before["cluster-inventory"] != after["cluster-inventory"]  # group_vars carry kube_version
    assert "upgrade-cluster.yml" in after["cluster-upgrade"]["update"]
    assert before["cluster-upgrade"]["create"] != after["cluster-upgrade"]["create"]  # a diff, so update runs


def test_upgrade_controls_reach_upgrade_cluster_only_and_upgrade_nothing_by_themselves(mocks: PlatformMocks) -> None:
    controls = {"drain": True, "drainTimeout": "900s", "drainGracePeriod": 60, "serial": "1", "pauseSeconds": 120}
    before, after = commands_before_after(mocks, upgrade=controls)
    inv_dir = '"$HOME"/kubespray/inventory/k8s-platform-test'
    assert f"upgrade-cluster.yml -e @{inv_dir}/upgrade-vars.yaml" in after["cluster-upgrade"]["update"]
    # only the uploaded file changes: no upgrade, no cluster.yml run
    assert before["cluster-upgrade"] == after["cluster-upgrade"]
    assert before["cluster-cluster"] == after["cluster-cluster"]
    assert before["cluster-inventory"] != after["cluster-inventory"]
    assert "upgrade-vars" not in after["cluster-cluster"]["create"]
    import base64
    import re

    blobs = [base64.b64decode(b).decode() for b in re.findall(r"printf '%s' (\S+) \| base64 -d", after["cluster-inventory"]["create"])]
    assert yaml.safe_load(blobs[2]) == {
        "drain_nodes": True, "drain_timeout": "900s", "drain_grace_period": 60, "serial": "1",
        "upgrade_node_pause_seconds": 120,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("previous", "current", "words"),
    [
        ("1.34.4", "1.34.4", None),
        ("1.34.4", "1.34.7", None),  # patch up
        ("1.34.7", "1.35.0", None),  # one minor up
        ("", "1.35.4", None),  # first deployment
        ("1.34.4", "1.34.3", "do not downgrade"),
        ("1.35.0", "1.34.7", "do not downgrade"),
        ("1.33.5", "1.35.4", "one minor at a time. Upgrade to the newest 1.34.x first"),
    ],
)
def test_kube_version_change_rules(previous: str, current: str, words: str | None) -> None:
    from components.kubespray import check_kube_version_change

    problem = check_kube_version_change(previous, current)
    if words is None:
        assert problem is None
    else:
        assert problem is not None and words in problem and problem.startswith("cluster.kubeVersion: ")
        assert previous in problem and current in problem


def test_a_refused_kube_version_stops_the_program_before_any_command(mocks: PlatformMocks) -> None:
    cfg = kubespray_config()
    cfg["cluster"]["kubeVersion"] = "1.35.4"
    build_cluster(cfg, previous={"kubeVersion": "1.35.4"})
    assert "cluster-prepare" in commands(mocks)
    mocks.resources.clear()
    with pytest.raises(Exception) as refused:
        build_cluster(cfg, previous={"kubeVersion": "1.33.11"})
    assert "1 cluster change(s) refused before anything runs" in str(refused.value)
    assert "cluster.kubeVersion: cannot go from the deployed 1.33.11 to 1.35.4 in one step" in str(refused.value)
    assert not [r for r in mocks.of_type(CMD)], "no command is registered: nothing runs"


def test_reset_only_when_asked(mocks: PlatformMocks) -> None:
    build_cluster(kubespray_config())
    assert "cluster-reset" not in commands(mocks)
    mocks.resources.clear()
    cfg = kubespray_config()
    cfg["cluster"]["resetOnDestroy"] = True
    build_cluster(cfg)
    reset = commands(mocks)["cluster-reset"]
    assert "reset.yml -e reset_confirmation=yes" in reset["delete"]
    assert "skip_confirmation" not in reset["delete"]
    assert "ansible-playbook" not in reset["create"]


def test_no_secret_in_any_command(mocks: PlatformMocks) -> None:
    build_cluster(_with_worker(kubespray_config()))
    for name, inputs in commands(mocks).items():
        for key in ("create", "update", "delete"):
            assert "test-key-material" not in str(inputs.get(key, "")), name


def test_bastion_and_host_key_reach_the_connection(mocks: PlatformMocks) -> None:
    cfg = kubespray_config()
    cfg["cluster"]["controlHost"]["proxyJump"] = {"host": "bastion.example.com", "user": "jump"}
    build_cluster(cfg)
    wrapped = mocks.named("cluster-cluster").inputs["connection"]
    # the connection carries the private key, so the whole object travels as a secret
    assert "4dabf18193072939515e22adb298388d" in wrapped, "connection is not marked secret"
    conn = wrapped["value"]
    assert conn["proxy"]["host"] == "bastion.example.com" and conn["proxy"]["user"] == "jump"
    assert conn["hostKey"].startswith("ssh-ed25519 ")
    assert conn["dialErrorLimit"] == 6


def test_preview_with_unknowns(preview_mocks: PlatformMocks) -> None:
    build_cluster(_with_worker(kubespray_config()))
    assert {r.name for r in preview_mocks.of_type(CMD)} >= {"cluster-cluster", "cluster-node-node4"}


def test_destroy_leaves_workers_alone_removal_from_config_removes_them(mocks: PlatformMocks) -> None:
    build_cluster(_with_worker(kubespray_config()))
    delete = commands(mocks)["cluster-node-node4"]["delete"]
    guard, rest = delete.split("remove-node.yml", 1)[0], delete
    # still listed in the uploaded inventory = the stack is being destroyed: exit before remove-node.yml
    assert "grep -qxF '    node4:'" in guard and "/hosts.yaml" in guard and "exit 0" in guard
    assert rest.index("exit 0") < rest.index("remove-node.yml")


def test_prepare_checks_the_pinned_commit_and_installs_requirements_once(mocks: PlatformMocks) -> None:
    build_cluster(kubespray_config())
    prepare = commands(mocks)["cluster-prepare"]["create"]
    assert 'got=$(git rev-parse "FETCH_HEAD^{commit}")' in prepare
    assert "1c9add48975060f45396b34d8e022c30d7f80dab" in prepare
    assert prepare.index("rev-parse") < prepare.index("git checkout")  # nothing unverified is checked out
    assert "refusing to run it" in prepare
    # pip only when requirements.txt changed since the last install
    assert ".k8s-platform-requirements" in prepare and "umask 077" in prepare


def test_prepare_without_a_known_commit_does_not_check() -> None:
    cfg = kubespray_config("dev")
    cfg["cluster"]["kubespray"]["version"] = "v2.29.1"
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    assert spec.cluster.kubespray is not None and spec.cluster.kubespray.commit == ""


def test_prepare_installs_the_hash_pinned_lock_of_a_known_release(mocks: PlatformMocks) -> None:
    build_cluster(kubespray_config())
    prepare = commands(mocks)["cluster-prepare"]["create"]
    assert "pip install -q --require-hashes -r" in prepare and "requirements-v2.31.0.lock" in prepare
    assert "ansible==11.13.0" in __import__("base64").b64decode(
        prepare.split("printf '%s' ", 1)[1].split(" ", 1)[0]
    ).decode(), "the lock is uploaded with the script"
    # the lock must cover every pin of the fetched requirements.txt, checked before pip runs
    assert prepare.index('grep -qixF "$pin \\\\"') < prepare.index("pip install")


def test_an_unknown_release_installs_its_requirements_as_they_are() -> None:
    cfg = kubespray_config("dev")
    cfg["cluster"]["kubespray"]["version"] = "v2.29.1"
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    assert spec.cluster.kubespray is not None and spec.cluster.kubespray.requirements_lock == ""


def test_unreachable_worker_is_removed_without_touching_it(mocks: PlatformMocks) -> None:
    cfg = _with_worker(kubespray_config())
    cfg["cluster"]["nodes"][-1]["state"] = "unreachable"
    cfg["cluster"]["nodeRemoval"] = {"drainTimeout": "120s", "drainRetries": 5}
    build_cluster(cfg)
    cmds = commands(mocks)
    # no longer declared: Pulumi deletes its command, whose delete runs remove-node.yml
    assert "cluster-node-node4" not in cmds
    inventory = cmds["cluster-inventory"]["create"]
    files = _uploaded_files(inventory)
    assert files["unreachable-nodes"] == "node4\n"
    assert yaml.safe_load(files["remove-vars.yaml"]) == {"drain_timeout": "120s", "drain_grace_period": 300,
                                                           "drain_retries": 5}  # fmt: skip
    hosts = yaml.safe_load(files["hosts.yaml"])
    assert "node4" not in hosts["all"]["hosts"], "cluster.yml, scale.yml and upgrades must not reach a dead machine"
    assert " node4" not in cmds["cluster-health"]["create"]


def test_the_removal_flags_come_from_the_list_the_inventory_step_uploads(mocks: PlatformMocks) -> None:
    build_cluster(_with_worker(kubespray_config()))
    delete = commands(mocks)["cluster-node-node4"]["delete"]
    assert 'grep -qxF node4 "$HOME"/kubespray/inventory/k8s-platform-test/unreachable-nodes' in delete
    assert 'flags="-e reset_nodes=false -e allow_ungraceful_removal=true"' in delete


def test_leaving_members_are_removed_before_cluster_yml(mocks: PlatformMocks) -> None:
    build_cluster(kubespray_config())
    script = commands(mocks)["cluster-cluster"]["create"]
    removal = script.index("remove-node.yml")
    assert removal < script.index(" cluster.yml"), "kubespray: remove-node.yml first, the node still in the inventory"
    assert '-i "$HOME"/kubespray/inventory/k8s-platform-test/hosts.applied.yaml remove-node.yml -e node="$node"' in script
    assert script.rstrip().endswith(
        'cp "$HOME"/kubespray/inventory/k8s-platform-test/hosts.yaml "$HOME"/kubespray/inventory/k8s-platform-test/hosts.applied.yaml'
    ), "the applied inventory is recorded only after cluster.yml succeeded"


def _uploaded_files(script: str) -> dict[str, str]:
    import base64
    import re

    out = {}
    for encoded, path in re.findall(r"printf '%s' (\S+) \| base64 -d > (\S+)\.tmp", script):
        encoded = encoded.strip("'")  # an empty file's content is the quoted empty string
        out[path.rsplit("/", 1)[-1]] = base64.b64decode(encoded).decode()
    return out


def test_node_host_keys_are_checked_by_default(mocks: PlatformMocks) -> None:
    cfg = _with_worker(kubespray_config())
    cfg["cluster"]["nodes"][-1]["hostKey"] = EXAMPLE_HOST_KEYS[4]
    build_cluster(cfg)
    cmds = commands(mocks)
    known = '"$HOME"/kubespray/inventory/k8s-platform-test/known_hosts'.replace('"$HOME"', "$HOME")
    for name in ("cluster-cluster", "cluster-upgrade", "cluster-node-node4"):
        script = " ".join(str(cmds[name].get(k, "")) for k in ("create", "update", "delete"))
        assert "ANSIBLE_HOST_KEY_CHECKING=True" in script and "ANSIBLE_HOST_KEY_CHECKING=False" not in script, name
        assert (f'ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=30m -o ServerAliveInterval=30 '
                f'-o UserKnownHostsFile={known} -o GlobalKnownHostsFile={known}.pinned '
                '-o StrictHostKeyChecking=accept-new"') in script, name  # fmt: skip
    files = _uploaded_files(cmds["cluster-inventory"]["create"])
    assert files["known_hosts.pinned"] == f"10.4.17.170 {EXAMPLE_HOST_KEYS[4]}\n"


def test_pinned_learns_nothing_and_off_is_dev_only(mocks: PlatformMocks) -> None:
    cfg = kubespray_config()
    cfg["cluster"]["hostKeyChecking"] = "pinned"
    for i, n in enumerate(cfg["cluster"]["nodes"]):
        n["hostKey"] = EXAMPLE_HOST_KEYS[1 + i]
    build_cluster(cfg)
    script = commands(mocks)["cluster-cluster"]["create"]
    assert "-o UserKnownHostsFile=/dev/null" in script and "-o StrictHostKeyChecking=yes" in script
    mocks.resources.clear()
    dev = kubespray_config("dev")
    dev["cluster"]["hostKeyChecking"] = "off"
    build_cluster(dev)
    script = commands(mocks)["cluster-cluster"]["create"]
    assert "ANSIBLE_HOST_KEY_CHECKING=False" in script and "KnownHostsFile" not in script


def test_control_host_proxy_and_pip_mirror_reach_git_and_pip(mocks: PlatformMocks) -> None:
    build_cluster(kubespray_config())
    plain = commands(mocks)["cluster-prepare"]["create"]
    assert "export " not in plain, "nothing configured: the prepare script is as before"
    mocks.resources.clear()
    cfg = kubespray_config()
    cfg["cluster"]["controlHost"]["proxy"] = {"https": "http://10.4.17.1:3128", "noProxy": "10.4.17.0/24,.corp"}
    cfg["cluster"]["controlHost"]["pip"] = {"indexUrl": "http://10.4.17.5:8080/simple", "trustedHost": "10.4.17.5:8080"}
    build_cluster(cfg)
    script = commands(mocks)["cluster-prepare"]["create"]
    lines = script.splitlines()
    exports = [line for line in lines if line.startswith("export ")]
    assert exports == [
        "export https_proxy=http://10.4.17.1:3128", "export HTTPS_PROXY=http://10.4.17.1:3128",
        "export no_proxy=10.4.17.0/24,.corp", "export NO_PROXY=10.4.17.0/24,.corp",
        "export PIP_INDEX_URL=http://10.4.17.5:8080/simple", "export PIP_TRUSTED_HOST=10.4.17.5:8080",
    ]  # fmt: skip
    first_use = min(i for i, line in enumerate(lines) if "git fetch" in line or "pip install" in line)
    assert max(lines.index(e) for e in exports) < first_use, "set before git fetch and pip run"


@pytest.mark.parametrize(
    ("access", "server", "group_vars"),
    [
        ({"mode": "kubeVip", "address": "10.4.17.5", "subnet": "10.4.17.0/24"}, "https://10.4.17.5:6443",
         {"kube_vip_enabled": True, "kube_vip_controlplane_enabled": True, "kube_vip_arp_enabled": True,
          "kube_vip_address": "10.4.17.5", "kube_proxy_strict_arp": True,
          "loadbalancer_apiserver": {"address": "10.4.17.5", "port": 6443}}),
        ({"mode": "externalLB", "address": "10.4.17.6", "port": 8383, "domainName": "api.example.com"},
         "https://api.example.com:8383",
         {"loadbalancer_apiserver": {"address": "10.4.17.6", "port": 8383},
          "apiserver_loadbalancer_domain_name": "api.example.com"}),
        ({"mode": "externalLB", "address": "10.4.17.6"}, "https://10.4.17.6:6443",
         {"loadbalancer_apiserver": {"address": "10.4.17.6", "port": 6443}}),
    ],
    ids=["kubeVip", "externalLB-name", "externalLB-ip"],
)  # fmt: skip
def test_api_access_sets_kubesprays_vars_and_the_kubeconfig(
    mocks: PlatformMocks, access: dict[str, Any], server: str, group_vars: dict[str, Any]
) -> None:
    cfg = kubespray_config()
    cfg["cluster"]["apiAccess"] = access
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    rendered = yaml.safe_load(inv.render(spec.cluster, True).group_vars_yaml)
    managed = {k: v for k, v in rendered.items() if k.startswith(("kube_vip", "loadbalancer", "apiserver_lb",
                                                                    "apiserver_loadbalancer", "kube_proxy_strict"))}  # fmt: skip
    assert managed == group_vars
    assert "supplementary_addresses_in_ssl_keys" not in rendered, "kubespray adds the LB address to the SANs itself"
    assert inv.api_server_url(spec.cluster) == server
    c = build_cluster(cfg)
    assert c is not None
    exported = yaml.safe_load(rewrite_server(FAKE_ADMIN_CONF, inv.api_server_url(spec.cluster)))
    assert exported["clusters"][0]["cluster"]["server"] == server


def test_snapshot_before_cluster_yml_and_upgrades_not_before_workers(mocks: PlatformMocks) -> None:
    build_cluster(_with_worker(kubespray_config()))
    cmds = commands(mocks)
    cluster = cmds["cluster-cluster"]["create"]
    snap = cluster.index("/etcd-snapshot.yml")
    assert cluster.index("if [ -f \"$HOME\"/kubespray/inventory/k8s-platform-test/artifacts/admin.conf ]; then") < snap
    assert snap < cluster.index("remove-node.yml") < cluster.index(" cluster.yml"), "snapshot, leaving members, cluster.yml"
    upgrade = cmds["cluster-upgrade"]["update"]
    assert upgrade.index("/etcd-snapshot.yml") < upgrade.index("upgrade-cluster.yml -e @")
    assert "etcd-snapshot" not in cmds["cluster-node-node4"]["create"] + cmds["cluster-node-node4"]["delete"]
    mocks.resources.clear()
    cfg = kubespray_config()
    cfg["cluster"]["etcdBackup"] = {"beforeChanges": False}
    build_cluster(cfg)
    cmds = commands(mocks)
    assert "etcd-snapshot.yml" not in cmds["cluster-cluster"]["create"] + cmds["cluster-upgrade"]["update"]


def test_the_upgrade_step_upgrades_only_while_a_node_runs_another_version(mocks: PlatformMocks) -> None:
    """pulumi-command re-runs `update` on any change of the command's text, e.g. a new program
    version: the step must not drain every node again for a version they already run."""
    build_cluster(kubespray_config())
    update = commands(mocks)["cluster-upgrade"]["update"]
    guard = update.index("if [ \"$versions\" = v1.34.4 ]; then")
    assert "get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.kubeletVersion}" in update
    assert guard < update.index("upgrade-cluster.yml -e @")
    assert "upgrade-cluster.yml is not needed" in update[guard:]


def _kubeconfig_with_cert(days: float) -> str:
    import base64
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))  # fmt: skip
    pem = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    return yaml.safe_dump({"users": [{"name": "kubernetes-admin", "user": {"client-certificate-data": pem}}]})


def test_kubeconfig_refresh_token_changes_only_when_the_certificate_nears_its_end() -> None:
    import datetime as dt

    from components.kubespray import client_cert_not_after, kubeconfig_refresh

    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    fresh, near = _kubeconfig_with_cert(300), _kubeconfig_with_cert(12)
    assert client_cert_not_after(fresh) is not None and client_cert_not_after("not yaml: [") is None
    assert client_cert_not_after(yaml.safe_dump({"users": [{"user": {"token": "x"}}]})) is None
    real_now = dt.datetime.now(dt.UTC)
    # far from its end: the recorded token stays, whatever it is (no change, no diff)
    assert kubeconfig_refresh(fresh, "", real_now) == ("", "")
    assert kubeconfig_refresh(fresh, "refreshed-2026-01-05", real_now) == ("refreshed-2026-01-05", "")
    # within 30 days: a new token (the reader runs again), and a plan line saying why
    token, note = kubeconfig_refresh(near, "refreshed-2026-01-05", real_now)
    assert token == f"refreshed-{real_now:%Y-%m-%d}" and "expires on" in note and "(in 11 days)" in note, note
    assert "expired on" in kubeconfig_refresh(near, "", now + dt.timedelta(days=400))[1]
    # nothing to read (first run, existing mode, no client certificate): nothing happens
    assert kubeconfig_refresh("", "", real_now) == ("", "")


def test_the_reader_fetches_admin_conf_from_the_first_control_plane_node(mocks: PlatformMocks) -> None:
    build_cluster(kubespray_config(), previous={"kubeVersion": "1.34.4"})
    reader = mocks.named("cluster-kubeconfig").inputs
    script = reader["create"]
    fetch = script.index("/bin/ansible -i ")
    assert "'kube_control_plane[0]' --become --user tiger" in script
    assert ("-m ansible.builtin.fetch -a \"src={{ k8s_platform_admin_conf | default('/etc/kubernetes/admin.conf') }} "
            "dest=$HOME/kubespray/inventory/k8s-platform-test/artifacts/admin.conf flat=true\"") in script  # fmt: skip
    assert fetch < script.index("cat \"$HOME\"/kubespray/inventory/k8s-platform-test/artifacts/admin.conf")
    assert "> \"$HOME\"/kubespray/logs/kubeconfig-fetch.log 2>&1" in script, "stdout is the kubeconfig only"

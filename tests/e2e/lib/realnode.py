"""One real Kubernetes node on this machine, beside the local cluster's KWOK nodes.

containerd (Debian's, with runc) + kubelet + kube-proxy (built by scripts/engine.sh from
the same Kubernetes release as the API server), CNI `bridge` + `host-local` from Debian's
containernetworking-plugins. Everything it owns lives under its own directory and is
stopped by PID:

- containerd: its own root, state and socket (`<dir>/containerd`), images imported from
  lib/images.py (no registry is reachable), `sandbox_image` = the local pause image;
- CNI: a bridge `k8sp<id>` with the gateway address of `pod_cidr` (also the node's
  InternalIP: the kubelet refuses loopback), pods in network namespaces containerd makes;
  no masquerading, so no pod reaches beyond this machine;
- kubelet: client certificate `system:node:<name>` from the cluster's CA, bound to
  ClusterRole `system:node` (the API server authorizes with RBAC only), cgroupfs driver
  under its own cgroup root (`/k8s-platform-e2e-<id>`: this machine has cgroup v1, which
  kubelet 1.34 accepts with failCgroupV1: false), image GC off (the images cannot be pulled
  again), its API on 127.0.0.1 only;
- kube-proxy: iptables mode, NodePorts on 127.0.0.0/8 only (so the host reaches them at
  127.0.0.1:<nodePort>), its rules removed with `kube-proxy --cleanup` at stop.

`stop()` deletes the pods bound to the node while the kubelet still runs (so CNI tears their
networks down), stops the processes in reverse order, then removes what is left: tasks,
mounts under its root dir, the bridge, its iptables rules, its cgroups, and restores the
sysctls it changed. Every wait is bounded; logs stay in `<dir>/logs`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import engine, images
from .cluster import LocalCluster
from .kube import condition, write_kubeconfig
from .pki import client_cert
from .util import Proc, WaitTimeout, free_port, run, tail, wait_until, wait_while_alive

NODE_BINARIES = ("kubelet", "kube-proxy", "pause")
HOST_TOOLS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "mmdebstrap": "mmdebstrap",
    "umoci": "umoci",
}
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
NETNS_DIR = Path("/var/run/netns")  # where containerd's CRI plugin pins pod network namespaces
NAMESPACE = "k8s.io"  # containerd's namespace for CRI containers
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/ipv4/conf/all/route_localnet": None,  # kube-proxy sets it (NodePorts on 127.0.0.1)
}
IPTABLES_TABLES = ("filter", "nat", "mangle")


def kube_chains() -> set[tuple[str, str, str]]:
    """(binary, table, chain) of every KUBE-* chain (kubelet and kube-proxy make them)."""
    found = set()
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary) is None:
            continue
        for table in IPTABLES_TABLES:
            cp = run([binary, "-w", "5", "-t", table, "-S"], 30, check=False)
            found |= {(binary, table, ln.split()[1]) for ln in cp.stdout.splitlines() if ln.startswith("-N KUBE-")}
    return found


def remove_chains(chains: set[tuple[str, str, str]]) -> int:
    """Delete the rules that jump to `chains`, then the chains themselves."""
    for binary, table in sorted({(b, t) for b, t, _ in chains}):
        mine = {c for b, t, c in chains if (b, t) == (binary, table)}
        cp = run([binary, "-w", "5", "-t", table, "-S"], 30, check=False)
        for ln in cp.stdout.splitlines():
            parts = ln.split()
            if parts[:1] == ["-A"] and parts[1] not in mine and "-j" in parts and parts[parts.index("-j") + 1] in mine:
                run([binary, "-w", "5", "-t", table, "-D", *parts[1:]], 30, check=False)
        for chain in mine:
            run([binary, "-w", "5", "-t", table, "-F", chain], 30, check=False)
        for chain in mine:
            run([binary, "-w", "5", "-t", table, "-X", chain], 30, check=False)
    return len(chains)


def missing_host_tools() -> list[str]:
    """Debian packages to install for the real node (empty when everything is there)."""
    pkgs = {pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None}
    if not all((CNI_BIN_DIR / p).is_file() for p in CNI_PLUGINS):
        pkgs.add("containernetworking-plugins")
    return sorted(pkgs)


@dataclass
class RealNode:
    dir: Path
    cluster: LocalCluster
    name: str = "realnode"
    pod_cidr: str = "10.89.0.0/24"
    ready_timeout: float = 90.0
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _sysctls: dict[str, str] = field(default_factory=dict)
    _chains_before: set[tuple[str, str, str]] | None = None
    _netns_before: set[str] | None = None
    _bridge_made: bool = False

    def __post_init__(self) -> None:
        suffix = os.urandom(3).hex()
        self.bridge = f"k8sp{suffix}"
        self.cgroup_root = f"/k8s-platform-e2e-{suffix}"

    # ------------------------------------------------------------------ paths
    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    # ------------------------------------------------------------------ start
    def start(self) -> RealNode:
        missing = engine.missing(NODE_BINARIES)
        if missing:
            raise FileNotFoundError(f"not built yet in {engine.bin_dir()}: {', '.join(missing)} (run `make engine`)")
        pkgs = missing_host_tools()
        if pkgs:
            raise FileNotFoundError(f"the real node needs Debian packages: {' '.join(pkgs)} (`make setup` installs them)")
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        try:
            archive = images.build(Path(engine.binary("pause")), self.logs / "images.log")
            self.timings["images"] = round(time.monotonic() - t0, 2)
            self._chains_before = kube_chains()
            self._netns_before = set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()
            self._set_sysctls()
            self._make_cgroups()
            self._make_bridge()
            self._start_containerd()
            self._import_images(archive)
            self.timings["containerd"] = round(time.monotonic() - t0, 2)
            self._start_kubelet()
            self.timings["node_ready"] = round(time.monotonic() - t0, 2)
            self._start_kube_proxy()
            self.timings["total"] = round(time.monotonic() - t0, 2)
        except BaseException as exc:
            report = self.failure_report()
            self.stop()
            raise RuntimeError(f"the real node did not start: {exc}\n{report}") from exc
        return self

    def _proc(self, name: str, argv: list[str]) -> Proc:
        p = Proc(name, argv, self.logs / f"{name}.log", cwd=self.dir).start()
        self.procs.append(p)
        return p

    def _wait(self, what: str, check: Any, timeout: float, proc: Proc) -> None:
        wait_while_alive(proc, what, check, timeout)

    def _make_cgroups(self) -> None:
        # the kubelet wants its cgroup root to exist in every v1 hierarchy; cpuset children
        # start with no CPUs or memory nodes, so they get the parent's
        for controller in Path("/sys/fs/cgroup").iterdir():
            if controller.name == "unified" or not (controller / "cgroup.procs").exists():
                continue
            top = controller / self.cgroup_root.lstrip("/")
            top.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (top / knob).exists():
                    (top / knob).write_text((controller / knob).read_text())

    def _set_sysctls(self) -> None:
        for key, value in SYSCTLS.items():
            path = Path("/proc/sys") / key
            self._sysctls[key] = path.read_text().strip()
            if value is not None and self._sysctls[key] != value:
                path.write_text(value)

    def _make_bridge(self) -> None:
        net = ipaddress.ip_network(self.pod_cidr)
        run(["ip", "link", "add", self.bridge, "type", "bridge"], 10)
        self._bridge_made = True
        run(["ip", "addr", "add", f"{self.gateway}/{net.prefixlen}", "dev", self.bridge], 10)
        run(["ip", "link", "set", self.bridge, "up"], 10)

    def _start_containerd(self) -> None:
        d = self.dir / "containerd"
        for sub in ("root", "state", "opt"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        cni_conf = self.dir / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-k8sp-e2e.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "k8sp-e2e",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": self.bridge,
                            "isGateway": True,
                            "ipMasq": False,  # pods reach this machine only
                            "hairpinMode": True,  # a pod reaches itself through its Service
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": self.pod_cidr, "gateway": self.gateway}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.dir / "cni" / "ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"
[{cri}]
  sandbox_image = "{images.PAUSE}"
  stream_server_address = "127.0.0.1"
  # this machine withholds CAP_SYS_RESOURCE, so no process may lower its oom_score_adj; the
  # CRI plugin otherwise asks runc for -998 on every sandbox, and runc fails
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
"""
        (d / "config.toml").write_text(config)
        p = self._proc("containerd", [shutil.which("containerd") or "containerd", f"--config={d / 'config.toml'}"])
        self._wait("containerd's socket", lambda: self._ctr("version", timeout=5).returncode == 0, 30, p)

    def _ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        ctr = shutil.which("ctr") or "ctr"
        return run([ctr, f"--address={self.socket}", f"--namespace={NAMESPACE}", *args], timeout, check=False)

    def _import_images(self, archive: Path) -> None:
        base = "k8s-platform.test/e2e-layout"
        cp = self._ctr("images", "import", f"--base-name={base}", str(archive), timeout=300)
        if cp.returncode != 0:
            raise RuntimeError(f"ctr images import failed:\n{cp.stdout}{cp.stderr}")
        for tag, (name, _) in images.TAGS.items():
            cp = self._ctr("images", "tag", "--force", f"{base}:{tag}", name)
            if cp.returncode != 0:
                raise RuntimeError(f"ctr images tag {base}:{tag} {name} failed:\n{cp.stdout}{cp.stderr}")

    def image_names(self) -> list[str]:
        cp = self._ctr("images", "ls", "-q")
        return sorted(line for line in cp.stdout.splitlines() if line and not line.startswith("sha256:"))

    def _client_kubeconfig(self, user: str, cn: str, org: str | None) -> Path:
        pki = self.cluster.pki
        assert pki is not None
        crt, key = client_cert(pki, cn, org, days=30)
        path = self.dir / f"{user}.kubeconfig"
        write_kubeconfig(str(path), self.cluster.server, pki.ca_crt.read_bytes(), crt, key)
        return path

    def _start_kubelet(self) -> None:
        kube = self.cluster.kube
        # RBAC only (no Node authorizer) on the local API server: bind the node's identity
        kube.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"k8s-platform-e2e:node:{self.name}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"system:node:{self.name}"}],
            }
        )
        kubeconfig = self._client_kubeconfig("kubelet", f"system:node:{self.name}", "system:nodes")
        pki = self.cluster.pki
        assert pki is not None
        self.ports["kubelet"] = free_port()
        self.ports["kubelet_healthz"] = free_port()
        root = self.dir / "kubelet"
        root.mkdir(exist_ok=True)
        resolv = self.dir / "resolv.conf"
        resolv.write_text("# pods of the e2e real node: no DNS server\noptions ndots:1\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": self.ports["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.ports["kubelet_healthz"],
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki.ca_crt)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "failCgroupV1": False,
            "failSwapOn": False,
            "resolvConf": str(resolv),
            "podLogsDir": str(self.dir / "pod-logs"),  # not /var/log/pods
            "staticPodPath": "",
            "maxPods": 30,
            # the images cannot be pulled again: never garbage-collect them; and a nearly full
            # shared disk must not evict the tests' pods
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
        }
        cfg = self.dir / "kubelet.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        p = self._proc(
            "kubelet",
            [
                engine.binary("kubelet"),
                f"--config={cfg}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.gateway}",
                "--node-labels=k8s-platform-e2e/real-node=true",
                "--v=1",
            ],
        )

        def ready() -> bool:
            return condition(kube.read("Node", self.name), "Ready") == "True"

        self._wait(f"node {self.name} Ready", ready, self.ready_timeout, p)

    def _start_kube_proxy(self) -> None:
        kubeconfig = self._client_kubeconfig("kube-proxy", "system:kube-proxy", None)
        self.ports["proxy_healthz"] = free_port()
        self.ports["proxy_metrics"] = free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": self.pod_cidr,
            "hostnameOverride": self.name,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": f"127.0.0.1:{self.ports['proxy_healthz']}",
            "metricsBindAddress": f"127.0.0.1:{self.ports['proxy_metrics']}",
            "nodePortAddresses": ["127.0.0.0/8"],
            "iptables": {"localhostNodePorts": True, "syncPeriod": "5s", "minSyncPeriod": "0s"},
            "conntrack": {"maxPerCore": 0},  # leave the machine's nf_conntrack_max alone
        }
        cfg = self.dir / "kube-proxy.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        p = self._proc("kube-proxy", [engine.binary("kube-proxy"), f"--config={cfg}", "--v=1"])

        def healthy() -> bool:
            cp = run(["curl", "-fsS", "-m", "2", f"http://127.0.0.1:{self.ports['proxy_healthz']}/healthz"], 5,
                     check=False)  # fmt: skip
            return cp.returncode == 0

        self._wait("kube-proxy /healthz", healthy, 60, p)

    # ------------------------------------------------------------------ use
    def running_containers(self) -> list[str]:
        """Containers of pods (not sandboxes) with a running task on this node."""
        cp = self._ctr("tasks", "ls")
        running = [ln.split()[0] for ln in cp.stdout.splitlines()[1:] if ln.split()[-1:] == ["RUNNING"]]
        out = []
        for cid in running:
            info = self._ctr("containers", "info", cid)
            with contextlib.suppress(ValueError):
                labels = json.loads(info.stdout).get("Labels") or {}
                if labels.get("io.cri-containerd.kind") == "container":
                    out.append(f"{labels.get('io.kubernetes.pod.namespace')}/{labels.get('io.kubernetes.pod.name')}"
                               f"/{labels.get('io.kubernetes.container.name')}")  # fmt: skip
        return sorted(out)

    def pods(self) -> list[dict[str, Any]]:
        return [p for p in self.cluster.kube.list("Pod") if p["spec"].get("nodeName") == self.name]

    # ------------------------------------------------------------------ stop
    def stop(self, grace: float = 10.0) -> dict[str, str]:
        result: dict[str, str] = {}
        kubelet = next((p for p in self.procs if p.name == "kubelet"), None)
        if kubelet is not None and kubelet.alive():
            result["pods"] = self._delete_pods()
        for p in reversed(self.procs):
            if p.name == "containerd":
                result["tasks"] = self._kill_tasks()
            result[p.name] = p.stop(grace)
        if any(p.name == "kube-proxy" for p in self.procs):
            cp = run([engine.binary("kube-proxy"), "--cleanup", "--v=0"], 60, check=False)
            result["kube-proxy --cleanup"] = "ok" if cp.returncode == 0 else f"exit {cp.returncode}"
        # stop() runs again at interpreter exit (the session's stoppers): nothing of this twice
        self.procs = []
        if self._chains_before is not None:
            result["iptables chains"] = f"{remove_chains(kube_chains() - self._chains_before)} removed"
            self._chains_before = None
        if self._netns_before is not None:
            left = sorted(n for n in (set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()) - self._netns_before
                          if n.startswith("cni-"))  # fmt: skip
            for ns in left:
                run(["ip", "netns", "delete", ns], 10, check=False)
            result["netns"] = f"{len(left)} left over, deleted" if left else "none left"
            self._netns_before = None
        result["mounts"] = self._unmount()
        if self._bridge_made:
            cp = run(["ip", "link", "del", self.bridge], 10, check=False)
            result["bridge"] = "deleted" if cp.returncode == 0 else cp.stderr.strip()
            self._bridge_made = False
        result["cgroups"] = self._remove_cgroups()
        for key, old in self._sysctls.items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(old)
        self._sysctls.clear()
        with contextlib.suppress(Exception):
            self.cluster.kube.delete("Node", self.name)
            self.cluster.kube.delete("ClusterRoleBinding", f"k8s-platform-e2e:node:{self.name}")
        return result

    def _delete_pods(self) -> str:
        kube = self.cluster.kube
        try:
            # cordoned first: a controller's replacement pods must not land here again
            kube.request("PATCH", kube.path("Node", self.name), {"spec": {"unschedulable": True}},
                         "application/merge-patch+json")  # fmt: skip
            for pod in self.pods():
                meta = pod["metadata"]
                with contextlib.suppress(Exception):
                    kube.delete("Pod", meta["name"], meta["namespace"])
            wait_until(lambda: not self.pods(), 60, f"pods on {self.name} deleted")
            return "deleted"
        except (WaitTimeout, Exception) as exc:
            return f"not all deleted: {exc}"

    def _kill_tasks(self) -> str:
        cp = self._ctr("tasks", "ls")
        ids = [ln.split()[0] for ln in cp.stdout.splitlines()[1:] if ln.strip()]
        for cid in ids:
            self._ctr("tasks", "kill", "--signal", "SIGKILL", cid, timeout=10)
        for cid in ids:
            self._ctr("tasks", "delete", "--force", cid, timeout=10)
        return f"{len(ids)} left over, killed" if ids else "none left"

    def _unmount(self) -> str:
        root = str(self.dir.resolve())
        mounts = [ln.split()[1] for ln in Path("/proc/self/mounts").read_text().splitlines()
                  if ln.split()[1].startswith(root + "/")]  # fmt: skip
        for m in sorted(mounts, key=len, reverse=True):
            run(["umount", "-l", m], 10, check=False)
        # network namespaces of sandboxes that were not torn down (bind mounts under /run/netns)
        return f"{len(mounts)} unmounted" if mounts else "none"

    def _remove_cgroups(self) -> str:
        removed = 0
        for controller in Path("/sys/fs/cgroup").iterdir():
            top = controller / self.cgroup_root.lstrip("/")
            if not top.is_dir():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
                removed += 1
        return f"{removed} removed"

    def failure_report(self) -> str:
        lines = ["real node logs (kept):"]
        for p in self.procs:
            state = "running" if p.alive() else f"exited {p.exit_code()}"
            lines.append(f"  {p.name} [{state}] {p.log}")
        for p in self.procs:
            lines.append(f"--- tail {p.log}\n{tail(p.log, 15)}")
        return "\n".join(lines)


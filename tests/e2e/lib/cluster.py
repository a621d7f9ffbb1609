"""A local Kubernetes control plane on loopback, with KWOK simulating the nodes.

Processes (each with a log file in `<dir>/logs`, stopped by PID):
etcd, kube-apiserver (client-cert auth + RBAC, service-account keys,
`--endpoint-reconciler-type=none`), kube-controller-manager, kube-scheduler, and
the `kwok` controller managing every Node annotated `kwok.x-k8s.io/node=fake`
with KWOK's default stages (nodes Ready; pods Running/Ready, so Deployments and
StatefulSets become Ready).

Objects created after start: KWOK nodes node1 (control plane: label + NoSchedule
taint), node2, node3 (workers); StorageClass `e2e-static` (no provisioner,
WaitForFirstConsumer, default class) and a pool of static `local` PVs spread over
the nodes, so PVCs bind when their pod is scheduled (PV controller + scheduler).

Every port is picked at runtime; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import engine, kwok_node
from .kube import Kube, condition, write_kubeconfig
from .pki import Pki, make_pki
from .util import (
    REPO_ROOT,
    Proc,
    WaitTimeout,
    find_tool,
    free_port,
    pid_matches,
    run,
    tail,
    wait_until,
    wait_while_alive,
)

STORAGE_CLASS = "e2e-static"
KWOK_STAGES = REPO_ROOT / "tests" / "e2e" / "kwok" / "stages.yaml"
KWOK_LB_STAGES = REPO_ROOT / "tests" / "e2e" / "kwok" / "load-balancer-stages.yaml"
DEFAULT_NODES: tuple[tuple[str, str], ...] = (("node1", "control-plane"), ("node2", "worker"), ("node3", "worker"))
SERVICE_CIDR = "10.96.0.0/16"


@dataclass
class LocalCluster:
    """Start with `LocalCluster(dir).start()`; `stop()` ends every process it started."""

    dir: Path
    nodes: tuple[tuple[str, str], ...] = DEFAULT_NODES
    pv_count: int = 12
    pv_size: str = "20Gi"
    ready_timeout: float = 60.0
    # opt-in: KWOK plays a LoadBalancer implementation + publishing ingress controller
    # (Services type=LoadBalancer and Ingresses get status.loadBalancer.ingress 127.0.0.1)
    load_balancer: bool = False
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    pki: Pki | None = None
    kubeconfig: Path | None = None
    _kube: Kube | None = None

    # ------------------------------------------------------------------ paths
    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            assert self.kubeconfig is not None, "cluster not started"
            self._kube = Kube(str(self.kubeconfig))
        return self._kube

    def log_paths(self) -> dict[str, str]:
        return {p.name: str(p.log) for p in self.procs}

    # ------------------------------------------------------------------ start
    def start(self) -> LocalCluster:
        missing = engine.missing(engine.CLUSTER_BINARIES)
        if missing:
            raise FileNotFoundError(f"not built yet in {engine.bin_dir()}: {', '.join(missing)} (run `make engine`)")
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        try:
            self.pki = make_pki(self.dir / "pki")
            for name in ("etcd", "etcd_peer", "apiserver", "kwok", "controller_manager", "scheduler"):
                self.ports[name] = free_port()
            self._start_etcd()
            self._start_apiserver()
            self.timings["apiserver_ready"] = round(time.monotonic() - t0, 2)
            self._write_kubeconfig()
            self._start_controllers()
            self.timings["control_plane_ready"] = round(time.monotonic() - t0, 2)
            self._add_nodes()
            self.timings["nodes_ready"] = round(time.monotonic() - t0, 2)
            self._storage()
            self._wait_default_service_account()
            self.timings["total"] = round(time.monotonic() - t0, 2)
            self.save_state()
        except BaseException as exc:
            note = self.failure_report()
            self.stop()
            raise RuntimeError(f"local cluster did not start: {exc}\n{note}") from exc
        return self

    def _proc(self, name: str, argv: list[str]) -> Proc:
        p = Proc(name, argv, self.logs / f"{name}.log", cwd=self.dir).start()
        self.procs.append(p)
        return p

    def _wait(self, what: str, check: Any, timeout: float, proc: Proc | None = None) -> Any:
        return wait_while_alive(proc, what, check, timeout)

    def _start_etcd(self) -> None:
        p = self.ports
        etcd = self._proc(
            "etcd",
            [
                engine.binary("etcd"),
                "--name=e2e",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
                f"--initial-cluster=e2e=http://127.0.0.1:{p['etcd_peer']}",
                "--initial-cluster-state=new",
                # a test cluster: durability is not worth the fsync latency on a shared disk
                "--unsafe-no-fsync",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        )
        self._wait("etcd /health", lambda: b'"true"' in _http_get(f"http://127.0.0.1:{p['etcd']}/health"), 30, etcd)

    def _start_apiserver(self) -> None:
        assert self.pki is not None
        k = self.pki
        tokens = self.dir / "pki" / "tokens.csv"
        # a static token too, for tools that prefer bearer tokens; the kubeconfig uses the client cert
        tokens.write_text(f"{os.urandom(16).hex()},e2e-admin,e2e-admin,system:masters\n")
        tokens.chmod(0o600)
        api = self._proc(
            "kube-apiserver",
            [
                engine.binary("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={k.server_crt}",
                f"--tls-private-key-file={k.server_key}",
                f"--client-ca-file={k.ca_crt}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={k.sa_pub}",
                f"--service-account-signing-key-file={k.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-node-port-range=30000-32767",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--cert-dir={self.dir / 'pki' / 'apiserver-generated'}",
                "--v=1",
            ],
        )
        ctx = ssl.create_default_context(cafile=str(k.ca_crt))
        ctx.load_cert_chain(str(k.admin_crt), str(k.admin_key))
        self._wait(
            "kube-apiserver /readyz",
            lambda: _http_get(f"https://127.0.0.1:{self.ports['apiserver']}/readyz", ctx) == b"ok",
            self.ready_timeout,
            api,
        )

    def _write_kubeconfig(self) -> None:
        assert self.pki is not None
        self.kubeconfig = Path(
            write_kubeconfig(
                str(self.dir / "admin.conf"),
                self.server,
                self.pki.ca_crt.read_bytes(),
                self.pki.admin_crt.read_bytes(),
                self.pki.admin_key.read_bytes(),
            )
        )

    def _start_controllers(self) -> None:
        assert self.pki is not None and self.kubeconfig is not None
        k, kc = self.pki, str(self.kubeconfig)
        self._proc(
            "kube-controller-manager",
            [
                engine.binary("kube-controller-manager"),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller_manager']}",
                "--leader-elect=false",
                f"--service-account-private-key-file={k.sa_key}",
                f"--root-ca-file={k.ca_crt}",
                f"--cluster-signing-cert-file={k.ca_crt}",
                f"--cluster-signing-key-file={k.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
                "--concurrent-deployment-syncs=10",
                "--concurrent-statefulset-syncs=10",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._proc(
            "kube-scheduler",
            [
                engine.binary("kube-scheduler"),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._start_kwok()
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # self-signed serving certs
        by_name = {proc.name: proc for proc in self.procs}
        for name, url, ctx in (
            ("kube-controller-manager", f"https://127.0.0.1:{self.ports['controller_manager']}/healthz", insecure),
            ("kube-scheduler", f"https://127.0.0.1:{self.ports['scheduler']}/healthz", insecure),
            ("kwok", f"http://127.0.0.1:{self.ports['kwok']}/healthz", None),
        ):
            self._wait(f"{name} /healthz", lambda u=url, c=ctx: _http_get(u, c) == b"ok", 30, by_name[name])

    def _start_kwok(self) -> Proc:
        assert self.kubeconfig is not None
        kc = str(self.kubeconfig)
        kwok_cfg = self.dir / "kwok.yaml"
        cfg = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {
                "manageAllNodes": False,
                "manageNodesWithAnnotationSelector": f"{kwok_node.KWOK_ANNOTATION}=fake",
                "nodeLeaseDurationSeconds": 40,
                "cidr": "10.244.0.0/16",
                "nodeIP": "127.0.0.1",
                "nodePort": self.ports["kwok"],
                "serverAddress": f"127.0.0.1:{self.ports['kwok']}",
                "enableCRDs": [],
                # kwok applies no defaults to a config file's options (0 parallelism is an error);
                # these are the values of KWOK's own deployment (kustomize/kwok/kwok.yaml)
                "nodeLeaseParallelism": 4,
                "podPlayStageParallelism": 4,
                "nodePlayStageParallelism": 4,
                "enablePodsOnNodeSyncStreamWatch": True,
            },
        }
        stages = KWOK_STAGES.read_text()
        if self.load_balancer:
            stages += "\n---\n" + KWOK_LB_STAGES.read_text()
        kwok_cfg.write_text(yaml.safe_dump(cfg, sort_keys=False) + stages)
        # kwok also reads ~/.kwok/kwok.yaml if it exists; a private HOME keeps it out
        kwok_home = self.dir / "kwok-home"
        kwok_home.mkdir(exist_ok=True)
        p = Proc(
            "kwok",
            [engine.binary("kwok"), f"--config={kwok_cfg}", f"--kubeconfig={kc}", "--v=INFO"],
            self.logs / "kwok.log",
            env={**os.environ, "HOME": str(kwok_home)},
            cwd=self.dir,
        ).start()
        self.procs.append(p)
        return p

    def set_load_balancer(self, enabled: bool) -> None:
        """Turn the LoadBalancer/Ingress-status stages on or off (restarts the kwok process)."""
        if enabled == self.load_balancer:
            return
        self.load_balancer = enabled
        old = next(p for p in self.procs if p.name == "kwok")
        old.stop()
        self.procs.remove(old)
        p = self._start_kwok()
        self._wait("kwok /healthz", lambda: _http_get(f"http://127.0.0.1:{self.ports['kwok']}/healthz") == b"ok", 30, p)
        self.save_state()

    def _add_nodes(self) -> None:
        for name, role in self.nodes:
            self.add_node(name, role, wait=False)
        kwok_node.wait_ready(self.kube, [n for n, _ in self.nodes], self.ready_timeout)

    def _storage(self) -> None:
        self.kube.apply(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Retain",
            }
        )
        self.add_pvs(self.pv_count, self.pv_size, STORAGE_CLASS)

    def add_pvs(self, count: int, size: str = "20Gi", storage_class: str = STORAGE_CLASS) -> list[str]:
        """Static `local` PVs of `storage_class`, spread round-robin over the current nodes."""
        names = [n["metadata"]["name"] for n in self.kube.list("Node")] or [n for n, _ in self.nodes]
        existing = {pv["metadata"]["name"] for pv in self.kube.list("PersistentVolume")}
        made: list[str] = []
        i = 0
        while len(made) < count:
            i += 1
            name = f"{storage_class}-pv{i:02d}"
            if name in existing:
                continue
            node = sorted(names)[(i - 1) % len(names)]
            path = self.dir / "pv" / name
            path.mkdir(parents=True, exist_ok=True)
            self.kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "labels": {"k8s-platform-e2e/pool": storage_class}},
                    "spec": {
                        "capacity": {"storage": size},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": storage_class,
                        "volumeMode": "Filesystem",
                        "local": {"path": str(path)},
                        "nodeAffinity": {
                            "required": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                                        ]
                                    }
                                ]
                            }
                        },
                    },
                }
            )
            made.append(name)
        return made

    def recycle_pvs(self) -> list[str]:
        """Make Released PVs Available again (what an admin does after deleting a PVC)."""
        freed = []
        for pv in self.kube.list("PersistentVolume"):
            if (pv.get("status") or {}).get("phase") == "Released":
                name = pv["metadata"]["name"]
                self.kube.request(
                    "PATCH",
                    self.kube.path("PersistentVolume", name),
                    {"spec": {"claimRef": None}},
                    "application/merge-patch+json",
                )
                freed.append(name)
        return freed

    def _wait_default_service_account(self) -> None:
        # pods are refused until the controller-manager created `default` in their namespace
        self._wait(
            "ServiceAccount default/default",
            lambda: self.kube.read("ServiceAccount", "default", "default") is not None,
            30,
        )

    # ------------------------------------------------------------------ nodes
    def add_node(self, name: str, role: str = "worker", ip: str | None = None, wait: bool = True) -> None:
        """Register a KWOK node (what the stand-in scale.yml does); waits for Ready by default."""
        kwok_node.add_node(self.kube, name, role, ip)
        if wait:
            kwok_node.wait_ready(self.kube, [name], self.ready_timeout, {name: ip} if ip else None)

    def reset_baseline(self) -> dict[str, list[str]]:
        """Back to node1..node3 with their default roles (re-applied: node1 tainted again), other
        nodes deleted, Released PVs made Available. The stack factory calls it after each test."""
        # `pulumi destroy` leaves the stack's namespaces (and in them MySQL's StatefulSet and
        # PVCs) on purpose; tests start from a clean cluster, so they go here.
        selector = "app.kubernetes.io/managed-by=k8s-platform"
        leftovers = [n["metadata"]["name"] for n in self.kube.list("Namespace", selector=selector)]
        for name in leftovers:
            self.kube.delete("Namespace", name)
        # Recycling PVs before the namespaces (and their PVCs) are really gone left PVs Bound,
        # then Released after the recycle: the next test found fewer Available PVs, and a
        # release whose PVC could not bind timed out. Wait for the deletion (the namespace
        # controller can be slow right after an API server restart), then for the claims'
        # PVs to be released, then recycle.
        try:
            wait_until(lambda: not self.kube.list("Namespace", selector=selector), 240, f"namespaces {leftovers} deleted")
            wait_until(lambda: not [pv for pv in self.kube.list("PersistentVolume")
                                    if (pv.get("status") or {}).get("phase") == "Bound"], 60, "PVs released")  # fmt: skip
        except WaitTimeout as exc:
            raise RuntimeError(f"the cluster did not return to its baseline: {exc}\n{self.not_ready_report()}") from exc
        defaults = {n for n, _ in self.nodes}
        removed = [n for n in self.node_names() if n not in defaults and self.remove_node(n)]
        for name, role in self.nodes:
            self.add_node(name, role, wait=False)
        kwok_node.wait_ready(self.kube, [n for n, _ in self.nodes], self.ready_timeout)
        recycled = self.recycle_pvs()
        available = [pv for pv in self.kube.list("PersistentVolume") if (pv.get("status") or {}).get("phase") == "Available"]
        wait_until(lambda: len([pv for pv in self.kube.list("PersistentVolume")
                                if (pv.get("status") or {}).get("phase") == "Available"]) >= self.pv_count,
                   60, f"{self.pv_count} PVs Available (have {len(available)})")  # fmt: skip
        return {"removed_nodes": removed, "recycled_pvs": recycled}

    def remove_node(self, name: str) -> bool:
        """Delete a node (what the stand-in remove-node.yml does)."""
        return kwok_node.remove_node(self.kube, name)

    def node_names(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.kube.list("Node"))

    def ready_nodes(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.kube.list("Node") if condition(n, "Ready") == "True")

    def not_ready_report(self, limit: int = 30) -> str:
        """Which nodes and pods are not Ready and why (conditions, waiting reasons, recent events).

        Printed with a failed `pulumi` call, so a timeout says what it waited for.
        """
        lines: list[str] = []
        try:
            alive = {p.name: p.alive() for p in self.procs}
            down = [n for n, ok in alive.items() if not ok]
            if down:
                lines.append(f"control-plane processes not running: {', '.join(down)} (logs in {self.logs})")
            for node in self.kube.list("Node"):
                if condition(node, "Ready") != "True":
                    conds = {c["type"]: f"{c['status']} ({c.get('reason', '')})" for c in node["status"].get("conditions") or []}
                    taints = [f"{t['key']}:{t['effect']}" for t in node["spec"].get("taints") or []]
                    lines.append(f"node {node['metadata']['name']} not Ready: {conds} taints={taints}")
            for pod in self.kube.list("Pod"):
                if pod["status"].get("phase") == "Succeeded" or condition(pod, "Ready") == "True":
                    continue
                meta, status = pod["metadata"], pod["status"]
                why = [f"{c['type']}={c['status']}{' ' + c['message'] if c.get('message') else ''}"
                       for c in status.get("conditions") or [] if c["status"] != "True"]  # fmt: skip
                for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
                    waiting = cs.get("state", {}).get("waiting")
                    if waiting:
                        why.append(f"{cs['name']}: {waiting.get('reason')} {waiting.get('message', '')}".strip())
                node = pod["spec"].get("nodeName") or "unscheduled"
                lines.append(f"pod {meta['namespace']}/{meta['name']} on {node} phase={status.get('phase')}: {'; '.join(why)}")
                if len(lines) >= limit:
                    lines.append("… (more)")
                    break
            events = [e for e in self.kube.list_events() if e.get("type") == "Warning"][-10:]
            lines += [f"event {e['involvedObject'].get('kind')}/{e['involvedObject'].get('name')}: "
                      f"{e.get('reason')} {e.get('message', '')[:200]}" for e in events]  # fmt: skip
        except Exception as exc:  # a report must never hide the failure it explains
            lines.append(f"(cluster report incomplete: {exc})")
        return "\n".join(lines) if lines else "every node and pod is Ready"

    # ------------------------------------------------------------------ tools
    def kubectl(self, *args: str, timeout: float = 60, check: bool = True, input: str | None = None) -> str:
        kubectl = find_tool("kubectl") or "kubectl"
        cp = run([kubectl, f"--kubeconfig={self.kubeconfig}", *args], timeout, input=input, check=check)
        return cp.stdout

    def get(self, *args: str) -> dict[str, Any]:
        """`kubectl get <args> -o json`, parsed."""
        return dict(json.loads(self.kubectl("get", *args, "-o", "json")))

    # ------------------------------------------------------------------ stop / state
    def stop_apiserver(self, grace: float = 10.0) -> str:
        """Stop only kube-apiserver (by PID): the API becomes unavailable, etcd keeps the data."""
        for p in self.procs:
            if p.name == "kube-apiserver" and p.alive():
                return p.stop(grace)
        return "not running"

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port, certificates and etcd (bounded wait)."""
        self.procs = [p for p in self.procs if not (p.name == "kube-apiserver" and not p.alive())]
        self._start_apiserver()

    def stop(self, grace: float = 10.0) -> dict[str, str]:
        """Stop in reverse start order (kwok, scheduler, controllers, apiserver, etcd), by PID."""
        result = {}
        for p in reversed(self.procs):
            result[p.name] = p.stop(grace)
        return result

    def failure_report(self) -> str:
        lines = ["local cluster logs (kept):"]
        for p in self.procs:
            state = "running" if p.alive() else f"exited {p.exit_code()}"
            lines.append(f"  {p.name} [{state}] {p.log}")
        for p in self.procs:
            if not p.alive():
                lines.append(f"--- tail {p.log}\n{tail(p.log, 20)}")
        return "\n".join(lines)

    def state(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "server": self.server if "apiserver" in self.ports else None,
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "ports": self.ports,
            "processes": [p.describe() for p in self.procs],
            "timings": self.timings,
            "nodes": [n for n, _ in self.nodes],
        }

    def save_state(self) -> Path:
        path = self.dir / "state.json"
        path.write_text(json.dumps(self.state(), indent=2))
        return path

    @classmethod
    def from_state(cls, directory: Path) -> LocalCluster:
        """Reattach to a cluster started by another process (scripts/local_cluster.py)."""
        st = json.loads((directory / "state.json").read_text())
        c = cls(Path(st["dir"]))
        c.ports = st["ports"]
        c.kubeconfig = Path(st["kubeconfig"]) if st["kubeconfig"] else None
        c.timings = st.get("timings", {})
        c.procs = [Proc(p["name"], [p["argv0"]], Path(p["log"]), pid=p["pid"]) for p in st["processes"]]
        return c

    def alive(self) -> dict[str, bool]:
        return {p.name: p.pid is not None and pid_matches(p.pid, p.argv[0]) for p in self.procs}

    def remove_dir(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _http_get(url: str, ctx: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, context=ctx, timeout=3) as r:
        return bytes(r.read())

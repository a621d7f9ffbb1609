"""Members of the program's MySQL StatefulSet, run as processes on a real mysqld.

`render()` renders the stack's objects with the program itself (`stacks.render`, secrets
redacted, as `python -m stacks render` writes them) and keeps what a kubelet needs: the
StatefulSet's pod template and the ConfigMaps it mounts. `MySQLPod` runs one member of it
the way a kubelet would, on the root file system of `tests.support.mysql_rootfs` (Debian's
MySQL, the official image's entrypoint and layout):

- the pod is a sandbox process in new mount, PID, network and UTS namespaces (`unshare`);
  its root is an overlay over the cached tree (which stays untouched) with the pod's
  volumes mounted at their mountPaths: the PVC and emptyDirs are directories under the
  test's temp dir owned by the pod's fsGroup, a `medium: Memory` emptyDir is a tmpfs,
  ConfigMap and projected volumes are files written from the rendered ConfigMaps and the
  Secret values the test holds, with their defaultMode;
- env: literal values as rendered, `fieldRef: metadata.name` is the pod's name,
  `secretKeyRef` is looked up in the test's Secret values; they reach the process through
  its environment, never its argv. Plus the image's env and HOME, as containerd sets them;
- a container runs as the pod's runAsUser/runAsGroup with no capabilities, entered into
  the sandbox with `nsenter`; `command` replaces the image's entrypoint
  (docker-entrypoint.sh) and `args` its CMD, as in Kubernetes;
- each pod has its own loopback, so every member listens on 3306 as in a cluster;
  `link()` joins two pods with a veth pair, and every pod's /etc/hosts gives the members'
  headless-Service names their addresses.

Unlike a kubelet: the containers of a pod share one mount namespace (each sees every
volume; the scripts do not rely on that), no cgroup limits, no seccomp. Everything is
stopped by PID: the sandbox is PID 1 of the pod's PID namespace, so ending it ends every
process of the pod, and the pod's mounts and links go with its namespaces.
`ArgvWatch` samples every process's command line while it runs and reports any that
carries one of the watched secrets.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.mysql import CLIENT_CNF_DIR, DATA_VOLUME
from tests.support.mocks import PROJECT_ROOT, existing_config
from tests.support.mysql_rootfs import MySQLRootfs

IMAGE_ENTRYPOINT = ["docker-entrypoint.sh"]  # the official image's ENTRYPOINT and CMD
IMAGE_CMD = ["mysqld"]
SUBNET = "10.213.0"  # the pods' link addresses (each pod's network namespace is its own)
CLAIM = DATA_VOLUME  # the volumeClaimTemplate's name
CLIENT_CNF = f"{CLIENT_CNF_DIR}/root.cnf"  # where init-config.sh writes root's option file (lib.sh)


@dataclass(frozen=True)
class Rendered:
    """The objects a kubelet reads for the MySQL pods."""

    name: str
    namespace: str
    pod_spec: dict[str, Any]
    config_maps: dict[str, dict[str, str]]  # name -> data

    def container(self, name: str) -> dict[str, Any]:
        for c in [*self.pod_spec.get("initContainers", []), *self.pod_spec["containers"]]:
            if c["name"] == name:
                return c
        raise KeyError(name)

    @property
    def init_containers(self) -> list[str]:
        return [c["name"] for c in self.pod_spec.get("initContainers", [])]

    @property
    def service_domain(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def member_host(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}.{self.service_domain}"


def render(mysql: Mapping[str, Any]) -> Rendered:
    """The program's MySQL objects for a stack whose `mysql:` section is `mysql`."""
    from stacks.config import SECRET, parse_config
    from stacks.render import render_objects

    cfg = existing_config("dev")
    cfg["mysql"] = {"enabled": True, **mysql}
    cfg["mysqlRootPassword"] = SECRET
    cfg["mysqlReplicationPassword"] = SECRET
    for user in mysql.get("users", ()):
        cfg[user["passwordSecret"]] = SECRET
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    objects = render_objects(spec, PROJECT_ROOT)
    ns, name = spec.mysql.namespace, spec.mysql.name
    sts = objects[f"{ns}.StatefulSet.{name}.yaml"]
    config_maps = {
        m["metadata"]["name"]: dict(m.get("data") or {})
        for m in objects.values()
        if m["kind"] == "ConfigMap" and m["metadata"]["namespace"] == ns
    }
    return Rendered(name, ns, sts["spec"]["template"]["spec"], config_maps)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def _wait_exit(popen: subprocess.Popen[bytes], timeout: float) -> int | None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        return popen.wait(timeout)
    return None


@dataclass
class Container:
    """A running container: `nsenter` (a host process) and its child, the container's process."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def main_pid(self) -> int | None:
        kids = _children(self.popen.pid)
        return kids[0] if kids else None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 60) -> int | None:
        """SIGTERM to the container's process (as a kubelet does), SIGKILL after `grace`."""
        if not self.alive():
            return self.popen.returncode
        pid = self.main_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        code = _wait_exit(self.popen, grace)
        if code is None:
            pid = self.main_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            code = _wait_exit(self.popen, 10)
        return code


@dataclass
class MySQLPod:
    """One member (`<name>-<ordinal>`) of the rendered StatefulSet."""

    rendered: Rendered
    rootfs: MySQLRootfs
    ordinal: int
    workdir: Path
    secrets: dict[tuple[str, str], str]  # (Secret name, key) -> value
    members: int = 1  # how many members /etc/hosts names
    sandbox: subprocess.Popen[bytes] | None = None
    running: dict[str, Container] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.rendered.name}-{self.ordinal}"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.ordinal + 1}"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def uid(self) -> int:
        return int(self.rendered.pod_spec["securityContext"]["runAsUser"])

    @property
    def gid(self) -> int:
        return int(self.rendered.pod_spec["securityContext"]["runAsGroup"])

    @property
    def fs_group(self) -> int:
        return int(self.rendered.pod_spec["securityContext"].get("fsGroup", self.gid))

    # ----------------------------------------------------------------- volumes

    def volume_dir(self, name: str) -> Path:
        return self.workdir / "volumes" / name

    def _write_files(self, dest: Path, files: Mapping[str, str], mode: int) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(content, encoding="utf-8")
            os.chown(tmp, 0, self.fs_group)
            tmp.chmod(mode)
            tmp.replace(path)  # atomically, as the kubelet swaps a volume's contents

    def _volume_files(self, volume: Mapping[str, Any]) -> tuple[dict[str, str], int]:
        """(relative path -> content, mode) of a ConfigMap, Secret or projected volume."""
        files: dict[str, str] = {}

        def config_map(src: Mapping[str, Any]) -> None:
            data = self.rendered.config_maps[src["name"]]
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            files.update({i["path"]: data[i["key"]] for i in items})

        def secret(src: Mapping[str, Any]) -> None:
            name = src.get("name") or src["secretName"]
            items = src.get("items") or [{"key": key, "path": key} for (owner, key) in self.secrets if owner == name]
            files.update({i["path"]: self.secrets[(name, i["key"])] for i in items})

        if "configMap" in volume:
            config_map(volume["configMap"])
            return files, volume["configMap"].get("defaultMode", 0o644)
        if "secret" in volume:
            secret(volume["secret"])
            return files, volume["secret"].get("defaultMode", 0o644)
        projected = volume["projected"]
        for source in projected["sources"]:
            if "configMap" in source:
                config_map(source["configMap"])
            elif "secret" in source:
                secret(source["secret"])
        return files, projected.get("defaultMode", 0o644)

    def refresh_volume(self, name: str) -> None:
        """Rewrites a ConfigMap/Secret/projected volume from the current data (what the
        kubelet does within a minute of a change)."""
        (volume,) = [v for v in self.rendered.pod_spec["volumes"] if v["name"] == name]
        dest = self.volume_dir(name)
        files, mode = self._volume_files(volume)
        for old in [p for p in dest.rglob("*") if p.is_file()]:
            if str(old.relative_to(dest)) not in files:
                old.unlink()
        self._write_files(dest, files, mode)

    def _mounts(self) -> list[tuple[str, str, Path | None, bool]]:
        """(mountPath, kind, host dir or None for tmpfs, read-only) for every volume mount
        of every container; one mount per path (read-write wins)."""
        volumes = {v["name"]: v for v in self.rendered.pod_spec["volumes"]}
        claims = {CLAIM}
        by_path: dict[str, tuple[str, str, Path | None, bool]] = {}
        for c in [*self.rendered.pod_spec.get("initContainers", []), *self.rendered.pod_spec["containers"]]:
            for m in c.get("volumeMounts", []):
                name, path, ro = m["name"], m["mountPath"], bool(m.get("readOnly"))
                volume = volumes.get(name, {})
                if name in claims or "emptyDir" in volume:
                    memory = (volume.get("emptyDir") or {}).get("medium") == "Memory"
                    entry = (path, "tmpfs" if memory else "dir", None if memory else self.volume_dir(name), False)
                else:
                    entry = (path, "files", self.volume_dir(name), True)
                previous = by_path.get(path)
                if previous is None or (previous[3] and not ro):
                    by_path[path] = (entry[0], entry[1], entry[2], entry[3] and ro)
        return sorted(by_path.values())

    def _prepare_volumes(self) -> None:
        for v in self.rendered.pod_spec["volumes"]:
            dest = self.volume_dir(v["name"])
            if "emptyDir" in v:
                dest.mkdir(parents=True, exist_ok=True)
                os.chown(dest, 0, self.fs_group)
                dest.chmod(0o2777)
            else:
                self.refresh_volume(v["name"])
        # the PVC (volumeClaimTemplates): kept across restarts of the pod
        claim = self.volume_dir(CLAIM)
        claim.mkdir(parents=True, exist_ok=True)
        os.chown(claim, 0, self.fs_group)
        claim.chmod(0o2775)

    # ----------------------------------------------------------------- sandbox

    def _hosts(self) -> str:
        lines = ["127.0.0.1\tlocalhost"]
        for i in range(self.members):
            host = self.rendered.member_host(i)
            lines.append(f"{SUBNET}.{i + 1}\t{host} {self.rendered.name}-{i}")
        return "\n".join(lines) + "\n"

    def start(self) -> MySQLPod:
        """Creates the sandbox: namespaces, root overlay, volumes, loopback."""
        assert self.sandbox is None, "already started"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._prepare_volumes()
        root = self.workdir / "root"
        upper = self.workdir / "overlay" / "upper"
        work = self.workdir / "overlay" / "work"
        for d in (root, upper / "etc", work):
            d.mkdir(parents=True, exist_ok=True)
        (upper / "etc" / "hosts").write_text(self._hosts())
        (upper / "etc" / "hostname").write_text(self.name + "\n")
        script = [
            "set -eu",
            "mount --make-rprivate /",
            f"mount -t overlay overlay -o lowerdir={self.rootfs.path},upperdir={upper},workdir={work} {root}",
            f"mount -t proc proc {root}/proc",
            f"mount -t tmpfs -o mode=1777,size=256m tmpfs {root}/tmp",
            f"mount -t tmpfs -o mode=0755,size=1m tmpfs {root}/dev",
            f"for n in null zero full random urandom tty; do touch {root}/dev/$n; mount --bind /dev/$n {root}/dev/$n; done",
            # bash's process substitution (the entrypoint's option files) opens /dev/fd/N
            f"ln -s /proc/self/fd {root}/dev/fd",
            f"ln -s /proc/self/fd/0 {root}/dev/stdin && ln -s /proc/self/fd/1 {root}/dev/stdout",
            f"ln -s /proc/self/fd/2 {root}/dev/stderr",
            f"mkdir -p {root}/dev/shm && mount -t tmpfs -o mode=1777,size=16m tmpfs {root}/dev/shm",
        ]
        for path, kind, src, ro in self._mounts():
            target = f"{root}{path}"
            script.append(f"mkdir -p {target}")
            if kind == "tmpfs":
                script.append(f"mount -t tmpfs -o size=1m,mode=2777,gid={self.fs_group} tmpfs {target}")
            else:
                script.append(f"mount --bind {src} {target}")
                if ro:
                    script.append(f"mount -o remount,bind,ro {target}")
        script += [
            f"echo {self.name} >/proc/sys/kernel/hostname",
            "ip link set lo up",
            # PID 1 of the pod: reaps what the containers leave (the entrypoint's daemonized
            # temporary servers) until it is killed. Ready once it runs in the pod's root.
            f"exec chroot {root} /bin/bash -c 'echo ready; trap \"exit 0\" TERM; while :; do sleep 1 & wait $!; done'",
        ]
        log = open(self.logs / "sandbox.log", "ab")  # noqa: SIM115 - kept by the Popen
        self.sandbox = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--net", "--uts", "--fork", "--kill-child", "bash", "-c", "\n".join(script)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
        )  # fmt: skip
        assert self.sandbox.stdout is not None
        line = self.sandbox.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError(f"{self.name}: sandbox did not start:\n{(self.logs / 'sandbox.log').read_text()}")
        return self

    def init_pid(self) -> int:
        assert self.sandbox is not None and self.sandbox.poll() is None, f"{self.name}: sandbox not running"
        (pid,) = _children(self.sandbox.pid)
        return pid

    def stop(self) -> None:
        """Ends every process of the pod at once (by the sandbox's PID): the pod's data is
        thrown away, so nothing waits for a clean shutdown (`Container.stop` is the graceful one)."""
        if self.sandbox is not None:
            if self.sandbox.poll() is None:
                # unshare itself ignores SIGTERM while it waits: end the pod's PID 1, which
                # takes every other process of the PID namespace with it
                for pid in _children(self.sandbox.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if _wait_exit(self.sandbox, 10) is None:
                    self.sandbox.kill()
                    _wait_exit(self.sandbox, 10)
            self.sandbox = None
        for c in self.running.values():
            if _wait_exit(c.popen, 10) is None:
                c.popen.kill()
                _wait_exit(c.popen, 10)
        self.running.clear()

    # ----------------------------------------------------------------- containers

    def env(self, container: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(self.rootfs.env)
        env["HOME"] = "/var/lib/mysql"  # containerd: the user's home from the image's /etc/passwd
        env["HOSTNAME"] = self.name
        for e in self.rendered.container(container).get("env", []):
            source = e.get("valueFrom")
            if source is None:
                env[e["name"]] = e.get("value", "")
            elif "fieldRef" in source:
                assert source["fieldRef"]["fieldPath"] == "metadata.name", source
                env[e["name"]] = self.name
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[e["name"]] = self.secrets[(ref["name"], ref["key"])]
            else:
                raise ValueError(f"{container}: env {e['name']}: unsupported source {source}")
        env.update(extra or {})
        return env

    def _argv(self, container: str, argv: list[str] | None) -> list[str]:
        if argv is None:
            c = self.rendered.container(container)
            command = c.get("command")
            argv = [*command, *c.get("args", [])] if command else [*IMAGE_ENTRYPOINT, *(c.get("args") or IMAGE_CMD)]
        return [
            "nsenter", f"--target={self.init_pid()}", "--mount", "--uts", "--net", "--pid", "--root", "--wdns=/",
            f"--setuid={self.uid}", f"--setgid={self.gid}", "--", *argv,
        ]  # fmt: skip

    def run(
        self,
        container: str,
        argv: list[str] | None = None,
        *,
        extra_env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120,
        log: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Runs a container's command to the end (its output goes to logs/<container>.log), or
        `argv` in the container with its env, like `kubectl exec` (output: logs/exec.log)."""
        cp = subprocess.run(
            self._argv(container, argv), env=self.env(container, extra_env), input=input,
            capture_output=True, text=True, timeout=timeout, check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )  # fmt: skip
        if log:
            what = "(command)" if argv is None else " ".join(argv)
            with open(self.logs / (f"{container}.log" if argv is None else "exec.log"), "a") as f:
                f.write(f"# {time.strftime('%H:%M:%S')} {container}: {what} -> {cp.returncode}\n")
                f.write(cp.stdout + cp.stderr)
        return cp

    def run_init_containers(self, timeout: float = 300) -> None:
        for name in self.rendered.init_containers:
            cp = self.run(name, timeout=timeout)
            if cp.returncode != 0:
                raise RuntimeError(f"{self.name}: init container {name} exited {cp.returncode}:\n{cp.stderr[-4000:]}")

    def start_container(
        self, container: str, argv: list[str] | None = None, extra_env: Mapping[str, str] | None = None
    ) -> Container:
        """Starts a container's command (or `argv` with its env) in the background; its
        output goes to logs/<container>.log."""
        log = self.logs / f"{container}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                self._argv(container, argv), env=self.env(container, extra_env), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.running[container] = Container(container, popen, log)
        return self.running[container]

    def probe(self, kind: str, container: str = "mysql") -> subprocess.CompletedProcess[str]:
        probe = self.rendered.container(container)[f"{kind}Probe"]
        return self.run(container, list(probe["exec"]["command"]), timeout=probe.get("timeoutSeconds", 5) + 10)

    def wait_ready(self, timeout: float = 180) -> None:
        """Until the readiness probe passes; fails at once if the mysql container exits."""
        deadline = time.monotonic() + timeout
        mysql = self.running["mysql"]
        while True:
            if not mysql.alive():
                raise RuntimeError(f"{self.name}: mysql exited {mysql.popen.returncode}:\n{mysql.log.read_text()[-4000:]}")
            cp = self.probe("readiness")
            if cp.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: not ready after {timeout:.0f}s: {cp.stderr.strip()[-500:]}")
            time.sleep(0.5)

    def sql(self, statements: str, *, container: str = "mysql", check: bool = True) -> str:
        """Statements as root over TCP with the pod's root option file (what the probes use)."""
        cp = self.run(container, ["mysql", f"--defaults-extra-file={CLIENT_CNF}", "--protocol=TCP",
                                  "--host=127.0.0.1", "--batch", "--skip-column-names"],
                      input=statements, log=False)  # fmt: skip
        if check and cp.returncode != 0:
            raise RuntimeError(f"{self.name}: mysql exited {cp.returncode}: {cp.stderr.strip()}")
        return cp.stdout

    def login(
        self, user: str, password: str, statement: str = "SELECT CURRENT_USER()", protocol: str = "TCP"
    ) -> subprocess.CompletedProcess[str]:
        """`statement` as `user`, authenticated by an option file that is escaped here in Python,
        independently of the scripts' own escaping, and reaches the pod on stdin: written to a
        private temporary file there, used, removed."""
        script = (
            'umask 077; f=$(mktemp); cat >"$f"; '
            'mysql --defaults-file="$f" --protocol="$1" --host="$2" --batch --skip-column-names -e "$3"; '
            'rc=$?; rm -f "$f"; exit $rc'
        )
        host = "127.0.0.1" if protocol == "TCP" else "localhost"
        return self.run("mysql", ["bash", "-c", script, "login", protocol, host, statement],
                        input=f"[client]\nuser={user}\npassword={option_file_quote(password)}\n", log=False)  # fmt: skip


def option_file_quote(value: str) -> str:
    """A value for a MySQL option file: double-quoted, with the reader's escapes."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(escapes.get(ch, ch) for ch in value) + '"'


def link(a: MySQLPod, b: MySQLPod) -> None:
    """A veth pair between two pods' network namespaces, one address each (created inside
    them, so nothing is left on the host)."""
    tag = f"{os.getpid() % 100000}{a.ordinal}{b.ordinal}"
    subprocess.run(["ip", "link", "add", f"k8sp{tag}a", "netns", str(a.init_pid()), "type", "veth",
                    "peer", "name", f"k8sp{tag}b", "netns", str(b.init_pid())], check=True, timeout=30)  # fmt: skip
    for pod, dev in ((a, f"k8sp{tag}a"), (b, f"k8sp{tag}b")):
        for cmd in (["addr", "add", f"{pod.address}/24", "dev", dev], ["link", "set", dev, "up"]):
            subprocess.run(["nsenter", f"--target={pod.init_pid()}", "--net", "ip", *cmd], check=True, timeout=30)


@contextlib.contextmanager
def pods(*members: MySQLPod) -> Iterator[tuple[MySQLPod, ...]]:
    """Starts the pods' sandboxes; on exit stops every process of them and removes their files."""
    try:
        for pod in members:
            pod.start()
        yield members
    finally:
        for pod in members:
            pod.stop()
        for pod in members:
            shutil.rmtree(pod.workdir, ignore_errors=True)


class ArgvWatch:
    """Samples /proc/*/cmdline in a thread; records (pid, program) of any process whose
    command line contains one of `secrets` (never the command line itself)."""

    def __init__(self, secrets: list[str], interval: float = 0.02) -> None:
        self.needles = [s.encode() for s in secrets if s]
        self.interval = interval
        self.found: list[tuple[int, str]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if any(n in cmdline for n in self.needles):
                    program = os.path.basename(cmdline.split(b"\0", 1)[0].decode(errors="replace"))
                    self.found.append((int(entry.name), program))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

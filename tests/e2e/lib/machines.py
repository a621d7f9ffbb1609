"""Real machines for the e2e tier: systemd-nspawn containers that boot Debian with systemd.

Each machine is what kubespray expects of a node: systemd as PID 1, sshd, python3, sudo
and a user with passwordless sudo and the test's key; its own network namespace with a
static address on a bridge the test creates (`Bridge`: a subnet of its own, the gateway is
this machine, no route beyond it since the host does not forward). kubespray then installs
everything else on it for real: packages through the stack's proxy, containerd, runc, etcd,
kubelet, the CNI.

The root file system is built once, offline except for the Debian mirror, with `mmdebstrap`
(bookworm, `--variant=important` + `PACKAGES`), cached outside the repo under
`<cache>/k8s-platform/machines/<key>/rootfs` (key = digest of this file), and copied per
machine (new host keys and machine-id each).

What a VM would give and nspawn does not, one documented workaround each (as kind does for
its node image; machine-notes of this machine kind have the measurements):

- no host systemd: `--register=no --keep-unit`, and the machine is started from cgroups of
  its own in every hierarchy (`/k8sp-machine-<name>` under this process's cgroups), so its
  cgroup namespace — and the kubelet's `kubepods` inside it — is confined to that subtree
  and removed at stop;
- nspawn mounts the cgroup v1 controllers read-only: `k8sp-machine-setup.service` remounts
  them read-write (confined to the machine's cgroup namespace) for runc and the kubelet;
- `kernel.*`/`vm.*`/`fs.*` sysctls are the host's and read-only in a container: the ones
  kubespray and the kubelet set (`SYSCTL_FILES`) are covered by machine-local files, so their
  writes succeed and reads return what was written, without touching the host;
- runc creates a session keyring (`--system-call-filter=@keyring`), the kubelet reads
  `/dev/kmsg` (`--bind-ro=/dev/kmsg`, `CAP_SYSLOG`).

`stop()` powers the machine off (SIGTERM to nspawn = an orderly halt of its systemd), then
kills what is left in its cgroups, removes them and the machine's directory. Every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .util import Proc, WaitTimeout, run, tail, wait_until, wait_while_alive

SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# a minimal server install: what kubespray needs to reach and drive the machine; it installs
# the rest itself (curl, rsync, socat, conntrack, iptables, ipset, …) through the proxy
PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "sudo", "iproute2", "ca-certificates")
USER = "tiger"  # the notes' ansible user
SYSCTL_FILES = (
    "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxbytes", "kernel/keys/root_maxkeys",
    "vm/overcommit_memory", "vm/panic_on_oom", "fs/inotify/max_user_instances",
)  # fmt: skip
SETUP_SCRIPT = """#!/bin/sh
# k8s-platform e2e: what a VM would have and a systemd-nspawn machine does not.
set -eu
# nspawn mounts the cgroup v1 controllers read-only; the machine's cgroup namespace confines them
for d in /sys/fs/cgroup/*/; do
  case "$(findmnt -no FSTYPE,OPTIONS "$d" 2>/dev/null)" in cgroup\\ ro,*) mount -o remount,bind,rw "$d" ;; esac
done
# kernel.*, vm.* and fs.* are the host's and read-only here: machine-local files take kubespray's
# and the kubelet's writes (sysctl -p rewrites every key of its file, changed or not)
for key in {sysctls}; do
  f=/run/k8sp-sysctl/$key
  mkdir -p "$(dirname "$f")"
  cat "/proc/sys/$key" > "$f"
  mount --bind "$f" "/proc/sys/$key"
done
""".replace("{sysctls}", " ".join(SYSCTL_FILES))
SETUP_UNIT = """[Unit]
Description=k8s-platform e2e machine setup (cgroups read-write, machine-local sysctls)
DefaultDependencies=no
After=local-fs.target
Before=systemd-sysctl.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/k8sp-machine-setup

[Install]
WantedBy=sysinit.target
"""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "k8s-platform" / "machines"


def _key() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def missing_tools() -> list[str]:
    return [t for t in ("systemd-nspawn", "mmdebstrap", "ssh-keygen") if shutil.which(t) is None]


def rootfs(log: Path) -> Path:
    """The machines' shared root file system (built once per key; about 30 s cold)."""
    out = cache_root() / _key()
    root = out / "rootfs"
    if (out / "ready").is_file():
        return root
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    cp = run(["mmdebstrap", "--variant=important", f"--include={','.join(PACKAGES)}",
              "--dpkgopt=path-exclude=/usr/share/{doc,man,info,locale}/*",
              SUITE, str(root), DEBIAN_MIRROR], 900)  # fmt: skip
    log.write_text(cp.stdout + cp.stderr)
    (root / "usr/local/sbin/k8sp-machine-setup").write_text(SETUP_SCRIPT)
    (root / "usr/local/sbin/k8sp-machine-setup").chmod(0o755)
    (root / "etc/systemd/system/k8sp-machine-setup.service").write_text(SETUP_UNIT)
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "k8sp-machine-setup.service").symlink_to("/etc/systemd/system/k8sp-machine-setup.service")
    # systemd-networkd brings host0 up with the address each machine gets
    net_wants = root / "etc/systemd/system/multi-user.target.wants"
    net_wants.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (net_wants / "systemd-networkd.service").symlink_to("/lib/systemd/system/systemd-networkd.service")
    for f in (root / "etc/ssh").glob("ssh_host_*"):
        f.unlink()
    (out / "ready").write_text(_key())
    return root


def _cgroup_dirs() -> list[Path]:
    """This process's cgroup directory in every mounted hierarchy (v1 controllers and v2)."""
    mine: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        mine[controllers] = path
    dirs = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, post = line.split(" - ", 1)
        fstype, _, options = post.split()[:3]
        mountpoint = pre.split()[4]
        if fstype == "cgroup2" and "" in mine:
            dirs.append(Path(mountpoint + mine[""]))
        elif fstype == "cgroup":
            names = [o for o in options.split(",") if (o not in ("rw", "ro") and "=" not in o) or o.startswith("name=")]
            for controllers, path in mine.items():
                if controllers and set(controllers.split(",")) == set(names):
                    dirs.append(Path(mountpoint + path))
    return dirs


@dataclass
class Bridge:
    """A bridge of the test's own with the gateway address of `subnet` (this machine)."""

    name: str
    subnet: ipaddress.IPv4Network
    created: bool = False

    @classmethod
    def new(cls) -> Bridge:
        taken = {ipaddress.ip_network(r.split()[0], strict=False) for r in
                 run(["ip", "-4", "route", "show"], 10).stdout.splitlines() if r and r.split()[0] != "default"}  # fmt: skip
        for _ in range(50):
            subnet = ipaddress.ip_network(f"172.30.{secrets.randbelow(200) + 20}.0/24")
            if not any(subnet.overlaps(t) for t in taken):
                return cls(name=f"k8spm{secrets.token_hex(3)}", subnet=subnet)
        raise RuntimeError("no free 172.30.x.0/24 subnet for the machines' bridge")

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def address(self, index: int) -> str:
        return str(self.subnet.network_address + 10 + index)

    def create(self) -> Bridge:
        run(["ip", "link", "add", self.name, "type", "bridge"], 10)
        self.created = True
        run(["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.name], 10)
        run(["ip", "link", "set", self.name, "up"], 10)
        return self

    def remove(self) -> str:
        if not self.created:
            return "not created"
        cp = run(["ip", "link", "del", self.name], 10, check=False)
        self.created = False
        return "removed" if cp.returncode == 0 else f"ip link del: {cp.stderr.strip()}"


@dataclass
class Machine:
    """One systemd-nspawn machine on `bridge`; `dir` holds its root file system and logs."""

    name: str  # the host name (kubespray's inventory name)
    index: int
    bridge: Bridge
    dir: Path
    public_key: str  # authorized for USER
    unit: str = field(default_factory=lambda: f"m{secrets.token_hex(3)}")  # nspawn's machine name (veth vb-<unit>)
    proc: Proc | None = None
    cgroups: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.bridge.address(self.index)

    @property
    def root(self) -> Path:
        return self.dir / "rootfs"

    @property
    def log(self) -> Path:
        return self.dir / "console.log"

    def prepare(self, base: Path) -> Machine:
        """A copy of the shared root file system made into this machine."""
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)
        run(["cp", "-a", "--reflink=auto", str(base), str(self.root)], 300)
        r = self.root
        (r / "etc/hostname").write_text(self.name + "\n")
        (r / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n")
        (r / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        run(["chroot", str(r), "ssh-keygen", "-A"], 60)
        net = r / "etc/systemd/network"
        net.mkdir(parents=True, exist_ok=True)
        (net / "10-host0.network").write_text(
            f"[Match]\nName=host0\n\n[Network]\nAddress={self.address}/{self.bridge.subnet.prefixlen}\n"
            f"Gateway={self.bridge.gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        )
        # no name server is reachable from the bridge; the gateway answers nothing
        (r / "etc/resolv.conf").unlink(missing_ok=True)
        (r / "etc/resolv.conf").write_text(f"nameserver {self.bridge.gateway}\n")
        run(["chroot", str(r), "useradd", "-m", "-s", "/bin/bash", USER], 30)
        (r / "etc/sudoers.d" / USER).write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
        ssh = r / "home" / USER / ".ssh"
        ssh.mkdir(mode=0o700)
        (ssh / "authorized_keys").write_text(self.public_key.strip() + "\n")
        run(["chroot", str(r), "chown", "-R", f"{USER}:{USER}", f"/home/{USER}/.ssh"], 30)
        return self

    def host_public_key(self) -> str:
        """`<type> <base64>` of the machine's ed25519 host key (what a pinned `hostKey` holds)."""
        return " ".join((self.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])

    def _make_cgroups(self) -> list[Path]:
        made = []
        for parent in _cgroup_dirs():
            d = parent / f"k8sp-machine-{self.unit}"
            d.mkdir(exist_ok=True)
            made.append(d)
            # a new cpuset cgroup starts with no CPUs or memory nodes: inherit the parent's
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (d / knob).exists() and not (d / knob).read_text().strip():
                    (d / knob).write_text((parent / knob).read_text())
        return made

    def start(self, timeout: float = 60) -> Machine:
        self.cgroups = self._make_cgroups()
        join = " ".join(f"echo $$ > {c}/cgroup.procs;" for c in self.cgroups)
        argv = ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit",
                f"--machine={self.unit}", f"--network-bridge={self.bridge.name}", "--console=passive",
                "--system-call-filter=@keyring", "--capability=CAP_SYSLOG", "--bind-ro=/dev/kmsg"]  # fmt: skip
        self.proc = Proc(f"machine-{self.name}", ["sh", "-c", f"{join} exec \"$@\"", "sh", *argv], self.log).start()
        try:
            wait_while_alive(self.proc, f"sshd on {self.name} ({self.address})", self.ssh_open, timeout)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n--- console\n{tail(self.log)}") from exc
        return self

    def ssh_open(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.address, 22), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def kill(self) -> str:
        """The machine dies at once (a power cut): SIGKILL to nspawn and everything in its cgroups."""
        if self.proc is None or self.proc.pid is None:
            return "not started"
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self._kill_cgroups()
        self.proc.stop(1)
        self._remove_cgroups()
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / self.unit, ignore_errors=True)
        return "killed"

    def _kill_cgroups(self) -> int:
        killed = 0
        for c in self.cgroups:
            for procs in c.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    for pid in procs.read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
                            killed += 1
        return killed

    def _remove_cgroups(self) -> str:
        left = []
        for c in self.cgroups:
            if not c.exists():
                continue
            for d in [*sorted((p for p in c.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True), c]:
                try:
                    wait_until(lambda d=d: _rmdir(d), 10, f"cgroup {d} empty", interval=0.2)
                except WaitTimeout:
                    left.append(str(d))
        self.cgroups = [c for c in self.cgroups if c.exists()]
        return f"left {left}" if left else "removed"

    def stop(self, grace: float = 90) -> dict[str, str]:
        """Power off (bounded), then remove what is left: processes, cgroups, the machine's files."""
        out: dict[str, str] = {}
        if self.proc is not None:
            out["nspawn"] = self.proc.stop(grace)
        out["leftover processes killed"] = str(self._kill_cgroups())
        out["cgroups"] = self._remove_cgroups()
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / self.unit, ignore_errors=True)
        return out

    def remove_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _rmdir(d: Path) -> bool:
    if not d.exists():
        return True
    try:
        d.rmdir()
        return True
    except OSError:
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        return False


def ssh_argv(machine: Machine, key: Path, *command: str) -> list[str]:
    return ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", f"{USER}@{machine.address}", *command]  # fmt: skip


def ssh(machine: Machine, key: Path, command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(ssh_argv(machine, key, command), timeout, check=check)

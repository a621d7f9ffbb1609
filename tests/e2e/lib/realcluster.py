"""The e2e tier's real-machine site: machines, their mirror and proxy, and kubespray's own tree.

`RealSite` puts together what a team's air-gapped lab has, on this machine only:

- a bridge of the test's own (`machines.Bridge`) and systemd-nspawn machines on it
  (`machines.Machine`: systemd, sshd, python3, sudo, the ansible user with the site's key);
- the site's mirror and proxy on the bridge's gateway (`mirror.Site`): kubespray's files,
  the registry with every image it pulls, the proxy to the Debian mirror;
- kubespray v2.31.0's tree **unchanged** (no stand-in play), as a git repository tagged
  `v2.31.0` that the program fetches like upstream.

`stack_settings()` is the stack's `cluster` section for those machines: every value is an
ordinary setting a user sets for their own machines (README, "Air-gapped installs" and
"Machines without some kernel features"); none exists for the tests only.
"""

from __future__ import annotations

import json
import resource
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import kubespray_tree

from . import engine, images, machines, mirror
from .util import run

GIT = ["git", "-c", "user.name=k8s-platform e2e", "-c", "user.email=e2e@localhost", "-c", "init.defaultBranch=main"]
APP_IMAGE = "k8s-platform.test/web"  # the app image (images.py), served by the site's registry


def kubespray_repo(dest: Path) -> tuple[str, str]:
    """kubespray v2.31.0's own tree as a git repository tagged v2.31.0: (source, commit)."""
    shutil.rmtree(dest, ignore_errors=True)
    unpack = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(unpack, ignore_errors=True)
    kubespray_tree.unpack(unpack).rename(dest)
    unpack.rmdir()
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-q", "-m", f"kubespray {kubespray_tree.VERSION}"),
                 ("tag", kubespray_tree.VERSION)):  # fmt: skip
        run([*GIT, "-C", str(dest), *args], 120)
    commit = run([*GIT, "-C", str(dest), "rev-parse", "HEAD"], 30).stdout.strip()
    return str(dest), commit


def machine_kind_vars() -> dict[str, Any]:
    """kubespray variables for machines like these (containers without some kernel features).

    Each is what the machine kind requires (machine-notes), as a user on such machines sets it:
    """
    return {
        # no IP_VS in the kernel: kube-proxy in iptables mode (kubespray defaults to ipvs)
        "kube_proxy_mode": "iptables",
        # nf_conntrack_max cannot be set from a container: leave the kernel's limit as it is
        "kube_proxy_conntrack_max_per_core": 0,
        # no dummy links: no nodelocaldns (its interface is a dummy link)
        "enable_nodelocaldns": False,
        # CAP_SYS_RESOURCE is withheld: runc may not lower a sandbox's oom_score_adj ...
        "containerd_extra_runtime_args": {"restrict_oom_score_adj": True},
        # ... nor raise a container's open-files limit above the machine's hard limit
        "containerd_base_runtime_spec_rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        # cgroup v1 (hybrid) machines: the kubelet runs there only when told, with cgroupfs
        "kubelet_fail_cgroup_v1": False,
        "containerd_use_systemd_cgroup": False,
    }


def site_vars(site: mirror.Site, v: dict[str, str]) -> dict[str, Any]:
    """kubespray variables for a site whose mirror serves self-built binaries and images."""
    return {
        # self-built binaries: the mirror's sha256, not kubespray's table (and the versions that
        # differ from kubespray's defaults: scripts/engine.sh says why)
        **site.checksums(),
        "etcd_version": v["etcd"],
        "nerdctl_version": v["nerdctl"],
        # images this site does not mirror: the DNS autoscaler, and kubelet-csr-approver (its chart
        # and image come from the internet; kubelets then keep their self-signed serving certificates)
        "enable_dns_autoscaler": False,
        "kubelet_rotate_server_certificates": False,
    }


@dataclass
class RealSite:
    dir: Path
    bridge: machines.Bridge | None = None
    site: mirror.Site | None = None
    machines: dict[str, machines.Machine] = field(default_factory=dict)
    base: Path | None = None
    key: Path | None = None
    kubespray_source: str = ""
    kubespray_commit: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def start(self) -> RealSite:
        self.dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        app = images.build(Path(engine.binary("pause")), self.dir / "logs" / "images.log")
        content = mirror.build(self.dir / "logs" / "mirror-build.log",
                               extra_images={f"{APP_IMAGE}:1": (app, "web-1"), f"{APP_IMAGE}:2": (app, "web-2")})  # fmt: skip
        self.base = machines.rootfs(self.dir / "logs" / "rootfs.log")
        self.timings["content"] = round(time.monotonic() - t0, 1)
        self.key = self.dir / "site-key"
        if not self.key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "k8s-platform e2e site", "-f", str(self.key)], 30)
        self.bridge = machines.Bridge.new().create()
        self.site = mirror.Site(self.dir / "site", self.bridge.gateway, content).start()
        self.kubespray_source, self.kubespray_commit = kubespray_repo(self.dir / "kubespray")
        return self

    def machine(self, name: str) -> machines.Machine:
        """The machine `name`, started when it is not running yet (its files kept across restarts)."""
        assert self.bridge is not None and self.base is not None and self.key is not None
        m = self.machines.get(name)
        if m is None:
            m = machines.Machine(name, len(self.machines) + 1, self.bridge, self.dir / "machines" / name,
                                 Path(f"{self.key}.pub").read_text())  # fmt: skip
            m.prepare(self.base)
            self.machines[name] = m
        if not m.alive():
            m.unit = f"m{secrets.token_hex(3)}"
            m.start()
        return m

    def ssh(self, name: str, command: str, timeout: float = 60, check: bool = True) -> Any:
        assert self.key is not None
        return machines.ssh(self.machines[name], self.key, command, timeout=timeout, check=check)

    def cluster_settings(self, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        """The stack's `cluster` settings (kubespray mode, minus the control host) for these machines."""
        assert self.site is not None and self.bridge is not None and self.key is not None
        v = mirror.versions()
        reg = self.site.registry
        return {
            "kubeVersion": v["kubernetes"],
            "networkPlugin": "flannel",
            "ansibleUser": machines.USER,
            "ansibleKeyPath": str(self.key),
            "nodes": nodes,
            "proxy": {"http": self.site.proxy, "https": self.site.proxy, "noProxy": self.bridge.gateway},
            # every image by its upstream name, pulled through the site's registry (plain HTTP on
            # the lab's bridge: a dev stack), which serves each upstream below a path of its own;
            # and the site's own images (the app) from the registry itself
            "registryMirrors": {
                "registry.k8s.io": {"url": f"http://{reg}/registry.k8s.io"},
                "docker.io": {"url": f"http://{reg}/docker.io"},
                reg: {"url": f"http://{reg}"},
            },
            "imageRepos": {"files": self.site.files_repo},
            "extraVars": {**machine_kind_vars(), **site_vars(self.site, v), "flannel_backend_type": "host-gw"},
        }

    def stop(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, m in reversed(self.machines.items()):
            out[name] = m.stop()
            m.remove_files()
        if self.site is not None:
            out["site"] = self.site.stop()
        if self.bridge is not None:
            out["bridge"] = self.bridge.remove()
        return out

    def report(self) -> str:
        return json.dumps({n: m.address for n, m in self.machines.items()})


def leftovers(site: RealSite) -> list[str]:
    """What a real node leaves running after reset: kubelet, containerd, etcd processes per machine."""
    out = []
    for name in site.machines:
        cp = site.ssh(name, "pgrep -a -x 'kubelet|containerd|etcd|kube-apiserver' || true", check=False)
        out += [f"{name}: {line}" for line in cp.stdout.splitlines() if line.strip()]
    return out

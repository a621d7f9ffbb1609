"""The e2e tier's air-gapped site: a file mirror, an image registry and an HTTP proxy.

What a team without internet runs for kubespray, served on the machines' bridge (the
bridge's gateway address, on this machine):

- **files** (`files_repo`, kubespray's offline layout `<files_repo>/<upstream host>/<path>`):
  every file kubespray downloads for the test stack's configuration — kubelet, kubeadm,
  kubectl, etcd, containerd, runc, crictl, nerdctl, the CNI plugins — as the release
  archives upstream publishes (same names, same layout inside), built from the module proxy
  by scripts/engine.sh (`machine-*` groups). They are not upstream's bytes, so their sha256
  differ from kubespray's table: the stack gives kubespray the mirror's checksums through
  `cluster.extraVars` (`kubelet_binary_checksum`, …), exactly what a team with self-built
  binaries does (README, "Air-gapped installs").
- **registry** (distribution's `registry`, plain HTTP on the bridge): every image kubespray
  pulls — kube-apiserver, -controller-manager, -scheduler, kube-proxy, pause, CoreDNS,
  flannel and its CNI plugin image, nginx (the API proxy on worker-only nodes) — under the
  upstream names below a per-registry prefix (`<mirror>/registry.k8s.io/…`,
  `<mirror>/docker.io/…`), which is where `cluster.registryMirrors` points containerd. The
  images are packed here with umoci: the self-built binaries on an empty base (the control
  plane, pause, CoreDNS) or on a Debian base with the tools the upstream image carries
  (iptables/conntrack for kube-proxy and flannel, nginx with its stream module).
- **proxy** (`http://<gateway>:10086`, the notes' port): forwards only to the Debian mirror,
  for the operating-system packages kubespray installs (`cluster.proxy`).

Files and registry content are built once per input digest and cached outside the repo
(`<cache>/k8s-platform/mirror/<key>/`); each server writes an access log, so a test can show
that everything the machines fetched came from the site.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import engine
from .util import Proc, free_port, logged_run, port_open, run, wait_while_alive

ARCH = "amd64"
SERVERS = Path(__file__).with_name("mirror_servers.py")
DEBIAN_HOSTS = ("deb.debian.org",)  # what the machines' apt sources name, and all the proxy reaches
# the Debian layer of the images that need userland tools
DEBIAN_PACKAGES = ("iptables", "conntrack", "ipset", "nginx-light", "libnginx-mod-stream")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PORTS = {"files": 8080, "registry": 5000, "proxy": 10086}


def versions() -> dict[str, str]:
    """scripts/engine.sh's pins (the one place the versions of the machine software live)."""
    out = run([str(engine.ENGINE_SH), "--versions"], 30).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def machine_dir() -> Path:
    return engine.engine_dir() / "machine"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "k8s-platform" / "mirror"


@dataclass(frozen=True)
class Artifact:
    path: str  # under files_repo
    checksum_var: str  # kubespray's variable for its sha256
    members: tuple[tuple[str, str], ...]  # (name inside the archive, source binary); () = the file itself


def artifacts(v: dict[str, str]) -> list[Artifact]:
    k, mach, bins = v["kubernetes"], machine_dir(), engine.bin_dir()
    gh = "github.com"
    cni = [(f"./{p.name}", str(p)) for p in sorted((mach / "cni").iterdir()) if p.name != "flannel"]
    return [
        *(Artifact(f"dl.k8s.io/release/v{k}/bin/linux/{ARCH}/{n}", f"{n}_binary_checksum", ((n, str(bins / n)),))
          for n in ("kubelet", "kubeadm", "kubectl")),
        Artifact(f"{gh}/etcd-io/etcd/releases/download/v{v['etcd']}/etcd-v{v['etcd']}-linux-{ARCH}.tar.gz",
                 "etcd_binary_checksum",
                 tuple((f"etcd-v{v['etcd']}-linux-{ARCH}/{n}", str(bins / n if n != "etcdutl" else mach / n))
                       for n in ("etcd", "etcdctl", "etcdutl"))),
        Artifact(f"{gh}/containerd/containerd/releases/download/v{v['containerd']}/containerd-{v['containerd']}-linux-{ARCH}.tar.gz",
                 "containerd_archive_checksum",
                 tuple((f"bin/{n}", str(mach / n)) for n in ("containerd", "containerd-shim-runc-v2", "ctr"))),
        Artifact(f"{gh}/opencontainers/runc/releases/download/v{v['runc']}/runc.{ARCH}", "runc_binary_checksum",
                 (("runc", str(mach / "runc")),)),
        Artifact(f"{gh}/kubernetes-sigs/cri-tools/releases/download/v{v['crictl']}/crictl-v{v['crictl']}-linux-{ARCH}.tar.gz",
                 "crictl_binary_checksum", (("crictl", str(mach / "crictl")),)),
        Artifact(f"{gh}/containerd/nerdctl/releases/download/v{v['nerdctl']}/nerdctl-{v['nerdctl']}-linux-{ARCH}.tar.gz",
                 "nerdctl_archive_checksum", (("nerdctl", str(mach / "nerdctl")),)),
        Artifact(f"{gh}/containernetworking/plugins/releases/download/v{v['cni']}/cni-plugins-linux-{ARCH}-v{v['cni']}.tgz",
                 "cni_binary_checksum", tuple(cni)),
    ]  # fmt: skip


@dataclass(frozen=True)
class Image:
    name: str  # upstream name, e.g. registry.k8s.io/kube-apiserver:v1.34.4
    base: str  # "scratch" or "debian"
    files: tuple[tuple[str, str], ...]  # (path in the image, source binary)
    config: tuple[str, ...] = ()  # umoci config arguments


def images(v: dict[str, str]) -> list[Image]:
    k, mach, bins = v["kubernetes"], machine_dir(), engine.bin_dir()
    # kubespray v2.31.0's image names and tags for this configuration (download.yml)
    control = [Image(f"registry.k8s.io/{n}:v{k}", "scratch", ((f"usr/local/bin/{n}", str(bins / n)),),
                     ("--config.env", PATH_ENV)) for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    return [
        *control,
        Image(f"registry.k8s.io/kube-proxy:v{k}", "debian", (("usr/local/bin/kube-proxy", str(bins / "kube-proxy")),)),
        Image("registry.k8s.io/pause:3.10.1", "scratch", (("pause", str(bins / "pause")),),
              ("--config.entrypoint", "/pause", "--config.user", "65535:65535")),
        Image(f"registry.k8s.io/coredns/coredns:v{v['coredns']}", "scratch", (("coredns", str(mach / "coredns")),),
              ("--config.entrypoint", "/coredns")),
        Image(f"docker.io/flannel/flannel:v{v['flannel']}", "debian", (("opt/bin/flanneld", str(mach / "flanneld")),),
              ("--config.entrypoint", "/opt/bin/flanneld")),
        Image("docker.io/flannel/flannel-cni-plugin:v1.7.1-flannel1", "debian", (("flannel", str(mach / "cni/flannel")),)),
        # kubespray's nginx-proxy mounts its own nginx.conf (a `stream` block): Debian builds the
        # stream module as a loadable one, so the image loads it before reading that file
        Image("docker.io/library/nginx:1.28.2-alpine", "debian", (),
              ("--config.cmd", "nginx", "--config.cmd", "-g", "--config.cmd",
               "load_module /usr/lib/nginx/modules/ngx_stream_module.so; daemon off;")),
    ]  # fmt: skip


def content_names(v: dict[str, str] | None = None) -> tuple[set[str], set[str]]:
    """What the site mirrors: (file paths under files_repo, image names) — the recipes above."""
    v = v or versions()
    return {a.path for a in artifacts(v)}, {img.name for img in images(v)}


def _add(tar: tarfile.TarFile, arcname: str, source: str, mode: int = 0o755) -> None:
    """A member with fixed owner and time, so the archive's sha256 depends on content only."""
    data = Path(source).read_bytes()
    for i, _part in enumerate(Path(arcname).parts[:-1]):
        d = "/".join(Path(arcname).parts[: i + 1])
        if d not in tar.getnames() and d != ".":
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
    info = tarfile.TarInfo(arcname)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _write_artifact(root: Path, a: Artifact) -> str:
    dest = root / a.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    if a.path.endswith((".tar.gz", ".tgz")):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for arcname, src in a.members:
                _add(tar, arcname, src)
        import gzip

        dest.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    else:
        shutil.copyfile(a.members[0][1], dest)
        dest.chmod(0o755)
    return "sha256:" + hashlib.sha256(dest.read_bytes()).hexdigest()


def _key(v: dict[str, str]) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps(v, sort_keys=True).encode())
    for a in artifacts(v):
        for _, src in a.members:
            h.update(src.encode() + hashlib.sha256(Path(src).read_bytes()).digest())
    for img in images(v):
        for _, src in img.files:
            h.update(src.encode() + hashlib.sha256(Path(src).read_bytes()).digest())
    return h.hexdigest()[:12]


def build(log: Path, extra_images: dict[str, tuple[Path, str]] | None = None) -> Path:
    """The site's content (files/, registry/, checksums.json), built once per input digest.

    `extra_images`: more images for the registry, name -> (OCI archive, tag in it) (the test
    apps' images, tests/e2e/lib/images.py).
    """
    v = versions()
    key = _key(v) + ("-" + hashlib.sha256(json.dumps(sorted((n, str(p), t) for n, (p, t) in
                                                           (extra_images or {}).items())).encode()).hexdigest()[:6]
                     if extra_images else "")  # fmt: skip
    out = cache_root() / key
    if (out / "checksums.json").is_file():
        return out
    missing = [t for t in ("mmdebstrap", "umoci", "skopeo") if shutil.which(t) is None]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}: `make setup` installs them")
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)

    def sh(*argv: str, timeout: float = 300) -> None:
        logged_run(argv, timeout, work, log)

    checksums = {a.checksum_var: _write_artifact(work / "files", a) for a in artifacts(v)}
    sh("mmdebstrap", "--variant=essential", f"--include={','.join(DEBIAN_PACKAGES)}",
       "--dpkgopt=path-exclude=/usr/share/{doc,man,info,locale}/*", "--format=tar",
       "bookworm", str(work / "debian.tar"), timeout=900)  # fmt: skip
    layout = work / "oci"
    sh("umoci", "init", "--layout", str(layout))
    sh("umoci", "new", "--image", f"{layout}:scratch")
    sh("umoci", "new", "--image", f"{layout}:debian")
    sh("umoci", "raw", "add-layer", "--image", f"{layout}:debian", str(work / "debian.tar"))
    sh("umoci", "config", "--image", f"{layout}:debian", "--config.env", PATH_ENV)
    registry = Proc("registry-build", [str(machine_dir() / "registry"), "serve", str(work / "registry.yml")],
                    work / "registry.log")  # fmt: skip
    port = free_port()
    (work / "registry.yml").write_text(_registry_config(work / "registry", f"127.0.0.1:{port}"))
    registry.start()
    try:
        wait_while_alive(registry, "the build registry", lambda: port_open(port), 30)
        for i, img in enumerate(images(v)):
            tag = f"img{i}"
            sh("umoci", "config", "--image", f"{layout}:{img.base}", "--tag", tag, *img.config)
            if img.files:
                layer = work / f"{tag}.tar"
                with tarfile.open(layer, "w") as tar:
                    for arcname, src in img.files:
                        _add(tar, arcname, src)
                sh("umoci", "raw", "add-layer", "--image", f"{layout}:{tag}", str(layer))
            sh("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
               f"docker://127.0.0.1:{port}/{img.name}")  # fmt: skip
        for name, (archive, tag) in (extra_images or {}).items():
            sh("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{archive}:{tag}",
               f"docker://127.0.0.1:{port}/{name}")  # fmt: skip
    finally:
        registry.stop()
    for f in ("oci", "debian.tar", *(p.name for p in work.glob("img*.tar"))):
        p = work / f
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    (work / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True))
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return out


def _registry_config(storage: Path, addr: str) -> str:
    return json.dumps({
        "version": 0.1,
        "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": False}},
        "http": {"addr": addr},
    })  # fmt: skip


@dataclass
class Site:
    """The mirror and the proxy, served on `host` (the machines' gateway), from `dir`."""

    dir: Path
    host: str
    content: Path  # what build() returned
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def files_repo(self) -> str:
        return f"http://{self.host}:{PORTS['files']}"

    @property
    def registry(self) -> str:
        return f"{self.host}:{PORTS['registry']}"

    @property
    def proxy(self) -> str:
        return f"http://{self.host}:{PORTS['proxy']}"

    def access_log(self, server: str) -> Path:
        return self.dir / f"{server}-access.jsonl"

    def checksums(self) -> dict[str, str]:
        return json.loads((self.content / "checksums.json").read_text())

    def start(self) -> Site:
        self.dir.mkdir(parents=True, exist_ok=True)
        # the registry writes nothing while it only serves pulls, but keep the cache pristine
        storage = self.dir / "registry"
        shutil.rmtree(storage, ignore_errors=True)
        shutil.copytree(self.content / "registry", storage)
        (self.dir / "registry.yml").write_text(_registry_config(storage, self.registry))
        py = sys.executable
        self.procs = {
            "files": Proc("mirror-files", [py, str(SERVERS), "files", str(self.content / "files"), self.host,
                                           str(PORTS["files"]), str(self.access_log("files"))], self.dir / "files.log"),
            "registry": Proc("mirror-registry", [str(machine_dir() / "registry"), "serve", str(self.dir / "registry.yml")],
                             self.access_log("registry")),
            "proxy": Proc("site-proxy", [py, str(SERVERS), "proxy", self.host, str(PORTS["proxy"]),
                                         str(self.access_log("proxy")), *DEBIAN_HOSTS], self.dir / "proxy.log"),
        }  # fmt: skip
        for name, proc in self.procs.items():
            proc.start()
            wait_while_alive(proc, f"the site's {name} server", lambda n=name: port_open(PORTS[n], self.host), 30)
        return self

    def stop(self) -> dict[str, str]:
        return {name: proc.stop() for name, proc in reversed(self.procs.items())}

    def files_fetched(self) -> set[str]:
        """Paths the files server answered 200 to a GET of, from its access log."""
        log = self.access_log("files")
        out = set()
        for line in log.read_text().splitlines() if log.exists() else []:
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if entry.get("method") == "GET" and entry.get("status") == 200:
                out.add(str(entry["path"]))
        return out

    def registry_pulls(self) -> list[str]:
        """Repositories whose manifests were fetched (`<name>:<reference>`), from the access log."""
        pulls = []
        for line in self.access_log("registry").read_text().splitlines() if self.access_log("registry").exists() else []:
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            uri = str(entry.get("http.request.uri", ""))
            if "/manifests/" in uri and entry.get("http.response.status") in (200, 304):
                repo, ref = uri.removeprefix("/v2/").split("/manifests/", 1)
                pulls.append(f"{repo}:{ref}")
        return pulls

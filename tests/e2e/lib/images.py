"""Container images for the e2e tier's real node, built offline.

No image registry is reachable here, so the images the real node runs are made from
Debian's packages: mmdebstrap builds a bookworm root file system with `nginx-light` and
`busybox` and `curl`, umoci packs it as an OCI image (plus one small layer from
tests/e2e/images/web/), and the pod sandbox's `pause` is the engine's build of the
kubernetes release's own build/pause (scripts/engine.sh). One OCI layout holds every
image; it is cached outside the repo (`<cache>/k8s-platform/images/<key>/`, key = digest
of the inputs), so only the first run builds (about a minute) and later runs import.

| image (as containerd knows it)       | what it is                                                    |
| ------------------------------------ | ------------------------------------------------------------- |
| k8s-platform.test/pause:3.10         | the sandbox image (containerd's `sandbox_image`)              |
| k8s-platform.test/web:1, :2          | nginx as uid 33 on $WEB_LISTEN (8080) (WEB_MESSAGE v1 / v2)    |
| k8s-platform.test/web:unready        | the same, with no /healthz: its readiness probe never passes  |
| docker.io/library/nginx:1.27         | a stand-in for the official image the seed example names:     |
|                                      | Debian's nginx as root on :80 with Debian's own config        |

Pods reference them with imagePullPolicy IfNotPresent (the API's default for a tag other
than `latest`), so the kubelet never tries a registry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from .util import REPO_ROOT, logged_run

WEB_FILES = REPO_ROOT / "tests" / "e2e" / "images" / "web"
SUITE = "bookworm"
PACKAGES = ("nginx-light", "busybox", "curl")
PAUSE = "k8s-platform.test/pause:3.10"
WEB = "k8s-platform.test/web"
OFFICIAL_NGINX = "docker.io/library/nginx:1.27"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# tag in the OCI layout -> (image name in containerd, umoci config arguments)
TAGS: dict[str, tuple[str, list[str]]] = {
    "pause": (PAUSE, ["--config.user", "65535:65535", "--config.entrypoint", "/pause"]),
    "web-1": (f"{WEB}:1", ["--config.env", "WEB_MESSAGE=v1"]),
    "web-2": (f"{WEB}:2", ["--config.env", "WEB_MESSAGE=v2"]),
    "web-unready": (f"{WEB}:unready", ["--config.env", "WEB_MESSAGE=unready", "--config.env", "WEB_HEALTHY=no"]),
    "nginx-official": (
        OFFICIAL_NGINX,
        ["--config.user", "0:0", "--config.cmd", "nginx", "--config.cmd", "-g", "--config.cmd", "daemon off;",
         "--config.exposedports", "80/tcp"],
    ),
}  # fmt: skip
_WEB_BASE = ["--config.user", "33:33", "--config.entrypoint", "/usr/local/bin/web-start",
             "--config.exposedports", "8080/tcp"]  # fmt: skip


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "k8s-platform" / "images"


def _key(pause_binary: Path) -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    for f in sorted(WEB_FILES.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(pause_binary.read_bytes())
    return h.hexdigest()[:12]


def _tar_dir(src: Path, dest: Path, prefix: str) -> None:
    """A layer tar with `src`'s files under `prefix`, owned by root, modes kept."""
    with tarfile.open(dest, "w") as tar:
        for f in sorted(src.iterdir()):
            info = tar.gettarinfo(str(f), arcname=f"{prefix}/{f.name}")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(f, "rb") as fh:
                tar.addfile(info, fh)


def build(pause_binary: Path, log: Path) -> Path:
    """The OCI layout tar with every image (built once per input digest). Returns its path."""
    out = cache_root() / _key(pause_binary)
    archive = out / "images.oci.tar"
    if archive.is_file():
        return archive
    for tool in ("mmdebstrap", "umoci"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is missing: `make setup` installs it (apt-get install -y {tool})")
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)

    def sh(*argv: str, timeout: float = 120) -> None:
        logged_run(argv, timeout, work, log)

    # the Debian base: only Essential packages + nginx-light + busybox, no docs
    sh("mmdebstrap", "--variant=essential", f"--include={','.join(PACKAGES)}",
       "--dpkgopt=path-exclude=/usr/share/{doc,man,info,locale}/*", "--format=tar",
       SUITE, str(work / "debian.tar"), timeout=900)  # fmt: skip
    _tar_dir(WEB_FILES, work / "web-config.tar", "etc/web-image")
    start = work / "web-start"
    start.mkdir()
    shutil.copy2(WEB_FILES / "web-start", start / "web-start")
    _tar_dir(start, work / "web-start.tar", "usr/local/bin")
    pause_dir = work / "pause-root"
    pause_dir.mkdir()
    shutil.copy2(pause_binary, pause_dir / "pause")
    _tar_dir(pause_dir, work / "pause.tar", "")

    layout = work / "oci"
    sh("umoci", "init", "--layout", str(layout))
    sh("umoci", "new", "--image", f"{layout}:pause")
    sh("umoci", "raw", "add-layer", "--image", f"{layout}:pause", str(work / "pause.tar"))
    sh("umoci", "config", "--image", f"{layout}:pause", *TAGS["pause"][1])
    sh("umoci", "new", "--image", f"{layout}:debian")
    sh("umoci", "raw", "add-layer", "--image", f"{layout}:debian", str(work / "debian.tar"))
    sh("umoci", "config", "--image", f"{layout}:debian", "--config.env", PATH_ENV)
    sh("umoci", "config", "--image", f"{layout}:debian", "--tag", "nginx-official", *TAGS["nginx-official"][1])
    sh("umoci", "config", "--image", f"{layout}:debian", "--tag", "web-base", *_WEB_BASE)
    for layer in ("web-config.tar", "web-start.tar"):
        sh("umoci", "raw", "add-layer", "--image", f"{layout}:web-base", str(work / layer))
    for tag in ("web-1", "web-2", "web-unready"):
        sh("umoci", "config", "--image", f"{layout}:web-base", "--tag", tag, *TAGS[tag][1])
    with tarfile.open(work / "images.oci.tar", "w") as tar:
        for f in sorted(layout.iterdir()):
            tar.add(str(f), arcname=f.name)
    (work / "images.oci.tar").rename(work / "ready.tar")
    for f in list(work.iterdir()):
        if f.name != "ready.tar":
            shutil.rmtree(f) if f.is_dir() else f.unlink()
    (work / "ready.tar").rename(work / "images.oci.tar")
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return archive

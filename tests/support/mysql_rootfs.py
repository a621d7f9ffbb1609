"""A root file system with a real MySQL server, laid out like the official `mysql` image.

No image registry is reachable here and no Debian suite has MySQL 8.4, but Debian's sid
ships `mysql-server-core` / `mysql-client` of the 9.7 series (Debian's own build, not
Oracle's RPMs). This module builds, with mmdebstrap and the Debian mirror only, a sid root
file system holding those packages plus what the official image adds on top of its
Oracle Linux base, following its Dockerfile (docker-library/mysql, vendored as
`docker-library-mysql-7f30fdb.src.tar.gz` in $K8SP_ENGINE_SOURCES, sha256-checked):

- user and group `mysql` with uid/gid 999, home /var/lib/mysql;
- /etc/my.cnf as the Oracle package installs it, edited the way the Dockerfile edits it
  (socket /var/run/mysqld/mysqld.sock, a [client] socket, `!includedir /etc/mysql/conf.d/`);
  Debian's own /etc/mysql/my.cnf is removed so that, as in the official image, only
  /etc/my.cnf and conf.d are read;
- /var/lib/mysql and /var/run/mysqld owned by mysql, mode 1777; /var/lib/mysql-files (the
  package's secure-file-priv directory); /docker-entrypoint-initdb.d;
- the official `docker-entrypoint.sh` in /usr/local/bin, unmodified, and the image's
  environment (`MYSQL_MAJOR`, `MYSQL_VERSION`), recorded in the manifest;
- gosu, openssl, tzdata and the compressors, which the entrypoint calls.

The result is cached outside the repository, in
`${XDG_CACHE_HOME:-~/.cache}/k8s-platform/mysql-rootfs/<key>/` (`rootfs/` and
`manifest.json`: the installed MySQL version, the image env and the build time), where the
key is a digest of the inputs (this file, the vendored entrypoint and Dockerfile, suite,
mirror). A changed input builds a new one; nothing else does. A build needs root (mmdebstrap
in root mode; the tree holds files owned by uid 999).

    python -m tests.support.mysql_rootfs           build if missing, print the rootfs path
    python -m tests.support.mysql_rootfs --check   exit 0 when built, 1 when not
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.kubespray_tree import CACHE_ROOT, sources_dir

# The MySQL series the test server comes from: Debian sid's mysql-server-core. The exact
# version is whatever sid ships when the cache is built; the manifest records it.
MYSQL_SERIES = "9.7"
SUITE = "sid"
# The Debian mirror this machine kind reaches; K8SP_DEBIAN_MIRROR overrides it.
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("mysql-server-core", "mysql-client", "tzdata", "openssl", "gosu", "bzip2", "xz-utils", "zstd")
ENTRYPOINT_TARBALL = "docker-library-mysql-7f30fdb.src.tar.gz"
ENTRYPOINT_SHA256 = "19ad16ea460e2263be0333af1e7173b52b1717ed3230ddfb3a91178924fe2cd6"
ENTRYPOINT_DIR = f"docker-library-mysql-7f30fdb/{MYSQL_SERIES}"
MYSQL_UID = 999  # the official image's `groupadd --gid 999` / `useradd --uid 999`
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# /etc/my.cnf as Oracle's mysql-community-server-minimal package ships it, before the
# Dockerfile's edits (which `_official_my_cnf` applies).
ORACLE_MY_CNF = """\
# For advice on how to change settings please see
# http://dev.mysql.com/doc/refman/9.7/en/server-configuration-defaults.html

[mysqld]
host-cache-size=0
skip-name-resolve
datadir=/var/lib/mysql
socket=/var/lib/mysql/mysql.sock
secure-file-priv=/var/lib/mysql-files
user=mysql

pid-file=/var/run/mysqld/mysqld.pid
"""


@dataclass(frozen=True)
class MySQLRootfs:
    """A built root file system and what its manifest records."""

    path: Path
    mysql_version: str  # Debian's package version, e.g. 9.7.4-2
    env: dict[str, str]  # the image's environment (ENV lines of the Dockerfile, PATH)
    build_seconds: float


def cache_root() -> Path:
    return CACHE_ROOT / "mysql-rootfs"


def mirror() -> str:
    return os.environ.get("K8SP_DEBIAN_MIRROR") or DEFAULT_MIRROR


def _vendored() -> dict[str, bytes]:
    """The entrypoint and Dockerfile of the series, from the checksummed tarball."""
    path = sources_dir() / ENTRYPOINT_TARBALL
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the MySQL test image uses the official image's entrypoint. Set "
            f"K8SP_ENGINE_SOURCES to a directory holding {ENTRYPOINT_TARBALL} (docker-library/mysql at 7f30fdb)"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != ENTRYPOINT_SHA256:
        raise ValueError(f"{path} has sha256 {digest}, expected {ENTRYPOINT_SHA256}")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for name in ("docker-entrypoint.sh", "Dockerfile.oracle"):
            member = tar.extractfile(f"{ENTRYPOINT_DIR}/{name}")
            assert member is not None, name
            out[name] = member.read()
    return out


def cache_key() -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    for name, content in sorted(_vendored().items()):
        h.update(name.encode() + b"\0" + content)
    h.update(f"{SUITE}\0{mirror()}\0{','.join(PACKAGES)}".encode())
    return h.hexdigest()[:12]


def _official_my_cnf() -> str:
    """The Dockerfile's edits of /etc/my.cnf, applied to the package's file."""
    text = ORACLE_MY_CNF
    assert "socket=/var/lib/mysql/mysql.sock" in text
    text = text.replace("socket=/var/lib/mysql/mysql.sock", "socket=/var/run/mysqld/mysqld.sock")
    text += "[client]\nsocket=/var/run/mysqld/mysqld.sock\n"
    text += "\n!includedir /etc/mysql/conf.d/\n"
    return text


def _load(out: Path) -> MySQLRootfs | None:
    manifest = out / "manifest.json"
    if not (out / "rootfs" / "usr" / "sbin" / "mysqld").is_file() or not manifest.is_file():
        return None
    m = json.loads(manifest.read_text())
    return MySQLRootfs(out / "rootfs", m["mysql_version"], m["env"], m["build_seconds"])


def built() -> MySQLRootfs | None:
    """The rootfs of the current inputs if it is in the cache, else None."""
    return _load(cache_root() / cache_key())


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(argv: list[str], log: Path, timeout: float) -> str:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    with open(log, "a") as out:
        out.write(cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise RuntimeError(f"exit {cp.returncode}: {' '.join(argv)} (log: {log})\n{cp.stderr[-3000:]}")
    return cp.stdout


def _inside(root: Path, relative: str) -> Path:
    """`root/relative`, refusing a path that a symlink in the tree would lead out of it."""
    path = root / relative
    resolved = path.resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise ValueError(f"{relative} resolves to {resolved}, outside the tree {root}")
    return path


def _customize(root: Path, vendored: dict[str, bytes], log: Path) -> None:
    """What the official Dockerfile adds to its base image, on the Debian tree."""
    uid = MYSQL_UID
    with open(root / "etc/passwd", "a") as f:
        f.write(f"mysql:x:{uid}:{uid}::/var/lib/mysql:/bin/false\n")
    with open(root / "etc/group", "a") as f:
        f.write(f"mysql:x:{uid}:\n")
    # Debian's mysql-common config (/etc/mysql/my.cnf -> my.cnf.fallback, conf.d/*.cnf) is
    # not part of the official image: there, only /etc/my.cnf and what is put in conf.d count.
    mysql_etc = root / "etc/mysql"
    for p in (mysql_etc / "my.cnf", mysql_etc / "my.cnf.fallback"):
        p.unlink(missing_ok=True)
    shutil.rmtree(mysql_etc / "conf.d", ignore_errors=True)
    (mysql_etc / "conf.d").mkdir(parents=True)
    (root / "etc/my.cnf").write_text(_official_my_cnf())
    # /var/run is Debian's symlink to /run: create the directory inside the tree, never
    # through the (absolute) link, which would resolve on the host
    for d in ("var/lib/mysql", "run/mysqld"):
        path = _inside(root, d)
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, uid, uid)
        path.chmod(0o1777)
    files = _inside(root, "var/lib/mysql-files")
    files.mkdir(exist_ok=True)
    os.chown(files, uid, uid)
    files.chmod(0o750)
    (root / "docker-entrypoint-initdb.d").mkdir(exist_ok=True)
    entrypoint = root / "usr/local/bin/docker-entrypoint.sh"
    entrypoint.write_bytes(vendored["docker-entrypoint.sh"])
    entrypoint.chmod(0o755)
    # the Dockerfile's checks after installing the server
    _run(["chroot", str(root), "mysqld", "--version"], log, 60)
    _run(["chroot", str(root), "mysql", "--version"], log, 60)


def _prune(keep: str) -> None:
    """Removes the trees of earlier inputs (about 500 MB each): only the current one is used."""
    for entry in cache_root().iterdir():
        key = entry.name.removeprefix(".").removesuffix(".lock").removesuffix(".partial")
        if key != keep and len(key) == 12 and all(c in "0123456789abcdef" for c in key):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def build(log: Path | None = None) -> MySQLRootfs:
    """The rootfs of the current inputs, built first if the cache does not have it."""
    found = built()
    if found is not None:
        return found
    key = cache_key()
    out = cache_root() / key
    with _lock(cache_root() / f".{key}.lock"):
        found = _load(out)
        if found is not None:
            return found
        if os.geteuid() != 0:
            raise PermissionError("building the MySQL test rootfs needs root (mmdebstrap, files owned by uid 999)")
        if shutil.which("mmdebstrap") is None:
            raise FileNotFoundError("mmdebstrap is missing: `make setup` installs it (apt-get install -y mmdebstrap)")
        vendored = _vendored()
        work = out.with_name(out.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log = log or work / "build.log"
        t0 = time.monotonic()
        # sid's Release file is past its Valid-Until by this machine's clock (the mirror is a
        # snapshot); the signature is still checked.
        _run(["mmdebstrap", "--variant=apt", f"--include={','.join(PACKAGES)}",
              '--aptopt=Acquire::Check-Valid-Until "false"',
              "--dpkgopt=path-exclude=/usr/share/{doc,man,info,locale}/*",
              "--format=directory", SUITE, str(work / "rootfs"), mirror()], log, 1800)  # fmt: skip
        _customize(work / "rootfs", vendored, log)
        version = _run(["chroot", str(work / "rootfs"), "dpkg-query", "-W", "-f=${Version}", "mysql-server-core"],
                       log, 60).strip()  # fmt: skip
        if not version.startswith(MYSQL_SERIES + "."):
            raise RuntimeError(f"{SUITE} ships mysql-server-core {version}, not the {MYSQL_SERIES} series")
        env = {"PATH": PATH_ENV, "MYSQL_MAJOR": MYSQL_SERIES, "MYSQL_VERSION": version}
        seconds = round(time.monotonic() - t0, 1)
        manifest = {"mysql_version": version, "env": env, "build_seconds": seconds, "suite": SUITE,
                    "mirror": mirror(), "packages": list(PACKAGES), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        work.rename(out)
        _prune(keep=key)
    result = _load(out)
    assert result is not None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.mysql_rootfs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 0 when the rootfs is built, 1 when not")
    args = parser.parse_args(argv)
    if args.check:
        return 0 if built() is not None else 1
    cached = built() is not None
    rootfs = build()
    print(rootfs.path)
    how = f"cached; its build took {rootfs.build_seconds}s" if cached else f"built in {rootfs.build_seconds}s"
    print(f"MySQL test rootfs: mysql-server-core {rootfs.mysql_version} ({how})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

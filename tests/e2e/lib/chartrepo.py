"""A Helm chart repository of the project's test charts, served over HTTP on 127.0.0.1.

The charts in tests/e2e/charts/ are packaged (gzip tar `<name>/...`, Chart.yaml with
the published name/version) and indexed (`index.yaml`, apiVersion v1, sha256
digests, absolute URLs) in Python — the same layout `helm package` + `helm repo
index` produce — and served by `python -m http.server` bound to 127.0.0.1 (a
process, so `scripts/local_cluster.py start` can leave it running).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .util import REPO_ROOT, Proc, free_port, tail, wait_until

CHARTS = REPO_ROOT / "tests" / "e2e" / "charts"

# published name -> (source chart dir, versions). The first version of each is the one
# the catalog (components/catalog.py) or the stacks pin; later ones exist for upgrade tests.
PUBLISHED: dict[str, tuple[str, tuple[str, ...]]] = {
    "traefik": ("e2e-app", ("37.1.1", "37.2.0")),
    "localpv-provisioner": ("e2e-app", ("4.3.0", "4.4.0")),
    "metrics-server": ("e2e-app", ("3.13.0", "3.13.1")),
    "metallb": ("metallb", ("0.15.2", "0.15.3")),
    "grafana": ("e2e-app", ("8.5.0", "8.6.0")),
    "e2e-app": ("e2e-app", ("0.1.0", "0.2.0")),
}


def package(src: Path, name: str, version: str, out_dir: Path) -> Path:
    """`helm package`-equivalent: <out>/<name>-<version>.tgz with a top-level <name>/ dir."""
    chart = yaml.safe_load((src / "Chart.yaml").read_text())
    chart["name"], chart["version"] = name, version
    out = out_dir / f"{name}-{version}.tgz"
    buf = io.BytesIO()
    # fixed mtimes: the same chart content gives the same digest
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        add(f"{name}/Chart.yaml", yaml.safe_dump(chart, sort_keys=False).encode())
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src).as_posix()
            if path.is_file() and rel != "Chart.yaml" and not rel.startswith("."):
                add(f"{name}/{rel}", path.read_bytes())
    out.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return out


def build_repo(out_dir: Path, base_url: str, published: dict[str, tuple[str, tuple[str, ...]]] = PUBLISHED) -> Path:
    """Package every published chart version into out_dir and write index.yaml."""
    out_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entries: dict[str, list[dict[str, object]]] = {}
    for name, (src, versions) in sorted(published.items()):
        meta = yaml.safe_load((CHARTS / src / "Chart.yaml").read_text())
        for version in versions:
            tgz = package(CHARTS / src, name, version, out_dir)
            entries.setdefault(name, []).insert(
                0,  # newest first, like helm repo index
                {
                    "apiVersion": meta.get("apiVersion", "v2"),
                    "name": name,
                    "version": version,
                    "appVersion": str(meta.get("appVersion", version)),
                    "description": meta.get("description", ""),
                    "type": meta.get("type", "application"),
                    "created": now,
                    "digest": hashlib.sha256(tgz.read_bytes()).hexdigest(),
                    "urls": [f"{base_url.rstrip('/')}/{tgz.name}"],
                },
            )
    index = {"apiVersion": "v1", "entries": entries, "generated": now}
    path = out_dir / "index.yaml"
    path.write_text(yaml.safe_dump(index, sort_keys=False))
    return path


def upstream_charts_dir() -> Path:
    """The real upstream charts at the catalog's versions (packaged from their source tags):
    `charts/` of the directory the upstream sources come from (README, "The offline engine")."""
    from tests.support.kubespray_tree import sources_dir

    return sources_dir() / "charts"


def build_upstream_repo(out_dir: Path, base_url: str) -> Path:
    """A repository of the real upstream charts, each checked against its SHA256SUMS line,
    indexed by real `helm repo index`."""
    from stacks.charts import find_helm

    src = upstream_charts_dir()
    sums = dict(line.split()[::-1] for line in (src / "SHA256SUMS").read_text().splitlines() if line.strip())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, digest in sorted(sums.items()):
        data = (src / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"{src / name}: sha256 does not match SHA256SUMS")
        (out_dir / name).write_bytes(data)
    helm = find_helm()
    if helm is None:
        raise RuntimeError("no helm binary (make setup installs it into the tools cache)")
    subprocess.run([helm, "repo", "index", str(out_dir), "--url", base_url], check=True, capture_output=True, timeout=60)
    return out_dir / "index.yaml"


@dataclass
class ChartRepo:
    dir: Path
    port: int = 0
    # serve the real upstream charts (build_upstream_repo) instead of the project's test charts
    upstream: bool = False
    proc: Proc | None = None
    versions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> ChartRepo:
        self.port = self.port or free_port()
        if self.upstream:
            index = yaml.safe_load(build_upstream_repo(self.dir / "repo", self.url).read_text())
            self.versions = {name: [e["version"] for e in entries] for name, entries in index["entries"].items()}
        else:
            build_repo(self.dir / "repo", self.url)
            self.versions = {name: list(v) for name, (_, v) in PUBLISHED.items()}
        self.proc = Proc(
            "chart-repo",
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1", "--directory",
             str(self.dir / "repo")],
            self.dir / "chart-repo.log",
        ).start()  # fmt: skip
        try:
            wait_until(lambda: b"entries" in self.fetch("index.yaml"), timeout, f"chart repo on {self.url}")
        except BaseException as exc:
            self.stop()
            raise RuntimeError(f"chart repo did not start: {exc}\nlog {self.proc.log}:\n{tail(self.proc.log)}") from exc
        return self

    def fetch(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}/{path}", timeout=5) as r:
            return bytes(r.read())

    def version(self, name: str, index: int = 0) -> str:
        return self.versions[name][index]

    def stop(self, grace: float = 5.0) -> str:
        return self.proc.stop(grace) if self.proc else "not started"

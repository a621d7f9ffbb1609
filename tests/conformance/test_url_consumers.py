"""URL keys against the tools that fetch them, on loopback.

A table of URLs per consumer (a good URL of a server started here, and the ways a URL gets
broken) goes through the program's check and through the real consumer:

- chart repositories (`helm.releases[].repo`, `addons.*.repo`, `helm.repoMirrors`): `helm show
  chart --repo` (helm v4 from the tools cache) against the project's test chart repository;
- `cluster.kubespray.source`: `git ls-remote` of a file:// URL, an absolute path and a
  dumb-HTTP URL of a bare repository;
- the HTTP URLs ansible, pip and the nodes' HTTP clients read (`cluster.imageRepos.files`,
  `controlHost.pip.indexUrl`, `cluster.proxy.*`, `controlHost.proxy.*`): `curl`, fetching a
  file under the URL, or through the URL as a proxy (a forward proxy on loopback).

The program agrees with the consumer on every row except those in STRICTER, which the program
refuses on purpose although the consumer gets through (the reason is the map's value).
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from lib.chartrepo import ChartRepo

from components.checks import CHART_REPO_SCHEMES, url_check
from components.cluster_config import proxy_check
from stacks.charts import find_helm
from stacks.config import ConfigError, parse_config
from tests.support.mocks import PROJECT_ROOT, kubespray_config

Row = tuple[str, str]  # (row id, URL)


def _source_check(value: str) -> str | None:
    """cluster.kubespray.source as the stack model checks it."""
    cfg = kubespray_config("dev")
    cfg["cluster"]["kubespray"]["source"] = value
    try:
        parse_config(cfg, project_root=PROJECT_ROOT)
    except ConfigError as err:
        lines = [str(p) for p in err.problems]
        hits = [line for line in lines if line.startswith("cluster.kubespray.source: ")]
        assert hits, lines
        return hits[0]
    return None


def _breakages(base: str) -> list[Row]:
    """The ways a URL of `base` (scheme://host:port/path, no trailing slash) gets broken."""
    scheme, rest = base.split("://", 1)
    hostport, _, path = rest.partition("/")
    path = "/" + path if path else ""
    return [
        ("space-in-path", f"{base}/my charts"),
        ("template-in-path", f"{base}/{{{{ .Values.repo }}}}"),
        ("brace", f"{base}/{{x}}"),
        ("pipe", f"{base}|x"),
        ("bad-percent", f"{base}%zz"),
        ("newline", f"{base}\n"),
        ("tab", f"{base}/a\tb"),
        ("port-too-big", f"{scheme}://127.0.0.1:99999{path}"),
        ("empty-port", f"{scheme}://127.0.0.1:{path}"),
        ("one-slash", f"{scheme}:/{hostport}{path}"),
        ("no-scheme", f"{hostport}{path}"),
        ("ftp", f"ftp://127.0.0.1:9{path}"),  # a scheme the key does not take (port 9: nothing answers)
        ("upper-scheme", f"{scheme.upper()}://{hostport}{path}"),
        ("fragment", f"{base}#main"),
        ("user", f"{scheme}://deploy@{hostport}{path}"),
        ("host-space", f"{scheme}://127.0.0.1 :{hostport.rsplit(':', 1)[-1]}{path}"),
    ]


# --------------------------------------------------------------------------- servers on loopback


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """Answers every proxied GET (an absolute URI) itself: enough to show a client used it."""

    def do_GET(self) -> None:
        body = b"proxied\n" if self.path.startswith("http://") else b"not a proxy request\n"
        self.send_response(200 if self.path.startswith("http://") else 400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A static HTTP server: a bare git repository (dumb HTTP) and a mirror's files."""
    root = tmp_path_factory.mktemp("www")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", "--bare", str(root / "kubespray.git")], check=True)
    work = root / "work"
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "--allow-empty", "-m", "v2.31.0"], check=True)
    subprocess.run([*git, "-C", str(work), "push", "-q", str(root / "kubespray.git"), "HEAD:refs/heads/main"], check=True)
    subprocess.run(["git", "-C", str(root / "kubespray.git"), "update-server-info"], check=True)
    (root / "files" / "mirror").mkdir(parents=True)
    (root / "files" / "mirror" / "probe").write_text("probe\n")
    yield from ((root, port) for port in _serve(partial(_Quiet, directory=str(root))))


@pytest.fixture(scope="module")
def proxy_port() -> Iterator[int]:
    yield from _serve(_ForwardProxy)


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    repo = ChartRepo(tmp_path_factory.mktemp("charts")).start()
    yield repo
    repo.stop()


def _agree(rows: list[Row], program: Callable[[str], str | None], consumer: Callable[[str], bool],
           stricter: dict[str, str]) -> None:  # fmt: skip
    verdicts = {rid: (program(url) is None, consumer(url)) for rid, url in rows}
    for rid in stricter:
        assert verdicts[rid] == (False, True), f"{rid}: (program accepts, consumer gets through) = {verdicts[rid]}"
    wrong = {rid: v for rid, v in verdicts.items() if rid not in stricter and v[0] != v[1]}
    assert not wrong, f"(program accepts, consumer gets through) differ: {wrong}"
    assert any(ok for ok, _ in verdicts.values()) and not all(ok for ok, _ in verdicts.values())


# --------------------------------------------------------------------------- helm

HELM_STRICTER = {
    "fragment": "helm drops it; nothing sends a fragment to the server",
    "upper-scheme": "the scheme rules (https/oci outside dev) read the scheme as written",
    "user": "a user in a chart URL is a credential in a stack file (stack files are not secret)",
}


def test_chart_repositories_against_helm(chart_repo: ChartRepo, tmp_path: Path) -> None:
    helm = find_helm()
    assert helm, "make setup installs helm into the tools cache"
    env = {**os.environ, **{f"HELM_{k}_HOME": str(tmp_path / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}

    def helm_fetches(url: str) -> bool:
        res = subprocess.run([helm, "show", "chart", "grafana", "--repo", url, "--version", "8.5.0"],
                             capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        return res.returncode == 0 and "name: grafana" in res.stdout

    base = chart_repo.url
    rows = [
        ("repo", base), ("trailing-slash", f"{base}/"), ("double-slash", f"{base}//"), ("dot", f"{base}/."),
        ("query", f"{base}/?sig=abc"), ("localhost", base.replace("127.0.0.1", "localhost")),
        *_breakages(base),
    ]  # fmt: skip
    _agree(rows, url_check(CHART_REPO_SCHEMES), helm_fetches, HELM_STRICTER)


# --------------------------------------------------------------------------- git

GIT_STRICTER = {
    "user": "a user in the source URL is a credential in a stack file",
    "file-host": "git ignores the host of a file:// URL: the path is on the control host either way",
}


def test_kubespray_source_against_git(www: tuple[Path, int]) -> None:
    root, port = www
    bare = root / "kubespray.git"

    def git_reads(url: str) -> bool:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "false"}
        res = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, timeout=60, env=env)
        return res.returncode == 0 and "refs/heads/main" in res.stdout

    base = f"http://127.0.0.1:{port}/kubespray.git"
    rows = [
        ("http", base), ("http-slash", f"{base}/"), ("file", f"file://{bare}"), ("file-localhost", f"file://localhost{bare}"),
        ("file-host", f"file://127.0.0.1{bare}"), ("path", str(bare)), ("file-query", f"file://{bare}?ref=main"),
        ("file-fragment", f"file://{bare}#main"), ("file-one-slash", f"file:{bare}"), ("query", f"{base}?ref=main"),
        *_breakages(base),
    ]  # fmt: skip
    _agree(rows, _source_check, git_reads, GIT_STRICTER)


# --------------------------------------------------------------------------- curl: mirrors, the pip index, proxies

CURL = shutil.which("curl")
# curl is the most lenient reader of a URL here; where it gets through a URL that other clients
# (pip, apt, Go's net/url in containerd and helm) do not all read the same way, the program refuses
CURL_LENIENT = {
    "one-slash": "curl repairs 'http:/host'; Go and pip do not",
    "no-scheme": "curl guesses http://; pip, apt and ansible do not all guess",
    "upper-scheme": "the scheme rules read the scheme as written",
}


@pytest.mark.skipif(CURL is None, reason="needs curl (make system-deps)")
def test_mirror_and_index_urls_against_curl(www: tuple[Path, int]) -> None:
    def curl_fetches(url: str) -> bool:
        # kubespray and pip append to the URL as a string: files_repo + '/github.com/…', index + '/<project>/'
        probe = url + ("probe" if url.endswith("/") else "/probe")
        res = subprocess.run([str(CURL), "-sf", "-g", "--max-time", "20", probe], capture_output=True, text=True)
        return res.returncode == 0 and res.stdout == "probe\n"

    base = f"http://127.0.0.1:{www[1]}/files/mirror"
    rows = [
        ("mirror", base), ("mirror-slash", f"{base}/"), ("localhost", base.replace("127.0.0.1", "localhost")),
        *[(rid, url) for rid, url in _breakages(base) if rid != "user"],
    ]  # fmt: skip
    _agree(rows, url_check(), curl_fetches, CURL_LENIENT)


@pytest.mark.skipif(CURL is None, reason="needs curl (make system-deps)")
def test_proxy_urls_against_curl(proxy_port: int) -> None:
    def curl_proxies(url: str) -> bool:
        res = subprocess.run([str(CURL), "-sf", "-g", "--max-time", "20", "-x", url, "http://mirror.invalid/x"],
                             capture_output=True, text=True)  # fmt: skip
        return res.returncode == 0 and res.stdout == "proxied\n"

    base = f"http://127.0.0.1:{proxy_port}"
    rows = [
        ("proxy", base), ("proxy-slash", f"{base}/"), ("localhost", base.replace("127.0.0.1", "localhost")),
        ("user", f"http://deploy@127.0.0.1:{proxy_port}"),
        *[(rid, url) for rid, url in _breakages(base) if rid != "user"],
    ]  # fmt: skip
    # curl never sends a proxy URL's path or fragment, so it gets through whatever they hold
    unused = {"brace": "an unused path, but a broken one is a typo", "fragment": "unused, and a typo"}
    _agree(rows, proxy_check, curl_proxies, {**CURL_LENIENT, **unused})

"""A PyPI mirror on 127.0.0.1: a PEP 503 "simple" index of a wheelhouse, over plain HTTP.

What a team's package mirror looks like to pip (`/simple/<project>/` pages linking the
files), built in Python from the wheels `ensure_wheelhouse` downloaded and served by
`python -m http.server`, whose access log says which pages and files pip fetched.
"""

from __future__ import annotations

import html
import re
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .util import Proc, free_port, tail, wait_until


def _project(wheel: str) -> str:
    """PEP 503 normalized project name of a wheel or sdist file name."""
    name = wheel.split("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PyIndex:
    dir: Path
    wheelhouse: Path
    port: int = 0
    proc: Proc | None = None

    @property
    def log(self) -> Path:
        return self.dir / "http.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def build(self) -> None:
        root = self.dir / "www"
        shutil.rmtree(root, ignore_errors=True)
        (root / "files").mkdir(parents=True)
        projects: dict[str, list[str]] = {}
        for f in sorted(self.wheelhouse.iterdir()):
            if f.suffix in (".whl", ".gz", ".zip"):
                shutil.copy2(f, root / "files" / f.name)
                projects.setdefault(_project(f.name), []).append(f.name)
        for project, files in projects.items():
            page = root / "simple" / project / "index.html"
            page.parent.mkdir(parents=True)
            links = "".join(f'<a href="../../files/{html.escape(n)}">{html.escape(n)}</a>\n' for n in files)
            page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
        index = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
        (root / "simple" / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{index}</body></html>\n")

    def start(self, timeout: float = 20) -> PyIndex:
        self.build()
        self.port = self.port or free_port()
        argv = [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                "--directory", str(self.dir / "www")]  # fmt: skip
        self.proc = Proc("pyindex", argv, self.log).start()
        wait_until(self._up, timeout, f"package index on {self.url}", on_timeout=lambda: tail(self.log))
        return self

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    def requested(self) -> list[str]:
        """The paths pip asked for (from the server's access log)."""
        return re.findall(r'"GET (\S+) HTTP', self.log.read_text(errors="replace"))

    def stop(self) -> str:
        return self.proc.stop() if self.proc else "not started"

"""The Pulumi versions live in requirements.txt only: the engine build reads them from there.
The source tarballs' checksums live in scripts/engine.sh and tests/support/kubespray_tree.py:
the README's table of them is checked against both."""

from __future__ import annotations

import re
import subprocess

from tests.support import kubespray_tree
from tests.support.mocks import PROJECT_ROOT


def _pins() -> dict[str, str]:
    text = (PROJECT_ROOT / "requirements.txt").read_text()
    return dict(re.findall(r"^([a-z-]+)==([0-9.]+)", text, re.M))


def test_engine_builds_exactly_the_pinned_versions() -> None:
    out = subprocess.run([str(PROJECT_ROOT / "scripts" / "engine.sh"), "--versions"], capture_output=True, text=True,
                         timeout=30, check=True).stdout  # fmt: skip
    built = dict(line.split() for line in out.splitlines())
    pins = _pins()
    assert built["pulumi"] == pins["pulumi"]
    assert built["language-host"] == pins["pulumi"], "the language host is the CLI's release"
    assert built["kubernetes-provider"] == pins["pulumi-kubernetes"]
    assert built["command-provider"] == pins["pulumi-command"]


def test_engine_script_pins_a_checksum_for_each_source_tarball_it_may_need() -> None:
    script = (PROJECT_ROOT / "scripts" / "engine.sh").read_text()
    pins = _pins()
    for tarball in (f"pulumi-command-{pins['pulumi-command']}.src.tar.gz",
                    f"pulumi-language-python-{pins['pulumi']}.src.tar.gz"):  # fmt: skip
        assert re.search(rf"\[{re.escape(tarball)}\]=[0-9a-f]{{64}}", script), f"no sha256 pinned for {tarball}"


def _readme_sources() -> dict[str, str]:
    """The README's table of source tarballs: name -> sha256."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    return dict(re.findall(r"^\| `([\w.-]+\.src\.tar\.gz)` \| [^|]+ \| `([0-9a-f]{64})` \|$", readme, re.M))


def test_the_readme_lists_every_source_tarball_with_its_pinned_checksum() -> None:
    # the pins: scripts/engine.sh's TARBALL_SHA256 (the engine) and tests/support/kubespray_tree.py (the tests)
    script = (PROJECT_ROOT / "scripts" / "engine.sh").read_text()
    block = re.search(r"^declare -A TARBALL_SHA256=\((.*?)^\)", script, re.M | re.S)
    assert block, "scripts/engine.sh: no TARBALL_SHA256 table"
    pinned = dict(re.findall(r"\[([\w.-]+)\]=([0-9a-f]{64})", block.group(1)))
    assert pinned, "scripts/engine.sh: TARBALL_SHA256 is empty"
    pinned[kubespray_tree.TARBALL] = kubespray_tree.SHA256
    assert _readme_sources() == pinned, "README.md, 'The offline engine': the table of tarballs and their sha256"
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "`K8SP_ENGINE_SOURCES`" in readme

"""The Pulumi versions live in requirements.txt only: the engine build reads them from there."""

from __future__ import annotations

import re
import subprocess

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

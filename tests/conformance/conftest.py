"""Fixtures shared by the conformance tests that run kubespray v2.31.0's own tree and ansible."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import kubespray_tree


@pytest.fixture(scope="session")
def kubespray_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubespray's tree, unpacked once per session from the checked tarball."""
    return kubespray_tree.unpack(tmp_path_factory.mktemp("kubespray") / "src")


@pytest.fixture(scope="session")
def kubespray_ansible_playbook(kubespray_src: Path) -> str:
    """The ansible-playbook of kubespray's own requirements (a cached venv)."""
    return str(kubespray_tree.ansible_venv(kubespray_src / "requirements.txt") / "ansible-playbook")

"""Kubespray's own tree and its own ansible, for tests that run kubespray's code offline.

The tree is the `git archive` of the release, from the directory $K8SP_ENGINE_SOURCES
names, checked against the sha256 below (README, "The offline engine"). Its `requirements.txt`
(ansible 11 = ansible-core 2.18 for v2.31.0) is downloaded once into a wheelhouse and
installed into a venv cached outside the repo, keyed by the requirements' content.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "k8s-platform"
WHEELHOUSE = CACHE_ROOT / "wheelhouse"
VERSION = "v2.31.0"
TARBALL = "kubespray-2.31.0.src.tar.gz"
SHA256 = "c70722f91850b5cb200cface0f3985f29fac53c06cba07068b60de6505d858e6"


def sources_dir() -> Path:
    """Where the upstream source tarballs are: $K8SP_ENGINE_SOURCES, else the CI runner's default
    (the Makefile's too, for a bare `pytest`)."""
    env = os.environ.get("K8SP_ENGINE_SOURCES")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "vendor"


def tarball() -> Path:
    path = sources_dir() / TARBALL
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: these tests run kubespray {VERSION}'s own code. Set K8SP_ENGINE_SOURCES "
            f"to a directory holding {TARBALL} (a `git archive` of the tag)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{path} has sha256 {digest}, expected {SHA256}")
    return path


def unpack(dest: Path) -> Path:
    """Unpack the tree into `dest` (which must not exist); return its root."""
    dest.mkdir(parents=True)
    with tarfile.open(tarball()) as tar:
        tar.extractall(dest, filter="data")
    (root,) = list(dest.iterdir())
    return root


def ensure_wheelhouse(requirements: Path, wheelhouse: Path = WHEELHOUSE, timeout: float = 600) -> Path:
    """The wheels of a requirements file, downloaded once (registry access at setup time) and cached.

    Installs from it run offline. Wheels are fetched by the test Python and installed by
    /usr/bin/python3 venvs: both are the same minor version here, so binary wheels match.
    """
    stamp = wheelhouse / f".downloaded-{hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]}"
    if stamp.exists():
        return wheelhouse
    wheelhouse.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-r",
                    str(requirements), "-d", str(wheelhouse)], check=True, timeout=timeout)  # fmt: skip
    stamp.touch()
    return wheelhouse


def ansible_venv(requirements: Path, timeout: float = 900) -> Path:
    """A venv with kubespray's own requirements installed (cached); returns its bin dir."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    venv = CACHE_ROOT / f"kubespray-venv-{key}"
    done = venv / ".complete"
    if not done.exists():
        wheels = ensure_wheelhouse(requirements)
        shutil.rmtree(venv, ignore_errors=True)
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-index",
                        "--find-links", str(wheels), "-r", str(requirements)], check=True, timeout=timeout)  # fmt: skip
        done.touch()
    return venv / "bin"

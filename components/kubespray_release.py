"""What the program knows about each supported kubespray release.

One JSON file per release in `components/kubespray_releases/`, generated from the release's
source tree by `scripts/kubespray_facts.py` (and checked against the vendored tree by
tests/conformance/test_kubespray_release.py): the commit its tag points at, the
Kubernetes versions it installs, the ansible-core range it accepts and every variable
name it reads. A release without a file still deploys; its `kubeVersion` and `extraVars`
are then not checked (`validate` warns).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

RELEASES_DIR = Path(__file__).resolve().parent / "kubespray_releases"


@dataclass(frozen=True)
class KubesprayRelease:
    version: str  # the git tag, e.g. v2.31.0
    commit: str  # what the tag points at upstream
    kube_versions: tuple[str, ...]  # installable Kubernetes versions, newest first
    default_kube_version: str
    ansible_core_min: str
    ansible_core_max_exclusive: str
    variables: frozenset[str]
    # hash-pinned lock of the release's requirements.txt ("" when none is committed)
    requirements_lock: str = ""

    @property
    def kube_version_range(self) -> str:
        return f"{self.kube_versions[-1]} … {self.kube_versions[0]}"


@functools.cache
def known_releases() -> dict[str, KubesprayRelease]:
    out: dict[str, KubesprayRelease] = {}
    for path in sorted(RELEASES_DIR.glob("v*.json")):
        doc = json.loads(path.read_text())
        lock = path.with_name(f"{doc['kubespray']}.requirements.txt")
        out[doc["kubespray"]] = KubesprayRelease(
            version=doc["kubespray"],
            commit=doc["commit"],
            kube_versions=tuple(doc["kubeVersions"]),
            default_kube_version=doc["defaultKubeVersion"],
            ansible_core_min=doc["ansibleCore"]["min"],
            ansible_core_max_exclusive=doc["ansibleCore"]["maxExclusive"],
            variables=frozenset(doc["variables"]),
            requirements_lock=lock.read_text() if lock.is_file() else "",
        )
    return out


def release(version: str) -> KubesprayRelease | None:
    return known_releases().get(version)

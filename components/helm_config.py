"""The `helm:` section of a stack: the charts an environment deploys (`HelmRelease` each) and
the mirrors their repositories are fetched from. Builds `HelmSpec`.

Kept apart from `components/helm_release.py` so that reading a stack never imports the
Pulumi SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from components.checks import (
    CHART_REPO_SCHEMES,
    CREDENTIALS_IN_URL,
    chart_name_check,
    label_check,
    semver_check,
    url_check,
    url_has_credentials,
    url_problem,
)
from components.config_model import (
    AnyMap,
    ConfigModel,
    Findings,
    Flag,
    Required,
    Text,
    TextMap,
    build,
    checked,
    items,
    text_list,
    whole,
)

# --------------------------------------------------------------------------- args: what the component receives

@dataclass(frozen=True)
class HelmReleaseSpec:
    name: str
    namespace: str
    repo: str  # after helm.repoMirrors is applied
    chart: str
    version: str
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[str, ...] = ()
    atomic: bool = True
    cleanup_on_fail: bool = True
    timeout: int = 600
    max_history: int = 10
    upstream_repo: str = ""  # the repo as written in config, before mirroring


@dataclass(frozen=True)
class HelmSpec:
    repo_mirrors: Mapping[str, str] = field(default_factory=dict)
    releases: tuple[HelmReleaseSpec, ...] = ()


def values_file_check(path: str, root: Path | None) -> str | None:
    if path.startswith("/") or ".." in Path(path).parts:
        return f"{path!r} must be a path inside the project (relative, no '..')"
    if root is not None and not (root / path).is_file():
        return f"values file {path!r} does not exist (paths are relative to the project root {root})"
    return None


class HelmReleaseConfig(ConfigModel):
    """One chart release, upgraded in place when its version or values change."""

    name: Annotated[Text, Required, checked(label_check("release name", 53))] = Field(
        description="release name (at most 53 characters)"
    )
    namespace: Annotated[Text, checked(label_check("namespace"))] = Field(
        "default", description="namespace of the release"
    )
    repo: Annotated[Text, Required, checked(url_check(CHART_REPO_SCHEMES))] = Field(
        description="chart repository (https:// or oci://); helm.repoMirrors may redirect it"
    )
    chart: Annotated[Text, Required, checked(chart_name_check)] = Field(description="chart name")
    version: Annotated[Text, checked(semver_check)] = Field(
        "", description="chart version (semver); required in staging and prod"
    )
    values: AnyMap = Field(default_factory=dict, description="Helm values")
    values_files: text_list() = Field(  # type: ignore[valid-type]
        (), description="values files, relative to the project root, applied before `values`"
    )
    atomic: Flag = Field(True, description="roll back a failed upgrade")
    cleanup_on_fail: Flag = Field(True, description="delete new resources of a failed upgrade")
    timeout: whole(1, 86400) = Field(600, description="seconds Helm waits for the release")  # type: ignore[valid-type]
    max_history: whole(0, 1000) = Field(  # type: ignore[valid-type]
        10, description="release revisions Helm keeps (0: unlimited)"
    )

    def checks(self, found: Findings) -> None:
        env = found.context.get("environment", "dev")
        if not self.version and not found.problems_under("version") and env != "dev":
            found.error("version", f"is required in {env}: pin the chart version (e.g. '8.5.0') so upgrades are deliberate")
        root = found.context.get("project_root")
        for i, path in enumerate(self.values_files):
            if message := values_file_check(path, root):
                found.error(f"valuesFiles[{i}]", message)


class HelmConfig(ConfigModel):
    """Helm charts per environment."""

    repo_mirrors: TextMap = Field(
        default_factory=dict, description="upstream chart repository URL → mirror URL (https:// or oci://)"
    )
    releases: items(HelmReleaseConfig) = Field((), description="chart releases")  # type: ignore[valid-type]

    def checks(self, found: Findings) -> None:
        for upstream, mirror in self.repo_mirrors.items():
            if url_has_credentials(upstream) or url_has_credentials(mirror):
                found.error("repoMirrors", CREDENTIALS_IN_URL)
            elif problem := url_problem(upstream, CHART_REPO_SCHEMES):
                found.error(f"repoMirrors.{upstream}", f"the upstream must be a repository URL: it {problem}")
            elif problem := url_problem(mirror, CHART_REPO_SCHEMES):
                shown = f"{mirror!r} " if mirror.isprintable() else "the mirror "
                found.error(f"repoMirrors.{upstream}", f"{shown}is not a repository URL: it {problem}")
        seen: dict[tuple[str, str], int] = {}
        for i, release in enumerate(self.releases):
            key = (release.namespace, release.name)
            if key in seen:
                found.error(
                    f"releases[{i}].name",
                    f"release {release.name!r} already exists in namespace {release.namespace!r} (releases[{seen[key]}])",
                )
            seen.setdefault(key, i)

    def mirrors(self) -> dict[str, str]:
        return {upstream.rstrip("/"): mirror for upstream, mirror in self.repo_mirrors.items()}

    def args(self) -> HelmSpec:
        mirrors = self.mirrors()
        return HelmSpec(
            repo_mirrors=mirrors,
            releases=tuple(
                build(HelmReleaseSpec, r, repo=mirrors.get(r.repo.rstrip("/"), r.repo), upstream_repo=r.repo)
                for r in self.releases
            ),
        )

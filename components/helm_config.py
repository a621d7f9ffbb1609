"""The `helm:` section of a stack: the charts an environment deploys (`HelmRelease` each) and
the mirrors chart repositories are fetched from (for these releases and the add-ons' charts
alike). Builds `HelmSpec`.

Kept apart from `components/helm_release.py` so that reading a stack never imports the
Pulumi SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import Field

from components.checks import (
    CHART_REPO_SCHEMES,
    CREDENTIALS_IN_URL,
    chart_name_check,
    label_check,
    project_file_problem,
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
from components.helm_values import check_release_values

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
    # upstream repository URL (without a trailing slash) -> mirror URL; it redirects every
    # chart the stack installs from that upstream: `releases` and the catalog's add-on charts
    repo_mirrors: Mapping[str, str] = field(default_factory=dict)
    releases: tuple[HelmReleaseSpec, ...] = ()

    def mirror_of(self, repo: str) -> str:
        """The repository a chart of `repo` is fetched from: its mirror, or `repo` itself."""
        return self.repo_mirrors.get(repo_key(repo), repo)


def repo_key(repo: str) -> str:
    """A repository URL as helm.repoMirrors matches it: a trailing slash makes no difference."""
    return repo.rstrip("/")


def chart_reference(repo: str, chart: str) -> tuple[str, str]:
    """What Helm is given to fetch `chart` from `repo`: (chart reference, repository URL).

    An OCI registry has no index for Helm to search, so a chart there is addressed by its
    full reference (`oci://host/path/chart`) and no repository is passed, as in
    `helm install NAME oci://host/path/chart`; given `oci://host/path` as the repository,
    Helm would look for an index.yaml that does not exist."""
    if repo.startswith("oci://"):
        return f"{repo.rstrip('/')}/{chart}", ""
    return chart, repo


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
            if message := project_file_problem(path, root, "values file"):
                found.error(f"valuesFiles[{i}]", message)
        if root is not None and not found.problems_under("valuesFiles"):
            check_release_values(self.values_files, self.values, root, found)


class HelmConfig(ConfigModel):
    """Helm charts per environment."""

    repo_mirrors: TextMap = Field(
        default_factory=dict,
        description="upstream chart repository URL → mirror URL (https:// or oci://), for helm.releases and the "
        "add-ons' catalog charts alike",
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
        # Which upstreams the add-ons fetch from is the stack's to say; checked alone, the
        # section cannot tell a mirror that feeds nothing.
        addon_repos = found.context.get("addon_repos")
        if addon_repos is not None:
            fed = {repo_key(r.repo) for r in self.releases} | {repo_key(r) for r in addon_repos}
            for upstream in self.repo_mirrors:
                if repo_key(upstream) not in fed and not found.problems_under(f"repoMirrors.{upstream}"):
                    found.warn(
                        f"repoMirrors.{upstream}",
                        "feeds nothing: no chart of this stack comes from that upstream (the repo of a "
                        "helm.releases entry, or the catalog repo of an enabled add-on without a repo of its own)",
                    )
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
        return {repo_key(upstream): mirror for upstream, mirror in self.repo_mirrors.items()}

    def args(self) -> HelmSpec:
        spec = HelmSpec(repo_mirrors=self.mirrors())
        return replace(
            spec,
            releases=tuple(
                build(HelmReleaseSpec, r, repo=spec.mirror_of(r.repo), upstream_repo=r.repo) for r in self.releases
            ),
        )

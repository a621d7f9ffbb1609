"""What an air-gapped team must mirror for a stack: every file, image and chart it needs.

`python -m stacks mirror-list STACK` lists, each upstream name beside where the stack's
mirror settings fetch it from:

* **kubespray's downloads** for this stack's own inventory and group_vars, by kubespray's own
  rules: its `downloads` table, kept where its download role would fetch an entry (enabled,
  and for a host of one of its groups), plus the control-plane images kubeadm pulls and the
  kubelet-csr-approver chart kubespray deploys (components/kubespray_scripts/downloads.yml,
  run with the pinned release's tree and its ansible, touching no node);
* the **images of every object the program declares** (MySQL and its init containers, the
  apps and theirs, the etcd-backup CronJobs), from the same offline render as `render`;
* **every chart** the stack installs (the add-ons and `helm.releases`, and kubespray's) and the
  **images in them**, from a real `helm template` at the pinned version with the program's
  values, as `render --charts` does.

What could not be listed (no kubespray tree given, a chart repository out of reach) is said in
`incomplete`: the list is then not the whole of it, and the command exits 1 unless
`--allow-incomplete` accepts that.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components import kubespray_inventory as inv
from components.checks import image_problem, image_registry
from components.cluster_config import ClusterSpec
from components.kubespray import SCRIPTS
from stacks.config import PlatformSpec

DOWNLOADS_PLAYBOOK = SCRIPTS / "downloads.yml"
# the facts kubespray's download table reads, per target architecture (nothing is gathered)
ARCH_FACTS = {"amd64": {"ansible_architecture": "x86_64"}, "arm64": {"ansible_architecture": "aarch64"}}
POD_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class Item:
    """One thing to mirror: its upstream name, where the stack fetches it from, who needs it."""

    kind: str  # file | image | chart
    upstream: str  # a file's upstream URL; an image's full name; a chart as `repo chart version`
    fetched_from: str  # through the stack's mirrors: a URL, an image location, a repository
    needed_by: tuple[str, ...]


@dataclass
class MirrorList:
    items: list[Item] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # what could not be listed, and why

    def of(self, kind: str) -> list[Item]:
        return [i for i in self.items if i.kind == kind]

    def as_json(self) -> str:
        return json.dumps(
            {"files": [asdict(i) for i in self.of("file")], "images": [asdict(i) for i in self.of("image")],
             "charts": [asdict(i) for i in self.of("chart")], "incomplete": self.incomplete},
            indent=2, sort_keys=True,
        )  # fmt: skip

    def as_text(self) -> str:
        lines = []
        for kind, title in (("file", "files"), ("image", "images"), ("chart", "charts")):
            items = self.of(kind)
            lines.append(f"# {title} ({len(items)}): upstream  <-  fetched from  [needed by]")
            for i in items:
                via = "" if i.fetched_from == i.upstream else f"  <-  {i.fetched_from}"
                lines.append(f"{i.upstream}{via}  [{', '.join(i.needed_by)}]")
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- names through the mirrors
def full_image(image: str) -> str:
    """An image's full name as containerd resolves it (`nginx:1.27` → docker.io/library/nginx:1.27)."""
    registry, rest = image_registry(image)
    return f"{registry}/{rest}"


def image_source(image: str, cluster: ClusterSpec) -> str:
    """Where a node fetches `image` from: its registry's mirror (cluster.registryMirrors, as an
    image location: the mirror's host and path, no scheme), or the image's own registry."""
    registry, rest = image_registry(image)
    for mirror in cluster.registry_mirrors:
        if mirror.registry == registry:
            return f"{mirror.url.split('://', 1)[-1].rstrip('/')}/{rest}"
    return f"{registry}/{rest}"


# cluster.imageRepos key -> the registry kubespray's images under it come from
IMAGE_REPO_UPSTREAMS = {"kube": "registry.k8s.io", "docker": "docker.io", "quay": "quay.io", "github": "ghcr.io"}


def image_upstream(image: str, cluster: ClusterSpec) -> str:
    """An image's upstream full name: a name kubespray rewrote under an `imageRepos` prefix has
    its upstream registry back; any other, as containerd resolves it."""
    for key, registry in IMAGE_REPO_UPSTREAMS.items():
        prefix = getattr(cluster.image_repos, key).rstrip("/")
        if prefix and image.startswith(prefix + "/"):
            return f"{registry}/{image[len(prefix) + 1 :]}"
    return full_image(image)


def file_upstream(url: str, cluster: ClusterSpec) -> str:
    """The upstream URL of a file kubespray fetches under `imageRepos.files` (its offline
    layout keeps the upstream host as the first path part), or the URL itself."""
    files = cluster.image_repos.files.rstrip("/")
    if files and url.startswith(files + "/"):
        return "https://" + url[len(files) + 1 :]
    return url


def chart_upstreams(spec: PlatformSpec) -> dict[tuple[str, str], str]:
    """(repository fetched from, chart) -> the upstream repository, for every chart the stack
    installs (helm.repoMirrors may send several upstreams to one mirror)."""
    out: dict[tuple[str, str], str] = {}
    addons = spec.addons
    for addon in (addons.ingress, addons.storage, addons.metrics_server, addons.load_balancer, addons.mesh):
        if addon is not None and addon.enabled:
            sources = [addon.chart, addon.base] if addon is addons.mesh else [addon.chart]  # type: ignore[union-attr]
            for c in sources:
                out[(c.repo.rstrip("/"), c.chart)] = c.upstream_repo or c.repo
    for r in spec.helm.releases:
        out[(r.repo.rstrip("/"), r.chart)] = r.upstream_repo or r.repo
    return out


def pod_images(doc: Any) -> Iterator[str]:
    """Every container image in a manifest (pods, workload templates, CronJob job templates),
    and the images a controller is told to start itself: an env var named like `*_IMAGE` whose
    value is an image reference (OpenEBS LocalPV's helper pod, which creates every volume)."""
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            if key in POD_CONTAINER_LISTS and isinstance(value, list):
                for c in value:
                    if isinstance(c, Mapping) and isinstance(c.get("image"), str):
                        yield c["image"]
                    for env in c.get("env") or [] if isinstance(c, Mapping) else []:
                        if (isinstance(env, Mapping) and str(env.get("name", "")).endswith("_IMAGE")
                                and isinstance(env.get("value"), str) and image_problem(env["value"]) is None):
                            yield env["value"]  # fmt: skip
            else:
                yield from pod_images(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from pod_images(value)


def injected_images(doc: Any) -> Iterator[str]:
    """The images Istio's sidecar injector adds to every meshed pod (istio-proxy, istio-init):
    from the injector ConfigMap istiod's chart renders, `values` (global.hub, tag, proxy image)."""
    if not (isinstance(doc, Mapping) and doc.get("kind") == "ConfigMap"
            and str(doc.get("metadata", {}).get("name", "")).startswith("istio-sidecar-injector")):  # fmt: skip
        return
    try:
        values = json.loads(doc.get("data", {}).get("values", "{}"))
    except ValueError:
        return
    g = values.get("global", {})
    hub, tag = g.get("hub", ""), g.get("tag", "")
    for key in ("proxy", "proxy_init"):
        image = str(g.get(key, {}).get("image", ""))
        if image:
            yield image if "/" in image else f"{hub}/{image}:{tag}"


# ----------------------------------------------------------------- kubespray's downloads
def _reason(line: str) -> str:
    """The end of an ansible failure: an undefined variable's message holds the whole table
    before the template that failed and its reason (a version kubespray has no checksum for)."""
    line = line.split("\\n\\nThe error appears", 1)[0]
    m = re.search(r"([^:]+: '[^']+' (?:is undefined|has no attribute '[^']+'))$", line)
    return f"{line.split(' => ', 1)[0]} {m.group(1).strip()}" if m else line[:500]


def kubespray_downloads(
    cluster: ClusterSpec, schedulable_control_plane: bool, kubespray_dir: Path, ansible_playbook: str,
    arch: str = "amd64", timeout: float = 300,
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Kubespray's files, images and charts for this inventory, by its own tables (see the playbook)."""
    if not (kubespray_dir / "roles" / "kubespray_defaults").is_dir():
        raise ValueError(f"{kubespray_dir} is not a kubespray tree (no roles/kubespray_defaults)")
    rendered = inv.render(cluster, schedulable_control_plane)
    with tempfile.TemporaryDirectory(prefix="k8sp-downloads-") as tmp:
        inventory = Path(tmp) / "inventory"
        (inventory / Path(inv.GROUP_VARS_PATH).parent).mkdir(parents=True)
        (inventory / "hosts.yaml").write_text(rendered.hosts_yaml)
        (inventory / inv.GROUP_VARS_PATH).write_text(rendered.group_vars_yaml)
        out = Path(tmp) / "out"
        out.mkdir()
        extra = {**ARCH_FACTS[arch], "ansible_system": "Linux", "k8s_platform_downloads_dir": str(out),
                 "k8s_platform_kubespray_dir": str(kubespray_dir)}  # fmt: skip
        # run in kubespray's tree (its ansible.cfg), its roles found there; nothing is written into it
        env = {**os.environ, "ANSIBLE_FORCE_COLOR": "False", "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_ROLES_PATH": str(kubespray_dir / "roles")}  # fmt: skip
        try:
            cp = subprocess.run(
                [ansible_playbook, "-i", str(inventory / "hosts.yaml"), "-c", "local", str(DOWNLOADS_PLAYBOOK),
                 "-e", json.dumps(extra)],
                cwd=kubespray_dir, capture_output=True, text=True, timeout=timeout, env=env,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"kubespray's download table could not be read: {ansible_playbook}: {exc}") from None
        if cp.returncode != 0:
            lines = (cp.stdout + cp.stderr).strip().splitlines()
            # ansible's own reason (fatal: … => {"msg": …}), not the recap and timings after it
            why = [line for line in lines if line.startswith(("fatal:", "ERROR", "[ERROR]"))] or lines[-15:]
            # an undefined variable's message holds the whole table before its reason: the reason
            tail = "\n".join(_reason(line) for line in why[:5])
            raise RuntimeError(
                f"kubespray's download table could not be read (ansible-playbook exit {cp.returncode}):\n{tail}\n"
                "(a version kubespray has no checksum for needs its checksum in cluster.extraVars, as for the install)"
            )
        merged: dict[str, list[dict[str, Any]]] = {"files": [], "images": [], "charts": []}
        for path in sorted(out.glob("*.json")):
            host = json.loads(path.read_text())
            for key in merged:
                for entry in host[key]:
                    if entry not in merged[key]:
                        merged[key].append(entry)
        return merged


# ----------------------------------------------------------------- the whole list
class _Collector:
    def __init__(self, cluster: ClusterSpec) -> None:
        self.cluster = cluster
        self.found: dict[tuple[str, str], tuple[str, list[str]]] = {}

    def add(self, kind: str, upstream: str, fetched_from: str, who: str) -> None:
        _, users = self.found.setdefault((kind, upstream), (fetched_from, []))
        if who not in users:
            users.append(who)

    def image(self, image: str, who: str) -> None:
        self.add("image", image_upstream(image, self.cluster), image_source(image, self.cluster), who)

    def items(self) -> list[Item]:
        order = {"file": 0, "image": 1, "chart": 2}
        return [
            Item(kind, upstream, fetched, tuple(sorted(users)))
            for (kind, upstream), (fetched, users) in sorted(self.found.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
        ]


def _owner(fname: str) -> str:
    """`<namespace>.<Kind>.<name>.yaml` of a rendered object, as who needs its images."""
    return fname.removesuffix(".yaml")


def mirror_list(
    spec: PlatformSpec, project_root: Path, *, kubespray_dir: Path | None = None, ansible_playbook: str | None = None,
    arch: str = "amd64", helm: str | None = None,
) -> MirrorList:  # fmt: skip
    from stacks.charts import template_releases
    from stacks.render import ReleaseToTemplate, helm_releases, render_objects  # pulumi_kubernetes: slow

    result = MirrorList()
    c = _Collector(spec.cluster)
    releases = helm_releases(spec, project_root)
    upstreams = chart_upstreams(spec)

    if spec.cluster.mode == "kubespray":
        ansible = ansible_playbook or shutil.which("ansible-playbook")
        if kubespray_dir is None or ansible is None:
            result.incomplete.append(
                "kubespray's files and images are not listed: give --kubespray DIR (a checkout of "
                f"{spec.cluster.kubespray.version if spec.cluster.kubespray else 'the pinned release'}) and its "
                "ansible (--ansible-playbook, or on PATH)"
            )
        else:
            ks = kubespray_downloads(spec.cluster, spec.schedulable_control_plane, kubespray_dir, ansible, arch)
            for f in ks["files"]:
                c.add("file", file_upstream(f["url"], spec.cluster), f["url"], f"kubespray ({f['name']})")
            for i in ks["images"]:
                c.image(i["image"], f"kubespray ({i['name']})")
            for chart in ks["charts"]:
                releases.append(ReleaseToTemplate(
                    name=chart["name"], namespace=chart["namespace"], chart=chart["chart"],
                    version=chart["version"], repo=chart["repo"], values=chart["values"] or {},
                ))  # fmt: skip

    for fname, manifest in render_objects(spec, project_root).items():
        for image in pod_images(manifest):
            c.image(image, _owner(fname))

    with tempfile.TemporaryDirectory(prefix="k8sp-mirror-charts-") as tmp:
        for r in template_releases(releases, Path(tmp), helm=helm):
            rel = r.release
            who = f"chart {rel.namespace}/{rel.name}"
            # an OCI chart is its full reference (oci://host/path/chart), with no repository
            repo, name = rel.repo, rel.chart
            if name.startswith("oci://"):
                repo, name = name.rsplit("/", 1)
            upstream = upstreams.get((repo.rstrip("/"), name), repo)
            c.add("chart", f"{upstream} {name} {rel.version}".strip(), f"{repo} {name} {rel.version}".strip(), who)
            if r.path is None:
                result.incomplete.append(f"{who} ({rel.chart} {rel.version}): its images are not listed: {r.problem}")
                continue
            for doc in yaml.safe_load_all(r.path.read_text()):
                for image in [*pod_images(doc), *injected_images(doc)]:
                    c.image(image, who)
    result.items = c.items()
    return result

"""`python -m stacks mirror-list` against the real things it reads: kubespray v2.31.0's own
download table (its tree, its ansible), and the real upstream add-on and Grafana charts at
the catalog's versions (packaged from their source tags), templated by real helm from a
loopback repository that `helm.repoMirrors` points every chart at.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lib.chartrepo import ChartRepo

from components.catalog import DEFAULT_ADDON_CHARTS
from stacks.config import parse_config
from stacks.files import PROJECT_ROOT, config_from_file, stack_file
from stacks.mirror_list import kubespray_downloads, mirror_list


@pytest.fixture(scope="module")
def upstream_charts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    repo = ChartRepo(tmp_path_factory.mktemp("upstream-charts"), upstream=True).start()
    yield repo
    repo.stop()


def staging(mirrors_to: str | None = None) -> dict[str, Any]:
    cfg = copy.deepcopy(config_from_file(stack_file("staging")))
    if mirrors_to is not None:
        # every chart through the loopback mirror: the add-ons' catalog repos and the release's
        ups = {c.repo for c in DEFAULT_ADDON_CHARTS.values()} | {"https://grafana.github.io/helm-charts"}
        cfg["helm"]["repoMirrors"] = {u: mirrors_to for u in sorted(ups)}
        # the one chart no copy of the catalog's version exists of here (its 4.x keys are the same)
        cfg["addons"]["storage"]["version"] = "4.0.0"
    return cfg


def test_kubesprays_own_table_decides_what_a_stack_downloads(kubespray_src: Path, kubespray_ansible_playbook: str) -> None:
    spec = parse_config(staging(), project_root=PROJECT_ROOT, secrets_required=False)
    got = kubespray_downloads(spec.cluster, spec.schedulable_control_plane, kubespray_src, kubespray_ansible_playbook)
    images = {i["image"] for i in got["images"]}
    files = {f["name"]: f["url"] for f in got["files"]}
    # calico (the stack's CNI), its images by their upstream names (registryMirrors, no rewrite)
    assert {"quay.io/calico/node:v3.31.5", "quay.io/calico/cni:v3.31.5"} <= images, images
    assert not any("flannel" in i or "cilium" in i for i in images), images
    # kubeadm's own images, at the stack's Kubernetes version
    assert {f"registry.k8s.io/{c}:v1.34.4" for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                     "kube-proxy")} <= images  # fmt: skip
    # binaries under the stack's file mirror, in kubespray's offline layout
    assert files["kubelet"] == "https://files.mirror.example.com/dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubelet"
    assert files["containerd"].endswith("/containerd-2.2.3-linux-amd64.tar.gz")
    # the program asks for kubelet serving certificates: kubespray then deploys kubelet-csr-approver's chart
    assert [c["name"] for c in got["charts"]] == ["kubelet-csr-approver"]

    # another configuration, another list: flannel instead of calico, no serving-certificate approver
    cfg = staging()
    cfg["cluster"]["networkPlugin"] = "flannel"
    cfg["cluster"]["extraVars"] = {**cfg["cluster"].get("extraVars", {}), "kubelet_rotate_server_certificates": False}
    spec = parse_config(cfg, project_root=PROJECT_ROOT, secrets_required=False)
    got = kubespray_downloads(spec.cluster, spec.schedulable_control_plane, kubespray_src, kubespray_ansible_playbook)
    images = {i["image"] for i in got["images"]}
    assert any(i.startswith("docker.io/flannel/flannel:") for i in images) and not any("calico" in i for i in images)
    assert got["charts"] == []


def test_the_whole_list_of_a_stack_with_real_charts(kubespray_src: Path, kubespray_ansible_playbook: str, upstream_charts: ChartRepo) -> None:
    spec = parse_config(staging(upstream_charts.url), project_root=PROJECT_ROOT, secrets_required=False)
    listed = mirror_list(spec, PROJECT_ROOT, kubespray_dir=kubespray_src, ansible_playbook=kubespray_ansible_playbook)
    # kubespray's own chart is fetched by kubespray from its upstream (helm.repoMirrors is the
    # program's): the one thing not listed in full, and said so
    assert len(listed.incomplete) == 1 and "kubelet-csr-approver" in listed.incomplete[0], listed.incomplete
    images = {i.upstream: i for i in listed.of("image")}
    by_user = {u for i in listed.of("image") for u in i.needed_by}
    # each add-on's images, from the real chart at the catalog's version with the program's values
    for user in ("chart ingress/traefik", "chart kube-system/metrics-server", "chart metallb-system/metallb",
                 "chart storage/localpv-provisioner", "chart monitoring/grafana"):  # fmt: skip
        assert user in by_user, (user, sorted(by_user))
    assert any(u.startswith("quay.io/metallb/controller:v0.15.2") for u in images), sorted(images)
    assert any(u.startswith("quay.io/metallb/speaker:v0.15.2") for u in images), sorted(images)
    assert any(u.startswith("registry.k8s.io/metrics-server/metrics-server:") for u in images), sorted(images)
    # LocalPV's helper pod (it creates every volume) is named only in the provisioner's env
    assert any(u.startswith("docker.io/openebs/linux-utils:") for u in images), sorted(images)
    # the program's own objects: MySQL, the app, kubespray's pieces
    assert "docker.io/library/mysql:8.4.6" in images and "registry.k8s.io/kube-apiserver:v1.34.4" in images
    # every image of a mirrored registry is fetched from its mirror, the rest from upstream
    mirrors = {m.registry: m.url for m in spec.cluster.registry_mirrors}
    for name, item in images.items():
        registry = name.split("/", 1)[0]
        if registry in mirrors:
            assert item.fetched_from == f"{mirrors[registry].split('://', 1)[1]}/{name.split('/', 1)[1]}", item
        else:
            assert item.fetched_from == name, item
    # the charts: upstream repository beside the mirror the stack fetches it from
    charts = {i.upstream.split()[1]: i for i in listed.of("chart")}
    assert charts["traefik"].upstream == "https://traefik.github.io/charts traefik 37.1.1"
    assert charts["traefik"].fetched_from == f"{upstream_charts.url} traefik 37.1.1"


def test_the_cli_says_what_is_missing_and_writes_json(tmp_path: Path, kubespray_src: Path, kubespray_ansible_playbook: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stacks", "mirror-list", "staging", *args], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    # no kubespray tree: incomplete, exit 1, naming what is missing and how to get it
    cp = run()
    assert cp.returncode == 1 and "kubespray's files and images are not listed: give --kubespray DIR" in cp.stderr
    cp = run("--allow-incomplete", "--json", "--out", str(tmp_path / "list.json"))
    assert cp.returncode == 0, cp.stderr
    doc = json.loads((tmp_path / "list.json").read_text())
    assert doc["files"] == [] and doc["incomplete"] and {"upstream", "fetched_from", "needed_by"} <= set(doc["images"][0])
    # with the tree: kubespray's downloads listed as well
    cp = run("--kubespray", str(kubespray_src), "--ansible-playbook", kubespray_ansible_playbook, "--allow-incomplete")
    assert cp.returncode == 0, cp.stderr
    assert "https://dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubelet  <-  https://files.mirror.example.com/" in cp.stdout

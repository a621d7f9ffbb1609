"""`mirror-list`'s own rules: image names as containerd resolves them, where the stack's mirrors
fetch each thing from, and which images a manifest holds. (Against kubespray's real download
table and the real charts: tests/conformance/test_mirror_list_kubespray.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config import parse_config
from stacks.mirror_list import (
    MirrorList,
    file_upstream,
    full_image,
    image_source,
    image_upstream,
    injected_images,
    pod_images,
)
from tests.support.mocks import PROJECT_ROOT, kubespray_config


def _cluster(**cluster: Any) -> Any:
    cfg = kubespray_config()
    cfg["cluster"].update(cluster)
    return parse_config(cfg, project_root=PROJECT_ROOT).cluster


@pytest.mark.parametrize(
    ("image", "full"),
    [("nginx:1.27", "docker.io/library/nginx:1.27"), ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
     ("quay.io/metallb/speaker:v0.15.2", "quay.io/metallb/speaker:v0.15.2"),
     ("localhost/x:1", "localhost/x:1"), ("10.4.17.1:5000/app:2", "10.4.17.1:5000/app:2"),
     ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64)],
)  # fmt: skip
def test_full_image_names_as_containerd_resolves_them(image: str, full: str) -> None:
    assert full_image(image) == full


def test_an_image_is_fetched_from_its_registrys_mirror_or_its_registry() -> None:
    cluster = _cluster(imageRepos={}, registryMirrors={
        "docker.io": {"url": "https://registry.mirror.example.com/docker/"},
        "registry.k8s.io": {"url": "https://k8s.mirror.example.com:5000"}})  # fmt: skip
    assert image_source("mysql:8.4.6", cluster) == "registry.mirror.example.com/docker/library/mysql:8.4.6"
    assert image_source("registry.k8s.io/pause:3.10.1", cluster) == "k8s.mirror.example.com:5000/pause:3.10.1"
    assert image_source("ghcr.io/org/app:1", cluster) == "ghcr.io/org/app:1"


def test_a_file_under_the_file_mirror_has_its_upstream_url_back() -> None:
    cluster = _cluster(imageRepos={"files": "https://files.mirror.example.com/k8s/"})
    url = "https://files.mirror.example.com/k8s/dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubelet"
    assert file_upstream(url, cluster) == "https://dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubelet"
    assert file_upstream("https://github.com/x/y", cluster) == "https://github.com/x/y"


def test_every_container_of_every_pod_template_is_found() -> None:
    cronjob = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [{"name": "i", "image": "busybox:1.37"}],
        "containers": [{"name": "a", "image": "app:1"}, {"name": "b", "image": "sidecar:2"}]}}}}}}  # fmt: skip
    config = {"kind": "ConfigMap", "data": {"image": "not-a-container:1", "containers": "text"}}
    assert list(pod_images([cronjob, config])) == ["busybox:1.37", "app:1", "sidecar:2"]


def test_the_json_has_each_kind_and_what_is_missing() -> None:
    listed = MirrorList(incomplete=["kubespray's files and images are not listed"])
    assert '"incomplete": [\n    "kubespray\'s files and images are not listed"\n  ]' in listed.as_json()
    assert listed.as_text().splitlines()[0] == "# files (0): upstream  <-  fetched from  [needed by]"


def test_an_image_a_controller_is_told_to_start_is_found() -> None:
    deploy = {"spec": {"template": {"spec": {"containers": [{"name": "p", "image": "openebs/provisioner-localpv:4.0.0",
              "env": [{"name": "OPENEBS_IO_HELPER_IMAGE", "value": "openebs/linux-utils:4.0.0"},
                      {"name": "OPENEBS_IO_BASE_PATH", "value": "/var/openebs/local"},
                      {"name": "SOME_IMAGE", "value": "not an image"}]}]}}}}  # fmt: skip
    assert list(pod_images(deploy)) == ["openebs/provisioner-localpv:4.0.0", "openebs/linux-utils:4.0.0"]


def test_istios_injected_sidecar_images_come_from_the_injector_values() -> None:
    values = {"global": {"hub": "docker.io/istio", "tag": "1.29.2", "proxy": {"image": "proxyv2"},
                         "proxy_init": {"image": "proxyv2"}}}  # fmt: skip
    cm = {"kind": "ConfigMap", "metadata": {"name": "istio-sidecar-injector"}, "data": {"values": json.dumps(values)}}
    assert list(injected_images(cm)) == ["docker.io/istio/proxyv2:1.29.2"] * 2
    assert list(injected_images({"kind": "ConfigMap", "metadata": {"name": "other"}})) == []


def test_a_name_kubespray_rewrote_under_image_repos_has_its_upstream_back() -> None:
    cluster = _cluster(imageRepos={"kube": "registry.mirror.example.com/k8s"})
    assert image_upstream("registry.mirror.example.com/k8s/kube-apiserver:v1.34.4", cluster) == \
        "registry.k8s.io/kube-apiserver:v1.34.4"  # fmt: skip
    assert image_upstream("nginx:1.27", cluster) == "docker.io/library/nginx:1.27"

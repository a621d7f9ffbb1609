"""What the pinned kubespray release supports, checked before anything runs."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest

from components.kubespray_inventory import group_vars
from stacks.config import ConfigError, parse_config
from tests.support.mocks import PROJECT_ROOT, assert_problem, kubespray_config


def _cfg(**cluster: Any) -> dict[str, Any]:
    cfg = kubespray_config()
    cfg["cluster"].update(copy.deepcopy(cluster))
    return cfg


@pytest.mark.parametrize("version", ["1.32.9", "1.36.0", "1.33.12", "v1.31.1"])
def test_kube_version_outside_the_release_is_refused(version: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_cfg(kubeVersion=version), project_root=PROJECT_ROOT)
    bare = version.removeprefix("v")
    assert_problem(exc.value.problems, "cluster.kubeVersion",
                   f"{bare} is not installable by kubespray v2.31.0 (1.33.0 … 1.35.4)")  # fmt: skip


@pytest.mark.parametrize("version", ["1.33.0", "1.34.4", "v1.35.4", ""])
def test_kube_versions_of_the_release_are_accepted(version: str) -> None:
    spec = parse_config(_cfg(kubeVersion=version), project_root=PROJECT_ROOT)
    assert spec.cluster.kube_version == version.removeprefix("v")
    assert spec.warnings == ()


def test_unknown_kubespray_release_is_a_warning_and_not_checked() -> None:
    cfg = _cfg(kubeVersion="1.32.9")
    cfg["environment"] = "dev"
    cfg["cluster"]["kubespray"]["version"] = "v2.29.1"
    spec = parse_config(cfg, project_root=PROJECT_ROOT)
    assert spec.cluster.kube_version == "1.32.9"
    assert spec.cluster.kubespray is not None and spec.cluster.kubespray.commit == ""
    assert any(w.startswith("cluster.kubespray.version: v2.29.1 is not a kubespray release this program knows")
               for w in spec.warnings), spec.warnings  # fmt: skip


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("kube_proxy_strict_apr", "kube_proxy_strict_arp"), ("auto_renew_certificate", "auto_renew_certificates"),
     ("etcd_deployment", "etcd_deployment_type"), ("dns_domian", "dns_domain")],
)  # fmt: skip
def test_extra_vars_typo_is_a_warning_with_did_you_mean(key: str, suggestion: str) -> None:
    spec = parse_config(_cfg(extraVars={key: True}), project_root=PROJECT_ROOT)
    assert spec.warnings == (
        f"cluster.extraVars.{key}: is not a variable kubespray v2.31.0 reads, so it has no effect "
        f"(did you mean {suggestion!r}?)",
    )
    assert group_vars(spec.cluster)[key] is True  # passed through all the same: a warning, not a refusal


def test_known_extra_vars_give_no_warning() -> None:
    spec = parse_config(_cfg(extraVars={"kube_proxy_strict_arp": True, "dns_domain": "cluster.local"}),
                        project_root=PROJECT_ROOT)  # fmt: skip
    assert spec.warnings == ()


def test_gcr_mirror_is_a_warning_and_not_written() -> None:
    spec = parse_config(_cfg(imageRepos={"gcr": "mirror.example.com/gcr", "quay": "mirror.example.com/quay"}),
                        project_root=PROJECT_ROOT)  # fmt: skip
    assert [w.split(":")[0] for w in spec.warnings] == ["cluster.imageRepos.gcr"]
    assert "feeds nothing" in spec.warnings[0]
    gv = group_vars(spec.cluster)
    assert "gcr_image_repo" not in gv and gv["quay_image_repo"] == "mirror.example.com/quay"


def test_commit_of_a_known_release_is_pinned_from_the_table() -> None:
    spec = parse_config(kubespray_config(), project_root=PROJECT_ROOT)
    assert spec.cluster.kubespray is not None
    assert spec.cluster.kubespray.commit == "1c9add48975060f45396b34d8e022c30d7f80dab"


@pytest.mark.parametrize("commit", ["abc123", "1C9ADD48975060F45396B34D8E022C30D7F80DAB", "1c9add4897506 0f45396b34d8e022c30d7f80da"])
def test_commit_must_be_a_full_hash(commit: str) -> None:
    cfg = kubespray_config()
    cfg["cluster"]["kubespray"]["commit"] = commit
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, project_root=PROJECT_ROOT)
    assert_problem(exc.value.problems, "cluster.kubespray.commit", "is not a full 40-hex git commit")


def test_validate_prints_warnings_and_still_succeeds(tmp_path: Any) -> None:
    import yaml

    from stacks.config import NAMESPACE

    cfg = _cfg(extraVars={"kube_proxy_strict_apr": True})
    doc = {"config": {f"{NAMESPACE}:{k}": ({"secure": "v1:x"} if k == "sshPrivateKey" else v) for k, v in cfg.items()}}
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "stacks", "validate", "--config-file", str(path)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"{path}: warning: cluster.extraVars.kube_proxy_strict_apr: is not a variable" in res.stderr

"""`python -m stacks promote`: the promotable split on the real stack files, byte-level
preservation of everything it does not change, --only, --dry-run, and refusal of a
promotion that would break the destination's rules."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from stacks import promotion as pr
from stacks import yamledit as ye
from stacks.cli import main
from tests.support.mocks import PROJECT_ROOT

NS = "k8s-platform:"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the project's stack files (and the values files they reference)."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    shutil.copytree(PROJECT_ROOT / "values", tmp_path / "values")
    return tmp_path


def edit(path: Path, fn: Any) -> None:
    """Change a stack file through the round-trip loader, as a person editing it would."""
    doc = ye.load(path.read_text())
    fn(doc["config"])
    path.write_text(ye.dump(doc))


def cli(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def bump_everything(config: Any) -> None:
    """Change every promotable setting of a stack AND many that must never travel."""
    app = config[NS + "apps"][0]
    app["image"] = "nginxinc/nginx-unprivileged:1.28.0"
    app["replicas"] = 7  # not promotable
    app["ingress"]["host"] = "nginx.elsewhere.example.com"  # not promotable
    release = config[NS + "helm"]["releases"][0]
    release["version"] = "8.6.0"
    release["values"] = {"replicas": 2, "persistence": {"enabled": True}}
    release["valuesFiles"] = ["values/grafana.yaml"]  # not promotable: per-environment paths
    config[NS + "addons"]["ingress"]["version"] = "37.2.0"
    config[NS + "addons"]["metricsServer"]["version"] = "3.13.1"
    config[NS + "mysql"]["image"] = "mysql:8.4.7"
    config[NS + "mysql"]["replicas"] = 1  # not promotable
    config[NS + "mysql"]["storage"]["size"] = "1Gi"  # not promotable
    cluster = config[NS + "cluster"]
    cluster["kubespray"]["version"] = "v2.32.0"
    cluster["kubespray"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    cluster["kubeVersion"] = "1.35.1"
    cluster["nodes"][0]["address"] = "10.9.9.9"  # not promotable
    cluster["controlHost"]["host"] = "10.9.9.1"  # not promotable


PROMOTED = {
    ("apps", "my-nginx", "image"): "nginxinc/nginx-unprivileged:1.28.0",
    ("helm", "releases", "grafana", "version"): "8.6.0",
    ("helm", "releases", "grafana", "values"): {"replicas": 2, "persistence": {"enabled": True}},
    ("addons", "ingress", "version"): "37.2.0",
    ("addons", "metricsServer", "version"): "3.13.1",
    ("mysql", "image"): "mysql:8.4.7",
    ("cluster", "kubespray", "version"): "v2.32.0",
    ("cluster", "kubespray", "commit"): "0123456789abcdef0123456789abcdef01234567",
    ("cluster", "kubeVersion"): "1.35.1",
}


def strip_promotable(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every PROMOTABLE path removed: what a promotion must leave alone."""
    import copy

    out = copy.deepcopy(config)
    apps = out.get(NS + "apps") or []
    for app in apps:
        app.pop("image", None)
    for release in (out.get(NS + "helm") or {}).get("releases") or []:
        release.pop("version", None)
        release.pop("values", None)
    for addon in (out.get(NS + "addons") or {}).values():
        addon.pop("version", None)
    (out.get(NS + "mysql") or {}).pop("image", None)
    cluster = out.get(NS + "cluster") or {}
    (cluster.get("kubespray") or {}).pop("version", None)
    (cluster.get("kubespray") or {}).pop("commit", None)
    cluster.pop("kubeVersion", None)
    return out


def value_at(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = config[NS + path[0]]
    rest = list(path[1:])
    while rest:
        key = rest.pop(0)
        node = next(item for item in node if item["name"] == key) if isinstance(node, list) else node[key]
    return node


# --------------------------------------------------------------------------- the split


def test_promotable_table_names_only_what_may_travel() -> None:
    assert "apps[name].image" in pr.PROMOTABLE
    assert "helm.releases[name].values" in pr.PROMOTABLE
    assert {f"addons.{a}.version" for a in ("ingress", "storage", "metricsServer", "loadBalancer")} <= set(
        pr.PROMOTABLE
    )
    forbidden = {"nodes", "controlHost", "proxy", "imageRepos", "replicas", "valuesFiles", "environment"}
    forbidden |= {"sshPrivateKey", "mysqlRootPassword", "addresses", "apiServerEndpoint", "repoMirrors", "size"}
    for path in pr.PROMOTABLE:
        segments = [s.removesuffix("[name]") for s in path.split(".")]
        assert segments[-1] in {"image", "version", "values", "kubeVersion", "commit"}, path
        assert not forbidden & set(segments), path
        assert not path.startswith("mysql.storage"), path


@pytest.mark.parametrize(("src", "dst"), [("dev", "staging"), ("staging", "prod")])
def test_promotes_exactly_the_promotable_settings_of_the_real_stacks(root: Path, src: str, dst: str) -> None:
    edit(root / f"Pulumi.{src}.yaml", bump_everything)
    before = ye.plain(ye.load((root / f"Pulumi.{dst}.yaml").read_text()))
    assert cli(root, "promote", src, dst) == 0
    after = ye.plain(ye.load((root / f"Pulumi.{dst}.yaml").read_text()))
    for path, value in PROMOTED.items():
        assert value_at(after["config"], path) == value, path
    # everything else is DST's own: nodes, hosts, replicas, sizes, valuesFiles, secrets, environment
    assert strip_promotable(after["config"]) == strip_promotable(before["config"])
    assert {k: v for k, v in after.items() if k != "config"} == {k: v for k, v in before.items() if k != "config"}


def test_untouched_bytes_comments_order_flow_style_and_secrets_survive(root: Path) -> None:
    edit(root / "Pulumi.staging.yaml", bump_everything)
    dst = root / "Pulumi.prod.yaml"
    before = dst.read_text()
    assert cli(root, "promote", "staging", "prod") == 0
    after = dst.read_text()
    removed, added = changed_lines(before, after)
    # only the promoted leaves changed: one line each for the scalars (their old values), new lines for
    # the values mapping and add-on versions prod did not have
    old = ye.plain(ye.load(before))["config"]
    expected = [
        f"image: {value_at(old, ('apps', 'my-nginx', 'image'))}",
        f"version: {value_at(old, ('helm', 'releases', 'grafana', 'version'))}",
        f"image: {value_at(old, ('mysql', 'image'))}",
        f"version: {value_at(old, ('cluster', 'kubespray', 'version'))}",
        f"kubeVersion: {value_at(old, ('cluster', 'kubeVersion'))}",
    ]
    assert sorted(line.strip() for line in removed) == sorted(expected)
    assert all(not line.lstrip().startswith("#") and "secure:" not in line for line in removed + added)

    # comments, `secure:` lines, flow-style lines: byte-identical and in the same order
    def kept(text: str) -> list[str]:
        return [
            ln for ln in text.splitlines() if ln.lstrip().startswith("#") or "secure:" in ln or "{" in ln or "[" in ln
        ]

    assert kept(before) == kept(after)

    # top-level key order unchanged
    def keys(text: str) -> list[str]:
        return re.findall(r"^  (k8s-platform:\w+):", text, re.M)

    assert keys(before) == keys(after)
    # the added add-on versions went into the add-on mappings, after their existing keys
    ingress_before = ye.load(before)["config"][NS + "addons"]["ingress"]
    ingress_after = ye.load(after)["config"][NS + "addons"]["ingress"]
    assert list(ingress_after) == [*[k for k in ingress_before if k != "version"], "version"]


def test_new_key_is_appended_before_the_following_comment(root: Path) -> None:
    """A key added to a release lands right after the release's last line; no other line moves."""
    src = root / "Pulumi.dev.yaml"
    dst = root / "Pulumi.prod.yaml"
    edit(src, lambda c: c[NS + "helm"]["releases"][0].__setitem__("values", {"adminUser": "admin"}))
    text = dst.read_text()
    release = ye.load(text)["config"][NS + "helm"]["releases"][0]
    assert "values" not in release
    last_line = release.lc.key(list(release)[-1])[0]  # 0-based line of the release's last key
    assert cli(root, "promote", "dev", "prod") == 0
    after = dst.read_text()
    lines = after.splitlines()
    assert lines[: last_line + 1] == text.splitlines()[: last_line + 1]
    assert lines[last_line + 1 : last_line + 3] == ["        values:", "          adminUser: admin"]
    assert lines[last_line + 3 :] == text.splitlines()[last_line + 1 :]
    # the comment before the secrets did not move
    assert (
        after.split("k8s-platform:sshPrivateKey")[0]
        .rstrip()
        .endswith(text.split("k8s-platform:sshPrivateKey")[0].rstrip().splitlines()[-1])
    )


def test_unset_in_src_removes_dst_override(root: Path) -> None:
    edit(root / "Pulumi.staging.yaml", lambda c: c[NS + "addons"]["ingress"].__setitem__("version", "37.0.0"))
    assert cli(root, "promote", "dev", "staging") == 0
    after = ye.plain(ye.load((root / "Pulumi.staging.yaml").read_text()))
    assert "version" not in after["config"][NS + "addons"]["ingress"]  # dev uses the catalog default


def test_only_subset(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(root / "Pulumi.dev.yaml", bump_everything)
    dst = root / "Pulumi.staging.yaml"
    before = dst.read_text()
    assert cli(root, "promote", "dev", "staging", "--only", "apps.my-nginx,helm.releases[grafana].version") == 0
    out = capsys.readouterr().out
    assert "apps.my-nginx.image: nginxinc/nginx-unprivileged:1.27.5 → nginxinc/nginx-unprivileged:1.28.0" in out
    assert "helm.releases.grafana.version: 8.5.0 → 8.6.0" in out
    assert "mysql.image" not in out and "values" not in out
    removed, added = changed_lines(before, dst.read_text())
    assert [line.strip() for line in added] == ["version: 8.6.0", "image: nginxinc/nginx-unprivileged:1.28.0"]
    assert len(removed) == 2


def test_dry_run_prints_the_diff_and_writes_nothing(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(root / "Pulumi.dev.yaml", bump_everything)
    dst = root / "Pulumi.staging.yaml"
    before = dst.read_bytes()
    mtime = dst.stat().st_mtime_ns
    assert cli(root, "promote", "dev", "staging", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "mysql.image: mysql:8.4.6 → mysql:8.4.7" in out
    assert "helm.releases.grafana.values.persistence.enabled: (unset) → true" in out
    assert "cluster.kubeVersion: 1.34.4 → 1.35.1" in out
    assert "dry run" in out
    assert dst.read_bytes() == before and dst.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_unpinned_chart_into_prod_is_refused_and_prod_untouched(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """dev may float a chart version; prod may not: the promotion is refused, listing the problem."""
    edit(root / "Pulumi.staging.yaml", lambda c: c[NS + "helm"]["releases"][0].pop("version"))
    edit(root / "Pulumi.staging.yaml", lambda c: c[NS + "apps"][0].__setitem__("image", "nginx:1.28.0"))
    # staging requires the version too, so write the unpinned release into a dev-tier source
    src = root / "Pulumi.staging.yaml"
    src.write_text(src.read_text().replace("k8s-platform:environment: staging", "k8s-platform:environment: dev"))
    dst = root / "Pulumi.prod.yaml"
    before = dst.read_bytes()
    assert cli(root, "promote", "staging", "prod") == 1
    err = capsys.readouterr().err
    assert "refused" in err
    assert re.search(r"^helm\.releases\[0\]\.version: is required in prod", err, re.M), err
    assert dst.read_bytes() == before


def test_latest_image_into_prod_is_refused(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(root / "Pulumi.staging.yaml", lambda c: c[NS + "apps"][0].__setitem__("image", "nginx:latest"))
    before = (root / "Pulumi.prod.yaml").read_bytes()
    assert cli(root, "promote", "staging", "prod") == 1
    assert "apps[0].image: 'nginx:latest' uses 'latest'" in capsys.readouterr().err
    assert (root / "Pulumi.prod.yaml").read_bytes() == before


def test_item_only_in_src_is_reported_not_created(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def add_app(config: Any) -> None:
        config[NS + "apps"].append({"name": "api", "namespace": "web", "image": "example/api:1.0.0"})

    edit(root / "Pulumi.dev.yaml", add_app)
    before = (root / "Pulumi.staging.yaml").read_bytes()
    assert cli(root, "promote", "dev", "staging") == 0
    out = capsys.readouterr().out
    assert "note: apps.api exists only in dev; not created in staging" in out
    assert (root / "Pulumi.staging.yaml").read_bytes() == before
    # asking for it explicitly is a problem: there is nothing it could do
    assert cli(root, "promote", "dev", "staging", "--only", "apps.api") == 1
    assert "apps.api: exists only in dev" in capsys.readouterr().err


def test_no_changes_exit_0_and_bad_selector_exit_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(root, "promote", "dev", "staging") == 0
    assert "nothing to change" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli(root, "promote", "dev", "staging", "--only", "cluster.nodes")
    assert exc.value.code == 2
    assert "matches no promotable setting" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli(root, "promote", "dev", "dev")
    assert exc.value.code == 2


def test_secrets_inside_values_are_never_promoted(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = root / "Pulumi.dev.yaml"
    src.write_text(
        src.read_text().replace(
            "        valuesFiles: [values/grafana.yaml, values/grafana-dev.yaml]\n",
            "        valuesFiles: [values/grafana.yaml, values/grafana-dev.yaml]\n"
            "        values:\n          adminPassword:\n            secure: v1:abc:def\n",
        )
    )
    before = (root / "Pulumi.staging.yaml").read_bytes()
    assert cli(root, "promote", "dev", "staging") == 1
    err = capsys.readouterr().err
    assert "helm.releases.grafana.values: holds a secret (secure:) in dev" in err
    assert "v1:abc:def" not in err
    assert (root / "Pulumi.staging.yaml").read_bytes() == before


def test_plan_is_pure_and_reports_candidates() -> None:
    dev = (PROJECT_ROOT / "Pulumi.dev.yaml").read_text()
    prod = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text()
    plan = pr.plan_promotion(dev, prod, src="dev", dst="prod")
    assert not plan.problems
    assert "apps.my-nginx.image" in plan.candidates and "cluster.kubeVersion" in plan.candidates
    changed_paths = {c.path for c in plan.changes}
    assert changed_paths <= set(plan.candidates)
    if not plan.changes:
        assert plan.new_text == prod


def test_round_trip_of_every_stack_file_is_byte_exact() -> None:
    for stack in ("dev", "staging", "prod"):
        text = (PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text()
        assert ye.dump(ye.load(text)) == text, stack


def test_end_of_line_comments_stay_on_their_key() -> None:
    dev = (PROJECT_ROOT / "Pulumi.dev.yaml").read_text()
    prod = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text()
    image = re.search(r"image: (nginxinc/\S+)", dev)
    assert image
    src = dev.replace(image.group(0), "image: nginxinc/nginx-unprivileged:9.9.9")
    dst = re.sub(r"(      image: nginxinc/\S+)", r"\1  # pinned by ops", prod)
    plan = pr.plan_promotion(src, dst, src="dev", dst="prod")
    # the comment keeps its column (ruamel pads a shorter value)
    assert re.search(r"^      image: nginxinc/nginx-unprivileged:9\.9\.9 +# pinned by ops$", plan.new_text, re.M)


def test_yamledit_moves_the_comment_that_introduces_the_next_key() -> None:
    text = (
        "config:\n  a:\n    x: [1, 2]\n  # about b\n  b:\n    - {n: 1}\n  # about c\n  c:\n    - 1\n"
        "  # about d\n  d:\n    g: 1  # eol\n  # about h\n  h: 2\n"
    )
    doc = ye.load(text)
    config = doc["config"]
    ye.sync_key(config["a"], "y", {"z": 1})
    ye.sync_key(config, "b", [{"n": 1}, {"n": 2}])
    ye.sync_key(config, "c", [1, 2])
    ye.sync_key(config["d"], "g2", "new")
    assert ye.dump(doc) == (
        "config:\n  a:\n    x: [1, 2]\n    y:\n      z: 1\n  # about b\n  b:\n    - {n: 1}\n    - n: 2\n"
        "  # about c\n  c:\n    - 1\n    - 2\n  # about d\n  d:\n    g: 1  # eol\n    g2: new\n  # about h\n  h: 2\n"
    )


def test_an_init_containers_image_travels_with_its_app(root: Path) -> None:
    def with_init(image: str) -> Any:
        def fn(config: Any) -> None:
            config[NS + "apps"][0]["initContainers"] = [{"name": "migrate", "command": ["./migrate"], "image": image}]
        return fn

    edit(root / "Pulumi.dev.yaml", with_init("ghcr.io/acme/migrate:2.0.0"))
    edit(root / "Pulumi.staging.yaml", with_init("ghcr.io/acme/migrate:1.9.0"))
    assert cli(root, "promote", "dev", "staging") == 0
    after = ye.plain(ye.load((root / "Pulumi.staging.yaml").read_text()))
    (init,) = after["config"][NS + "apps"][0]["initContainers"]
    assert init == {"name": "migrate", "command": ["./migrate"], "image": "ghcr.io/acme/migrate:2.0.0"}

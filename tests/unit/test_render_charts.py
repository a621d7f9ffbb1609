"""`python -m stacks render --charts`: exit 1 when a release does not render, naming each on
stderr; `--allow-unreachable` accepts only repositories that could not be contacted.

`helm` is a stand-in script here (the real one runs in tests/conformance/test_plan_charts.py):
it answers like helm v4 does, by the repository URL it is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from stacks import charts, cli
from stacks.charts import is_unreachable

OK_REPO = "https://charts.example.com/ok"
UNREACHABLE_REPO = "https://charts.unreachable.example/charts"
BROKEN_REPO = "https://charts.example.com/broken"

# helm v4's own messages, as `helm template --repo …` prints them
UNREACHABLE_ERR = (
    f'Error: looks like "{UNREACHABLE_REPO}" is not a valid chart repository or cannot be reached: Get '
    f'"{UNREACHABLE_REPO}/index.yaml": dial tcp: lookup charts.unreachable.example on 10.0.0.53:53: no such host'
)
BROKEN_ERR = (
    'Error: template: app/templates/deployment.yaml:28:30: executing "app/templates/deployment.yaml" at '
    "<.Values.persistence.enabled>: can't evaluate field enabled in type interface {}"
)

FAKE_HELM = f"""#!{sys.executable}
import sys
argv = sys.argv[1:]
repo = argv[argv.index("--repo") + 1] if "--repo" in argv else ""
if repo == {UNREACHABLE_REPO!r}:
    sys.stderr.write({UNREACHABLE_ERR!r} + "\\n"); sys.exit(1)
if repo == {BROKEN_REPO!r}:
    sys.stderr.write({BROKEN_ERR!r} + "\\n"); sys.exit(1)
print("apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: " + argv[1])
"""


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    helm = tmp_path / "bin" / "helm"
    helm.parent.mkdir()
    helm.write_text(FAKE_HELM)
    helm.chmod(0o755)
    monkeypatch.setattr(charts, "find_helm", lambda: str(helm))
    return helm


def _stack(tmp_path: Path, *repos: str) -> Path:
    releases = [{"name": f"r{i}", "namespace": "apps", "repo": repo, "chart": "app", "version": "1.0.0"}
                for i, repo in enumerate(repos)]  # fmt: skip
    config = {
        "k8s-platform:environment": "dev",
        "k8s-platform:cluster": {"mode": "existing", "kubeconfig": "/nonexistent/kubeconfig"},
        "k8s-platform:addons": {key: {"enabled": False} for key in ("ingress", "storage", "metricsServer", "loadBalancer")},
        "k8s-platform:helm": {"releases": releases},
        "k8s-platform:mysql": {"enabled": False},
    }  # fmt: skip
    path = tmp_path / "Pulumi.charts.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def _render(tmp_path: Path, stack: Path, *extra: str) -> int:
    return cli.main(["render", "--config-file", str(stack), "--out", str(tmp_path / "out"), "--charts", *extra])


def test_every_chart_rendered_exits_0(fake_helm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _render(tmp_path, _stack(tmp_path, OK_REPO)) == 0
    out, err = capsys.readouterr()
    assert "chart apps/r0 (app 1.0.0): rendered to" in out
    assert (tmp_path / "out" / "charts" / "apps.r0.helm.yaml").is_file()
    assert "not rendered" not in err


@pytest.mark.parametrize("extra", [(), ("--allow-unreachable",)], ids=["strict", "allow-unreachable"])
def test_a_chart_that_fails_to_template_exits_1(
    fake_helm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    assert _render(tmp_path, _stack(tmp_path, OK_REPO, BROKEN_REPO, UNREACHABLE_REPO), *extra) == 1
    err = capsys.readouterr().err
    failed = 1 if extra else 2
    assert f"Pulumi.charts.yaml: {failed} of 3 chart(s) not rendered" in err, err
    assert f"chart apps/r1 (app 1.0.0): not rendered: {BROKEN_ERR}" in err.splitlines(), err
    assert (tmp_path / "out" / "charts" / "apps.r0.helm.yaml").is_file(), "the charts that render are still written"


def test_unreachable_repository_fails_without_the_option(
    fake_helm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _render(tmp_path, _stack(tmp_path, OK_REPO, UNREACHABLE_REPO)) == 1
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("chart apps/r1 ")]
    assert "not rendered, the repository is unreachable" in line and "no such host" in line
    assert "--allow-unreachable" in line, "the failure says how to accept an offline run"


def test_unreachable_repository_is_a_warning_with_the_option(
    fake_helm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _stack(tmp_path, OK_REPO, UNREACHABLE_REPO)
    assert _render(tmp_path, stack, "--allow-unreachable") == 0
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{stack}: warning: chart apps/r1 (app 1.0.0): not rendered, the repository is unreachable")
    assert "no such host" in line
    assert "chart apps/r0 (app 1.0.0): rendered to" in out


def test_no_helm_is_a_failure_even_with_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(charts, "find_helm", lambda: None)
    assert _render(tmp_path, _stack(tmp_path, OK_REPO), "--allow-unreachable") == 1
    assert "no helm binary" in capsys.readouterr().err


def test_a_stale_chart_file_of_an_earlier_render_is_removed(
    fake_helm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _render(tmp_path, _stack(tmp_path, OK_REPO)) == 0
    stale = tmp_path / "out" / "charts" / "apps.r0.helm.yaml"
    assert stale.is_file()
    assert _render(tmp_path, _stack(tmp_path, UNREACHABLE_REPO), "--allow-unreachable") == 0
    assert not stale.exists(), "an earlier run's chart must not pass for this run's"


def test_allow_unreachable_without_charts_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["render", "--config-file", str(_stack(tmp_path, OK_REPO)), "--out", str(tmp_path / "o"),
                  "--allow-unreachable"])  # fmt: skip
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (UNREACHABLE_ERR, True),
        ('Error: looks like "http://127.0.0.1:9/charts" is not a valid chart repository or cannot be reached: Get '
         '"http://127.0.0.1:9/charts/index.yaml": dial tcp 127.0.0.1:9: connect: connection refused', True),
        ('Error: failed to perform "FetchReference" on source: Head "https://registry.example.com/v2/charts/app/'
         'manifests/1.0.0": dial tcp 10.1.2.3:443: i/o timeout', True),
        ('Error: looks like "https://charts.example.com" is not a valid chart repository or cannot be reached: Get '
         '"https://charts.example.com/index.yaml": net/http: TLS handshake timeout', True),
        ('Error: looks like "https://charts.example.com" is not a valid chart repository or cannot be reached: Get '
         '"https://charts.example.com/index.yaml": proxyconnect tcp: dial tcp 10.4.18.1:3128: connect: no route to host', True),
        # the repository answered: its chart does not render, and that is never accepted
        ('Error: looks like "https://charts.example.com/x" is not a valid chart repository or cannot be reached: '
         'failed to fetch https://charts.example.com/x/index.yaml : 404 Not Found', False),
        ('Error: chart "app" version "9.9.9" not found in https://charts.example.com repository', False),
        ('Error: looks like "https://charts.example.com" is not a valid chart repository or cannot be reached: Get '
         '"https://charts.example.com/index.yaml": tls: failed to verify certificate: x509: certificate signed by '
         'unknown authority', False),
        (BROKEN_ERR, False),
    ],
)  # fmt: skip
def test_unreachable_means_no_answer_from_the_repository(error: str, unreachable: bool) -> None:
    assert is_unreachable(error) is unreachable


def test_helm_error_is_one_line_from_its_error_on() -> None:
    # helm v4 on a template error: several lines, then a hint
    stderr = ("walk.go:75: found symbolic link in path\nError: grafana/templates/pvc.yaml:1:14\n"
              '  executing "grafana/templates/pvc.yaml" at <.Values.persistence.enabled>:\n'
              "    can't evaluate field enabled in type interface {}\n\nUse --debug flag to render out invalid YAML\n")  # fmt: skip
    assert charts.helm_error(stderr) == (
        'Error: grafana/templates/pvc.yaml:1:14 executing "grafana/templates/pvc.yaml" at '
        "<.Values.persistence.enabled>: can't evaluate field enabled in type interface {}"
    )
    assert charts.helm_error(f"{UNREACHABLE_ERR}\n") == UNREACHABLE_ERR
    assert charts.helm_error("killed\n") == "killed"
    assert charts.helm_error("") == "helm template failed"

"""The GitHub workflows, checked by real linters offline.

- check-jsonschema with its vendored GitHub workflow schema (`vendor.github-workflows`,
  shipped inside the PyPI package: no network) — always.
- actionlint (expressions, `needs`/matrix/outputs typing, known inputs of popular
  actions such as pulumi/actions@v6, and shellcheck on every `run:` script) — when it
  is on PATH or in .venv/bin (it is a Go program:
  `GOBIN=$PWD/.venv/bin go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12`).
- the contract the project relies on: pinned actions, secrets only from `secrets.*`,
  which stacks a PR previews (the selection script is run for real on a scratch repo).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict[Any, Any]:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    assert isinstance(doc, dict)
    return doc


def steps(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"pr.yml", "deploy-dev.yml", "promote.yml"}


def test_schema_check_jsonschema_vendored_github_workflows() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _actionlint() -> str | None:
    found = shutil.which("actionlint")
    local = ROOT / ".venv" / "bin" / "actionlint"
    return found or (str(local) if local.exists() else None)


@pytest.mark.skipif(_actionlint() is None, reason="actionlint not installed (go install …/actionlint@v1.7.12)")
def test_actionlint() -> None:
    exe = _actionlint()
    assert exe is not None
    res = subprocess.run(
        [exe, "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_action_is_pinned_to_a_version() -> None:
    for path in WORKFLOWS:
        for step in steps(yaml.safe_load(path.read_text())):
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})", uses), (
                    f"{path.name}: {uses} is not pinned to a version tag or commit"
                )


def test_secrets_reach_only_the_pulumi_step_of_a_gated_environment() -> None:
    """No step that runs the code under review sees a secret it does not need.

    Each stack's passphrase and backend credentials are secrets of its own GitHub
    Environment (required reviewers); only the pulumi step gets them, as step env.
    """
    for path in WORKFLOWS:
        text = path.read_text()
        for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"):
            for value in re.findall(rf"^\s*{name}:\s*(.+)$", text, re.M):
                assert value.strip() == f"${{{{ secrets.{name} }}}}", f"{path.name}: {name} = {value}"
    for name, env in (("pr.yml", "preview-${{ matrix.stack }}"), ("deploy-dev.yml", "dev")):
        doc = load(name)
        for job_name, job in doc["jobs"].items():
            uses_secrets = "secrets." in yaml.safe_dump(job)
            if not uses_secrets:
                continue
            assert job.get("environment") == env, f"{name}:{job_name} uses secrets outside environment {env}"
            assert "secrets." not in yaml.safe_dump(job.get("env") or {}), f"{name}:{job_name}: job-level secret env"
            for step in job["steps"]:
                if "secrets." in yaml.safe_dump(step):
                    assert step.get("uses", "").startswith("pulumi/actions@"), (
                        f"{name}:{job_name}: step {step.get('name') or step.get('uses')} sees a secret"
                    )
                    assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    # the test job of a PR runs its code with no secret at all
    assert "secrets." not in yaml.safe_dump(load("pr.yml")["jobs"]["test"])


def test_pulumi_steps_reach_the_backend_the_way_the_docs_say() -> None:
    """docs/environments.md, "Working as a team": the backend URL from PULUMI_BACKEND_URL (also
    as pulumi/actions' cloud-url), credentials as AWS_* environment variables, never in the URL."""
    docs = (ROOT / "docs" / "environments.md").read_text()
    for name in ("PULUMI_BACKEND_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "cloud-url"):
        assert name in docs, f"docs/environments.md does not say how CI passes {name}"
    found = 0
    for path in WORKFLOWS:
        for step in steps(yaml.safe_load(path.read_text())):
            if not step.get("uses", "").startswith("pulumi/actions@"):
                continue
            found += 1
            env, with_ = step.get("env") or {}, step.get("with") or {}
            where = f"{path.name}: {with_.get('command')} step"
            assert with_.get("cloud-url") == "${{ secrets.PULUMI_BACKEND_URL }}", where
            assert env.get("PULUMI_BACKEND_URL") == "${{ secrets.PULUMI_BACKEND_URL }}", where
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert env.get(key) == f"${{{{ secrets.{key} }}}}", f"{where}: {key}"
    assert found >= 2, "the PR preview and the dev deployment run pulumi/actions"


def test_workflows_use_the_pinned_pulumi_version() -> None:
    pin = next(line.split("==")[1].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line.startswith("pulumi=="))  # fmt: skip
    for path in WORKFLOWS:
        for version in re.findall(r"pulumi-version:\s*(\S+)", path.read_text()):
            assert version == pin, f"{path.name}: pulumi-version {version}, requirements.txt pins {pin}"


def test_pr_runs_fast_tests_and_previews_with_a_pr_comment() -> None:
    doc = load("pr.yml")
    assert "pull_request" in doc[True]  # PyYAML reads the key `on` as True
    runs = [s.get("run", "") for s in steps(doc)]
    assert any(r.strip() == "make test-fast" for r in runs)
    preview = doc["jobs"]["preview"]
    assert set(preview["needs"]) == {"test", "stacks"}
    action = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["uses"] == "pulumi/actions@v6"
    assert action["with"]["command"] == "preview"
    assert action["with"]["comment-on-pr"] is True
    assert action["with"]["stack-name"] == "${{ matrix.stack }}"
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"


def test_deploy_dev_ups_dev_on_push_to_main() -> None:
    doc = load("deploy-dev.yml")
    assert doc[True]["push"]["branches"] == ["main"]
    action = next(s for s in steps(doc) if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "up" and action["with"]["stack-name"] == "dev"
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_promote_dispatch_runs_the_cli_and_opens_a_pr() -> None:
    doc = load("promote.yml")
    inputs = doc[True]["workflow_dispatch"]["inputs"]
    assert {"src", "dst"} <= set(inputs)
    runs = "\n".join(s.get("run", "") for s in steps(doc))
    assert ".venv/bin/python -m stacks promote" in runs
    assert "${{ inputs." not in runs, "inputs must reach the shell through env:, not by interpolation"
    assert any(s.get("uses", "").startswith("peter-evans/create-pull-request@") for s in steps(doc))


# --------------------------------------------------------------------------- which stacks a PR previews


def _selection_script() -> str:
    step = next(s for s in load("pr.yml")["jobs"]["stacks"]["steps"] if s.get("id") == "changed")
    return str(step["run"])


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("git") is None, reason="needs jq and git")
@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["Pulumi.prod.yaml"], ["prod"]),
        (["Pulumi.dev.yaml", "Pulumi.staging.yaml"], ["dev", "staging"]),
        (["components/webapp.py"], ["dev", "prod", "staging"]),
        (["values/grafana.yaml"], ["dev", "prod", "staging"]),
        (["README.md", "docs/x.md"], []),
    ],
)
def test_pr_previews_the_stacks_a_change_can_affect(tmp_path: Path, changed: list[str], expected: list[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "README.md"):
        (repo / name).write_text("x\n")
    git("add", "-A")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    for path in changed:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("changed\n")
    git("add", "-A")
    git("commit", "-qm", "change")
    output = tmp_path / "github_output"
    res = subprocess.run(
        ["bash", "-e", "-c", _selection_script()],
        cwd=repo,
        env={**env, "BASE_SHA": base, "HEAD_SHA": git("rev-parse", "HEAD"), "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    import json

    (line,) = output.read_text().splitlines()
    assert line.startswith("stacks=")
    assert json.loads(line.removeprefix("stacks=")) == expected

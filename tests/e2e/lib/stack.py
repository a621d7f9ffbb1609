"""A throwaway copy of the project with a `Pulumi.e2e.yaml`, and a bounded `pulumi` runner.

`E2EStack.create(...)` copies the program (Pulumi.yaml, __main__.py, stacks/,
components/, values/, requirements.txt, policy/) into a tmp dir, symlinks the repo's
`.venv` (Pulumi.yaml: `virtualenv: .venv`), writes the stack file, inits the stack on a
local file backend with a random passphrase and sets the secrets with
`pulumi config set --secret`. Every pulumi call has a timeout; all output is kept
(`captured()`) and `leaks()` scans it and the state files for secret plaintext.

`kubespray_config()` / `existing_config()` build the `k8s-platform:` config for the
two cluster modes against the e2e fixtures.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import engine
from .util import REPO_ROOT, TOOLS_BIN

PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt")
PROJECT_DIRS = ("stacks", "components", "values", "policy")
NS = "k8s-platform"  # the config namespace
PROJECT = "k8s-platform"  # Pulumi.yaml name: the backend keeps stacks under .pulumi/stacks/<project>/
STORAGE_CLASS = "e2e-static"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(out.get(k), Mapping) and isinstance(v, Mapping) else copy.deepcopy(v)
        )
    return out


# ---------------------------------------------------------------------- configs
def _platform(charts_url: str, chart_versions: Mapping[str, list[str]]) -> dict[str, Any]:
    """Add-ons, a Helm release, MySQL and one app, all pointed at the loopback chart repo."""
    v = {name: versions[0] for name, versions in chart_versions.items()}
    return {
        "schedulableControlPlane": True,
        "addons": {
            "ingress": {"enabled": True, "repo": charts_url, "version": v["traefik"]},
            "storage": {"enabled": True, "repo": charts_url, "version": v["localpv-provisioner"],
                        "defaultClass": "local-path"},
            "metricsServer": {"enabled": True, "repo": charts_url, "version": v["metrics-server"]},
            "loadBalancer": {"enabled": False, "repo": charts_url, "version": v["metallb"]},
        },
        "helm": {
            # the upstream URL stays in the release; the mirror (the loopback repo) serves it
            "repoMirrors": {"https://grafana.github.io/helm-charts": charts_url},
            "releases": [
                {
                    "name": "grafana",
                    "namespace": "monitoring",
                    "repo": "https://grafana.github.io/helm-charts",
                    "chart": "grafana",
                    "version": v["grafana"],
                    "valuesFiles": ["values/grafana.yaml", "values/grafana-dev.yaml"],
                    "values": {"persistence": {"storageClassName": STORAGE_CLASS}},
                    "timeout": 300,
                }
            ],
        },
        "mysql": {
            "enabled": True,
            "namespace": "data",
            "replicas": 2,
            "image": "mysql:8.4.6",
            "storage": {"size": "1Gi", "storageClass": STORAGE_CLASS},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        },
        "apps": [
            {
                "name": "my-nginx",
                "namespace": "web",
                "image": "nginxinc/nginx-unprivileged:1.27.5",
                "replicas": 2,
                "port": 8080,
                "service": {"type": "ClusterIP", "port": 80},
                "ingress": {"host": "nginx.e2e.test", "path": "/"},
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                "revisionHistoryLimit": 10,
            }
        ],
    }  # fmt: skip


def kubespray_config(
    *,
    control_host_port: int,
    host_key: str,
    kubespray_source: str,
    workdir: str,
    kubespray_commit: str = "",
    api_server: str,
    charts_url: str,
    chart_versions: Mapping[str, list[str]],
    user: str = "root",
    kubespray_version: str = "v2.31.0",
    kube_version: str = "1.34.4",
    nodes: list[dict[str, Any]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`k8s-platform:` config (namespace stripped) for kubespray mode against the fixtures.

    Node addresses 127.0.1.x are never contacted: kubespray's boilerplate and gates need no
    connection, and the stand-in plays run on the control host (`connection: local`).
    `kubespray_commit` is the commit of the tag in the repository under test (its commit
    differs from upstream's, which the program would otherwise check for).
    `apiServerEndpoint` is the local API server, so the exported kubeconfig reaches it.
    """
    cfg: dict[str, Any] = {
        "environment": "dev",
        "cluster": {
            "mode": "kubespray",
            "kubespray": {"version": kubespray_version, "source": kubespray_source, "workdir": workdir,
                          **({"commit": kubespray_commit} if kubespray_commit else {})},
            "controlHost": {"host": "127.0.0.1", "port": control_host_port, "user": user, "hostKey": host_key},
            "ansibleUser": user,
            "nodes": nodes
            or [
                {"name": "node1", "address": "127.0.1.1", "roles": ["control-plane", "etcd", "worker"]},
                {"name": "node2", "address": "127.0.1.2", "roles": ["worker"]},
                {"name": "node3", "address": "127.0.1.3", "roles": ["worker"]},
            ],
            "kubeVersion": kube_version,
            "networkPlugin": "calico",
            "containerManager": "containerd",
            "apiServerEndpoint": api_server,
            "resetOnDestroy": False,
        },
        **_platform(charts_url, chart_versions),
    }
    return deep_merge(cfg, overrides or {})


def existing_config(
    *,
    kubeconfig: str,
    charts_url: str,
    chart_versions: Mapping[str, list[str]],
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`k8s-platform:` config for mode: existing (the local cluster's admin kubeconfig by path)."""
    cfg: dict[str, Any] = {
        "environment": "dev",
        "cluster": {
            "mode": "existing",
            "kubeconfig": kubeconfig,
            "nodes": [{"name": "node1", "roles": ["control-plane"]}],
        },
        **_platform(charts_url, chart_versions),
    }
    return deep_merge(cfg, overrides or {})


# ---------------------------------------------------------------------- stack
@dataclass
class PulumiResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"pulumi {' '.join(self.args)} -> exit {self.returncode} in {self.seconds:.1f}s\n{self.output[-6000:]}"


class PulumiError(AssertionError):
    pass


@dataclass(frozen=True)
class Backend:
    """A shared state backend (e.g. S3): its URL, the environment that reaches it (credentials),
    and a way to read back every object it holds (for the secret scan)."""

    url: str
    env: Mapping[str, str]
    objects: Callable[[], list[tuple[str, bytes]]]


@dataclass
class E2EStack:
    dir: Path  # the project copy; Pulumi.<name>.yaml lives here
    state_dir: Path
    name: str = "e2e"
    passphrase: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    secret_values: dict[str, str] = field(default_factory=dict)
    history: list[PulumiResult] = field(default_factory=list)
    # called when a `pulumi` call fails or times out: what the cluster says (not-ready pods, nodes)
    diagnose: Callable[[], str] | None = None
    # None: a file backend in state_dir
    backend: Backend | None = None

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        base: Path,
        config: Mapping[str, Any],
        secret_config: Mapping[str, str] | None = None,
        name: str = "e2e",
        timeout: float = 120,
        backend: Backend | None = None,
    ) -> E2EStack:
        project = base / "project"
        copy_project(project)
        stack = cls(dir=project, state_dir=base / "state", name=name, backend=backend)
        stack.state_dir.mkdir(parents=True, exist_ok=True)
        stack.write_config(config)
        stack.run("stack", "init", name, "--secrets-provider", "passphrase", timeout=timeout)
        for key, value in (secret_config or {}).items():
            stack.set_secret(key, value)
        return stack

    @property
    def stack_file(self) -> Path:
        return self.dir / f"Pulumi.{self.name}.yaml"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **engine.pulumi_env(),
            "PULUMI_BACKEND_URL": self.backend.url if self.backend else f"file://{self.state_dir}",
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
            "NO_COLOR": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # The venv "activated" as well as named in Pulumi.yaml: the engine's python language
            # host (sdk v3.68.0, see scripts/engine.sh) does not receive `virtualenv: .venv` from
            # CLI 3.274 and runs the first python3 on PATH ("No module named 'pulumi'" without this).
            "VIRTUAL_ENV": str(self.dir / ".venv"),
        }
        if self.backend is not None:
            env.update(self.backend.env)
        # the Kubernetes provider writes a kubeconfig file per Helm operation and leaves it:
        # keep those with the stack, not in the machine's /tmp
        tmp = self.dir / "tmp"
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
        # helm and kubectl of `make setup` (stacks recover runs helm), as on a user's machine
        env["PATH"] = f"{self.dir / '.venv' / 'bin'}:{env['PATH']}:{TOOLS_BIN}"
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        env.pop("PULUMI_ACCESS_TOKEN", None)
        return env

    def write_config(self, config: Mapping[str, Any]) -> None:
        """(Re)write the plain config of the stack file, keeping secrets provider and secure: values."""
        doc: dict[str, Any] = {}
        if self.stack_file.exists():
            doc = yaml.safe_load(self.stack_file.read_text()) or {}
        old = doc.get("config") or {}
        new = {k: v for k, v in old.items() if isinstance(v, Mapping) and set(v) == {"secure"}}
        for key, value in config.items():
            new[f"{NS}:{key}"] = copy.deepcopy(value)
        doc["config"] = new
        self.stack_file.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

    def update_config(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Deep-merge `overrides` (namespace-less keys) into the stack's plain config."""
        cur = self.config()
        merged = deep_merge(cur, overrides)
        self.write_config(merged)
        return merged

    def config(self) -> dict[str, Any]:
        doc = yaml.safe_load(self.stack_file.read_text()) or {}
        return {
            k.split(":", 1)[1]: v
            for k, v in (doc.get("config") or {}).items()
            if not (isinstance(v, Mapping) and set(v) == {"secure"})
        }

    def set_secret(self, key: str, value: str) -> None:
        self.secret_values[key] = value
        # the value goes through stdin: never on a command line, never in the captured output
        self.run("config", "set", "--secret", f"{NS}:{key}", timeout=60, input=value)

    # ---------------------------------------------------------------- running
    def _argv(self, *args: str) -> list[str]:
        argv = [str(engine.bin_dir() / "pulumi"), *args, "--non-interactive", "--color", "never"]
        if args[:2] != ("stack", "init") and "--stack" not in args:
            argv += ["--stack", self.name]
        return argv

    def spawn(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start `pulumi <args>` in the background, in its own session (its process group is
        the CLI and every plugin it starts), output to `log`. The caller waits or kills it."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            return subprocess.Popen(
                self._argv(*args), cwd=self.dir, env=self.env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def run(self, *args: str, timeout: float = 600, check: bool = True, input: str | None = None) -> PulumiResult:
        argv = self._argv(*args)
        t0 = time.monotonic()
        try:
            cp = subprocess.run(
                argv, cwd=self.dir, env=self.env(), input=input, capture_output=True, text=True, timeout=timeout
            )
            res = PulumiResult(list(args), cp.returncode, cp.stdout, cp.stderr, time.monotonic() - t0)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            res = PulumiResult(list(args), -9, out, err + f"\n[timed out after {timeout}s]", time.monotonic() - t0)
        self.history.append(res)
        if check and res.returncode != 0:
            report = self.diagnose() if self.diagnose and args and args[0] in ("up", "destroy", "preview") else ""
            raise PulumiError(f"{res}\n--- the cluster at that moment:\n{report}" if report else str(res))
        return res

    def stacks(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """`python -m stacks <args>` on this stack's project."""
        argv = [sys.executable, "-m", "stacks", "--root", str(self.dir), *args]
        return subprocess.run(argv, cwd=self.dir, env=self.env(), capture_output=True, text=True, timeout=timeout)

    def up(self, timeout: float = 900, check: bool = True, *extra: str) -> PulumiResult:
        return self.run("up", "--yes", "--skip-preview", *extra, timeout=timeout, check=check)

    def preview(self, timeout: float = 600, check: bool = True, *extra: str) -> PulumiResult:
        return self.run("preview", "--diff", *extra, timeout=timeout, check=check)

    def refresh(self, timeout: float = 600, check: bool = True) -> PulumiResult:
        return self.run("refresh", "--yes", "--skip-preview", timeout=timeout, check=check)

    def destroy(self, timeout: float = 900, check: bool = True) -> PulumiResult:
        return self.run("destroy", "--yes", "--skip-preview", timeout=timeout, check=check)

    def outputs(self, show_secrets: bool = False) -> dict[str, Any]:
        args = ["stack", "output", "--json"] + (["--show-secrets"] if show_secrets else [])
        return dict(json.loads(self.run(*args, timeout=60).stdout or "{}"))

    # ---------------------------------------------------------------- secret scanning
    def state_files(self) -> list[Path]:
        return sorted(p for p in self.state_dir.rglob("*") if p.is_file())

    def state_objects(self) -> list[tuple[str, bytes]]:
        """(name, content) of everything the backend holds for this project: files or objects."""
        if self.backend is not None:
            return self.backend.objects()
        return [(str(p), p.read_bytes()) for p in self.state_files()]

    def state_text(self) -> str:
        parts = []
        for name, data in self.state_objects():
            if name.endswith(".gz"):
                data = gzip.decompress(data)
            parts.append(f"=== {name}\n{data.decode(errors='replace')}")
        return "\n".join(parts)

    def has_resources(self) -> bool:
        """Whether the stack's current checkpoint (`.pulumi/stacks/<project>/<stack>.json[.gz]`,
        not its backups or history) holds resources: a teardown then destroys them."""
        for name, data in self.state_objects():
            if name.endswith((f"/stacks/{PROJECT}/{self.name}.json", f"/stacks/{PROJECT}/{self.name}.json.gz")):
                text = gzip.decompress(data) if name.endswith(".gz") else data
                latest = (json.loads(text).get("checkpoint") or {}).get("latest") or {}
                if latest.get("resources"):
                    return True
        return False

    def captured(self) -> str:
        """Everything every pulumi call printed, plus the state files' text."""
        return "\n".join(f"=== pulumi {' '.join(r.args)}\n{r.output}" for r in self.history) + "\n" + self.state_text()

    def leaks(self, extra: Mapping[str, str] | None = None) -> list[str]:
        """Names of secrets whose plaintext (or a long line of it) appears in output or state."""
        text = self.captured()
        found = []
        for key, value in {**self.secret_values, **(extra or {})}.items():
            probes = [value] + [ln for ln in value.splitlines() if len(ln.strip()) >= 16]
            if any(p and p in text for p in probes):
                found.append(key)
        return found

    def remove(self) -> None:
        shutil.rmtree(self.dir.parent, ignore_errors=True)


def copy_project(dest: Path, root: Path = REPO_ROOT) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    for f in PROJECT_FILES:
        shutil.copy2(root / f, dest / f)
    for d in PROJECT_DIRS:
        if (root / d).is_dir():
            shutil.copytree(root / d, dest / d, ignore=ignore, dirs_exist_ok=True)
    venv = dest / ".venv"
    if not venv.exists():
        venv.symlink_to(root / ".venv")
    return dest

"""The Helm releases of a stack, rendered by a real `helm template` (for `make plan`).

Each release the program declares (add-ons and `helm.releases`, with the values it
sends) is templated from its repository at its pinned version into
`<out>/<namespace>.<release>.helm.yaml`. A chart that cannot be fetched (no network,
no helm, a private repository) is reported with the reason, never silently skipped.
Secret values are `<redacted>` in the values handed to helm, as in every rendered file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stacks.render import ReleaseToTemplate

TOOLS_BIN = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "k8s-platform" / "tools" / "bin"


@dataclass(frozen=True)
class ChartResult:
    release: ReleaseToTemplate
    path: Path | None  # written file, or None
    problem: str = ""  # why it was not rendered


def find_helm() -> str | None:
    return shutil.which("helm") or (str(TOOLS_BIN / "helm") if (TOOLS_BIN / "helm").is_file() else None)


def template_releases(
    releases: list[ReleaseToTemplate], out_dir: Path, helm: str | None = None, timeout: float = 120
) -> list[ChartResult]:
    helm = helm or find_helm()
    results = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="k8sp-helm-") as tmp:
        # helm's own cache/config/data: nothing from the user's helm setup leaks in, nothing is left behind
        env = {**os.environ, **{f"HELM_{k}_HOME": str(Path(tmp) / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}
        for rel in releases:
            if helm is None:
                results.append(ChartResult(rel, None, "no helm binary (install helm, or `make setup` for the tools cache)"))
                continue
            values = Path(tmp) / f"{rel.namespace}.{rel.name}.values.json"
            values.write_text(json.dumps(rel.values))
            argv = [helm, "template", rel.name, rel.chart, "--namespace", rel.namespace, "--values", str(values),
                    "--include-crds"]  # fmt: skip
            if rel.repo.startswith("oci://"):
                argv[3] = f"{rel.repo.rstrip('/')}/{rel.chart}"
            elif rel.repo:
                argv += ["--repo", rel.repo]
            if rel.version:
                argv += ["--version", rel.version]
            try:
                cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                results.append(ChartResult(rel, None, f"helm template timed out after {timeout:.0f}s"))
                continue
            if cp.returncode != 0:
                why = (cp.stderr.strip().splitlines() or ["helm template failed"])[-1]
                results.append(ChartResult(rel, None, why[:300]))
                continue
            path = out_dir / f"{rel.namespace}.{rel.name}.helm.yaml"
            path.write_text(f"# helm template of {rel.chart} {rel.version} from {rel.repo}\n{cp.stdout}")
            results.append(ChartResult(rel, path))
    return results

"""The Helm releases of a stack, rendered by a real `helm template` (for `make plan`).

Each release the program declares (add-ons and `helm.releases`, with the values it
sends) is templated from its repository at its pinned version into
`<out>/<namespace>.<release>.helm.yaml`. A chart that cannot be rendered (no network,
no helm, a private repository, a version the repository lacks, a template error) is
reported with the reason, never silently skipped; `unreachable` tells the failures of
the network (the repository could not be contacted at all) from the rest, so an offline
`make plan` can accept those and still fail on a chart that was fetched and does not render.
Secret values are `<redacted>` in the values handed to helm, as in every rendered file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stacks.render import ReleaseToTemplate

TOOLS_BIN = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "k8s-platform" / "tools" / "bin"


# How Go's net/http (helm's client, for chart repositories and OCI registries alike) says that
# no answer came: no DNS, no route, nothing listening, a proxy that cannot be reached, a
# timeout. An answer (404, 401, a bad index, a missing version, a TLS certificate that does
# not verify) is not in here: the repository was reached and the chart still did not render.
_UNREACHABLE = re.compile(
    r"dial tcp|no such host|server misbehaving|temporary failure in name resolution|connection refused"
    r"|network is unreachable|no route to host|connection reset by peer|i/o timeout|TLS handshake timeout"
    r"|Client\.Timeout exceeded|context deadline exceeded|proxyconnect tcp",
    re.IGNORECASE,
)


def is_unreachable(helm_error: str) -> bool:
    """Whether helm's error says the chart's repository could not be contacted at all."""
    return bool(_UNREACHABLE.search(helm_error))


def helm_error(stderr: str) -> str:
    """helm's error as one line: from its last `Error:` line on (helm v4 spreads a template
    error over several lines, after any warnings), without the `--debug` hint."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    kept = [line for line in lines[starts[-1] if starts else -1 :] if not line.startswith("Use --debug flag")]
    return " ".join(kept) or "helm template failed"


@dataclass(frozen=True)
class ChartResult:
    release: ReleaseToTemplate
    path: Path | None  # written file, or None
    problem: str = ""  # why it was not rendered
    unreachable: bool = False  # not rendered because the repository could not be contacted


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
            # an OCI chart comes as its full reference (oci://host/path/chart) and no repository
            if rel.repo:
                argv += ["--repo", rel.repo]
            if rel.version:
                argv += ["--version", rel.version]
            try:
                cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                # templating itself takes a second: a run this long is waiting on the network
                results.append(ChartResult(rel, None, f"helm template timed out after {timeout:.0f}s", True))
                continue
            if cp.returncode != 0:
                why = helm_error(cp.stderr)
                results.append(ChartResult(rel, None, why[:500], is_unreachable(why)))
                continue
            path = out_dir / f"{rel.namespace}.{rel.name}.helm.yaml"
            path.write_text(f"# helm template of {rel.chart} {rel.version}{' from ' + rel.repo if rel.repo else ''}\n{cp.stdout}")
            results.append(ChartResult(rel, path))
    return results

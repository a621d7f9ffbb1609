#!/usr/bin/env python3
"""Read what the program needs to know about a kubespray release from its source tree.

    scripts/kubespray_facts.py SOURCE [--out components/kubespray_releases/<tag>.json]
    scripts/kubespray_facts.py SOURCE --lock components/kubespray_releases/<tag>.requirements.txt

SOURCE is a kubespray checkout or a `git archive` tarball of one (`.tar.gz`); the
release tag is read from the tree's `galaxy.yml`, the commit from the archive's pax
header (or `git rev-parse HEAD` of a checkout). It writes one JSON document:

- `commit`: the commit the tag points at (the prepare step checks it after the fetch)
- `kubeVersions`: the Kubernetes versions this kubespray installs, newest first, i.e. the
  versions present in kubelet, kubeadm and kubectl checksums for amd64 (what its
  `validate_inventory` role asserts); `defaultKubeVersion` is the first one
- `ansibleCore`: the ansible-core range its `playbooks/ansible_version.yml` accepts
- `variables`: every variable name kubespray defines or reads with a default — role
  defaults and vars, the sample inventory's group_vars (commented-out examples too) and
  `<name> | default(` in roles and playbooks — so `extraVars` typos can be caught

tests/conformance/test_kubespray_release.py regenerates the file from the vendored
kubespray tree and fails when the committed one differs.

`--lock` (needs PyPI) resolves the release's `requirements.txt` with pip and writes a
hash-pinned lock of it, every dependency included, with the sha256 of every file PyPI
has for each pinned version (any platform and Python): the prepare step installs it with
`pip install --require-hashes`, so the control host installs exactly what was locked.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

_TOP_LEVEL_KEY = re.compile(r"^#?\s?([a-z_][a-z0-9_]*):(\s|$)")
_DEFAULTED = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\|\s*d(?:efault)?\(")


def _tree(source: Path, work: Path) -> tuple[Path, str]:
    """(root of the kubespray tree, commit)."""
    if source.is_file():
        with tarfile.open(source) as tar:
            commit = tar.pax_headers.get("comment", "")
            tar.extractall(work, filter="data")
        roots = [p for p in work.iterdir() if p.is_dir()]
        if len(roots) != 1:
            raise SystemExit(f"{source}: expected one top-level directory, found {[p.name for p in roots]}")
        return roots[0], commit
    out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return source, out.stdout.strip() if out.returncode == 0 else ""


def _versions_with_all_checksums(root: Path) -> list[str]:
    sums = yaml.safe_load((root / "roles/kubespray_defaults/vars/main/checksums.yml").read_text())
    sets = [set(sums[f"{tool}_checksums"]["amd64"]) for tool in ("kubelet", "kubeadm", "kubectl")]
    ordered = list(sums["kubelet_checksums"]["amd64"])  # kubespray lists newest first
    return [str(v) for v in ordered if all(str(v) in {str(x) for x in s} for s in sets)]


def _ansible_range(root: Path) -> dict[str, str]:
    plays = yaml.safe_load((root / "playbooks/ansible_version.yml").read_text())
    v = plays[0]["vars"]
    return {"min": str(v["minimal_ansible_version"]), "maxExclusive": str(v["maximal_ansible_version"])}


def _variables(root: Path) -> list[str]:
    names: set[str] = set()
    var_files = [
        *root.glob("roles/**/defaults/**/*.yml"),
        *root.glob("roles/**/vars/**/*.yml"),
        *root.glob("inventory/sample/group_vars/**/*.yml"),
    ]
    for f in var_files:
        for line in f.read_text(errors="replace").splitlines():
            m = _TOP_LEVEL_KEY.match(line)
            if m:
                names.add(m.group(1))
    for f in [*root.glob("roles/**/*.yml"), *root.glob("roles/**/*.j2"), *root.glob("playbooks/*.yml")]:
        names.update(_DEFAULTED.findall(f.read_text(errors="replace")))
    return sorted(names)


def facts(source: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root, commit = _tree(source, Path(tmp))
        galaxy = yaml.safe_load((root / "galaxy.yml").read_text())
        versions = _versions_with_all_checksums(root)
        return {
            "kubespray": f"v{galaxy['version']}",
            "commit": commit,
            "defaultKubeVersion": versions[0],
            "kubeVersions": versions,
            "ansibleCore": _ansible_range(root),
            "variables": _variables(root),
        }


def lock(source: Path) -> str:
    """The hash-pinned lock of the release's requirements.txt (resolved by pip, hashes from PyPI)."""
    import urllib.request

    with tempfile.TemporaryDirectory() as tmp:
        root, _ = _tree(source, Path(tmp))
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), "-r", str(root / "requirements.txt")], check=True)  # fmt: skip
        resolved = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in json.loads(report.read_text())["install"])
        requirements = (root / "requirements.txt").read_text()
    lines = [
        "# Hash-pinned lock of kubespray's requirements.txt (every dependency, every file PyPI has",
        "# for each version), written by scripts/kubespray_facts.py --lock; installed on the control",
        "# host with pip install --require-hashes. Kubespray's own pins:",
        *[f"#   {line}" for line in requirements.splitlines() if line and not line.startswith("#")],
    ]
    for name, version in resolved:
        req = urllib.request.Request(f"https://pypi.org/simple/{name.lower()}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=60) as resp:
            files = json.load(resp)["files"]
        norm = re.sub(r"[-_.]+", "_", name).lower()
        hashes = sorted({f["hashes"]["sha256"] for f in files
                         if re.sub(r"[-_.]+", "_", f["filename"]).lower().startswith(f"{norm}_{version.replace('.', '_')}_")
                         or f["filename"].lower().startswith(f"{name.lower()}-{version}.")})  # fmt: skip
        if not hashes:
            raise SystemExit(f"no files on PyPI for {name}=={version}")
        cont = " \\"
        lines.append(f"{name}=={version}{cont}")
        lines += [f"    --hash=sha256:{h}{cont if i < len(hashes) - 1 else ''}" for i, h in enumerate(hashes)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="kubespray checkout or git-archive tarball")
    ap.add_argument("--out", type=Path, help="write here instead of stdout")
    ap.add_argument("--lock", type=Path, help="write the hash-pinned requirements lock here (needs PyPI)")
    args = ap.parse_args(argv)
    if args.lock:
        args.lock.write_text(lock(args.source))
        print(f"wrote {args.lock}", file=sys.stderr)
        return 0
    text = json.dumps(facts(args.source), indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

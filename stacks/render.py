"""Renders a stack to Kubernetes manifests, offline: no Pulumi CLI, no cluster.

`render_stack` runs the program's composition function under Pulumi's mock
runtime, records the inputs of every `kubernetes:*` resource it registers and
writes each object as `<namespace>.<Kind>.<name>.yaml`:

* cluster-scoped objects use `_cluster` as namespace (`_` cannot start a
  namespace name, so it never collides with a real one);
* Patch resources (e.g. `NodePatch`) are written as their target kind with a
  `.patch` suffix: `_cluster.Node.node1.patch.yaml` is the server-side-apply
  body sent to node1, not a whole Node;
* Helm releases are not objects of the program (their contents are the chart's):
  `helm_releases` lists them as declared, and `stacks.charts` renders each with a
  real `helm template` when the chart is reachable; provider and component
  resources are left out;
* every secret value (a `Secret`'s `data`/`stringData`, and anything built from a
  Pulumi secret anywhere else) is written as `<redacted>`.

Output is deterministic: sorted keys, integral numbers as ints, files sorted.
"""

from __future__ import annotations

import dataclasses
import gc
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml

from stacks import program
from stacks.config import PlatformSpec
from stacks.program import REDACTED


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when PyYAML has it (the pure-Python one was a fifth of render
    time); multi-line strings (scripts, configs) as literal blocks so they read and
    diff like the files they came from."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _represent_str)

CLUSTER_SCOPE = "_cluster"
# Written into the output directory so a re-render may clean files it wrote before
# without ever deleting files it did not write.
MARKER = ".k8s-platform-render"

EXCLUDED_TYPES = frozenset({"kubernetes:helm.sh/v3:Release"})
# Pulumi wraps secret values in this envelope when they cross the RPC boundary.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"

Builder = Callable[[PlatformSpec, Any, Path], Any]


@dataclasses.dataclass
class _Captured:
    type: str
    name: str
    inputs: dict[str, Any]


def mock_outputs(
    typ: str, name: str, inputs: Mapping[str, Any], previous_outputs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What the engine would return for a resource, as far as the program reads it back.

    Inputs are echoed; a Helm release gets a `status` (revision 1), a remote command empty
    stdout/stderr, and a StackReference to this stack `previous_outputs` (none: a stack never
    deployed). Shared by `render` and the unit tests' mocks.
    """
    outputs = dict(inputs)
    if typ == "kubernetes:helm.sh/v3:Release":
        outputs["status"] = {
            "name": inputs.get("name", name),
            "namespace": inputs.get("namespace", "default"),
            "chart": inputs.get("chart", ""),
            "version": inputs.get("version", ""),
            "revision": 1,
            "status": "deployed",
        }
    elif typ == "pulumi:pulumi:StackReference":
        outputs["outputs"] = dict(previous_outputs or {})
        outputs["secretOutputNames"] = []
    elif typ == "command:remote:Command":
        outputs.setdefault("stdout", "")
        outputs.setdefault("stderr", "")
    return outputs


class _RenderMocks(pulumi.runtime.Mocks):
    """Echoes inputs back as outputs (plus what later code reads from a few types) and records them."""

    def __init__(self) -> None:
        self.captured: list[_Captured] = []
        self.releases: list[_Captured] = []  # Helm releases: their objects come from `helm template`

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = mock_outputs(args.typ, args.name, args.inputs)
        if args.custom and args.typ.startswith("kubernetes:") and args.typ not in EXCLUDED_TYPES:
            self.captured.append(_Captured(args.typ, args.name, dict(args.inputs)))
        elif args.custom and args.typ == "kubernetes:helm.sh/v3:Release":
            self.releases.append(_Captured(args.typ, args.name, dict(args.inputs)))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(_SECRET_SIG) == _SECRET_VALUE


def _redact_all(value: Any) -> Any:
    # Keep the shape (map keys are not secret, and reviewers need them); hide the leaves.
    if isinstance(value, Mapping):
        return {str(k): _redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_all(v) for v in value]
    return REDACTED


def _clean(value: Any) -> Any:
    """Plain YAML-able data: secrets redacted, integral floats (RPC numbers) back to ints."""
    if _is_secret(value):
        return _redact_all(value.get("value"))
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_manifest(typ: str, inputs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(manifest, is_patch) for one recorded `kubernetes:*` resource."""
    # Token form: kubernetes:<group>/<version>:<Kind> ("core" is the empty group).
    _, module, type_kind = typ.split(":", 2)
    group, _, version = module.rpartition("/")
    api_version = inputs.get("apiVersion") or (version if group in ("", "core") else f"{group}/{version}")
    kind = inputs.get("kind") or type_kind
    is_patch = type_kind.endswith("Patch") and type_kind == f"{kind}Patch"
    manifest = _clean({k: v for k, v in inputs.items() if not k.startswith("__")})
    manifest["apiVersion"] = api_version
    manifest["kind"] = kind
    if kind == "Secret":
        for key in ("data", "stringData"):
            if isinstance(manifest.get(key), Mapping):
                manifest[key] = {k: REDACTED for k in manifest[key]}
    return manifest, is_patch


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(manifest: Mapping[str, Any], resource_name: str, is_patch: bool) -> str:
    meta = manifest.get("metadata") or {}
    namespace = meta.get("namespace") or CLUSTER_SCOPE
    # Components give every object an explicit name; fall back to the Pulumi name.
    name = meta.get("name") or resource_name
    parts = [namespace, manifest["kind"], name] + (["patch"] if is_patch else [])
    return _SAFE.sub("_", ".".join(str(p) for p in parts)) + ".yaml"


def _default_builder(spec: PlatformSpec, secrets: Any, project_root: Path) -> Any:
    return program.build(spec, secrets, project_root)


def _placeholder_secrets(spec: PlatformSpec) -> Any:
    """`ProgramSecrets` with a secret placeholder for every secret, set or not yet set.

    Rendering is planning: it works before the stack's secrets exist, and no rendered
    object carries a secret's value (they are redacted). The kubeconfig is a placeholder
    too: rendering must not read the operator's ~/.kube/config (or need one).
    """
    values: dict[str, Any] = {
        f.name: pulumi.Output.secret(REDACTED) for f in dataclasses.fields(program.ProgramSecrets) if f.name != "extra"
    }
    values["extra"] = None  # the named secrets' values: placeholders per key (program._named_secret_values)
    return program.ProgramSecrets(**values)


def _prepare_out_dir(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / MARKER
    if marker.exists():
        for old in out_dir.glob("*.yaml"):
            old.unlink()
    elif any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: not empty and not a previous render output; choose an empty directory")
    marker.write_text("written by `python -m stacks render`; *.yaml here is replaced on each render\n")


def render_objects(
    spec: PlatformSpec,
    project_root: Path,
    *,
    builder: Builder | None = None,
    secrets: Any = None,
) -> dict[str, dict[str, Any]]:
    """file name -> manifest, without touching the filesystem."""
    return _render(spec, project_root, builder=builder, secrets=secrets)[0]


@dataclasses.dataclass(frozen=True)
class ReleaseToTemplate:
    """A Helm release as the program declares it: what `helm template` needs."""

    name: str
    namespace: str
    chart: str
    version: str
    repo: str
    values: dict[str, Any]


def helm_releases(spec: PlatformSpec, project_root: Path) -> list[ReleaseToTemplate]:
    """Every Helm release the stack installs (add-ons and `helm.releases`), values as sent."""
    out = []
    for res in _render(spec, project_root)[1]:
        i = res.inputs
        out.append(ReleaseToTemplate(
            name=str(i.get("name") or res.name), namespace=str(i.get("namespace") or "default"),
            chart=str(i.get("chart", "")), version=str(i.get("version", "")),
            repo=str((i.get("repositoryOpts") or {}).get("repo", "")), values=_clean(i.get("values") or {}),
        ))  # fmt: skip
    return sorted(out, key=lambda r: (r.namespace, r.name))


def _render(
    spec: PlatformSpec, project_root: Path, *, builder: Builder | None = None, secrets: Any = None
) -> tuple[dict[str, dict[str, Any]], list[_Captured]]:
    mocks = _RenderMocks()
    pulumi.runtime.set_mocks(mocks, project="k8s-platform", stack=spec.environment, preview=False)
    build = builder or _default_builder
    if secrets is None and builder is None:
        secrets = _placeholder_secrets(spec)
    pulumi.runtime.test(lambda: build(spec, secrets, project_root))()

    objects: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    for res in mocks.captured:
        manifest, is_patch = to_manifest(res.type, res.inputs)
        fname = file_name(manifest, res.name, is_patch)
        if fname in objects:
            raise ValueError(
                f"{fname}: declared twice, by resources {owners[fname]!r} and {res.name!r}; "
                "two resources would fight over one object"
            )
        objects[fname] = manifest
        owners[fname] = res.name
    return dict(sorted(objects.items())), mocks.releases


def render_stack(
    spec: PlatformSpec,
    project_root: Path,
    out_dir: Path,
    *,
    builder: Builder | None = None,
    secrets: Any = None,
) -> list[Path]:
    """Write one YAML file per Kubernetes object the stack declares; returns the paths, sorted.

    `builder(spec, secrets, project_root)` defaults to `stacks.program.build`; tests
    inject their own. Without `secrets`, the default builder gets placeholders for
    the secrets the stack has set, so no secret value is ever needed to render.
    """
    # Python's cyclic GC rescans every live object on each full collection, which made rendering
    # superlinear in the number of apps (make bench: 25 -> 33 ms/app from 100 to 500 apps, flat
    # with the collector paused). The run is short and its garbage is freed when it ends.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        objects = render_objects(spec, Path(project_root), builder=builder, secrets=secrets)
    finally:
        if was_enabled:
            gc.enable()
    out = Path(out_dir)
    _prepare_out_dir(out)
    paths = []
    for fname, manifest in objects.items():
        path = out / fname
        # No line folding: the C and Python emitters fold differently, and folded
        # strings make diffs between renders noisy.
        text = yaml.dump(
            manifest, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1 << 20
        )
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths

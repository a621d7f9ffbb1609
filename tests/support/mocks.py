"""Pulumi mocks and config factories for the tests (unit and conformance).

`PlatformMocks` returns realistic values per resource type; tests/unit/conftest.py's
`mocks` fixture installs a fresh one per test, each test builds resources inside
`run_program` (or a `@pulumi.runtime.test` function) and inspects `mocks.resources`.
`kubespray_config()` / `existing_config()` are valid stack configs to start from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.webapp_config import AppSpec
from stacks.render import mock_outputs

FAKE_ADMIN_CONF = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0EtREFUQQ==
    server: https://127.0.0.1:6443
  name: cluster.local
contexts:
- context:
    cluster: cluster.local
    user: kubernetes-admin
  name: kubernetes-admin@cluster.local
current-context: kubernetes-admin@cluster.local
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
"""


@dataclass
class Registered:
    """One resource the program registered, as the engine saw it."""

    type: str
    name: str
    inputs: dict[str, Any]
    provider: str
    parent: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


class PlatformMocks(pulumi.runtime.Mocks):
    """Returns realistic outputs per resource type and records every registration."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []
        # what a StackReference to this stack reads back (its previous outputs)
        self.stack_outputs: dict[str, Any] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = mock_outputs(args.typ, args.name, args.inputs, self.stack_outputs)
        rid = f"{args.name}-id"
        if args.typ == "command:remote:Command":
            create = str(args.inputs.get("create", ""))
            outputs["stdout"] = FAKE_ADMIN_CONF if "admin.conf" in create and "cat " in create else "ok"
        elif args.typ.startswith("kubernetes:"):
            meta = dict(outputs.get("metadata") or {})
            meta.setdefault("name", args.name)
            outputs["metadata"] = meta
            ns = meta.get("namespace")
            rid = f"{ns}/{meta['name']}" if ns else str(meta["name"])
        self.resources.append(
            Registered(
                type=args.typ,
                name=args.name,
                inputs=dict(args.inputs),
                provider=args.provider or "",
                parent=None,
            )
        )
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    # helpers for assertions
    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        assert found, f"no resource named {name!r}; have {[r.name for r in self.resources]}"
        return found[0]


def resolve(output: pulumi.Output[Any]) -> Any:
    """Wait for an Output under mocks and return its plain value (None if unknown)."""
    fut: asyncio.Future[Any] = asyncio.get_event_loop().create_future()
    output.apply(lambda v: fut.set_result(v) if not fut.done() else None)
    return asyncio.get_event_loop().run_until_complete(fut)


def run_program(fn: Callable[[], Any]) -> Any:
    """Run `fn` as a Pulumi program under the installed mocks and wait for all registrations."""
    return pulumi.runtime.test(fn)()


class OptsRecorder:
    """Records the ResourceOptions every child of a component was created with.

    Pass `opts=ResourceOptions(transformations=[recorder.transformation])` to a
    component: transformations are inherited by children, and run in the SDK (so
    also under mocks), which lets tests see `parent` and `depends_on` that the mock
    monitor does not report.
    """

    def __init__(self) -> None:
        self.opts: dict[str, pulumi.ResourceOptions] = {}
        self.types: dict[str, str] = {}

    def transformation(self, args: pulumi.ResourceTransformationArgs) -> None:
        self.opts[args.name] = args.opts
        self.types[args.name] = args.type_
        return None

    def depends_on(self, name: str) -> list[pulumi.Resource]:
        assert name in self.opts, f"no child named {name!r}; have {sorted(self.opts)}"
        deps = self.opts[name].depends_on
        if deps is None:
            return []
        return list(deps) if isinstance(deps, list | tuple) else [deps]  # type: ignore[list-item]


# --------------------------------------------------------------------------- configs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Real ed25519 public keys (their private halves were thrown away): host keys are decoded when
# a stack is read, so a made-up 'AAAA…' no longer passes.
EXAMPLE_HOST_KEYS = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfmpNpVMWSbUd9euLnf3kJPO63PmpQ3CMl89QDgQPG3",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDl2k8pOW4ZKxeXzpO6P3Iu55EvUMNUbQBqgQoGVvhSS",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICK/XzHpKKSGzmaG7w+lTeQDXbA+8r8uxALY2PYtLZUG",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDC0c0BeXUk8MWUXoywxlbRdgnwh2RT1suu48nqp6yio",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0nwNtz8i/aIkMDE0Lv7qxF+HpvbC3GNV2dbcSwECJ3",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJmLJISWNEnmwnQgjJWAxaGBsx5ydazZpximq2jSzNyM",
)


def kubespray_config(environment: str = "staging") -> dict[str, Any]:
    """A valid kubespray-mode config (namespace stripped, secrets as markers): the notes' layout."""
    from stacks.config import SECRET

    return {
        "environment": environment,
        "cluster": {
            "mode": "kubespray",
            "kubespray": {"version": "v2.31.0", "source": "https://github.com/kubernetes-sigs/kubespray.git",
                          "workdir": "~/kubespray"},
            "controlHost": {"host": "10.4.17.165", "port": 22, "user": "tiger",
                            "hostKey": EXAMPLE_HOST_KEYS[0]},
            "ansibleUser": "tiger",
            "nodes": [
                {"name": "node1", "address": "10.4.17.167", "roles": ["control-plane", "etcd", "worker"]},
                {"name": "node2", "address": "10.4.17.168", "roles": ["control-plane", "etcd", "worker"]},
                {"name": "node3", "address": "10.4.17.169", "roles": ["etcd", "worker"]},
            ],
            "kubeVersion": "1.34.4",
            "proxy": {"http": "http://10.4.17.1:3128", "https": "http://10.4.17.1:3128", "noProxy": "10.4.17.0/24"},
            "imageRepos": {"quay": "registry.mirror.example.com/quay"},
        },
        "schedulableControlPlane": True,
        "sshPrivateKey": SECRET,
    }


def existing_config(environment: str = "dev") -> dict[str, Any]:
    return {
        "environment": environment,
        "cluster": {"mode": "existing", "kubeconfig": "~/.kube/config"},
    }


def assert_problem(problems: list[Any], path: str, words: str) -> None:
    """A ConfigError's problems include one at `path` whose message says `words`."""
    matching = [p for p in problems if p.path == path]
    assert matching, f"expected a problem at {path!r}, got: {[str(p) for p in problems]}"
    assert any(words in p.message for p in matching), f"{path}: expected {words!r} in {[p.message for p in matching]}"


def app_spec(**kw: Any) -> AppSpec:
    """An app's args as the config would build them: `api` in `shop` on port 8080, with `kw` over it."""
    base: dict[str, Any] = dict(name="api", namespace="shop", image="nginx:1.27", port=8080)
    base.update(kw)
    return AppSpec(**base)

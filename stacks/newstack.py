"""`python -m stacks new NAME --from STACK`: a new stack file shaped like an existing one.

Keeps the source's structure, comments and choices (versions, add-ons, apps, releases);
drops what belongs to the source's machines and secrets: node addresses, the control
host, its pinned host key, proxies, mirrors, the API endpoint, ingress hosts, every
`secure:` value and the source's passphrase salt. The emptied values are what
`validate` then asks for, one line each; the secrets are listed as the exact
`pulumi config set --secret` commands still to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from stacks import yamledit as ye
from stacks.config import ENVIRONMENTS, NAMESPACE

# (path below k8s-platform:cluster, what to tell the user) of machine-specific values
_CLUSTER_VALUES = (
    (("controlHost", "host"), "the control host's address"),
    (("controlHost", "hostKey"), "its SSH host key (ssh-keyscan -t ed25519 <host>)"),
    (("controlHost", "proxyJump", "host"), "the bastion's address"),
    (("apiServerEndpoint",), "the API endpoint clients use (empty: the first control-plane node)"),
    (("proxy", "http"), "your HTTP proxy"),
    (("proxy", "https"), "your HTTPS proxy"),
    (("proxy", "noProxy"), "what bypasses the proxy"),
    (("imageRepos", "kube"), "your registry.k8s.io mirror"),
    (("imageRepos", "docker"), "your docker.io mirror"),
    (("imageRepos", "quay"), "your quay.io mirror"),
    (("imageRepos", "github"), "your ghcr.io mirror"),
    (("imageRepos", "files"), "your file mirror"),
    (("imageRepos", "gcr"), "(feeds nothing in kubespray v2.31)"),
)


class NewStackError(Exception):
    pass


@dataclass
class NewStack:
    text: str
    secrets: list[str] = field(default_factory=list)  # secret keys to set
    emptied: list[str] = field(default_factory=list)  # key paths the user fills in


def _walk(mapping: Any, path: tuple[str, ...]) -> tuple[Any, str] | None:
    node = mapping
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, CommentedMap) else None
    return (node, path[-1]) if isinstance(node, CommentedMap) and path[-1] in node else None


def _secure_keys(config: CommentedMap) -> Iterator[str]:
    for key, value in config.items():
        if isinstance(value, CommentedMap) and set(value) == {"secure"}:
            yield str(key)


def new_stack(source_text: str, name: str, environment: str | None = None) -> NewStack:
    doc = ye.load(source_text)
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get("config"), CommentedMap):
        raise NewStackError("the source is not a stack file (a mapping with a 'config:' key)")
    for key in ("encryptionsalt", "secretsprovider", "encryptedkey"):
        doc.pop(key, None)  # a new stack gets its own passphrase and salt from `pulumi stack init`
    config: CommentedMap = doc["config"]
    out = NewStack(text="")
    for key in list(_secure_keys(config)):
        del config[key]
        out.secrets.append(key.split(":", 1)[-1])

    env_key = f"{NAMESPACE}:environment"
    env = environment or (name if name in ENVIRONMENTS else str(config.get(env_key, "dev")))
    if env not in ENVIRONMENTS:
        raise NewStackError(f"--environment {env!r} is not one of {', '.join(ENVIRONMENTS)}")
    config[env_key] = env

    cluster = config.get(f"{NAMESPACE}:cluster")
    if isinstance(cluster, CommentedMap):
        for path, what in _CLUSTER_VALUES:
            found = _walk(cluster, path)
            if found and found[0][found[1]] not in ("", None):
                found[0][found[1]] = ""
                found[0].yaml_add_eol_comment(f"set: {what}", found[1])
                out.emptied.append("cluster." + ".".join(path))
        if cluster.get("registryMirrors"):
            cluster["registryMirrors"] = CommentedMap()
            cluster.yaml_add_eol_comment("set: upstream registry -> {url: your mirror}, if any", "registryMirrors")
            out.emptied.append("cluster.registryMirrors")
        nodes = cluster.get("nodes")
        if isinstance(nodes, CommentedSeq):
            for i, node in enumerate(nodes):
                if isinstance(node, CommentedMap):
                    for key in ("address", "ip"):
                        if key in node and node[key] not in ("", None):
                            node[key] = ""
                            out.emptied.append(f"cluster.nodes[{i}].{key}")
    addons = config.get(f"{NAMESPACE}:addons")
    lb = addons.get("loadBalancer") if isinstance(addons, CommentedMap) else None
    if isinstance(lb, CommentedMap) and lb.get("addresses"):
        lb["addresses"] = CommentedSeq()
        lb.yaml_add_eol_comment("set: addresses of your network no machine uses", "addresses")
        out.emptied.append("addons.loadBalancer.addresses")
    helm = config.get(f"{NAMESPACE}:helm")
    if isinstance(helm, CommentedMap) and helm.get("repoMirrors"):
        helm["repoMirrors"] = CommentedMap()
        helm.yaml_add_eol_comment("set: upstream chart repo URL -> your mirror, if any", "repoMirrors")
        out.emptied.append("helm.repoMirrors")
    storage = config.get(f"{NAMESPACE}:storage")
    volumes = storage.get("volumes") if isinstance(storage, CommentedMap) else None
    for i, volume in enumerate(volumes if isinstance(volumes, CommentedSeq) else []):
        nfs = volume.get("nfs") if isinstance(volume, CommentedMap) else None
        if isinstance(nfs, CommentedMap) and nfs.get("server"):
            nfs["server"] = ""
            out.emptied.append(f"storage.volumes[{i}].nfs.server")
    apps = config.get(f"{NAMESPACE}:apps")
    if isinstance(apps, CommentedSeq):
        for i, app in enumerate(apps):
            ingress = app.get("ingress") if isinstance(app, CommentedMap) else None
            if isinstance(ingress, CommentedMap) and ingress.get("host"):
                ingress["host"] = ""
                ingress.yaml_add_eol_comment("set: the host name users reach it at", "host")
                out.emptied.append(f"apps[{i}].ingress.host")
    out.text = ye.dump(doc)
    return out


def secret_commands(name: str, keys: list[str]) -> list[str]:
    hints = {"sshPrivateKey": " < ~/.ssh/id_ed25519", "kubeconfig": " < ~/.kube/config"}
    return [f"pulumi config set --secret {key} --stack {name}{hints.get(key, '')}" for key in keys]

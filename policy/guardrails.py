"""The platform's guardrails as pure functions over Kubernetes objects.

Each rule takes an object in manifest shape (`apiVersion`, `kind`, `metadata`,
`spec`, ...) and returns violation messages; stack rules take every object of a
stack and return `(index, message)` pairs. Nothing here imports Pulumi, so the
same functions check

* rendered manifests (`stacks.render`) in the unit tests, and
* resource inputs in `pulumi preview/up --policy-pack policy` (`policies.py`
  wraps each rule in a pulumi-policy `ResourceValidationPolicy` or
  `StackValidationPolicy`; `manifest_view` maps the type token to the shape).

Objects are only read through the `Mapping`/`Sequence` protocols: during a
preview pulumi-policy hands over proxies that raise on unknown values, and a
rule must not touch fields it does not need. Messages name fields and
containers, never values: resource inputs may hold decrypted secrets.

Tiers: `always` rules are mandatory in every environment; `prod` rules are
mandatory in prod and advisory elsewhere (`enforcement`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ENVIRONMENTS = ("dev", "staging", "prod")
# When the environment cannot be read, the strictest tier applies (fail closed).
FALLBACK_ENVIRONMENT = "prod"
STACK_CONFIG_KEY = "k8s-platform:environment"

NAME_LABEL = "app.kubernetes.io/name"

Tier = Literal["always", "prod"]
Level = Literal["mandatory", "advisory"]

# --------------------------------------------------------------------------- allow-lists

# hostPath volumes are refused except for these objects, each with the host paths
# it may mount and why. Key: (namespace, kind, metadata.name); cluster-scoped
# objects (PersistentVolume) use "" as namespace. Add-ons installed as Helm v3
# releases are opaque to policies (the engine sees one Release resource, not the
# chart's objects); an add-on rendered object by object (helm.sh/v4 Chart, yaml/v2)
# that needs the node's filesystem gets an entry here, reviewed like any code.
HOSTPATH_ALLOWED: dict[tuple[str, str, str], tuple[tuple[str, ...], str]] = {}
# The same for objects the program makes one per node (their names and paths follow the
# config): key (namespace, kind, app.kubernetes.io/name label of an object managed by
# k8s-platform) -> shell-style patterns of the host paths it may mount, and why.
HOSTPATH_ALLOWED_APPS: dict[tuple[str, str, str], tuple[tuple[str, ...], str]] = {
    ("kube-system", "CronJob", "etcd-snapshot"): (
        ("*/etcdctl", "*etcd*", "*/k8s-platform-etcd/scheduled"),
        "cluster.etcdBackup.schedule (components/etcd_backup.py): an etcd snapshot on each etcd member needs "
        "the member's etcdctl and admin certificate (read-only) and writes to its backup directory",
    ),
}

# Containers that need no readiness probe. Key: (kind, app.kubernetes.io/name label,
# container name) -> why.
READINESS_EXEMPT: dict[tuple[str, str, str], str] = {
    ("StatefulSet", "mysql", "replication"): (
        "replication-agent sidecar: serves no port, so it never receives traffic; whether the "
        "member replicates is what the mysql container's readiness probe reports "
        "(probe.sh readiness checks Replica_IO_Running and Replica_SQL_Running)"
    ),
}

# --------------------------------------------------------------------------- object access

# Kind -> path of the pod spec inside the object.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Workloads whose pods serve traffic through Services: readiness applies to them.
LONG_RUNNING_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"})


def _is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _get(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., None when a level is missing or not a mapping."""
    for key in path:
        if not _is_map(obj) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _items(value: Any) -> list[Any]:
    return list(value) if _is_list(value) else []


def kind_of(obj: Mapping[str, Any]) -> str:
    kind = _get(obj, "kind")
    return kind if isinstance(kind, str) else ""


def namespace_of(obj: Mapping[str, Any]) -> str:
    ns = _get(obj, "metadata", "namespace")
    return ns if isinstance(ns, str) else ""


def name_of(obj: Mapping[str, Any]) -> str:
    name = _get(obj, "metadata", "name")
    return name if isinstance(name, str) else ""


def _labels(obj: Any) -> dict[str, str]:
    labels = _get(obj, "metadata", "labels")
    if not _is_map(labels):
        return {}
    return {str(k): v for k, v in labels.items() if isinstance(v, str)}


def _template_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    path = POD_SPEC_PATHS.get(kind_of(obj))
    if path is None:
        return {}
    if kind_of(obj) == "Pod":
        return _labels(obj)
    return _labels(_get(obj, *path[:-1]))


def app_name(obj: Mapping[str, Any]) -> str:
    """The app.kubernetes.io/name label of the object, else of its pod template."""
    return _labels(obj).get(NAME_LABEL) or _template_labels(obj).get(NAME_LABEL, "")


def pod_spec(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(dotted path, pod spec) of a workload, None for other kinds or when absent."""
    path = POD_SPEC_PATHS.get(kind_of(obj))
    if path is None:
        return None
    spec = _get(obj, *path)
    return (".".join(path), spec) if _is_map(spec) else None


@dataclass(frozen=True)
class Container:
    path: str  # e.g. spec.template.spec.initContainers[0]
    name: str
    body: Mapping[str, Any]
    field: str  # containers | initContainers | ephemeralContainers

    @property
    def label(self) -> str:
        return f"{self.path} ({self.name})" if self.name else self.path

    @property
    def is_sidecar(self) -> bool:
        """A native sidecar: an init container that keeps running (restartPolicy: Always)."""
        return self.field == "initContainers" and _get(self.body, "restartPolicy") == "Always"


def containers(obj: Mapping[str, Any], fields: Sequence[str] = ("initContainers", "containers")) -> Iterator[Container]:
    found = pod_spec(obj)
    if found is None:
        return
    prefix, spec = found
    for field in fields:
        for i, body in enumerate(_items(spec.get(field))):
            if _is_map(body):
                name = body.get("name")
                yield Container(f"{prefix}.{field}[{i}]", name if isinstance(name, str) else "", body, field)


# --------------------------------------------------------------------------- resource rules


def check_container_resources(obj: Mapping[str, Any]) -> list[str]:
    """Every container and init container requests cpu and memory and has a memory limit.

    A CPU limit is not required: it throttles a container that is within its
    request on an idle node; the memory limit is what protects the neighbours.
    """
    out = []
    for c in containers(obj):
        resources = c.body.get("resources")
        requests = _get(resources, "requests")
        limits = _get(resources, "limits")
        missing = [f"requests.{r}" for r in ("cpu", "memory") if not _is_map(requests) or r not in requests]
        if not _is_map(limits) or "memory" not in limits:
            missing.append("limits.memory")
        if missing:
            out.append(f"{c.label}: resources missing {', '.join(missing)}")
    return out


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned, or None. Digests count as pinned."""
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    if _DIGEST.search(image):
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag; pin a version (or a digest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses 'latest'; pin a version (or a digest)"
    return None


def check_pinned_images(obj: Mapping[str, Any]) -> list[str]:
    out = []
    for c in containers(obj, ("initContainers", "containers", "ephemeralContainers")):
        problem = image_problem(c.body.get("image"))
        if problem:
            out.append(f"{c.label}: {problem}")
    return out


def check_no_privileged(obj: Mapping[str, Any]) -> list[str]:
    return [
        f"{c.label}: securityContext.privileged is true; a privileged container owns the node"
        for c in containers(obj, ("initContainers", "containers", "ephemeralContainers"))
        if _get(c.body, "securityContext", "privileged") is True
    ]


# Node directories no workload volume may be: the OS, the kubelet's, etcd's and the
# container runtime's state. A local PersistentVolume or hostPath there lets a pod read
# or overwrite the node itself. `stacks.config` refuses them for storage.volumes too.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/run", "/sbin",
    "/sys", "/usr", "/var/lib/kubelet", "/var/lib/etcd", "/var/lib/containerd", "/var/lib/docker",
    "/var/run", "/var/log",
)  # fmt: skip
# too broad to hand to one volume: the directory itself, not what is under it
TOP_DIRS = ("/", "/var", "/var/lib", "/home", "/opt", "/srv", "/mnt", "/tmp", "/media")


def is_system_path(path: str) -> bool:
    """`path` is the root, a top-level directory, or anything under a system directory."""
    norm = "/" + "/".join(p for p in path.split("/") if p and p != ".")
    return norm in TOP_DIRS or any(norm == d or norm.startswith(d + "/") for d in SYSTEM_DIRS)


def check_no_hostpath(
    obj: Mapping[str, Any], allowed: Mapping[tuple[str, str, str], tuple[tuple[str, ...], str]] | None = None
) -> list[str]:
    """No hostPath volume (pods, or PersistentVolumes) unless allow-listed for that path."""
    allowed = HOSTPATH_ALLOWED if allowed is None else allowed
    entry = allowed.get((namespace_of(obj), kind_of(obj), name_of(obj)))
    labels = _get(obj, "metadata", "labels") or {}
    if entry is None and isinstance(labels, Mapping) and labels.get("app.kubernetes.io/managed-by") == "k8s-platform":
        by_app = HOSTPATH_ALLOWED_APPS.get((namespace_of(obj), kind_of(obj), str(labels.get("app.kubernetes.io/name"))))
        if by_app is not None:
            entry = (by_app[0], by_app[1])
    paths: list[tuple[str, Any]] = []
    out = []
    if kind_of(obj) == "PersistentVolume":
        hp = _get(obj, "spec", "hostPath")
        if hp is not None:
            paths.append(("spec.hostPath", _get(hp, "path")))
        local = _get(obj, "spec", "local", "path")
        # a local PV is how node disks are offered on bare metal; a system directory is not a disk
        if isinstance(local, str) and is_system_path(local):
            out.append("spec.local.path: is the node's root, a top-level or a system directory; "
                       "give a local volume its own directory, e.g. /mnt/disks/<name>")  # fmt: skip
    found = pod_spec(obj)
    if found is not None:
        prefix, spec = found
        for i, vol in enumerate(_items(spec.get("volumes"))):
            hp = _get(vol, "hostPath")
            if hp is not None:
                paths.append((f"{prefix}.volumes[{i}] ({_get(vol, 'name') or '?'})", _get(hp, "path")))
    for where, path in paths:
        if entry is not None and isinstance(path, str) and any(path == p or fnmatch.fnmatchcase(path, p) for p in entry[0]):
            continue
        out.append(
            f"{where}: hostPath {path!r} mounts the node's filesystem; use a PVC, or allow-list it "
            "with a reason in policy/guardrails.py HOSTPATH_ALLOWED"
        )
    return out


def is_mysql(obj: Mapping[str, Any]) -> bool:
    return kind_of(obj) == "StatefulSet" and app_name(obj) == "mysql"


_PASSWORD_NAME = re.compile(r"PASSWORD|PASSWD|PWD", re.IGNORECASE)
# Password-bearing arguments; the value is never echoed.
_CMDLINE_PASSWORD = [
    (re.compile(r"(?i)(^|[\s'\"])--?(password|passwd|pass|pwd)(=|\s+)[^\s-]"), "--password=…"),
    (re.compile(r"\bmysql(?:admin|dump|sh|check|import|pump|binlog|slap)?\b[^;&|\n]*?\s-p\S"), "mysql -p…"),
    (re.compile(r"\bMYSQL_PWD="), "MYSQL_PWD=…"),
    (re.compile(r"(?i)\bIDENTIFIED\s+(WITH\s+\S+\s+)?BY\s"), "IDENTIFIED BY …"),
]


def check_mysql_password_sources(obj: Mapping[str, Any]) -> list[str]:
    """MySQL reads passwords only through secretKeyRef: no literal env values, none on command lines."""
    if not is_mysql(obj):
        return []
    out = []
    for c in containers(obj):
        for i, env in enumerate(_items(c.body.get("env"))):
            name = _get(env, "name")
            if not isinstance(name, str) or not _PASSWORD_NAME.search(name):
                continue
            if _get(env, "valueFrom", "secretKeyRef") is not None:
                continue
            source = "a literal value" if _get(env, "value") is not None else "a source other than secretKeyRef"
            out.append(f"{c.label}: env[{i}] {name} takes {source}; read passwords with valueFrom.secretKeyRef")
        argv = [a for key in ("command", "args") for a in _items(c.body.get(key)) if isinstance(a, str)]
        line = " ".join(argv)
        for pattern, shape in _CMDLINE_PASSWORD:
            if pattern.search(line):
                out.append(
                    f"{c.label}: a password is passed on the command line ({shape}), visible in the process "
                    "list; pass it in a client option file or env var from a secretKeyRef"
                )
                break
    return out


def has_claim_templates(obj: Mapping[str, Any]) -> bool:
    return kind_of(obj) == "StatefulSet" and bool(_items(_get(obj, "spec", "volumeClaimTemplates")))


def check_pvc_retention(obj: Mapping[str, Any]) -> list[str]:
    """StatefulSets with volumeClaimTemplates say explicitly that their PVCs outlive them."""
    if not has_claim_templates(obj):
        return []
    policy = _get(obj, "spec", "persistentVolumeClaimRetentionPolicy")
    wrong = [f"{k}={_get(policy, k)!s}" for k in ("whenDeleted", "whenScaled") if _get(policy, k) != "Retain"]
    if wrong:
        return [
            "spec.persistentVolumeClaimRetentionPolicy must be whenDeleted: Retain, whenScaled: Retain "
            f"(explicitly; got {', '.join(wrong)}): deleting or scaling the StatefulSet must not delete data"
        ]
    return []


def check_no_nodeport(obj: Mapping[str, Any]) -> list[str]:
    if kind_of(obj) == "Service" and _get(obj, "spec", "type") == "NodePort":
        return ["spec.type is NodePort: it opens a port on every node; use an Ingress or a LoadBalancer Service"]
    return []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def check_deployment_replicas(obj: Mapping[str, Any]) -> list[str]:
    """An explicit replica count below 2 (a missing one is the HPA's: see check_replicas_with_hpa)."""
    if kind_of(obj) != "Deployment":
        return []
    replicas = _number(_get(obj, "spec", "replicas"))
    if replicas is not None and replicas < 2:
        return [
            f"spec.replicas is {int(replicas)}: a single pod means downtime on every rollout or node drain; use 2 or more"
        ]
    return []


def check_readiness_probes(
    obj: Mapping[str, Any], exempt: Mapping[tuple[str, str, str], str] | None = None
) -> list[str]:
    if kind_of(obj) not in LONG_RUNNING_KINDS:
        return []
    exempt = READINESS_EXEMPT if exempt is None else exempt
    out = []
    for c in containers(obj):
        if c.field == "initContainers" and not c.is_sidecar:
            continue  # run-to-completion init containers cannot have probes
        if (kind_of(obj), app_name(obj), c.name) in exempt:
            continue
        if c.body.get("readinessProbe") is None:
            out.append(f"{c.label}: no readinessProbe; Services would send traffic before it is ready")
    return out


# --------------------------------------------------------------------------- stack rules


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against labels (an empty selector matches everything)."""
    if not _is_map(selector):
        return False
    match_labels = selector.get("matchLabels")
    if _is_map(match_labels):
        for k, v in match_labels.items():
            if labels.get(k) != v:
                return False
    for expr in _items(selector.get("matchExpressions")):
        key, op = _get(expr, "key"), _get(expr, "operator")
        values = [v for v in _items(_get(expr, "values")) if isinstance(v, str)]
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def check_statefulset_pdbs(objects: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """Every StatefulSet with volumeClaimTemplates has a PodDisruptionBudget selecting its pods."""
    pdbs = [o for o in objects if kind_of(o) == "PodDisruptionBudget"]
    out = []
    for i, obj in enumerate(objects):
        if not has_claim_templates(obj):
            continue
        labels = _template_labels(obj)
        ns = namespace_of(obj)
        if not any(namespace_of(p) == ns and selector_matches(_get(p, "spec", "selector"), labels) for p in pdbs):
            out.append(
                (
                    i,
                    f"StatefulSet {ns}/{name_of(obj)} keeps data in PVCs but no PodDisruptionBudget selects its pods; "
                    "a node drain could evict every member at once",
                )
            )
    return out


def check_replicas_with_hpa(objects: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """A Deployment without spec.replicas (1 by default) needs an HPA keeping at least 2."""
    hpa_min: dict[tuple[str, str], float] = {}
    for o in objects:
        if kind_of(o) != "HorizontalPodAutoscaler" or _get(o, "spec", "scaleTargetRef", "kind") != "Deployment":
            continue
        target = _get(o, "spec", "scaleTargetRef", "name")
        if isinstance(target, str):
            hpa_min[(namespace_of(o), target)] = _number(_get(o, "spec", "minReplicas")) or 1.0
    out = []
    for i, obj in enumerate(objects):
        if kind_of(obj) != "Deployment" or _get(obj, "spec", "replicas") is not None:
            continue
        key = (namespace_of(obj), name_of(obj))
        minimum = hpa_min.get(key)
        if minimum is None:
            out.append(
                (
                    i,
                    f"Deployment {key[0]}/{key[1]} sets no spec.replicas (1 by default) and no HPA scales it; use 2 or more",
                )
            )
        elif minimum < 2:
            out.append(
                (i, f"Deployment {key[0]}/{key[1]} is scaled by an HPA with minReplicas {int(minimum)}; use 2 or more")
            )
    return out


# --------------------------------------------------------------------------- the rule set

ResourceCheck = Callable[[Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[Mapping[str, Any]]], list[tuple[int, str]]]


@dataclass(frozen=True)
class Rule:
    name: str  # the policy name, unique in the pack
    description: str
    tier: Tier
    check: ResourceCheck | None = None  # one object
    stack_check: StackCheck | None = None  # every object of the stack
    applies_to_patches: bool = False  # Patch resources are partial: absence proves nothing

    @property
    def is_stack(self) -> bool:
        return self.stack_check is not None


RULES: tuple[Rule, ...] = (
    Rule("container-resources", "Every container and init container requests cpu and memory and limits memory.",
         "always", check=check_container_resources),
    Rule("pinned-images", "Every image is pinned to a tag other than 'latest', or to a digest.",
         "always", check=check_pinned_images, applies_to_patches=True),
    Rule("no-privileged-containers", "No container runs privileged.",
         "always", check=check_no_privileged, applies_to_patches=True),
    Rule("no-hostpath-volumes", "No hostPath volumes, except allow-listed ones with a documented reason; "
         "no local PersistentVolume in a system directory.",
         "always", check=check_no_hostpath, applies_to_patches=True),
    Rule("mysql-passwords-from-secrets", "MySQL reads passwords only through secretKeyRef, never literals or command lines.",
         "always", check=check_mysql_password_sources, applies_to_patches=True),
    Rule("statefulset-pvc-retention", "StatefulSets with volumeClaimTemplates retain their PVCs on delete and scale-down.",
         "always", check=check_pvc_retention),
    Rule("statefulset-pdb", "StatefulSets with volumeClaimTemplates have a PodDisruptionBudget selecting them.",
         "always", stack_check=check_statefulset_pdbs),
    Rule("no-nodeport-services", "No NodePort Services (mandatory in prod, advisory elsewhere).",
         "prod", check=check_no_nodeport, applies_to_patches=True),
    Rule("deployment-replicas", "Deployments run at least 2 replicas (mandatory in prod, advisory elsewhere).",
         "prod", check=check_deployment_replicas, applies_to_patches=True),
    Rule("deployment-replicas-hpa", "Deployments without spec.replicas have an HPA with minReplicas >= 2 "
         "(mandatory in prod, advisory elsewhere).", "prod", stack_check=check_replicas_with_hpa),
    Rule("readiness-probes", "Every long-running container has a readiness probe (mandatory in prod, advisory elsewhere).",
         "prod", check=check_readiness_probes),
)  # fmt: skip

RULES_BY_NAME = {r.name: r for r in RULES}


def enforcement(rule: Rule, environment: str) -> Level:
    """`always` rules are mandatory; `prod` rules are mandatory in prod (and unknown environments)."""
    if rule.tier == "always":
        return "mandatory"
    return "mandatory" if resolve_environment(environment)[0] == "prod" else "advisory"


def resolve_environment(value: Any) -> tuple[str, str | None]:
    """(environment, note): the stack's `k8s-platform:environment`, or prod with a note why."""
    if isinstance(value, str) and value.startswith('"'):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, str) and value in ENVIRONMENTS:
        return value, None
    if value is None or value == "":
        return FALLBACK_ENVIRONMENT, f"{STACK_CONFIG_KEY} is not set; applying the {FALLBACK_ENVIRONMENT} tier"
    return FALLBACK_ENVIRONMENT, f"{STACK_CONFIG_KEY} is not one of {', '.join(ENVIRONMENTS)}; applying the prod tier"


# --------------------------------------------------------------------------- type tokens


class _ManifestView(Mapping[str, Any]):
    """Resource inputs seen as a manifest: apiVersion/kind from the type token when absent."""

    def __init__(self, props: Mapping[str, Any], api_version: str, kind: str) -> None:
        self._props = props
        self._extra = {"apiVersion": api_version, "kind": kind}

    def __getitem__(self, key: str) -> Any:
        if key in self._extra:  # the type token is authoritative (and never unknown)
            return self._extra[key]
        return self._props[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from (k for k in self._props if k not in self._extra)

    def __len__(self) -> int:
        return len(self._extra) + sum(1 for k in self._props if k not in self._extra)


@dataclass(frozen=True)
class TypeInfo:
    api_version: str
    kind: str
    is_patch: bool


def parse_type(token: str) -> TypeInfo | None:
    """`kubernetes:apps/v1:Deployment` -> (apps/v1, Deployment); None for non-objects.

    Helm v3 Releases, yaml/kustomize/helm v4 components, providers and `*List`
    types are not single Kubernetes objects; `*Patch` types are partial ones.
    """
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes":
        return None
    module, type_kind = parts[1], parts[2]
    group, _, version = module.rpartition("/")
    if not group or not version or group in ("helm.sh", "yaml", "kustomize"):
        return None
    if type_kind.endswith("List"):
        return None
    is_patch = type_kind.endswith("Patch")
    kind = type_kind[: -len("Patch")] if is_patch else type_kind
    api_version = version if group == "core" else f"{group}/{version}"
    return TypeInfo(api_version, kind, is_patch)


def manifest_view(token: str, props: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool] | None:
    """(manifest-shaped view of the inputs, is_patch), None when the token is not a Kubernetes object."""
    info = parse_type(token)
    if info is None:
        return None
    return _ManifestView(props, info.api_version, info.kind), info.is_patch


def resource_violations(rule: Rule, obj: Mapping[str, Any], is_patch: bool = False) -> list[str]:
    if rule.check is None or (is_patch and not rule.applies_to_patches):
        return []
    return rule.check(obj)

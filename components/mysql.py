"""MySQL 8.4 LTS as one primary and N-1 read replicas on Kubernetes.

Creates, in the spec's namespace, all named `<spec.name>[-suffix]`:

- Secret `<name>-credentials`: the root and replication passwords (Pulumi secrets);
- ConfigMap `<name>-users` and Secret `<name>-app-users`: the applications' own
  accounts (`mysql.users`) and their passwords, which the primary's `replication`
  sidecar applies (`app-users.sh`) without restarting a pod;
- ConfigMap `<name>-config`: mysql.cnf, primary.cnf, replica.cnf and the
  scripts in `components/mysql_scripts/`;
- Services: headless `<name>` (stable member DNS, publishes not-ready pods so a
  seeding replica can reach its donor), `<name>-primary` (ordinal 0 only, for
  writes) and `<name>-read` (every ready member);
- StatefulSet `<name>` (OrderedReady, PVC per member, retained on delete and
  scale-down) with init containers `config` (role file by ordinal, server_id =
  100 + ordinal) and `seed` (the primary's first initialization, atomic, with
  every password escaped; CLONE of a running member into a new replica's empty
  volume), the `mysql` container (the image's entrypoint, which finds the data
  directory ready and only starts mysqld) and the `replication` sidecar that
  attaches replicas to the primary with GTID auto-positioning;
- PodDisruptionBudget `<name>` (maxUnavailable 1) and NetworkPolicy `<name>`
  (TCP 3306 from `allow_from` peers and from the members themselves).

Replication topology is fixed: ordinal 0 is the primary, there is no automatic
failover. Passwords reach containers only through `secretKeyRef`; scripts pass
them to MySQL on stdin or in an option file written at runtime (mode 0600).

Kubernetes refuses any change to a StatefulSet's volumeClaimTemplates, so a
change of `mysql.storage` on a deployed cluster is rejected before the update
by `check_storage_change` (see `MySQLClusterArgs.previous_storage`). A change of
`mysql.image` is an upgrade the StatefulSet rolls from the highest ordinal down
(the replicas first, the primary last), each member upgrading its data directory
in place; `check_version_change` refuses, before anything is sent, a downgrade to
an older series, a skipped LTS series, and a change of `mysql.replicas` in the
same update as a change of series (see `MySQLClusterArgs.previous_server`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pulumi
import pulumi_kubernetes as k8s

from components.mysql_config import (
    MYSQL_LTS_SERIES,
    MYSQL_MAX_MEMBERS,
    MYSQL_REPLICATION_USER,
    MySQLSpec,
    MySQLStorage,
    MySQLUserSpec,
    mysql_version,
    series_name,
    version_name,
)
from components.namespaces import RETAINED_FIELD_MANAGER
from components.vocabulary import HOSTNAME_LABEL, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL

MYSQL_PORT = 3306
MYSQL_UID = 999  # the mysql user of the official image
REPLICATION_USER = MYSQL_REPLICATION_USER
APP_USERS_MOUNT = "/etc/mysql/app-users"
SCRIPTS_MOUNT = "/opt/k8s-platform/mysql"
CLIENT_CNF_DIR = "/etc/mysql/client"
CONF_DIR = "/etc/mysql/conf.d"
DATA_MOUNT = "/var/lib/mysql"
DATA_VOLUME = "data"
ROOT_PASSWORD_KEY = "root-password"
REPLICATION_PASSWORD_KEY = "replication-password"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"

SCRIPTS_DIR = Path(__file__).parent / "mysql_scripts"
SCRIPT_FILES = (
    "lib.sh",
    "init-config.sh",
    "init-data.sh",
    "replication-agent.sh",
    "app-users.sh",
    "probe.sh",
)
CNF_FILES = ("mysql.cnf", "primary.cnf", "replica.cnf")


def load_scripts() -> dict[str, str]:
    """The ConfigMap's data: every cnf and script under components/mysql_scripts/."""
    return {f: (SCRIPTS_DIR / f).read_text(encoding="utf-8") for f in (*CNF_FILES, *SCRIPT_FILES)}


def users_file(users: tuple[MySQLUserSpec, ...]) -> str:
    """The account list app-users.sh reads: "<user> <access> <db>[,<db>...]" per line."""
    return "".join(f"{u.name} {u.access} {','.join(u.databases)}\n" for u in users)


# --- storage guard ----------------------------------------------------------------


def storage_output(spec: MySQLSpec) -> dict[str, str]:
    """What the program exports (as the `storage` member of the mysql output) so the
    next run can compare; see `storage_from_output`."""
    return {
        "name": spec.name,
        "namespace": spec.namespace,
        "size": spec.storage.size,
        "storageClass": spec.storage.storage_class,
    }


def storage_from_output(value: Any, spec: MySQLSpec) -> MySQLStorage | None:
    """The storage the StatefulSet of `spec` was deployed with, read back from a
    previous `storage_output` value; None when there is nothing to compare
    (first deployment, MySQL previously disabled, or another name/namespace,
    i.e. a different StatefulSet)."""
    if not isinstance(value, Mapping):
        return None
    if value.get("name") != spec.name or value.get("namespace") != spec.namespace:
        return None
    size = value.get("size")
    if not isinstance(size, str) or not size:
        return None
    storage_class = value.get("storageClass") or ""
    return MySQLStorage(size=size, storage_class=str(storage_class))


def check_storage_change(previous: MySQLStorage | None, current: MySQLStorage) -> list[str]:
    """Problems, one line each in the `<key.path>: <what and what instead>` form,
    if `current` would change the volumeClaimTemplates of a StatefulSet deployed
    with `previous`; empty when nothing changes or nothing was deployed."""
    if previous is None:
        return []
    problems: list[str] = []
    why = "Kubernetes forbids changing a StatefulSet's volumeClaimTemplates, so the update would fail half-way"
    if previous.size != current.size:
        problems.append(
            f"mysql.storage.size: cannot change from {previous.size} to {current.size} on the deployed "
            f"cluster: {why}. Keep {previous.size}; to grow the disks, expand each PVC "
            f"(kubectl -n <namespace> patch pvc data-<name>-<ordinal> -p "
            f'\'{{"spec":{{"resources":{{"requests":{{"storage":"{current.size}"}}}}}}}}\') '
            "if the storage class allows volume expansion, or deploy a new cluster under another "
            "mysql.name and migrate"
        )
    if previous.storage_class != current.storage_class:
        shown_prev = previous.storage_class or "(cluster default)"
        shown_cur = current.storage_class or "(cluster default)"
        problems.append(
            f"mysql.storage.storageClass: cannot change from {shown_prev} to {shown_cur} on the "
            f"deployed cluster: {why}. Keep {previous.storage_class!r}, or deploy a new cluster under "
            "another mysql.name and migrate the data"
        )
    return problems


# --- version guard ----------------------------------------------------------------


@dataclass(frozen=True)
class DeployedServer:
    """What the StatefulSet of a previous run ran: its image and its number of members."""

    image: str
    members: int


def server_output(spec: MySQLSpec) -> dict[str, Any]:
    """What the program exports (as the `server` member of the mysql output) so the next
    run can compare; see `server_from_output`."""
    return {"name": spec.name, "namespace": spec.namespace, "image": spec.image, "members": spec.replicas}


def server_from_output(value: Any, spec: MySQLSpec) -> DeployedServer | None:
    """The image and members the StatefulSet of `spec` was deployed with, read back from a
    previous `server_output` value; None when there is nothing to compare (first deployment,
    a stack deployed before the record existed, or another StatefulSet)."""
    if not isinstance(value, Mapping):
        return None
    if value.get("name") != spec.name or value.get("namespace") != spec.namespace:
        return None
    image, members = value.get("image"), value.get("members")
    if not isinstance(image, str) or not image or isinstance(members, bool) or not isinstance(members, (int, float)):
        return None
    # numbers read back through a StackReference are floats (JSON)
    return DeployedServer(image=image, members=int(members))


def check_version_change(previous: DeployedServer | None, image: str, replicas: int) -> list[str]:
    """Problems, one line each in the `<key.path>: <what and what instead>` form, if going
    from the deployed `previous` to `image` with `replicas` members is an upgrade MySQL or
    the StatefulSet cannot make; empty when it can, or when nothing was deployed.

    Within a series any patch release goes either way (MySQL upgrades and downgrades a data
    directory in place within an LTS series). Across series only upward, to the next LTS
    series: MySQL upgrades one LTS series at a time and never downgrades a data directory to
    an older series. While the series changes the member count must not: the StatefulSet
    would seed the new members with the new image while their donors still run the old one,
    and CLONE refuses a donor of another series."""
    if previous is None or previous.image == image:
        return []
    old, new = mysql_version(previous.image), mysql_version(image)
    if old is None or new is None or old[:2] == new[:2]:
        return []  # a version the tags do not name: `validate` warns about the image
    was, to = version_name(old), version_name(new)
    if new[:2] < old[:2]:
        return [
            f"mysql.image: cannot go from the deployed {previous.image} ({was}) down to {image} ({to}): MySQL "
            "does not downgrade a data directory to an older series in place. Set it back to "
            f"{previous.image} (or a newer {series_name(old)} release); to return to {series_name(new)}, restore "
            "a logical dump (mysqldump, MySQL Shell) into a new cluster under another mysql.name"
        ]
    skipped = [series for series in MYSQL_LTS_SERIES if old[:2] < series < new[:2]]
    if skipped:
        return [
            f"mysql.image: cannot go from the deployed {previous.image} ({was}) to {image} ({to}) in one step: "
            f"MySQL upgrades one LTS series at a time. Go to {series_name(skipped[0])} first, let every member "
            "run it, then continue"
        ]
    if replicas != previous.members:
        return [
            f"mysql.replicas: cannot change from {previous.members} to {replicas} while mysql.image moves from "
            f"{previous.image} to {image}: the new members would be seeded by CLONE while their donors still run "
            f"{series_name(old)}, and CLONE refuses a donor of another series. Upgrade with replicas "
            f"{previous.members} first, then change replicas in a later update"
        ]
    return []


# --- component ----------------------------------------------------------------------


@dataclass(frozen=True)
class MySQLClusterArgs:
    spec: MySQLSpec
    root_password: pulumi.Input[str]
    replication_password: pulumi.Input[str]
    # mysql.users: each account's password, by user name (Pulumi secrets)
    user_passwords: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    protect: bool = False
    required_anti_affinity: bool = False
    namespace_resource: k8s.core.v1.Namespace | None = None
    # The `storage` member of this stack's previous mysql output (e.g. read through
    # a StackReference to the stack itself). When given, a storage change is
    # rejected before the StatefulSet is registered.
    previous_storage: pulumi.Input[Any] | None = None
    # The `server` member of the same output (`server_output`). When given, a version change
    # MySQL cannot make is rejected before the StatefulSet is registered.
    previous_server: pulumi.Input[Any] | None = None
    cluster_domain: str = "cluster.local"


def _labels(spec: MySQLSpec) -> dict[str, str]:
    return {
        NAME_LABEL: "mysql",
        INSTANCE_LABEL: spec.name,
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def _selector(spec: MySQLSpec) -> dict[str, str]:
    return {NAME_LABEL: "mysql", INSTANCE_LABEL: spec.name}


def _meta(spec: MySQLSpec, name: str, component: str) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name,
        namespace=spec.namespace,
        labels={**_labels(spec), "app.kubernetes.io/component": component},
    )


def _container_security() -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=MYSQL_UID,
        run_as_group=MYSQL_UID,
        allow_privilege_escalation=False,
        privileged=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def _resources(requests: Mapping[str, str], limits: Mapping[str, str]) -> k8s.core.v1.ResourceRequirementsArgs:
    return k8s.core.v1.ResourceRequirementsArgs(
        requests=dict(requests) or None,
        limits=dict(limits) or None,
    )


class _Guarded(NamedTuple):
    """The StatefulSet's fields the guards protect: plain values, or Outputs of them."""

    storage_size: pulumi.Input[str]
    storage_class: Any  # str, None (the cluster's default class) or an Output of either
    image: pulumi.Input[str]
    replicas: pulumi.Input[int]


class MySQLCluster(pulumi.ComponentResource):
    """One primary (ordinal 0) and `spec.replicas - 1` GTID replicas seeded by CLONE."""

    primary_host: pulumi.Output[str]
    read_host: pulumi.Output[str]
    members: pulumi.Output[int]
    storage: pulumi.Output[dict[str, str]]
    server: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: MySQLClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("k8s-platform:mysql:MySQLCluster", name, None, opts)
        spec = args.spec
        after_ns = [args.namespace_resource] if args.namespace_resource is not None else []
        child = pulumi.ResourceOptions(parent=self, depends_on=after_ns)
        secret_name = f"{spec.name}-credentials"
        config_name = f"{spec.name}-config"
        service_domain = f"{spec.name}.{spec.namespace}.svc.{args.cluster_domain}"

        self._credentials(name, args, secret_name, child)
        self._accounts(name, args, child)
        config_hash = self._configuration(name, spec, config_name, child)
        self._services(name, spec, child)
        guarded = self._guarded_fields(args)
        self._statefulset(name, args, child, guarded, (secret_name, config_name, service_domain, config_hash))
        self._disruption_budget(name, spec, child)
        self._network_policy(name, spec, child)
        self._outputs(args)

    def _credentials(self, name: str, args: MySQLClusterArgs, secret_name: str, child: pulumi.ResourceOptions) -> None:
        """Secret `<name>-credentials`: the root and replication passwords."""
        spec = args.spec
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=_meta(spec, secret_name, "credentials"),
            type="Opaque",
            string_data={
                ROOT_PASSWORD_KEY: pulumi.Output.secret(args.root_password),
                REPLICATION_PASSWORD_KEY: pulumi.Output.secret(args.replication_password),
            },
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            ),
        )

    def _accounts(self, name: str, args: MySQLClusterArgs, child: pulumi.ResourceOptions) -> None:
        """ConfigMap `<name>-users` and Secret `<name>-app-users`: the apps' accounts."""
        spec = args.spec
        # The applications' accounts: a list and a Secret the primary's sidecar reads from a
        # projected volume, so adding a user or rotating a password restarts no pod.
        missing = sorted({u.name for u in spec.users} - set(args.user_passwords))
        if missing:
            raise ValueError(f"mysql.users without a password: {', '.join(missing)}")
        self.users_config_map = k8s.core.v1.ConfigMap(
            f"{name}-users",
            metadata=_meta(spec, f"{spec.name}-users", "users"),
            data={"users": users_file(spec.users)},
            opts=child,
        )
        self.users_secret = k8s.core.v1.Secret(
            f"{name}-app-users",
            metadata=_meta(spec, f"{spec.name}-app-users", "users"),
            type="Opaque",
            # None, not {}, without users: the API server stores no empty stringData, and an empty
            # map would show as a change on every preview
            string_data={u.name: pulumi.Output.secret(args.user_passwords[u.name]) for u in spec.users} or None,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            ),
        )

    def _configuration(self, name: str, spec: MySQLSpec, config_name: str, child: pulumi.ResourceOptions) -> str:
        """ConfigMap `<name>-config` (the cnf files and scripts); returns the hash the pods carry."""
        config_data = load_scripts()
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=_meta(spec, config_name, "config"),
            data=config_data,
            opts=child,
        )
        # Pods restart when the configuration or scripts change (the ConfigMap keeps
        # its name, so nothing else would tell the StatefulSet).
        config_hash = hashlib.sha256(json.dumps(config_data, sort_keys=True).encode()).hexdigest()
        return config_hash

    def _services(self, name: str, spec: MySQLSpec, child: pulumi.ResourceOptions) -> None:
        """The headless Service (member DNS), `<name>-primary` (writes) and `<name>-read`."""
        port = k8s.core.v1.ServicePortArgs(name="mysql", port=MYSQL_PORT, target_port="mysql", protocol="TCP")
        self.headless_service = k8s.core.v1.Service(
            f"{name}-headless",
            metadata=_meta(spec, spec.name, "database"),
            spec=k8s.core.v1.ServiceSpecArgs(
                cluster_ip="None",
                publish_not_ready_addresses=True,
                selector=_selector(spec),
                ports=[port],
            ),
            opts=child,
        )
        self.primary_service = k8s.core.v1.Service(
            f"{name}-primary",
            metadata=_meta(spec, f"{spec.name}-primary", "primary"),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector={**_selector(spec), POD_NAME_LABEL: f"{spec.name}-0"},
                ports=[port],
            ),
            opts=child,
        )
        self.read_service = k8s.core.v1.Service(
            f"{name}-read",
            metadata=_meta(spec, f"{spec.name}-read", "read"),
            spec=k8s.core.v1.ServiceSpecArgs(type="ClusterIP", selector=_selector(spec), ports=[port]),
            opts=child,
        )

    def _guarded_fields(self, args: MySQLClusterArgs) -> _Guarded:
        """The StatefulSet's fields the storage and version guards protect."""
        spec = args.spec
        # The StatefulSet's fields the guards protect: plain values, or Outputs that resolve to them
        # once the previous deployment's records are read and found compatible.
        storage_size: pulumi.Input[str] = spec.storage.size
        storage_class: Any = spec.storage.storage_class or None  # str, None (cluster default) or Output of either
        image: pulumi.Input[str] = spec.image
        replicas: pulumi.Input[int] = spec.replicas
        if args.previous_storage is not None or args.previous_server is not None:
            # nothing in the records is secret; read through a StackReference they would inherit the
            # secrecy of the stack's other outputs and make the StatefulSet's spec secret
            previous = pulumi.Output.unsecret(pulumi.Output.all(args.previous_storage, args.previous_server))
            checked = previous.apply(lambda records: self._guard(spec, *records))
            storage_size = checked.apply(lambda sp: sp.storage.size)
            storage_class = checked.apply(lambda sp: sp.storage.storage_class or None)
            image = checked.apply(lambda sp: sp.image)
            replicas = checked.apply(lambda sp: sp.replicas)
        return _Guarded(storage_size, storage_class, image, replicas)

    def _statefulset(
        self,
        name: str,
        args: MySQLClusterArgs,
        child: pulumi.ResourceOptions,
        guarded: _Guarded,
        names: tuple[str, str, str, str],
    ) -> None:
        """StatefulSet `<name>`: OrderedReady, a PVC per member, retained on delete and scale-down."""
        spec = args.spec
        secret_name, config_name, service_domain, config_hash = names
        sts_meta = _meta(spec, spec.name, "database")
        # retain_on_delete leaves the StatefulSet behind on destroy; a later `pulumi up` adopts it
        # by server-side apply. A fixed field manager makes that an update of our own fields
        # instead of a conflict with the previous (randomly named) Pulumi manager.
        sts_meta.annotations = {"pulumi.com/patchFieldManager": RETAINED_FIELD_MANAGER}
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=sts_meta,
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=spec.name,
                replicas=guarded.replicas,
                pod_management_policy="OrderedReady",
                update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
                persistent_volume_claim_retention_policy=(
                    k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                        when_deleted="Retain", when_scaled="Retain"
                    )
                ),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=_selector(spec)),
                template=self._pod_template(spec, args, secret_name, config_name, service_domain, config_hash, guarded.image),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name=DATA_VOLUME, labels=_labels(spec)),
                        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                            access_modes=["ReadWriteOnce"],
                            storage_class_name=guarded.storage_class,
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": guarded.storage_size}),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    protect=args.protect,
                    # `pulumi destroy` (or dropping MySQL from the stack) leaves the
                    # StatefulSet, its pods and PVCs in the cluster.
                    retain_on_delete=True,
                    depends_on=[
                        self.secret,
                        self.config_map,
                        self.users_config_map,
                        self.users_secret,
                        self.headless_service,
                    ],
                    # The first rollout initializes the primary and clones every replica.
                    custom_timeouts=pulumi.CustomTimeouts(create="30m", update="30m"),
                ),
            ),
        )

    def _disruption_budget(self, name: str, spec: MySQLSpec, child: pulumi.ResourceOptions) -> None:
        """PodDisruptionBudget `<name>`: one member down at a time."""
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=_meta(spec, spec.name, "database"),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=_selector(spec)),
            ),
            opts=child,
        )

    def _network_policy(self, name: str, spec: MySQLSpec, child: pulumi.ResourceOptions) -> None:
        """NetworkPolicy `<name>`: port 3306 from the `allow_from` peers and the members."""
        peers = [
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": peer.namespace}
                ),
                # No labels: every pod of that namespace.
                pod_selector=(
                    k8s.meta.v1.LabelSelectorArgs(match_labels=dict(peer.pod_labels)) if peer.pod_labels else None
                ),
            )
            for peer in spec.allow_from
        ]
        # Replication and clone traffic between members (same namespace).
        peers.append(
            k8s.networking.v1.NetworkPolicyPeerArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=_selector(spec))
            )
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=_meta(spec, spec.name, "database"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=_selector(spec)),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=peers,
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=MYSQL_PORT)],
                    )
                ],
            ),
            opts=child,
        )

    def _outputs(self, args: MySQLClusterArgs) -> None:
        spec = args.spec
        svc_suffix = f".svc.{args.cluster_domain}"
        self.primary_host = pulumi.Output.concat(
            self.primary_service.metadata.name, ".", self.primary_service.metadata.namespace, svc_suffix
        )
        self.read_host = pulumi.Output.concat(
            self.read_service.metadata.name, ".", self.read_service.metadata.namespace, svc_suffix
        )
        self.members = pulumi.Output.from_input(spec.replicas)
        self.port = pulumi.Output.from_input(MYSQL_PORT)
        self.secret_name = self.secret.metadata.name
        self.storage = pulumi.Output.from_input(storage_output(spec))
        self.server = pulumi.Output.from_input(server_output(spec))
        self.register_outputs(
            {
                "primary_host": self.primary_host,
                "read_host": self.read_host,
                "members": self.members,
                "port": self.port,
                "secret_name": self.secret_name,
                "storage": self.storage,
                "server": self.server,
            }
        )

    @staticmethod
    def _guard(spec: MySQLSpec, previous_storage: Any, previous_server: Any) -> MySQLSpec:
        """`spec` when it can replace what the previous run deployed; otherwise the program stops
        with every problem (the preview fails, a PR check too, and `up` sends no StatefulSet)."""
        problems = [
            *check_storage_change(storage_from_output(previous_storage, spec), spec.storage),
            *check_version_change(server_from_output(previous_server, spec), spec.image, spec.replicas),
        ]
        if problems:
            # an exception, not a log call: an error logged by the program leaves `pulumi up`
            # succeeding (exit 0) with the change half-applied or recorded as deployed
            raise pulumi.RunError(
                "\n".join([*problems, f"{len(problems)} MySQL change(s) refused; the StatefulSet was not changed"])
            )
        return spec

    @staticmethod
    def _pod_template(
        spec: MySQLSpec,
        args: MySQLClusterArgs,
        secret_name: str,
        config_name: str,
        service_domain: str,
        config_hash: str,
        image: pulumi.Input[str],
    ) -> k8s.core.v1.PodTemplateSpecArgs:
        init_containers, containers = _containers(spec, _pod_env(spec, secret_name, service_domain), image)
        return k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels={**_labels(spec), "app.kubernetes.io/component": "database"},
                annotations={
                    "k8s-platform/config-sha256": config_hash,
                    "kubectl.kubernetes.io/default-container": "mysql",
                },
            ),
            spec=k8s.core.v1.PodSpecArgs(
                automount_service_account_token=False,
                enable_service_links=False,
                termination_grace_period_seconds=120,
                security_context=k8s.core.v1.PodSecurityContextArgs(
                    run_as_non_root=True,
                    run_as_user=MYSQL_UID,
                    run_as_group=MYSQL_UID,
                    fs_group=MYSQL_UID,
                    fs_group_change_policy="OnRootMismatch",
                    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                ),
                affinity=k8s.core.v1.AffinityArgs(pod_anti_affinity=_anti_affinity(spec, args.required_anti_affinity)),
                init_containers=init_containers,
                containers=containers,
                volumes=_pod_volumes(spec, config_name),
            ),
        )


def _pod_env(spec: MySQLSpec, secret_name: str, service_domain: str) -> tuple[list[Any], Any, Any]:
    """The env every container gets, and the two password variables (secretKeyRef) some add."""

    def secret_env(var: str, key: str) -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(
            name=var,
            value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret_name, key=key)
            ),
        )

    base_env = [
        k8s.core.v1.EnvVarArgs(
            name="POD_NAME",
            value_from=k8s.core.v1.EnvVarSourceArgs(
                field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="metadata.name")
            ),
        ),
        k8s.core.v1.EnvVarArgs(name="MYSQL_CLUSTER_NAME", value=spec.name),
        k8s.core.v1.EnvVarArgs(name="MYSQL_SERVICE_DOMAIN", value=service_domain),
        k8s.core.v1.EnvVarArgs(name="MYSQL_REPLICATION_USER", value=REPLICATION_USER),
        k8s.core.v1.EnvVarArgs(name="MYSQL_MAX_MEMBERS", value=str(MYSQL_MAX_MEMBERS)),
    ]
    root_pw = secret_env("MYSQL_ROOT_PASSWORD", ROOT_PASSWORD_KEY)
    repl_pw = secret_env("MYSQL_REPLICATION_PASSWORD", REPLICATION_PASSWORD_KEY)
    return base_env, root_pw, repl_pw


def _containers(
    spec: MySQLSpec, env: tuple[list[Any], Any, Any], image: pulumi.Input[str]
) -> tuple[list[k8s.core.v1.ContainerArgs], list[k8s.core.v1.ContainerArgs]]:
    """The init containers `config` and `seed`, then `mysql` and the `replication` sidecar."""
    base_env, root_pw, repl_pw = env

    def mount(volume: str, path: str, read_only: bool = False) -> k8s.core.v1.VolumeMountArgs:
        return k8s.core.v1.VolumeMountArgs(name=volume, mount_path=path, read_only=read_only)

    scripts = mount("scripts", SCRIPTS_MOUNT, read_only=True)
    data = mount(DATA_VOLUME, DATA_MOUNT)
    conf = mount("conf", CONF_DIR)
    conf_ro = mount("conf", CONF_DIR, read_only=True)
    client = mount("client", CLIENT_CNF_DIR)
    client_ro = mount("client", CLIENT_CNF_DIR, read_only=True)
    main_resources = _resources(spec.resources.requests, spec.resources.limits)

    def exec_probe(kind: str, period: int, failures: int, timeout: int = 5) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=[f"{SCRIPTS_MOUNT}/probe.sh", kind]),
            period_seconds=period,
            timeout_seconds=timeout,
            failure_threshold=failures,
        )

    init_config = k8s.core.v1.ContainerArgs(
        name="config",
        image=image,
        command=[f"{SCRIPTS_MOUNT}/init-config.sh"],
        env=[*base_env, root_pw],
        volume_mounts=[scripts, conf, client],
        security_context=_container_security(),
        resources=_resources({"cpu": "10m", "memory": "32Mi"}, {"memory": "64Mi"}),
    )
    # Runs a private mysqld while initializing or cloning, so it gets the database's resources.
    # The root password only matters on the primary's first initialization.
    init_seed = k8s.core.v1.ContainerArgs(
        name="seed",
        image=image,
        command=[f"{SCRIPTS_MOUNT}/init-data.sh"],
        env=[*base_env, root_pw, repl_pw],
        volume_mounts=[scripts, data, conf_ro, client_ro],
        security_context=_container_security(),
        resources=main_resources,
    )
    mysql = k8s.core.v1.ContainerArgs(
        name="mysql",
        image=image,
        args=["mysqld"],
        ports=[k8s.core.v1.ContainerPortArgs(name="mysql", container_port=MYSQL_PORT, protocol="TCP")],
        # No password: `seed` has made the data directory, so the image's entrypoint skips its
        # own initialization (which would put MYSQL_ROOT_PASSWORD into SQL unescaped).
        env=base_env,
        volume_mounts=[data, conf_ro, client_ro, scripts],
        resources=main_resources,
        security_context=_container_security(),
        startup_probe=exec_probe("startup", period=10, failures=60),
        liveness_probe=exec_probe("liveness", period=10, failures=6),
        readiness_probe=exec_probe("readiness", period=10, failures=3),
    )
    agent = k8s.core.v1.ContainerArgs(
        name="replication",
        image=image,
        command=[f"{SCRIPTS_MOUNT}/replication-agent.sh"],
        env=[*base_env, repl_pw, k8s.core.v1.EnvVarArgs(name="MYSQL_APP_USERS_DIR", value=APP_USERS_MOUNT)],
        volume_mounts=[scripts, client_ro, mount("app-users", APP_USERS_MOUNT, read_only=True)],
        security_context=_container_security(),
        resources=_resources({"cpu": "10m", "memory": "32Mi"}, {"memory": "128Mi"}),
    )
    return [init_config, init_seed], [mysql, agent]


def _anti_affinity(spec: MySQLSpec, required: bool) -> k8s.core.v1.PodAntiAffinityArgs:
    """Members on different nodes: required (prod) or preferred."""
    term = k8s.core.v1.PodAffinityTermArgs(
        topology_key=HOSTNAME_LABEL,
        label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=_selector(spec)),
    )
    return (
        k8s.core.v1.PodAntiAffinityArgs(required_during_scheduling_ignored_during_execution=[term])
        if required
        else k8s.core.v1.PodAntiAffinityArgs(
            preferred_during_scheduling_ignored_during_execution=[
                k8s.core.v1.WeightedPodAffinityTermArgs(weight=100, pod_affinity_term=term)
            ]
        )
    )


def _pod_volumes(spec: MySQLSpec, config_name: str) -> list[k8s.core.v1.VolumeArgs]:
    """The scripts, the rendered configuration, the apps' accounts and root's option file."""
    return [
        k8s.core.v1.VolumeArgs(
            name="scripts",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=config_name, default_mode=0o555),
        ),
        k8s.core.v1.VolumeArgs(name="conf", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
        k8s.core.v1.VolumeArgs(
            name="app-users",
            projected=k8s.core.v1.ProjectedVolumeSourceArgs(
                default_mode=0o440,
                sources=[
                    k8s.core.v1.VolumeProjectionArgs(
                        config_map=k8s.core.v1.ConfigMapProjectionArgs(name=f"{spec.name}-users")
                    ),
                    k8s.core.v1.VolumeProjectionArgs(
                        secret=k8s.core.v1.SecretProjectionArgs(
                            name=f"{spec.name}-app-users",
                            items=[
                                k8s.core.v1.KeyToPathArgs(key=u.name, path=f"passwords/{u.name}")
                                for u in spec.users
                            ]
                            or None,
                        )
                    ),
                ],
            ),
        ),
        # The root option file lives in memory only.
        k8s.core.v1.VolumeArgs(
            name="client",
            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="1Mi"),
        ),
    ]

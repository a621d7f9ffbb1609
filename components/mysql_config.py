"""The `mysql:` section of a stack: the one-primary, N-replica MySQL StatefulSet and the
least-privilege accounts apps get on it. Builds `MySQLSpec`.

Its passwords are secrets of the stack (`mysqlRootPassword`, `mysqlReplicationPassword`, each
user's `passwordSecret`); whether they are set is the stack's rule, in `stacks/config.py`.
Kept apart from `components/mysql.py` so that reading a stack never imports the Pulumi SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field

from components.checks import IMAGE, image_problem, label_check, parse_quantity, secret_key_check, subdomain_check
from components.config_model import (
    ConfigModel,
    Findings,
    Flag,
    Required,
    Text,
    build,
    checked,
    choice,
    items,
    text_list,
    whole,
)
from components.pod_config import PeerConfig, PeerSelector, Resources, ResourcesConfig
from components.vocabulary import SECRET_MYSQL_REPLICATION_PASSWORD, SECRET_MYSQL_ROOT_PASSWORD

# --------------------------------------------------------------------------- args: what the component receives

# MySQL's LTS series the component supports, oldest first. An upgrade goes from one to the next
# (never past one, never back); see `check_version_change` and docs/mysql.md, "Versions and upgrades".
MYSQL_LTS_SERIES: tuple[tuple[int, int], ...] = ((8, 4), (9, 7))
# The default stays on the older LTS: a program update never moves a deployed database to another
# series by itself; 9.7 is one `mysql.image` away (docs/mysql.md says why).
DEFAULT_MYSQL_IMAGE = "mysql:8.4"


def mysql_version(image: str) -> tuple[int, ...] | None:
    """The MySQL version an image's tag names ((8, 4) for `mysql:8.4`, (9, 7, 4) for
    `mysql:9.7.4-oraclelinux9` or `…:9.7.4@sha256:…`), or None when the tag names none
    (`mysql@sha256:…`, `corp/mysql:prod`)."""
    m = IMAGE.fullmatch(image)
    tag = m.group("tag") if m else None
    version = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(?:-[\w.-]+)?", tag or "")
    if not version:
        return None
    return tuple(int(part) for part in version.groups() if part is not None)


def series_name(version: tuple[int, ...]) -> str:
    return f"{version[0]}.{version[1]}"


def version_name(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True)
class MySQLStorage:
    size: str = "10Gi"
    storage_class: str = ""


# The most members a cluster may have; the seed script looks this far for a donor.
MYSQL_MAX_MEMBERS = 9

# The account replicas replicate and clone with; no app user may take its name.
MYSQL_REPLICATION_USER = "repl"


MySQLAccess = Literal["readWrite", "readOnly"]


MYSQL_ACCESS: tuple[MySQLAccess, ...] = ("readWrite", "readOnly")


@dataclass(frozen=True)
class MySQLUserSpec:
    """An application's own MySQL account: privileges on its databases only, never global ones."""

    name: str
    databases: tuple[str, ...]
    password_secret: str  # the secret config key holding its password (apps read it through secretEnv)
    access: MySQLAccess = "readWrite"


@dataclass(frozen=True)
class MySQLSpec:
    enabled: bool = False
    name: str = "mysql"
    namespace: str = "data"
    replicas: int = 3
    image: str = DEFAULT_MYSQL_IMAGE
    storage: MySQLStorage = field(default_factory=MySQLStorage)
    resources: Resources = field(default_factory=Resources)
    allow_from: tuple[PeerSelector, ...] = ()
    users: tuple[MySQLUserSpec, ...] = ()


# The longest passwords MySQL takes, measured against mysqld 9.7 (tests/conformance/test_mysql_server.py):
# caching_sha2_password refuses one over 256 bytes (CREATE USER: ERROR 1396), and CHANGE REPLICATION
# SOURCE TO a SOURCE_PASSWORD over 32 bytes (ERROR 3056; bytes of UTF-8, though it says characters).
MYSQL_PASSWORD_MAX_BYTES = 256
MYSQL_REPLICATION_PASSWORD_MAX_BYTES = 32


def password_problem(value: str, max_bytes: int) -> str | None:
    """Why a password cannot work end to end (MySQL, the env var and option file it travels in);
    None when it can. Any other character works: the scripts escape every value. Never quotes it."""
    if not value:
        return "is empty: the account would take any login without a password; set one"
    if "\0" in value:
        return "contains a NUL character, which no environment variable or option file can carry; choose another"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text; choose another"
    if size > max_bytes:
        limit = (
            "CHANGE REPLICATION SOURCE TO takes a SOURCE_PASSWORD of at most 32 bytes"
            if max_bytes == MYSQL_REPLICATION_PASSWORD_MAX_BYTES
            else f"MySQL's caching_sha2_password takes at most {max_bytes} bytes"
        )
        return f"is {size} bytes long (UTF-8) and {limit}; choose a shorter one"
    return None


def password_limits(spec: MySQLSpec) -> dict[str, int]:
    """The secret config keys holding the cluster's passwords -> the most UTF-8 bytes each may have."""
    limits = {
        SECRET_MYSQL_ROOT_PASSWORD: MYSQL_PASSWORD_MAX_BYTES,
        SECRET_MYSQL_REPLICATION_PASSWORD: MYSQL_REPLICATION_PASSWORD_MAX_BYTES,
    }
    for user in spec.users:
        limits[user.password_secret] = min(limits.get(user.password_secret, MYSQL_PASSWORD_MAX_BYTES),
                                           MYSQL_PASSWORD_MAX_BYTES)  # fmt: skip
    return limits


# MySQL identifiers the app users and their databases may use: plain names, no quoting needed.
_USER_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_RESERVED_USERS = ("root", MYSQL_REPLICATION_USER)
_SYSTEM_SCHEMAS = ("mysql", "sys", "information_schema", "performance_schema")


def series_check(image: str, found: Findings) -> None:
    """`mysql.image` names a supported LTS series; a version the tag does not name is a warning,
    since then neither this check nor the upgrade guard can tell what the image runs."""
    version = mysql_version(image)
    supported = " and ".join(series_name(s) for s in MYSQL_LTS_SERIES)
    if version is None:
        m = IMAGE.fullmatch(image)
        repo = m.group("repo") if m else "mysql"
        found.warn(
            "image",
            f"{image!r} names no MySQL version in its tag, so neither validate nor the upgrade guard can "
            f"check it: use a tag that starts with the version, of an LTS series ({supported}): e.g. "
            f"'{repo}:{series_name(MYSQL_LTS_SERIES[-1])}' or one of its patch releases",
        )
    elif version[:2] < MYSQL_LTS_SERIES[0]:
        found.error(
            "image",
            f"{image!r} is older than MySQL {series_name(MYSQL_LTS_SERIES[0])} LTS; the replication commands "
            f"and CLONE the members use need an LTS series: {supported}",
        )
    elif version[:2] not in MYSQL_LTS_SERIES:
        found.error(
            "image",
            f"{image!r} is a MySQL innovation release ({series_name(version)}): those are supported only until "
            f"the next one and cannot be downgraded in place; use an LTS series: {supported}",
        )


def _user_name_check(value: str) -> str | None:
    if not _USER_NAME.fullmatch(value):
        return f"{value!r} is not a MySQL user name for an app (1-32 letters, digits and '_')"
    if value in _RESERVED_USERS:
        return f"{value!r} is the platform's own account; give the app a user of its own"
    return None


def _database_check(value: str) -> str | None:
    if not _DATABASE_NAME.fullmatch(value):
        return f"{value!r} is not a database name (1-64 letters, digits and '_')"
    if value.lower() in _SYSTEM_SCHEMAS:
        return f"{value!r} is a MySQL system schema; an app's database must be its own"
    return None


def _size_check(value: str) -> str | None:
    return None if parse_quantity(value) else f"{value!r} is not a storage size like '10Gi'"


class MySQLStorageConfig(ConfigModel):
    """Each member's PersistentVolumeClaim."""

    size: Annotated[Text, checked(_size_check)] = Field("10Gi", description="size of each member's volume")
    storage_class: Annotated[Text, checked(subdomain_check("StorageClass name"))] = Field(
        "", description="StorageClass of the volumes; default: the cluster's default class"
    )


class MySQLUserConfig(ConfigModel):
    """An app's own account: privileges on its databases only."""

    name: Annotated[Text, Required, checked(_user_name_check)] = Field(description="user name (not root or repl)")
    databases: text_list(_database_check) = Field(  # type: ignore[valid-type]
        (), description="databases the user may use (created if missing)"
    )
    password_secret: Annotated[Text, Required, checked(secret_key_check)] = Field(
        description="the secret config key with its password (pulumi config set --secret KEY)"
    )
    access: choice(*MYSQL_ACCESS) = Field("readWrite", description="readWrite or readOnly")  # type: ignore[valid-type]

    def checks(self, found: Findings) -> None:
        if not self.databases and not found.problems_under("databases"):
            found.error("databases", "list the databases this user may use, e.g. [orders]")
        for j, database in enumerate(self.databases):
            if database in self.databases[:j]:
                found.error(f"databases[{j}]", f"{database!r} is listed twice")

    def args(self) -> MySQLUserSpec:
        return build(MySQLUserSpec, self, databases=tuple(dict.fromkeys(self.databases)))


class MySQLConfig(ConfigModel):
    """One-primary, N-replica MySQL (GTID replication, CLONE for new replicas)."""

    enabled: Flag = Field(False, description="deploy MySQL")
    name: Annotated[Text, checked(label_check("name", 40))] = Field("mysql", description="StatefulSet and Services' name")
    namespace: Annotated[Text, checked(label_check("namespace"))] = Field("data", description="namespace")
    replicas: whole(1, MYSQL_MAX_MEMBERS) = Field(3, description="members: 1 primary + replicas; at least 3 in prod")  # type: ignore[valid-type]
    image: Annotated[Text, checked(image_problem)] = Field(
        DEFAULT_MYSQL_IMAGE, description="MySQL image of an LTS series (8.4 or 9.7), pinned"
    )
    storage: MySQLStorageConfig = Field(default_factory=MySQLStorageConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    allow_from: items(PeerConfig) = Field(  # type: ignore[valid-type]
        (), description="pods allowed to reach port 3306 (NetworkPolicy); nothing else is"
    )
    users: items(MySQLUserConfig) = Field((), description="apps' accounts")  # type: ignore[valid-type]

    def checks(self, found: Findings) -> None:
        env = found.context.get("environment", "dev")
        if self.enabled and env == "prod" and self.replicas < 3:
            found.error("replicas", f"prod needs at least 3 members (1 primary + 2 replicas), got {self.replicas}")
        if self.users and not self.enabled:
            found.error("users", "needs mysql.enabled: true; without the cluster no account would be created")
        if self.enabled and not found.problems_under("image"):
            series_check(self.image, found)
        seen: dict[str, int] = {}
        for i, user in enumerate(self.users):
            if user.name in seen:
                found.error(
                    f"users[{i}].name", f"user {user.name!r} is already defined (mysql.users[{seen[user.name]}])"
                )
            seen.setdefault(user.name, i)

    def args(self) -> MySQLSpec:
        return build(
            MySQLSpec,
            self,
            storage=build(MySQLStorage, self.storage),
            resources=self.resources.args(),
            allow_from=tuple(peer.args() for peer in self.allow_from),
            users=tuple(user.args() for user in self.users),
        )

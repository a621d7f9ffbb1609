"""The MySQL cluster's scripts, exactly as the program renders them, against a real mysqld.

The server is Debian sid's MySQL 9.7 (`mysql-server-core`, Debian's build) in a root file
system laid out like the official `mysql` image, with that image's own entrypoint
(tests/support/mysql_rootfs.py; built once, cached outside the repo). Each StatefulSet member
runs as a pod of processes (tests/support/mysql_pod.py): its init containers, the `mysql`
container through the image's entrypoint, the probes and the `replication` sidecar, each with
the env, mounts, user and command the rendered StatefulSet gives it.

Proven here: the primary's first start with passwords that hold ' " \\ spaces # and non-ASCII
(root, replication and app accounts alike); that start is atomic; root's option file as the
real client reads it; the replication account and the app accounts' exact grants, rotation
and removal; a replica cloned from the primary that replicates by GTID; and that no password
shows up in any process's command line or any container's log meanwhile.

These tests need root (namespaces, mounts, chroot) and the cached rootfs, which the first run
builds (about a minute; `make test` builds it beforehand).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.mysql_config import (
    MYSQL_PASSWORD_MAX_BYTES,
    MYSQL_REPLICATION_PASSWORD_MAX_BYTES,
    password_problem,
)
from tests.support import mysql_rootfs
from tests.support.mysql_pod import ArgvWatch, MySQLPod, Rendered, descendants, link, pods, render

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: each MySQL pod runs in its own namespaces, mounts and chroot"
)

# Hard passwords: quotes, a backslash, spaces, '#', non-ASCII, SQL and shell syntax.
ROOT_PW = "r00t 'Pa55\\word\" #x ü€ `;--"
# The replication password at the longest MySQL takes (CHANGE REPLICATION SOURCE: 32 bytes).
REPL_PW = "r'\"\\ #ü-S3cret-0123456789abcdef"
APP_PWS = {
    "orders": "app-'Pa55\\wörd\" x",
    # line breaks, a tab, leading/trailing blanks, a trailing newline as `< file` leaves it
    "reports": " \tl1\nl2\r\n;DROP USER root; -- /* $HOME `id` */ \\ \n",
    # the longest password caching_sha2_password takes: 256 bytes
    "archive": "é" * 128,
}
USERS = [
    {"name": "orders", "databases": ["orders", "orders_audit"], "passwordSecret": "ordersDbPassword"},
    {"name": "reports", "databases": ["orders"], "access": "readOnly", "passwordSecret": "reportsDbPassword"},
    {"name": "archive", "databases": ["archive"], "passwordSecret": "archiveDbPassword"},
]
READ_WRITE = ("SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, CREATE TEMPORARY TABLES, "
              "LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER")  # fmt: skip
SECRETS = (ROOT_PW, REPL_PW, *APP_PWS.values())


def secret_values(app_pws: dict[str, str]) -> dict[tuple[str, str], str]:
    """The values of the rendered Secrets, as `pulumi up` would have stored them."""
    values = {("mysql-credentials", "root-password"): ROOT_PW, ("mysql-credentials", "replication-password"): REPL_PW}
    values.update({("mysql-app-users", user): pw for user, pw in app_pws.items()})
    return values


def test_the_hard_passwords_are_ones_the_program_accepts() -> None:
    assert len(REPL_PW.encode()) == MYSQL_REPLICATION_PASSWORD_MAX_BYTES
    assert password_problem(REPL_PW, MYSQL_REPLICATION_PASSWORD_MAX_BYTES) is None
    assert len(APP_PWS["archive"].encode()) == MYSQL_PASSWORD_MAX_BYTES
    for pw in (ROOT_PW, *APP_PWS.values()):
        assert password_problem(pw, MYSQL_PASSWORD_MAX_BYTES) is None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rootfs() -> mysql_rootfs.MySQLRootfs:
    # built when missing (never skipped: a missing tool or mirror is an error)
    return mysql_rootfs.build()


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render({"replicas": 2, "users": USERS})


@pytest.fixture(scope="module")
def argv_watch() -> Iterator[ArgvWatch]:
    with ArgvWatch(list(SECRETS)) as watch:
        yield watch


@pytest.fixture(scope="module")
def cluster(
    rootfs: mysql_rootfs.MySQLRootfs, rendered: Rendered, argv_watch: ArgvWatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MySQLPod, MySQLPod]]:
    """Two members with their sandboxes and link; the primary initialized, running and ready."""
    base = tmp_path_factory.mktemp("mysql-cluster")
    primary = MySQLPod(rendered, rootfs, 0, base / "mysql-0", secret_values(APP_PWS), members=2)
    replica = MySQLPod(rendered, rootfs, 1, base / "mysql-1", secret_values(APP_PWS), members=2)
    with pods(primary, replica):
        link(primary, replica)
        primary.run_init_containers()
        primary.start_container("mysql")
        primary.wait_ready()
        yield primary, replica


@pytest.fixture
def primary(cluster: tuple[MySQLPod, MySQLPod]) -> MySQLPod:
    return cluster[0]


def grants(pod: MySQLPod, account: str) -> list[str]:
    return sorted(pod.sql(f"SHOW GRANTS FOR {account};").splitlines())


def logged_in_as(pod: MySQLPod, user: str, password: str, protocol: str = "TCP") -> str:
    cp = pod.login(user, password, protocol=protocol)
    assert cp.returncode == 0, f"{user} cannot log in ({protocol}): {cp.stderr.strip()}"
    return cp.stdout.strip()


def refused(pod: MySQLPod, user: str, password: str) -> bool:
    cp = pod.login(user, password)
    return cp.returncode != 0 and "ERROR 1045" in cp.stderr


# --------------------------------------------------------------------------- the tree


def test_rootfs_is_laid_out_like_the_official_image(rootfs: mysql_rootfs.MySQLRootfs) -> None:
    root = rootfs.path
    assert rootfs.mysql_version.startswith(mysql_rootfs.MYSQL_SERIES + ".")
    assert "mysql:x:999:999::/var/lib/mysql:" in (root / "etc/passwd").read_text()
    my_cnf = (root / "etc/my.cnf").read_text()
    for line in ("datadir=/var/lib/mysql", "socket=/var/run/mysqld/mysqld.sock", "secure-file-priv=/var/lib/mysql-files",
                 "[client]", "!includedir /etc/mysql/conf.d/"):  # fmt: skip
        assert line in my_cnf.splitlines(), line
    assert not (root / "etc/mysql/my.cnf").exists(), "only /etc/my.cnf, as in the official image"
    for d in ("var/lib/mysql", "run/mysqld"):
        st = (root / d).stat()
        assert (st.st_uid, st.st_mode & 0o7777) == (999, 0o1777), d
    entrypoint = (root / "usr/local/bin/docker-entrypoint.sh").read_bytes()
    assert entrypoint == mysql_rootfs._vendored()["docker-entrypoint.sh"], "the official entrypoint, unmodified"
    assert (root / "docker-entrypoint-initdb.d").is_dir()


# --------------------------------------------------------------------------- option file


@pytest.mark.parametrize(
    "password",
    [ROOT_PW, '"', "\\", "ends with a backslash\\", "  spaces around  ", "#at start", "a'b", "tab\there",
     "line\nbreak\r\n", "\\n is not a newline", "é" * 128],
    ids=lambda p: repr(p)[:24],
)  # fmt: skip
def test_root_option_file_reads_back_as_the_password(
    rootfs: mysql_rootfs.MySQLRootfs, rendered: Rendered, tmp_path: Path, password: str
) -> None:
    """init-config.sh's option file, parsed by MySQL's own option-file reader (my_print_defaults)."""
    values = secret_values(APP_PWS) | {("mysql-credentials", "root-password"): password}
    pod = MySQLPod(rendered, rootfs, 0, tmp_path / "pod", values)
    with pods(pod):
        config = pod.run("config")
        assert config.returncode == 0, config.stderr
        # base64: the bytes as printed, carriage returns included
        cp = pod.run("mysql", ["bash", "-c", "my_print_defaults --show --defaults-file=/etc/mysql/client/root.cnf "
                                             "client | base64 -w0; exit ${PIPESTATUS[0]}"])  # fmt: skip
        assert cp.returncode == 0, cp.stderr
        printed = base64.b64decode(cp.stdout).decode()
        assert printed.startswith("--user=root\n--password=")
        assert printed.removeprefix("--user=root\n--password=").removesuffix("\n") == password


# --------------------------------------------------------------------------- the primary


def test_primary_first_start_goes_through_the_official_entrypoint(primary: MySQLPod) -> None:
    seed = (primary.logs / "seed.log").read_text()
    assert "ordinal 0: data directory initialized" in seed, seed[-2000:]
    entrypoint = (primary.logs / "mysql.log").read_text()
    assert "[Entrypoint]: Entrypoint script for MySQL Server" in entrypoint
    # the entrypoint found the data directory complete: it did not initialize (with the password)
    assert "Initializing database files" not in entrypoint and "Temporary server" not in entrypoint
    data = primary.volume_dir("data")
    assert (data / "data" / "mysql").is_dir() and not (data / "k8s-platform-init").exists()
    version = primary.sql("SELECT VERSION();").strip()
    assert version.startswith(mysql_rootfs.MYSQL_SERIES + "."), version
    assert int(primary.sql("SELECT COUNT(*) FROM mysql.time_zone_name;")) > 0, "time zone tables, as the entrypoint loads them"
    assert primary.sql("SELECT @@gtid_mode, @@read_only, @@server_id;").split() == ["ON", "0", "100"]


def test_root_logs_in_with_the_hard_password(primary: MySQLPod) -> None:
    assert logged_in_as(primary, "root", ROOT_PW) == "root@%"
    assert logged_in_as(primary, "root", ROOT_PW, protocol="SOCKET") == "root@localhost"
    assert refused(primary, "root", ROOT_PW.split(" #")[0]), "the password cut at ' #' must not work"
    assert sorted(primary.sql("SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user = 'root';").split()) == [
        "root@%", "root@localhost"]  # fmt: skip
    for kind in ("startup", "liveness", "readiness"):
        cp = primary.probe(kind)
        assert cp.returncode == 0, f"{kind}: {cp.stderr}"


def test_replication_account(primary: MySQLPod) -> None:
    assert grants(primary, "'repl'@'%'") == sorted(
        ["GRANT REPLICATION SLAVE ON *.* TO `repl`@`%`", "GRANT BACKUP_ADMIN ON *.* TO `repl`@`%`"]
    )
    plugin = primary.sql("SELECT plugin FROM mysql.user WHERE user = 'repl' AND host = '%';").strip()
    assert plugin == "caching_sha2_password"
    assert logged_in_as(primary, "repl", REPL_PW) == "repl@%"


def test_app_accounts_created_rotated_and_dropped(primary: MySQLPod, rendered: Rendered) -> None:
    def sync() -> subprocess.CompletedProcess[str]:
        return primary.run("replication", extra_env={"REPLICATION_AGENT_ONCE": "1"})

    # someone else's account of a listed name stays untouched
    primary.sql("CREATE USER 'dba'@'%' IDENTIFIED BY 'dba-own-pw'; GRANT SELECT ON *.* TO 'dba'@'%';")
    dba_grants = grants(primary, "'dba'@'%'")
    cp = sync()
    assert cp.returncode == 0, cp.stderr
    # readWrite is every privilege MySQL has at database level (so SHOW GRANTS shows ALL
    # PRIVILEGES), without GRANT OPTION and with nothing on *.*
    assert grants(primary, "'orders'@'%'") == sorted([
        "GRANT USAGE ON *.* TO `orders`@`%`",
        "GRANT ALL PRIVILEGES ON `orders`.* TO `orders`@`%`",
        "GRANT ALL PRIVILEGES ON `orders_audit`.* TO `orders`@`%`",
    ])  # fmt: skip
    assert primary.sql(
        "SELECT GROUP_CONCAT(PRIVILEGE_TYPE ORDER BY PRIVILEGE_TYPE SEPARATOR ', ') FROM "
        "INFORMATION_SCHEMA.SCHEMA_PRIVILEGES WHERE GRANTEE = \"'orders'@'%'\" AND TABLE_SCHEMA = 'orders';"
    ).strip() == ", ".join(sorted(READ_WRITE.split(", ")))
    assert grants(primary, "'reports'@'%'") == sorted(
        ["GRANT USAGE ON *.* TO `reports`@`%`", "GRANT SELECT, EXECUTE, SHOW VIEW ON `orders`.* TO `reports`@`%`"]
    )
    for user, pw in APP_PWS.items():
        assert logged_in_as(primary, user, pw) == f"{user}@%"
    assert refused(primary, "reports", APP_PWS["reports"].rstrip("\n")), "the trailing newline is part of it"
    assert primary.sql("SHOW DATABASES LIKE 'orders%';").split() == ["orders", "orders_audit"]
    attrs = primary.sql("SELECT ATTRIBUTE FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE USER = 'orders';").strip()
    assert attrs == '{"managedBy": "k8s-platform"}'

    # rotate: a new Secret value reaches the volume; the next pass resets the password
    rotated = "n3w 'r\"o\\tated' #ü"
    primary.secrets[("mysql-app-users", "orders")] = rotated
    primary.refresh_volume("app-users")
    assert sync().returncode == 0
    assert logged_in_as(primary, "orders", rotated) == "orders@%"
    assert refused(primary, "orders", APP_PWS["orders"])

    # drop: `archive` leaves the list, `dba` (not the platform's) joins it
    smaller = [u for u in USERS if u["name"] != "archive"] + [
        {"name": "dba", "databases": ["orders"], "passwordSecret": "dbaDbPassword"}]  # fmt: skip
    primary.rendered = render({"replicas": 2, "users": smaller})
    primary.secrets[("mysql-app-users", "dba")] = "not-applied"
    del primary.secrets[("mysql-app-users", "archive")]
    primary.refresh_volume("app-users")
    cp = sync()
    assert "'dba' exists and was not created by the platform" in cp.stderr
    assert "applying mysql.users failed (exit 1); retrying" in cp.stderr, "reported, and retried later"
    assert "user 'archive' is no longer in mysql.users" in cp.stderr
    assert primary.sql("SELECT COUNT(*) FROM mysql.user WHERE user = 'archive';").strip() == "0"
    assert primary.sql("SHOW DATABASES LIKE 'archive';").strip() == "archive", "its database stays"
    assert grants(primary, "'dba'@'%'") == dba_grants
    assert logged_in_as(primary, "dba", "dba-own-pw") == "dba@%"
    assert logged_in_as(primary, "reports", APP_PWS["reports"]) == "reports@%"
    # back to the module's accounts, for the replica test
    primary.sql("DROP USER 'dba'@'%';")
    primary.rendered = rendered
    primary.secrets.update(secret_values(APP_PWS))
    del primary.secrets[("mysql-app-users", "dba")]
    primary.refresh_volume("app-users")
    assert sync().returncode == 0
    assert logged_in_as(primary, "archive", APP_PWS["archive"]) == "archive@%"


def test_restart_keeps_data_and_passwords(primary: MySQLPod) -> None:
    primary.sql("CREATE DATABASE IF NOT EXISTS kept; CREATE TABLE IF NOT EXISTS kept.t (v VARCHAR(20)); "
                "INSERT INTO kept.t VALUES ('before restart');")  # fmt: skip
    assert primary.running["mysql"].stop(grace=60) == 0, "mysqld stops cleanly on SIGTERM"
    primary.run_init_containers()
    assert "initialized before; leaving it alone" in (primary.logs / "seed.log").read_text()
    primary.start_container("mysql")
    primary.wait_ready()
    assert primary.sql("SELECT v FROM kept.t;").strip() == "before restart"
    assert logged_in_as(primary, "root", ROOT_PW) == "root@%"
    assert logged_in_as(primary, "repl", REPL_PW) == "repl@%"


def test_interrupted_first_start_is_redone(rootfs: mysql_rootfs.MySQLRootfs, rendered: Rendered, tmp_path: Path) -> None:
    """The seed killed half-way leaves no data directory the entrypoint would take for complete."""
    pod = MySQLPod(rendered, rootfs, 0, tmp_path / "pod", secret_values(APP_PWS))
    staging = pod.volume_dir("data") / "k8s-platform-init"
    with pods(pod):
        assert pod.run("config").returncode == 0
        seed = pod.start_container("seed")
        deadline = time.monotonic() + 60
        while not (staging / "mysql").is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (staging / "mysql").is_dir(), "the initialization did not start"
        for pid in descendants(seed.popen.pid):  # the seed script and its mysqld, like an OOM kill
            os.kill(pid, signal.SIGKILL)
        seed.popen.wait(10)
        del pod.running["seed"]
        assert not (pod.volume_dir("data") / "data").exists(), "half-way: no data directory yet"
        pod.run_init_containers()
        assert "discarding an interrupted first initialization" in (pod.logs / "seed.log").read_text()
        pod.start_container("mysql")
        pod.wait_ready()
        assert logged_in_as(pod, "root", ROOT_PW) == "root@%"


def test_the_entrypoint_alone_cannot_take_a_hard_root_password(
    rootfs: mysql_rootfs.MySQLRootfs, rendered: Rendered, tmp_path: Path
) -> None:
    """Why `seed` initializes the primary: the official entrypoint, given MYSQL_ROOT_PASSWORD
    on an empty volume, puts it into SQL unescaped. Its first start aborts, and leaves a data
    directory that every later start takes for initialized (root@localhost without password,
    no root@'%', no replication account). If this test fails, upstream has changed."""
    pod = MySQLPod(rendered, rootfs, 0, tmp_path / "pod", secret_values(APP_PWS))
    with pods(pod):
        assert pod.run("config").returncode == 0
        # in the background, output to a file: its daemonized temporary server keeps a pipe open
        entrypoint = pod.start_container("mysql", ["docker-entrypoint.sh", "mysqld"],
                                         extra_env={"MYSQL_ROOT_PASSWORD": ROOT_PW})  # fmt: skip
        code = entrypoint.popen.wait(180)
        del pod.running["mysql"]
        text = entrypoint.log.read_text(errors="replace")
        entrypoint.log.unlink()  # it quotes the password
        # (booleans only: the output quotes the password, and pytest would print it)
        aborted_on_sql = "ERROR" in text and "MySQL init process done" not in text
        assert code != 0 and aborted_on_sql, "unexpected entrypoint outcome (see the test's docstring)"
        assert (pod.volume_dir("data") / "data" / "mysql").is_dir(), "half-initialized, and looks initialized"


# --------------------------------------------------------------------------- a replica


def test_replica_is_cloned_and_replicates_by_gtid(cluster: tuple[MySQLPod, MySQLPod]) -> None:
    primary, replica = cluster
    primary.run("replication", extra_env={"REPLICATION_AGENT_ONCE": "1"})  # the app accounts exist
    primary.sql("CREATE DATABASE IF NOT EXISTS shop; CREATE TABLE IF NOT EXISTS shop.t (v VARCHAR(40)); "
                "INSERT INTO shop.t VALUES ('before the clone');")  # fmt: skip
    replica.run_init_containers()
    seed = (replica.logs / "seed.log").read_text()
    assert f"cloning from {primary.rendered.member_host(0)}" in seed and "member 1 seeded from" in seed, seed[-3000:]
    replica.start_container("mysql")
    # the sidecar attaches the replica (CHANGE REPLICATION SOURCE with the hard password)
    deadline = time.monotonic() + 120
    while True:
        agent = replica.run("replication", extra_env={"REPLICATION_AGENT_ONCE": "1"})
        if replica.probe("readiness").returncode == 0:
            break
        assert time.monotonic() < deadline, f"replica not ready: {agent.stderr[-1500:]}"
        time.sleep(1)
    assert replica.sql("SELECT v FROM shop.t;").strip() == "before the clone", "cloned data"
    primary.sql("INSERT INTO shop.t VALUES ('after the clone');")
    gtids = primary.sql("SELECT @@gtid_executed;").strip()
    replica.sql(f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{gtids}', 60);")
    assert replica.sql("SELECT v FROM shop.t ORDER BY v;").split("\n")[:2] == ["after the clone", "before the clone"]
    assert replica.sql("SELECT @@server_id, @@super_read_only;").split() == ["101", "1"]
    assert replica.sql("SELECT @@server_uuid;") != primary.sql("SELECT @@server_uuid;")
    channel = replica.sql("SELECT HOST, USER, AUTO_POSITION, SSL_ALLOWED FROM "
                          "performance_schema.replication_connection_configuration;").split()  # fmt: skip
    assert channel == [primary.rendered.member_host(0), "repl", "1", "YES"]
    # the accounts came with the clone: the replica serves reads with the same passwords
    assert logged_in_as(replica, "root", ROOT_PW) == "root@%"
    assert logged_in_as(replica, "orders", APP_PWS["orders"]) == "orders@%"
    # reads only: even root's writes are refused (super_read_only)
    primary.sql("CREATE TABLE IF NOT EXISTS orders.x (v INT);")
    replica.sql(f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{primary.sql('SELECT @@gtid_executed;').strip()}', 60);")
    for user, pw in (("orders", APP_PWS["orders"]), ("root", ROOT_PW)):
        denied = replica.login(user, pw, "INSERT INTO orders.x VALUES (1)")
        assert denied.returncode != 0 and "ERROR 1290" in denied.stderr, (user, denied.stderr)
    assert logged_in_as(primary, "orders", APP_PWS["orders"]) == "orders@%"
    assert primary.login("orders", APP_PWS["orders"], "INSERT INTO orders.x VALUES (1)").returncode == 0


# --------------------------------------------------------------------------- no password shown


def test_no_password_in_any_command_line_or_log(
    cluster: tuple[MySQLPod, MySQLPod], argv_watch: ArgvWatch
) -> None:
    assert argv_watch.samples > 10
    assert not argv_watch.found, f"a password on the command line of: {sorted(set(argv_watch.found))}"
    fragments = [s for pw in SECRETS for s in (pw, pw.strip()[:8]) if len(s.strip()) >= 6]
    for pod in cluster:
        for log in pod.logs.glob("*.log"):
            text = log.read_text(errors="replace")
            leaked = [i for i, f in enumerate(fragments) if f in text]
            assert not leaked, f"{pod.name}: {log.name} contains password fragment(s) #{leaked}"

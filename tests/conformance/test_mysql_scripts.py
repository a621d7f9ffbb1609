"""The MySQL cluster's shell scripts: real bash and shellcheck, then their logic
against stub `mysql`/`mysqladmin` clients, fast and for every branch. What a real
mysqld does with the statements is proven in test_mysql_server.py.

The stubs record their argv and stdin, which is how the tests prove that
passwords travel on stdin or in the option file and never on a command line.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from components.mysql import SCRIPT_FILES, SCRIPTS_DIR

SHELLCHECK = shutil.which("shellcheck")
ROOT_PW = "r00t 'Pa55\\word\" #x"
REPL_PW = "repl-'S3cret\\-0123"

STUB = r"""#!/bin/bash
# stub {name}: records argv and stdin, answers from $STUB_DIR
n=$(cat "$STUB_DIR/count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$STUB_DIR/count"
printf '%s\n' "{name} $*" >>"$STUB_DIR/argv.log"
if [ ! -t 0 ]; then cat >>"$STUB_DIR/stdin.log"; fi
case "$*" in
    *"SHOW REPLICA STATUS"*) cat "$STUB_DIR/replica_status" 2>/dev/null || true ;;
    *"USER_ATTRIBUTES"*) cat "$STUB_DIR/accounts" 2>/dev/null || true ;;
esac
exit "$(cat "$STUB_DIR/exit_code" 2>/dev/null || echo 0)"
"""

REPLICA_STATUS = """*************************** 1. row ***************************
             Replica_IO_State: Waiting for source to send event
                  Source_Host: {host}
                  Source_User: repl
                  Source_Port: 3306
           Replica_IO_Running: {io}
          Replica_SQL_Running: {sql}
               Last_SQL_Errno: {sql_errno}
                Auto_Position: 1
"""
PRIMARY = "mysql-0.mysql.data.svc.cluster.local"


@pytest.mark.parametrize("script", SCRIPT_FILES)
def test_bash_syntax(script: str) -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPTS_DIR / script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{script}: {proc.stderr}"


@pytest.mark.parametrize("script", SCRIPT_FILES)
def test_shellcheck(script: str) -> None:
    if SHELLCHECK is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck; the setup target does)")
    proc = subprocess.run(
        [SHELLCHECK, "--external-sources", "--source-path=SCRIPTDIR", "--severity=style", script],
        cwd=SCRIPTS_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"{script}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("script", [s for s in SCRIPT_FILES if s != "lib.sh"])
def test_scripts_are_strict_and_executable(script: str) -> None:
    text = (SCRIPTS_DIR / script).read_text()
    assert text.startswith("#!/bin/bash\n"), script
    assert "\nset -eu\n" in text, f"{script}: needs set -eu"
    assert os.stat(SCRIPTS_DIR / script).st_mode & stat.S_IXUSR, f"{script} is not executable"


# --------------------------------------------------------------------------- behaviour


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    """Env for running a script outside a pod: stub clients, paths under tmp_path."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("mysql", "mysqladmin"):
        path = stubs / name
        path.write_text(STUB.replace("{name}", name))
        path.chmod(0o755)
    for d in ("data", "conf.d", "client", "stub"):
        (tmp_path / d).mkdir()
    return {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "STUB_DIR": str(tmp_path / "stub"),
        "MYSQL_SCRIPTS_DIR": str(SCRIPTS_DIR),
        "MYSQL_DATA_ROOT": str(tmp_path / "data"),
        "MYSQL_CONF_DIR": str(tmp_path / "conf.d"),
        "MYSQL_CLIENT_CNF": str(tmp_path / "client" / "root.cnf"),
        "MYSQL_CLUSTER_NAME": "mysql",
        "MYSQL_SERVICE_DOMAIN": "mysql.data.svc.cluster.local",
        "MYSQL_REPLICATION_USER": "repl",
        "MYSQL_ROOT_PASSWORD": ROOT_PW,
        "MYSQL_REPLICATION_PASSWORD": REPL_PW,
        "POD_NAME": "mysql-2",
    }


def run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS_DIR / script), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def stub_file(env: dict[str, str], name: str) -> str:
    path = Path(env["STUB_DIR"]) / name
    return path.read_text() if path.exists() else ""


def assert_no_password_in_argv(env: dict[str, str]) -> None:
    argv = stub_file(env, "argv.log")
    for pw in (ROOT_PW, REPL_PW, "S3cret", "Pa55"):
        assert pw not in argv, f"password on a command line:\n{argv}"


def lib(env: dict[str, str], snippet: str) -> str:
    proc = subprocess.run(
        ["bash", "-c", f'set -eu; . "$MYSQL_SCRIPTS_DIR/lib.sh"; {snippet}'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def test_lib_helpers(sandbox: dict[str, str]) -> None:
    assert lib(sandbox, "ordinal") == "2"
    assert lib({**sandbox, "POD_NAME": "my-sql-db-17"}, "ordinal") == "17"
    assert lib(sandbox, "member_host 0") == PRIMARY
    assert lib(sandbox, 'sql_string "$MYSQL_REPLICATION_PASSWORD"') == "repl-''S3cret\\\\-0123"
    # one line per statement: the client would drop a carriage return before a line end
    assert lib(sandbox, "sql_string $'a\\nb\\r\\n'") == "a\\nb\\r\\n"
    assert lib(sandbox, "cnf_string $'q\"\\\\ #\\t\\n'") == 'q\\"\\\\ #\\t\\n'
    # a secret file is read to the byte, trailing newlines included
    (Path(sandbox["STUB_DIR"]) / "pw").write_text("pw\n\n")
    assert lib(sandbox, 'v=x; read_secret_file v "$STUB_DIR/pw"; printf %s "$v"') == "pw\n\n"
    status = REPLICA_STATUS.format(host=PRIMARY, io="Connecting", sql="Yes", sql_errno=0)
    (Path(sandbox["STUB_DIR"]) / "s").write_text(status)
    out = lib(sandbox, 'status_field "$(cat "$STUB_DIR/s")" Replica_IO_Running')
    assert out == "Connecting"
    assert lib(sandbox, 'status_field "$(cat "$STUB_DIR/s")" Source_Host') == PRIMARY
    assert lib(sandbox, 'status_field "" Source_Host') == ""


def test_init_config_picks_role_and_server_id(sandbox: dict[str, str]) -> None:
    for pod, role, server_id in (("mysql-0", "primary", 100), ("mysql-2", "replica", 102)):
        proc = run("init-config.sh", {**sandbox, "POD_NAME": pod})
        assert proc.returncode == 0, proc.stderr
        conf = Path(sandbox["MYSQL_CONF_DIR"])
        assert (conf / "20-role.cnf").read_text() == (SCRIPTS_DIR / f"{role}.cnf").read_text(), pod
        identity = (conf / "30-identity.cnf").read_text()
        assert f"server_id={server_id}\n" in identity, pod
        assert f"report_host={pod}.mysql.data.svc.cluster.local" in identity
    cnf = Path(sandbox["MYSQL_CLIENT_CNF"])
    assert stat.S_IMODE(cnf.stat().st_mode) == 0o600
    # option-file escaping: value double-quoted, backslash and double quote escaped (MySQL's
    # reader would end the value at the inner quote and take ' #x"' for a comment)
    assert cnf.read_text() == '[client]\nuser=root\npassword="r00t \'Pa55\\\\word\\" #x"\n'
    assert_no_password_in_argv(sandbox)


def test_init_data_leaves_initialized_primaries_and_seeded_replicas_alone(sandbox: dict[str, str]) -> None:
    data = Path(sandbox["MYSQL_DATA_ROOT"])
    (data / "data" / "mysql").mkdir(parents=True)
    proc = run("init-data.sh", {**sandbox, "POD_NAME": "mysql-0"})
    assert proc.returncode == 0 and "initialized before; leaving it alone" in proc.stderr
    assert (data / "data" / "mysql").is_dir(), "the primary's data is never touched"
    (data / ".k8s-platform-seeded").write_text("x")
    proc = run("init-data.sh", sandbox)
    assert proc.returncode == 0 and "already seeded" in proc.stderr
    assert (data / "data" / "mysql").is_dir(), "seeded data must survive a restart"


@pytest.mark.parametrize(
    ("pod", "status", "expected"),
    [
        ("mysql-0", None, 0),
        ("mysql-1", {"io": "Yes", "sql": "Yes"}, 0),
        ("mysql-1", {"io": "Connecting", "sql": "Yes"}, 1),
        ("mysql-1", {"io": "Yes", "sql": "No"}, 1),
        ("mysql-1", "", 1),  # replication never configured
    ],
)
def test_readiness_probe(sandbox: dict[str, str], pod: str, status: object, expected: int) -> None:
    if isinstance(status, dict):
        text = REPLICA_STATUS.format(host=PRIMARY, sql_errno=0, **status)
        (Path(sandbox["STUB_DIR"]) / "replica_status").write_text(text)
    elif status == "":
        (Path(sandbox["STUB_DIR"]) / "replica_status").write_text("")
    proc = run("probe.sh", {**sandbox, "POD_NAME": pod}, "readiness")
    assert proc.returncode == expected, proc.stderr
    argv = stub_file(sandbox, "argv.log")
    assert "--defaults-extra-file=" in argv and "--protocol=TCP" in argv
    assert_no_password_in_argv(sandbox)


def test_liveness_probe_pings_over_tcp(sandbox: dict[str, str]) -> None:
    assert run("probe.sh", sandbox, "liveness").returncode == 0
    argv = stub_file(sandbox, "argv.log")
    assert argv.startswith("mysqladmin --defaults-extra-file=") and argv.rstrip().endswith("ping")
    (Path(sandbox["STUB_DIR"]) / "exit_code").write_text("1")
    assert run("probe.sh", sandbox, "liveness").returncode == 1
    assert run("probe.sh", sandbox, "bogus").returncode == 2


def test_agent_configures_an_unconfigured_replica(sandbox: dict[str, str]) -> None:
    proc = run("replication-agent.sh", {**sandbox, "REPLICATION_AGENT_ONCE": "1"})
    assert proc.returncode == 0, proc.stderr
    sql = stub_file(sandbox, "stdin.log")
    assert "STOP REPLICA" not in sql, "no channel yet: nothing to stop"
    assert f"SOURCE_HOST = '{PRIMARY}'" in sql
    assert "SOURCE_USER = 'repl'" in sql
    assert "SOURCE_PASSWORD = 'repl-''S3cret\\\\-0123'" in sql, sql
    assert "SOURCE_AUTO_POSITION = 1" in sql and "GET_SOURCE_PUBLIC_KEY = 1" in sql
    assert sql.rstrip().endswith("START REPLICA;")
    assert_no_password_in_argv(sandbox)


def test_agent_repoints_a_replica_at_the_wrong_source(sandbox: dict[str, str]) -> None:
    status = REPLICA_STATUS.format(host="elsewhere", io="Yes", sql="Yes", sql_errno=0)
    (Path(sandbox["STUB_DIR"]) / "replica_status").write_text(status)
    proc = run("replication-agent.sh", {**sandbox, "REPLICATION_AGENT_ONCE": "1"})
    assert proc.returncode == 0, proc.stderr
    sql = stub_file(sandbox, "stdin.log")
    assert sql.startswith("STOP REPLICA;\nCHANGE REPLICATION SOURCE TO")


@pytest.mark.parametrize(
    ("io", "sql", "sql_errno", "expected_sql"),
    [
        ("Yes", "Yes", 0, ""),  # healthy: untouched
        ("Connecting", "Yes", 0, ""),  # source away: the IO thread retries by itself
        ("No", "No", 0, "START REPLICA;\n"),  # stopped cleanly: restart
        ("No", "No", 1062, ""),  # applier error: needs a human
    ],
)
def test_agent_is_idempotent_on_a_configured_replica(
    sandbox: dict[str, str], io: str, sql: str, sql_errno: int, expected_sql: str
) -> None:
    status = REPLICA_STATUS.format(host=PRIMARY, io=io, sql=sql, sql_errno=sql_errno)
    (Path(sandbox["STUB_DIR"]) / "replica_status").write_text(status)
    proc = run("replication-agent.sh", {**sandbox, "REPLICATION_AGENT_ONCE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert stub_file(sandbox, "stdin.log") == expected_sql


def test_agent_respects_the_pause_marker_and_never_replicates_on_the_primary(sandbox: dict[str, str]) -> None:
    (Path(sandbox["MYSQL_DATA_ROOT"]) / ".k8s-platform-replication-paused").write_text("")
    proc = run("replication-agent.sh", {**sandbox, "REPLICATION_AGENT_ONCE": "1"})
    assert proc.returncode == 0 and "paused" in proc.stderr
    assert stub_file(sandbox, "stdin.log") == ""
    proc = run("replication-agent.sh", {**sandbox, "POD_NAME": "mysql-0", "REPLICATION_AGENT_ONCE": "1"})
    assert proc.returncode == 0 and "primary" in proc.stderr
    assert "REPLICA" not in stub_file(sandbox, "argv.log") + stub_file(sandbox, "stdin.log")


# --------------------------------------------------------------------------- applications' accounts

APP_PW = "app-'Pa55\\wörd\" x"  # quote, backslash, double quote, non-ASCII
RO_PW = "read-only-S3cret-456"
MANAGED = '{"managedBy": "k8s-platform"}'


def users_dir(env: dict[str, str], users: str, passwords: dict[str, str]) -> dict[str, str]:
    root = Path(env["HOME"]) / "app-users"
    (root / "passwords").mkdir(parents=True, exist_ok=True)
    (root / "users").write_text(users)
    for user, pw in passwords.items():
        (root / "passwords" / user).write_text(pw)
    (Path(env["STUB_DIR"]) / "accounts").touch()
    return {**env, "MYSQL_APP_USERS_DIR": str(root), "POD_NAME": "mysql-0"}


def accounts(env: dict[str, str], rows: list[tuple[str, str]]) -> None:
    (Path(env["STUB_DIR"]) / "accounts").write_text("".join(f"{u}\t{m}\n" for u, m in rows))


def test_app_users_get_their_databases_and_nothing_else(sandbox: dict[str, str]) -> None:
    env = users_dir(sandbox, "orders readWrite orders,orders_audit\nreports readOnly orders\n",
                    {"orders": APP_PW, "reports": RO_PW})  # fmt: skip
    proc = run("app-users.sh", env)
    assert proc.returncode == 0, proc.stderr
    sql = stub_file(env, "stdin.log")
    escaped = "app-''Pa55\\\\wörd\" x"
    assert (
        f"CREATE USER IF NOT EXISTS 'orders'@'%' IDENTIFIED WITH caching_sha2_password BY '{escaped}' "
        f"ATTRIBUTE '{MANAGED}';"
    ) in sql, sql
    assert f"ALTER USER 'orders'@'%' IDENTIFIED WITH caching_sha2_password BY '{escaped}';" in sql
    assert "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'orders'@'%';" in sql
    for db in ("orders", "orders_audit"):
        assert f"CREATE DATABASE IF NOT EXISTS `{db}`;" in sql
        assert "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX" in sql
        assert f"ON `{db}`.* TO 'orders'@'%';" in sql
    assert "GRANT SELECT, SHOW VIEW, EXECUTE ON `orders`.* TO 'reports'@'%';" in sql
    # least privilege: nothing on *.*, no grant option, no admin privileges
    grants = [line for line in sql.splitlines() if line.startswith("GRANT")]
    assert len(grants) == 3
    for line in grants:
        assert "*.*" not in line and "WITH GRANT OPTION" not in line
        for admin in ("SUPER", "FILE", "PROCESS", "SHUTDOWN", "RELOAD", "CREATE USER", "REPLICATION", "ALL"):
            assert admin not in line.split(" ON ")[0], line
    assert "DROP USER" not in sql
    assert_no_password_in_argv(env)
    argv = stub_file(env, "argv.log")
    assert APP_PW not in argv and RO_PW not in argv and "Pa55" not in argv
    assert "Pa55" not in proc.stderr and RO_PW not in proc.stderr


def test_app_users_drops_only_the_platforms_accounts_that_left_the_list(sandbox: dict[str, str]) -> None:
    env = users_dir(sandbox, "orders readWrite orders\n", {"orders": APP_PW})
    accounts(env, [("orders", "k8s-platform"), ("legacy", "k8s-platform"), ("dba", ""), ("repl", ""), ("root", "")])
    proc = run("app-users.sh", env)
    assert proc.returncode == 0, proc.stderr
    sql = stub_file(env, "stdin.log")
    assert "DROP USER IF EXISTS 'legacy'@'%';" in sql
    for kept in ("orders", "dba", "repl", "root"):
        assert f"DROP USER IF EXISTS '{kept}'" not in sql
    assert "no longer in mysql.users" in proc.stderr and "its databases stay" in proc.stderr
    assert "DROP DATABASE" not in sql


def test_app_users_never_takes_over_an_account_someone_else_created(sandbox: dict[str, str]) -> None:
    env = users_dir(sandbox, "dba readWrite orders\nshop readWrite shop\n", {"dba": APP_PW, "shop": RO_PW})
    accounts(env, [("dba", "")])
    proc = run("app-users.sh", env)
    assert proc.returncode == 1
    assert "'dba' exists and was not created by the platform" in proc.stderr
    sql = stub_file(env, "stdin.log")
    assert "'dba'" not in sql, "the other account must stay untouched"
    assert "GRANT SELECT" in sql and "TO 'shop'@'%'" in sql, "the other users are still applied"


@pytest.mark.parametrize(
    "line",
    [
        "x';DROP_USER readWrite orders",  # quote in a user name
        "orders readWrite orders`;DROP",  # backtick in a database name
        "orders readWrite orders extra",  # trailing field
        "orders superuser orders",  # unknown access
        "orders readWrite",  # no database
        "a_name_that_is_far_too_long_for_mysql readWrite orders",
    ],
)
def test_app_users_skips_malformed_lines(sandbox: dict[str, str], line: str) -> None:
    env = users_dir(sandbox, f"{line}\nshop readOnly shop\n", {"shop": RO_PW})
    proc = run("app-users.sh", env)
    assert proc.returncode == 1
    sql = stub_file(env, "stdin.log")
    assert "DROP" not in sql and "superuser" not in sql and "orders" not in sql, sql
    assert "TO 'shop'@'%'" in sql


def test_app_users_without_a_password_or_mysqld(sandbox: dict[str, str]) -> None:
    env = users_dir(sandbox, "orders readWrite orders\n", {})
    proc = run("app-users.sh", env)
    assert proc.returncode == 1 and "no password" in proc.stderr
    assert "orders" not in stub_file(env, "stdin.log")
    (Path(env["STUB_DIR"]) / "exit_code").write_text("1")
    proc = run("app-users.sh", env)
    assert proc.returncode == 75 and "not reachable" in proc.stderr


def test_primary_agent_applies_the_accounts(sandbox: dict[str, str]) -> None:
    env = users_dir(sandbox, "orders readWrite orders\n", {"orders": APP_PW})
    proc = run("replication-agent.sh", {**env, "REPLICATION_AGENT_ONCE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "TO 'orders'@'%'" in stub_file(env, "stdin.log")
    # a replica's agent leaves accounts to replication
    replica = {**env, "POD_NAME": "mysql-1"}
    (Path(env["STUB_DIR"]) / "stdin.log").unlink()
    status = REPLICA_STATUS.format(host=PRIMARY, io="Yes", sql="Yes", sql_errno=0)
    (Path(env["STUB_DIR"]) / "replica_status").write_text(status)
    assert run("replication-agent.sh", {**replica, "REPLICATION_AGENT_ONCE": "1"}).returncode == 0
    assert stub_file(env, "stdin.log") == ""


def test_agent_failure_log_never_quotes_the_statement(sandbox: dict[str, str]) -> None:
    # A stub that fails like a parse error quoting the statement text.
    mysql = Path(sandbox["PATH"].split(":")[0]) / "mysql"
    mysql.write_text(
        "#!/bin/bash\n"
        'case "$(cat)" in *CHANGE*) ;; *) exit 0 ;; esac\n'
        "echo \"ERROR 1064 (42000) at line 1: You have an error near 'SOURCE_PASSWORD = secret'\" >&2\nexit 1\n"
    )
    proc = run("replication-agent.sh", {**sandbox, "REPLICATION_AGENT_ONCE": "1"})
    assert "ERROR 1064 (42000) at line 1: You have an error" in proc.stderr
    assert "SOURCE_PASSWORD" not in proc.stderr and "secret" not in proc.stderr

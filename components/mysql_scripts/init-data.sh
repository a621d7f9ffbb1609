#!/bin/bash
# Init container `seed`: prepares the member's data directory before its mysqld starts.
#
# Ordinal 0 (the primary) on a fresh volume: initializes the data directory itself
# instead of leaving it to the image's entrypoint, which writes MYSQL_ROOT_PASSWORD
# into SQL and into an option file unescaped (a password with ' " or \ aborts the
# first start, or sets another password than the Secret's). Here: mysqld
# --initialize-insecure into a staging directory beside the real one, a private
# socket-only mysqld on it, the time zone tables, root@localhost and root@'%' with
# the root password and the replication account (escaped string literals, on the
# client's stdin), a clean shutdown, then one rename to the real data directory.
# The first start is thus atomic: the entrypoint finds a complete data directory or
# none, and skips its own initialization; an interrupted attempt leaves only the
# staging directory, which the next start discards. A data directory that exists is
# never touched (the passwords in it win over the Secret's).
#
# Every other ordinal gets a copy of the cluster's data with MySQL's CLONE plugin.
# Idempotent: a data directory that was seeded and verified before (marker file)
# is left alone, so restarts and reschedules with the same PVC skip this; an
# interrupted seed (data without marker) is discarded and redone.
#
# How: initialize an empty data directory, start a private socket-only mysqld on
# it, CLONE INSTANCE from the previous member (falling back to the primary, then to
# the members above, for a donor of this member's version) with
# the replication account, let that server stop (no supervisor restarts it:
# ERROR 3707 is the expected outcome), start it once more to finish the clone
# recovery and check performance_schema.clone_status, stop it, write the marker.
set -eu
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}/lib.sh"

SEED_SOCKET=/tmp/mysqld-seed.sock
SEED_PID_FILE=/tmp/mysqld-seed.pid
# The primary's first initialization happens here, then becomes $MYSQL_DATADIR by a
# rename. Not a hidden name: InnoDB does not find its own files in a data directory
# whose name starts with a dot (ERROR MY-013039 on the next start).
STAGING_DATADIR=$MYSQL_DATA_ROOT/k8s-platform-init
server_pid=''

# start_server [mysqld option...]: a private mysqld on the seed socket only.
start_server() {
    mysqld --skip-networking --socket="$SEED_SOCKET" --pid-file="$SEED_PID_FILE" \
        --read-only=OFF --super-read-only=OFF --skip-replica-start "$@" &
    server_pid=$!
    local i=0
    while [ "$i" -lt 300 ]; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            log "seed mysqld exited during startup"
            server_pid=''
            return 1
        fi
        if [ -S "$SEED_SOCKET" ] && mysqladmin --no-defaults --socket="$SEED_SOCKET" \
            --user=root --connect-timeout=2 ping >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
        i=$((i + 1))
    done
    log "seed mysqld did not start within 300s"
    return 1
}

# Stops the seed server. With "wait", first gives it 60s to stop by itself (it
# does after a successful clone); root may or may not have a password by then.
stop_server() {
    [ -n "$server_pid" ] || return 0
    local i=0 grace=0
    if [ "${1:-}" = wait ]; then
        grace=60
    fi
    while kill -0 "$server_pid" 2>/dev/null; do
        if [ "$i" -eq "$grace" ]; then
            mysqladmin --no-defaults --socket="$SEED_SOCKET" --user=root \
                shutdown >/dev/null 2>&1 ||
                mysqladmin --defaults-extra-file="$MYSQL_CLIENT_CNF" --socket="$SEED_SOCKET" \
                    shutdown >/dev/null 2>&1 || true
        fi
        if [ "$i" -eq $((grace + 600)) ]; then
            log "seed mysqld ignores shutdown; sending SIGTERM"
            kill -TERM "$server_pid" 2>/dev/null || true
        fi
        sleep 1
        i=$((i + 1))
    done
    wait "$server_pid" 2>/dev/null || true
    server_pid=''
}

# fail MESSAGE: stops the seed server, discards what this attempt wrote, exits.
# (Ordinal 0 only ever writes the staging directory.)
fail() {
    log "$*"
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$discard_on_failure"
    exit 1
}

initialize() {
    rm -rf "$MYSQL_DATADIR"
    mysqld --initialize-insecure
}

# The statements that make a fresh primary: what the image's entrypoint does on its
# first start, with every value escaped. Not binary-logged, as there: replicas get
# the accounts with the clone of the data.
bootstrap_sql() {
    local root repl
    root=$(sql_string "$MYSQL_ROOT_PASSWORD")
    repl=$(sql_string "$MYSQL_REPLICATION_PASSWORD")
    cat <<SQL
SET autocommit = 1;
SET @@SESSION.SQL_LOG_BIN = 0;
ALTER USER 'root'@'localhost' IDENTIFIED BY '$root';
CREATE USER 'root'@'%' IDENTIFIED BY '$root';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE USER '$(sql_string "$MYSQL_REPLICATION_USER")'@'%'
    IDENTIFIED WITH caching_sha2_password BY '$repl';
GRANT REPLICATION SLAVE, BACKUP_ADMIN ON *.* TO '$(sql_string "$MYSQL_REPLICATION_USER")'@'%';
SQL
}

initialize_primary() {
    discard_on_failure=$STAGING_DATADIR
    if [ -d "$MYSQL_DATADIR/mysql" ]; then
        log "ordinal 0: data directory initialized before; leaving it alone"
        exit 0
    fi
    if [ -e "$STAGING_DATADIR" ]; then
        log "discarding an interrupted first initialization"
        rm -rf "$STAGING_DATADIR"
    fi
    if [ -e "$MYSQL_DATADIR" ]; then
        # No system schema: not a data directory MySQL could start on.
        log "discarding $MYSQL_DATADIR: it has no mysql/ system schema"
        rm -rf "$MYSQL_DATADIR"
    fi
    [ -n "${MYSQL_ROOT_PASSWORD:-}" ] || fail "MYSQL_ROOT_PASSWORD is empty"
    [ -n "${MYSQL_REPLICATION_PASSWORD:-}" ] || fail "MYSQL_REPLICATION_PASSWORD is empty"
    log "ordinal 0: initializing a new data directory"
    mysqld --initialize-insecure --default-time-zone=SYSTEM --datadir="$STAGING_DATADIR" ||
        fail "mysqld --initialize-insecure failed"
    start_server --datadir="$STAGING_DATADIR" --default-time-zone=SYSTEM ||
        fail "could not start the bootstrap mysqld"
    local err
    if [ -d /usr/share/zoneinfo ]; then
        # as the entrypoint does (sed: https://bugs.mysql.com/bug.php?id=20545)
        err=$({ mysql_tzinfo_to_sql /usr/share/zoneinfo 2>/dev/null |
            sed 's/Local time zone must be set--see zic manual page/FCTY/' |
            mysql --no-defaults "$MYSQL_CHARSET" --socket="$SEED_SOCKET" --user=root --database=mysql; } 2>&1 >/dev/null) ||
            fail "loading the time zone tables failed: $(redact_error "$err")"
    fi
    err=$(bootstrap_sql | mysql --no-defaults "$MYSQL_CHARSET" --socket="$SEED_SOCKET" --user=root 2>&1 >/dev/null) ||
        fail "setting up the accounts failed: $(redact_error "$err")"
    # The root option file the probes use must open the server it was written for.
    err=$(mysqladmin --defaults-extra-file="$MYSQL_CLIENT_CNF" --socket="$SEED_SOCKET" shutdown 2>&1 >/dev/null) ||
        fail "root cannot log in with the option file written from the Secret: $(redact_error "$err")"
    stop_server wait
    mv "$STAGING_DATADIR" "$MYSQL_DATADIR"
    sync
    log "ordinal 0: data directory initialized (root@localhost, root@'%', '$MYSQL_REPLICATION_USER'@'%')"
}

clone_from() {
    local donor=$1 out rc=0
    log "cloning from $donor"
    # The recipient side runs as the seed server's local root (all privileges,
    # CLONE_ADMIN included); the donor account needs BACKUP_ADMIN there.
    out=$(mysql --no-defaults "$MYSQL_CHARSET" --socket="$SEED_SOCKET" --user=root 2>&1 <<SQL
SET GLOBAL clone_valid_donor_list = '$donor:$MYSQL_PORT';
CLONE INSTANCE FROM '$(sql_string "$MYSQL_REPLICATION_USER")'@'$donor':$MYSQL_PORT
    IDENTIFIED BY '$(sql_string "$MYSQL_REPLICATION_PASSWORD")' REQUIRE SSL;
SQL
    ) || rc=$?
    if [ "$rc" -eq 0 ]; then
        return 0
    fi
    case $out in
        # Cloned; the server wants a supervisor to restart it and has none here.
        *"ERROR 3707"*) return 0 ;;
        # ER_CLONE_DONOR_VERSION: the members run two versions (an upgrade in progress).
        *"ERROR 3864"*) log "$donor runs another MySQL version than this member; CLONE needs a donor of its own series" ;;
    esac
    log "clone from $donor failed: $(redact_error "$out")"
    return 1
}

discard_on_failure=$MYSQL_DATADIR
ord=$(ordinal)
if [ "$ord" -eq 0 ]; then
    initialize_primary
    exit 0
fi
if [ -f "$SEED_MARKER" ] && [ -d "$MYSQL_DATADIR/mysql" ]; then
    log "data directory already seeded: nothing to do"
    exit 0
fi
if [ -e "$MYSQL_DATADIR" ]; then
    log "discarding an unfinished seed in $MYSQL_DATADIR"
    rm -rf "$MYSQL_DATADIR"
fi
rm -f "$SEED_MARKER"

# The previous member first (spreads the load off the primary), then the primary,
# then the members above this one that exist. CLONE takes only a donor of the
# recipient's own series; during an upgrade the StatefulSet rolls from the highest
# ordinal down, so a member re-seeded then finds one of its version above it.
donors=$(member_host $((ord - 1)))
if [ "$ord" -gt 1 ]; then
    donors="$donors $(member_host 0)"
fi
above=$((ord + 1))
while [ "$above" -lt "$MYSQL_MAX_MEMBERS" ]; do
    if timeout 5 getent hosts "$(member_host "$above")" >/dev/null 2>&1; then
        donors="$donors $(member_host "$above")"
    fi
    above=$((above + 1))
done

cloned=''
for donor in $donors; do
    initialize || fail "mysqld --initialize-insecure failed"
    start_server || fail "could not start the seed mysqld"
    if clone_from "$donor"; then
        stop_server wait
        cloned=$donor
        break
    fi
    stop_server
done
[ -n "$cloned" ] || fail "no donor could be cloned (tried: $donors); retrying on the next start"
# Clone keeps the recipient's configuration, auto.cnf included; removing it anyway
# guarantees this member a server_uuid of its own (a duplicate breaks replication).
rm -f "$MYSQL_DATADIR/auto.cnf"

# The first start after a clone finishes its recovery; then clone_status must
# report success. The data now carries the donor's accounts, so root
# authenticates with the cluster's root password.
start_server || fail "the cloned data directory does not start"
state=$(mysql --defaults-extra-file="$MYSQL_CLIENT_CNF" --socket="$SEED_SOCKET" \
    --batch --skip-column-names \
    -e "SELECT CONCAT(STATE, ':', ERROR_NO) FROM performance_schema.clone_status" 2>/dev/null) ||
    fail "cannot read clone_status with the cluster's root credentials"
case $state in
    Completed:0) ;;
    *) fail "the clone did not complete (clone_status: ${state:-empty})" ;;
esac
mysqladmin --defaults-extra-file="$MYSQL_CLIENT_CNF" --socket="$SEED_SOCKET" \
    shutdown >/dev/null 2>&1 || fail "cannot shut down the seed mysqld"
stop_server wait

date -u +%Y-%m-%dT%H:%M:%SZ >"$SEED_MARKER"
log "member $ord seeded from $cloned"

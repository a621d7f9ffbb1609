#!/bin/bash
# Init container `seed`: gives a new replica a copy of the cluster's data with
# MySQL's CLONE plugin before its mysqld starts.
#
# Idempotent: a data directory that was seeded and verified before (marker file)
# is left alone, so restarts and reschedules with the same PVC skip this; an
# interrupted seed (data without marker) is discarded and redone. Ordinal 0 is
# never touched: the image's entrypoint initializes the primary.
#
# How: initialize an empty data directory, start a private socket-only mysqld on
# it, CLONE INSTANCE from the previous member (falling back to the primary) with
# the replication account, let that server stop (no supervisor restarts it:
# ERROR 3707 is the expected outcome), start it once more to finish the clone
# recovery and check performance_schema.clone_status, stop it, write the marker.
set -eu
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}/lib.sh"

SEED_SOCKET=/tmp/mysqld-seed.sock
SEED_PID_FILE=/tmp/mysqld-seed.pid
server_pid=''

ord=$(ordinal)
if [ "$ord" -eq 0 ]; then
    log "ordinal 0 is the primary: nothing to seed"
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

start_server() {
    mysqld --skip-networking --socket="$SEED_SOCKET" --pid-file="$SEED_PID_FILE" \
        --read-only=OFF --super-read-only=OFF --skip-replica-start &
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

fail() {
    log "$*"
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$MYSQL_DATADIR"
    exit 1
}

initialize() {
    rm -rf "$MYSQL_DATADIR"
    mysqld --initialize-insecure
}

clone_from() {
    local donor=$1 out rc=0
    log "cloning from $donor"
    # The recipient side runs as the seed server's local root (all privileges,
    # CLONE_ADMIN included); the donor account needs BACKUP_ADMIN there.
    out=$(mysql --no-defaults --socket="$SEED_SOCKET" --user=root 2>&1 <<SQL
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
    esac
    log "clone from $donor failed: $(redact_error "$out")"
    return 1
}

# The previous member first (spreads the load off the primary), then the primary.
donors=$(member_host $((ord - 1)))
if [ "$ord" -gt 1 ]; then
    donors="$donors $(member_host 0)"
fi

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

#!/bin/bash
# Sidecar `replication`: keeps a replica attached to the primary (ordinal 0).
#
# Every interval, once the local mysqld answers over TCP:
#   - no channel, or one pointing elsewhere / without GTID auto-positioning:
#     CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1, then START REPLICA;
#   - both threads stopped without an applier error: START REPLICA;
#   - anything else (running, connecting, or an SQL error that needs a human):
#     left alone; the readiness probe reports it.
# Reruns are harmless: the statements are only issued when the state differs,
# and the channel lives in the data directory, so restarts and reschedules with
# the same PVC resume where they were.
#
# On the primary (ordinal 0) it keeps the applications' accounts (mysql.users)
# as the stack says: app-users.sh runs at start and whenever the mounted list or
# a password changes; a failed run is retried every APP_USERS_RETRY seconds.
set -eu
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}/lib.sh"

interval=${REPLICATION_CHECK_INTERVAL:-15}
retry=${APP_USERS_RETRY:-300}
users_dir=${MYSQL_APP_USERS_DIR:-/etc/mysql/app-users}
source_host=$(member_host 0)
trap 'log "stopping"; exit 0' TERM INT

idle() {
    sleep "$1" &
    wait "$!" || true
}

configure_source() {
    local had_channel=$1
    log "pointing replication at $source_host"
    {
        if [ "$had_channel" = yes ]; then
            printf 'STOP REPLICA;\n'
        fi
        # SSL protects the caching_sha2_password exchange and the stream;
        # GET_SOURCE_PUBLIC_KEY covers a source that has no certificate.
        cat <<SQL
CHANGE REPLICATION SOURCE TO
    SOURCE_HOST = '$(sql_string "$source_host")',
    SOURCE_PORT = $MYSQL_PORT,
    SOURCE_USER = '$(sql_string "$MYSQL_REPLICATION_USER")',
    SOURCE_PASSWORD = '$(sql_string "$MYSQL_REPLICATION_PASSWORD")',
    SOURCE_AUTO_POSITION = 1,
    SOURCE_SSL = 1,
    GET_SOURCE_PUBLIC_KEY = 1,
    SOURCE_CONNECT_RETRY = 10,
    SOURCE_RETRY_COUNT = 86400;
START REPLICA;
SQL
    } | mysql_local_secret
}

reconcile() {
    if [ -e "$PAUSE_MARKER" ]; then
        log "paused by $PAUSE_MARKER"
        return 0
    fi
    if ! mysql_local --skip-column-names -e 'SELECT 1' >/dev/null 2>&1; then
        log "local mysqld not reachable yet"
        return 0
    fi
    local status host auto user io sql sql_errno had_channel=no
    status=$(mysql_local --vertical -e 'SHOW REPLICA STATUS')
    host=$(status_field "$status" Source_Host)
    auto=$(status_field "$status" Auto_Position)
    user=$(status_field "$status" Source_User)
    io=$(status_field "$status" Replica_IO_Running)
    sql=$(status_field "$status" Replica_SQL_Running)
    sql_errno=$(status_field "$status" Last_SQL_Errno)
    if [ -n "$host" ]; then
        had_channel=yes
    fi
    if [ "$host" != "$source_host" ] || [ "$auto" != 1 ] || [ "$user" != "$MYSQL_REPLICATION_USER" ]; then
        configure_source "$had_channel"
        return
    fi
    if [ "$io" = No ] && [ "$sql" = No ] && [ "${sql_errno:-0}" = 0 ]; then
        log "replication is stopped without an applier error; starting it"
        printf 'START REPLICA;\n' | mysql_local_secret
    fi
}

# A fingerprint of the mounted account list and passwords (contents go to cksum's
# stdin, never to a command line).
users_fingerprint() {
    local f
    for f in "$users_dir/users" "$users_dir"/passwords/*; do
        if [ -f "$f" ]; then
            printf '%s\n' "${f##*/}"
            cat "$f"
        fi
    done | cksum
}

# Applies the accounts when they changed since the last successful run; after a
# failure, waits $retry seconds before trying the same content again (a temporary
# failure, mysqld still starting, is retried at the next pass).
applied='' failed_at=-1
sync_users() {
    local now=$SECONDS fp rc=0
    fp=$(users_fingerprint)
    if [ "$fp" = "$applied" ]; then
        return 0
    fi
    if [ "$failed_at" -ge 0 ] && [ "$fp" = "${failed_fp:-}" ] && [ $((now - failed_at)) -lt "$retry" ]; then
        return 0
    fi
    "$MYSQL_SCRIPTS_DIR/app-users.sh" || rc=$?
    case $rc in
        0) applied=$fp failed_at=-1 ;;
        75) ;; # mysqld not up yet
        *)
            failed_at=$now failed_fp=$fp
            log "applying mysql.users failed (exit $rc); retrying in ${retry}s or when the list changes"
            ;;
    esac
    return 0
}

ord=$(ordinal)
if [ "$ord" -eq 0 ]; then
    log "member 0 is the primary: nothing to replicate; keeping the applications' accounts"
    if [ -n "${REPLICATION_AGENT_ONCE:-}" ]; then
        sync_users
        exit 0
    fi
    while :; do
        sync_users
        idle "$interval"
    done
fi

if [ -n "${REPLICATION_AGENT_ONCE:-}" ]; then # one pass, for tests and manual runs
    reconcile
    exit
fi
while :; do
    reconcile || log "reconcile failed; retrying in ${interval}s"
    idle "$interval"
done

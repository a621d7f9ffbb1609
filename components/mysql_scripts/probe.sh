#!/bin/bash
# Probes of the mysql container: probe.sh startup|liveness|readiness.
#   startup, liveness: mysqladmin ping over TCP (answers even when a login is
#     refused, so only a dead or hung server fails it);
#   readiness: a query succeeds; on replicas also Replica_IO_Running and
#     Replica_SQL_Running are both Yes.
# TCP on purpose: a server that listens on its socket only (an image entrypoint's
# temporary bootstrap server) must not look ready.
set -eu
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}/lib.sh"

case ${1:-} in
    startup | liveness)
        exec mysqladmin --defaults-extra-file="$MYSQL_CLIENT_CNF" --protocol=TCP \
            --host=127.0.0.1 --port="$MYSQL_PORT" --connect-timeout=5 ping >/dev/null
        ;;
    readiness)
        mysql_local --skip-column-names -e 'SELECT 1' >/dev/null
        if [ "$(ordinal)" -eq 0 ]; then
            exit 0
        fi
        status=$(mysql_local --vertical -e 'SHOW REPLICA STATUS')
        io=$(status_field "$status" Replica_IO_Running)
        sql=$(status_field "$status" Replica_SQL_Running)
        if [ "$io" = Yes ] && [ "$sql" = Yes ]; then
            exit 0
        fi
        echo "replication not running: Replica_IO_Running=${io:-none} Replica_SQL_Running=${sql:-none}" >&2
        exit 1
        ;;
    *)
        echo "usage: $0 startup|liveness|readiness" >&2
        exit 2
        ;;
esac

#!/bin/bash
# /docker-entrypoint-initdb.d hook: runs once, on the primary's first start with
# an empty data directory, while the image's entrypoint has its socket-only
# bootstrap server up and the root password already set. Creates the account
# replicas replicate with and clone from (clone donor side: BACKUP_ADMIN).
# Replicas get it through their clone; they never run this.
set -eu
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}/lib.sh"

user=$(sql_string "$MYSQL_REPLICATION_USER")
err=$(mysql --defaults-extra-file="$MYSQL_CLIENT_CNF" --protocol=SOCKET 2>&1 >/dev/null <<SQL
CREATE USER IF NOT EXISTS '$user'@'%'
    IDENTIFIED WITH caching_sha2_password BY '$(sql_string "$MYSQL_REPLICATION_PASSWORD")';
GRANT REPLICATION SLAVE, BACKUP_ADMIN ON *.* TO '$user'@'%';
SQL
) || {
    log "creating the replication account failed: $(redact_error "$err")"
    exit 1
}
log "replication account '$MYSQL_REPLICATION_USER' ready"

#!/bin/bash
# Applications' own accounts (`mysql.users` of the stack), run by the primary's
# `replication` sidecar whenever the list or a password changes, and once at start.
#
# Reads $MYSQL_APP_USERS_DIR (a projected volume that the kubelet keeps current):
#   users              one line per account: "<user> <readWrite|readOnly> <db>[,<db>...]"
#   passwords/<user>   the account's password (from the <cluster>-app-users Secret)
# and, for each account: creates its databases if missing, creates the account or
# resets its password, and leaves it exactly the privileges of its access level on
# its databases (nothing global, no GRANT OPTION). Accounts the platform created
# carry the user attribute {"managedBy": "k8s-platform"}; one that is no longer
# listed is dropped (its databases and data stay). An account of the same name
# that someone else created is never touched: it is reported and skipped.
# Account statements go to the binary log, so the replicas get the same accounts.
# Passwords travel on the client's stdin only; errors are logged without the SQL.
set -eu
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}/lib.sh"

users_dir=${MYSQL_APP_USERS_DIR:-/etc/mysql/app-users}
marker='{"managedBy": "k8s-platform"}'
read_write='SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, TRIGGER, EVENT'
read_only='SELECT, SHOW VIEW, EXECUTE'

valid_name() { # value max-length
    case $1 in
        '' | *[!A-Za-z0-9_]*) return 1 ;;
    esac
    [ "${#1}" -le "$2" ]
}

if ! mysql_local --skip-column-names -e 'SELECT 1' >/dev/null 2>&1; then
    log "local mysqld not reachable yet"
    exit 75 # EX_TEMPFAIL: the agent tries again later
fi

# "<user>\t<managedBy>" for every account on '%'
accounts=$(mysql_local --skip-column-names -e "SELECT User, IFNULL(JSON_UNQUOTE(JSON_EXTRACT(Attribute, '\$.managedBy')), '') FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE Host = '%'") || {
    log "cannot list the accounts"
    exit 1
}
owner_of() { # user -> prints its managedBy ("" if unmanaged); fails if there is no such account
    local u m
    while IFS=$'\t' read -r u m; do
        if [ "$u" = "$1" ]; then
            printf '%s' "${m:-}"
            return 0
        fi
    done <<<"$accounts"
    return 1
}

failed=0
listed=' '
sql=''
users_file=$users_dir/users
if [ -f "$users_file" ]; then
    while read -r user access dbs rest || [ -n "${user:-}" ]; do
        [ -n "${user:-}" ] || continue
        case $user in '#'*) continue ;; esac
        if ! valid_name "$user" 32 || [ -n "${rest:-}" ] || [ -z "${dbs:-}" ]; then
            log "skipping a malformed line of $users_file (user '${user}')"
            failed=1
            continue
        fi
        case $access in
            readWrite) privileges=$read_write ;;
            readOnly) privileges=$read_only ;;
            *)
                log "user '$user': unknown access '$access'; skipped"
                failed=1
                continue
                ;;
        esac
        listed="$listed$user "
        if owner=$(owner_of "$user") && [ "$owner" != k8s-platform ]; then
            log "user '$user' exists and was not created by the platform; left alone (drop or rename it, then the platform creates its own)"
            failed=1
            continue
        fi
        password_file=$users_dir/passwords/$user
        if [ ! -s "$password_file" ]; then
            log "user '$user': no password in $password_file; skipped"
            failed=1
            continue
        fi
        password=''
        read_secret_file password "$password_file"
        pw=$(sql_string "$password")
        statements="CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED WITH caching_sha2_password BY '$pw' ATTRIBUTE '$marker';
ALTER USER '$user'@'%' IDENTIFIED WITH caching_sha2_password BY '$pw';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM '$user'@'%';
"
        IFS=, read -r -a databases <<<"$dbs"
        bad_db=0
        for db in "${databases[@]}"; do
            if ! valid_name "$db" 64; then
                bad_db=1
                break
            fi
            statements="$statements""CREATE DATABASE IF NOT EXISTS \`$db\`;
GRANT $privileges ON \`$db\`.* TO '$user'@'%';
"
        done
        if [ "$bad_db" -ne 0 ]; then
            log "user '$user': a database name in '$dbs' is not a plain name; skipped"
            failed=1
            continue
        fi
        sql="$sql$statements"
        log "user '$user': $access on $dbs"
    done <"$users_file"
fi

# Accounts the platform created that are no longer listed.
while IFS=$'\t' read -r u m; do
    [ -n "${u:-}" ] || continue
    if [ "${m:-}" = k8s-platform ] && [ "${listed#* "$u" }" = "$listed" ] && valid_name "$u" 32; then
        sql="$sql""DROP USER IF EXISTS '$u'@'%';
"
        log "user '$u' is no longer in mysql.users: dropping the account (its databases stay)"
    fi
done <<<"$accounts"

if [ -n "$sql" ]; then
    printf '%s' "$sql" | mysql_local_secret || failed=1
fi
exit "$failed"

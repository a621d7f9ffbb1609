# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this
# Helpers shared by the MySQL cluster scripts. Sourced, never executed.
#
# Every script reads its settings from the environment the StatefulSet gives it:
#   POD_NAME                    this pod's name (<cluster>-<ordinal>), from the downward API
#   MYSQL_CLUSTER_NAME          the StatefulSet name
#   MYSQL_SERVICE_DOMAIN        <headless service>.<namespace>.svc.<cluster domain>
#   MYSQL_REPLICATION_USER      the replication (and clone donor) account
#   MYSQL_MAX_MEMBERS           the most members a cluster may have (mysql.replicas)
#   MYSQL_ROOT_PASSWORD         secretKeyRef, only where a script needs it
#   MYSQL_REPLICATION_PASSWORD  secretKeyRef, only where a script needs it
# Passwords never reach a command line: SQL goes to the client on stdin and
# the client authenticates with an option file written at runtime (mode 0600).

# Paths are overridable only so the scripts can be exercised outside a pod.
MYSQL_DATA_ROOT=${MYSQL_DATA_ROOT:-/var/lib/mysql}
MYSQL_DATADIR=${MYSQL_DATADIR:-$MYSQL_DATA_ROOT/data}
MYSQL_CONF_DIR=${MYSQL_CONF_DIR:-/etc/mysql/conf.d}
MYSQL_CLIENT_CNF=${MYSQL_CLIENT_CNF:-/etc/mysql/client/root.cnf}
MYSQL_SCRIPTS_DIR=${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}
MYSQL_PORT=3306
# Every client that sends SQL: without a locale (the images set none) the client talks
# latin1, and a non-ASCII password in a statement reaches the server re-encoded (CREATE
# USER happens to hash the bytes as sent, but CLONE ... IDENTIFIED BY and CHANGE
# REPLICATION SOURCE ... SOURCE_PASSWORD then log in with other bytes than the account's).
MYSQL_CHARSET=--default-character-set=utf8mb4
# Written after a replica's data directory was cloned and verified; its absence
# next to a non-empty data directory means an interrupted seed.
SEED_MARKER=$MYSQL_DATA_ROOT/.k8s-platform-seeded
# An operator creates this file to keep the replication agent's hands off
# (e.g. while replication is stopped on purpose).
PAUSE_MARKER=$MYSQL_DATA_ROOT/.k8s-platform-replication-paused

log() {
    printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${0##*/}" "$*" >&2
}

pod_name() {
    if [ -n "${POD_NAME:-}" ]; then
        printf '%s' "$POD_NAME"
    else
        cat /proc/sys/kernel/hostname
    fi
}

# The StatefulSet ordinal: the digits after the last '-' of the pod name.
ordinal() {
    local name ord
    name=$(pod_name)
    ord=${name##*-}
    case $ord in
        '' | *[!0-9]*)
            log "cannot read an ordinal from pod name '$name'"
            return 1
            ;;
    esac
    printf '%s' "$ord"
}

# Stable DNS name of member N through the headless service.
member_host() {
    printf '%s-%s.%s' "$MYSQL_CLUSTER_NAME" "$1" "$MYSQL_SERVICE_DOMAIN"
}

# Escapes a value for a single-quoted SQL string literal (builtins only, so the
# value never appears in a process's arguments). Line breaks become \n and \r: the
# client would otherwise drop a carriage return before a line end.
sql_string() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\'/\'\'}
    v=${v//$'\n'/\\n}
    v=${v//$'\r'/\\r}
    printf '%s' "$v"
}

# Escapes a value for a double-quoted option-file value. MySQL's option-file reader
# ends a quoted value at an unescaped quote and treats what follows a '#' outside
# quotes as a comment; inside quotes it reads \" \' \\ \n \r \t \b \s as escapes.
# One line per option, so line breaks are escaped too.
cnf_string() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\"/\\\"}
    v=${v//$'\n'/\\n}
    v=${v//$'\r'/\\r}
    v=${v//$'\t'/\\t}
    printf '%s' "$v"
}

# read_secret_file VAR FILE: sets VAR to the file's content exactly, trailing newlines
# included ($(<file) would strip them, and the application reading the same Secret
# would then disagree with the account).
read_secret_file() {
    IFS= read -r -d '' "$1" <"$2" || true
}

# Writes the root client option file the probes and the agent authenticate with.
write_client_cnf() {
    local dir tmp
    dir=${MYSQL_CLIENT_CNF%/*}
    tmp=$(umask 077 && mktemp "$dir/.root.cnf.XXXXXX")
    {
        printf '[client]\n'
        printf 'user=root\n'
        printf 'password="%s"\n' "$(cnf_string "$MYSQL_ROOT_PASSWORD")"
    } >"$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$MYSQL_CLIENT_CNF"
}

# The local mysqld over TCP: fails while only a socket-only bootstrap server runs,
# which is what probes and the agent want.
mysql_local() {
    mysql --defaults-extra-file="$MYSQL_CLIENT_CNF" "$MYSQL_CHARSET" --protocol=TCP \
        --host=127.0.0.1 --port="$MYSQL_PORT" --connect-timeout=5 --batch "$@"
}

# Runs the SQL on stdin against the local server; on failure logs the error
# without the statement text, which may contain a password.
mysql_local_secret() {
    local err rc=0
    err=$(mysql_local --skip-column-names 2>&1 >/dev/null) || rc=$?
    if [ "$rc" -ne 0 ]; then
        log "mysql failed (exit $rc): $(redact_error "$err")"
    fi
    return "$rc"
}

# Keeps only the "ERROR nnnn (state)" part of client errors (and mysqladmin's
# "error: '...'" lines): a parse error's "near '...'" excerpt could quote a password.
redact_error() {
    local line out=''
    while IFS= read -r line; do
        case $line in
            ERROR* | error:*) out="$out${out:+; }${line%% near *}" ;;
        esac
    done <<<"$1"
    printf '%s' "${out:-no error text}"
}

# Value of one field in `mysql --vertical` output ("  Field: value" lines).
status_field() {
    local line key=$2 value
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            "$key:"*)
                value=${line#"$key:"}
                printf '%s' "${value# }"
                return 0
                ;;
        esac
    done <<<"$1"
    return 0
}

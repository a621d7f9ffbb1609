#!/bin/bash
# Init container `config`: picks primary.cnf (ordinal 0) or replica.cnf (every
# other ordinal), writes the member's server_id (100 + ordinal) and report_host,
# and writes the root client option file used by probes and the agent.
set -eu
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${MYSQL_SCRIPTS_DIR:-/opt/k8s-platform/mysql}/lib.sh"

ord=$(ordinal)
role=replica
if [ "$ord" -eq 0 ]; then
    role=primary
fi

cp "$MYSQL_SCRIPTS_DIR/mysql.cnf" "$MYSQL_CONF_DIR/10-mysql.cnf"
cp "$MYSQL_SCRIPTS_DIR/$role.cnf" "$MYSQL_CONF_DIR/20-role.cnf"
cat >"$MYSQL_CONF_DIR/30-identity.cnf" <<CNF
[mysqld]
server_id=$((100 + ord))
report_host=$(member_host "$ord")
CNF
chmod 0644 "$MYSQL_CONF_DIR"/*.cnf

write_client_cnf
log "member $ord configured as $role (server_id $((100 + ord)))"

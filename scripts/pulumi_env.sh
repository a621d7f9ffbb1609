#!/usr/bin/env bash
# Print the shell lines that put a suitable Pulumi CLI on PATH for `make preview/up/…`.
#
#   eval "$(scripts/pulumi_env.sh)"
#
# 1. A `pulumi` on PATH at or above the `pulumi` pin of requirements.txt (the SDK the
#    program runs with must not be newer than the CLI): used as it is, with its own
#    PULUMI_HOME; the provider plugins are installed at the pinned versions with
#    `pulumi plugin install` when missing (needs internet, like Pulumi's own automatic
#    plugin acquisition, which stays on).
# 2. Else the offline engine (`make engine`, for machines without internet), if built.
# 3. Else a message saying how to get either, and exit 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pin() { sed -n "s/^$1==\\([0-9][0-9.]*\\).*/\\1/p" "$ROOT/requirements.txt"; }
MIN=$(pin pulumi)
PLUGINS="kubernetes=$(pin pulumi-kubernetes) command=$(pin pulumi-command)"

version_ge() { # a b: a >= b
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

engine_dir=$("$ROOT/scripts/engine.sh" --print-dir)
if p=$(command -v pulumi 2>/dev/null) && [[ $p != "$engine_dir/bin/pulumi" ]]; then
  v=$(pulumi version 2>/dev/null | sed 's/^v//') || v=""
  if [[ -n $v ]] && version_ge "$v" "$MIN"; then
    for plugin in $PLUGINS; do
      name=${plugin%%=*} want=${plugin#*=}
      if ! pulumi plugin ls 2>/dev/null | grep -Eq "^$name[[:space:]]+resource[[:space:]]+$want[[:space:]]"; then
        echo "installing the $name plugin v$want (pulumi plugin install resource $name $want)" >&2
        pulumi plugin install resource "$name" "$want" >&2 ||
          { echo "pulumi_env.sh: could not install plugin $name v$want; without internet use the offline engine: make engine" >&2; exit 1; }
      fi
    done
    echo "using pulumi v$v from $p (>= v$MIN)" >&2
    echo "export PATH=\"$ROOT/.venv/bin:\$PATH\" VIRTUAL_ENV=\"$ROOT/.venv\""
    exit 0
  fi
  echo "pulumi_env.sh: $p is v${v:-?}; this program needs v$MIN or newer (its SDK is v$MIN)" >&2
fi
# the CLI and plugins are enough here; the local control plane is only for the e2e tier
if K8SP_ENGINE_SKIP="etcd kubernetes kwok" "$ROOT/scripts/engine.sh" --check >/dev/null 2>&1; then
  echo "using the offline engine in $engine_dir (plugins at exactly the pinned versions, no downloads)" >&2
  echo "export PATH=\"$engine_dir/bin:\$PATH\" PULUMI_HOME=\"$engine_dir/pulumi-home\""
  echo "export PULUMI_IGNORE_AMBIENT_PLUGINS=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true"
  echo "export PATH=\"$ROOT/.venv/bin:\$PATH\" VIRTUAL_ENV=\"$ROOT/.venv\""
  exit 0
fi
cat >&2 <<MSG
pulumi_env.sh: no Pulumi CLI to use. Either
  - install the Pulumi CLI v$MIN or newer (https://www.pulumi.com/docs/iac/download-install/), or
  - on a machine without internet, build the offline engine: make engine
MSG
exit 1

#!/bin/sh
# k8s-platform: one etcd snapshot into DIR, keeping the newest RETENTION of them.
#
#   etcd-snapshot.sh DIR RETENTION
#
# Runs on an etcd member: from the program's playbook before the cluster changes, and in
# the scheduled CronJob (a busybox shell with the node's own etcdctl mounted). POSIX sh.
# Environment: ETCDCTL (the etcdctl binary, default: etcdctl on PATH), ETCDCTL_ENDPOINTS,
# and ETCDCTL_CERT / ETCDCTL_KEY / ETCDCTL_CACERT (kubespray's admin certificate of this
# member; empty ones are dropped, for a plain-http etcd).
# The snapshot is written as DIR/.partial.db and renamed only once etcdctl has saved and
# verified it, so DIR never holds a half-written etcd-snapshot-*.db. Prints the file kept.
set -eu

if [ "$#" -ne 2 ]; then
  echo "usage: etcd-snapshot.sh DIR RETENTION" >&2
  exit 2
fi
dir=$1
retention=$2
case $retention in
  '' | *[!0-9]*) echo "etcd-snapshot: RETENTION must be a whole number, got '$retention'" >&2; exit 2 ;;
esac
if [ "$retention" -lt 1 ]; then
  echo "etcd-snapshot: RETENTION must be at least 1" >&2
  exit 2
fi
etcdctl=${ETCDCTL:-etcdctl}
for var in ETCDCTL_CERT ETCDCTL_KEY ETCDCTL_CACERT; do
  eval "value=\${$var:-}"
  # shellcheck disable=SC2154  # value is set by the eval above
  if [ -z "$value" ]; then unset "$var"; fi
done
export ETCDCTL_API=3

umask 077
mkdir -p "$dir"
partial="$dir/.partial.db"
rm -f "$partial" "$partial.part"
if ! out=$("$etcdctl" snapshot save "$partial" 2>&1); then
  echo "etcd-snapshot: etcdctl snapshot save failed:" >&2
  printf '%s\n' "$out" | tail -n 20 >&2
  rm -f "$partial" "$partial.part"
  exit 1
fi
if [ ! -s "$partial" ]; then
  echo "etcd-snapshot: etcdctl reported success but wrote no snapshot" >&2
  exit 1
fi
# names are UTC timestamps, so they sort by time; two snapshots in one second wait for the next
name=""
tries=0
while :; do
  name="$dir/etcd-snapshot-$(date -u +%Y%m%dT%H%M%SZ).db"
  [ ! -e "$name" ] && break
  tries=$((tries + 1))
  if [ "$tries" -gt 5 ]; then
    echo "etcd-snapshot: $name exists; is the clock moving?" >&2
    rm -f "$partial"
    exit 1
  fi
  sleep 1
done
mv "$partial" "$name"
size=$(wc -c <"$name" | tr -d ' ')

# retention: the newest RETENTION snapshots stay; the glob lists them oldest first
total=0
for f in "$dir"/etcd-snapshot-*.db; do
  [ -e "$f" ] && total=$((total + 1))
done
excess=$((total - retention))
for f in "$dir"/etcd-snapshot-*.db; do
  [ "$excess" -gt 0 ] || break
  rm -f "$f"
  excess=$((excess - 1))
done
echo "etcd snapshot saved: $name ($size bytes); keeping the newest $retention in $dir"

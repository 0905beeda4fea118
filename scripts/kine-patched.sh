#!/usr/bin/env bash
# Prepares Kine with our patches (tools/kine-patches) for `go build
# -modfile`: a copy of the pinned Kine module with the patches applied, and
# a copy of our go.mod that replaces the module with it, so every other
# dependency keeps the version go.mod pins. Prints the modfile's path and a
# short hash of the patches (for cache keys):
#   read -r modfile patches < <(scripts/kine-patched.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(go mod download -json github.com/k3s-io/kine | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "kine-patched: the kine module is not in the module cache" >&2; exit 1; }
work=$(mktemp -d /tmp/twonode-kine.XXXXXX)
cp -r "$dir" "$work/kine"
chmod -R u+w "$work/kine"
for p in tools/kine-patches/*.patch; do
	(cd "$work/kine" && patch -s -p1 --no-backup-if-mismatch) <"$p" ||
		{ echo "kine-patched: $p does not apply to $dir" >&2; exit 1; }
done
cp go.mod "$work/go.mod"
cp go.sum "$work/go.sum"
echo "replace github.com/k3s-io/kine => $work/kine" >>"$work/go.mod"
echo "$work/go.mod $(cat tools/kine-patches/*.patch | sha256sum | cut -c1-12)"

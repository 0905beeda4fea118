#!/usr/bin/env bash
# Builds the binaries the image carries, for one architecture, exactly as
# the Earthfile's +agent and +kine targets do (they run this script):
#   twonode                  the agent and operator CLI
#   agent-provider-twonode   the Kairos plugin (./cmd/agent-provider-twonode)
#   kine                     from the version go.mod pins
# all with CGO_ENABLED=0 (static; Kine's SQLite driver is then the pure-Go
# one, unused by twonode), -trimpath and stripped (-s -w).
#
# Usage: image-binaries.sh ARCH OUTDIR [--allow-missing-plugin]
#   ARCH: amd64 or arm64. With TWONODE_CACHE set (scripts/build.sh's cache,
#   /var/cache/twonode), Kine is kept there between runs, keyed by its
#   version, the Go version and ARCH: it takes minutes to build.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:?usage: image-binaries.sh ARCH OUTDIR [--allow-missing-plugin]}
out=${2:?usage: image-binaries.sh ARCH OUTDIR [--allow-missing-plugin]}
allow_missing_plugin=false
[ "${3:-}" = --allow-missing-plugin ] && allow_missing_plugin=true
case $arch in amd64 | arm64) ;; *) echo "image-binaries: ARCH must be amd64 or arm64 (got $arch)" >&2; exit 1 ;; esac

export CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-trimpath
mkdir -p "$out"
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}

go build -ldflags "-s -w -X github.com/twonode-edge/twonode/bootstrap/agent.Version=$version" -o "$out/twonode" ./cmd/twonode
if [ -d cmd/agent-provider-twonode ]; then
	go build -ldflags "-s -w" -o "$out/agent-provider-twonode" ./cmd/agent-provider-twonode
elif $allow_missing_plugin; then
	echo "image-binaries: WARNING: ./cmd/agent-provider-twonode does not exist; no plugin built (--allow-missing-plugin)" >&2
	rm -f "$out/agent-provider-twonode"
else
	echo "image-binaries: ./cmd/agent-provider-twonode does not exist: the image needs the Kairos plugin" >&2
	exit 1
fi

kine_version=$(go list -m -f '{{.Version}}' github.com/k3s-io/kine)
if [ -n "${KINE_VERSION:-}" ] && [ "$KINE_VERSION" != "$kine_version" ]; then
	echo "image-binaries: KINE_VERSION=$KINE_VERSION but go.mod pins kine $kine_version: run go get github.com/k3s-io/kine@$KINE_VERSION first" >&2
	exit 1
fi
read -r modfile patches < <(scripts/kine-patched.sh) # our fixes to Kine (tools/kine-patches)
build_kine() {
	go build -modfile "$modfile" -ldflags "-s -w -X github.com/k3s-io/kine/pkg/version.Version=$kine_version" -o "$1" github.com/k3s-io/kine
}
if [ -n "${TWONODE_CACHE:-}" ]; then
	mkdir -p "$TWONODE_CACHE"
	cached="$TWONODE_CACHE/kine-$kine_version-p$patches-$(go env GOVERSION)-linux-$arch-static"
	if [ ! -x "$cached" ]; then
		echo "image-binaries: building kine $kine_version for $arch (cached as $cached; minutes the first time)" >&2
		build_kine "$cached.tmp.$$"
		mv "$cached.tmp.$$" "$cached"
	fi
	cp "$cached" "$out/kine"
else
	build_kine "$out/kine"
fi
echo "image-binaries: $arch binaries in $out (kine $kine_version)" >&2

#!/usr/bin/env bash
# Builds the twonode binary into bin/ and Kine from the pinned module in
# go.mod, with our patches (tools/kine-patches). Kine takes minutes cold, so
# it is cached outside the clone, keyed by the Kine version, the patches, the
# Go version and the architecture.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${TWONODE_CACHE:-/var/cache/twonode}
mkdir -p bin "$cache"

version=$(git describe --always --dirty 2>/dev/null || echo dev)
go build -trimpath -ldflags "-s -w -X github.com/twonode-edge/twonode/bootstrap/agent.Version=$version" -o bin/twonode ./cmd/twonode

kine_version=$(go list -m -f '{{.Version}}' github.com/k3s-io/kine)
read -r modfile patches < <(scripts/kine-patched.sh) # our fixes to Kine (tools/kine-patches)
key="kine-${kine_version}-p${patches}-$(go env GOVERSION)-$(go env GOOS)-$(go env GOARCH)"
if [ ! -x "$cache/$key" ]; then
	echo "building kine $kine_version (cached as $cache/$key; a few minutes the first time)" >&2
	CGO_ENABLED=1 go build -trimpath -modfile "$modfile" -ldflags "-s -w" -o "$cache/$key.tmp" github.com/k3s-io/kine
	mv "$cache/$key.tmp" "$cache/$key"
fi
ln -sf "$cache/$key" bin/kine

# etcd, for the witness's tests and the lab's witness cluster: the server of
# the go.etcd.io/etcd release our go.mod pins (its module root is its main
# package, a `tool` of go.mod so that go.sum keeps what it links: a tidy
# once dropped cobra, and only a machine with etcd cached built), cached
# the same way.
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
key="etcd-${etcd_version}-$(go env GOVERSION)-$(go env GOOS)-$(go env GOARCH)"
if [ ! -x "$cache/$key" ]; then
	echo "building etcd $etcd_version (cached as $cache/$key)" >&2
	go build -trimpath -ldflags "-s -w" -o "$cache/$key.tmp" go.etcd.io/etcd/server/v3
	mv "$cache/$key.tmp" "$cache/$key"
fi
ln -sf "$cache/$key" bin/etcd
echo "built bin/twonode ($version), bin/kine ($kine_version) and bin/etcd ($etcd_version)" >&2

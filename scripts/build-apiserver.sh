#!/usr/bin/env bash
# Builds, from pinned modules, what the API server tests run:
#   bin/kube-apiserver, bin/kube-controller-manager, bin/kube-scheduler
#                           one binary of k8s.io/kubernetes's three commands
#                           (tools/kube-apiserver/main.go, whose replace
#                           lines pin every k8s.io staging module), under
#                           the names it dispatches on
#   bin/etcd3-storage.test  k8s.io/apiserver's pkg/storage/etcd3 tests (Kine's
#                           own CI suite), compiled with `go test -c` from
#                           tools/storage-conformance, with the embedded etcd
#                           of the upstream testserver swapped for a client
#                           of $STORAGE_CONFORMANCE_ENDPOINT (or a Kine of
#                           each test's own), and Kine's CI's two edits
#                           (tools/storage-conformance/kine-ci.edits)
# Both are cached outside the clone, keyed by a hash of the wrapper module's
# go.mod, go.sum and main.go (plus the swapped sources and the edits), the Go version and the
# architecture; a cold build takes many minutes, a warm one a second.
# Then: export KUBE_APISERVER_BIN=$PWD/bin/kube-apiserver KUBE_CONTROLLER_MANAGER_BIN=$PWD/bin/kube-controller-manager
#   KUBE_SCHEDULER_BIN=$PWD/bin/kube-scheduler STORAGE_CONFORMANCE_BIN=$PWD/bin/etcd3-storage.test
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

cache=${TWONODE_CACHE:-/var/cache/twonode}
mkdir -p bin "$cache"
platform="$(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"

# One build at a time per cache (CI and a developer may share the machine).
exec 9>"$cache/build-apiserver.lock"
flock 9

# key NAME FILE... : NAME-<16 hex of sha256 over the files and the platform>
key() {
	local name=$1
	shift
	echo "$name-$( (cat "$@" && echo "$platform") | sha256sum | cut -c1-16)"
}

# --- kube-apiserver, kube-controller-manager and kube-scheduler: one
# binary (tools/kube-apiserver/main.go), linked once, hard-linked under the
# three names it dispatches on
mod=tools/kube-apiserver
k8s_version=$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
k=$(key kube-control-plane "$mod/go.mod" "$mod/go.sum" "$mod/main.go" "$mod"/patches/*.patch)
components="kube-apiserver kube-controller-manager kube-scheduler"
if [ ! -x "$cache/$k/kube-scheduler" ]; then
	echo "building kube-apiserver, kube-controller-manager and kube-scheduler $k8s_version (cached as $cache/$k; many minutes the first time)" >&2
	start=$SECONDS
	minor=${k8s_version#v1.}
	minor=${minor%%.*}
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	rm -rf "${cache:?}/${k:?}.tmp"
	mkdir -p "$cache/$k.tmp"
	# The etcd client the three link, with the fixes in $mod/patches (see
	# each; they apply to go.etcd.io/etcd/client/v3 at the version go.mod
	# pins, and one that no longer applies fails the build), through a copy
	# of go.mod (-modfile) that replaces the module by the patched copy.
	(cd "$mod" && go mod download go.etcd.io/etcd/client/v3)
	upstream=$(cd "$mod" && go list -m -f '{{.Dir}}' go.etcd.io/etcd/client/v3)
	work="$cache/$k.src"
	rm -rf "$work"
	mkdir -p "$work"
	cp -r "$upstream" "$work/client-v3"
	chmod -R u+w "$work/client-v3"
	for p in "$mod"/patches/*.patch; do
		(cd "$work/client-v3" && patch -s -p1 --forward --fuzz=0 --no-backup-if-mismatch) <"$p"
	done
	cp "$mod/go.mod" "$mod/go.sum" "$work/"
	printf '\nreplace go.etcd.io/etcd/client/v3 => %s\n' "$work/client-v3" >>"$work/go.mod"
	(cd "$mod" && go build -trimpath -modfile "$work/go.mod" -ldflags "$ldflags" -o "$cache/$k.tmp/kube-control-plane" .)
	rm -rf "$work"
	for c in $components; do
		ln "$cache/$k.tmp/kube-control-plane" "$cache/$k.tmp/$c"
	done
	rm -rf "${cache:?}/${k:?}"
	mv "$cache/$k.tmp" "$cache/$k"
	echo "built the control plane in $((SECONDS - start)) s" >&2
fi
for c in $components; do
	ln -sfn "$cache/$k/$c" "bin/$c"
done

# --- the etcd3 storage tests
mod=tools/storage-conformance
apiserver_version=$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/apiserver)
k=$(key etcd3-storage-test "$mod/go.mod" "$mod/go.sum" "$mod"/testserver/*.go "$mod/kine-ci.edits")
if [ ! -x "$cache/$k" ]; then
	echo "building k8s.io/apiserver $apiserver_version pkg/storage/etcd3 tests (cached as $cache/$k)" >&2
	start=$SECONDS
	# GOMODCACHE files cannot be overlaid: build from a copy of the
	# k8s.io/apiserver module with the testserver files swapped in, through a
	# copy of the wrapper's go.mod (-modfile) that replaces the module by
	# the copy. The tracked go.mod stays as it is.
	(cd "$mod" && go mod download k8s.io/apiserver)
	upstream=$(cd "$mod" && go list -m -f '{{.Dir}}' k8s.io/apiserver)
	work="$cache/$k.src"
	rm -rf "$work"
	mkdir -p "$work"
	trap 'rm -rf "$work"' EXIT
	cp -r "$upstream" "$work/apiserver"
	chmod -R u+w "$work/apiserver"
	cp "$mod"/testserver/*.go "$work/apiserver/pkg/storage/etcd3/testserver/"
	# Kine's CI edits (see the file); an edit that no longer applies fails
	# the build rather than testing something else.
	while IFS=$'\t' read -r file from to; do
		[[ -z $file || $file == \#* ]] && continue
		src=$(<"$work/apiserver/$file")
		if [[ $src != *"$from"* ]]; then
			echo "$mod/kine-ci.edits: $file no longer contains: $from" >&2
			exit 1
		fi
		printf '%s\n' "${src//"$from"/"$to"}" >"$work/apiserver/$file"
	done <"$mod/kine-ci.edits"
	cp "$mod/go.mod" "$mod/go.sum" "$work/"
	printf '\nreplace k8s.io/apiserver => %s\n' "$work/apiserver" >>"$work/go.mod"
	(cd "$mod" && go test -c -trimpath -modfile "$work/go.mod" -o "$cache/$k.tmp" k8s.io/apiserver/pkg/storage/etcd3)
	# The swap must have taken: without an endpoint the replaced testserver
	# fails naming the variable (the upstream one would start an embedded
	# etcd and test nothing of Kine).
	smoke=$(env -u STORAGE_CONFORMANCE_ENDPOINT "$cache/$k.tmp" -test.run='^TestCreate$' 2>&1 || true)
	if [[ $smoke == *"STORAGE_CONFORMANCE_ENDPOINT is not set"* ]]; then
		mv "$cache/$k.tmp" "$cache/$k"
	else
		rm -f "$cache/$k.tmp"
		echo "the etcd3 tests were built without the replaced testserver" >&2
		exit 1
	fi
	echo "built the etcd3 storage tests in $((SECONDS - start)) s" >&2
fi
ln -sf "$cache/$k" bin/etcd3-storage.test
echo "built bin/kube-apiserver, bin/kube-controller-manager, bin/kube-scheduler ($k8s_version) and bin/etcd3-storage.test (k8s.io/apiserver $apiserver_version)" >&2

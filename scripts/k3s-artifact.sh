#!/bin/sh
# The k3s the image installs: the release binary of one k3s version for one
# architecture, as k3s publishes it (k3s for amd64, k3s-arm64 for arm64),
# installed only when its sha256 is one the build was given (K3S_SHA256).
#
#   scripts/k3s-artifact.sh fetch VERSION ARCH DIR
#       Downloads VERSION's binary for ARCH from k3s's GitHub releases into
#       DIR/<VERSION with + written ->/ (Earthly would read a + in a path as
#       a target), checks it against the release's own sha256sum-ARCH.txt and
#       prints its sha256: the value to pin as K3S_SHA256. Run it where there
#       is internet access before an offline build (DIR is then the
#       Earthfile's K3S_ARTIFACTS, build/k3s by default); the Earthfile runs
#       it itself only with K3S_DOWNLOAD=true. Proxies: curl reads
#       http_proxy, https_proxy and no_proxy.
#
#   scripts/k3s-artifact.sh check VERSION ARCH DIR SHA256S OUT
#       Installs DIR's binary for VERSION and ARCH as OUT (0755) if its
#       sha256 is one of SHA256S (separated by spaces: one per version and
#       architecture built); refuses otherwise, and when SHA256S is empty.
#
# Example: scripts/k3s-artifact.sh fetch v1.32.3+k3s1 amd64 build/k3s
set -eu

die() {
	echo "k3s-artifact: $*" >&2
	exit 1
}

# The release's file name for an architecture.
binary() {
	case "$1" in
	amd64) echo k3s ;;
	arm64) echo k3s-arm64 ;;
	*) die "ARCH must be amd64 or arm64 (got '$1')" ;;
	esac
}

# VERSION as a directory name: v1.32.3+k3s1 -> v1.32.3-k3s1.
dirname_of() {
	printf '%s\n' "$1" | tr '+' '-'
}

checkversion() {
	printf '%s\n' "$1" | grep -Eqx 'v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+' ||
		die "the k3s version must be a release such as v1.32.3+k3s1 (got '$1')"
}

sha256() {
	sha256sum "$1" | cut -d' ' -f1
}

fetch() {
	[ $# -eq 3 ] || die "usage: fetch VERSION ARCH DIR"
	version=$1 arch=$2 dir=$3
	checkversion "$version"
	file=$(binary "$arch")
	out="$dir/$(dirname_of "$version")"
	mkdir -p "$out"
	release="https://github.com/k3s-io/k3s/releases/download/$version"
	echo "k3s-artifact: downloading $release/$file" >&2
	curl -fsSL --retry 3 -o "$out/$file.part" "$release/$file"
	curl -fsSL --retry 3 -o "$out/sha256sum-$arch.txt" "$release/sha256sum-$arch.txt"
	want=$(awk -v f="$file" '$2 == f { print $1 }' "$out/sha256sum-$arch.txt")
	got=$(sha256 "$out/$file.part")
	[ -n "$want" ] || die "the release's sha256sum-$arch.txt has no line for $file"
	[ "$got" = "$want" ] || die "$file has sha256 $got, the release's sha256sum-$arch.txt says $want"
	mv "$out/$file.part" "$out/$file"
	echo "k3s-artifact: $out/$file is k3s $version for $arch; pin it with K3S_SHA256=$got" >&2
	echo "$got"
}

check() {
	[ $# -eq 5 ] || die "usage: check VERSION ARCH DIR SHA256S OUT"
	version=$1 arch=$2 dir=$3 sums=$4 out=$5
	checkversion "$version"
	file=$(binary "$arch")
	[ -n "$sums" ] || die "K3S_SHA256 is empty: the build installs no k3s whose sha256 it was not given (the line for $file in k3s $version's sha256sum-$arch.txt; scripts/k3s-artifact.sh fetch prints it)"
	for s in $sums; do
		printf '%s\n' "$s" | grep -Eqx '[0-9a-f]{64}' || die "K3S_SHA256 holds '$s', which is not a sha256 (64 hexadecimal digits)"
	done
	src="$dir/$(dirname_of "$version")/$file"
	[ -f "$src" ] || die "no k3s $version for $arch at $src: run scripts/k3s-artifact.sh fetch $version $arch <K3S_ARTIFACTS> where there is internet access, or build with K3S_DOWNLOAD=true"
	got=$(sha256 "$src")
	for s in $sums; do
		if [ "$s" = "$got" ]; then
			install -D -m 0755 "$src" "$out"
			echo "k3s-artifact: installed k3s $version for $arch (sha256 $got) as $out" >&2
			return 0
		fi
	done
	die "$src has sha256 $got, which K3S_SHA256 does not list: not installed"
}

[ $# -ge 1 ] || die "usage: $0 fetch|check ..."
cmd=$1
shift
case "$cmd" in
fetch) fetch "$@" ;;
check) check "$@" ;;
*) die "unknown command '$cmd' (fetch or check)" ;;
esac

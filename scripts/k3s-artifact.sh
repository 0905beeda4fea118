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
#   scripts/k3s-artifact.sh fetch-images VERSION ARCH DIR
#   scripts/k3s-artifact.sh check-images VERSION ARCH DIR SHA256S OUT
#       The same for k3s's airgap images of VERSION for ARCH
#       (k3s-airgap-images-ARCH.tar, the system images k3s otherwise pulls
#       from the internet at its first start), pinned by K3S_IMAGES_SHA256:
#       what the Earthfile bakes in with K3S_AIRGAP_IMAGES=true, so that a
#       site without internet access boots to a working cluster.
#
# Example: scripts/k3s-artifact.sh fetch v1.32.3+k3s1 amd64 build/k3s
set -eu

# kind: binary (the k3s executable) or images (the airgap images), set by
# the command.
kind=binary

die() {
	echo "k3s-artifact: $*" >&2
	exit 1
}

# The release's file name of the kind of artifact for an architecture.
binary() {
	case "$1" in
	amd64 | arm64) ;;
	*) die "ARCH must be amd64 or arm64 (got '$1')" ;;
	esac
	if [ "$kind" = images ]; then
		echo "k3s-airgap-images-$1.tar"
	elif [ "$1" = amd64 ]; then
		echo k3s
	else
		echo k3s-arm64
	fi
}

# The ARG that pins the kind's sha256.
pin() {
	if [ "$kind" = images ]; then echo K3S_IMAGES_SHA256; else echo K3S_SHA256; fi
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
	echo "k3s-artifact: $out/$file is k3s $version for $arch; pin it with $(pin)=$got" >&2
	echo "$got"
}

check() {
	[ $# -eq 5 ] || die "usage: check VERSION ARCH DIR SHA256S OUT"
	version=$1 arch=$2 dir=$3 sums=$4 out=$5
	checkversion "$version"
	file=$(binary "$arch")
	[ -n "$sums" ] || die "$(pin) is empty: the build installs no $file whose sha256 it was not given (the line for $file in k3s $version's sha256sum-$arch.txt; scripts/k3s-artifact.sh fetch prints it)"
	for s in $sums; do
		printf '%s\n' "$s" | grep -Eqx '[0-9a-f]{64}' || die "$(pin) holds '$s', which is not a sha256 (64 hexadecimal digits)"
	done
	src="$dir/$(dirname_of "$version")/$file"
	[ -f "$src" ] || die "no $file of k3s $version at $src: run scripts/k3s-artifact.sh fetch$([ "$kind" = images ] && echo -images) $version $arch <K3S_ARTIFACTS> where there is internet access, or build with K3S_DOWNLOAD=true"
	got=$(sha256 "$src")
	for s in $sums; do
		if [ "$s" = "$got" ]; then
			mode=0755
			[ "$kind" = images ] && mode=0644
			install -D -m "$mode" "$src" "$out"
			echo "k3s-artifact: installed $file of k3s $version (sha256 $got) as $out" >&2
			return 0
		fi
	done
	die "$src has sha256 $got, which $(pin) does not list: not installed"
}

[ $# -ge 1 ] || die "usage: $0 fetch|check|fetch-images|check-images ..."
cmd=$1
shift
case "$cmd" in
fetch) fetch "$@" ;;
check) check "$@" ;;
fetch-images)
	kind=images
	fetch "$@"
	;;
check-images)
	kind=images
	check "$@"
	;;
*) die "unknown command '$cmd' (fetch, check, fetch-images or check-images)" ;;
esac

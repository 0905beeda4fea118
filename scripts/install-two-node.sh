#!/usr/bin/env bash
# Puts twonode's two-node content into the root filesystem it runs in: the
# one install step of the image. The Earthfile runs it inside the provider
# image it builds (+provider-image with TWO_NODE=true); the appliance test
# (e2e/appliance) runs the very same script inside a Debian root filesystem
# and boots two copies of the result under systemd. See docs/image.md.
#
# What it does, in order:
#   1. installs PostgreSQL from the distribution's packages (apt or zypper),
#      without the cluster Debian's package would create, and links its
#      server binaries to /usr/lib/twonode/pgbin (the path the units use);
#   2. installs twonode and kine into /opt/twonode/bin and the Kairos plugin
#      into /system/providers/agent-provider-twonode, after checking that
#      each is an ELF executable for this root's architecture;
#   3. copies overlay/ (units, tmpfiles, example config) and bakes
#      cloudconfig/*.yaml into /system/oem/;
#   4. leaves every service disabled: the boot stages enable the agent, and
#      the agent starts PostgreSQL and Kine;
#   5. removes package caches.
#
# Usage: install-two-node.sh --bin DIR [--overlay DIR] [--cloudconfig DIR]
#            [--docs DIR] [--postgres-version N] [--allow-missing-plugin]
#            [--keep-package-cache]
#   --bin DIR               holds twonode, kine and agent-provider-twonode,
#                           built for this root's architecture
#   --overlay DIR           default: overlay/ beside this script's directory
#   --cloudconfig DIR       default: cloudconfig/ beside it (may be absent:
#                           then nothing is baked into /system/oem)
#   --docs DIR              default: docs/ beside it (image.md is installed
#                           as /usr/share/doc/twonode/image.md if present)
#   --postgres-version N    PostgreSQL major version from the distribution's
#                           packages; default: the distribution's default
#   --allow-missing-plugin  accept a --bin without agent-provider-twonode
#                           (only for a test of the rest; an image built so
#                           cannot form a cluster from its user-data)
#   --keep-package-cache    keep apt's/zypper's caches (the appliance test
#                           reuses downloaded packages between runs)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin="" overlay="$here/overlay" cloudconfig="$here/cloudconfig" docs="$here/docs"
pg_version="" allow_missing_plugin=false keep_cache=false

die() {
	echo "install-two-node: $*" >&2
	exit 1
}
say() { echo "install-two-node: [${SECONDS}s] $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=${2:?--bin needs a directory}; shift 2 ;;
	--overlay) overlay=${2:?}; shift 2 ;;
	--cloudconfig) cloudconfig=${2:?}; shift 2 ;;
	--docs) docs=${2:?}; shift 2 ;;
	--postgres-version) pg_version=${2?}; shift 2 ;;
	--allow-missing-plugin) allow_missing_plugin=true; shift ;;
	--keep-package-cache) keep_cache=true; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root inside the root filesystem it installs into"
[ -n "$bin" ] || die "--bin DIR is required (the directory holding twonode, kine and agent-provider-twonode)"
[ -d "$overlay/etc/systemd/system" ] || die "overlay $overlay has no etc/systemd/system"
case $pg_version in '' | [0-9] | [0-9][0-9]) ;; *) die "--postgres-version must be a major version such as 16 (got '$pg_version')" ;; esac

# The package manager decides (Kairos may rewrite /etc/os-release's ID).
ID=unknown VERSION_ID=""
if [ -r /etc/os-release ]; then
	# shellcheck disable=SC1091
	. /etc/os-release
fi
family=""
if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
	family=apt
elif command -v zypper >/dev/null && command -v rpm >/dev/null; then
	family=zypper
fi
[ -n "$family" ] || die "unsupported distribution '${ID}': neither apt (Debian, Ubuntu) nor zypper (openSUSE, SLES)"

# The root's architecture, as Go names it: the binaries must match it.
case $family in
apt) arch=$(dpkg --print-architecture) ;;
zypper) arch=$(rpm --eval '%{_arch}') ;;
esac
case $arch in
amd64 | x86_64) goarch=amd64 elf_machine=3e00 ;;
arm64 | aarch64) goarch=arm64 elf_machine=b700 ;;
*) die "unsupported architecture $arch (amd64 and arm64 are)" ;;
esac
say "distribution ${ID} ${VERSION_ID} ($family), architecture $goarch"

# check_elf FILE: an executable ELF file for this architecture.
check_elf() {
	local f=$1 magic machine
	if [ ! -f "$f" ] || [ ! -x "$f" ]; then die "$f: missing or not executable"; fi
	magic=$(od -An -tx1 -N4 "$f" | tr -d ' \n')
	[ "$magic" = 7f454c46 ] || die "$f: not an ELF executable"
	machine=$(od -An -tx1 -j18 -N2 "$f" | tr -d ' \n')
	[ "$machine" = "$elf_machine" ] || die "$f: built for another architecture (ELF machine $machine, this root is $goarch): build it with GOARCH=$goarch"
}

# --- 1. PostgreSQL from the distribution's packages -------------------------
install_postgres_apt() {
	export DEBIAN_FRONTEND=noninteractive
	# No cluster in /var/lib/postgresql: the agent makes its own on the
	# persistent path, and a second server would only hold memory and ports.
	mkdir -p /etc/postgresql-common/createcluster.d
	printf '%s\n' '# twonode: the agent creates its own cluster in /usr/local/twonode/pgdata' \
		'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/twonode.conf
	local pkg=postgresql
	[ -z "$pg_version" ] || pkg=postgresql-$pg_version
	if ! dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
		say "installing $pkg from the distribution's packages"
		apt-get update -qq
		# unsafe-io: no fsync per unpacked file; an image build that dies is
		# thrown away anyway.
		apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
			-o Dpkg::Options::=--force-unsafe-io "$pkg" >/dev/null
	fi
	if command -v pg_lsclusters >/dev/null; then
		pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
			say "dropping the distribution's cluster $ver/$name"
			pg_dropcluster --stop "$ver" "$name"
		done
	fi
}

install_postgres_zypper() {
	local pkg=postgresql-server
	[ -z "$pg_version" ] || pkg=postgresql${pg_version}-server
	rpm -q "$pkg" >/dev/null 2>&1 || zypper --non-interactive install --no-recommends "$pkg" >/dev/null
}

"install_postgres_$family"

# The newest server installed (or the one asked for) gives the binaries.
pgbin=""
for d in /usr/lib/postgresql/*/bin /usr/lib/postgresql[0-9]*/bin; do
	[ -x "$d/postgres" ] || continue
	v=$("$d/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
	if [ -n "$pg_version" ] && [ "$v" != "$pg_version" ]; then continue; fi
	pgbin=$d
done
[ -n "$pgbin" ] || die "no PostgreSQL server binaries found after installing ${pg_version:+version $pg_version }from the distribution"
for tool in postgres pg_ctl initdb pg_basebackup pg_rewind pg_controldata; do
	[ -x "$pgbin/$tool" ] || die "$pgbin/$tool is missing: the agent needs it"
done
pgmajor=$("$pgbin/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
[ "$pgmajor" -ge 15 ] || die "PostgreSQL $pgmajor is too old: twonode needs 15 or later (--postgres-version)"
id postgres >/dev/null 2>&1 || die "the package created no postgres user"
mkdir -p /usr/lib/twonode
ln -sfn "$pgbin" /usr/lib/twonode/pgbin
say "PostgreSQL $pgmajor: /usr/lib/twonode/pgbin -> $pgbin"

# --- 2. binaries ----------------------------------------------------------
check_elf "$bin/twonode"
check_elf "$bin/kine"
install -d -m 0755 /opt/twonode/bin /system/providers
install -m 0755 "$bin/twonode" /opt/twonode/bin/twonode
install -m 0755 "$bin/kine" /opt/twonode/bin/kine
ln -sfn /opt/twonode/bin/twonode /usr/bin/twonode # operators type `twonode status`
if [ -e "$bin/agent-provider-twonode" ]; then
	check_elf "$bin/agent-provider-twonode"
	install -m 0755 "$bin/agent-provider-twonode" /system/providers/agent-provider-twonode
elif $allow_missing_plugin; then
	say "WARNING: no agent-provider-twonode in $bin (--allow-missing-plugin): this image cannot form a cluster from user-data"
else
	die "$bin/agent-provider-twonode is missing (build ./cmd/agent-provider-twonode, or pass --allow-missing-plugin for a test of the rest)"
fi

# --- 3. overlay, baked cloud-config, docs ------------------------------------
# Files land as laid out under overlay/, owned by root, modes as in the tree
# (directories 0755, files 0644).
(cd "$overlay" && find . -type d -print0) | while IFS= read -r -d '' d; do
	install -d -m 0755 "/$d"
done
(cd "$overlay" && find . -type f -print0) | while IFS= read -r -d '' f; do
	install -m 0644 "$overlay/$f" "/$f"
done
baked=0
if [ -d "$cloudconfig" ]; then
	install -d -m 0755 /system/oem
	for f in "$cloudconfig"/*.yaml; do
		[ -e "$f" ] || continue
		install -m 0644 "$f" "/system/oem/$(basename "$f")"
		baked=$((baked + 1))
	done
fi
say "baked $baked cloud-config file(s) into /system/oem"
if [ -f "$docs/image.md" ]; then
	install -D -m 0644 "$docs/image.md" /usr/share/doc/twonode/image.md
fi
# Every key of the agent's config with its default, beside the image guide.
if [ -f "$here/bootstrap/config/example.yaml" ]; then
	install -D -m 0644 "$here/bootstrap/config/example.yaml" /usr/share/doc/twonode/config-reference.yaml
fi
cat >/usr/lib/twonode/release <<EOF
# what install-two-node.sh put into this image
arch=$goarch
postgresql=$pgmajor
postgresql_bin=$pgbin
twonode=$(/opt/twonode/bin/twonode --version 2>/dev/null | head -n1 || echo unknown)
kine=$(/opt/twonode/bin/kine --version 2>/dev/null | head -n1 || echo unknown)
plugin=$([ -e /system/providers/agent-provider-twonode ] && echo present || echo absent)
EOF

# --- 4. every service disabled ----------------------------------------------
# systemctl works on the unit files here whether or not systemd runs.
systemctl disable --quiet postgresql.service 2>/dev/null || true
systemctl disable --quiet twonode-agent.service
for u in twonode-agent twonode-kine twonode-postgresql; do
	if [ "$(systemctl is-enabled "$u.service" 2>/dev/null || true)" = enabled ]; then
		die "$u.service is enabled in the image"
	fi
done

# --- 5. caches ------------------------------------------------------------------
if ! $keep_cache; then
	case $family in
	apt) apt-get clean && rm -rf /var/lib/apt/lists/* ;;
	zypper) zypper --non-interactive clean --all >/dev/null ;;
	esac
fi
say "done: twonode $(sed -n 's/^twonode=//p' /usr/lib/twonode/release), kine $(sed -n 's/^kine=//p' /usr/lib/twonode/release), PostgreSQL $pgmajor"

#!/usr/bin/env bash
# Installs what the lab and the tests need from Debian's packages, only when
# missing. Needs root (the lab and the end-to-end tests build network
# namespaces and run PostgreSQL as its own user).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "twonode: this needs root (network namespaces, nftables, PostgreSQL as user postgres); run it with sudo" >&2
	exit 1
fi

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v go >/dev/null || { echo "twonode: Go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
command -v gcc >/dev/null || need+=(gcc)
command -v ping >/dev/null || need+=(iputils-ping)
ls /usr/lib/postgresql/*/bin/pg_rewind >/dev/null 2>&1 || need+=(postgresql)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v patch >/dev/null || need+=(patch) # our fixes to Kine (scripts/kine-patched.sh) and the etcd client (build-apiserver.sh)
# The commands `make lab KEEP=1` prints for exploring the pair.
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v curl >/dev/null || need+=(curl)
# `make bench` redraws the pictures (scripts/images.sh).
command -v dot >/dev/null || need+=(graphviz)
# The fault matrix captures the pair's link (tcpdump on the client
# namespace's bridge) and checks that nothing Kine carries crosses it in clear.
command -v tcpdump >/dev/null || need+=(tcpdump)
# The clock-skew scenario moves one node's PostgreSQL clock with libfaketime.
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need+=(faketime)
# The appliance test (e2e/appliance): a Debian root filesystem booted twice
# under systemd, and systemd's own checks of the units.
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v systemd-analyze >/dev/null || need+=(systemd)

if [ ${#need[@]} -gt 0 ]; then
	echo "twonode: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The distribution's cluster (if the package created one) is not ours: keep
# it stopped so that it does not hold ports or memory.
if command -v pg_lsclusters >/dev/null; then
	pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
		pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
	done
fi
id postgres >/dev/null 2>&1 || { echo "twonode: the postgres OS user is missing after installing postgresql" >&2; exit 1; }

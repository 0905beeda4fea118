#!/usr/bin/env bash
# `make fleet`: the witness's fleet simulation at full size (e2e/fleet):
# healthy pairs reading a real three-member etcd on loopback (TLS, client
# certificates) for minutes, then races of pairs whose link fails at one
# moment, with the real witness client. Prints RESULT lines (kept in
# /tmp/twonode-fleet.log), redraws images/fleet-latency.svg and
# docs/results.md. Not part of `make test`, which runs a short variant:
# speed is printed, not asserted; wrong decisions and healthy writes fail it.
#
# Sizes (defaults: the full run): FLEET_PAIRS healthy pairs, FLEET_FOR how
# long they are measured, FLEET_SWEEP the races' sizes, FLEET_POOL the
# shared TLS connections. To redraw the picture from the last run's log
# without running again: go test ./e2e/fleet -run '^TestFleet$'
#   -fleet.redraw=/tmp/twonode-fleet.log -fleet.svg="$PWD/images/fleet-latency.svg"
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

scripts/build.sh # bin/etcd, cached
export ETCD_BIN=$PWD/bin/etcd
go test -count=1 -v -timeout 60m -run '^TestFleet$' ./e2e/fleet \
	-fleet.pairs="${FLEET_PAIRS:-10000}" -fleet.for="${FLEET_FOR:-10m}" \
	-fleet.sweep="${FLEET_SWEEP:-10,100,250,500,1000,2000}" -fleet.pool="${FLEET_POOL:-200}" \
	-fleet.svg="$PWD/images/fleet-latency.svg" 2>&1 | tee /tmp/twonode-fleet.log
scripts/results.sh

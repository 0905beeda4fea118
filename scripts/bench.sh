#!/usr/bin/env bash
# `make bench`: repeats the leader crash (RUNS, default 10) with a kube-apiserver
# on each node and prints when each phase of the take-over ended (the agent's own
# timeline, the first writes through Kine and the API server, the watch) with
# images/failover-phases.svg; then compare and scale. Not part of the
# tests: figures are printed, not asserted.
set -euo pipefail
"$(dirname "$0")/lab.sh" bench | tee /tmp/twonode-bench.log
(cd "$(dirname "$0")/.." && scripts/build-apiserver.sh && bin/twonode-lab compare) | tee /tmp/twonode-compare.log # the datastore against etcd (e2e/compare); draws images/datastore-vs-etcd.svg
(cd "$(dirname "$0")/.." && TWONODE_BIN=$PWD/bin/twonode KINE_BIN=$PWD/bin/kine bin/twonode-lab scale) | tee /tmp/twonode-scale.log # how cost grows with work (e2e/scale); draws images/scaling-*.svg
"$(dirname "$0")/results.sh"
"$(dirname "$0")/images.sh" # the failover timeline picture is drawn from docs/results.md

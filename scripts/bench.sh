#!/usr/bin/env bash
# `make bench`: repeats the leader crash (RUNS, default 10) and prints the
# median and p95 RTO beside pg_promote and Kine ready times. Not part of the
# tests: figures are printed, not asserted.
set -euo pipefail
"$(dirname "$0")/lab.sh" bench | tee /tmp/twonode-bench.log
(cd "$(dirname "$0")/.." && scripts/build-apiserver.sh && bin/twonode-lab compare) | tee /tmp/twonode-compare.log # the datastore against etcd (e2e/compare); draws images/datastore-vs-etcd.svg
"$(dirname "$0")/results.sh"
"$(dirname "$0")/images.sh" # the failover timeline picture is drawn from docs/results.md

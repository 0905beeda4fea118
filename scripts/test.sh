#!/usr/bin/env bash
# The test command (`make test`, and what .ci/run calls): installs what is
# missing, builds, and runs every test, the end-to-end scenarios on real
# PostgreSQL, Kine and agents in network namespaces included. Needs root.
# It fails loudly when a prerequisite is missing; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

scripts/deps.sh
scripts/build.sh
scripts/build-apiserver.sh # the control plane (one binary) and the storage conformance tests, cached

echo "== static checks" >&2
unformatted=$(gofmt -l bootstrap cmd e2e cloudconfig)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on: $unformatted" >&2
	exit 1
fi
go vet ./...
shellcheck scripts/*.sh .ci/run

export TWONODE_BIN=$PWD/bin/twonode KINE_BIN=$PWD/bin/kine ETCD_BIN=$PWD/bin/etcd
export KUBE_APISERVER_BIN=$PWD/bin/kube-apiserver STORAGE_CONFORMANCE_BIN=$PWD/bin/etcd3-storage.test
export KUBE_CONTROLLER_MANAGER_BIN=$PWD/bin/kube-controller-manager KUBE_SCHEDULER_BIN=$PWD/bin/kube-scheduler

echo "== unit, integration and end-to-end tests" >&2
# -p 1: one package at a time; the end-to-end packages measure failover times
# and must not compete with each other for the 2 cores.
# -v: a passing test's output (its RESULT line) is shown only with -v. The
# full log is kept; the console shows results, test log lines and failures.
go test -p 1 -v -count=1 -timeout 60m ./... 2>&1 | tee /tmp/twonode-test.log |
	grep --line-buffered -E '^(ok|FAIL|--- FAIL|--- PASS|RESULT|SPLIT|STORAGE-CONFORMANCE|panic:)|WATCH-MISSED|^\s+\S+_test\.go:[0-9]+:'

echo "== short fuzz runs (seed corpora are in testdata/fuzz)" >&2
# A count, not a duration: with a duration, Go's fuzzer can report "context
# deadline exceeded" as a failure when an input is still running at the end.
# FUZZTIME=60s (say) for a longer run by hand.
fuzz() { go test -run='^$' -fuzz="^$2\$" -fuzztime="${FUZZTIME:-5000x}" "$1"; }
fuzz ./bootstrap/config FuzzParse
fuzz ./bootstrap/peer FuzzDecodePause
fuzz ./bootstrap/peer FuzzDecodeHandover
fuzz ./bootstrap/peer FuzzServeRequest
fuzz ./bootstrap/userdata FuzzUserData

echo "== results" >&2
grep -h '^RESULT ' /tmp/twonode-test.log || true
scripts/results.sh /tmp/twonode-test.log
passed=$(grep -c '^ok ' /tmp/twonode-test.log || true)
echo "packages: $passed passed, 0 failed"

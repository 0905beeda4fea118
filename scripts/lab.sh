#!/usr/bin/env bash
# The lab: `scripts/lab.sh` (or `make lab`) runs a real two-node pair on this
# machine with a kube-apiserver on each node, crashes the leader and shows
# the old leader rejoin; add --keep to
# leave it running. `scripts/lab.sh down` removes a kept lab. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

scripts/deps.sh
scripts/build.sh
go build -o bin/twonode-lab ./cmd/twonode-lab
export TWONODE_BIN=$PWD/bin/twonode KINE_BIN=$PWD/bin/kine

case "${1:-run}" in
down) exec bin/twonode-lab down ;;
esac
# kube-apiserver, kube-controller-manager and kube-scheduler on each node
# (one binary, built once from the pinned k8s.io/kubernetes and cached: many
# minutes the first time).
scripts/build-apiserver.sh
export KUBE_APISERVER_BIN=$PWD/bin/kube-apiserver
export KUBE_CONTROLLER_MANAGER_BIN=$PWD/bin/kube-controller-manager KUBE_SCHEDULER_BIN=$PWD/bin/kube-scheduler
case "${1:-run}" in
bench) exec bin/twonode-lab bench --runs "${RUNS:-10}" --svg images/failover-phases.svg ;;
*) exec bin/twonode-lab run "${@:2}" ;;
esac

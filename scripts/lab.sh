#!/usr/bin/env bash
# The lab: `scripts/lab.sh` (or `make lab`) runs a real two-node pair on this
# machine, crashes the leader and shows the old leader rejoin; add --keep to
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
bench) exec bin/twonode-lab bench --runs "${RUNS:-10}" ;;
*) exec bin/twonode-lab run "${@:2}" ;;
esac

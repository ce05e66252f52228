#!/usr/bin/env bash
# peers.sh - builds fronttier and runs the shared side-by-side benchmark
# (../shared/bench/peers.sh: nginx, HAProxy, Caddy and fronttier in front of
# the same upstream, pinned to the same CPUs) with fronttier as the candidate.
# Any of peers.sh's variables pass through (DURATION, ROUNDS, PEERS, INSTALL...).
# ACCESS_LOG=1 runs fronttier with its access log on.
#
#   bash bench/peers.sh                 # from the repository root
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED:-$root/../shared}
export PATH=$PATH:/usr/local/go/bin
bin=$(mktemp -d)/fronttier
trap 'rm -rf "$(dirname "$bin")"' EXIT
(cd "$root" && go build -trimpath -o "$bin" ./cmd/fronttier)
export FRONTTIER_BIN=$bin
export CANDIDATE_NAME=${CANDIDATE_NAME:-fronttier}
export CANDIDATE_PORT=${CANDIDATE_PORT:-28080}
export CANDIDATE_CMD="exec bash $root/bench/candidate.sh"
bash "$shared/bench/peers.sh"

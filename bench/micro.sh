#!/usr/bin/env bash
# micro.sh - the hot-path benchmarks (route lookup, balancer pick, canary
# placement, the HTTP/1.x server, HTTP/2 screening, a whole proxied request with
# and without a canary, metrics per request, switches and API writes at 10,000
# domains) compared with the committed baseline by benchstat. Run from anywhere:
#
#   bash bench/micro.sh            # compare with bench/baseline.txt
#   UPDATE=1 bash bench/micro.sh   # record a new baseline
#
# Allocation-free lookup and pick are asserted by unit tests (AllocsPerRun),
# so a regression there fails `go test` too. Timings are only comparable on
# the same machine with nothing else running.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH=$PATH:/usr/local/go/bin:$(go env GOPATH)/bin
COUNT=${COUNT:-6}   # the committed baseline was recorded with COUNT=3
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench . -benchmem -count "$COUNT" \
  ./internal/route ./internal/balance ./internal/proxy ./internal/server ./internal/h2guard \
  ./internal/state ./internal/certs ./internal/logging ./internal/metrics \
  | grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >"$out"
if [[ ${UPDATE:-0} == 1 ]]; then
  cp "$out" bench/baseline.txt
  echo "baseline written to bench/baseline.txt"
  exit 0
fi
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
benchstat bench/baseline.txt "$out"

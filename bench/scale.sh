#!/usr/bin/env bash
# scale.sh - the memory of fronttier at scale: builds the binary, generates a
# configuration with N domains and N backends (default 10,000 each), starts
# it, lets it run for SETTLE seconds (default 30) and prints its resident
# memory, heap, goroutine stacks and goroutine count, in total and per
# backend; then stops it. Loopback only.
#
#   bash bench/scale.sh              # 10,000 domains and backends, 30 s
#   N=1000 SETTLE=60 bash bench/scale.sh
#   N=0 bash bench/scale.sh          # the empty configuration, for the fixed cost
#   GOGC=100 bash bench/scale.sh     # passed through to the binary
#   PROFILE=/tmp/p bash bench/scale.sh   # also keep a heap profile and the binary
#
# The configuration mirrors internal/state's bigConfig: backend i is
# "b<i>" at 127.0.0.1:(20000 + i mod 12000), where nothing listens, so every
# health check is refused; ten backends per tag, domain i on tag i/10.
# Health checks run every 10 s with the default timeout; metrics are on; the
# runtime's figures come from [debug] pprof_addr:
#
#   RSS          VmRSS of /proc/PID/status, read first
#   heap inuse   HeapInuse at that moment (live objects plus garbage not yet
#                collected), from /debug/pprof/heap?debug=1
#   live heap    HeapAlloc right after a forced collection (?gc=1), read last
#   stacks       stack memory in use (the "Stack" line's first figure)
#   goroutines   the total of /debug/pprof/goroutine?debug=1
#
# Per-backend figures divide the totals by N (they include the empty
# process's ~12 MiB; run N=0 to see it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin
N=${N:-10000}
SETTLE=${SETTLE:-30}

tmp=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

(cd "$root" && go build -trimpath -o "$tmp/fronttier" ./cmd/fronttier)

cfg=$tmp/fronttier.toml
{
	cat <<CONF
[proxy]
listen_addr_http = "127.0.0.1:0"
management_api_addr = "127.0.0.1:0"
[lets_encrypt]
cache_dir = "$tmp/acme-cache"
[logging]
level = "info"
format = "json"
[metrics]
enabled = true
listen_addr = "127.0.0.1:0"
[health_check]
interval_secs = 10
[debug]
pprof_addr = "127.0.0.1:0"
CONF
	for ((i = 0; i < N; i++)); do
		printf '[[virtual_hosts]]\ndomain = "d%05d.example.com"\nenabled_backends_tag = "t%d"\n' "$i" $((i / 10))
	done
	for ((i = 0; i < N; i++)); do
		printf '[[backends]]\nid = "b%05d"\naddress = "127.0.0.1:%d"\ntags = ["t%d"]\n' "$i" $((20000 + i % 12000)) $((i / 10))
	done
} >"$cfg"

if command -v ss >/dev/null &&
	ss -Hltn | awk '{n = split($4, a, ":"); p = a[n] + 0} p >= 20000 && p < 32000 {found = 1} END {exit !found}'; then
	echo "scale.sh: warning: something listens on a port in 20000-31999; those backends are not refusing" >&2
fi

log=$tmp/fronttier.log
start=$(date +%s)
(cd "$tmp" && exec ./fronttier --config "$cfg") >"$log" 2>&1 &
pid=$!

# Poll until the process says it has started (it logs each listener first).
for ((i = 0; i < 600; i++)); do
	grep -q '"fronttier started"' "$log" && break
	kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "scale.sh: fronttier exited" >&2; exit 1; }
	sleep 0.1
done
grep -q '"fronttier started"' "$log" || { echo "scale.sh: fronttier did not start within 60 s" >&2; exit 1; }
ready=$(date +%s)
pprof=$(grep '"listener":"pprof"' "$log" | grep -o '"addr":"[^"]*"' | head -1 | cut -d'"' -f4)
[[ -n $pprof ]] || { echo "scale.sh: no pprof address in the log" >&2; exit 1; }

# Settling: a measurement, so a plain wait (SETTLE seconds after start).
left=$((start + SETTLE - $(date +%s)))
((left > 0)) && sleep "$left"

rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
at=$(($(date +%s) - start))
heap=$(curl -fsS "http://$pprof/debug/pprof/heap?debug=1")
curl -fsS -o "$tmp/goroutine.txt" "http://$pprof/debug/pprof/goroutine?debug=1"
goroutines=$(awk 'NR == 1 {print $NF}' "$tmp/goroutine.txt") # "goroutine profile: total N"
live=$(curl -fsS "http://$pprof/debug/pprof/heap?debug=1&gc=1")
stat() { awk -v k="# $2 = " 'index($0, k) == 1 {print substr($0, length(k) + 1)}' <<<"$1"; }
inuse=$(stat "$heap" HeapInuse)
stacks=$(stat "$heap" Stack | cut -d" " -f1) # "in use / from the OS"
nextgc=$(stat "$heap" NextGC)
numgc=$(stat "$heap" NumGC)
alloc=$(stat "$live" HeapAlloc)
if [[ -n ${PROFILE:-} ]]; then # keep the heap profile and the binary for go tool pprof
	mkdir -p "$PROFILE"
	curl -fsS -o "$PROFILE/heap.pb.gz" "http://$pprof/debug/pprof/heap"
	cp "$tmp/fronttier" "$PROFILE/fronttier"
fi

echo "fronttier at scale: $N domains + $N backends, $(nproc) CPUs, GOGC=${GOGC:-default}, RSS read $at s after start (started in $((ready - start)) s)"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "unknown (not a git checkout)")
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1 &&
	! (git -C "$root" diff --quiet HEAD && [[ -z $(git -C "$root" ls-files --others --exclude-standard) ]]); then
	commit+=" + uncommitted changes"
fi
echo "commit $commit"
awk -v n="$N" -v rss="$rss_kb" -v inuse="$inuse" -v live="$alloc" -v stacks="$stacks" -v g="$goroutines" -v nextgc="$nextgc" -v numgc="$numgc" 'BEGIN {
	mib = 1024 * 1024
	printf "%-12s %12s %14s\n", "", "total", "per backend"
	row("RSS", rss * 1024)
	row("heap inuse", inuse)
	row("live heap", live)
	row("stacks", stacks)
	printf "%-12s %12d %14s\n", "goroutines", g, (n > 0 ? sprintf("%.2f", g / n) : "-")
	printf "(GC cycles %d, next GC at %.1f MiB)\n", numgc, nextgc / mib
}
function row(name, bytes) {
	printf "%-12s %8.1f MiB %10s\n", name, bytes / mib, (n > 0 ? sprintf("%.1f KiB", bytes / n / 1024) : "-")
}'

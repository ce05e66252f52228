#!/usr/bin/env bash
# idle.sh - what an idle keep-alive client connection costs fronttier in
# memory. Builds fronttier, the shared upstream and bench/idleconns; starts the
# upstream and fronttier (through bench/candidate.sh, HTTPS with TLS=1 and a
# throwaway ECDSA P-256 certificate); reads fronttier's memory; has idleconns
# open N connections, make one proxied request on each and hold them idle
# (the realistic idle connection: it has served a request and waits in
# keep-alive); reads the memory again SETTLE seconds after the last one went
# idle ("settled", no collection forced) and once more after GCS forced
# collections ("after GC": goroutine stacks shrink by half per collection, so
# this is where an idle connection ends up after a few minutes of the
# runtime's own collections); then has idleconns make one more request on
# every connection (each must still be served) and stops everything.
# Loopback only.
#
#   bash bench/idle.sh                 # 10,000 plain HTTP connections
#   TLS=1 bash bench/idle.sh           # the same over HTTPS
#   N=1000 SETTLE=10 GCS=3 bash bench/idle.sh
#   GOGC=100 bash bench/idle.sh        # passed through to fronttier
#   SRC=/tmp/tree bash bench/idle.sh   # build fronttier from another tree
#   PROFILE=/tmp/p bash bench/idle.sh  # keep a heap and a goroutine profile (after GC) and the binary
#
# Figures, each read from fronttier's process:
#   RSS          VmRSS of /proc/PID/status
#   heap inuse   go_memstats_heap_inuse_bytes of /api/v1/metrics
#   stacks       go_memstats_stack_inuse_bytes
#   goroutines   go_goroutines
# Keep SETTLE above 2 s: an idle connection's wait moves to a fresh, small
# goroutine stack after 2 s (internal/server/idle.go). Small N: the fixed
# costs (the upstream connections, the pools) dominate the per-connection
# figures.
# "per conn" is (figure - figure before) / N. The upstream connections
# fronttier keeps (at most 256) count in "after" too: about 0.3 KiB per
# client connection at N=10,000.
#
# N connections need N file descriptors in fronttier and N in idleconns: the
# script raises its soft limit (ulimit -n) to the hard one and says so if the
# hard one is too low.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED:-$root/../shared}
export PATH=$PATH:/usr/local/go/bin
N=${N:-10000}
TLS=${TLS:-0}
SETTLE=${SETTLE:-5}
GCS=${GCS:-3}
CONC=${CONC:-64}
host=example.com

say() { printf '[idle] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < N + 1000)); then
	say "warning: the hard limit on open files is $hard, too low for $N connections (need about $((N + 1000))); raise it (limits.conf, systemd LimitNOFILE, or ulimit -Hn as root)"
fi
ulimit -n "$hard"
say "open files: soft limit raised to $(ulimit -n)"

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	exec 3>&- 2>/dev/null || true
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

say "building"
src=${SRC:-$root}
(cd "$src" && go build -trimpath -o "$tmp/fronttier" ./cmd/fronttier)
(cd "$root" && go build -o "$tmp/idleconns" ./bench/idleconns)
(cd "$shared/bench/upstream" && go build -o "$tmp/upstream" .)
mapfile -t port < <("$tmp/upstream" -freeports 4)
((${#port[@]} == 4)) || die "could not find free ports"

"$tmp/upstream" -addr "127.0.0.1:${port[0]}" -size 64 >"$tmp/upstream.log" 2>&1 &
pids+=($!)

scheme=http tlsflag=() curlflags=()
if [[ $TLS == 1 ]]; then
	(cd "$tmp" && go run "$(go env GOROOT)/src/crypto/tls/generate_cert.go" --host "$host" --ecdsa-curve P256 2>/dev/null)
	export TLS_CERT=$tmp/cert.pem TLS_KEY=$tmp/key.pem
	scheme=https tlsflag=(-tls) curlflags=(-k --resolve "$host:${port[1]}:127.0.0.1")
fi
FRONTTIER_BIN=$tmp/fronttier BENCH_TMP=$tmp CANDIDATE_PORT=${port[1]} UPSTREAM_ADDR=127.0.0.1:${port[0]} \
	BENCH_HOST=$host ADMIN_PORT=${port[2]} PPROF_PORT=${port[3]} \
	bash "$root/bench/candidate.sh" >"$tmp/fronttier.log" 2>&1 &
pid=$! # candidate.sh execs fronttier: this is fronttier's PID
pids+=("$pid")

url=$scheme://$host:${port[1]}/
[[ $TLS == 1 ]] || curlflags=(-H "Host: $host")
[[ $TLS == 1 ]] || url=http://127.0.0.1:${port[1]}/
for ((i = 0; i < 300; i++)); do
	[[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "${curlflags[@]}" "$url" 2>/dev/null) == 200 ]] && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/fronttier.log" >&2; die "fronttier exited"; }
	sleep 0.1
done
((i < 300)) || { cat "$tmp/fronttier.log" >&2; die "fronttier does not answer 200 on $url"; }

# sample NAME: RSS (KiB), heap in use, stacks (bytes), goroutines, as shell
# variables NAME_rss, NAME_heap, NAME_stack, NAME_g.
sample() {
	local m
	m=$(curl -fsS -m 10 "http://127.0.0.1:${port[2]}/api/v1/metrics") || die "cannot read /api/v1/metrics"
	printf -v "$1_rss" '%s' "$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
	printf -v "$1_heap" '%s' "$(awk '$1 == "go_memstats_heap_inuse_bytes" {printf "%d", $2}' <<<"$m")"
	printf -v "$1_stack" '%s' "$(awk '$1 == "go_memstats_stack_inuse_bytes" {printf "%d", $2}' <<<"$m")"
	printf -v "$1_g" '%s' "$(awk '$1 == "go_goroutines" {printf "%d", $2}' <<<"$m")"
}
sleep 1 # a measurement: let the start-up garbage settle a moment
sample before

say "opening $N idle connections ($scheme)"
mkfifo "$tmp/in"
"$tmp/idleconns" -addr "127.0.0.1:${port[1]}" -n "$N" -c "$CONC" -host "$host" "${tlsflag[@]}" <"$tmp/in" >"$tmp/idleconns.out" &
pids+=($!)
client=$!
exec 3>"$tmp/in"
for ((i = 0; i < 6000; i++)); do
	grep -q '^idle ' "$tmp/idleconns.out" && break
	kill -0 "$client" 2>/dev/null || die "idleconns failed"
	sleep 0.1
done
grep -q '^idle ' "$tmp/idleconns.out" || die "idleconns did not open $N connections within 600 s"

sleep "$SETTLE" # a measurement: the connections sit idle this long
sample settled
for ((i = 0; i < GCS; i++)); do
	curl -fsS -m 60 -o /dev/null "http://127.0.0.1:${port[3]}/debug/pprof/heap?gc=1"
done
sample gc
if [[ -n ${PROFILE:-} ]]; then # for go tool pprof
	mkdir -p "$PROFILE"
	curl -fsS -o "$PROFILE/heap.pb.gz" "http://127.0.0.1:${port[3]}/debug/pprof/heap"
	curl -fsS -o "$PROFILE/goroutine.txt" "http://127.0.0.1:${port[3]}/debug/pprof/goroutine?debug=1"
	cp "$tmp/fronttier" "$PROFILE/fronttier"
fi

exec 3>&- # idleconns now makes one more request on every connection
wait "$client" || die "idleconns: a connection was not served after its idle time"
grep -q '^recheck ' "$tmp/idleconns.out" || die "idleconns did not recheck"

if commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null); then
	git -C "$src" diff --quiet HEAD -- internal/server || commit+=" + uncommitted internal/server changes"
else
	commit="unknown (built from $src)"
fi
echo "fronttier idle keep-alive connections: N=$N $scheme, $(nproc) CPUs, GOGC=${GOGC:-default}, commit $commit"
echo "settled = ${SETTLE}s idle, no collection forced; after GC = then $GCS forced collections; all $N served again after"
awk -v n="$N" \
	-v r0="$before_rss" -v h0="$before_heap" -v s0="$before_stack" -v g0="$before_g" \
	-v r1="$settled_rss" -v h1="$settled_heap" -v s1="$settled_stack" -v g1="$settled_g" \
	-v r2="$gc_rss" -v h2="$gc_heap" -v s2="$gc_stack" -v g2="$gc_g" 'BEGIN {
	mib = 1048576
	printf "%-11s %10s %10s %10s %10s %12s %12s\n", "", "before", "settled", "after GC", "", "per conn", "per conn"
	printf "%-11s %10s %10s %10s %10s %12s %12s\n", "", "", "", "", "", "settled", "after GC"
	row("RSS", r0 * 1024, r1 * 1024, r2 * 1024)
	row("heap inuse", h0, h1, h2)
	row("stacks", s0, s1, s2)
	printf "%-11s %10d %10d %10d %10s %12.2f %12.2f\n", "goroutines", g0, g1, g2, "", (g1 - g0) / n, (g2 - g0) / n
}
function row(name, a, b, c) {
	printf "%-11s %6.1f MiB %6.1f MiB %6.1f MiB %10s %8.2f KiB %8.2f KiB\n", name, a / mib, b / mib, c / mib, "", (b - a) / n / 1024, (c - a) / n / 1024
}'

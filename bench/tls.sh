#!/usr/bin/env bash
# tls.sh - fronttier beside nginx over HTTPS, same certificate, on loopback.
#
# Builds fronttier and the shared upstream (../shared/bench/upstream: 200, fixed
# 64-byte body, keep-alive), makes a test CA and two leaf certificates for
# example.com (ECDSA P-256 and RSA 2048; each a full chain file, leaf then CA,
# plus its key), and for each key type runs nginx (1 worker) and fronttier
# serving that certificate in front of the upstream. Then, interleaved over
# ROUNDS rounds (the order of nginx and fronttier alternates between rounds),
# with identical client settings:
#   hs   new TLS connection per request: h2load --h1 -c$HS_CLIENTS with
#        'Connection: close' -> every request is TCP connect + full handshake +
#        one proxied request; the rate is handshakes/s
#   st   the same with openssl s_time -new (HS_CLIENTS processes side by side,
#        each one connection at a time); a cross-check of hs, not in TESTS by
#        default
#   hr   hs, but with h2load free to resume: fronttier then resumes (Go's
#        session tickets), nginx cannot (cache and tickets off) - shows what
#        resumption is worth to fronttier; not in TESTS by default
#   h1   HTTPS keep-alive, HTTP/1.1: wrk -t1 -c$CONNS --latency
#   h2   HTTPS keep-alive, HTTP/2:   h2load -c$H2_CLIENTS -m$H2_STREAMS
# Every handshake is a full one. nginx has ssl_session_cache off and
# ssl_session_tickets off. fronttier (Go's crypto/tls) issues session tickets
# and its config cannot turn them off, so the CLIENT must never offer one:
# s_time -new never does, but h2load reuses a client's SSL object for that
# client's next connection, which resumes the previous session (measured: 96%
# of hs connections resumed against a server that allows it). The hs client
# therefore runs with a small LD_PRELOAD shim (built here with cc) that drops
# the saved session before each connection. Checked before measuring, against
# an extra nginx server that does offer resumption (cache and tickets on) and
# logs $ssl_session_reused: with the shim and with s_time, no connection may
# resume.
# h2load's -D (duration) mode never ends with 'Connection: close' (1.52), so hs
# runs a request count sized from a calibration run to last about DURATION s.
# stdout gets one table (medians over rounds); progress goes to stderr.
#
# Usage:  bash bench/tls.sh            (from anywhere; INSTALL=1 the first time)
# Environment (all optional):
#   DURATION=10 WARMUP=2 ROUNDS=3     seconds per measured run / warm-up before
#                                     each run / interleaved rounds
#   KEYS="ecdsa rsa" TESTS="hs h1 h2" what to measure (any subsets; also st, hr;
#                                     KEYS may add dual: both servers carry the
#                                     ECDSA and the RSA certificate, each client
#                                     gets ECDSA if it can)
#   CONNS=64                          wrk connections (h1)
#   HS_CLIENTS=16                     concurrent connections (hs, st)
#   H2_CLIENTS=16 H2_STREAMS=10       h2load connections / streams each (h2)
#   PIN=1 PROXY_CPUS=0 UPSTREAM_CPUS=0 LOAD_CPUS=1
#                                     taskset CPU lists, as in peers.sh; PIN=0: none
#   QUIET_LOAD=1.0 QUIET_WAIT=240     before starting, wait up to QUIET_WAIT s
#                                     for the 1-minute load average < QUIET_LOAD
#   BG_MAX=15                         before each run, wait (up to 60 s) until no
#                                     CPU is more than BG_MAX % busy over 0.5 s
#                                     with our servers idle (other users' load)
#   PRIMITIVES=1                      also time the handshake's crypto primitives,
#                                     openssl speed beside Go's crypto (=only: just that)
#   INSTALL=1                         apt-get install missing Debian packages
#   KEEP_TMP=1                        keep certificates, configs, logs, raw output
# Everything binds to 127.0.0.1 only; every process started here is stopped by
# PID on exit, and every wait is bounded in time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
KEYS=${KEYS:-ecdsa rsa}
TESTS=${TESTS:-hs h1 h2}
CONNS=${CONNS:-64}
HS_CLIENTS=${HS_CLIENTS:-16}
H2_CLIENTS=${H2_CLIENTS:-16}
H2_STREAMS=${H2_STREAMS:-10}
PIN=${PIN:-1}
PROXY_CPUS=${PROXY_CPUS:-0}
UPSTREAM_CPUS=${UPSTREAM_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
QUIET_LOAD=${QUIET_LOAD:-1.0}
QUIET_WAIT=${QUIET_WAIT:-240}
BG_MAX=${BG_MAX:-15}
INSTALL=${INSTALL:-0}
KEEP_TMP=${KEEP_TMP:-0}
PRIMITIVES=${PRIMITIVES:-0}
readonly LOOP=127.0.0.1 HOST=example.com BODY_SIZE=64

log() { printf '[tls] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- dependencies
PATH=$PATH:/usr/sbin:/sbin
[[ -x /usr/local/go/bin/go ]] && PATH=$PATH:/usr/local/go/bin
declare -A PKG=([wrk]=wrk [curl]=curl [ps]=procps [taskset]=util-linux [nginx]=nginx
                [h2load]=nghttp2-client [openssl]=openssl [cc]=gcc)
need=(wrk curl ps nginx h2load openssl cc)
[[ $PIN == 1 ]] && need+=(taskset)
missing=()
for c in "${need[@]}"; do command -v "$c" >/dev/null || missing+=("${PKG[$c]}"); done
if ((${#missing[@]})); then
  [[ $INSTALL == 1 ]] || die "missing Debian packages: ${missing[*]}
        install them:  apt-get install --no-install-recommends ${missing[*]}
        or rerun with INSTALL=1 to let this script run apt-get for you."
  log "installing: ${missing[*]}"
  sudo=(); ((EUID == 0)) || sudo=(sudo)
  timeout 600 "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo[@]}" \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v go >/dev/null || die "go not found (looked on PATH and in /usr/local/go/bin)"
for v in DURATION WARMUP ROUNDS CONNS HS_CLIENTS H2_CLIENTS H2_STREAMS QUIET_WAIT BG_MAX; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
((DURATION > 0 && ROUNDS > 0 && CONNS > 0 && HS_CLIENTS > 0 && H2_CLIENTS > 0 && H2_STREAMS > 0)) ||
  die "DURATION, ROUNDS and the connection counts must be > 0"
[[ $PRIMITIVES =~ ^(0|1|only)$ ]] || die "PRIMITIVES must be 0, 1 or only"
read -ra KEY_LIST <<<"$KEYS"
read -ra TEST_LIST <<<"$TESTS"
for k in "${KEY_LIST[@]}"; do [[ $k =~ ^(ecdsa|rsa|dual)$ ]] || die "unknown key '$k' (ecdsa rsa dual)"; done
for t in "${TEST_LIST[@]}"; do [[ $t =~ ^(hs|hr|st|h1|h2)$ ]] || die "unknown test '$t' (hs hr st h1 h2)"; done

# ------------------------------------------------------------ process handling
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tls.XXXXXX")
PIDS=()   # every long-running process started by this script

alive() {  # true if PID exists and is not a zombie
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [[ ${s:0:1} != Z ]]
}
tree() {   # PID and all its descendants
  local c
  echo "$1"
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$c"; done
}
stop() {   # stop the given PIDs and their descendants: TERM, up to 5 s, then KILL
  local all=() p deadline=$((SECONDS + 5))
  for p in "$@"; do mapfile -t -O "${#all[@]}" all < <(tree "$p"); done
  kill -TERM "${all[@]}" 2>/dev/null || true
  for p in "${all[@]}"; do
    while alive "$p" && ((SECONDS < deadline)); do sleep 0.05; done
    if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
  forget "$@"
}
forget() { # drop PIDs from PIDS, so a recycled PID is never signalled later
  local keep=() q
  for q in "${PIDS[@]}"; do [[ " $* " == *" $q "* ]] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}
run_bg() {  # run_bg OUTFILE CMD...: run a client (pinned) bounded in time; INT/TERM act at once
  local out=$1 w rc=0; shift
  timeout $((3 * (DURATION + WARMUP) + 60)) "${PIN_LOAD[@]}" "$@" >"$out" 2>&1 &
  w=$!
  PIDS+=("$w")
  wait "$w" || rc=$?
  forget "$w"
  return "$rc"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((${#PIDS[@]})); then stop "${PIDS[@]}"; fi
  if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ CPU layout
cpus_in() {  # expand a CPU list such as "0-2,5" to "0 1 2 5"
  local part parts cpus=()
  IFS=, read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then mapfile -t -O "${#cpus[@]}" cpus < <(seq "${part%-*}" "${part#*-}")
    else cpus+=("$part"); fi
  done
  echo "${cpus[@]}"
}
PIN_PROXY=() PIN_LOAD=() PIN_UP=()
if [[ $PIN == 1 ]]; then
  PIN_PROXY=(taskset -c "$PROXY_CPUS")
  PIN_LOAD=(taskset -c "$LOAD_CPUS")
  PIN_UP=(taskset -c "$UPSTREAM_CPUS")
  SRV_CPUS=$(cpus_in "$PROXY_CPUS") LD_CPUS=$(cpus_in "$LOAD_CPUS")
else
  SRV_CPUS=$(seq 0 $(($(nproc) - 1)) | xargs) LD_CPUS=$SRV_CPUS
fi
NPROXY=$(wc -w <<<"$SRV_CPUS")   # nginx workers
THREADS=$(wc -w <<<"$LD_CPUS")   # wrk / h2load threads

# ---------------------------------------------------------------- quiet host
cpu_snap() {  # "cpu busy total" jiffies per CPU, from /proc/stat
  awk '/^cpu[0-9]/ { t = 0; for (i = 2; i <= 9; i++) t += $i
                     print substr($1, 4), t - $5 - $6, t }' /proc/stat
}
busy_pct() {  # busy_pct BEFORE AFTER "CPU..." -> busy % of those CPUs
  awk -v set=" $3 " 'NR == FNR { b[$1] = $2; t[$1] = $3; next }
    index(set, " " $1 " ") { db += $2 - b[$1]; dt += $3 - t[$1] }
    END { printf "%d", dt ? 100 * db / dt + 0.5 : 0 }' <(echo "$1") <(echo "$2")
}
ALL_CPUS=$(seq 0 $(($(nproc) - 1)) | xargs)
background() {  # busiest CPU's % over 0.5 s (our servers are idle between runs)
  local a b c m=0 v
  a=$(cpu_snap); sleep 0.5; b=$(cpu_snap)
  for c in $ALL_CPUS; do v=$(busy_pct "$a" "$b" "$c"); ((v > m)) && m=$v; done
  echo "$m"
}
wait_quiet_cpu() {  # up to 60 s for every CPU to be <= BG_MAX % busy; prints the last sample
  local deadline=$((SECONDS + 60)) bg
  while :; do
    bg=$(background)
    if ((bg <= BG_MAX)); then echo "$bg"; return; fi
    if ((SECONDS >= deadline)); then log "host still busy (${bg}% on one CPU), measuring anyway"; echo "$bg"; return; fi
    log "host busy (${bg}% on one CPU from other processes), waiting"
    sleep 2
  done
}
load1() { cut -d' ' -f1 /proc/loadavg; }
START_LOAD=$(load1) QUIET_NOTE="1-min load average $START_LOAD at start"
deadline=$((SECONDS + QUIET_WAIT)) waited=0
while awk -v l="$(load1)" -v m="$QUIET_LOAD" 'BEGIN { exit !(l >= m) }'; do
  if ((SECONDS >= deadline)); then
    QUIET_NOTE+=", still $(load1) after waiting ${waited}s (measured anyway)"; waited=-1; break
  fi
  log "load average $(load1) >= $QUIET_LOAD, waiting (up to ${QUIET_WAIT}s)"
  sleep 10
  waited=$((waited + 10))
done
if ((waited > 0)); then QUIET_NOTE+=", $(load1) after waiting ${waited}s"; fi
log "$QUIET_NOTE"

# ---------------------------------------------------------------- primitives
# PRIMITIVES=1 (after the table) or =only: the signing and key-exchange
# primitives a full handshake costs the server, OpenSSL (openssl speed) beside
# Go's crypto packages (a testing.B written to $TMP), on the client CPU.
primitives() {
  local d=$TMP/primitives
  mkdir -p "$d"
  printf 'module primitives\n\ngo 1.22\n' >"$d/go.mod"
  cat >"$d/p_test.go" <<'GO'
package primitives

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

var digest = sha256.Sum256([]byte("handshake transcript"))

func BenchmarkECDSAP256Sign(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := 0; i < b.N; i++ {
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRSA2048SignPSS(b *testing.B) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	o := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
	for i := 0; i < b.N; i++ {
		if _, err := rsa.SignPSS(rand.Reader, k, crypto.SHA256, digest[:], o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkX25519KeygenECDH(b *testing.B) {
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	for i := 0; i < b.N; i++ {
		k, _ := ecdh.X25519().GenerateKey(rand.Reader)
		if _, err := k.ECDH(peer.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
}
GO
  log "primitives: openssl speed and Go's crypto on CPU(s) $LOAD_CPUS"
  (cd "$d" && timeout 300 go test -c -o "$d/p.test" .) || die "go test -c failed"
  run_bg "$d/openssl.out" openssl speed -seconds 3 ecdsap256 rsa2048 ecdhx25519 || die "openssl speed failed"
  run_bg "$d/go.out" "$d/p.test" -test.bench . -test.benchtime 3s || die "go bench failed"
  echo "# primitives, µs per operation on CPU(s) $LOAD_CPUS: openssl speed -seconds 3 ecdsap256 rsa2048 ecdhx25519;"
  echo "# Go $(go version | cut -d' ' -f3): go test -bench (crypto/ecdsa Sign, crypto/rsa SignPSS, crypto/ecdh X25519)"
  awk 'FNR == NR {
         if ($1 == "rsa" && $2 == "2048") { rs = 1e6 / $(NF - 1); rv = 1e6 / $NF }
         if (/nistp256/) { es = 1e6 / $(NF - 1); ev = 1e6 / $NF }
         if (/X25519/) { x = 1e6 / $NF }
         next }
       /^BenchmarkECDSAP256Sign/ { ges = $3 / 1000 }
       /^BenchmarkRSA2048SignPSS/ { grs = $3 / 1000 }
       /^BenchmarkX25519KeygenECDH/ { gx = $3 / 2000 }
       END {
         printf "%-46s %8s %8s\n", "primitive", "OpenSSL", "Go"
         printf "%-46s %8.1f %8.1f\n", "ECDSA P-256 sign (server)", es, ges
         printf "%-46s %8.1f %8s\n", "ECDSA P-256 verify (client)", ev, "-"
         printf "%-46s %8.1f %8.1f\n", "RSA-2048 sign (server; Go: PSS, as TLS 1.3)", rs, grs
         printf "%-46s %8.1f %8s\n", "RSA-2048 verify (client)", rv, "-"
         printf "%-46s %8.1f %8.1f\n", "X25519, one operation (Go: (keygen+ECDH)/2)", x, gx
       }' "$d/openssl.out" "$d/go.out"
}

if [[ $PRIMITIVES == only ]]; then primitives; exit 0; fi

# --------------------------------------------------------------------- build
log "building fronttier and the upstream"
(cd "$ROOT" && timeout 300 go build -trimpath -o "$TMP/fronttier" ./cmd/fronttier) || die "go build fronttier failed"
(cd "$SHARED/bench/upstream" && timeout 300 go build -o "$TMP/upstream" .) || die "go build upstream failed"
# The hs client's shim: h2load calls SSL_set_connect_state before each new
# connection of a client, on an SSL object that may still hold the last
# session; drop that session first. No headers and no libc needed to build.
cat >"$TMP/noresume.c" <<'SHIM'
typedef int (*set_session_fn)(void *, void *);
typedef void (*connect_state_fn)(void *);
extern void *dlsym(void *, const char *);
#define RTLD_NEXT ((void *)-1L)
void SSL_set_connect_state(void *ssl) {
  static connect_state_fn real;
  static set_session_fn set_session;
  if (!real) {
    real = (connect_state_fn)dlsym(RTLD_NEXT, "SSL_set_connect_state");
    set_session = (set_session_fn)dlsym(RTLD_NEXT, "SSL_set_session");
  }
  set_session(ssl, 0);
  real(ssl);
}
SHIM
timeout 60 cc -shared -fPIC -O2 -nostdlib -o "$TMP/noresume.so" "$TMP/noresume.c" || die "cc failed"
NORESUME=(env "LD_PRELOAD=$TMP/noresume.so")

# -------------------------------------------------------------- certificates
log "making a test CA and ECDSA P-256 / RSA 2048 leaves for $HOST"
C=$TMP/certs
mkdir -p "$C"
(
  cd "$C"
  exec 2>openssl.log
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.pem -days 30 -subj "/CN=fronttier bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  for k in ecdsa rsa; do
    if [[ $k == ecdsa ]]; then newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ku=digitalSignature
    else newkey=(-newkey rsa:2048) ku=digitalSignature,keyEncipherment; fi
    openssl req -new "${newkey[@]}" -nodes -keyout "$k.key" -out "$k.csr" -subj "/CN=$HOST"
    printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\nextendedKeyUsage=serverAuth\n' \
      "$HOST" "$ku" >"$k.ext"
    openssl x509 -req -in "$k.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile "$k.ext" -out "$k.crt"
    cat "$k.crt" ca.pem >"$k.chain.pem"   # full chain: leaf, then the CA
  done
) || { cat "$C/openssl.log" >&2; die "openssl failed"; }

# ---------------------------------------------------------------- the targets
mapfile -t FREE < <("$TMP/upstream" -freeports 8)
((${#FREE[@]} == 8)) || die "could not find free ports"
UPSTREAM_PORT=${FREE[0]} CHECK_PORT=${FREE[5]}
declare -A PORT=([nginx.ecdsa]=${FREE[1]} [fronttier.ecdsa]=${FREE[2]}
                 [nginx.rsa]=${FREE[3]} [fronttier.rsa]=${FREE[4]}
                 [nginx.dual]=${FREE[6]} [fronttier.dual]=${FREE[7]})

probe() {  # probe PORT [curl args]: "<status> <bytes> <http version>" over HTTPS, verified
  local port=$1; shift
  curl -s -o /dev/null -m 2 --cacert "$C/ca.pem" --resolve "$HOST:$port:$LOOP" "$@" \
    -w '%{http_code} %{size_download} %{http_version}' "https://$HOST:$port/" 2>/dev/null || true
}
wait_ready() {  # wait_ready NAME PID PORT: up to 15 s for 200 + full body, then h2 by ALPN
  local name=$1 pid=$2 port=$3 deadline=$((SECONDS + 15)) out=
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      log "$name exited during startup:"; tail -n 20 "$TMP/$name.log" >&2; return 1
    fi
    out=$(probe "$port" --http1.1)
    if [[ $out == "200 $BODY_SIZE 1.1" ]]; then
      out=$(probe "$port" --http2)
      [[ $out == "200 $BODY_SIZE 2" ]] && return 0
      log "$name: no HTTP/2 ($out)"; return 1
    fi
    sleep 0.1
  done
  log "$name not ready on $LOOP:$port after 15 s (last probe: '$out'):"
  tail -n 20 "$TMP/$name.log" >&2
  return 1
}

start_upstream() {
  "${PIN_UP[@]}" "$TMP/upstream" -addr "$LOOP:$UPSTREAM_PORT" -size "$BODY_SIZE" \
    >"$TMP/upstream.log" 2>&1 &
}

certs_of() {  # certs_of KEY: the certificates a KEY's servers carry, ECDSA first
  if [[ $1 == dual ]]; then echo ecdsa rsa; else echo "$1"; fi
}

start_nginx() {  # start_nginx KEY
  local k=$1 d=$TMP/nginx.$1 check=
  mkdir -p "$d"
  # The ecdsa instance also carries the resumption check server: the same
  # certificate, but with a session cache and tickets, logging whether each
  # connection resumed.
  [[ $k == ecdsa ]] && check="
    log_format resumed '\$ssl_session_reused \$ssl_protocol \$ssl_cipher \$ssl_curve';
    server {
        listen $LOOP:$CHECK_PORT ssl;
        server_name $HOST;
        ssl_session_cache shared:check:1m;
        ssl_session_tickets on;
        access_log $TMP/resumption.log resumed;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"
  cat >"$d/nginx.conf" <<EOF
worker_processes $NPROXY;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    keepalive_requests 1000000;   # also caps requests per HTTP/2 connection
$(for c in $(certs_of "$k"); do printf '    ssl_certificate %s;\n    ssl_certificate_key %s;\n' "$C/$c.chain.pem" "$C/$c.key"; done)
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;   # fronttier's TLS 1.2 suites
    ssl_session_cache off;                     # every new connection: full handshake
    ssl_session_tickets off;
    upstream backend {
        server $LOOP:$UPSTREAM_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {   # any other Host (wrk's SNI is 127.0.0.1: this server's certificate is the same)
        listen $LOOP:${PORT[nginx.$k]} ssl http2 default_server;
        return 404;
    }
    server {
        listen $LOOP:${PORT[nginx.$k]} ssl http2;
        server_name $HOST;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }$check
}
EOF
  "${PIN_PROXY[@]}" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" >"$TMP/nginx.$k.log" 2>&1 &
}

start_fronttier() {  # start_fronttier KEY
  local k=$1 source="type = \"file\", cert_path = \"$C/$1.chain.pem\", key_path = \"$C/$1.key\""
  [[ $k == dual ]] && source="type = \"file\", cert_path = \"$C/ecdsa.chain.pem\", key_path = \"$C/ecdsa.key\", additional = [{ cert_path = \"$C/rsa.chain.pem\", key_path = \"$C/rsa.key\" }]"
  # default_certificate: wrk sends the URL's host (127.0.0.1) as SNI.
  cat >"$TMP/fronttier.$k.toml" <<EOF
[proxy]
listen_addr = "$LOOP:${PORT[fronttier.$k]}"
management_api_addr = "$LOOP:0"
default_certificate = "$HOST"
[logging]
level = "warn"
access_log = false
[metrics]
enabled = true
listen_addr = "$LOOP:0"
[health_check]
interval_secs = 10
[[virtual_hosts]]
domain = "$HOST"
enabled_backends_tag = "bench"
certificate_source = { $source }
[[backends]]
id = "upstream"
address = "$LOOP:$UPSTREAM_PORT"
tags = ["bench"]
EOF
  "${PIN_PROXY[@]}" "$TMP/fronttier" --config "$TMP/fronttier.$k.toml" >"$TMP/fronttier.$k.log" 2>&1 &
}

# ------------------------------------------------------------------ measuring
# s_time sends "GET <page> HTTP/1.0" and no Host; this page makes it an
# HTTP/1.1 request for $HOST (the trailing " HTTP/1.0" lands in X-Ignore).
ST_WWW=$'/ HTTP/1.1\r\nHost: '$HOST$'\r\nConnection: close\r\nX-Ignore: x'
run_st() {  # run_st PORT SECONDS OUTFILE: HS_CLIENTS s_time -new side by side
  # s_time stops at a whole second of the clock (time(NULL) + -time), so its
  # runs last anywhere between SECONDS-1 and SECONDS: divide by the wall time.
  local i pids=() rc=0 p t0 t1
  t0=$(date +%s.%N)
  for ((i = 0; i < HS_CLIENTS; i++)); do
    timeout $(($2 + 60)) "${PIN_LOAD[@]}" openssl s_time -connect "$LOOP:$1" -new -time "$2" \
      -www "$ST_WWW" >"$3.$i" 2>&1 &
    pids+=("$!")
    PIDS+=("$!")
  done
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  t1=$(date +%s.%N)
  forget "${pids[@]}"
  # each process: "N connections in T real seconds, B bytes read per connection"
  awk -v procs="$HS_CLIENTS" -v secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
    /connections in .* real seconds/ { n += $1; ok++; b = $(NF - 4) }
    END { printf "%.0f - - %d s_time/%sB\n", n / secs, procs - ok, b }' "$3".* >"$3"
  rm -f "$3".*
  return "$rc"
}
H2LOAD_HS=(--h1 -c"$HS_CLIENTS" -m1 -H 'Connection: close')
H2LOAD_H2=(-c"$H2_CLIENTS" -m"$H2_STREAMS")
hs_rate() { awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /^req\/s,?$/) print int($(i - 1)) }' "$1"; }
measure() {  # measure TEST PORT OUTFILE
  local t=$1 port=$2 out=$3 uri=https://$HOST/ n rate min=$((HS_CLIENTS * 16))
  local h2l=(h2load -t"$THREADS" --connect-to "$LOOP:$port")
  case $t in
    h1)
      local w=(wrk -t"$THREADS" -c"$CONNS" --latency -H "Host: $HOST")
      if ((WARMUP > 0)); then run_bg /dev/null "${w[@]}" -d"$WARMUP"s "https://$LOOP:$port/" || true; fi
      run_bg "$out" "${w[@]}" -d"$DURATION"s "https://$LOOP:$port/" ;;
    h2)
      local a=("${h2l[@]}" "${H2LOAD_H2[@]}" -D "$DURATION")
      ((WARMUP > 0)) && a+=(--warm-up-time "$WARMUP")
      run_bg "$out" "${a[@]}" --log-file="$out.req" "$uri" ;;
    hs | hr)
      # a request count lasting ~DURATION s: a short calibration run, then the
      # warm-up (~WARMUP s), whose rate sizes the measured run
      local c=("${h2l[@]}")
      [[ $t == hs ]] && c=("${NORESUME[@]}" "${h2l[@]}")
      run_bg "$out.cal" "${c[@]}" "${H2LOAD_HS[@]}" -n "$min" "$uri" || return 1
      rate=$(hs_rate "$out.cal")
      if ((WARMUP > 0)); then
        n=$(((${rate:-0} + 1) * WARMUP)); ((n >= min)) || n=$min
        run_bg "$out.cal" "${c[@]}" "${H2LOAD_HS[@]}" -n "$n" "$uri" || return 1
        rate=$(hs_rate "$out.cal")
      fi
      rm -f "$out.cal"
      n=$(((${rate:-0} + 1) * DURATION)); ((n >= min)) || n=$min
      run_bg "$out" "${c[@]}" "${H2LOAD_HS[@]}" -n "$n" --log-file="$out.req" "$uri" ;;
    st)
      if ((WARMUP > 0)); then run_st "$port" "$WARMUP" "$out.warm" || true; rm -f "$out.warm"; fi
      run_st "$port" "$DURATION" "$out" ;;
  esac
}
parse_wrk() { # wrk output -> "rate p50_ms p99_ms errors proto"
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
                        if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
       /^Requests\/sec:/ { rps = $2 }
       $1 == "50%" { p50 = ms($2) }
       $1 == "99%" { p99 = ms($2) }
       /Non-2xx or 3xx responses:/ { err += $NF }
       /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
       END { printf "%.0f %.3f %.3f %d -\n", rps, p50, p99, err }' "$1"
}
parse_h2load() { # h2load output (+ .req log) -> "rate p50_ms p99_ms errors proto"
  local pct
  # per-request log: start_us status duration_us; percentiles of the durations
  pct=$(awk -F'\t' '{ print $3 }' "$1.req" | sort -n | awk '{ v[NR] = $1 }
        END { if (!NR) { print "0 0"; exit }
              i = int(NR * 0.50 + 0.5); if (i < 1) i = 1; j = int(NR * 0.99 + 0.5); if (j < 1) j = 1
              printf "%.3f %.3f", v[i] / 1000, v[j] / 1000 }')
  awk -v pct="$pct" '
       /^finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s,?$/) { rps = $(i - 1) } }
       /^requests:/ { gsub(/,/, ""); err += $10 }        # failed: errored, timed out, 4xx, 5xx
       /^status codes:/ { gsub(/,/, ""); err += $5 }      # 3xx (counted as success by h2load)
       /^TLS Protocol:/ { p = $3 }
       /^Cipher:/ { c = $2 }
       /^Server Temp Key:/ { k = $4 }
       /^Application protocol:/ { a = $3 }
       END { split(pct, q, " ")
             printf "%.0f %s %s %d %s/%s/%s/%s\n", rps, q[1], q[2], err, p, c, k, a }' "$1"
}

# -------------------------------------------------------------------- the run
PORT[upstream]=$UPSTREAM_PORT
TARGETS=()
for k in "${KEY_LIST[@]}"; do TARGETS+=("nginx.$k" "fronttier.$k"); done
log "starting the upstream on $LOOP:$UPSTREAM_PORT"
start_upstream
PIDS+=("$!") UPID=$!
deadline=$((SECONDS + 15))
until curl -s -o /dev/null -m 2 "http://$LOOP:$UPSTREAM_PORT/"; do
  alive "$UPID" && ((SECONDS < deadline)) || die "the upstream did not start"
  sleep 0.1
done
declare -A TPID=()
for t in "${TARGETS[@]}"; do
  log "starting $t on $LOOP:${PORT[$t]}"
  "start_${t%.*}" "${t#*.}"
  pid=$!
  PIDS+=("$pid")
  wait_ready "$t" "$pid" "${PORT[$t]}" || die "$t did not start"
  TPID[$t]=$pid
done

# Resumption check: the handshake clients against a server that offers
# resumption, then what fronttier itself offers.
RESUME_NOTE="not checked (needs KEYS to include ecdsa)"
reused() {  # reused CMD...: run a client against the check server -> "resumed of total"
  : >"$TMP/resumption.log"
  run_bg "$TMP/resumption.out" "$@" || { tail -n 5 "$TMP/resumption.out" >&2; die "resumption check failed to run"; }
  awk '$1 == "r" { r++ } $1 == "." || $1 == "r" { n++ } END { printf "%d of %d", r, n }' "$TMP/resumption.log"
}
if [[ -n ${TPID[nginx.ecdsa]:-} ]]; then
  log "checking that the handshake clients never resume a session"
  h2l=(h2load --connect-to "$LOOP:$CHECK_PORT" "${H2LOAD_HS[@]}" -n 400 "https://$HOST/")
  plain=$(reused "${h2l[@]}")
  shim=$(reused "${NORESUME[@]}" "${h2l[@]}")
  [[ $shim == "0 of 400" ]] || die "hs client with the shim: $shim connections resumed (want 0 of 400)"
  RESUME_NOTE="connections resumed vs a server offering tickets+cache: h2load (hs) $plain without the shim, $shim with it"
  if [[ " ${TEST_LIST[*]} " == *" st "* ]]; then
    st=$(reused openssl s_time -connect "$LOOP:$CHECK_PORT" -new -time 1 -www "$ST_WWW")
    [[ $st == 0\ of\ * && $st != "0 of 0" ]] || die "s_time -new: $st connections resumed"
    RESUME_NOTE+=", s_time -new $st"
  fi
  # fronttier: a first connection that reads its answer to the end (TLS 1.3
  # tickets come after the handshake), then one offering the saved session
  ft=fronttier.${KEY_LIST[0]}
  printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$HOST" |
    timeout 20 openssl s_client -connect "$LOOP:${PORT[$ft]}" -servername "$HOST" \
      -sess_out "$TMP/fronttier.session" -ign_eof -quiet >/dev/null 2>&1 || true
  r=$(timeout 20 openssl s_client -connect "$LOOP:${PORT[$ft]}" -servername "$HOST" \
        -sess_in "$TMP/fronttier.session" </dev/null 2>/dev/null | grep -E '^(New|Reused),' || true)
  RESUME_NOTE+="; fronttier, openssl s_client -sess_out then -sess_in: '${r%%, Cipher*}' (Go's tickets, on)"
  log "$RESUME_NOTE"
fi

RESULTS=$TMP/results   # round key test target rate p50 p99 errors proto bg busy_srv busy_load
: >"$RESULTS"
for ((r = 1; r <= ROUNDS; r++)); do
  for k in "${KEY_LIST[@]}"; do
    for t in "${TEST_LIST[@]}"; do
      order=(nginx fronttier)
      ((r % 2)) || order=(fronttier nginx)   # alternate who goes first
      for s in "${order[@]}"; do
        name=$s.$k pid=${TPID[$s.$k]} out=$TMP/$s.$k.$t.$r.out
        alive "$pid" || { log "$name died"; tail -n 20 "$TMP/$name.log" >&2; die "$name died"; }
        bg=$(wait_quiet_cpu)
        log "round $r/$ROUNDS  $k $t $s: warm-up ${WARMUP}s, measuring ${DURATION}s (background ${bg}%)"
        before=$(cpu_snap)
        if ! measure "$t" "${PORT[$name]}" "$out"; then
          log "$name $t: client failed:"; tail -n 5 "$out" >&2
          echo "$r $k $t $s FAILED" >>"$RESULTS"; continue
        fi
        after=$(cpu_snap)
        case $t in
          h1) res=$(parse_wrk "$out") ;;
          st) res=$(cat "$out") ;;
          *) res=$(parse_h2load "$out") ;;
        esac
        echo "$r $k $t $s $res $bg $(busy_pct "$before" "$after" "$SRV_CPUS") $(busy_pct "$before" "$after" "$LD_CPUS")" >>"$RESULTS"
        log "round $r/$ROUNDS  $k $t $s: $(cut -d' ' -f1 <<<"$res") /s"
        rm -f "$out.req"
      done
    done
  done
done
RSS_NOTE=""
rss_mib() {   # VmRSS summed over a process tree, MiB
  local p kb=0 v
  for p in $(tree "$1"); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || v=0
    kb=$((kb + ${v:-0}))
  done
  awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }'
}
for t in "${TARGETS[@]}"; do RSS_NOTE+=" $t $(rss_mib "${TPID[$t]}")"; done

# ---------------------------------------------------------------------- report
ver() { "$@" 2>&1 | head -n 1 || true; }
echo "# tls.sh $(date -u +%FT%TZ)  kernel $(uname -r)  $(nproc) CPUs ($(grep -m1 '^model name' /proc/cpuinfo | sed 's/.*: //'))"
echo "# $(ver nginx -v | sed 's/.*: //') | $(ver openssl version | cut -d' ' -f1-2) | $(ver h2load --version)" \
     "| $(ver wrk -v | cut -d' ' -f1-2) | fronttier $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?')" \
     "built with $(ver go version | cut -d' ' -f3)"
has() { [[ " ${TEST_LIST[*]} " == *" $1 "* ]]; }
if has hs; then
  echo "# hs: LD_PRELOAD=noresume.so h2load -t$THREADS ${H2LOAD_HS[*]:0:4} 'Connection: close' -n N --connect-to $LOOP:PORT https://$HOST/"
  echo "#     (a new TCP+TLS connection per request; N sized to last ~${DURATION}s from a ~${WARMUP}s warm-up run)"
fi
has hr && echo "# hr: the hs command without LD_PRELOAD"
if has st; then
  echo "# st: $HS_CLIENTS x openssl s_time -connect $LOOP:PORT -new -time $DURATION" \
       "-www '/ HTTP/1.1<CRLF>Host: $HOST<CRLF>Connection: close<CRLF>X-Ignore: x' (warm-up ${WARMUP}s)"
fi
has h1 && echo "# h1: wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -H 'Host: $HOST' https://$LOOP:PORT/ (warm-up ${WARMUP}s)"
has h2 && echo "# h2: h2load -t$THREADS ${H2LOAD_H2[*]} -D $DURATION --warm-up-time $WARMUP --connect-to $LOOP:PORT https://$HOST/"
echo "# $ROUNDS interleaved round(s); body $BODY_SIZE B; TLS: full handshakes (nginx: session cache and tickets off)"
if [[ $PIN == 1 ]]; then
  echo "# CPUs (taskset): proxy $PROXY_CPUS, upstream $UPSTREAM_CPUS, clients $LOAD_CPUS; $NPROXY nginx worker(s)"
else
  echo "# no CPU pinning; $NPROXY nginx worker(s)"
fi
echo "# quiet host: $QUIET_NOTE"
echo "# resumption: $RESUME_NOTE"
awk -v keys="${KEY_LIST[*]}" -v tests="${TEST_LIST[*]}" -v rounds="$ROUNDS" \
    -v nsrv="$(wc -w <<<"$SRV_CPUS")" -v nld="$(wc -w <<<"$LD_CPUS")" '
  function median(list,   a, n, i, j, x) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) {
      x = a[i] + 0
      for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]
      a[j + 1] = x
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  $5 == "FAILED" { failed[$2, $3, $4]++; next }
  {
    id = $2 SUBSEP $3 SUBSEP $4
    rate[id, $1] = $5; n[id]++
    R[id] = R[id] " " $5; P50[id] = P50[id] " " $6; P99[id] = P99[id] " " $7
    err[id] += $8; proto[id] = $9; BG[id] = BG[id] " " $10; BS[id] = BS[id] " " $11; BL[id] = BL[id] " " $12
    if ($5 > 0) { SU[id] = SU[id] " " $11 / 100 * nsrv * 1e6 / $5; CU[id] = CU[id] " " $12 / 100 * nld * 1e6 / $5 }
    if (!(id in lo) || $5 < lo[id]) lo[id] = $5
    if (!(id in hi) || $5 > hi[id]) hi[id] = $5
  }
  END {
    printf "%-6s %-4s %-10s %8s %7s %7s %7s %8s %9s %11s %6s %4s  %s\n", "key", "test", "target", "per_s",
           "spread", "p50_ms", "p99_ms", "vs_nginx", "busy%", "cpu_us", "errors", "bg%", "negotiated"
    nk = split(keys, K, " "); nt = split(tests, T, " ")
    for (a = 1; a <= nk; a++) for (b = 1; b <= nt; b++) for (c = 1; c <= 2; c++) {
      s = c == 1 ? "nginx" : "fronttier"; id = K[a] SUBSEP T[b] SUBSEP s
      if (!n[id]) { printf "%-6s %-4s %-10s %9s\n", K[a], T[b], s, "FAILED"; continue }
      ratios = ""
      nid = K[a] SUBSEP T[b] SUBSEP "nginx"
      for (r = 1; r <= rounds; r++)
        if (((id, r) in rate) && ((nid, r) in rate) && rate[nid, r] > 0)
          ratios = ratios " " rate[id, r] / rate[nid, r]
      med = median(R[id])
      p50 = P50[id] ~ /-/ ? "-" : sprintf("%.2f", median(P50[id]))
      p99 = P99[id] ~ /-/ ? "-" : sprintf("%.2f", median(P99[id]))
      if ((K[a], T[b], s) in failed) proto[id] = proto[id] " (" failed[K[a], T[b], s] " round(s) FAILED)"
      printf "%-6s %-4s %-10s %8.0f %6.0f%% %7s %7s %8s %4.0f/%-4.0f %5.0f/%-5.0f %6d %4.0f  %s\n", K[a], T[b], s,
             med, med ? 100 * (hi[id] - lo[id]) / med : 0, p50, p99,
             ratios == "" ? "n/a" : sprintf("%.2f", median(ratios)),
             median(BS[id]), median(BL[id]), median(SU[id]), median(CU[id]), err[id], median(BG[id]), proto[id]
    }
  }' "$RESULTS"
echo "# per_s: hs, st = new connections (full handshakes, one request each) per second; h1, h2 = requests per second;"
echo "# hr = hs with resumption allowed (fronttier resumes; nginx, cache and tickets off, cannot);"
echo "# medians over rounds; spread = (max-min)/median; vs_nginx = median of per-round ratios;"
echo "# p50/p99: per request, from h2load's --log-file (hs: from the request, after the handshake) or wrk --latency;"
echo "# busy% = use of the proxy+upstream CPU / the client's CPU; cpu_us = CPU time per connection or request"
echo "# on those CPUs (server/client, µs, kernel included): the fair comparison when the client CPU is the limit;"
echo "# errors = failed, errored, timed-out"
echo "# and non-2xx requests, plus socket errors (wrk), or s_time processes that stopped early (st);"
echo "# bg% = busiest CPU over 0.5 s just before the run (other users' load; our servers idle);"
echo "# negotiated = TLS protocol/cipher/key exchange/ALPN as h2load printed them (st: bytes read per connection)."
echo "# RSS after the last round (MiB):$RSS_NOTE"
if [[ $PRIMITIVES == 1 ]]; then primitives; fi

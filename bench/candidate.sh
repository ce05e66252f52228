#!/usr/bin/env bash
# candidate.sh - runs fronttier as shared/bench/peers.sh's candidate: writes a
# config that routes $BENCH_HOST to $UPSTREAM_ADDR on 127.0.0.1:$CANDIDATE_PORT,
# with health checks and metrics on and the access log off (ACCESS_LOG=1 turns
# it on, to a file in $BENCH_TMP), then execs the binary at $FRONTTIER_BIN.
# Optional: ADMIN_PORT (the management API's port; default any free one),
# PPROF_PORT (serve /debug/pprof/ there), TLS_CERT and TLS_KEY (serve HTTPS
# with that certificate on the port instead of plain HTTP).
set -euo pipefail
access=false
[[ ${ACCESS_LOG:-0} == 1 ]] && access=true
listen=listen_addr_http cert= debug=
if [[ -n ${TLS_CERT:-} ]]; then
	listen=listen_addr
	cert="certificate_source = { type = \"file\", cert_path = \"$TLS_CERT\", key_path = \"$TLS_KEY\" }"
fi
[[ -n ${PPROF_PORT:-} ]] && debug=$'[debug]\npprof_addr = "127.0.0.1:'$PPROF_PORT'"'
cat >"$BENCH_TMP/fronttier.toml" <<CONF
[proxy]
$listen = "127.0.0.1:$CANDIDATE_PORT"
management_api_addr = "127.0.0.1:${ADMIN_PORT:-0}"
[logging]
level = "warn"
access_log = $access
access_log_path = "$BENCH_TMP/access.log"
[metrics]
enabled = true
listen_addr = "127.0.0.1:0"
[health_check]
interval_secs = 10
$debug
[[virtual_hosts]]
domain = "$BENCH_HOST"
enabled_backends_tag = "bench"
$cert
[[backends]]
id = "upstream"
address = "$UPSTREAM_ADDR"
tags = ["bench"]
CONF
exec "$FRONTTIER_BIN" --config "$BENCH_TMP/fronttier.toml"

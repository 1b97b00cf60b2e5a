#!/bin/sh
# Starts Switchyard for ../shared/bench/run.py (see its README for the
# contract): reads LISTEN, UPSTREAMS, SCENARIO, WORKERS, CERT, KEY, writes a
# config for the scenario and execs the release binary in the foreground.
#
#   sudo python3 ../shared/bench/run.py --candidate 'exec bench/candidate.sh' \
#        --candidate-name switchyard --scenario all
#
# Extra scenarios beyond the harness's: SCENARIO=websocket (WebSocket
# upgrades proxied to UPSTREAMS) and SCENARIO=grpc (upstreams speak gRPC
# over h2c). SWITCHYARD_BIN overrides the binary. RESILIENCE=1 adds an
# HTTP health check, outlier detection, a retry policy and all four circuit
# breakers to the bench upstream (issue 3's speed check). TRACING=RATIO adds
# [tracing] (issue 4's overhead check; see below). OBSERVE=1 turns on
# everything issue 4's speed check asks for: the admin listener (metrics,
# dashboard sampling), a JSON access log to a file, and tracing at 1%;
# ACCESS_LOG=1 and TRACING=RATIO turn on one of them alone.
#
# SCENARIO=edge (issue 9): the plain scenario plus, on every route, a
# request id, CORS allowing https://app.example with credentials, gzip / br
# / zstd compression of text responses, and an IP allow list read from the
# file ALLOW_CIDRS_FILE names (one CIDR a line; unset: 127.0.0.0/8 and
# ::1). The harness does not know it: run it as
#   --candidate 'SCENARIO=edge exec bench/candidate.sh' with --scenario plain.
# EDGE_HEADER_RULES=1 adds two header rules (one request, one response)
# and EDGE_COMPRESS=0 leaves compression out: with both, the filter set of
# issue 9's speed check (request id, two header rules, CORS, IP list).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${SWITCHYARD_BIN:-$here/target/release/switchyard}
if [ ! -x "$bin" ]; then
  (cd "$here" && cargo build --release --locked -p switchyard >&2)
fi
: "${LISTEN:?LISTEN is required (127.0.0.1:PORT)}"
: "${UPSTREAMS:?UPSTREAMS is required (host:port,host:port)}"
scenario=${SCENARIO:-plain}
workers=${WORKERS:-1}
dir=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
cfg=$dir/switchyard.toml

allow_file=
if [ "$scenario" = edge ] && [ -n "${ALLOW_CIDRS_FILE:-}" ]; then
  [ -r "$ALLOW_CIDRS_FILE" ] || { echo "ALLOW_CIDRS_FILE=$ALLOW_CIDRS_FILE is not readable" >&2; exit 2; }
  allow_file=$(cd "$(dirname "$ALLOW_CIDRS_FILE")" && pwd)/$(basename "$ALLOW_CIDRS_FILE")
fi

servers=$(printf '%s' "$UPSTREAMS" | awk -F, '{for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? ", " : ""), $i}')
protocol=http1
[ "$scenario" = grpc ] && protocol=h2c

{
  if [ "${OBSERVE:-0}" = 1 ]; then
    printf '[admin]\naddress = "127.0.0.1:0"\n\n'
  else
    printf '[admin]\nenabled = false\n\n'
  fi
  printf '[runtime]\nworkers = %s\nwatch_config = false\nlog_level = "warn"\ndrain_timeout = "1s"\n\n' "$workers"
  printf '[listeners.bench]\naddress = "%s"\n' "$LISTEN"
  if [ "$scenario" = tls ]; then
    : "${CERT:?CERT is required for tls}" "${KEY:?KEY is required for tls}"
    printf '[listeners.bench.tls]\ncertificates = [{ cert = "%s", key = "%s" }]\n' "$CERT" "$KEY"
  fi
  if [ "$scenario" = edge ]; then
    printf '\n[filters.request-id]\nrequest_id = {}\n'
    printf '\n[filters.cors]\ncors = { allow_origins = ["https://app.example"], allow_credentials = true, allow_methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], allow_headers = ["content-type", "authorization", "x-request-id"], expose_headers = ["x-request-id"], max_age = "10m" }\n'
    if [ "${EDGE_COMPRESS:-1}" != 0 ]; then
      printf '\n[filters.compress]\ncompress = { algorithms = ["zstd", "br", "gzip"] }\n'
    fi
    if [ -n "$allow_file" ]; then
      printf '\n[filters.allow]\nip = { allow_files = ["%s"] }\n' "$allow_file"
    else
      printf '\n[filters.allow]\nip = { allow = ["127.0.0.0/8", "::1"] }\n'
    fi
    edge_filters='"allow", "request-id", "cors"'
    [ "${EDGE_COMPRESS:-1}" = 0 ] || edge_filters="$edge_filters, \"compress\""
    if [ "${EDGE_HEADER_RULES:-0}" = 1 ]; then
      printf '\n[filters.rules]\nheaders = { request = { set = { x-client-ip = "${client_ip}" } }, response = { set = { x-served-by = "${route}" } } }\n'
      edge_filters="$edge_filters, \"rules\""
    fi
  fi
  printf '\n[[routes]]\nname = "bench"\nupstream = "origins"\n'
  if [ "$scenario" = edge ]; then
    printf 'filters = [%s]\n' "$edge_filters"
  fi
  printf '\n'
  if [ "${RESILIENCE:-0}" = 1 ]; then
    printf '[routes.retry]\nattempts = 2\nper_try_timeout = "5s"\n\n'
  fi
  printf '[upstreams.origins]\nbalancer = "round_robin"\nprotocol = "%s"\nservers = [%s]\n' "$protocol" "$servers"
  if [ "${RESILIENCE:-0}" = 1 ]; then
    printf '[upstreams.origins.health_check]\ntype = "http"\npath = "/small"\ninterval = "1s"\ntimeout = "1s"\n'
    printf '[upstreams.origins.outlier]\nconsecutive_5xx = 5\nconsecutive_gateway_failures = 5\n'
    printf '[upstreams.origins.circuit_breaker]\nmax_connections = 4096\nmax_pending_requests = 1024\nmax_requests = 4096\nmax_retries = 16\n'
  fi
  # h2c multiplexes 64 x 8 streams onto HTTP/1.1 upstreams: keep enough
  # idle connections for 512 concurrent requests. Elsewhere the default
  # (64 per server and worker) covers the 64 client connections.
  if [ "$scenario" = h2c ]; then
    printf '[upstreams.origins.pool]\nmax_idle_per_server = 256\n'
  fi
  # TRACING=RATIO (e.g. 0.01) adds [tracing] with that sample ratio,
  # exporting to TRACING_ENDPOINT (default a local OTLP/HTTP collector; with
  # none listening, exports fail and are counted, which costs little).
  if [ "${OBSERVE:-0}" = 1 ]; then
    : "${TRACING:=0.01}"
    ACCESS_LOG=1
  fi
  if [ "${ACCESS_LOG:-0}" = 1 ]; then
    printf '\n[access_log]\nformat = "json"\npath = "%s/access.log"\n' "$dir"
  fi
  if [ -n "${TRACING:-}" ]; then
    printf '\n[tracing]\nendpoint = "%s"\nsample_ratio = %s\n' \
      "${TRACING_ENDPOINT:-http://127.0.0.1:4318/v1/traces}" "$TRACING"
  fi
} > "$cfg"

exec "$bin" run -c "$cfg"

#!/bin/bash
# User and system CPU per request of Switchyard under wrk load, for
# converting callgrind's user-space instruction counts into CPU per
# request. Each argument is one candidate, NAME or NAME:ENV (variables for
# bench/candidate.sh, space-separated); the candidates run one after the
# other, ROUNDS times (default 3), so a drift of the machine spreads over
# all of them. Switchyard is pinned to CPU 0, nginx (two origin ports) and
# wrk (2 threads, 64 connections, 3 s warm-up, 10 s measured) to CPU 1.
#
#   bench/cpu-split.sh before:SWITCHYARD_BIN=/tmp/base-target/release/switchyard \
#     plain 'filters:SCENARIO=edge EDGE_HEADER_RULES=1 EDGE_COMPRESS=0 ALLOW_CIDRS_FILE=/tmp/allow-100k.txt'
#
# Needs nginx, wrk and taskset. Bounded: ROUNDS x candidates x 13 s.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
for t in nginx wrk taskset curl; do
  command -v "$t" >/dev/null || { echo "cpu-split.sh needs $t" >&2; exit 2; }
done
[ $# -gt 0 ] || { echo "usage: $0 NAME[:ENV] ..." >&2; exit 2; }
ORIGIN_CPU=1
. "$here/bench/origins.sh"

one() {
  name=${1%%:*}
  vars=
  case $1 in *:*) vars=${1#*:} ;; esac
  port=$(free_port)
  # shellcheck disable=SC2086 # the variables are separate words on purpose
  env $vars LISTEN=127.0.0.1:$port UPSTREAMS=127.0.0.1:$o1,127.0.0.1:$o2 WORKERS=1 TMPDIR="$work" \
    taskset -c 0 sh "$here/bench/candidate.sh" > "$work/$name.log" 2>&1 &
  pid=$!
  wait_up "$port" "$work/$name.log"
  taskset -c 1 wrk -t2 -c64 -d3s "http://127.0.0.1:$port/small" > /dev/null
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  out=$(taskset -c 1 wrk -t2 -c64 -d10s "http://127.0.0.1:$port/small")
  read -r u2 s2 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  hz=$(getconf CLK_TCK)
  python3 -c "u = ($u2 - $u1) / $hz; s = ($s2 - $s1) / $hz; r = $reqs
print(f'$name: {r} requests, per request {u / r * 1e6:.2f} us user + {s / r * 1e6:.2f} us system = {(u + s) / r * 1e6:.2f} us, user share {u / (u + s):.2f}')"
}

for _ in $(seq "${ROUNDS:-3}"); do
  for c in "$@"; do one "$c"; done
done

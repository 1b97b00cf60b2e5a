#!/bin/sh
# Instructions per request, the repeatable speed figure: runs Switchyard
# (started through bench/candidate.sh, so SCENARIO, EDGE_HEADER_RULES,
# ALLOW_CIDRS_FILE, SWITCHYARD_BIN... apply) under
# `valgrind --tool=callgrind`, one worker, in front of two nginx origins on
# loopback, and sends plain HTTP/1.1 GET /small (100 B) with h2load over 16
# connections: once SHORT requests, once LONG. Start-up and shutdown cost
# the same in both, so (instructions(LONG) - instructions(SHORT)) /
# (LONG - SHORT) is the cost of one request.
#
#   bench/callgrind.sh                      # plain
#   SCENARIO=edge ALLOW_CIDRS_FILE=/tmp/allow-100k.txt bench/callgrind.sh
#   SCENARIO=h2c H2LOAD='-m 8' bench/callgrind.sh   # h2c, 8 streams a connection
#
# KEEP=PREFIX keeps the two callgrind files as PREFIX.SHORT and PREFIX.LONG
# (for callgrind_annotate). Needs valgrind, nginx and h2load (nghttp2-client). Bounded: two runs of
# at most LONG requests, each under a 300 s timeout.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
SHORT=${SHORT:-2000}
LONG=${LONG:-22000}
real=${SWITCHYARD_BIN:-$here/target/release/switchyard}
for t in valgrind nginx h2load; do
  command -v "$t" >/dev/null || { echo "callgrind.sh needs $t" >&2; exit 2; }
done
[ -x "$real" ] || (cd "$here" && cargo build --release --locked -p switchyard >&2)

. "$here/bench/origins.sh"

cat > "$work/valgrind-switchyard" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="\$CALLGRIND_OUT" "$real" "\$@"
EOF
chmod +x "$work/valgrind-switchyard"

# One run of N requests; prints the instructions callgrind counted.
run() {
  n=$1
  port=$(free_port)
  out=$work/callgrind.$n
  CALLGRIND_OUT=$out SWITCHYARD_BIN=$work/valgrind-switchyard LISTEN=127.0.0.1:$port \
    UPSTREAMS=127.0.0.1:$o1,127.0.0.1:$o2 WORKERS=1 TMPDIR=$work \
    sh "$here/bench/candidate.sh" > "$work/run.$n.log" 2>&1 &
  pid=$!
  wait_up "$port" "$work/run.$n.log"
  # shellcheck disable=SC2086 # H2LOAD is several words on purpose
  timeout 300 h2load ${H2LOAD:---h1} -c 16 -n "$n" "http://127.0.0.1:$port/small" > "$work/h2load.$n" 2>&1
  grep -q "$n succeeded, 0 failed" "$work/h2load.$n" || { echo "not every request succeeded:" >&2; cat "$work/h2load.$n" >&2; exit 1; }
  kill -TERM "$pid"
  wait "$pid" || true
  [ -z "${KEEP:-}" ] || cp "$out" "$KEEP.$n"
  awk '/^summary:|^totals:/ {print $2; exit}' "$out"
}

a=$(run "$SHORT")
b=$(run "$LONG")
echo "instructions: $SHORT requests $a, $LONG requests $b"
echo "instructions per request: $(( (b - a) / (LONG - SHORT) ))"

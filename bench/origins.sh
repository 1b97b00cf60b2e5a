# Sourced by bench/callgrind.sh and bench/cpu-split.sh: makes the work
# directory $work (removed on exit), defines free_port and wait_up, and
# starts one nginx with two origin ports, $o1 and $o2, serving /small (100
# bytes). ORIGIN_CPU pins nginx to that CPU.
work=$(mktemp -d "${TMPDIR:-/tmp}/sy-bench.XXXXXX")
chmod 755 "$work"   # nginx's workers run as nobody
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_up PORT LOG: waits (at most 60 s) until the proxy on PORT serves
# /small; otherwise prints LOG and exits.
wait_up() {
  i=0
  until curl -sf -o /dev/null "http://127.0.0.1:$1/small"; do
    i=$((i + 1))
    [ $i -lt 600 ] || { echo "switchyard did not start:" >&2; cat "$2" >&2; exit 1; }
    sleep 0.1
  done
}

o1=$(free_port); o2=$(free_port)
mkdir -p "$work/www"
head -c 100 /dev/zero | tr '\0' x > "$work/www/small"
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  default_type text/plain;
  server { listen 127.0.0.1:$o1; root $work/www; }
  server { listen 127.0.0.1:$o2; root $work/www; }
}
EOF
if [ -n "${ORIGIN_CPU:-}" ]; then
  taskset -c "$ORIGIN_CPU" nginx -c "$work/nginx.conf" -p "$work"
else
  nginx -c "$work/nginx.conf" -p "$work"
fi

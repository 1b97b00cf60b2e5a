#!/usr/bin/env python3
"""Idle connection memory of Switchyard over TLS and HTTP/2: a variant of the
conns scenario of ../shared/bench/run.py for the protocols it does not cover.

For each mode it starts a small keep-alive origin (this script, `__origin`
mode), starts the proxy with bench/candidate.sh (WORKERS=1; SWITCHYARD_BIN
picks the binary), then opens N connections, 256 at a time, sends one
GET /small on each, reads the whole response, and holds them all idle. The
proxy's VmRSS (/proc/PID/status, median of 3 samples) is taken before
opening and after the connections have been idle for --settle seconds
(parking happens after 500 ms). bytes/conn = growth / connections held.

Modes (--modes, comma list; default all but h1):
  h1       cleartext HTTP/1.1, as run.py's conns scenario (for comparison)
  tls-h1   HTTPS/1.1 (ALPN http/1.1)
  tls-h2   HTTP/2 over TLS (ALPN h2)
  h2c      cleartext HTTP/2 with prior knowledge

The HTTP/2 client is hand-written (preface, SETTINGS, one HEADERS frame in
HPACK literals, SETTINGS ack): no third-party package is needed. A
self-signed EC P-256 certificate is made with openssl unless --cert and
--key are given. Everything is bounded: each mode opens at most N
connections within --open-timeout seconds, and the proxy and origin are
stopped at the end of each mode (and on Ctrl-C).

Run it from the repository root, under the benchmark lock, e.g.

  flock /tmp/bench.lock python3 bench/idle-conns.py
  flock /tmp/bench.lock env SWITCHYARD_BIN=/tmp/wt-b-target/release/switchyard \\
        python3 bench/idle-conns.py --modes h1,tls-h1,tls-h2,h2c -n 10000 --json out.json

It needs about N + 1,000 file descriptors; it raises its soft limit to the
hard limit (inherited by the proxy) and lowers N with a warning otherwise.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BODY = b"x" * 100
MODES = ["h1", "tls-h1", "tls-h2", "h2c"]


# ---------------------------------------------------------------- origin

def origin_main(port: int) -> int:
    """Child mode: a minimal HTTP/1.1 keep-alive origin answering 100 bytes."""
    resp = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
            + str(len(BODY)).encode() + b"\r\nx-origin: a\r\n\r\n" + BODY)

    async def client(r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                if not head:
                    break
                w.write(resp)
                await w.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        w.close()

    async def main():
        srv = await asyncio.start_server(client, "127.0.0.1", port, backlog=1024)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())
    return 0


# ---------------------------------------------------------------- clients

def h2_request(authority: str, scheme: str, path: str) -> bytes:
    def lit(index: int, value: str) -> bytes:
        # Literal header field without indexing, indexed name (RFC 7541 6.2.2).
        v = value.encode()
        assert index < 15 and len(v) < 127
        return bytes([index, len(v)]) + v

    block = bytes([0x82, 0x87 if scheme == "https" else 0x86]) + lit(4, path) + lit(1, authority)
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    headers = len(block).to_bytes(3, "big") + b"\x01\x05" + (1).to_bytes(4, "big") + block
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + headers


async def h2_exchange(r, w, req: bytes) -> bool:
    """Sends the request on stream 1; True once stream 1 ended with a 200-ish answer."""
    w.write(req)
    got_headers = False
    while True:
        hdr = await r.readexactly(9)
        length = int.from_bytes(hdr[:3], "big")
        ftype, flags = hdr[3], hdr[4]
        stream = int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF
        payload = await r.readexactly(length) if length else b""
        if ftype == 4 and not flags & 1:  # SETTINGS: ack it
            w.write(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        elif ftype == 7:  # GOAWAY
            return False
        elif ftype == 3 and stream == 1:  # RST_STREAM
            return False
        elif stream == 1 and ftype == 1:  # HEADERS: :status 200 is static index 8
            got_headers = payload[:1] == b"\x88"
            if not got_headers:
                return False
            if flags & 1:
                return True
        elif stream == 1 and ftype == 0 and flags & 1:  # DATA, END_STREAM
            return got_headers


async def h1_exchange(r, w, req: bytes) -> bool:
    w.write(req)
    head = await r.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 2"):
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await r.readexactly(int(line.split(b":", 1)[1]))
            return True
    return False


async def open_all(mode: str, port: int, n: int, timeout: float, held: list) -> dict:
    host = "127.0.0.1"
    ctx = None
    if mode.startswith("tls"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"] if mode == "tls-h2" else ["http/1.1"])
    h2 = mode in ("tls-h2", "h2c")
    authority = f"{host}:{port}"
    if h2:
        req = h2_request(authority, "https" if ctx else "http", "/small")
    else:
        req = f"GET /small HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: idle-conns\r\n\r\n".encode()
    alpn_bad = [0]

    async def one(sem):
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost" if ctx else None), 10)
            except (OSError, ssl.SSLError, asyncio.TimeoutError):
                return
            try:
                if ctx:
                    want = "h2" if h2 else "http/1.1"
                    if w.get_extra_info("ssl_object").selected_alpn_protocol() != want:
                        alpn_bad[0] += 1
                        raise OSError("ALPN")
                ok = await asyncio.wait_for((h2_exchange if h2 else h1_exchange)(r, w, req), 10)
                if ok:
                    held.append(w)
                    return
            except (OSError, ValueError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError):
                pass
            w.close()

    sem = asyncio.Semaphore(256)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(one(sem)) for _ in range(n)]
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    return {"opened": len(held), "failed": n - len(held), "timed_out": len(pending),
            "alpn_mismatch": alpn_bad[0], "open_s": round(time.monotonic() - t0, 2)}


# ---------------------------------------------------------------- proxy

def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def rss3(pid: int) -> int:
    vals = []
    for _ in range(3):
        vals.append(vm_rss(pid))
        time.sleep(0.2)
    return int(statistics.median(vals))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline: float, proc: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with_pg = True
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            with_pg = False
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            if with_pg:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait(5)


def run_mode(mode: str, a, cert: str, key: str, tmp: str) -> dict:
    oport, pport = free_port(), free_port()
    origin = subprocess.Popen([sys.executable, os.path.abspath(__file__), "__origin", str(oport)],
                              start_new_session=True)
    proxy = None
    try:
        wait_port(oport, time.monotonic() + 10, origin)
        env = dict(os.environ, LISTEN=f"127.0.0.1:{pport}", UPSTREAMS=f"127.0.0.1:{oport}", WORKERS="1",
                   SCENARIO="tls" if mode.startswith("tls") else "conns", CERT=cert, KEY=key, TMPDIR=tmp)
        cmd = ["sh", "-c", "exec bench/candidate.sh"]
        if a.pin and shutil.which("taskset"):
            cmd = ["taskset", "-c", a.pin] + cmd
        log = open(os.path.join(tmp, f"proxy-{mode}.log"), "w")
        proxy = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
        wait_port(pport, time.monotonic() + 60, proxy)
        # Warm-up: a few connections through the same path, then settle.
        async def warm_up():
            warm: list = []
            await open_all(mode, pport, 16, 20, warm)
            for w in warm:
                w.close()
            await asyncio.sleep(0.2)
            if len(warm) < 16:
                raise RuntimeError(f"warm-up: only {len(warm)} of 16 requests succeeded")

        asyncio.run(warm_up())
        time.sleep(1.5)
        base = rss3(proxy.pid)
        held: list = []

        async def hold():
            info = await open_all(mode, pport, a.n, a.open_timeout, held)
            await asyncio.sleep(a.settle)
            info["rss_with"] = await asyncio.get_running_loop().run_in_executor(None, rss3, proxy.pid)
            if proxy.poll() is not None:
                raise RuntimeError("the proxy exited while holding connections")
            # Still open on our side (the proxy did not close them).
            info["held"] = sum(1 for w in held if not w.is_closing() and not w.transport.is_closing())
            for w in held:
                w.close()
            await asyncio.sleep(0.5)
            return info

        info = asyncio.run(hold())
        time.sleep(1.0)
        after = rss3(proxy.pid)
        grow = info["rss_with"] - base
        counted = min(info["opened"], info["held"])
        return {"mode": mode, **info, "rss_base_mib": round(base / 2**20, 2),
                "rss_with_mib": round(info.pop("rss_with") / 2**20, 2), "rss_after_mib": round(after / 2**20, 2),
                "bytes_per_conn": round(grow / counted) if counted else None}
    finally:
        if proxy:
            stop(proxy)
        stop(origin)


def main() -> int:
    if sys.argv[1:2] == ["__origin"]:
        return origin_main(int(sys.argv[2]))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modes", default="tls-h1,tls-h2,h2c", help="comma list of " + ",".join(MODES))
    p.add_argument("-n", type=int, default=10000, help="connections per mode (default 10000)")
    p.add_argument("--open-timeout", type=float, default=120.0, help="seconds to open them (default 120)")
    p.add_argument("--settle", type=float, default=2.0, help="idle seconds before measuring (default 2)")
    p.add_argument("--pin", default="0", help="taskset CPU list for the proxy ('' for none; default 0)")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode {m}")
    a.n = max(1, min(a.n, 100_000))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.n * 2 + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        soft = min(want, hard)
    if soft < a.n + 1024:
        a.n = max(100, soft - 1024)
        print(f"warning: file descriptor limit {soft}: {a.n} connections per mode", file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="idle-conns.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    try:
        cert, key = a.cert, a.key
        if not (cert and key):
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           check=True, capture_output=True)
        for m in modes:
            print(f"[{m}] opening {a.n} connections ...", file=sys.stderr, flush=True)
            r = run_mode(m, a, cert, key, tmp)
            print(f"[{m}] {json.dumps(r)}", file=sys.stderr, flush=True)
            results.append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| mode | opened | held | open s | RSS before MiB | RSS with conns MiB | bytes/conn | RSS after close MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['opened']} | {r['held']} | {r['open_s']} | {r['rss_base_mib']} | "
              f"{r['rss_with_mib']} | {r['bytes_per_conn']} | {r['rss_after_mib']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Measures what hostile peers cost the server, for docs/performance.md ("Hostile peers").

    cargo build --release -p agentwire-cli
    python3 scripts/hostile-measure.py slow-consumers [--send-buffer-bytes 0,65536]
    python3 scripts/hostile-measure.py storm [--backlogs 128,4096] [--clients 1000]

slow-consumers: N clients that send requests and never read. For each --send-buffer-bytes
value, a fresh server; reports the kernel memory the server's sockets hold for them (ss -m:
skmem `w`, bytes queued for sending, and `tb`, the send buffer), and how many of them the
server closed (4008) within the wait.

storm: C clients connect at the same instant (one thread each, released together); for each
--listen-backlog value, a fresh server; reports TCP connect time p50/p99/max (a SYN dropped
by a full backlog is retransmitted after 1 s, then 3 s) and how many connects took over 900 ms.

Only loopback addresses are used; every run is bounded in count and time.
"""

import argparse
import base64
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

SECRET = "hostile-measure-secret-of-at-least-32-bytes"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "agentwire")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port, *extra):
    cmd = [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--jwt-secret", SECRET,
           "--demo-step-ms", "0", "--rate-limit-per-sec", "0", "--log-format", "json",
           "--write-timeout-secs", "10", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("the server did not start")


def token(sub):
    out = subprocess.run([BIN, "token", "--jwt-secret", SECRET, "--sub", sub],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def frame(text):
    """One masked client text frame."""
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def handshake(port, tok, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Protocol: jwt-auth, jwt.{tok}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    return s


def server_skmem(port):
    """(queued bytes `w`, send buffer `tb`) of each server-side socket on `port`."""
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    sockets = []
    for m in re.finditer(r"skmem:\(([^)]*)\)", out):
        fields = dict(re.findall(r"([a-z]+)(\d+)", m.group(1)))
        sockets.append((int(fields.get("w", 0)), int(fields.get("tb", 0))))
    return sockets


def closes_4008(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = b""
        while chunk := s.recv(65536):
            body += chunk
    m = re.search(rb'agentwire_closes_total\{code="4008"[^}]*\} (\d+)', body)
    return int(m.group(1)) if m else 0


def slow_consumers(args):
    request = frame('{"type":"start_agent","payload":{"user_request":"%s"}}' % ("x" * 200))
    for sndbuf in [int(x) for x in args.send_buffer_bytes.split(",")]:
        port = free_port()
        proc = start(port, "--send-buffer-bytes", str(sndbuf))
        try:
            tok = token("slow")
            conns = []
            for i in range(args.clients):
                conns.append(handshake(port, token(f"slow{i}"), rcvbuf=4096))
            # Each asks for runs it never reads: about 1.6 KB of events per request.
            for s in conns:
                s.setblocking(False)
            sent = 0
            deadline = time.time() + args.seconds
            while time.time() < deadline and sent < args.requests:
                for s in conns:
                    try:
                        s.send(request)
                    except OSError:
                        pass
                sent += 1
            time.sleep(1.0)
            mem = server_skmem(port)
            queued = [t for t, _ in mem]
            bufs = [tb for _, tb in mem]
            waited = time.time()
            while closes_4008(port) < args.clients and time.time() - waited < 15:
                time.sleep(0.5)
            closed = closes_4008(port)
            print(f"send buffer {sndbuf or 'auto'}: {args.clients} slow consumers, "
                  f"{sent} requests each; server sockets: {len(mem)}, kernel bytes queued "
                  f"per socket: mean {statistics.mean(queued or [0]):,.0f}, max "
                  f"{max(queued or [0]):,}; send buffer (tb) max {max(bufs or [0]):,}; "
                  f"closed 4008 within {time.time() - waited:.1f} s: {closed}")
            for s in conns:
                s.close()
            del tok
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def storm(args):
    for backlog in [int(x) for x in args.backlogs.split(",")]:
        port = free_port()
        proc = start(port, "--listen-backlog", str(backlog))
        try:
            times = [None] * args.clients
            socks = [None] * args.clients
            gate = threading.Event()

            def connect(i):
                s = socket.socket()
                gate.wait()
                t0 = time.perf_counter()
                try:
                    s.settimeout(10)
                    s.connect(("127.0.0.1", port))
                    times[i] = time.perf_counter() - t0
                    socks[i] = s
                except OSError:
                    s.close()

            threads = [threading.Thread(target=connect, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            gate.set()
            for t in threads:
                t.join()
            done = sorted(t for t in times if t is not None)
            q = statistics.quantiles(done, n=100) if len(done) > 1 else [0] * 99
            slow = sum(1 for t in done if t > 0.9)
            print(f"backlog {backlog}: {len(done)}/{args.clients} connected; connect p50 "
                  f"{q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, max {done[-1] * 1000:.1f} ms; "
                  f"{slow} waited over 900 ms (SYN retransmit)")
            for s in socks:
                if s:
                    s.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    slow = sub.add_parser("slow-consumers")
    slow.add_argument("--send-buffer-bytes", default="0,65536")
    slow.add_argument("--clients", type=int, default=20)
    slow.add_argument("--requests", type=int, default=3000)
    slow.add_argument("--seconds", type=float, default=10)
    st = sub.add_parser("storm")
    st.add_argument("--backlogs", default="128,4096")
    st.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release -p agentwire-cli")
    {"slow-consumers": slow_consumers, "storm": storm}[args.what](args)


if __name__ == "__main__":
    main()

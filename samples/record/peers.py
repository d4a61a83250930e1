#!/usr/bin/env python3
"""The programs whose traffic the samples record: servers and clients that
talk over the veth pair record.sh builds. Standard library only.

Every role is a subcommand; record.sh runs servers in the server namespace
and clients in the client namespace, e.g.

    peers.py http-server --bind 10.77.0.2 --port 8080
    peers.py http-clients --server 10.77.0.2 --port 8080 --sources 10.77.0.101-140 --requests 3

Clients only ever connect to the --server address they are given; record.sh
gives them the server namespace's address.
"""

import argparse
import http.client
import http.server
import random
import socket
import socketserver
import struct
import sys
import threading
import time

PAGE = b"".join(b"sockscope sample page, line %04d\n" % i for i in range(16))  # 528 bytes


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def addr_range(spec):
    """`10.77.0.101-140` -> ['10.77.0.101', ..., '10.77.0.140']; `a,b` lists."""
    out = []
    for part in spec.split(","):
        if "-" in part:
            base, last = part.rsplit("-", 1)
            prefix, first = base.rsplit(".", 1)
            out += [f"{prefix}.{n}" for n in range(int(first), int(last) + 1)]
        else:
            out.append(part)
    return out


def serve_forever(a, name, serve):
    """Listen on --bind:--port and run `serve(conn)` on a thread per client."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(16)
    log(f"{name} on {a.bind}:{a.port}")
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def linger0(sock):
    """close() on this socket sends a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# --- HTTP: a real http.server, HTTP/1.0 (the server closes after each reply)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "sockscope-sample/1.0"

    def do_GET(self):
        time.sleep(self.server.delay)  # "work": lets connections overlap
        body = PAGE
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # 40 clients at once must not overflow the backlog
    delay = 0.0


def http_server(a):
    srv = Server((a.bind, a.port), Handler)
    srv.delay = a.delay
    log(f"http-server on {a.bind}:{a.port}")
    srv.serve_forever()


def http_clients(a):
    """One thread per source address, all released at once by a barrier;
    each makes --requests requests, one connection each (http.client), the
    first at once, the others after a pause of up to --spread seconds."""
    sources = addr_range(a.sources)
    rng = random.Random(a.seed)
    pauses = {s: [0.0] + [rng.uniform(0, a.spread) for _ in range(a.requests - 1)] for s in sources}
    barrier = threading.Barrier(len(sources))
    errors = []

    def run(src):
        barrier.wait()
        for i, pause in enumerate(pauses[src]):
            time.sleep(pause)
            try:
                c = http.client.HTTPConnection(a.server, a.port, timeout=10, source_address=(src, 0))
                c.request("GET", f"/{src}/{i}", headers={"User-Agent": "sockscope-sample"})
                r = c.getresponse()
                r.read()
                c.close()
            except OSError as e:
                errors.append(f"{src}: {e}")

    threads = [threading.Thread(target=run, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log(f"http-clients: {len(sources)} sources x {a.requests} requests to port {a.port}, {len(errors)} errors")
    for e in errors:
        log("  ", e)
    return 1 if errors else 0


def raw_get(server, port, path, src=None, abort=False):
    """A minimal HTTP/1.0 GET on a plain socket, optionally bound to `src`
    (an (address, port) pair, SO_REUSEADDR). Returns the bytes read."""
    s = socket.socket()
    s.settimeout(10)
    if src:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(src)
    try:
        s.connect((server, port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {server}\r\n\r\n".encode())
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        if abort:
            linger0(s)
        return got
    finally:
        s.close()


def port_reuse_client(a):
    """--connections connections, source ports taken round-robin from
    --ports; every --abort-every'th is closed with SO_LINGER 0 (a RST)."""
    first, last = (int(p) for p in a.ports.split("-"))
    ports = list(range(first, last + 1))
    retries = 0
    for i in range(a.connections):
        port = ports[i % len(ports)]
        abort = a.abort_every > 0 and i % a.abort_every == a.abort_every - 1
        for attempt in range(50):
            try:
                raw_get(a.server, a.port, f"/reuse/{i}", src=(a.source, port), abort=abort)
                break
            except OSError as e:
                # The previous use of this port is not quite gone yet.
                if attempt == 49:
                    raise
                retries += 1
                log(f"  connection {i} from port {port}: {e}; retrying")
                time.sleep(0.05)
        time.sleep(a.pause)
    log(f"port-reuse: {a.connections} connections from ports {first}-{last}, {retries} retries")


def refused_client(a):
    """--connections connections: every third to the open --port (served),
    the others to --closed-port (refused with a RST)."""
    ok = refused = 0
    for i in range(a.connections):
        if i % 3 == 0:
            raw_get(a.server, a.port, f"/refused/{i}")
            ok += 1
        else:
            try:
                raw_get(a.server, a.closed_port, f"/refused/{i}")
                log(f"  connection {i} to {a.closed_port} was accepted?")
            except ConnectionRefusedError:
                refused += 1
        time.sleep(a.pause)
    log(f"refused: {ok} served, {refused} refused")
    return 0 if ok + refused == a.connections else 1


# --- reset mid-transfer


def line(i):
    return b"sockscope sample bulk data, line %06d ..............................\n" % i


def bulk(n):
    out = b""
    i = 0
    while len(out) < n:
        out += line(i)
        i += 1
    return out[:n]


def abort_server(a):
    """GET /abort: announce 1 MiB, send --abort-after bytes, then close with
    SO_LINGER 0 (RST).  GET /big: send 1 MiB and close normally (FIN).
    GET /small: send 32 KiB and close normally."""
    def serve(c):
        try:
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = c.recv(4096)
                if not chunk:
                    return
                req += chunk
            path = req.split()[1].decode()
            size = {"/abort": 1 << 20, "/big": 1 << 20, "/small": 32 << 10}.get(path.split("?")[0], 0)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % size)
            if path.startswith("/abort"):
                data = bulk(a.abort_after)
                for off in range(0, len(data), 8192):
                    c.sendall(data[off : off + 8192])
                    time.sleep(0.01)
                time.sleep(0.1)  # let it all reach the client, then abort
                linger0(c)
            else:
                c.sendall(bulk(size))
                c.shutdown(socket.SHUT_WR)
                while c.recv(4096):
                    pass
        except OSError:
            pass  # the client reset the connection
        finally:
            c.close()

    serve_forever(a, "abort-server", serve)


def abort_clients(a):
    """Per round: one download the server aborts (RSTR), one the client
    aborts after --read bytes (RSTO), one that completes (SF)."""
    counts = {"server-reset": 0, "client-abort": 0, "complete": 0}
    for r in range(a.rounds):
        # 1. The server aborts: read until the RST.
        s = socket.create_connection((a.server, a.port), timeout=10)
        s.sendall(f"GET /abort?round={r} HTTP/1.0\r\n\r\n".encode())
        got = 0
        try:
            while chunk := s.recv(65536):
                got += len(chunk)
        except ConnectionResetError:
            counts["server-reset"] += 1
        s.close()
        log(f"  round {r}: server reset after {got} bytes")
        time.sleep(a.pause)

        # 2. The client gives up: a small receive window keeps the bytes on
        # the wire few; close with SO_LINGER 0 after --read bytes.
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(10)
        s.connect((a.server, a.port))
        s.sendall(f"GET /big?round={r} HTTP/1.0\r\n\r\n".encode())
        got = 0
        while got < a.read:
            chunk = s.recv(min(8192, a.read - got))
            if not chunk:
                break
            got += len(chunk)
        linger0(s)
        s.close()
        counts["client-abort"] += 1
        time.sleep(a.pause)

        # 3. A download that completes.
        n = len(raw_get(a.server, a.port, f"/small?round={r}"))
        counts["complete"] += n > 32 << 10
        time.sleep(a.pause)
    log(f"abort-clients: {counts}")


# --- DNS over UDP


def dns_name(msg, off):
    labels = []
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1 : off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels), off + 1


ZONE = {
    "www.sample.test": "192.0.2.10",
    "api.sample.test": "192.0.2.11",
    "db.sample.test": "192.0.2.12",
    "cache.sample.test": "192.0.2.13",
    "mail.sample.test": "192.0.2.25",
}


def dns_server(a):
    """Answers A queries for ZONE (NXDOMAIN otherwise; NOERROR and no
    answer for other types), one reply per query."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    log(f"dns-server on {a.bind}:{a.port}/udp")
    while True:
        msg, peer = s.recvfrom(512)
        try:
            qid, _flags, qd = struct.unpack("!HHH", msg[:6])
            name, end = dns_name(msg, 12)
            qtype, _qclass = struct.unpack("!HH", msg[end : end + 4])
        except (struct.error, IndexError, UnicodeDecodeError):
            continue
        question = msg[12 : end + 4]
        ip = ZONE.get(name)
        rcode = 0 if ip else 3
        answers = b""
        if ip and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + socket.inet_aton(ip)
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
        s.sendto(head + question + answers, peer)


def sink_server(a):
    """Reads datagrams and never answers: a resolver that is down."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    log(f"sink-server on {a.bind}:{a.port}/udp")
    while True:
        s.recvfrom(2048)


def dns_query(qid, name, qtype=1):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def dns_ask(sock, server, port, qid, name, qtype=1, tries=1, timeout=1.0):
    sock.settimeout(timeout)
    for _ in range(tries):
        sock.sendto(dns_query(qid, name, qtype), (server, port))
        try:
            reply, _ = sock.recvfrom(512)
            return reply
        except (TimeoutError, socket.timeout):
            continue
        except ConnectionRefusedError:  # ICMP port unreachable
            return None
    return None


def dns_clients(a):
    """--queries queries to --port, each from a new socket (a stub resolver);
    --unanswered queries to --sink-port, 3 tries each on one socket; and
    --closed queries to --closed-port, whose answer is ICMP unreachable."""
    rng = random.Random(a.seed)
    names = list(ZONE) + ["missing.sample.test", "old.sample.test"]
    answered = 0
    for i in range(a.queries):
        name = rng.choice(names)
        qtype = 28 if i % 6 == 5 else 1  # some AAAA
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            answered += dns_ask(s, a.server, a.port, rng.randrange(65536), name, qtype) is not None
        time.sleep(a.pause)
    silent = 0
    for i in range(a.unanswered):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            silent += dns_ask(s, a.server, a.sink_port, rng.randrange(65536), names[i % len(names)], tries=3, timeout=0.5) is None
    refused = 0
    for i in range(a.closed):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((a.server, a.closed_port))  # so the ICMP error is reported
            s.settimeout(1.0)
            s.send(dns_query(rng.randrange(65536), names[i % len(names)]))
            try:
                s.recv(512)
            except ConnectionRefusedError:
                refused += 1
            except (TimeoutError, socket.timeout):
                pass
        time.sleep(1.1)  # the kernel rate-limits ICMP errors per peer
    log(f"dns-clients: {answered}/{a.queries} answered, {silent}/{a.unanswered} never answered, {refused}/{a.closed} port unreachable")


# --- long idle


def echo_server(a):
    """Line echo: answers each line with `echo: LINE` until the client closes."""
    def serve(c):
        with c, c.makefile("rb") as f:
            for ln in f:
                c.sendall(b"echo: " + ln)

    serve_forever(a, "echo-server", serve)


def idle_client(a):
    """One connection: an exchange, --idle seconds of silence, another
    exchange, close. Alongside it a UDP query at the start and again on the
    same socket after the idle time, and a few HTTP requests."""
    def http_get(path):
        c = http.client.HTTPConnection(a.server, a.http_port, timeout=10)
        c.request("GET", path)
        c.getresponse().read()
        c.close()

    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s = socket.create_connection((a.server, a.port), timeout=10)
    f = s.makefile("rb")
    s.sendall(b"hello, anyone there?\n")
    log("  ", f.readline().decode().strip())
    dns_ask(u, a.server, a.dns_port, 1, "www.sample.test")
    for i in range(3):
        http_get(f"/before/{i}")
        time.sleep(0.2)
    log(f"  idle for {a.idle} s")
    time.sleep(a.idle)
    s.sendall(b"still there after the pause?\n")
    log("  ", f.readline().decode().strip())
    dns_ask(u, a.server, a.dns_port, 2, "www.sample.test")
    for i in range(2):
        http_get(f"/after/{i}")
        time.sleep(0.2)
    f.close()
    s.close()
    u.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)

    def server(name, fn, port):
        sp = sub.add_parser(name)
        sp.add_argument("--bind", required=True)
        sp.add_argument("--port", type=int, default=port)
        sp.set_defaults(fn=fn)
        return sp

    def client(name, fn, port):
        sp = sub.add_parser(name)
        sp.add_argument("--server", required=True)
        sp.add_argument("--port", type=int, default=port)
        sp.add_argument("--pause", type=float, default=0.0)
        sp.add_argument("--seed", type=int, default=1)
        sp.set_defaults(fn=fn)
        return sp

    server("http-server", http_server, 8080).add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    server("abort-server", abort_server, 9000).add_argument("--abort-after", type=int, default=40000)
    server("dns-server", dns_server, 53)
    server("sink-server", sink_server, 5300)
    server("echo-server", echo_server, 7000)

    sp = client("http-clients", http_clients, 8080)
    sp.add_argument("--sources", required=True)
    sp.add_argument("--requests", type=int, default=3)
    sp.add_argument("--spread", type=float, default=0.5, help="most seconds to wait before a request")

    sp = client("port-reuse-client", port_reuse_client, 8080)
    sp.add_argument("--source", required=True)
    sp.add_argument("--ports", default="40000-40007")
    sp.add_argument("--connections", type=int, default=240)
    sp.add_argument("--abort-every", type=int, default=0)

    sp = client("refused-client", refused_client, 8080)
    sp.add_argument("--closed-port", type=int, default=8081)
    sp.add_argument("--connections", type=int, default=30)

    sp = client("abort-clients", abort_clients, 9000)
    sp.add_argument("--rounds", type=int, default=3)
    sp.add_argument("--read", type=int, default=24000)

    sp = client("dns-clients", dns_clients, 53)
    sp.add_argument("--queries", type=int, default=24)
    sp.add_argument("--sink-port", type=int, default=5300)
    sp.add_argument("--unanswered", type=int, default=4)
    sp.add_argument("--closed-port", type=int, default=5301)
    sp.add_argument("--closed", type=int, default=3)

    sp = client("idle-client", idle_client, 7000)
    sp.add_argument("--idle", type=float, default=90)
    sp.add_argument("--http-port", type=int, default=8080)
    sp.add_argument("--dns-port", type=int, default=53)

    a = p.parse_args()
    sys.exit(a.fn(a) or 0)


if __name__ == "__main__":
    main()

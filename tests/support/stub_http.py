#!/usr/bin/python3
"""A scripted HTTP/1.1 server for the transport tests (stdlib only).

    stub_http.py [--unix PATH] [--tls CERT KEY] [--blackhole]

Listens on 127.0.0.1 (a free port) or on a unix socket, over TLS with --tls, prints one line
`stub_http: listening on PORT|PATH pid PID`, then serves these routes:

  GET  /hello                  200 "hello world" (header X-Test: yes)
  ANY  /echo                   200 JSON: method, path, peer (client port), headers, body
  ANY  /status/N               N with body "status N"
  ANY  /flaky?key=K&n=N&code=C C for the first N hits of key K, then 200 "ok after M";
                               header X-Body-Bytes: the request body's length
  ANY  /throttle?key=K&n=N&after=V   429 with Retry-After V for N hits, then 200
                               (&date=1: Retry-After as an HTTP date V seconds ahead)
  GET  /count?key=K            the number of hits of key K so far
  GET  /many-headers?n=N       N headers of 1000 bytes each
  GET  /truncated              Content-Length 100, 10 bytes sent, connection closed
  ANY  /reset?key=K            connection reset (RST) before any answer (hits of K counted)
  ANY  /drop?key=K             reads the whole request, then closes (FIN) without answering
  ANY  /idle-close?s=S&key=K   200 (kept alive), then closes the idle connection after S s
                               and prints "closed K" (the stub's only line after the first)
  GET  /connections            the number of TCP connections accepted so far
  GET  /slow?s=S               answers after S seconds
  GET  /sleep?s=S              the same, for parallel tests
  GET  /big?mb=N[&s=S]         N MiB of a known pattern, streamed (over about S seconds)
  POST /save?path=P            writes the request body to P (streamed), 200 "N bytes"
  POST /multipart              200 JSON list of parts: name, filename, content_type, size, data
  GET  /drip?bytes=N&s=S       N bytes spread over S seconds

With --blackhole it serves nothing: connecting to its port never completes.
"""
import email.utils
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

hits = {}
hits_lock = threading.Lock()

PATTERN = bytes(range(256)) * 4096   # 1 MiB


def hit(key):
    with hits_lock:
        hits[key] = hits.get(key, 0) + 1
        return hits[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):   # quiet; unix sockets have no client address
        pass

    def address_string(self):
        return "-"

    def handle(self):
        hit("/connections")
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass                      # the client went away: tests do that on purpose

    # -- helpers --

    def send(self, status, body=b"", ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body_chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    def read_body(self):
        return b"".join(self.body_chunks())

    # -- routes --

    def route(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/hello":
            self.read_body()
            return self.send(200, "hello world", headers=[("X-Test", "yes")])
        if path == "/echo":
            body = self.read_body()
            return self.send(200, json.dumps({
                "method": self.command, "path": self.path, "peer": self.client_address[1],
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1")}), "application/json")
        if path.startswith("/status/"):
            self.read_body()
            code = int(path.split("/")[2])
            hit(q.get("key", path))
            return self.send(code, "status %d" % code)
        if path == "/flaky":
            got = [("X-Body-Bytes", str(len(self.read_body())))]
            n = hit(q["key"])
            if n <= int(q.get("n", "1")):
                return self.send(int(q.get("code", "503")), "try again", headers=got)
            return self.send(200, "ok after %d" % n, headers=got)
        if path == "/throttle":
            self.read_body()
            n = hit(q["key"])
            if n <= int(q.get("n", "1")):
                after = q.get("after", "1")
                if q.get("date"):             # the same wait as an HTTP date
                    after = email.utils.formatdate(time.time() + float(after), usegmt=True)
                return self.send(429, "slow down", headers=[("Retry-After", after)])
            return self.send(200, "ok after %d" % n)
        if path == "/many-headers":
            self.send_response(200)
            for i in range(int(q.get("n", "100"))):
                self.send_header("X-Filler-%d" % i, "x" * 1000)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/count":
            with hits_lock:
                return self.send(200, str(hits.get(q["key"], 0)))
        if path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        if path == "/reset":
            if "key" in q:
                hit(q["key"])
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if path == "/drop":
            self.read_body()
            if "key" in q:
                hit(q["key"])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if path == "/idle-close":
            self.read_body()
            self.send(200, "closing in %s s" % q.get("s", "0.1"))
            self.wfile.flush()
            time.sleep(float(q.get("s", "0.1")))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            print("closed %s" % q.get("key", ""), flush=True)
            return
        if path == "/connections":
            self.read_body()
            with hits_lock:
                return self.send(200, str(hits.get("/connections", 0)))
        if path in ("/slow", "/sleep"):
            self.read_body()
            time.sleep(float(q.get("s", "1")))
            return self.send(200, "slept %s" % q.get("s", "1"))
        if path == "/big":
            size = int(float(q.get("mb", "1")) * (1 << 20))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left, pause = size, float(q.get("s", "0")) / max(1, size >> 20)
            while left > 0:
                chunk = PATTERN[:min(left, len(PATTERN))]
                self.wfile.write(chunk)
                left -= len(chunk)
                if pause:
                    time.sleep(pause)
            return
        if path == "/save":
            n = 0
            with open(q["path"], "wb") as f:
                for chunk in self.body_chunks():
                    f.write(chunk)
                    n += len(chunk)
            return self.send(200, "%d bytes" % n)
        if path == "/multipart":
            return self.send(200, json.dumps(parse_multipart(
                self.headers.get("Content-Type", ""), self.read_body())), "application/json")
        if path == "/drip":
            total, secs = int(q.get("bytes", "10")), float(q.get("s", "1"))
            self.send_response(200)
            self.send_header("Content-Length", str(total))
            self.end_headers()
            for _ in range(total):
                time.sleep(secs / total)
                self.wfile.write(b"x")
                self.wfile.flush()
            return
        self.read_body()
        return self.send(404, "no route " + path)

    def handle_one(self):
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_one


def parse_multipart(ctype, body):
    """The parts of a multipart/form-data body, checked strictly."""
    if not ctype.startswith("multipart/form-data"):
        return {"error": "content type " + ctype}
    boundary = ctype.split("boundary=", 1)[1].strip('"').encode()
    sections = body.split(b"--" + boundary)
    if sections[-1].strip() not in (b"--", b"--\r\n"):
        return {"error": "no closing boundary"}
    parts = []
    for sec in sections[1:-1]:
        head, _, data = sec[2:].partition(b"\r\n\r\n")
        data = data[:-2]     # the CRLF before the next boundary
        info = {"size": len(data)}
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            k, v = k.strip().lower(), v.strip()
            if k == "content-disposition":
                for item in v.split(";")[1:]:
                    ik, _, iv = item.strip().partition("=")
                    info[ik] = iv.strip('"')
            elif k == "content-type":
                info["content_type"] = v
        if len(data) <= 4096:
            info["data"] = data.decode("latin-1")
        parts.append(info)
    return parts


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


def blackhole():
    """A port where connecting never completes: the accept queue is full (backlog 0,
    one connection parked in it, nothing accepted), so new SYNs are dropped."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    parked = socket.socket()
    parked.setblocking(False)
    try:
        parked.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    time.sleep(0.2)
    print("stub_http: listening on %d pid %d" % (port, os.getpid()), flush=True)
    while True:
        time.sleep(3600)


def die_with_parent():
    """Exit when the test host dies, even if it crashed before stopping us."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main():
    die_with_parent()
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--unix")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--blackhole", action="store_true")
    a = ap.parse_args()
    if a.blackhole:
        return blackhole()
    if a.unix:
        server = UnixServer(a.unix, Handler)
        where = a.unix
    else:
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer.request_queue_size = 128   # parallel tests connect at once
        Handler.disable_nagle_algorithm = True   # headers and body are separate writes
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        where = str(server.server_address[1])
    if a.tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("stub_http: listening on %s pid %d" % (where, os.getpid()), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

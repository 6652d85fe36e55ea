"""hold_sockets.py: many connections to a server at once, idle or slow, as an
attacker (or a crowd) would hold them; says what became of each.

  hold_sockets.py HOST PORT PLAN_FILE REPORT_FILE STOP_FILE

PLAN_FILE is JSON, a list of groups of connections:

  {"name": "idle", "count": 2000, "from": ["127.0.0.2", "127.0.0.3"],
   "request": "",          # bytes to send ("" sends nothing)
   "first": 0,             # bytes of it sent at once (default: all of it)
   "every": 0.5,           # then one byte every that many seconds
   "tls_hello": false,     # the request is a TLS ClientHello (a handshake begun)
   "reopen": false}        # open a new connection for each the server ends

Connections of a group take their source address from `from` in turn (any
127.x.y.z is loopback). Until STOP_FILE exists it appends lines to
REPORT_FILE, each written whole:

  open NAME N                  the group's N connections are all established
  answer NAME STATUS TEXT      the server answered (TEXT: the body, one line)
  closed NAME SECONDS SENT ANSWERED   the server ended a connection (EOF or
                               reset) SECONDS after connect() was called (the
                               server accepted it later, never earlier), SENT
                               bytes had gone out, ANSWERED is 0 or 1
  failed NAME WHY              a connection could not be established
"""
import errno
import json
import os
import resource
import selectors
import socket
import ssl
import sys
import time


def raise_file_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < need:
        sys.exit(f"hold_sockets.py: {need} descriptors needed, the limit is {soft}")


def client_hello():
    """The first bytes of a TLS handshake, as a client sends them."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Conn:
    def __init__(self, group, source):
        self.group = group
        self.source = source
        self.sock = None
        self.sent = 0
        self.started = time.monotonic()   # connect() called
        self.opened = None          # when seen established
        self.next_byte = None       # when to trickle the next byte
        self.received = b""
        self.answered = False


class Holder:
    def __init__(self, host, port, groups, report):
        self.addr = (host, port)
        self.groups = groups
        self.report = report
        self.sel = selectors.DefaultSelector()
        self.trickling = set()
        for g in groups:
            g["request"] = client_hello() if g.get("tls_hello") else g.get("request", "").encode("latin-1")
            g.setdefault("first", len(g["request"]))
            g["established"] = 0
            g["announced"] = False
            g["next_source"] = 0

    def say(self, line):
        self.report.write(line + "\n")
        self.report.flush()

    def open(self, g):
        sources = g.get("from") or ["127.0.0.1"]
        source = sources[g["next_source"] % len(sources)]
        g["next_source"] += 1
        c = Conn(g, source)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((source, 0))
        rc = s.connect_ex(self.addr)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.say(f"failed {g['name']} {errno.errorcode.get(rc, rc)}")
            return
        c.sock = s
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def established(self, c):
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.sel.unregister(c.sock)
            c.sock.close()
            self.say(f"failed {c.group['name']} {errno.errorcode.get(err, err)}")
            return
        g = c.group
        c.opened = time.monotonic()
        self.sel.modify(c.sock, selectors.EVENT_READ, c)
        self.send(c, g["first"])
        if c.sent < len(g["request"]):
            c.next_byte = c.opened + g.get("every", 0.5)
            self.trickling.add(c)
        g["established"] += 1
        if not g["announced"] and g["established"] >= g["count"]:
            g["announced"] = True
            self.say(f"open {g['name']} {g['count']}")

    def send(self, c, n):
        data = c.group["request"][c.sent:c.sent + n]
        if not data:
            return
        try:
            c.sent += c.sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            pass            # the read side reports the end

    def readable(self, c):
        try:
            chunk = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if chunk:
            c.received += chunk
            self.answer(c)
            return
        self.end(c)

    def answer(self, c):
        head, sep, body = c.received.partition(b"\r\n\r\n")
        if not sep or c.answered:
            return
        status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "?"
        if status.startswith("1"):          # interim: the real answer follows
            c.received = body
            return self.answer(c)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(body) < length:
            return
        c.answered = True
        text = body[:length].decode("utf-8", "replace").replace("\n", " ").replace("\r", " ")
        self.say(f"answer {c.group['name']} {status} {text}")

    def end(self, c):
        self.sel.unregister(c.sock)
        c.sock.close()
        self.trickling.discard(c)
        g = c.group
        self.say(f"closed {g['name']} {time.monotonic() - c.started:.3f} {c.sent} {int(c.answered)}")
        if g.get("reopen"):
            self.open(g)

    def trickle(self, now):
        for c in list(self.trickling):
            if c.next_byte <= now:
                self.send(c, 1)
                if c.sent >= len(c.group["request"]):
                    self.trickling.discard(c)
                else:
                    c.next_byte = now + c.group.get("every", 0.5)

    def run(self, stop_file):
        for g in self.groups:
            for _ in range(g["count"]):
                self.open(g)
        while not os.path.exists(stop_file):
            now = time.monotonic()
            self.trickle(now)
            wait = 0.1
            if self.trickling:
                wait = max(0.0, min(wait, min(c.next_byte for c in self.trickling) - now))
            for key, events in self.sel.select(wait):
                c = key.data
                if c.opened is None:
                    self.established(c)
                else:
                    self.readable(c)


def main():
    host, port, plan_file, report_file, stop_file = sys.argv[1:6]
    with open(plan_file) as f:
        groups = json.load(f)
    raise_file_limit(sum(g["count"] for g in groups) + 64)
    with open(report_file, "a") as report:
        Holder(host, int(port), groups, report).run(stop_file)


main()

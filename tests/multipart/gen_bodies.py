"""gen_bodies.py: multipart bodies as real Python clients send them.

  /usr/bin/python3 gen_bodies.py OUTDIR

Builds upload bodies with requests, httpx and aiohttp (Debian's
python3-requests, python3-httpx, python3-aiohttp; nothing goes on the
network) and writes, for each case NAME:

  NAME.body     the body, as it goes on the wire
  NAME.ctype    the request's Content-Type header
  NAME.expect   what a parser must find, part by part:
                  part\\nname LEN\\nBYTES\\nfilename LEN\\nBYTES\\ntype LEN\\nBYTES\\ndata LEN\\nBYTES\\n
                (LEN -1 and no BYTES line when absent)
  NAME.ranges   "START END" per part: where its content lies in the body

Names and data are what the client was given, not what it sent: the parser
must undo the client's encoding (aiohttp's percent-encoding, the HTML5
escapes of requests and httpx). Where each part lies, and its Content-Type,
are read back from the body here (regular expressions for RFC 2046's
delimiter and the header, Python's email parser for the field's name). The case "sk" is Semantic Kernel's upload
after its first execute: httpx's multipart body under Content-Type
application/json. Boundaries are chosen here (as random as the clients'
own) so that the data can hold look-alikes of them.
"""
import asyncio
import email.parser
import email.policy
import os
import random
import re
import sys
import urllib.parse
import uuid

import aiohttp
import httpx
import requests
import urllib3.filepost

NAMES = ["in 2.csv", "data.csv", "/mnt/data/sk.csv", "é ü.csv", 'a"b.csv', "a\\b.csv",
         "a;b.csv", "日本.txt", "a'b", "new\nline", "a%20b.csv", "100%.csv", "x=y&z.txt"]


def lookalikes(b):
    """Data that holds boundary look-alikes of b that are no boundary line."""
    d = b"--" + b.encode()
    rnd = random.Random(b)
    chunks = [bytes(rnd.getrandbits(8) for _ in range(3000)),
              b"\r\n" + d + b"x\r\n", b"\r\n" + d[:-1] + b"\r\n", b"\n" + d + b"-x",
              b"\r\n" + d + b" \tjunk\r\n", b"abc" + d + b"\r\n", b"\r\n" + d + b"\r",
              b"\r\n--\r\n", b"\r\r\n\nx", d + b"--" + b"!", b"\r\n" + d + b"-x",
              bytes(rnd.getrandbits(8) for _ in range(60000)), b"\r"]
    return b"".join(chunks)


def via_requests(b, files, data):
    urllib3.filepost.choose_boundary = lambda: b
    r = requests.Request("POST", "http://pool/files/upload", files=files, data=data).prepare()
    return r.headers["Content-Type"], r.body


def via_httpx(b, files, data, ctype=None):
    r = httpx.Request("POST", "http://pool/files/upload", files=files, data=data,
                      headers={"Content-Type": "multipart/form-data; boundary=" + b})
    body = r.read()
    return ctype or r.headers["Content-Type"], body


def via_aiohttp(b, files, data):
    async def build():
        fd = aiohttp.FormData()
        fd._writer = aiohttp.MultipartWriter("form-data", boundary=b)
        for k, v in (data or {}).items():
            fd.add_field(k, v)
        for k, (name, content, ctype) in files.items():
            fd.add_field(k, content, filename=name, content_type=ctype)
        writer = fd()

        class Sink:
            def __init__(self):
                self.buf = bytearray()

            async def write(self, chunk):
                self.buf += chunk

        sink = Sink()
        await writer.write(sink)
        return writer.content_type, bytes(sink.buf)
    return asyncio.run(build())


CLIENTS = {"requests": via_requests, "httpx": via_httpx, "aiohttp": via_aiohttp}


def expected_name(client, name):
    # requests and httpx send a name raw: a "%XX" in it reads as an escape
    # (RFC 7578 4.2 allows senders to encode), the one ambiguity left.
    if client in ("requests", "httpx"):
        return urllib.parse.unquote(name, errors="surrogateescape")
    return name


def write_case(out, case, client, ctype, body, boundary, sent):
    """sent: name -> (filename or None, data bytes), in any order."""
    delim = re.compile(rb"(?:^|\r\n)--" + re.escape(boundary.encode()) + rb"(--|[ \t]*\r\n)")
    lines = list(delim.finditer(body))
    assert lines[-1].group(1) == b"--" and all(m.group(1) != b"--" for m in lines[:-1]), case
    expect, ranges = bytearray(), []
    for m, after in zip(lines, lines[1:]):
        start = body.index(b"\r\n\r\n", m.end() - 2) + 4
        head = body[m.end():start]
        name = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head).get_param(
            "name", header="content-disposition")
        filename, data = sent[name]
        end = after.start()
        assert body[start:end] == data, case
        ranges.append("%d %d\n" % (start, end))

        def field(key, value):
            if value is None:
                expect.extend(b"%s -1\n" % key)
            else:
                expect.extend(b"%s %d\n%s\n" % (key, len(value), value))
        expect.extend(b"part\n")
        field(b"name", name.encode())
        field(b"filename", None if filename is None else
              expected_name(client, filename).encode("utf-8", "surrogateescape"))
        ct = re.search(rb"(?im)^content-type:[ \t]*(.*?)[ \t]*\r?$", head)
        field(b"type", ct and ct.group(1))
        field(b"data", data)
    for ext, content in (("body", body), ("ctype", ctype.encode()), ("expect", bytes(expect)),
                         ("ranges", "".join(ranges).encode())):
        with open(os.path.join(out, "%s.%s" % (case, ext)), "wb") as f:
            f.write(content)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0
    for client, make in CLIENTS.items():
        for i, name in enumerate(NAMES):
            b = uuid.uuid4().hex
            data = ("content of %s\r\n" % name).encode()
            ctype, body = make(b, {"file": (name, data, "application/octet-stream")}, None)
            write_case(out, "%s-name%d" % (client, i), client, ctype, body, b, {"file": (name, data)})
            n += 1
        b = uuid.uuid4().hex
        ctype, body = make(b, {"file": ("empty.bin", b"", "application/octet-stream")}, None)
        write_case(out, client + "-empty", client, ctype, body, b, {"file": ("empty.bin", b"")})
        b = uuid.uuid4().hex
        blob = lookalikes(b)
        ctype, body = make(b, {"file": ("blob.bin", blob, "application/octet-stream")}, None)
        write_case(out, client + "-lookalikes", client, ctype, body, b, {"file": ("blob.bin", blob)})
        b = uuid.uuid4().hex
        fields = {"first": "1", "note": "a\r\nb"}
        ctype, body = make(b, {"file": ("f.csv", b"x,y\n", "text/csv"),
                               "other": ("o.txt", b"other", "text/plain")}, fields)
        write_case(out, client + "-fields", client, ctype, body, b,
                   {"first": (None, b"1"), "note": (None, b"a\r\nb"), "file": ("f.csv", b"x,y\n"),
                    "other": ("o.txt", b"other")})
        n += 3
    # Semantic Kernel after its first execute: httpx's body, the client's JSON type.
    b = uuid.uuid4().hex
    data = b"a,b\n1,2\n"
    ctype, body = via_httpx(b, {"file": ("/mnt/data/sk.csv", data, "application/octet-stream")}, None,
                            ctype="application/json")
    write_case(out, "sk", "httpx", ctype, body, b, {"file": ("/mnt/data/sk.csv", data)})
    print("%d cases in %s" % (n + 1, out))


main()

#!/usr/bin/python3
"""A TLS front for a plain-HTTP server: the https stand-in (stdlib only).

    tls_front.py --cert CERT --key KEY --to HOST:PORT

Listens on 127.0.0.1 (a free port), prints one line
`tls_front: listening on PORT pid PID`, and for each connection completes a
TLS handshake with CERT and KEY, opens a TCP connection to HOST:PORT and
copies bytes both ways until either side closes. A sesh-pool behind it is an
https pool as a reverse proxy would make one (the pool's own TLS is another
matter). Handshakes that fail (a client that does not trust CERT) are printed
to stderr and end that connection only.
"""
import argparse
import os
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(conn, context, target):
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print("tls_front: handshake failed: %s" % e, file=sys.stderr, flush=True)
        conn.close()
        return
    try:
        upstream = socket.create_connection(target)
    except OSError as e:
        print("tls_front: cannot reach %s:%d: %s" % (target + (e,)), file=sys.stderr, flush=True)
        tls.close()
        return
    back = threading.Thread(target=pump, args=(upstream, tls), daemon=True)
    back.start()
    pump(tls, upstream)
    back.join()
    tls.close()
    upstream.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--to", required=True)
    a = ap.parse_args()
    host, port = a.to.rsplit(":", 1)
    target = (host, int(port))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(a.cert, a.key)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print("tls_front: listening on %d pid %d" % (server.getsockname()[1], os.getpid()), flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, context, target), daemon=True).start()


if __name__ == "__main__":
    main()

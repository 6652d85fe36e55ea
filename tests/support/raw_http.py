"""raw_http.py: one raw HTTP/1.1 exchange, for what a real client will not do.

  raw_http.py HOST PORT REQUEST_FILE [--tls CA_FILE] [--half-close] [--pause-at N --until FILE]

Sends the bytes of REQUEST_FILE (request line, headers and body, as they go on
the wire), then writes every byte of the answer to stdout until the server
closes the connection.

  --tls CA_FILE     speak TLS, trusting the certificates CA_FILE signed
  --half-close      shut the sending side once the request is out (HTTP allows it);
                    over TLS the TCP side only, the TLS session left open
  --pause-at N      send the first N bytes, wait until FILE exists, send the rest
"""
import argparse
import os
import socket
import ssl
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("request")
    ap.add_argument("--tls")
    ap.add_argument("--half-close", action="store_true")
    ap.add_argument("--pause-at", type=int)
    ap.add_argument("--until")
    args = ap.parse_args()
    with open(args.request, "rb") as f:
        request = f.read()

    s = socket.create_connection((args.host, args.port))
    if args.tls:
        s = ssl.create_default_context(cafile=args.tls).wrap_socket(s, server_hostname=args.host)
    if args.pause_at is not None:
        s.sendall(request[:args.pause_at])
        while not os.path.exists(args.until):
            time.sleep(0.05)
        request = request[args.pause_at:]
    s.sendall(request)
    if args.half_close:
        socket.socket.shutdown(s, socket.SHUT_WR)   # SSLSocket's own would drop the session
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)


main()

#!/usr/bin/python3
"""The cluster lab's package mirror: static files over HTTP (and HTTPS).

    mirror.py --dir DIR --bind IP [--port 80] [--tls-port 443 --cert C --key K]
              [--vhost NAME=SUBDIR ...] [--log FILE]

Serves DIR. A request whose Host is a --vhost NAME is served from DIR/SUBDIR
instead, so https://pkgs.k8s.io/core:/stable:/v1.31/deb/ is answered from
DIR/kubernetes/core:/stable:/v1.31/deb/. Runs until SIGTERM.
"""

import argparse
import functools
import http.server
import os
import signal
import ssl
import sys
import threading


class Handler(http.server.SimpleHTTPRequestHandler):
    vhosts = {}
    root = "."
    log = sys.stderr

    def translate_path(self, path):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        base = self.vhosts.get(host, self.root)
        # SimpleHTTPRequestHandler resolves against self.directory.
        self.directory = base
        return super().translate_path(path)

    def log_message(self, fmt, *args):
        headers = getattr(self, "headers", None)
        host = headers.get("Host", "-") if headers else "-"
        self.log.write("%s %s %s\n" % (self.log_date_time_string(), host, fmt % args))


class TLSServer(http.server.ThreadingHTTPServer):
    """The TLS handshake runs in the request's own thread, not in accept()."""

    context = None

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def serve(server):
    server.serve_forever(poll_interval=0.5)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--tls-port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--vhost", action="append", default=[])
    p.add_argument("--log")
    a = p.parse_args()

    Handler.root = os.path.abspath(a.dir)
    for v in a.vhost:
        name, sub = v.split("=", 1)
        Handler.vhosts[name.lower()] = os.path.join(Handler.root, sub)
    if a.log:
        Handler.log = open(a.log, "a", buffering=1)

    http.server.ThreadingHTTPServer.daemon_threads = True
    handler = functools.partial(Handler, directory=Handler.root)
    servers = [http.server.ThreadingHTTPServer((a.bind, a.port), handler)]
    if a.tls_port:
        tls = TLSServer((a.bind, a.tls_port), handler)
        tls.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.context.load_cert_chain(a.cert, a.key)
        servers.append(tls)

    def stop(*_):
        for s in servers:
            threading.Thread(target=s.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threads = [threading.Thread(target=serve, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()

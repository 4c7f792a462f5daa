"""kube-controller-manager / kube-scheduler stand-in: serves their health
endpoint (HTTPS, self-signed like theirs) on --secure-port (10257 / 10259)
of --bind-address, so kubeadm's control-plane checks and port preflight see
them. It runs no controllers or scheduling (the API server stand-in does
the few controller jobs the lab needs, see apiserver_controllers)."""

import argparse
import os
import ssl
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pki

PORTS = {"kube-controller-manager": 10257, "kube-scheduler": 10259}


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path.split("?")[0] in ("/healthz", "/livez", "/readyz")
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main(argv):
    name = argv[0]
    p = argparse.ArgumentParser(prog=name)
    p.add_argument("--secure-port", type=int, default=PORTS[name])
    p.add_argument("--bind-address", default="0.0.0.0")
    args, _ = p.parse_known_args(argv[1:])
    cert, key = pki.self_signed(f"{args.bind_address}@standin", ips=[args.bind_address])
    d = tempfile.mkdtemp(prefix=name)
    for f, data in (("tls.crt", cert), ("tls.key", key)):
        pki.write_private(os.path.join(d, f), data)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "tls.crt"), os.path.join(d, "tls.key"))
    srv = ThreadingHTTPServer((args.bind_address, args.secure_port), Health)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"{name} stand-in serving health on {args.bind_address}:{args.secure_port}", file=sys.stderr, flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

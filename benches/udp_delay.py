#!/usr/bin/env python3
"""A UDP relay that adds a fixed delay each way, for the TFTP latency bench
on kernels without netem (benches/tftp.sh uses it when `tc ... netem` fails).

    udp_delay.py --listen 127.0.0.1:6969 --server 10.77.0.1:69 --delay-ms 1

Clients send their requests to --listen. TFTP answers from a new port per
transfer, so the relay mirrors that: each client gets its own upstream socket
towards the server, and each server port that answers a client gets its own
downstream socket towards that client; the client then talks to that socket
as if it were the server's transfer port. Every datagram is held for the
delay, then forwarded; order is kept (the delay is constant). A datagram that
finds the send buffer full is dropped, as a congested link would.

Runs until killed. Bench only: it trusts every sender on --listen.
"""
import argparse
import heapq
import selectors
import socket
import time

RCVBUF = 4 << 20


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def udp_socket(bind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF)
    s.bind(bind)
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=addr, required=True)
    ap.add_argument("--server", type=addr, required=True)
    ap.add_argument("--delay-ms", type=float, default=1.0)
    args = ap.parse_args()
    delay = args.delay_ms / 1000.0
    server_ip = socket.gethostbyname(args.server[0])

    sel = selectors.DefaultSelector()
    listen = udp_socket(args.listen)
    sel.register(listen, selectors.EVENT_READ, ("listen",))
    upstream = {}  # client address -> socket towards the server
    downstream = {}  # (client address, server address) -> socket towards the client
    queue = []  # (due, sequence, socket, datagram, destination)
    seq = 0

    def hold(sock, data, dest):
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (time.monotonic() + delay, seq, sock, data, dest))

    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        for key, _ in sel.select(timeout):
            sock, role = key.fileobj, key.data
            while True:
                try:
                    data, src = sock.recvfrom(65536)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if role[0] == "listen":
                    up = upstream.get(src)
                    if up is None:
                        up = udp_socket(("0.0.0.0", 0))
                        upstream[src] = up
                        sel.register(up, selectors.EVENT_READ, ("up", src))
                    hold(up, data, args.server)
                elif role[0] == "up":
                    client = role[1]
                    if src[0] != server_ip:
                        continue
                    down = downstream.get((client, src))
                    if down is None:
                        down = udp_socket((args.listen[0], 0))
                        downstream[(client, src)] = down
                        sel.register(down, selectors.EVENT_READ, ("down", client, src))
                    hold(down, data, client)
                else:
                    _, client, server_port_addr = role
                    if src == client:
                        hold(upstream[client], data, server_port_addr)
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, sock, data, dest = heapq.heappop(queue)
            try:
                sock.sendto(data, dest)
            except (BlockingIOError, ConnectionRefusedError):
                pass


if __name__ == "__main__":
    main()

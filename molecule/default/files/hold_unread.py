# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hold a few MiB of TCP buffer memory on loopback: CONNECTIONS connections whose receivers never read.

Fixed buffer sizes (SO_SNDBUF/SO_RCVBUF, which also stop autotuning) make the total independent of
the host's tcp_wmem/tcp_rmem: each sender writes until both buffers are full, about 0.5 MiB per
connection, so 8 connections hold ~4 MiB (~1000 pages): well over the 1 MiB per CPU the kernel may
batch before /proc/net/sockstat counts it, well under a 512 MB guest's boot tcp_mem[0] (~5300 pages).
Writes its pid to --pidfile, exits after --seconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--connections", type=int, default=8)
parser.add_argument("--buffer-bytes", type=int, default=262144)
parser.add_argument("--seconds", type=float, default=600)
parser.add_argument("--pidfile", required=True)
args = parser.parse_args()

with open(args.pidfile, "w", encoding="ascii") as handle:
    handle.write(f"{os.getpid()}\n")
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.buffer_bytes)  # inherited by accepted sockets
listener.bind(("127.0.0.1", 0))
listener.listen(args.connections)
held = []
chunk = b"x" * 65536
total = 0
for _index in range(args.connections):
    sender = socket.socket()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.buffer_bytes)
    sender.connect(listener.getsockname())
    receiver = listener.accept()[0]
    sender.setblocking(False)
    while True:
        try:
            total += sender.send(chunk)
        except BlockingIOError:
            break  # both buffers full
    held.append((sender, receiver))
print(f"holding {total} unread bytes on {len(held)} connections", flush=True)
time.sleep(args.seconds)

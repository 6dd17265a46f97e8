#!/usr/bin/env python
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hold N established loopback TCP connections, then close them cleanly.

Each worker process owns a listener and both ends of its connections (2 fds per
connection, at most --max-fds-per-worker fds), so N connections give 2N ESTABLISHED
sockets. Optionally the client end of every M-th connection sends K bytes the server end
never reads, so those server sockets hold receive-buffer memory.

Prints one line when every worker holds its connections:

    READY connections=3000 workers=3 unread=300 unread_bytes=65536 pids=101,102,103 ports=40001,40002,40003

then holds them until SIGTERM/SIGINT, stdin closes (--stop-on-stdin-eof) or --hold-seconds
pass, closes everything (draining unread data first, so nothing is reset) and prints
"CLOSED". Bounded in count (--connections <= 500000) and time (--hold-seconds <= 3600,
--setup-timeout); workers exit by themselves when the parent dies.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import resource
import select
import signal
import socket
import sys
import time

MAX_CONNECTIONS = 500000
MAX_HOLD_SECONDS = 3600
MAX_UNREAD_BYTES = 1 << 20
FD_SLACK = 16  # stdio, pipes, listener, the interpreter's own files
BATCH = 512  # connect this many, then accept them: stays under any listen backlog


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _open_connections(host, count, first_index, unread_every, unread_bytes, deadline):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    clients, servers, unread = [], [], []
    payload = b"u" * unread_bytes
    while len(clients) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"setup took too long: {len(clients)} of {count} connections")
        batch = min(BATCH, count - len(clients))
        for _connect in range(batch):
            client = socket.socket(family, socket.SOCK_STREAM)
            client.settimeout(10)
            client.connect((host, port))
            clients.append(client)
        for _accept in range(batch):
            server, _peer = listener.accept()
            servers.append(server)
    # accept() order matches connect() order on one listener only loosely: pair by address.
    by_peer = {s.getpeername(): s for s in servers}
    servers = [by_peer[c.getsockname()] for c in clients]
    if unread_every and unread_bytes:
        for index, (client, server) in enumerate(zip(clients, servers)):
            if (first_index + index) % unread_every == 0:
                client.sendall(payload)
                unread.append(server)
    return listener, port, clients, servers, unread


def _close_all(listener, clients, servers, unread):
    for server in unread:
        server.setblocking(False)
        try:
            while server.recv(1 << 16):
                pass
        except BlockingIOError:
            pass
    for sock in clients + servers + [listener]:
        sock.close()


def worker(conn, host, count, first_index, unread_every, unread_bytes, setup_seconds):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates the shutdown
    parent = os.getppid()
    try:
        limit = _raise_nofile()
        needed = 2 * count + FD_SLACK
        if needed > limit:
            raise OSError(f"needs {needed} fds, RLIMIT_NOFILE allows {limit}")
        listener, port, clients, servers, unread = _open_connections(
            host, count, first_index, unread_every, unread_bytes, time.monotonic() + setup_seconds
        )
    except Exception as exc:  # reported to the parent, which stops everything
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", len(clients), len(unread), port))
    while os.getppid() == parent:
        if conn.poll(1.0):
            conn.recv()
            break
    _close_all(listener, clients, servers, unread)
    with contextlib.suppress(OSError):
        conn.send(("closed",))


class Holder:
    """Client side: a conn_holder started by start_in_netns(), its READY line parsed."""

    def __init__(self, process, ready: dict) -> None:
        self.process = process
        self.connections = int(ready.get("connections", 0))
        self.unread = int(ready.get("unread", 0))
        self.unread_bytes = int(ready.get("unread_bytes", 0))
        self.ports = [int(p) for p in ready.get("ports", "").split(",") if p]

    def stop(self, timeout: float = 120) -> None:
        """Close stdin (workers drain, close and exit); SIGTERM, then SIGKILL, if that hangs."""
        import subprocess

        if self.process.poll() is not None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_in_netns(netns: str, arguments, python: str = sys.executable, timeout: float = 120) -> Holder:
    """Run this script in network namespace `netns` with --stop-on-stdin-eof; wait for READY."""
    import selectors
    import subprocess

    command = ["ip", "netns", "exec", netns, python, os.path.abspath(__file__), "--stop-on-stdin-eof"]
    process = subprocess.Popen(
        command + list(arguments), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=1):
                if process.poll() is not None:
                    break
                continue
            line = process.stdout.readline()
            if line.startswith("READY "):
                return Holder(process, dict(item.split("=", 1) for item in line.split()[1:]))
            if not line:
                break
        why = process.stderr.read() if process.poll() is not None else f"no READY line within {timeout} s"
        raise RuntimeError(f"conn_holder did not get ready: {why.strip()}")
    except BaseException:
        Holder(process, {}).stop(timeout=30)
        raise
    finally:
        selector.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--connections", type=int, required=True, help="established connections to hold")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: as few as the fd cap allows)")
    parser.add_argument("--max-fds-per-worker", type=int, default=15000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--unread-bytes", type=int, default=0, help="bytes left unread on some connections")
    parser.add_argument("--unread-every", type=int, default=0, help="every M-th connection gets unread data")
    parser.add_argument("--hold-seconds", type=float, default=600, help="stop by itself after this long")
    parser.add_argument("--setup-timeout", type=float, default=300, help="give up opening after this long")
    parser.add_argument("--stop-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be 1..{MAX_CONNECTIONS}")
    if not 0 < args.hold_seconds <= MAX_HOLD_SECONDS:
        parser.error(f"--hold-seconds must be in (0, {MAX_HOLD_SECONDS}]")
    if not 0 <= args.unread_bytes <= MAX_UNREAD_BYTES:
        parser.error(f"--unread-bytes must be 0..{MAX_UNREAD_BYTES}")
    per_worker = (args.max_fds_per_worker - FD_SLACK) // 2
    if per_worker < 1:
        parser.error("--max-fds-per-worker is too small")
    needed = math.ceil(args.connections / per_worker)
    if args.workers == 0:
        args.workers = needed
    elif args.workers < needed:
        parser.error(
            f"{args.workers} workers cannot hold {args.connections} connections "
            f"with <= {args.max_fds_per_worker} fds each"
        )
    args.workers = min(args.workers, args.connections)
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    context = multiprocessing.get_context("fork")
    shares = [
        args.connections // args.workers + (1 if i < args.connections % args.workers else 0)
        for i in range(args.workers)
    ]
    workers, first = [], 0
    for share in shares:
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=worker,
            args=(child_end, args.host, share, first, args.unread_every, args.unread_bytes, args.setup_timeout),
            daemon=True,
        )
        process.start()
        child_end.close()
        workers.append((process, parent_end))
        first += share

    status = 0
    ready = {}
    deadline = time.monotonic() + args.setup_timeout + 10
    try:
        while len(ready) < len(workers) and stop["signal"] is None:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not report ready in time")
            for process, end in workers:
                if process.pid in ready or not end.poll(0.05):
                    continue
                message = end.recv()
                if message[0] != "ready":
                    raise RuntimeError(f"worker {process.pid}: {message[1]}")
                ready[process.pid] = message
        if stop["signal"] is None:
            held = sum(m[1] for m in ready.values())
            unread = sum(m[2] for m in ready.values())
            pids = ",".join(str(p.pid) for p, _end in workers)
            ports = ",".join(str(ready[p.pid][3]) for p, _end in workers)
            print(
                f"READY connections={held} workers={len(workers)} unread={unread} "
                f"unread_bytes={args.unread_bytes} pids={pids} ports={ports}",
                flush=True,
            )
            end_at = time.monotonic() + args.hold_seconds
            while stop["signal"] is None and time.monotonic() < end_at:
                if args.stop_on_stdin_eof:
                    readable, _writable, _errors = select.select([sys.stdin], [], [], 0.2)
                    if readable and not sys.stdin.buffer.read1(4096):
                        break
                else:
                    time.sleep(0.2)
    except (RuntimeError, OSError, EOFError) as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        for _process, end in workers:
            with contextlib.suppress(OSError):
                end.send("stop")
        for process, _end in workers:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
    print("CLOSED", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hold N established loopback TCP connections, then close them cleanly.

Each worker process owns a listener and both ends of its connections (2 fds per
connection, at most --max-fds-per-worker fds), so N connections give 2N ESTABLISHED
sockets. With --unaccepted a worker never accepts: the server ends stay in its listener's
backlog, established sockets without an fd, so a connection costs one fd (the client's);
the listener's backlog is the worker's share, which the namespace's net.core.somaxconn must
allow (the kernel caps listen()'s argument at it). Listeners are spread over --host, a comma
separated list of addresses (127.0.0.1,127.0.0.2,...: each (address, port) pair is one more
destination, so the ephemeral ports of the namespace's ip_local_port_range go round more
connections), and all are bound before any worker connects. Optionally the client end of
every M-th connection sends K bytes the server end never reads, so those server sockets hold
receive-buffer memory.

Prints one line when every worker holds its connections:

    READY connections=3000 workers=3 unread=300 unread_bytes=65536 pids=101,102,103 ports=40001,40002,40003

then holds them until SIGTERM/SIGINT, stdin closes (--stop-on-stdin-eof) or --hold-seconds
pass, closes everything (draining unread data first, so nothing is reset) and prints
"CLOSED". Bounded in count (--connections <= 1000000) and time (--hold-seconds <= 3600,
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

MAX_CONNECTIONS = 1000000
MAX_HOLD_SECONDS = 3600
MAX_UNREAD_BYTES = 1 << 20
FD_SLACK = 16  # stdio, pipes, listener, the interpreter's own files
BATCH = 512  # connect this many, then accept them: stays under any listen backlog


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _listen(host: str, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(backlog)
    return listener


def _open_connections(listener, count, first_index, unread_every, unread_bytes, deadline, accept=True):
    family = listener.family
    host, port = listener.getsockname()[:2]
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
        for _accept in range(batch if accept else 0):
            server, _peer = listener.accept()
            servers.append(server)
    if accept:
        # accept() order matches connect() order on one listener only loosely: pair by address.
        by_peer = {s.getpeername(): s for s in servers}
        servers = [by_peer[c.getsockname()] for c in clients]
    if unread_every and unread_bytes:
        for index, client in enumerate(clients):
            if (first_index + index) % unread_every == 0:
                client.sendall(payload)
                if accept:
                    unread.append(servers[index])
                else:  # the server end sits in the backlog: counted, drained by the reset at close
                    unread.append(None)
    return clients, servers, unread


def _close_all(listener, clients, servers, unread):
    # Unaccepted server ends are reset when their listener closes (nothing reaches TIME_WAIT); close it first.
    listener.close()
    for server in unread:
        if server is None:
            continue
        server.setblocking(False)
        try:
            while server.recv(1 << 16):
                pass
        except BlockingIOError:
            pass
    for sock in clients + servers:
        sock.close()


def worker(
    conn, listener, others, count, first_index, unread_every, unread_bytes, setup_seconds, accept=True, gate=None
):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates the shutdown
    parent = os.getppid()
    for other in others:  # the listeners of the workers forked after this one
        other.close()
    try:
        limit = _raise_nofile()
        needed = (2 if accept else 1) * count + FD_SLACK
        if needed > limit:
            raise OSError(f"needs {needed} fds, RLIMIT_NOFILE allows {limit}")
        deadline = time.monotonic() + setup_seconds
        # --parallel: at most that many workers connect at once (the others wait their turn, idle)
        if gate is not None and not gate.acquire(timeout=setup_seconds):
            raise TimeoutError("setup took too long waiting for a turn to connect")
        try:
            clients, servers, unread = _open_connections(
                listener, count, first_index, unread_every, unread_bytes, deadline, accept
            )
        finally:
            if gate is not None:
                gate.release()
    except Exception as exc:  # reported to the parent, which stops everything
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", len(clients), len(unread), listener.getsockname()[1]))
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
        self.pids = [int(p) for p in ready.get("pids", "").split(",") if p]

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
    parser.add_argument("--host", default="127.0.0.1", help="listen address(es), comma separated, round robin")
    parser.add_argument(
        "--unaccepted", action="store_true", help="leave the server ends in the listeners' backlogs (1 fd each)"
    )
    parser.add_argument("--unread-bytes", type=int, default=0, help="bytes left unread on some connections")
    parser.add_argument("--unread-every", type=int, default=0, help="every M-th connection gets unread data")
    parser.add_argument("--hold-seconds", type=float, default=600, help="stop by itself after this long")
    parser.add_argument("--parallel", type=int, default=0, help="workers connecting at once (0: all)")
    parser.add_argument("--setup-timeout", type=float, default=300, help="give up opening after this long")
    parser.add_argument("--stop-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be 1..{MAX_CONNECTIONS}")
    if not 0 < args.hold_seconds <= MAX_HOLD_SECONDS:
        parser.error(f"--hold-seconds must be in (0, {MAX_HOLD_SECONDS}]")
    if not 0 <= args.unread_bytes <= MAX_UNREAD_BYTES:
        parser.error(f"--unread-bytes must be 0..{MAX_UNREAD_BYTES}")
    per_worker = (args.max_fds_per_worker - FD_SLACK) // (1 if args.unaccepted else 2)
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
    hosts = args.host.split(",")
    # Every listener is bound before any connection takes an ephemeral port (which bind(port 0) would avoid).
    listeners = [_listen(hosts[i % len(hosts)], max(share, 128)) for i, share in enumerate(shares)]
    gate = context.Semaphore(args.parallel) if args.parallel > 0 else None
    workers, first = [], 0
    for index, share in enumerate(shares):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=worker,
            args=(
                child_end,
                listeners[index],
                listeners[index + 1 :],
                share,
                first,
                args.unread_every,
                args.unread_bytes,
                args.setup_timeout,
                not args.unaccepted,
                gate,
            ),
            daemon=True,
        )
        process.start()
        child_end.close()
        listeners[index].close()  # the worker's own now
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

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A push service and its clients on loopback, to make a memory cgroup stall TCP writers.

Two roles, run as two processes in two cgroups by the memcg scenario:

``clients``: opens --connections connections to the service with a 4 KiB receive buffer (set
before connect, so the window stays small) and never reads: what the service pushes stays in the
service's send queues, charged to the service's memory cgroup.

``service``: accepts the clients, then pushes --push-bytes to each in blocking send() calls of
16 KiB with SO_SNDTIMEO --send-timeout-s. A send that makes no progress within the timeout counts
the connection as stalled (the writer waited in sk_stream_wait_memory: the kernel refused to
charge more socket memory to the cgroup, mm/memcontrol.c mem_cgroup_charge_skmem). After
--max-stalls stalled connections it stops pushing and keeps ONE writer blocked on a stalled
connection until --release exists, so an observer (tcp_memory_facts blocked_writers) can see it.
Once released it closes every socket (SO_LINGER 0: reset, nothing left behind) and only then
writes its JSON summary: nothing in between needs new memory while the cgroup sits at its limit.

Bounded: at most 5000 connections, every wait ends after --hold-max-s. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import struct
import time

MAX_CONNECTIONS = 5000
CHUNK_BYTES = 16384
CLIENT_RCVBUF_BYTES = 4096
PUSHED_MODE = 0o644  # the --pushed marker gets this mode once pushing is over


def linger_zero(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def send_timeout(sock: socket.socket, seconds: float) -> None:
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def write_json(path: str, data: dict) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(path + ".tmp", path)


def wait_for(path: str, deadline: float) -> None:
    while time.monotonic() < deadline and not os.path.exists(path):
        time.sleep(0.2)


def run_clients(args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.hold_max_s
    clients = []
    for _index in range(args.connections):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        linger_zero(client)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF_BYTES)
        client.connect(("127.0.0.1", args.port))
        clients.append(client)
    write_json(args.ready, {"pid": os.getpid(), "connections": len(clients)})
    wait_for(args.release, deadline)
    for client in clients:
        client.close()
    return {"connections": len(clients)}


def push(servers: list, args: argparse.Namespace, chunk: memoryview, errors: dict) -> tuple:
    """Push --push-bytes to each connection; (filled, stalled connection indexes, seconds)."""
    filled = 0
    stalled = []
    started = time.monotonic()
    for index, server in enumerate(servers):
        if len(stalled) >= args.max_stalls:
            break
        remaining = args.push_bytes
        while remaining > 0:
            try:
                remaining -= server.send(chunk[: min(remaining, CHUNK_BYTES)])
            except BlockingIOError:  # SO_SNDTIMEO expired without progress
                break
            except OSError as error:  # ENOBUFS/ENOMEM: the kernel refused memory outright
                errors[error.errno] = errors.get(error.errno, 0) + 1
                break
        if remaining > 0:
            stalled.append(index)
        else:
            filled += 1
    return filled, stalled, time.monotonic() - started


def run_service(args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.hold_max_s
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    linger_zero(listener)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(args.connections)
    listener.settimeout(1.0)
    os.close(os.open(args.pushed, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    os.chmod(args.pushed, 0o600)
    write_json(args.ready, {"pid": os.getpid(), "port": args.port})
    servers = []
    filled, stalled, push_s, errors, failure = 0, [], 0.0, {}, None
    try:
        while len(servers) < args.connections and time.monotonic() < deadline:
            try:
                server, _peer = listener.accept()
            except socket.timeout:
                continue
            server.settimeout(None)  # blocking: SO_SNDTIMEO alone bounds each send
            linger_zero(server)
            send_timeout(server, args.send_timeout_s)
            servers.append(server)
        chunk = memoryview(b"x" * CHUNK_BYTES)
        filled, stalled, push_s = push(servers, args, chunk, errors)
    except Exception as error:  # kept and reported once the sockets are closed and memory is free
        failure = error
    finally:
        # Creating or writing a file at the limit would need memory (the kernel would refuse it):
        # the marker was created before, on tmpfs, and only its mode changes now.
        with contextlib.suppress(OSError):
            os.chmod(args.pushed, PUSHED_MODE)
    blocked_attempts = 0
    while failure is None and stalled and not os.path.exists(args.release) and time.monotonic() < deadline:
        blocked_attempts += 1
        with contextlib.suppress(OSError):
            servers[stalled[0]].send(chunk)
    wait_for(args.release, deadline)
    for sock in [listener, *servers]:
        sock.close()
    return {
        "connections": len(servers),
        "push_bytes": args.push_bytes,
        "filled": filled,
        "stalled": len(stalled),
        "not_attempted": len(servers) - filled - len(stalled),
        "push_s": round(push_s, 2),
        "blocked_send_attempts": blocked_attempts,
        "send_errors": {os.strerror(number): count for number, count in errors.items()},
        "error": None if failure is None else repr(failure),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["service", "clients"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--ready", required=True, help="file written once listening (service) or connected")
    parser.add_argument("--release", required=True, help="close everything once this file exists")
    parser.add_argument("--pushed", help="service: empty file (on tmpfs) whose mode becomes 0644 when pushing is over")
    parser.add_argument("--push-bytes", type=int, default=65536)
    parser.add_argument("--send-timeout-s", type=float, default=1.0)
    parser.add_argument("--max-stalls", type=int, default=10)
    parser.add_argument("--hold-max-s", type=float, default=300.0)
    parser.add_argument("--output", help="write the JSON summary here after closing everything")
    args = parser.parse_args()
    if not 0 < args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be between 1 and {MAX_CONNECTIONS}")
    if args.role == "service" and not args.pushed:
        parser.error("service needs --pushed")
    summary = run_service(args) if args.role == "service" else run_clients(args)
    if args.output:
        write_json(args.output, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

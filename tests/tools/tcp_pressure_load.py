# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reproduce the TCP memory stall: queue data on many loopback connections, time every send().

Runs IN a test host as root (Python 3.8+ standard library only). Several worker processes each
open a share of the connections to their own loopback listener. The receiving side never reads,
so every byte written stays queued in the kernel and counts against net.ipv4.tcp_mem. Each
client then writes ``--tx-bytes`` in blocking ``send()`` calls of ``--chunk-bytes``, each call
timed. A sampler thread in each worker reads the sending thread's kernel stack and state while
a send is in progress, so every send slower than ``--slow-send-ms`` is attributed:

- ``tcp_mem``: the thread waited in sk_stream_wait_memory although the socket had room under
  its own limit (queued bytes well below the LARGEST SO_SNDBUF it had: past tcp_mem[2] the
  kernel shrinks SO_SNDBUF, so the current value proves nothing);
- ``flow_control``: it waited there with its own send buffer full (per-socket limit);
- ``cpu``: it was never seen waiting but was seen runnable (emulated CPUs starve threads);
- ``unattributed``: neither was observed.

Timing-free signals are recorded as well: TcpExt counter deltas (TCPMemoryPressures,
TCPRcvQDrop, prune counters), the TCP ``press`` flag of /proc/net/protocols and the peak
sockstat ``mem`` pages (sampled), and the sockets whose SO_SNDBUF was shrunk.

The run is bounded: at most ``--max-connections``, every send gives up after
``--send-timeout-s`` (SO_SNDTIMEO), a worker stops filling after ``--max-stalls`` stalled
connections or at ``--deadline-s``. Every socket has SO_LINGER 0 from its creation, so closing
it (or the death of its process) resets it: nothing is left orphaned or in TIME_WAIT.
Prints one JSON summary on stdout (and to ``--output``). It never writes a sysctl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import resource
import signal
import socket
import struct
import sys
import termios
import threading
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

SCHEMA_VERSION = 1
PROC_ROOT = "/proc"
WAIT_MEMORY_FUNCTION = "sk_stream_wait_memory"
# The counters that say TCP ran short of memory, whatever the timing of single calls says.
PRESSURE_COUNTERS = (
    "TCPMemoryPressures",
    "TCPMemoryPressuresChrono",
    "TCPAbortOnMemory",
    "PruneCalled",
    "RcvPruned",
    "OfoPruned",
    "TCPRcvCollapsed",
    "TCPRcvQDrop",
)
PRUNE_COUNTERS = ("PruneCalled", "RcvPruned", "OfoPruned")
CAUSES = ("tcp_mem", "flow_control", "cpu", "unattributed")
# A socket blocked by its own send buffer has (nearly) a full SO_SNDBUF of payload queued; one
# blocked by tcp_mem has far less than the largest buffer it was granted. Half separates the two
# with room for skb overhead (SO_SNDBUF counts truesize, SIOCOUTQ counts payload).
DEFAULT_ROOM_FRACTION = 0.5
# A SO_SNDBUF below this fraction of the largest one the socket had was shrunk by the kernel
# (autotuning only grows it; pressure cuts it to about half of what is queued).
SHRUNK_FRACTION = 0.5
# Measured on kernels 6.1 and 6.18: 64 KiB left unread costs 16.5-17.4 pages of tcp_mem.
DEFAULT_PAGES_PER_64KIB = 17.0
# Keep each worker well under the 20000 open-files limit: two sockets per connection.
MAX_FDS_PER_WORKER = 15000
SLOW_SEND_EXAMPLES = 50


# ---------------------------------------------------------------- pure parsing and arithmetic


def parse_netstat(text: str) -> Dict[str, Dict[str, int]]:
    """Parse /proc/net/netstat (or snmp): header/value line pairs per prefix (TcpExt, IpExt)."""
    tables: Dict[str, Dict[str, int]] = {}
    pending: Dict[str, List[str]] = {}
    for line in text.splitlines():
        prefix, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if prefix not in pending:
            pending[prefix] = fields
            continue
        names = pending.pop(prefix)
        tables[prefix] = {name: int(value) for name, value in zip(names, fields)}
    return tables


def parse_sockstat_tcp_mem_pages(text: str) -> Optional[int]:
    """The ``mem`` pages of the ``TCP:`` line of /proc/net/sockstat (host-wide in a netns)."""
    for line in text.splitlines():
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            values = dict(zip(fields[0::2], fields[1::2]))
            return int(values["mem"]) if "mem" in values else None
    return None


def parse_protocols_tcp_press(text: str) -> Optional[bool]:
    """The ``press`` column of the TCP line of /proc/net/protocols: True, False, or None (NI)."""
    lines = text.splitlines()
    if not lines:
        return None
    header = lines[0].split()
    if "press" not in header:
        return None
    column = header.index("press")
    for line in lines[1:]:
        fields = line.split()
        if fields and fields[0] == "TCP" and len(fields) > column:
            return {"yes": True, "no": False}.get(fields[column])
    return None


def parse_int_list(text: str) -> List[int]:
    """A sysctl triple such as tcp_mem ("a\\tb\\tc") as integers."""
    return [int(field) for field in text.split()]


def parse_task_state(stat_text: str) -> str:
    """The state letter of /proc/PID/task/TID/stat (the field after the parenthesised comm)."""
    after_comm = stat_text.rpartition(")")[2].split()
    return after_comm[0] if after_comm else "?"


def stack_waits_for_memory(stack_text: str) -> bool:
    """True when a /proc/PID/task/TID/stack shows the thread inside sk_stream_wait_memory."""
    return any(
        WAIT_MEMORY_FUNCTION + "+" in line or line.endswith(WAIT_MEMORY_FUNCTION) for line in stack_text.splitlines()
    )


def classify_slow_send(
    samples_waiting_memory: int,
    samples_runnable: int,
    queued_bytes: int,
    largest_sndbuf_bytes: int,
    room_fraction: float = DEFAULT_ROOM_FRACTION,
) -> str:
    """Name the cause of one slow send() from what the sampler saw and the socket's queue.

    Waiting in sk_stream_wait_memory happens both when tcp_mem refuses memory and when the
    socket's own send buffer is full; the queue size tells which: a socket with room under the
    largest buffer it ever had was refused by the global limit.
    """
    if samples_waiting_memory > 0:
        if largest_sndbuf_bytes > 0 and queued_bytes < largest_sndbuf_bytes * room_fraction:
            return "tcp_mem"
        return "flow_control"
    if samples_runnable > 0:
        return "cpu"
    return "unattributed"


def sndbuf_was_shrunk(current_sndbuf_bytes: int, largest_sndbuf_bytes: int) -> bool:
    """True when the kernel cut a socket's SO_SNDBUF well below the largest value it had."""
    return current_sndbuf_bytes < largest_sndbuf_bytes * SHRUNK_FRACTION


def counter_deltas(
    before: Mapping[str, int], after: Mapping[str, int], names: Iterable[str]
) -> Dict[str, Optional[int]]:
    """after - before for each named counter; None for a counter this kernel does not have."""
    return {name: (after[name] - before[name]) if name in before and name in after else None for name in names}


def pages_per_connection(tcp_payload_bytes: int, pages_per_64kib: float = DEFAULT_PAGES_PER_64KIB) -> float:
    """Expected tcp_mem pages one connection costs with ``tcp_payload_bytes`` left unread."""
    return tcp_payload_bytes / 65536 * pages_per_64kib


def connections_beyond_tcp_mem(
    tcp_mem_max_pages: int,
    tx_bytes_per_connection: int,
    overshoot: float,
    pages_per_64kib: float = DEFAULT_PAGES_PER_64KIB,
) -> int:
    """How many connections queueing ``tx_bytes_per_connection`` need ``overshoot`` x tcp_mem[2]."""
    per_connection = pages_per_connection(tx_bytes_per_connection, pages_per_64kib)
    return max(1, math.ceil(tcp_mem_max_pages * overshoot / per_connection))


def split_connections(total: int, workers: int) -> List[int]:
    """Spread ``total`` connections over ``workers`` as evenly as possible (no empty worker)."""
    workers = max(1, min(workers, total))
    base, extra = divmod(total, workers)
    return [base + (1 if index < extra else 0) for index in range(workers)]


def workers_needed(total_connections: int, requested_workers: int) -> int:
    """At least ``requested_workers``, more if one worker would exceed MAX_FDS_PER_WORKER."""
    fds_per_connection = 2
    minimum = math.ceil(total_connections * fds_per_connection / (MAX_FDS_PER_WORKER - 16))
    return max(1, requested_workers, minimum)


def summarize_sends(durations_ms: Sequence[float], slow_sends: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Counts of all sends and of the slow ones by cause, plus the slowest few as examples."""
    by_cause = {cause: 0 for cause in CAUSES}
    for send in slow_sends:
        by_cause[send["cause"]] += 1
    ordered = sorted(durations_ms)
    slowest = sorted(slow_sends, key=lambda send: send["duration_ms"], reverse=True)
    return {
        "total": len(ordered),
        "slow": len(slow_sends),
        "max_ms": round(ordered[-1], 1) if ordered else None,
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1) if ordered else None,
        "slow_by_cause": by_cause,
        "slowest": list(slowest[:SLOW_SEND_EXAMPLES]),
    }


def verdict(summary: Mapping[str, Any]) -> Dict[str, Any]:
    """The few facts a test asserts on, read from the whole summary."""
    signals = summary["signals"]
    deltas = signals["netstat_delta"]
    pressures = deltas.get("TCPMemoryPressures") or 0
    tcp_mem_pages = summary["settings"]["tcp_mem_pages"]
    peak = signals["peak_mem_pages"]
    return {
        "tcp_mem_stalls": summary["sends"]["slow_by_cause"]["tcp_mem"],
        "pressure_entries": pressures,
        "pressure_flag_seen": signals["press_seen_samples"] > 0,
        "pressure_seen": pressures > 0 or signals["press_seen_samples"] > 0,
        "receive_drops": deltas.get("TCPRcvQDrop") or 0,
        "prunes": sum(deltas.get(name) or 0 for name in PRUNE_COUNTERS),
        "sndbuf_shrunk_sockets": signals["sndbuf_shrunk_sockets"],
        "peak_mem_pages": peak,
        "peak_below_pressure": peak is not None and len(tcp_mem_pages) == 3 and peak < tcp_mem_pages[1],
        "peak_below_max": peak is not None and len(tcp_mem_pages) == 3 and peak < tcp_mem_pages[2],
    }


# ---------------------------------------------------------------- reading the live kernel


def read_text(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read()


def read_tcpext(proc_root: str = PROC_ROOT) -> Dict[str, int]:
    return parse_netstat(read_text(os.path.join(proc_root, "net/netstat"))).get("TcpExt", {})


def read_sysctl_list(name: str, proc_root: str = PROC_ROOT) -> List[int]:
    try:
        return parse_int_list(read_text(os.path.join(proc_root, "sys", name.replace(".", "/"))))
    except OSError:
        return []


def outq_bytes(sock: socket.socket) -> int:
    """Payload bytes in the send queue not yet acknowledged (SIOCOUTQ == TIOCOUTQ)."""
    return struct.unpack("i", _ioctl_int(sock, termios.TIOCOUTQ))[0]


def inq_bytes(sock: socket.socket) -> int:
    """Payload bytes received and not yet read (SIOCINQ == FIONREAD)."""
    return struct.unpack("i", _ioctl_int(sock, termios.FIONREAD))[0]


def _ioctl_int(sock: socket.socket, request: int) -> bytes:
    import fcntl  # only where sockets are measured: the pure parts import on any platform

    return fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0")


def sndbuf_bytes(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def set_abortive_close(sock: socket.socket) -> None:
    # Linger on with timeout 0: close() (also at process exit) sends RST and frees the buffers
    # at once, so the load leaves no orphaned socket holding tcp_mem and no TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def set_send_timeout(sock: socket.socket, seconds: float) -> None:
    # SO_SNDTIMEO instead of settimeout(): the socket stays blocking, so the kernel (not a
    # poll loop in Python) decides when the sender waits, and a stall ends after `seconds`.
    whole = int(seconds)
    micro = int((seconds - whole) * 1_000_000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", whole, micro))


# ---------------------------------------------------------------- worker: one share of connections


class StackSampler(threading.Thread):
    """Samples one thread's kernel stack and state while it is inside a send()."""

    def __init__(self, tid: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.tid = tid
        self.interval_s = interval_s
        self.lock = threading.Lock()
        self.current_send: Optional[int] = None
        self.counts: Dict[int, List[int]] = {}  # send id -> [samples, waiting memory, runnable]
        self.readable = True
        self.stopping = threading.Event()

    def begin(self, send_id: int) -> None:
        with self.lock:
            self.current_send = send_id
            self.counts[send_id] = [0, 0, 0]

    def end(self) -> List[int]:
        with self.lock:
            send_id, self.current_send = self.current_send, None
            return self.counts.pop(send_id, [0, 0, 0]) if send_id is not None else [0, 0, 0]

    def run(self) -> None:
        task = os.path.join(PROC_ROOT, "self/task", str(self.tid))
        while not self.stopping.wait(self.interval_s):
            with self.lock:
                send_id = self.current_send
            if send_id is None:
                continue
            try:
                stack = read_text(os.path.join(task, "stack"))
            except OSError:
                # Reading another thread's stack needs root: without it no send can be called
                # a tcp_mem stall, and the summary says so.
                self.readable = False
                stack = ""
            state = parse_task_state(read_text(os.path.join(task, "stat")))
            with self.lock:
                if self.current_send == send_id:
                    counts = self.counts[send_id]
                    counts[0] += 1
                    counts[1] += int(stack_waits_for_memory(stack))
                    counts[2] += int(state == "R")


def open_connections(
    count: int, nodelay: bool = False
) -> Tuple[socket.socket, List[socket.socket], List[socket.socket]]:
    """A listener and `count` connected (client, accepted) loopback pairs, all lingering 0;
    with `nodelay`, every client has TCP_NODELAY (each small send is pushed as its own skb)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    set_abortive_close(listener)
    listener.bind(("127.0.0.1", 0))
    backlog = 512
    listener.listen(backlog)
    address = listener.getsockname()
    clients: List[socket.socket] = []
    servers: List[socket.socket] = []
    while len(clients) < count:
        # Connect a batch, then accept it: the kernel completes loopback handshakes itself as
        # long as the accept queue has room.
        batch = min(backlog, count - len(clients))
        for _connect in range(batch):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            set_abortive_close(client)
            if nodelay:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.connect(address)
            clients.append(client)
        for _accept in range(batch):
            server, _peer = listener.accept()
            set_abortive_close(server)
            servers.append(server)
    return listener, clients, servers


def fill_connections(
    clients: Sequence[socket.socket], config: Mapping[str, Any], sampler: StackSampler, deadline: float
) -> Dict[str, Any]:
    """Write tx_bytes on every client in timed blocking sends; attribute every slow one."""
    chunk = b"x" * config["chunk_bytes"]
    slow_s = config["slow_send_ms"] / 1000.0
    durations_ms: List[float] = []
    slow_sends: List[Dict[str, Any]] = []
    largest_sndbuf = [sndbuf_bytes(client) for client in clients]
    filled = 0
    stalled_connections: List[int] = []
    not_attempted = len(clients)
    send_id = 0
    for index, client in enumerate(clients):
        if time.monotonic() >= deadline or len(stalled_connections) >= config["max_stalls"]:
            break
        not_attempted -= 1
        remaining = config["tx_bytes"]
        while remaining > 0:
            queued_before = outq_bytes(client)
            largest_sndbuf[index] = max(largest_sndbuf[index], sndbuf_bytes(client))
            send_id += 1
            sampler.begin(send_id)
            started = time.monotonic()
            try:
                sent = client.send(chunk[: min(remaining, len(chunk))])
            except BlockingIOError:
                sent = 0  # SO_SNDTIMEO expired before any byte fit
            elapsed_s = time.monotonic() - started
            samples, waiting_memory, runnable = sampler.end()
            current_sndbuf = sndbuf_bytes(client)
            largest_sndbuf[index] = max(largest_sndbuf[index], current_sndbuf)
            queued_after = outq_bytes(client)
            durations_ms.append(elapsed_s * 1000.0)
            if elapsed_s >= slow_s:
                # The queue while it waited was at most the larger of the two readings: taking
                # it makes a tcp_mem verdict the harder one to reach.
                queued = max(queued_before, queued_after)
                cause = classify_slow_send(
                    waiting_memory, runnable, queued, largest_sndbuf[index], config["room_fraction"]
                )
                slow_sends.append(
                    {
                        "connection": index,
                        "duration_ms": round(elapsed_s * 1000.0, 1),
                        "requested_bytes": min(remaining, len(chunk)),
                        "sent_bytes": sent,
                        "queued_before_bytes": queued_before,
                        "queued_after_bytes": queued_after,
                        "sndbuf_bytes": current_sndbuf,
                        "largest_sndbuf_bytes": largest_sndbuf[index],
                        "samples": samples,
                        "samples_waiting_memory": waiting_memory,
                        "samples_runnable": runnable,
                        "cause": cause,
                    }
                )
            remaining -= sent
            if sent == 0 or elapsed_s >= config["send_timeout_s"]:
                # Timed out (fully or partly): this connection is stuck; do not hammer it.
                break
        if remaining > 0:
            stalled_connections.append(index)
        else:
            filled += 1
    return {
        "filled": filled,
        "stalled": len(stalled_connections),
        "stalled_connections": stalled_connections,
        "not_attempted": not_attempted,
        "durations_ms": durations_ms,
        "slow_sends": slow_sends,
        "largest_sndbuf": largest_sndbuf,
    }


def measure_queues(
    clients: Sequence[socket.socket], servers: Sequence[socket.socket], largest_sndbuf: List[int]
) -> Dict[str, int]:
    """Queued payload on both sides and how many senders had their SO_SNDBUF cut."""
    shrunk = 0
    smallest = None
    for index, client in enumerate(clients):
        current = sndbuf_bytes(client)
        largest_sndbuf[index] = max(largest_sndbuf[index], current)
        shrunk += int(sndbuf_was_shrunk(current, largest_sndbuf[index]))
        smallest = current if smallest is None else min(smallest, current)
    return {
        "send_queue_bytes": sum(outq_bytes(client) for client in clients),
        "receive_queue_bytes": sum(inq_bytes(server) for server in servers),
        "sndbuf_shrunk_sockets": shrunk,
        "smallest_sndbuf_bytes": smallest or 0,
        "largest_sndbuf_bytes": max(largest_sndbuf) if largest_sndbuf else 0,
    }


def block_during_hold(
    clients: Sequence[socket.socket],
    stalled_connections: Sequence[int],
    hold_s: float,
    released: Any,
    chunk_bytes: int,
    sampler: StackSampler,
) -> Optional[Dict[str, Any]]:
    """Keep sending on a stalled connection until the hold ends (`released` is set, at most
    `hold_s`), so that a separate observer (the facts module's blocked_writers) can see a
    writer stuck in the kernel meanwhile. Short send timeouts let it notice the release."""
    if not stalled_connections:
        return None
    client = clients[stalled_connections[0]]
    chunk = b"x" * chunk_bytes
    sent_bytes = samples = waiting_memory = 0
    started = time.monotonic()
    hold_end = started + hold_s
    while not released.is_set() and time.monotonic() < hold_end - 0.01:
        set_send_timeout(client, min(0.5, max(0.01, hold_end - time.monotonic())))
        sampler.begin(-1)
        with contextlib.suppress(BlockingIOError):  # a timeout: look at `released` again
            sent_bytes += client.send(chunk)
        sample_counts = sampler.end()
        samples += sample_counts[0]
        waiting_memory += sample_counts[1]
    return {
        "connection": stalled_connections[0],
        "duration_ms": round((time.monotonic() - started) * 1000.0, 1),
        "sent_bytes": sent_bytes,
        "samples": samples,
        "samples_waiting_memory": waiting_memory,
    }


def worker_main(index: int, count: int, config: Mapping[str, Any], channel: Any, released: Any) -> None:
    """One worker process: open, wait for "fill", fill, wait for "release", measure, close."""
    # A last resort if the parent dies: the kernel resets the sockets when this process ends.
    signal.alarm(int(config["deadline_s"] + config["hold_s"]) + 60)
    sockets: List[socket.socket] = []
    try:
        listener, clients, servers = open_connections(count, config["nodelay"])
        sockets = [listener, *clients, *servers]
        for client in clients:
            set_send_timeout(client, config["send_timeout_s"])
        channel.send(("opened", len(clients)))
        if channel.recv() != "fill":
            return
        sampler = StackSampler(threading.get_native_id(), config["sample_interval_ms"] / 1000.0)
        sampler.start()
        started = time.monotonic()
        filled = fill_connections(clients, config, sampler, config["fill_deadline"])
        filled["fill_s"] = round(time.monotonic() - started, 2)
        channel.send(("filled", {"stalled": filled["stalled"]}))
        if config["hold_blocked"] and config["hold_s"] > 0:
            filled["hold_blocked_send"] = block_during_hold(
                clients, filled["stalled_connections"], config["hold_s"], released, config["chunk_bytes"], sampler
            )
        sampler.stopping.set()
        filled["stack_readable"] = sampler.readable
        if channel.recv() != "release":
            return
        queues = measure_queues(clients, servers, filled.pop("largest_sndbuf"))
        channel.send(("result", {"worker": index, **filled, **queues}))
    except Exception as error:  # reported to the parent, which fails the run with it
        channel.send(("error", f"worker {index}: {error!r}"))
    finally:
        for sock in sockets:
            sock.close()


# ---------------------------------------------------------------- parent: phases and sampling


class KernelSampler(threading.Thread):
    """Samples sockstat TCP mem pages and the TCP press flag every `interval_s`."""

    def __init__(self, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.samples = 0
        self.press_samples = 0
        self.peak_mem_pages: Optional[int] = None
        self.press_supported = True

    def sample(self) -> None:
        pages = parse_sockstat_tcp_mem_pages(read_text(os.path.join(PROC_ROOT, "net/sockstat")))
        press = parse_protocols_tcp_press(read_text(os.path.join(PROC_ROOT, "net/protocols")))
        self.samples += 1
        if pages is not None:
            self.peak_mem_pages = pages if self.peak_mem_pages is None else max(self.peak_mem_pages, pages)
        if press is None:
            self.press_supported = False
        self.press_samples += int(bool(press))

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.sample()


def write_marker(path: Optional[str], worker_pids: Sequence[int], hold_s: float) -> None:
    if path:
        # Whole or absent: an observer polling for the file never reads half of it.
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "worker_pids": list(worker_pids), "hold_s": hold_s}, handle)
        os.replace(path + ".tmp", path)


def hold(hold_s: float, until_path: Optional[str]) -> float:
    """Sleep `hold_s`, or less once `until_path` exists (an observer is done); seconds held."""
    started = time.monotonic()
    while time.monotonic() - started < hold_s:
        if until_path and os.path.exists(until_path):
            break
        time.sleep(min(0.1, max(0.0, hold_s - (time.monotonic() - started))))
    return time.monotonic() - started


def remove_marker(path: Optional[str]) -> None:
    if path and os.path.exists(path):
        os.remove(path)


def raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def receive_all(channels: Sequence[Any], expected: str, deadline: float) -> List[Any]:
    """One message of kind `expected` from every worker, or RuntimeError (errors, timeout)."""
    payloads = []
    for channel in channels:
        if not channel.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"a worker did not report '{expected}' before the deadline")
        kind, payload = channel.recv()
        if kind == "error":
            raise RuntimeError(payload)
        if kind != expected:
            raise RuntimeError(f"expected '{expected}' from a worker, got '{kind}'")
        payloads.append(payload)
    return payloads


def resolve_connections(args: argparse.Namespace, tcp_mem_pages: Sequence[int]) -> int:
    if args.connections != "auto":
        return int(args.connections)
    if len(tcp_mem_pages) != 3:
        raise SystemExit("--connections auto needs a readable net.ipv4.tcp_mem")
    return connections_beyond_tcp_mem(tcp_mem_pages[2], args.tx_bytes, args.auto_overshoot, args.pages_per_64kib)


def run_load(args: argparse.Namespace) -> Dict[str, Any]:
    started = time.monotonic()
    tcp_mem_pages = read_sysctl_list("net.ipv4.tcp_mem")
    connections = min(resolve_connections(args, tcp_mem_pages), args.max_connections)
    workers = workers_needed(connections, args.workers)
    shares = split_connections(connections, workers)
    raise_open_files_limit(max(shares) * 2 + 64)
    config = {
        "tx_bytes": args.tx_bytes,
        "chunk_bytes": args.chunk_bytes,
        "nodelay": args.nodelay,
        "slow_send_ms": args.slow_send_ms,
        "send_timeout_s": args.send_timeout_s,
        "max_stalls": args.max_stalls,
        "room_fraction": args.room_fraction,
        "sample_interval_ms": args.sample_interval_ms,
        "deadline_s": args.deadline_s,
        "fill_deadline": started + args.deadline_s * 0.75,
        "hold_s": args.hold_s,
        "hold_blocked": args.hold_blocked,
    }
    # The hold is on top: an observer may need all of it.
    deadline = started + args.deadline_s + args.hold_s
    kernel_sampler = KernelSampler(args.sample_interval_ms / 1000.0 * 2)
    kernel_sampler.sample()
    baseline_mem_pages = kernel_sampler.peak_mem_pages
    tcpext_before = read_tcpext()
    context = multiprocessing.get_context("fork")
    released = context.Event()
    channels, processes = [], []
    phases: Dict[str, float] = {}
    try:
        for index, share in enumerate(shares):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=worker_main, args=(index, share, config, child_end, released), daemon=True)
            process.start()
            child_end.close()
            channels.append(parent_end)
            processes.append(process)
        kernel_sampler.start()
        opened = sum(receive_all(channels, "opened", deadline))
        phases["open_s"] = round(time.monotonic() - started, 2)
        for channel in channels:
            channel.send("fill")
        receive_all(channels, "filled", deadline)
        phases["fill_end_s"] = round(time.monotonic() - started, 2)
        # Hold everything queued so the samplers see the steady state, not only the ramp. The
        # marker tells an outside observer (a playbook) that the hold has begun.
        write_marker(args.hold_marker, [process.pid for process in processes], args.hold_s)
        phases["held_s"] = round(hold(args.hold_s, args.hold_until), 2)
        released.set()
        remove_marker(args.hold_marker)
        kernel_sampler.sample()
        tcpext_held = read_tcpext()
        for channel in channels:
            channel.send("release")
        results = receive_all(channels, "result", deadline)
    finally:
        released.set()
        remove_marker(args.hold_marker)
        kernel_sampler.stopping.set()
        for process in processes:
            process.join(timeout=max(1.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()  # SO_LINGER 0: its sockets are reset, not orphaned
                process.join()
    tcpext_after = read_tcpext()
    phases["total_s"] = round(time.monotonic() - started, 2)
    durations = [duration for result in results for duration in result["durations_ms"]]
    slow_sends = [dict(send, worker=result["worker"]) for result in results for send in result["slow_sends"]]
    filled = sum(result["filled"] for result in results)
    peak = kernel_sampler.peak_mem_pages
    held_pages = None if peak is None or baseline_mem_pages is None else peak - baseline_mem_pages
    summary: Dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kernel_release": os.uname().release,
        "page_size_bytes": os.sysconf("SC_PAGE_SIZE"),
        "cpu_count": os.cpu_count(),
        "settings": {
            "tcp_mem_pages": tcp_mem_pages,
            "tcp_rmem_bytes": read_sysctl_list("net.ipv4.tcp_rmem"),
            "tcp_wmem_bytes": read_sysctl_list("net.ipv4.tcp_wmem"),
        },
        "workload": {
            "connections": connections,
            "workers": len(shares),
            "tx_bytes_per_connection": args.tx_bytes,
            "chunk_bytes": args.chunk_bytes,
            "sends_per_connection": math.ceil(args.tx_bytes / args.chunk_bytes),
            "nodelay": args.nodelay,
            "receiver": "does not read",
            "slow_send_ms": args.slow_send_ms,
            "send_timeout_s": args.send_timeout_s,
            "hold_s": args.hold_s,
            "hold_blocked": args.hold_blocked,
            "worker_pids": [process.pid for process in processes],
        },
        "connections": {
            "opened": opened,
            "filled": filled,
            "stalled": sum(result["stalled"] for result in results),
            "not_attempted": sum(result["not_attempted"] for result in results),
        },
        "sends": summarize_sends(durations, slow_sends),
        "hold_blocked_sends": [result["hold_blocked_send"] for result in results if result.get("hold_blocked_send")],
        "stack_sampling": {
            "readable": all(result["stack_readable"] for result in results),
            "interval_ms": args.sample_interval_ms,
        },
        "signals": {
            "netstat_delta": counter_deltas(tcpext_before, tcpext_after, PRESSURE_COUNTERS),
            "netstat_delta_while_held": counter_deltas(tcpext_before, tcpext_held, PRESSURE_COUNTERS),
            "press_flag_supported": kernel_sampler.press_supported,
            "press_seen_samples": kernel_sampler.press_samples,
            "kernel_samples": kernel_sampler.samples,
            "baseline_mem_pages": baseline_mem_pages,
            "peak_mem_pages": peak,
            "pages_per_filled_connection": round(held_pages / filled, 2) if held_pages is not None and filled else None,
            "send_queue_bytes": sum(result["send_queue_bytes"] for result in results),
            "receive_queue_bytes": sum(result["receive_queue_bytes"] for result in results),
            "sndbuf_shrunk_sockets": sum(result["sndbuf_shrunk_sockets"] for result in results),
            "smallest_sndbuf_bytes": min(result["smallest_sndbuf_bytes"] for result in results),
            "largest_sndbuf_bytes": max(result["largest_sndbuf_bytes"] for result in results),
        },
        "phases": phases,
    }
    summary["verdict"] = verdict(summary)
    return summary


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connections",
        default="auto",
        help="loopback connections to open, or 'auto': enough to need --auto-overshoot x tcp_mem[2]",
    )
    parser.add_argument("--auto-overshoot", type=float, default=1.25, help="for 'auto': demand / tcp_mem[2]")
    parser.add_argument(
        "--pages-per-64kib", type=float, default=DEFAULT_PAGES_PER_64KIB, help="for 'auto': measured cost"
    )
    parser.add_argument("--max-connections", type=int, default=20000, help="upper bound, whatever 'auto' says")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (more if fds require)")
    parser.add_argument("--tx-bytes", type=int, default=65536, help="bytes each client writes and leaves unread")
    parser.add_argument("--chunk-bytes", type=int, default=16384, help="bytes per send() call")
    parser.add_argument(
        "--nodelay", action="store_true", help="TCP_NODELAY on every client: each send() leaves as its own skb"
    )
    parser.add_argument("--slow-send-ms", type=float, default=100.0, help="a send at least this slow is attributed")
    parser.add_argument("--send-timeout-s", type=float, default=1.0, help="SO_SNDTIMEO: a send gives up after this")
    parser.add_argument("--max-stalls", type=int, default=10, help="stalled connections before a worker stops")
    parser.add_argument("--room-fraction", type=float, default=DEFAULT_ROOM_FRACTION, help="see classify_slow_send")
    parser.add_argument("--sample-interval-ms", type=float, default=20.0, help="stack sampling period")
    parser.add_argument("--hold-s", type=float, default=3.0, help="keep the data queued this long after filling")
    parser.add_argument(
        "--hold-blocked",
        action="store_true",
        help="during the hold, each worker that stalled sends once more and stays blocked (for an observer)",
    )
    parser.add_argument("--hold-marker", help="file that exists (JSON: pids) while the hold lasts")
    parser.add_argument("--hold-until", help="end the hold early once this file exists (--hold-s is then the maximum)")
    parser.add_argument("--deadline-s", type=float, default=150.0, help="the run ends within about this plus --hold-s")
    parser.add_argument("--output", help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    if args.connections != "auto" and not args.connections.isdigit():
        parser.error("--connections must be a positive number or 'auto'")
    if args.tx_bytes <= 0 or args.chunk_bytes <= 0 or args.max_connections <= 0:
        parser.error("--tx-bytes, --chunk-bytes and --max-connections must be positive")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    summary = run_load(args)
    text = json.dumps(summary, indent=1, sort_keys=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Measure what one bulk TCP flow gets with the host's TCP memory below, between and above tcp_mem.

Runs IN a test VM as root (Python 3.8+ standard library only). It WRITES net.ipv4.tcp_mem (a
global key) and restores it at the end: never run it anywhere else.

A holder opens ``--hold-connections`` loopback pairs in the VM's own namespace and leaves
``--hold-bytes`` unread on each: TCP memory then sits at a known H pages. Each phase sets tcp_mem
around H and runs one bulk flow for ``--flow-s`` seconds in a fresh network namespace whose
loopback has a 1500-byte MTU and ``--delay-ms`` of netem delay each way (segments and send
buffers sized as on a real link, not as loopback's 64 KiB MSS); its receiver reads everything.
The flow reports the largest SO_SNDBUF its sender reached, its cwnd, the receiver's SO_RCVBUF
and rcv_ssthresh, and the bytes it moved.

Phases (kernel functions in net/core/sock.c, net/ipv4/tcp_input.c):

- ``below``: H < tcp_mem[0]. ``__sk_mem_raise_allocated`` grants everything and leaves pressure;
  ``tcp_should_expand_sndbuf`` lets the send buffer grow with cwnd (``tcp_sndbuf_expand``).
- ``between``: tcp_mem[0] < H < tcp_mem[1], pressure never entered. Allocations still succeed,
  but ``tcp_should_expand_sndbuf`` refuses to grow any send buffer ("soft global TCP memory
  pressure": ``sk_memory_allocated >= sk_prot_mem_limits(sk, 0)``) and ``tcp_clamp_window``
  stops enlarging receive buffers: every flow keeps the send buffer it was born with.
- ``entered``: tcp_mem[1] set below H for one allocation, so TCP enters memory pressure, then the
  ``between`` values again: pressure stays on (``sk_leave_memory_pressure`` runs only when usage
  is below tcp_mem[0]); ``tcp_grow_window`` stops, send buffers are moderated.
- ``left``: the ``below`` values again: the first allocation leaves pressure.

Prints one JSON summary on stdout (and to ``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

TCP_MEM = "/proc/sys/net/ipv4/tcp_mem"
NETNS = "netstack-threshold-probe"
# struct tcp_info (include/uapi/linux/tcp.h): 8 bytes of u8 fields, then u32s; index of the u32.
TCP_INFO_U32_OFFSET = 8
TCPI_RCV_SSTHRESH = 14
TCPI_SND_CWND = 18
TCP_INFO_LEN = 104
CHUNK_BYTES = 65536


# ---------------------------------------------------------------- pure helpers


def parse_tcp_info(raw: bytes) -> Dict[str, int]:
    """snd_cwnd and rcv_ssthresh from a TCP_INFO getsockopt result."""
    count = (len(raw) - TCP_INFO_U32_OFFSET) // 4
    values = struct.unpack_from(f"{count}I", raw, TCP_INFO_U32_OFFSET)
    return {"snd_cwnd": values[TCPI_SND_CWND], "rcv_ssthresh": values[TCPI_RCV_SSTHRESH]}


def sockstat_tcp_mem_pages(text: str) -> int:
    """The ``mem`` pages of the TCP line of /proc/net/sockstat."""
    for line in text.splitlines():
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            return int(dict(zip(fields[0::2], fields[1::2]))["mem"])
    raise ValueError("no TCP line in /proc/net/sockstat")


def tcp_press(text: str) -> Optional[bool]:
    """The TCP ``press`` column of /proc/net/protocols (None when the kernel shows NI)."""
    lines = text.splitlines()
    column = lines[0].split().index("press")
    for line in lines[1:]:
        fields = line.split()
        if fields and fields[0] == "TCP":
            return {"yes": True, "no": False}.get(fields[column])
    return None


def phase_tcp_mem(phase: str, held_pages: int) -> List[int]:
    """tcp_mem (pages) that puts ``held_pages`` below [0] or between [0] and [1] for ``phase``."""
    low = max(1, held_pages // 2)
    if phase in ("below", "left"):
        return [held_pages * 4, held_pages * 5, held_pages * 6]
    if phase in ("between", "entered"):
        return [low, held_pages * 4, held_pages * 6]
    if phase == "enter":
        return [max(1, held_pages // 4), low, held_pages * 6]
    raise ValueError(f"unknown phase {phase!r}")


# ---------------------------------------------------------------- kernel access


def read_text(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def write_tcp_mem(pages: Sequence[int]) -> None:
    with open(TCP_MEM, "w", encoding="ascii") as handle:
        handle.write(" ".join(str(value) for value in pages))


def kernel_state() -> Dict[str, Any]:
    return {
        "mem_pages": sockstat_tcp_mem_pages(read_text("/proc/net/sockstat")),
        "press": tcp_press(read_text("/proc/net/protocols")),
        "tcp_mem": [int(value) for value in read_text(TCP_MEM).split()],
    }


def linger_zero(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ---------------------------------------------------------------- the flow (inside the netns)


def run_flow(seconds: float, sample_ms: float) -> Dict[str, Any]:
    """One bulk flow over this namespace's loopback; the receiver reads everything."""
    listener = socket.socket()
    linger_zero(listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    linger_zero(client)
    server, _peer = listener.accept()
    linger_zero(server)
    received = [0]
    stop = threading.Event()

    def drain() -> None:
        while True:
            data = server.recv(1 << 20)
            if not data:
                return
            received[0] += len(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    samples: List[Dict[str, int]] = []

    def sample() -> None:
        while not stop.wait(sample_ms / 1000.0):
            samples.append(
                {
                    "sndbuf": client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                    "rcvbuf": server.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                    "snd_cwnd": parse_tcp_info(client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN))[
                        "snd_cwnd"
                    ],
                    "rcv_ssthresh": parse_tcp_info(
                        server.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
                    )["rcv_ssthresh"],
                }
            )

    initial_sndbuf = client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    chunk = b"x" * CHUNK_BYTES
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        client.sendall(chunk)
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    moved = received[0]
    client.close()
    reader.join(timeout=5)
    server.close()
    listener.close()
    return {
        "seconds": round(elapsed, 2),
        "received_bytes": moved,
        "mbit_s": round(moved * 8 / elapsed / 1e6, 1),
        "initial_sndbuf_bytes": initial_sndbuf,
        "max_sndbuf_bytes": max(item["sndbuf"] for item in samples),
        "last_sndbuf_bytes": samples[-1]["sndbuf"],
        "max_snd_cwnd": max(item["snd_cwnd"] for item in samples),
        "max_rcvbuf_bytes": max(item["rcvbuf"] for item in samples),
        "max_rcv_ssthresh_bytes": max(item["rcv_ssthresh"] for item in samples),
        "samples": len(samples),
    }


# ---------------------------------------------------------------- the phases (VM namespace)


def hold(connections: int, unread_bytes: int) -> List[socket.socket]:
    """Loopback pairs whose receivers never read ``unread_bytes`` each (kept open by the caller)."""
    listener = socket.socket()
    linger_zero(listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    kept = [listener]
    chunk = b"x" * min(unread_bytes, CHUNK_BYTES)
    for _index in range(connections):
        client = socket.create_connection(listener.getsockname())
        linger_zero(client)
        server, _peer = listener.accept()
        linger_zero(server)
        left = unread_bytes
        while left > 0:
            left -= client.send(chunk[:left])
        kept += [client, server]
    return kept


def make_netns(delay_ms: float) -> None:
    subprocess.run(["ip", "netns", "delete", NETNS], check=False, capture_output=True)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    netns = ["ip", "netns", "exec", NETNS]
    subprocess.run([*netns, "ip", "link", "set", "lo", "mtu", "1500", "up"], check=True)
    subprocess.run(
        [*netns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", f"{delay_ms}ms", "limit", "100000"],
        check=True,
    )


def flow_in_netns(seconds: float, sample_ms: float) -> Dict[str, Any]:
    argv = ["ip", "netns", "exec", NETNS, sys.executable, os.path.abspath(__file__), "--flow-only"]
    argv += ["--flow-s", str(seconds), "--sample-ms", str(sample_ms)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(done.stdout)


def run_phase(phase: str, held_pages: int, args: argparse.Namespace) -> Dict[str, Any]:
    if phase == "entered":
        # One allocation above tcp_mem[1] enters pressure; then [1] goes back above usage.
        write_tcp_mem(phase_tcp_mem("enter", held_pages))
        flow_in_netns(0.5, args.sample_ms)
    write_tcp_mem(phase_tcp_mem(phase, held_pages))
    before = kernel_state()
    flow = flow_in_netns(args.flow_s, args.sample_ms)
    after = kernel_state()
    return {
        "phase": phase,
        "tcp_mem": before["tcp_mem"],
        "mem_pages_before": before["mem_pages"],
        "mem_pages_after": after["mem_pages"],
        "press_before": before["press"],
        "press_after": after["press"],
        "flow": flow,
    }


def run_probe(args: argparse.Namespace) -> Dict[str, Any]:
    original = [int(value) for value in read_text(TCP_MEM).split()]
    kept: List[socket.socket] = []
    try:
        # Room for the holder: it must not itself meet the limits it is measured against.
        write_tcp_mem([value * 8 for value in original])
        baseline = kernel_state()["mem_pages"]
        kept = hold(args.hold_connections, args.hold_bytes)
        time.sleep(0.5)
        held_pages = kernel_state()["mem_pages"]
        make_netns(args.delay_ms)
        phases = [run_phase(phase, held_pages, args) for phase in ("below", "between", "entered", "left")]
    finally:
        for sock in kept:
            sock.close()
        write_tcp_mem(original)
        subprocess.run(["ip", "netns", "delete", NETNS], check=False, capture_output=True)
    return {
        "kernel_release": os.uname().release,
        "original_tcp_mem": original,
        "baseline_mem_pages": baseline,
        "held_pages": held_pages,
        "hold": {"connections": args.hold_connections, "unread_bytes": args.hold_bytes},
        "link": {"mtu": 1500, "delay_ms_each_way": args.delay_ms, "flow_s": args.flow_s},
        "phases": {phase["phase"]: phase for phase in phases},
    }


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold-connections", type=int, default=500)
    parser.add_argument("--hold-bytes", type=int, default=65536, help="unread payload per held connection")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="netem delay each way (RTT = twice)")
    parser.add_argument("--flow-s", type=float, default=2.0, help="seconds each flow sends")
    parser.add_argument("--sample-ms", type=float, default=50.0)
    parser.add_argument("--flow-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", help="also write the JSON summary to this file")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    summary = run_flow(args.flow_s, args.sample_ms) if args.flow_only else run_probe(args)
    text = json.dumps(summary, indent=1, sort_keys=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""One bulk TCP flow over an emulated long fat link: goodput, buffers and send-queue memory.

Runs IN a test VM as root (Python 3.8+ standard library only). It adds a veth pair between the
VM's own network namespace and a namespace it creates, with ``tc qdisc ... netem delay D rate R``
on the sending side: never run it anywhere else (the machine running the tests has no sch_netem,
and the link would be added to its own namespace).

The sender lives in the VM's own namespace (init_net), where the role applies its sysctls, so
``tcp_wmem``, ``tcp_notsent_lowat`` and the congestion control are the tuned ones. The receiver
lives in the created namespace: ``tcp_rmem`` is per namespace and a new namespace copies
init_net's at creation (``tcp_sk_init``, net/ipv4/tcp_ipv4.c), so the namespace is created for
each run and the tool records both namespaces' values for the caller to compare.

The whole round-trip delay sits on the data direction (acks return at once): RTT = D. The
sender writes as fast as the socket takes it for ``--seconds`` (sendfile from a page-cached file:
no copy, so a slow TCG guest spends its CPU on the link); the receiver reads everything
(``MSG_TRUNC``: discarded in the kernel, counted as read) and samples the bytes received every
``--sample-ms``. Goodput is taken over the last ``--window-s`` seconds
(the steady state after slow start). The sender samples its own socket memory (SO_MEMINFO, what
``ss -tm`` shows as skmem: wmem_queued, sndbuf) and TCP_INFO (cwnd, RTT, unsent bytes); the
receiver samples its receive buffer. At the end the sender's TCP_INFO says how long the flow was
limited by the receive window and by the send buffer (``tcpi_rwnd_limited``,
``tcpi_sndbuf_limited``, 4.19+).

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
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

NETNS = "netstack-link-rx"
VETH_TX = "nsk-lnk-tx"
VETH_RX = "nsk-lnk-rx"
ADDRESS_TX = "10.231.0.1"
ADDRESS_RX = "10.231.0.2"
PREFIX_LEN = 30
PORT = 5201
CHUNK_BYTES = 1 << 20
SOURCE_BYTES = 16 << 20
# getsockopt(SOL_SOCKET, SO_MEMINFO) (include/uapi/asm-generic/socket.h; 4.12+): u32 sk_meminfo
# in the order of include/uapi/linux/sock_diag.h SK_MEMINFO_*.
SO_MEMINFO = 55
SK_MEMINFO_FIELDS = (
    "rmem_alloc",
    "rcvbuf",
    "wmem_alloc",
    "sndbuf",
    "fwd_alloc",
    "wmem_queued",
    "optmem",
    "backlog",
    "drops",
)
# struct tcp_info (include/uapi/linux/tcp.h): byte offset and struct format of each field read.
TCP_INFO_FIELDS: Tuple[Tuple[str, int, str], ...] = (
    ("snd_mss", 16, "I"),
    ("unacked", 24, "I"),
    ("retrans", 36, "I"),
    ("rcv_ssthresh", 64, "I"),
    ("rtt_us", 68, "I"),
    ("snd_ssthresh", 76, "I"),
    ("snd_cwnd", 80, "I"),
    ("rcv_space", 96, "I"),
    ("total_retrans", 100, "I"),
    ("bytes_acked", 120, "Q"),
    ("notsent_bytes", 144, "I"),
    ("min_rtt_us", 148, "I"),
    ("busy_time_us", 168, "Q"),
    ("rwnd_limited_us", 176, "Q"),
    ("sndbuf_limited_us", 184, "Q"),
)
TCP_INFO_LEN = 192
# Sysctls the result records per namespace (what the flow ran under).
SYSCTLS = (
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
    "net/ipv4/tcp_notsent_lowat",
    "net/ipv4/tcp_adv_win_scale",
    "net/ipv4/tcp_congestion_control",
    "net/ipv4/tcp_moderate_rcvbuf",
    "net/core/rmem_max",
    "net/core/wmem_max",
)
# cubic's HyStart (net/ipv4/tcp_cubic.c) leaves slow start when an RTT sample rises a few ms above
# the minimum or an ack train spans half of it: under TCG, scheduling jitter trips it at a fraction
# of the window, and cubic then needs tens of seconds to grow the rest of the way. --no-hystart
# turns it off for the run (and restores it), so a short flow reaches the steady state its
# buffers allow; the steady state itself does not depend on it.
HYSTART = "/sys/module/tcp_cubic/parameters/hystart"
# Ethernet (14) + IPv4 (20) + TCP with timestamps (32) per full segment: what netem's rate counts
# beside the payload (qdisc_pkt_len of a GSO skb counts every segment's headers).
HEADER_BYTES_PER_SEGMENT = 66


# ---------------------------------------------------------------- pure helpers


def parse_meminfo(raw: bytes) -> Dict[str, int]:
    """SO_MEMINFO's u32 array by field name (a shorter array from an older kernel gives fewer)."""
    count = min(len(raw) // 4, len(SK_MEMINFO_FIELDS))
    return dict(zip(SK_MEMINFO_FIELDS, struct.unpack_from(f"{count}I", raw)))


def parse_tcp_info(raw: bytes) -> Dict[str, int]:
    """The TCP_INFO fields this tool reads that the kernel filled in (it copies min(len, its size))."""
    fields = {}
    for name, offset, kind in TCP_INFO_FIELDS:
        if offset + struct.calcsize(kind) <= len(raw):
            fields[name] = struct.unpack_from(kind, raw, offset)[0]
    return fields


def bdp_bytes(rate_bit_s: int, rtt_ms: float) -> int:
    """Bandwidth-delay product of the link: rate / 8 x RTT."""
    return int(rate_bit_s / 8 * rtt_ms / 1000)


def payload_share(mss_bytes: int) -> float:
    """The share of the link rate that is TCP payload when every segment is full."""
    return mss_bytes / (mss_bytes + HEADER_BYTES_PER_SEGMENT)


def window_goodput_bit_s(timeline: Sequence[Sequence[float]], window_s: float, until_s: float) -> Dict[str, float]:
    """Goodput over the last ``window_s`` seconds up to ``until_s`` of a (seconds, bytes received) timeline.

    The window ends at the last sample at or before ``until_s`` (the sender's stop: what follows
    is the drain of what was still queued) and starts at the first sample at or after its end -
    ``window_s``, so it is never longer than asked.
    """
    before = [point for point in timeline if point[0] <= until_s]
    if len(before) < 2:
        raise ValueError(f"the timeline needs at least two samples up to {until_s} s")
    end_s, end_bytes = before[-1]
    start_s, start_bytes = next(point for point in before if point[0] >= end_s - window_s)
    if end_s <= start_s:
        raise ValueError(f"no time between the window's samples ({start_s} s .. {end_s} s)")
    return {
        "start_s": round(start_s, 3),
        "end_s": round(end_s, 3),
        "bytes": end_bytes - start_bytes,
        "bit_s": (end_bytes - start_bytes) * 8 / (end_s - start_s),
    }


def peak(samples: Sequence[Dict[str, int]], name: str) -> Optional[int]:
    """The largest value of ``name`` over the samples that have it (None when none has)."""
    values = [sample[name] for sample in samples if name in sample]
    return max(values) if values else None


def netem_argv(device: str, delay_ms: float, rate_bit_s: int, limit_packets: int) -> List[str]:
    """tc's argv for the link: delay and rate on ``device``'s egress."""
    return [
        "tc",
        "qdisc",
        "replace",
        "dev",
        device,
        "root",
        "netem",
        "delay",
        f"{delay_ms}ms",
        "rate",
        f"{rate_bit_s}bit",
        "limit",
        str(limit_packets),
    ]


# ---------------------------------------------------------------- the link (VM namespace)


def run(argv: Sequence[str], timeout_s: float = 30) -> str:
    done = subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=timeout_s)
    return done.stdout


def remove_link() -> None:
    subprocess.run(["ip", "link", "delete", VETH_TX], check=False, capture_output=True)
    subprocess.run(["ip", "netns", "delete", NETNS], check=False, capture_output=True)


def make_link(delay_ms: float, rate_bit_s: Optional[int], limit_packets: int, mtu: int) -> None:
    """A fresh receiver namespace behind a veth pair; netem on the sender's end when a rate is given."""
    remove_link()
    run(["ip", "netns", "add", NETNS])
    run(["ip", "link", "add", VETH_TX, "mtu", str(mtu), "type", "veth", "peer", "name", VETH_RX, "mtu", str(mtu)])
    run(["ip", "link", "set", VETH_RX, "netns", NETNS])
    run(["ip", "address", "add", f"{ADDRESS_TX}/{PREFIX_LEN}", "dev", VETH_TX])
    run(["ip", "link", "set", VETH_TX, "up"])
    netns = ["ip", "netns", "exec", NETNS]
    run([*netns, "ip", "address", "add", f"{ADDRESS_RX}/{PREFIX_LEN}", "dev", VETH_RX])
    run([*netns, "ip", "link", "set", VETH_RX, "up"])
    run([*netns, "ip", "link", "set", "lo", "up"])
    if rate_bit_s is not None:
        run(netem_argv(VETH_TX, delay_ms, rate_bit_s, limit_packets))


def read_sysctls() -> Dict[str, str]:
    values = {}
    for name in SYSCTLS:
        try:
            with open(f"/proc/sys/{name}", encoding="ascii") as handle:
                values[name.replace("/", ".")] = " ".join(handle.read().split())
        except OSError:
            values[name.replace("/", ".")] = None
    return values


# ---------------------------------------------------------------- the receiver (its namespace)


def receive(port: int, sample_ms: float, deadline_s: float) -> Dict[str, Any]:
    """Accept one connection, read it to EOF, sample bytes and the receive buffer as it goes."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ADDRESS_RX, port))
    listener.listen(1)
    listener.settimeout(deadline_s)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    conn, _peer = listener.accept()
    listener.close()
    conn.settimeout(deadline_s)
    received = [0]
    stop = threading.Event()
    # CLOCK_MONOTONIC is the same in every network namespace: the sender's times compare.
    timeline: List[List[float]] = [[round(time.monotonic(), 4), 0]]
    buffers: List[Dict[str, int]] = []
    started = time.monotonic()

    def sample() -> None:
        while not stop.wait(sample_ms / 1000.0):
            timeline.append([round(time.monotonic(), 4), received[0]])
            try:
                info = parse_meminfo(conn.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * len(SK_MEMINFO_FIELDS)))
                info.update(parse_tcp_info(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)))
            except OSError:
                return
            buffers.append(info)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    buffer = bytearray(CHUNK_BYTES)
    while True:
        # MSG_TRUNC: TCP discards the bytes instead of copying them out (tcp_recvmsg), the receive
        # queue, autotuning and acks as for a read; a TCG guest then spends its CPU on the link.
        count = conn.recv_into(buffer, CHUNK_BYTES, socket.MSG_TRUNC)
        if not count:
            break
        received[0] += count
    ended = time.monotonic()
    stop.set()
    sampler.join()
    timeline.append([round(ended, 4), received[0]])
    conn.close()
    return {
        "received_bytes": received[0],
        "seconds": round(ended - started, 3),
        "timeline": timeline,
        "peak_rcvbuf_bytes": peak(buffers, "rcvbuf"),
        "peak_rmem_alloc_bytes": peak(buffers, "rmem_alloc"),
        "peak_rcv_space_bytes": peak(buffers, "rcv_space"),
        "drops": peak(buffers, "drops"),
        "sysctl": read_sysctls(),
    }


# ---------------------------------------------------------------- the sender (VM namespace)


def send(seconds: float, sample_ms: float, port: int, source_path: str) -> Dict[str, Any]:
    """Write as fast as the socket takes it for ``seconds``; sample its memory and TCP_INFO."""
    sock = socket.create_connection((ADDRESS_RX, port), timeout=30)
    sock.settimeout(None)
    samples: List[Dict[str, int]] = []
    stop = threading.Event()
    started = time.monotonic()

    def state() -> Dict[str, int]:
        info = parse_meminfo(sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * len(SK_MEMINFO_FIELDS)))
        info.update(parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)))
        return info

    def sample() -> None:
        while not stop.wait(sample_ms / 1000.0):
            point = state()
            point["t_s"] = round(time.monotonic() - started, 3)
            samples.append(point)

    initial = state()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent = 0
    # sendfile from a file in the page cache: the pages go into the send queue without a copy
    # (charged to wmem_queued as copied data would be), so the guest's CPU is not the bottleneck.
    with open(source_path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        while time.monotonic() - started < seconds:
            sent += os.sendfile(sock.fileno(), source.fileno(), sent % size, CHUNK_BYTES)
    stopped = time.monotonic()
    stop.set()
    sampler.join()
    final = state()
    # Half-close: the receiver reads what is still queued and sees EOF.
    sock.shutdown(socket.SHUT_WR)
    return {
        "sent_bytes": sent,
        "started_s": round(started, 4),
        "stopped_s": round(stopped, 4),
        "initial_sndbuf_bytes": initial.get("sndbuf"),
        "peak_sndbuf_bytes": peak(samples, "sndbuf"),
        "peak_wmem_queued_bytes": peak(samples, "wmem_queued"),
        "peak_notsent_bytes": peak(samples, "notsent_bytes"),
        "peak_snd_cwnd": peak(samples, "snd_cwnd"),
        "peak_rtt_us": peak(samples, "rtt_us"),
        "final_tcp_info": final,
        "samples": samples,
        "socket": sock,
    }


# ---------------------------------------------------------------- one run


def make_source(directory: str) -> str:
    """A file of SOURCE_BYTES zeros for sendfile (read once, then served from the page cache)."""
    handle, path = tempfile.mkstemp(prefix="tcp-link-flow.", dir=directory)
    with os.fdopen(handle, "wb") as source:
        source.write(bytes(SOURCE_BYTES))
    return path


def read_hystart() -> Optional[int]:
    try:
        with open(HYSTART, encoding="ascii") as handle:
            return int(handle.read())
    except OSError:
        return None


def write_hystart(value: int) -> None:
    with open(HYSTART, "w", encoding="ascii") as handle:
        handle.write(str(value))


def run_flow(args: argparse.Namespace) -> Dict[str, Any]:
    rate = None if args.rate_mbit is None else int(args.rate_mbit * 1e6)
    make_link(args.delay_ms, rate, args.limit_packets, args.mtu)
    receiver = None
    source = make_source(args.source_dir)
    hystart = read_hystart()
    try:
        if args.no_hystart:
            if hystart is None:
                raise RuntimeError(f"--no-hystart: {HYSTART} is not readable here")
            write_hystart(0)
        receiver = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NETNS,
                sys.executable,
                os.path.abspath(__file__),
                "--receive",
                "--sample-ms",
                str(args.sample_ms),
                "--deadline-s",
                str(args.seconds + args.drain_s + 30),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = receiver.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"the receiver did not start: {ready!r} {receiver.stderr.read()}")
        sender = send(args.seconds, args.sample_ms, PORT, source)
        out, err = receiver.communicate(timeout=args.drain_s + 60)
        sender.pop("socket").close()
        if receiver.returncode != 0:
            raise RuntimeError(f"the receiver failed: {err}")
        received = json.loads(out)
    finally:
        if receiver is not None and receiver.poll() is None:
            receiver.kill()
            receiver.wait()
        remove_link()
        os.unlink(source)
        if args.no_hystart and hystart is not None:
            write_hystart(hystart)
    mss = sender["final_tcp_info"].get("snd_mss") or (args.mtu - 52)
    window = window_goodput_bit_s(received["timeline"], args.window_s, sender["stopped_s"])
    window["start_s"] = round(window["start_s"] - sender["started_s"], 3)
    window["end_s"] = round(window["end_s"] - sender["started_s"], 3)
    result: Dict[str, Any] = {
        "kernel_release": os.uname().release,
        "link": {
            "rate_bit_s": rate,
            "rtt_ms": args.delay_ms,
            "mtu": args.mtu,
            "bdp_bytes": None if rate is None else bdp_bytes(rate, args.delay_ms),
            "netem_limit_packets": args.limit_packets,
        },
        "flow": {
            "seconds": args.seconds,
            "window_s": args.window_s,
            "sample_ms": args.sample_ms,
            "cubic_hystart": 0 if args.no_hystart else hystart,
        },
        "goodput": {
            "window": window,
            "mbit_s": round(window["bit_s"] / 1e6, 2),
            "whole_flow_mbit_s": round(received["received_bytes"] * 8 / received["seconds"] / 1e6, 2),
        },
        "sender": {key: value for key, value in sender.items() if key != "samples"},
        "sender_timeline": [
            {key: point.get(key) for key in ("t_s", "wmem_queued", "sndbuf", "snd_cwnd", "notsent_bytes", "rtt_us")}
            for point in sender["samples"][:: max(1, len(sender["samples"]) // 40)]
        ],
        "receiver": {key: value for key, value in received.items() if key != "timeline"},
        "receiver_timeline": [
            [round(point[0] - sender["started_s"], 2), point[1]]
            for point in received["timeline"][:: max(1, len(received["timeline"]) // 60)]
        ],
        "sysctl": {"sender": read_sysctls(), "receiver": received["sysctl"]},
    }
    if rate is not None:
        share = payload_share(mss)
        result["goodput"]["link_share"] = round(window["bit_s"] / rate, 4)
        result["goodput"]["payload_share_of_link"] = round(share, 4)
        result["goodput"]["link_utilisation"] = round(window["bit_s"] / (rate * share), 4)
    return result


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-mbit", type=float, help="netem rate in Mbit/s (none: no netem, the bare veth)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="netem delay on the data direction = RTT")
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--limit-packets", type=int, default=200000, help="netem queue limit")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the sender writes")
    parser.add_argument("--window-s", type=float, default=5.0, help="steady-state window at the end")
    parser.add_argument("--sample-ms", type=float, default=100.0)
    parser.add_argument("--drain-s", type=float, default=60.0, help="bound on the receiver's end after the send")
    parser.add_argument("--no-hystart", action="store_true", help="turn cubic's HyStart off during the run")
    parser.add_argument("--source-dir", default="/var/tmp", help="where the file the sender sends from is made")
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--deadline-s", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("--output", help="also write the JSON summary to this file (its directory is made)")
    args = parser.parse_args(argv)
    if not 0 < args.window_s < args.seconds:
        parser.error(f"--window-s must be > 0 and below --seconds, got {args.window_s} (--seconds {args.seconds})")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.receive:
        print(json.dumps(receive(PORT, args.sample_ms, args.deadline_s)))
        return 0
    summary = run_flow(args)
    text = json.dumps(summary, indent=1, sort_keys=True)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""tcp_memory_facts calibrate against an independent `ss -tmi` parse, in network namespaces.

The facts run in namespace A. Its sockets hold data both ways, and forward-allocated memory:
- loopback: connections on 127.0.0.1 whose receivers (SO_RCVBUF small, never reading) fill up, so the
  receiving ends hold unread data and the sending ends unsent data;
- other: connections from A over a veth pair to receivers in namespace B (same small, never read buffers),
  so A's ends hold unsent and unacknowledged data that crossed a device.
While nothing moves, for each class the module's sums must match what `ss -tmi` shows for the same sockets:
payload (Recv-Q / Send-Q) exactly, and r + w + f (rmem_alloc, wmem_queued, fwd_alloc) rounded up per socket to
the charge unit within 5%; the loopback sockets are reported apart.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time

import pytest
from conftest import _delete_netns, real_kernel_ready

MODULE = "netstack.tcp_tuning.tcp_memory_facts"
LOOPBACK_CONNECTIONS = 40
VETH_CONNECTIONS = 40
SEND_BYTES = 300000  # more than a small receive buffer plus the sender's initial send buffer
RCVBUF_BYTES = 8192  # the kernel doubles it; the window closes well before SEND_BYTES
A_ADDRESS, B_ADDRESS = "10.77.0.1", "10.77.0.2"

# Receivers: listen with a small SO_RCVBUF (inherited by accepted sockets), accept, never read.
RECEIVER = r"""
import json, socket, sys
host, count, rcvbuf = json.loads(sys.argv[1])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
server.bind((host, 0))
server.listen(1024)
print(server.getsockname()[1], flush=True)
keep = [server.accept()[0] for _ in range(count)]
print("accepted", flush=True)
sys.stdin.read()
"""

# Senders: connect, then write without blocking until the kernel refuses more (the peer's window is closed).
SENDER = r"""
import json, socket, sys
host, port, count, send_bytes = json.loads(sys.argv[1])
keep = []
for _ in range(count):
    client = socket.create_connection((host, port))
    client.setblocking(False)
    sent = 0
    try:
        while sent < send_bytes:
            sent += client.send(b"x" * min(65536, send_bytes - sent))
    except BlockingIOError:
        pass
    keep.append(client)
print("sent", flush=True)
sys.stdin.read()
"""

SS_LINE = re.compile(r"^(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s.*?skmem:\(r(\d+),rb\d+,t\d+,tb\d+,f(\d+),w(\d+),", re.MULTILINE)


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def start(netns: str, program: str, arguments: list, processes: list) -> subprocess.Popen:
    process = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", program, json.dumps(arguments)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    return process


def is_loopback(local: str, remote: str) -> bool:
    def host(endpoint: str) -> str:
        return endpoint.rsplit(":", 1)[0].strip("[]")

    return host(local).startswith("127.") and host(remote).startswith("127.")


def ss_classes(netns: str, unit_bytes: int) -> dict:
    """Per class (loopback, other): sockets, Recv-Q and Send-Q sums, and r + w + f rounded up per socket."""
    text = run("ip", "netns", "exec", netns, "ss", "-tmniHO", "state", "established")
    classes = {name: {"sockets": 0, "rx": 0, "tx": 0, "fwd": 0, "charged": 0} for name in ("loopback", "other")}
    for recv_q, send_q, local, remote, rmem, fwd, wmem in SS_LINE.findall(text):
        sums = classes["loopback" if is_loopback(local, remote) else "other"]
        sums["sockets"] += 1
        sums["rx"] += int(recv_q)
        sums["tx"] += int(send_q)
        sums["fwd"] += int(fwd)
        sums["charged"] += -(-(int(rmem) + int(wmem) + int(fwd)) // unit_bytes) * unit_bytes
    return classes


@pytest.fixture
def loaded_namespaces():
    """Namespace A (returned) holding loopback connections and senders to namespace B over a veth pair."""
    reason = real_kernel_ready()
    if reason:
        pytest.skip(reason)
    a, b = f"ns-cal-a-{secrets.token_hex(3)}", f"ns-cal-b-{secrets.token_hex(3)}"
    processes = []
    try:
        for name in (a, b):
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        veth_a, veth_b = f"vc{secrets.token_hex(3)}", f"vd{secrets.token_hex(3)}"
        run("ip", "-n", a, "link", "add", veth_a, "type", "veth", "peer", "name", veth_b, "netns", b)
        for name, device, address in ((a, veth_a, A_ADDRESS), (b, veth_b, B_ADDRESS)):
            run("ip", "-n", name, "address", "add", f"{address}/24", "dev", device)
            run("ip", "-n", name, "link", "set", device, "up")
        receivers = [
            (start(a, RECEIVER, ["127.0.0.1", LOOPBACK_CONNECTIONS, RCVBUF_BYTES], processes), "127.0.0.1"),
            (start(b, RECEIVER, [B_ADDRESS, VETH_CONNECTIONS, RCVBUF_BYTES], processes), B_ADDRESS),
        ]
        for (receiver, host), count in zip(receivers, (LOOPBACK_CONNECTIONS, VETH_CONNECTIONS)):
            port = int(receiver.stdout.readline())
            sender = start(a, SENDER, [host, port, count, SEND_BYTES], processes)
            assert receiver.stdout.readline().strip() == "accepted"
            assert sender.stdout.readline().strip() == "sent"
        yield a
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
        for name in (a, b):
            _delete_netns(name)


def settled(netns: str, unit_bytes: int) -> dict:
    """ss sums once three reads half a second apart agree (zero windows: only probes move, no payload)."""
    reads = []
    for _attempt in range(60):
        reads = [*reads[-2:], ss_classes(netns, unit_bytes)]
        if len(reads) == 3 and reads[0] == reads[1] == reads[2]:
            break
        time.sleep(0.5)
    return reads[-1]


def within(ours: int, before: int, after: int, share: float = 0.05) -> bool:
    """ours, read between ss's two reads, lies in their range widened by share (queues may still drain)."""
    low, high = min(before, after), max(before, after)
    return low * (1 - share) <= ours <= high * (1 + share)


def test_charged_totals_match_ss_per_class_within_5_percent(loaded_namespaces, run_ansible_module):
    netns = loaded_namespaces
    unit_bytes = os.sysconf("SC_PAGE_SIZE")  # kernels from 6.0 charge pages (this test's kernel)
    expected = settled(netns, unit_bytes)
    facts = run_ansible_module(MODULE, {"calibrate": True}, netns_name=netns)["ansible_facts"]["tcp_memory"]
    after = ss_classes(netns, unit_bytes)
    calibration = facts["calibration"]
    assert calibration["charge_unit_bytes"] == unit_bytes
    assert calibration["stopped_early"] is False
    assert expected["loopback"]["sockets"] == 2 * LOOPBACK_CONNECTIONS
    assert expected["other"]["sockets"] == VETH_CONNECTIONS
    summary = {}
    for name in ("loopback", "other"):
        ours, theirs = calibration[name], expected[name]
        summary[name] = (ours, theirs, after[name])
        assert ours["sockets"] == theirs["sockets"], summary
        # Our read lies between ss's two reads: on a loaded machine queues may still drain into a peer's window.
        later = after[name]
        assert within(ours["rx"]["payload_bytes"], theirs["rx"], later["rx"]), summary
        assert within(ours["tx"]["payload_bytes"], theirs["tx"], later["tx"]), summary
        assert within(ours["charged_total_bytes"], theirs["charged"], later["charged"]), summary
        assert ours["charged_total_bytes"] >= ours["rx"]["charged_bytes"] + ours["tx"]["charged_bytes"]
    loopback, other = calibration["loopback"], calibration["other"]
    # Both ends of a loopback connection are here: receivers hold unread data, senders unsent data.
    assert loopback["rx"]["sockets"] == LOOPBACK_CONNECTIONS and loopback["tx"]["sockets"] == LOOPBACK_CONNECTIONS
    # Only the sending ends of the veth connections are in this namespace.
    assert other["rx"]["sockets"] == 0 and other["tx"]["sockets"] == VETH_CONNECTIONS
    assert loopback["fwd_alloc_bytes"] + other["fwd_alloc_bytes"] > 0  # forward allocation is read
    assert calibration["sampled_sockets"] == loopback["sockets"] + other["sockets"]


def test_calibrate_sample_bounds_the_sockets_read(loaded_namespaces, run_ansible_module):
    facts = run_ansible_module(MODULE, {"calibrate": True, "calibrate_sample": 100}, netns_name=loaded_namespaces)
    calibration = facts["ansible_facts"]["tcp_memory"]["calibration"]
    assert calibration["sampled_sockets"] == 100 < 2 * LOOPBACK_CONNECTIONS + VETH_CONNECTIONS
    assert calibration["stopped_early"] is True
    assert calibration["max_sockets"] == 100


# A default call does not calibrate: test_tcp_memory_facts_netns.py (the per-MSS test's default call).

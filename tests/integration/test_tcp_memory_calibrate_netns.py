# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""tcp_memory_facts calibrate (issue 17 item 2) against an independent `ss -tmi` parse, in a netns.

A helper process in a fresh network namespace holds 150 loopback connections whose receivers never
read: each client sent a known number of bytes (three sizes, so the factor is not one skb's). While
nothing moves, the module's receive factor must be within 5% of sum(rmem_alloc) / sum(Recv-Q) that
`ss -tmi` reports for the same sockets, over the same number of sockets holding unread data.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

MODULE = "netstack.tcp_tuning.tcp_memory_facts"
SIZES_BYTES = (1000, 20000, 60000)
PER_SIZE = 50

HOLDER = r"""
import json, socket, sys, time
sizes, per_size = json.loads(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1024)
keep, sent = [], 0
for size in sizes:
    for _ in range(per_size):
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        client.sendall(b"x" * size)
        keep += [client, peer]
        sent += size
time.sleep(0.5)  # everything acknowledged and queued at the receivers, which never read
print(json.dumps({"sockets": len(sizes) * per_size, "unread_bytes": sent}), flush=True)
sys.stdin.read()
"""

SKMEM = re.compile(r"^(\d+)\s+(\d+)\s+\S+\s+\S+.*?skmem:\(r(\d+),", re.MULTILINE)


def ss_receive_sums(netns: str) -> tuple:
    """(sockets with unread data, sum of Recv-Q, sum of rmem_alloc) from `ss -tmi`, one line per socket."""
    text = subprocess.run(
        ["ip", "netns", "exec", netns, "ss", "-tmniHO", "state", "established"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [(int(recv_q), int(rmem)) for recv_q, _send_q, rmem in SKMEM.findall(text)]
    with_data = [(recv_q, rmem) for recv_q, rmem in rows if recv_q > 0]
    return len(with_data), sum(row[0] for row in with_data), sum(row[1] for row in with_data)


@pytest.fixture
def unread_netns(netns):
    holder = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", HOLDER, json.dumps([SIZES_BYTES, PER_SIZE])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield netns, json.loads(holder.stdout.readline())
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_receive_factor_matches_ss_within_5_percent(unread_netns, run_ansible_module):
    netns, held = unread_netns
    facts = run_ansible_module(MODULE, {"calibrate": True}, netns_name=netns)["ansible_facts"]["tcp_memory"]
    calibration = facts["calibration"]
    sockets, unread_bytes, rmem_bytes = ss_receive_sums(netns)
    assert sockets == held["sockets"] and unread_bytes == held["unread_bytes"]
    rx = calibration["rx"]
    assert rx["sockets"] == sockets
    assert rx["payload_bytes"] == unread_bytes
    assert abs(rx["factor"] - rmem_bytes / unread_bytes) <= 0.05 * rmem_bytes / unread_bytes
    assert rx["factor"] >= 1
    assert calibration["sampled_sockets"] == 2 * held["sockets"]  # both ends of each connection
    assert calibration["stopped_early"] is False


def test_calibrate_sample_bounds_the_sockets_read(unread_netns, run_ansible_module):
    netns, held = unread_netns
    facts = run_ansible_module(MODULE, {"calibrate": True, "calibrate_sample": 100}, netns_name=netns)
    calibration = facts["ansible_facts"]["tcp_memory"]["calibration"]
    assert calibration["sampled_sockets"] == 100 < 2 * held["sockets"]
    assert calibration["stopped_early"] is True
    assert calibration["max_sockets"] == 100


def test_default_facts_call_does_not_calibrate(netns, run_ansible_module):
    facts = run_ansible_module(MODULE, {}, netns_name=netns)["ansible_facts"]["tcp_memory"]
    assert facts["calibration"] is None

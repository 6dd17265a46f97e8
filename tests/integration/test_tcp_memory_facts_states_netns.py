# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fast state counts against a full dump and `ss`, with sockets in many states.

A helper process in a fresh network namespace holds listeners, accepted and unaccepted
(backlog) connections, CLOSE_WAIT / FIN_WAIT2 pairs (half-closed), FIN_WAIT1 (FIN queued behind
a full window), TIME_WAIT (active close) and SYN_RECV (a TCP_DEFER_ACCEPT listener keeps the
request socket while the client sends nothing: on Linux a full accept queue drops new SYNs, so an
unaccepted backlog holds ESTABLISHED children, not SYN_RECV), and one socket bound that neither listens nor
connects (kernel 6.6+ can dump it as BOUND_INACTIVE, reported as CLOSE: no connection state, not counted, as
/proc/net/tcp and `ss -tan state all` before iproute2 6.7 do not list it). Nothing changes state while the
module runs, so the counts must be equal; CurrEstab is read around the filtered dump and
`curr_estab_drift` must be 0. Under churn the two reads differ by the connections that came
or went in between: the drift reported is that bound (see the module's `states` docs).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODULE = "netstack.tcp_tuning.tcp_memory_facts"
SS_STATES = {
    "ESTABLISHED": "established",
    "SYN_RECV": "syn-recv",
    "FIN_WAIT1": "fin-wait-1",
    "FIN_WAIT2": "fin-wait-2",
    "TIME_WAIT": "time-wait",
    "CLOSE_WAIT": "close-wait",
    "LISTEN": "listening",
}

STATE_MAKER = r"""
import json, socket, sys, time

def listener(backlog=128, defer=0, family=socket.AF_INET, host="127.0.0.1"):
    sock = socket.socket(family)
    if defer:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer)
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock

def pairs(lsock, count):
    clients, servers = [], []
    for _ in range(count):  # accept as we go: a full accept queue drops the next SYN
        clients.append(socket.create_connection(lsock.getsockname()[:2]))
        servers.append(lsock.accept()[0])
    return clients, servers

keep = []
main = listener()
v6 = listener(family=socket.AF_INET6, host="::1")
backlog = listener(backlog=64)
deferred = listener(defer=60)
keep += [main, v6, backlog, deferred]
keep += sum(pairs(main, 150), [])                               # 300 ESTABLISHED
keep += sum(pairs(v6, 50), [])                                  # 100 ESTABLISHED (IPv6)
keep += [socket.create_connection(backlog.getsockname()) for _ in range(20)]  # 40 ESTABLISHED, not accepted
half_clients, half_servers = pairs(main, 12)
for client in half_clients:
    client.shutdown(socket.SHUT_WR)                             # 12 FIN_WAIT2 + 12 CLOSE_WAIT
keep += half_clients + half_servers
full_clients, full_servers = pairs(main, 4)
for server in full_servers:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
for client in full_clients:
    client.setblocking(False)
    for _ in range(100000):
        try:
            client.send(b"x" * 65536)
        except BlockingIOError:
            break
    time.sleep(0.05)
    client.shutdown(socket.SHUT_WR)                             # 4 FIN_WAIT1 (FIN behind a zero window), 4 ESTABLISHED
keep += full_clients + full_servers
tw_clients, tw_servers = pairs(main, 10)
for client in tw_clients:
    client.close()                                              # active close ...
for server in tw_servers:
    server.close()                                              # ... 10 TIME_WAIT on the client side
keep += [socket.create_connection(deferred.getsockname()) for _ in range(6)]  # 6 SYN_RECV + 6 ESTABLISHED
inactive = socket.socket()
inactive.bind(("127.0.0.1", 0))                                 # bound only: no connection state
keep.append(inactive)
time.sleep(0.5)
print(json.dumps({"LISTEN": 4, "ESTABLISHED": 300 + 100 + 40 + 4 + 6, "CLOSE_WAIT": 12, "FIN_WAIT2": 12,
                  "FIN_WAIT1": 4, "TIME_WAIT": 10, "SYN_RECV": 6}), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def states_netns(netns):
    maker = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", STATE_MAKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        expected = json.loads(maker.stdout.readline())
        yield netns, expected
    finally:
        maker.kill()
        maker.wait(timeout=10)


def test_fast_counts_equal_a_full_dump_and_ss(states_netns, run_ansible_module, ss_state_count):
    netns, expected = states_netns
    fast = run_ansible_module(MODULE, {"states": True}, netns_name=netns)["ansible_facts"]["tcp_memory"]
    full = run_ansible_module(MODULE, {"states": True, "connection_bytes": True}, netns_name=netns)
    full = full["ansible_facts"]["tcp_memory"]
    fast_connections, full_connections = fast["connections"], full["connections"]

    assert fast_connections["method"] == "counters", fast["status"]["notes"]
    assert fast_connections["curr_estab_drift"] == 0
    assert fast_connections["rmem_alloc_bytes_total"] is None
    assert full_connections["method"] == "dump"
    assert full_connections["rmem_alloc_bytes_total"] > 0

    assert fast_connections["by_state"] == expected
    assert full_connections["by_state"] == expected
    assert fast_connections["total"] == full_connections["total"] == sum(expected.values())
    for name, count in expected.items():
        assert ss_state_count(netns, SS_STATES[name]) == count, name
    # `ss -tan state all` lists the bound-only socket from iproute2 6.7 on, as UNCONN (TCP_CLOSE)
    listed = subprocess.run(
        ["ip", "netns", "exec", netns, "ss", "-tanH", "state", "all"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len([line for line in listed if line.strip() and not line.startswith("UNCONN")]) == sum(expected.values())
    # /proc/net/tcp and tcp6 list the listening and established hash tables: the same sockets
    tables = subprocess.run(
        ["ip", "netns", "exec", netns, "cat", "/proc/net/tcp", "/proc/net/tcp6"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len([line for line in tables if line.strip() and not line.lstrip().startswith("sl")]) == sum(
        expected.values()
    )
    # CurrEstab counts both ends of ESTABLISHED and CLOSE_WAIT, IPv4 and IPv6 together.
    assert fast["snmp"]["tcp_curr_estab"] == expected["ESTABLISHED"] + expected["CLOSE_WAIT"]


def test_top_sockets_keeps_the_full_dump(states_netns, run_ansible_module):
    netns, expected = states_netns
    facts = run_ansible_module(MODULE, {"states": True, "top_sockets": 3}, netns_name=netns)
    connections = facts["ansible_facts"]["tcp_memory"]["connections"]
    assert connections["method"] == "dump"
    assert connections["by_state"] == expected
    assert len(facts["ansible_facts"]["tcp_memory"]["top_sockets"]) == 3


CHURN_BASE = 1000  # connections held throughout
CHURN_BATCH = 25  # connections opened, then closed, over and over
CHURNER = rf"""
import socket, sys, threading
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
held = []
for _ in range({CHURN_BASE}):
    held.append(socket.create_connection(listener.getsockname()))
    held.append(listener.accept()[0])
stop = threading.Event()
cycles = [0]

def churn():
    while not stop.is_set():
        batch = []
        for _ in range({CHURN_BATCH}):
            batch.append(socket.create_connection(listener.getsockname()))
            batch.append(listener.accept()[0])
        for sock in batch:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST: no TIME_WAIT pile-up
            sock.close()
        cycles[0] += 1

thread = threading.Thread(target=churn, daemon=True)
thread.start()
print("churning", flush=True)
sys.stdin.readline()
stop.set()
thread.join()
print(cycles[0], flush=True)
"""


def test_under_churn_established_stays_within_what_was_true_during_the_run(netns, run_ansible_module):
    """Connections come and go while the module reads: ESTABLISHED must lie in the range the truth
    spans meanwhile (2 x base .. 2 x (base + batch)), give or take one batch for the instants between
    the CurrEstab read and the CLOSE_WAIT dump, and the drift it reports must be within that too."""
    churner = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", CHURNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert churner.stdout.readline().strip() == "churning"
        results = [
            run_ansible_module(MODULE, {"states": True}, netns_name=netns)["ansible_facts"]["tcp_memory"]
            for _run in range(3)
        ]
        churner.stdin.write("stop\n")
        churner.stdin.flush()
        cycles = int(churner.stdout.readline())
    finally:
        churner.kill()
        churner.wait(timeout=10)
    assert cycles > 0  # connections really came and went during the runs
    low, high = 2 * (CHURN_BASE - CHURN_BATCH), 2 * (CHURN_BASE + 2 * CHURN_BATCH)
    for facts in results:
        connections = facts["connections"]
        assert connections["method"] == "counters", facts["status"]["notes"]
        assert low <= connections["by_state"]["ESTABLISHED"] <= high, connections
        assert abs(connections["curr_estab_drift"]) <= 2 * CHURN_BATCH * 3, connections

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the pressure scenario's load program: parsers, attribution, arithmetic. Its real runs on this
machine's loopback are in tests/integration/test_tcp_pressure_load_live.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

LOAD_PATH = Path(__file__).resolve().parents[2] / "tools" / "tcp_pressure_load.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("tcp_pressure_load", LOAD_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load = _load_module()

NETSTAT = """\
TcpExt: SyncookiesSent PruneCalled RcvPruned TCPMemoryPressures TCPRcvQDrop
TcpExt: 0 311 0 1 233
IpExt: InNoRoutes InOctets
IpExt: 0 123456
"""

SOCKSTAT = """\
sockets: used 45
TCP: inuse 2 orphan 0 tw 0 alloc 3 mem 30168
UDP: inuse 1 mem 0
"""

# /proc/net/protocols lines cut after the first flag columns (the parser reads the header).
PROTOCOLS_HEADER = "protocol  size sockets  memory press maxhdr  slab module     cl co di ac io in de"


def protocols(tcp_press: str) -> str:
    return "\n".join(
        [
            PROTOCOLS_HEADER,
            "UDP       1088      1       0   NI       0   yes  kernel      y  y  y  n  y  y  y",
            f"TCP       2432   6672   30168   {tcp_press}     320   yes  kernel      y  y  y  y  y  y  y",
        ]
    )


# Copied from a stalled sender in the 2048 MB Debian 12 guest (kernel 6.1).
STALLED_STACK = """\
[<0>] sk_stream_wait_memory+0x1c3/0x3a0
[<0>] tcp_sendmsg_locked+0x6a3/0xd30
[<0>] tcp_sendmsg+0x28/0x40
[<0>] sock_sendmsg+0x5e/0x70
[<0>] __sys_sendto+0x113/0x180
[<0>] __x64_sys_sendto+0x24/0x30
[<0>] do_syscall_64+0x55/0xb0
[<0>] entry_SYSCALL_64_after_hwframe+0x6e/0xd8
"""

READING_STACK = """\
[<0>] proc_pid_stack+0xab/0x120
[<0>] proc_single_show+0x50/0xb0
[<0>] seq_read_iter+0x12f/0x490
"""


# ---------------------------------------------------------------- parsers


def test_parse_netstat_pairs_header_and_value_lines_per_prefix():
    tables = load.parse_netstat(NETSTAT)
    assert tables["TcpExt"] == {
        "SyncookiesSent": 0,
        "PruneCalled": 311,
        "RcvPruned": 0,
        "TCPMemoryPressures": 1,
        "TCPRcvQDrop": 233,
    }
    assert tables["IpExt"]["InOctets"] == 123456


def test_parse_sockstat_reads_tcp_mem_pages_not_udp():
    assert load.parse_sockstat_tcp_mem_pages(SOCKSTAT) == 30168


def test_parse_sockstat_without_tcp_line_is_none():
    assert load.parse_sockstat_tcp_mem_pages("sockets: used 1\nUDP: inuse 1 mem 7\n") is None


@pytest.mark.parametrize(("flag", "expected"), [("yes", True), ("no", False), ("NI", None)])
def test_parse_protocols_reads_the_tcp_press_column(flag, expected):
    assert load.parse_protocols_tcp_press(protocols(flag)) is expected


def test_parse_protocols_ignores_udp_press_column():
    text = protocols("no").replace("0   NI", "0   yes", 1)
    assert load.parse_protocols_tcp_press(text) is False


def test_parse_task_state_survives_parentheses_in_comm():
    assert load.parse_task_state("4242 (py (x) y) S 1 4242 4242 0 -1") == "S"
    assert load.parse_task_state("7 (python3) R 1 7 7") == "R"


def test_parse_int_list_reads_tab_separated_triple():
    assert load.parse_int_list("22674\t30233\t45348\n") == [22674, 30233, 45348]


def test_stack_waits_for_memory_only_when_the_function_is_on_the_stack():
    assert load.stack_waits_for_memory(STALLED_STACK)
    assert not load.stack_waits_for_memory(READING_STACK)
    assert not load.stack_waits_for_memory("[<0>] sk_stream_wait_memory_other+0x1/0x2\n")


# ---------------------------------------------------------------- attribution


def test_waiting_with_room_under_largest_sndbuf_is_a_tcp_mem_stall():
    # The guest's stalled sender: 48 KiB queued, SO_SNDBUF shrunk to 9472 from 2.6 MB.
    assert load.classify_slow_send(46, 0, queued_bytes=49125, largest_sndbuf_bytes=2626560) == "tcp_mem"


def test_waiting_with_a_full_own_buffer_is_flow_control():
    # Measured here: a sender blocked by its own 4 MiB buffer had 3.79 MB payload queued.
    assert load.classify_slow_send(50, 0, queued_bytes=3791494, largest_sndbuf_bytes=4194304) == "flow_control"


def test_room_boundary_counts_as_flow_control():
    assert load.classify_slow_send(1, 0, queued_bytes=500, largest_sndbuf_bytes=1000) == "flow_control"
    assert load.classify_slow_send(1, 0, queued_bytes=499, largest_sndbuf_bytes=1000) == "tcp_mem"


def test_unknown_largest_sndbuf_never_yields_tcp_mem():
    assert load.classify_slow_send(3, 0, queued_bytes=0, largest_sndbuf_bytes=0) == "flow_control"


def test_runnable_without_waiting_is_cpu_noise_and_nothing_seen_is_unattributed():
    assert load.classify_slow_send(0, 2, queued_bytes=0, largest_sndbuf_bytes=4096) == "cpu"
    assert load.classify_slow_send(0, 0, queued_bytes=0, largest_sndbuf_bytes=4096) == "unattributed"


@given(
    waiting=st.integers(min_value=0, max_value=100),
    runnable=st.integers(min_value=0, max_value=100),
    queued=st.integers(min_value=0, max_value=1 << 26),
    largest=st.integers(min_value=0, max_value=1 << 26),
)
def test_tcp_mem_verdict_needs_both_the_wait_and_the_room(waiting, runnable, queued, largest):
    cause = load.classify_slow_send(waiting, runnable, queued, largest)
    assert cause in load.CAUSES
    if cause == "tcp_mem":
        assert waiting > 0
        assert queued < largest * load.DEFAULT_ROOM_FRACTION


def test_sndbuf_shrunk_below_half_of_its_largest():
    assert load.sndbuf_was_shrunk(9472, 2626560)
    assert not load.sndbuf_was_shrunk(2626560, 2626560)
    assert not load.sndbuf_was_shrunk(16384, 16384)


def test_counter_deltas_are_none_for_counters_the_kernel_lacks():
    deltas = load.counter_deltas({"A": 1, "B": 5}, {"A": 4, "B": 5}, ("A", "B", "C"))
    assert deltas == {"A": 3, "B": 0, "C": None}


# ---------------------------------------------------------------- sizing


def test_auto_connections_for_the_2048_mb_guest_default():
    # tcp_mem[2] of the guest was 45348 pages: 1.25 x that at 17 pages per 64 KiB is 3335.
    assert load.connections_beyond_tcp_mem(45348, 65536, 1.25) == 3335


@given(
    max_pages=st.integers(min_value=1, max_value=10_000_000),
    tx_bytes=st.integers(min_value=1, max_value=1 << 22),
    overshoot=st.floats(min_value=0.5, max_value=3.0),
)
def test_auto_connections_demand_at_least_the_overshoot(max_pages, tx_bytes, overshoot):
    connections = load.connections_beyond_tcp_mem(max_pages, tx_bytes, overshoot)
    demand = connections * load.pages_per_connection(tx_bytes)
    assert demand >= max_pages * overshoot * (1 - 1e-9) or connections == 1


@given(total=st.integers(min_value=1, max_value=100_000), workers=st.integers(min_value=1, max_value=64))
def test_split_connections_is_even_and_complete(total, workers):
    shares = load.split_connections(total, workers)
    assert sum(shares) == total
    assert min(shares) >= 1
    assert max(shares) - min(shares) <= 1


@given(total=st.integers(min_value=1, max_value=200_000), requested=st.integers(min_value=1, max_value=16))
def test_workers_keep_each_process_under_the_fd_budget(total, requested):
    workers = load.workers_needed(total, requested)
    assert workers >= requested
    assert max(load.split_connections(total, workers)) * 2 + 16 <= load.MAX_FDS_PER_WORKER


def test_summarize_sends_counts_slow_sends_by_cause():
    slow = [
        {"cause": "tcp_mem", "duration_ms": 1030.0},
        {"cause": "cpu", "duration_ms": 150.0},
        {"cause": "tcp_mem", "duration_ms": 1020.0},
    ]
    summary = load.summarize_sends([1.0, 2.0, 150.0, 1020.0, 1030.0], slow)
    assert summary["total"] == 5
    assert summary["slow"] == 3
    assert summary["slow_by_cause"] == {"tcp_mem": 2, "flow_control": 0, "cpu": 1, "unattributed": 0}
    assert summary["max_ms"] == 1030.0
    assert [send["duration_ms"] for send in summary["slowest"]] == [1030.0, 1020.0, 150.0]


def _summary(peak, pressures=0, press_samples=0, drops=0, tcp_mem=(100, 200, 300)):
    return {
        "settings": {"tcp_mem_pages": list(tcp_mem)},
        "sends": {"slow_by_cause": {"tcp_mem": 0, "flow_control": 0, "cpu": 0, "unattributed": 0}},
        "signals": {
            "netstat_delta": {"TCPMemoryPressures": pressures, "TCPRcvQDrop": drops, "PruneCalled": 2},
            "press_seen_samples": press_samples,
            "peak_mem_pages": peak,
            "sndbuf_shrunk_sockets": 0,
        },
    }


def test_verdict_compares_peak_with_tcp_mem_pressure():
    assert load.verdict(_summary(199))["peak_below_pressure"]
    assert not load.verdict(_summary(200))["peak_below_pressure"]
    assert not load.verdict(_summary(10, tcp_mem=()))["peak_below_pressure"]


def test_verdict_sees_pressure_from_counter_or_flag():
    assert load.verdict(_summary(1, pressures=1))["pressure_seen"]
    assert load.verdict(_summary(1, press_samples=3))["pressure_seen"]
    assert not load.verdict(_summary(1))["pressure_seen"]
    assert load.verdict(_summary(1, drops=7))["receive_drops"] == 7
    assert load.verdict(_summary(1))["prunes"] == 2

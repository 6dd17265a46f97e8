# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the link flow tool's pure parts (tests/tools/tcp_link_flow.py): the socket option parsers,
the steady-state goodput window, the link arithmetic and the netem command. Its real runs are in the
throughput scenario (molecule/throughput): it needs sch_netem and root in a test VM."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

TOOL_PATH = Path(__file__).resolve().parents[2] / "tools" / "tcp_link_flow.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("tcp_link_flow", TOOL_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flow = _load_module()


# ---------------------------------------------------------------- parsers


def test_parse_meminfo_names_the_sk_meminfo_fields_in_kernel_order():
    raw = struct.pack("9I", 1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert flow.parse_meminfo(raw) == {
        "rmem_alloc": 1,
        "rcvbuf": 2,
        "wmem_alloc": 3,
        "sndbuf": 4,
        "fwd_alloc": 5,
        "wmem_queued": 6,
        "optmem": 7,
        "backlog": 8,
        "drops": 9,
    }


def test_parse_meminfo_of_an_older_kernel_gives_the_fields_it_filled():
    # SK_MEMINFO_DROPS came after the first eight; the kernel copies what it has.
    assert "drops" not in flow.parse_meminfo(struct.pack("8I", *range(8)))


def _tcp_info(**fields) -> bytes:
    raw = bytearray(flow.TCP_INFO_LEN)
    offsets = {name: (offset, kind) for name, offset, kind in flow.TCP_INFO_FIELDS}
    for name, value in fields.items():
        offset, kind = offsets[name]
        struct.pack_into(kind, raw, offset, value)
    return bytes(raw)


def test_parse_tcp_info_reads_each_field_at_its_uapi_offset():
    # Offsets of struct tcp_info (include/uapi/linux/tcp.h): 8 bytes of u8 fields, 24 u32s from
    # tcpi_rto, then u64 pacing_rate, max_pacing_rate, bytes_acked, bytes_received, ...
    raw = _tcp_info(snd_cwnd=6906, rtt_us=812345, notsent_bytes=131072, rwnd_limited_us=17_160_000, snd_mss=1448)
    fields = flow.parse_tcp_info(raw)
    assert fields["snd_cwnd"] == 6906
    assert fields["rtt_us"] == 812345
    assert fields["notsent_bytes"] == 131072
    assert fields["rwnd_limited_us"] == 17_160_000
    assert fields["snd_mss"] == 1448
    # The u32 layout the threshold probe uses for the same fields.
    assert struct.unpack_from("I", raw, 8 + 4 * 18)[0] == 6906


def test_parse_tcp_info_leaves_out_what_a_shorter_struct_lacks():
    # A kernel before tcpi_rwnd_limited (4.19) copies a shorter struct: those fields are absent, not 0.
    fields = flow.parse_tcp_info(_tcp_info(snd_cwnd=10)[:168])
    assert fields["snd_cwnd"] == 10
    assert "busy_time_us" not in fields and "rwnd_limited_us" not in fields


# ---------------------------------------------------------------- the goodput window


def test_window_goodput_takes_the_last_seconds_before_the_sender_stopped():
    # Slow start, then 12.5 MB/s; the sender stopped at 20 s, the drain after it is left out.
    timeline = [[0.0, 0], [5.0, 1_000_000], [10.0, 50_000_000], [15.0, 112_500_000], [20.0, 175_000_000]]
    timeline += [[21.0, 180_000_000]]
    window = flow.window_goodput_bit_s(timeline, 10.0, until_s=20.0)
    assert window == {"start_s": 10.0, "end_s": 20.0, "bytes": 125_000_000, "bit_s": 100_000_000.0}


def test_window_goodput_is_never_longer_than_asked():
    timeline = [[float(t) / 10, t * 1000] for t in range(0, 201)]
    window = flow.window_goodput_bit_s(timeline, 2.05, until_s=20.0)
    assert window["end_s"] == 20.0
    assert window["start_s"] == pytest.approx(18.0)


@pytest.mark.parametrize("timeline", [[[0.0, 0]], [[0.0, 0], [30.0, 10]]])
def test_window_goodput_refuses_a_timeline_without_two_samples_before_the_stop(timeline):
    with pytest.raises(ValueError, match="two samples"):
        flow.window_goodput_bit_s(timeline, 5.0, until_s=20.0)


@given(
    st.lists(st.integers(min_value=0, max_value=10**7), min_size=2, max_size=50),
    st.floats(min_value=0.5, max_value=100),
)
def test_window_goodput_matches_the_bytes_between_its_samples(increments, window_s):
    # Samples every 0.5 s; a window of at least one sample interval.
    received = 0
    timeline = []
    for index, increment in enumerate(increments):
        received += increment
        timeline.append([index * 0.5, received])
    until = timeline[-1][0]
    window = flow.window_goodput_bit_s(timeline, window_s, until_s=until)
    assert window["end_s"] == until
    assert 0 < window["end_s"] - window["start_s"] <= window_s
    start = dict((t, b) for t, b in timeline)[window["start_s"]]
    assert window["bytes"] == received - start
    assert window["bit_s"] == pytest.approx(window["bytes"] * 8 / (window["end_s"] - window["start_s"]))


# ---------------------------------------------------------------- the link


def test_bdp_of_the_scenario_link():
    assert flow.bdp_bytes(100_000_000, 800) == 10_000_000


def test_payload_share_counts_ethernet_ip_and_tcp_timestamp_headers():
    # 1448 B of payload travel as 1514 B on the wire.
    assert flow.payload_share(1448) == pytest.approx(1448 / 1514)


def test_netem_argv_puts_delay_rate_and_limit_on_the_device():
    assert flow.netem_argv("nsk-lnk-tx", 800.0, 100_000_000, 200000) == [
        "tc",
        "qdisc",
        "replace",
        "dev",
        "nsk-lnk-tx",
        "root",
        "netem",
        "delay",
        "800.0ms",
        "rate",
        "100000000bit",
        "limit",
        "200000",
    ]


def test_peak_skips_samples_without_the_field():
    assert flow.peak([{"a": 3}, {}, {"a": 7}], "a") == 7
    assert flow.peak([{}], "a") is None


@pytest.mark.parametrize("argv", [["--seconds", "10", "--window-s", "10"], ["--window-s", "0"]])
def test_parse_args_refuses_a_window_not_inside_the_flow(argv, capsys):
    with pytest.raises(SystemExit):
        flow.parse_args(argv)
    assert "--window-s must be > 0 and below --seconds" in capsys.readouterr().err

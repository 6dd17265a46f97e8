# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the threshold probe's pure parts (tests/tools/tcp_threshold_probe.py): the tcp_mem
each phase sets around the held load, and the parsers. Its real run is in the thresholds proof scenario (make proof)."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

PROBE_PATH = Path(__file__).resolve().parents[2] / "tools" / "tcp_threshold_probe.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("tcp_threshold_probe", PROBE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _load_module()


@given(st.integers(min_value=8, max_value=10**7))
def test_each_phase_puts_the_held_pages_where_it_says(held):
    below = probe.phase_tcp_mem("below", held)
    between = probe.phase_tcp_mem("between", held)
    enter = probe.phase_tcp_mem("enter", held)
    assert held < below[0] < below[1] < below[2]
    assert between[0] < held < between[1] < between[2]
    assert enter[0] < enter[1] < held < enter[2]  # one charge above [1] enters pressure
    assert probe.phase_tcp_mem("entered", held) == between
    assert probe.phase_tcp_mem("left", held) == below


def test_unknown_phase_is_refused_by_name():
    with pytest.raises(ValueError, match="'sideways'"):
        probe.phase_tcp_mem("sideways", 100)


def test_parse_tcp_info_reads_cwnd_and_rcv_ssthresh():
    u32s = [0] * 24
    u32s[probe.TCPI_SND_CWND] = 1739
    u32s[probe.TCPI_RCV_SSTHRESH] = 5792
    raw = bytes(8) + struct.pack("24I", *u32s)
    assert probe.parse_tcp_info(raw) == {"snd_cwnd": 1739, "rcv_ssthresh": 5792}


def test_sockstat_and_press_parsers():
    assert probe.sockstat_tcp_mem_pages("sockets: used 5\nTCP: inuse 2 orphan 0 tw 0 alloc 3 mem 8546\n") == 8546
    with pytest.raises(ValueError):
        probe.sockstat_tcp_mem_pages("sockets: used 5\n")
    header = "protocol  size sockets  memory press maxhdr"
    assert probe.tcp_press(f"{header}\nUDP 1 0 0 NI 0\nTCP 2 3 4 yes 320\n") is True
    assert probe.tcp_press(f"{header}\nTCP 2 3 4 no 320\n") is False
    assert probe.tcp_press(f"{header}\nTCP 2 3 4 NI 320\n") is None

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pressure scenario's load program (tests/tools/tcp_pressure_load.py) for real: short runs on this
machine's loopback and its /proc counters (no sysctl is touched; memory stays tiny). Its parsers and
arithmetic are unit-tested in tests/unit/tools/test_tcp_pressure_load.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import tcp_pressure_load as load  # tests/tools is on sys.path (conftest.py)

LOAD_PATH = load.__file__


def test_parse_netstat_of_real_proc_has_tcpext_pressure_counter():
    tcpext = load.read_tcpext()
    assert "TCPMemoryPressures" in tcpext
    assert all(isinstance(value, int) for value in tcpext.values())


def run_load(*args: str) -> dict:
    completed = subprocess.run(
        [sys.executable, str(LOAD_PATH), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_small_load_fills_every_connection_without_stalls():
    summary = run_load("--connections", "24", "--workers", "2", "--tx-bytes", "32768", "--hold-s", "0.2")
    assert summary["connections"] == {"opened": 24, "filled": 24, "stalled": 0, "not_attempted": 0}
    assert summary["sends"]["total"] == 24 * 2  # 32 KiB in 16 KiB chunks
    assert summary["sends"]["slow_by_cause"]["tcp_mem"] == 0
    assert summary["workload"]["workers"] == 2
    # Measured while the receivers held everything unread.
    assert summary["signals"]["receive_queue_bytes"] + summary["signals"]["send_queue_bytes"] == 24 * 32768


def test_nodelay_load_sets_tcp_nodelay_and_sends_one_kib_at_a_time():
    listener, clients, servers = load.open_connections(3, nodelay=True)
    try:
        assert [client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for client in clients] == [1, 1, 1]
    finally:
        for sock in [listener, *clients, *servers]:
            sock.close()
    summary = run_load(
        "--connections", "8", "--workers", "1", "--tx-bytes", "16384", "--chunk-bytes", "1024", "--nodelay",
        "--hold-s", "0.2",
    )  # fmt: skip
    assert summary["workload"]["nodelay"] is True
    assert summary["workload"]["sends_per_connection"] == 16
    assert summary["sends"]["total"] == 8 * 16
    assert summary["connections"]["filled"] == 8


def test_full_own_send_buffer_is_attributed_to_flow_control(tmp_path):
    # More than the socket may queue (tcp_wmem[2]) plus what the unread receiver takes: the
    # sender blocks on its own buffer, never on tcp_mem (this machine's tcp_mem is far away).
    wmem_max_bytes = load.read_sysctl_list("net.ipv4.tcp_wmem")[2]
    tx_bytes = 2 * wmem_max_bytes + (1 << 20)
    summary = run_load(
        "--connections", "2", "--workers", "1", "--tx-bytes", str(tx_bytes), "--chunk-bytes", str(1 << 20),
        "--send-timeout-s", "0.3", "--max-stalls", "1",
        "--hold-s", "0.5", "--hold-blocked", "--hold-marker", str(tmp_path / "holding.json"),
    )  # fmt: skip
    assert summary["connections"]["stalled"] == 1
    assert summary["connections"]["not_attempted"] == 1
    causes = summary["sends"]["slow_by_cause"]
    assert causes["tcp_mem"] == 0
    # --hold-blocked: the stalled worker kept writing, and stayed blocked, for the whole hold.
    (held,) = summary["hold_blocked_sends"]
    assert held["duration_ms"] >= 450
    assert not (tmp_path / "holding.json").exists()  # the marker exists only during the hold
    assert summary["workload"]["worker_pids"] and len(summary["workload"]["worker_pids"]) == 1
    if summary["stack_sampling"]["readable"]:
        assert causes["flow_control"] >= 1
        assert held["samples_waiting_memory"] > 0
    else:  # not root: the stack cannot be read, so nothing may be called flow control or tcp_mem
        assert os.geteuid() != 0
        assert causes["flow_control"] == 0


def test_hold_marker_names_the_workers_and_the_observer_ends_the_hold(tmp_path):
    marker = tmp_path / "holding.json"
    release = tmp_path / "release"
    process = subprocess.Popen(
        [sys.executable, str(LOAD_PATH), "--connections", "4", "--workers", "2", "--tx-bytes", "4096",
         "--hold-s", "60", "--hold-marker", str(marker), "--hold-until", str(release)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        give_up = time.monotonic() + 30
        while not marker.exists() and process.poll() is None and time.monotonic() < give_up:
            time.sleep(0.05)
        seen = json.loads(marker.read_text(encoding="utf-8"))
        release.touch()
        stdout, _stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    summary = json.loads(stdout)
    assert seen["pid"] == process.pid
    assert seen["worker_pids"] == summary["workload"]["worker_pids"]
    assert not marker.exists()
    assert summary["phases"]["held_s"] < 20  # ended by the release file, not by --hold-s 60

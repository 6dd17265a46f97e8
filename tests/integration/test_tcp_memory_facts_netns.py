# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""tcp_memory_facts on the real kernel, run by `ansible` ad hoc as Ansible would run it.

A network namespace created per test holds a known number of loopback connections (several
processes), some with data left unread; the facts must agree with `ss` and with sockstat, and
say what a container sees (tcp_mem absent, net.core.*mem* read-only).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules.module_args import ExitJson, run_module
from conftest import BLOCKED_WRITER, _delete_netns, ns_value, real_kernel_ready, ss_count

MODULE = "netstack.tcp_tuning.tcp_memory_facts"
CONNECTIONS = 3000
UNREAD_EVERY = 10
UNREAD_BYTES = 65536
# ss state names for the facts' names (kernel numbering, include/net/tcp_states.h)
SS_STATES = {
    "ESTABLISHED": "established",
    "SYN_SENT": "syn-sent",
    "SYN_RECV": "syn-recv",
    "FIN_WAIT1": "fin-wait-1",
    "FIN_WAIT2": "fin-wait-2",
    "TIME_WAIT": "time-wait",
    "CLOSE": "closed",
    "CLOSE_WAIT": "close-wait",
    "LAST_ACK": "last-ack",
    "LISTEN": "listening",
    "CLOSING": "closing",
}


@pytest.fixture
def loaded_netns(netns, held_connections):
    """3000 connections over 3 processes; the server end of every 10th holds 64 KiB unread."""
    holder = held_connections(
        "--connections",
        str(CONNECTIONS),
        "--workers",
        "3",
        "--unread-every",
        str(UNREAD_EVERY),
        "--unread-bytes",
        str(UNREAD_BYTES),
        "--hold-seconds",
        "600",
    )
    assert holder.connections == CONNECTIONS
    assert holder.unread == CONNECTIONS // UNREAD_EVERY
    return netns, holder


def test_states_and_top_sockets_match_ss_inside_a_namespace(loaded_netns, run_ansible_module, ss_state_count):
    netns, holder = loaded_netns
    result = run_ansible_module(MODULE, {"states": True, "top_sockets": 5}, netns_name=netns)
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    facts = result["ansible_facts"]["tcp_memory"]

    connections = facts["connections"]
    assert connections["source"] == "netlink"
    assert connections["by_state"]["ESTABLISHED"] == 2 * CONNECTIONS
    assert connections["by_state"]["LISTEN"] == len(holder.ports)
    for name, count in connections["by_state"].items():
        assert count == ss_state_count(netns, SS_STATES[name]), name
    assert connections["total"] == ss_state_count(netns, "all")

    # sockstat inuse counts hashed sockets of this namespace: established ends plus listeners.
    sockstat = facts["sockstat"]
    assert sockstat["tcp"]["inuse"] == connections["total"] - connections["by_state"].get("TIME_WAIT", 0)
    assert facts["snmp"]["tcp_curr_estab"] == 2 * CONNECTIONS

    # Sockets with data queued unread hold receive memory; the biggest are those.
    assert connections["rmem_alloc_bytes_total"] >= holder.unread * UNREAD_BYTES
    assert connections["rx_queue_bytes_total"] == holder.unread * UNREAD_BYTES
    top = facts["top_sockets"]
    assert len(top) == 5
    for entry in top:
        assert entry["state"] == "ESTABLISHED"
        assert entry["rmem_alloc_bytes"] >= UNREAD_BYTES, entry
        assert entry["rx_queue_bytes"] == UNREAD_BYTES
        assert int(entry["local"].rsplit(":", 1)[1]) in holder.ports  # the server end of a connection

    # What a container sees on 6.x: global keys absent or read-only, host-wide sockstat fields.
    assert facts["namespace"]["initial"] is False, facts["namespace"]
    sysctl = facts["sysctl"]
    for key in ("net.ipv4.tcp_mem", "net.ipv4.udp_mem"):
        assert sysctl[key]["present"] is False and sysctl[key]["value"] is None, key
    for key in ("net.core.rmem_max", "net.core.wmem_max", "net.core.rmem_default", "net.core.wmem_default"):
        assert sysctl[key]["present"] is True and sysctl[key]["writable"] is False, key
        assert isinstance(sysctl[key]["value"], int)
    assert sysctl["net.ipv4.tcp_rmem"]["writable"] is True and sysctl["net.ipv4.tcp_rmem"]["scope"] == "netns"
    assert sockstat["host_wide_fields"] == ["alloc", "orphan", "mem"]
    assert facts["status"]["level"] == "unknown"
    assert facts["status"]["used_pages"] > 0


def test_proc_fallback_counts_the_same(loaded_netns, run_ansible_module):
    netns, holder = loaded_netns
    by_source = {}
    for source in ("netlink", "proc"):
        result = run_ansible_module(
            MODULE, {"states": True, "top_sockets": 3, "connections_source": source}, netns_name=netns
        )
        by_source[source] = result["ansible_facts"]["tcp_memory"]
    netlink, proc = by_source["netlink"]["connections"], by_source["proc"]["connections"]
    assert (netlink["source"], proc["source"]) == ("netlink", "proc")
    assert proc["by_state"] == netlink["by_state"]
    assert proc["total"] == netlink["total"]
    assert proc["rx_queue_bytes_total"] == netlink["rx_queue_bytes_total"] == holder.unread * UNREAD_BYTES
    assert proc["rmem_alloc_bytes_total"] is None
    assert [s["rx_queue_bytes"] for s in by_source["proc"]["top_sockets"]] == [UNREAD_BYTES] * 3


def test_default_call_does_not_enumerate_sockets(loaded_netns, run_ansible_module):
    netns, _holder = loaded_netns
    facts = run_ansible_module(MODULE, {}, netns_name=netns)["ansible_facts"]["tcp_memory"]
    assert facts["connections"] is None and facts["top_sockets"] is None
    assert facts["sockstat"]["tcp"]["inuse"] == 2 * CONNECTIONS + 3


def test_boot_defaults_match_this_untuned_host(run_ansible_module):
    """Nobody tuned this machine: the estimate must land on what its kernel computed at boot."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists("/proc/sys/net/ipv4/tcp_mem"):
        pytest.skip("not in the initial network namespace")
    facts = run_ansible_module(MODULE, {})["ansible_facts"]["tcp_memory"]
    assert facts["namespace"]["initial"] is True
    for boot, live in (
        ("tcp_mem_pages", "net.ipv4.tcp_mem"),
        ("tcp_rmem_bytes", "net.ipv4.tcp_rmem"),
        ("tcp_wmem_bytes", "net.ipv4.tcp_wmem"),
    ):
        expected = facts["sysctl"][live]["value"]
        assert facts["boot_defaults"][boot] == pytest.approx(expected, rel=0.01), (boot, facts["memory"])


def test_per_mss_is_measured_on_loopback_and_plausible(netns, run_ansible_module):
    """tcp_sndbuf_expand() on this kernel: per_mss = roundup_pow_of_two(1460 + MAX_TCP_HEADER + skb_shared_info)
    + SKB_DATA_ALIGN(sizeof(struct sk_buff)), and a fresh connection starts at factor x 10 x per_mss."""
    facts = run_ansible_module(MODULE, {}, netns_name=netns)["ansible_facts"]["tcp_memory"]
    # A default call does not calibrate (the calibration tests: test_tcp_memory_calibrate_netns.py).
    assert facts["calibration"] is None
    socket_memory = facts["socket_memory"]
    per_mss = socket_memory["per_mss_bytes"]
    assert socket_memory["probe_mss_bytes"] == 1460
    assert per_mss is not None, socket_memory
    power = 1 << (per_mss.bit_length() - 1)
    assert power in (2048, 4096) and 192 <= per_mss - power <= 320, socket_memory  # sk_buff: 192..320 B aligned
    factor = 3 if ns_value(netns, "net.ipv4.tcp_congestion_control") == "bbr" else 2
    # A fresh namespace: TCP_INIT_CWND (10) and reordering 3 (+1) segments, far below tcp_wmem[2].
    assert socket_memory["initial_sndbuf_bytes"] == factor * 10 * per_mss
    # net.core.mem_pcpu_rsv is in net_core_table, shown in the initial namespace only.
    assert socket_memory["mem_pcpu_rsv_pages"] is None
    if not os.path.exists("/proc/sys/net/core/bypass_prot_mem"):  # per namespace where the kernel has it
        assert socket_memory["bypass_prot_mem"] is None
    else:
        assert socket_memory["bypass_prot_mem"] is False  # a fresh namespace starts at 0
    # Nothing left behind: the probe's client closed with a reset, its listener went with it.
    assert ss_count(netns, "all") == 0


def test_per_mss_is_null_without_loopback(run_ansible_module):
    """A namespace whose lo is down: no address to connect to, per_mss is null and a note says why."""
    reason = real_kernel_ready()
    if reason:
        pytest.skip(reason)
    name = f"ns-nolo-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        facts = run_ansible_module(MODULE, {}, netns_name=name)["ansible_facts"]["tcp_memory"]
    finally:
        _delete_netns(name)
    assert facts["socket_memory"]["per_mss_bytes"] is None
    assert facts["socket_memory"]["initial_sndbuf_bytes"] is None
    assert any("no loopback connection" in note for note in facts["status"]["notes"]), facts["status"]["notes"]


def test_blocked_writer_is_seen_in_sk_stream_wait_memory(netns, run_ansible_module):
    writer = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", BLOCKED_WRITER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        time.sleep(1)  # let the buffers fill
        result = run_ansible_module(
            MODULE,
            {"blocked_writers": True, "blocked_writers_samples": 3, "blocked_writers_interval_ms": 50},
            netns_name=netns,
        )
        blocked = result["ansible_facts"]["tcp_memory"]["blocked_writers"]
        assert blocked["samples"] == 3
        assert blocked["threads"] is not None, blocked["note"]
        ours = [t for t in blocked["threads"] if t["pid"] == writer.pid]
        assert ours, blocked
        assert ours[0]["seen_in_samples"] == 3
        assert ours[0]["comm"].startswith("python")
    finally:
        writer.kill()
        writer.wait(timeout=10)


def test_auto_falls_back_to_proc_when_netlink_is_refused(monkeypatch):
    """connections_source=auto reads sockets by netlink only from the live /proc: this machine's, read-only
    (main() in this process, so that the refusal can be arranged: nothing here refuses inet_diag for real)."""
    from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import diag as tcp_memory_diag
    from ansible_collections.netstack.tcp_tuning.plugins.modules import tcp_memory_facts

    def refuse(**_):
        raise tcp_memory_diag.DiagUnavailable("inet_diag dump refused: EPERM")

    monkeypatch.setattr(tcp_memory_diag, "dump_netlink", refuse)
    kind, result = run_module(tcp_memory_facts.main, {"states": True})
    assert kind is ExitJson, result
    connections = result["ansible_facts"]["tcp_memory"]["connections"]
    assert connections["source"] == "proc"
    assert connections["fallback_reason"] == "inet_diag dump refused: EPERM"

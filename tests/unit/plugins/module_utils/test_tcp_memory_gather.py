# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole facts dict, gathered from fixture trees of real-looking hosts."""

from __future__ import annotations

import os
import shutil

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import proc
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.gather import ELAPSED_STEPS, gather
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import ProcParseError
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.proc_trees.trees import BROKEN, TREES, materialize

TOP_LEVEL = {
    "schema_version",
    "kernel",
    "page_size_bytes",
    "cpu_count",
    "memory",
    "boot_defaults",
    "namespace",
    "sysctl",
    "sockstat",
    "snmp",
    "pressure",
    "status",
    "connections",
    "top_sockets",
    "blocked_writers",
    "tcp_congestion_control",
    "tcp_max_orphans",
    "calibration",
    "socket_memory",
    "elapsed_ms",
}


# What each fixture tree's /proc/sys holds, written from its files (tests/unit/fixtures/proc_trees/<tree>/proc/sys),
# and the scope the kernel gives each key: tcp_{r,w}mem, tcp_moderate_rcvbuf and tcp_adv_win_scale per network
# namespace from 4.15 (net/ipv4/sysctl_net_ipv4.c ipv4_net_table), optmem_max from 6.8 (net/core/sysctl_net_core.c
# netns_core_table), the rest global (tcp_mem and udp_mem in ipv4_table: absent outside the initial namespace;
# net.core.{r,w}mem_{max,default} in net_core_table: read-only there). Row: present, writable, scope, unit, value.
PAGES, BYTES = "pages", "bytes"
ABSENT = (False, False, "global", PAGES, None)


def rw(scope, unit, value):
    return (True, True, scope, unit, value)


def read_only(scope, unit, value):
    return (True, False, scope, unit, value)


NORMAL_HOST_SYSCTL = {  # 6.1, initial namespace
    "net.ipv4.tcp_mem": rw("global", PAGES, [23520, 31362, 47040]),
    "net.ipv4.tcp_rmem": rw("netns", BYTES, [4096, 131072, 6291456]),
    "net.ipv4.tcp_wmem": rw("netns", BYTES, [4096, 16384, 4194304]),
    "net.ipv4.udp_mem": rw("global", PAGES, [47043, 62725, 94086]),
    "net.ipv4.tcp_moderate_rcvbuf": rw("netns", "boolean", 1),
    "net.ipv4.tcp_adv_win_scale": rw("netns", "count", 1),
    "net.ipv4.tcp_notsent_lowat": rw("netns", BYTES, 4294967295),  # UINT_MAX: an unsigned int
    "net.core.rmem_max": rw("global", BYTES, 212992),
    "net.core.wmem_max": rw("global", BYTES, 212992),
    "net.core.rmem_default": rw("global", BYTES, 212992),
    "net.core.wmem_default": rw("global", BYTES, 212992),
    "net.core.optmem_max": rw("global", BYTES, 131072),
}
EXPECTED_SYSCTL = {
    "normal_host": NORMAL_HOST_SYSCTL,
    "pressure_host": {  # 6.12, initial namespace, tcp_mem lowered
        **NORMAL_HOST_SYSCTL,
        "net.ipv4.tcp_mem": rw("global", PAGES, [1000, 1500, 2000]),
        "net.ipv4.udp_mem": rw("global", PAGES, [94000, 125000, 188000]),
        "net.core.optmem_max": rw("netns", BYTES, 20480),
    },
    "container_netns": {  # 6.18 inside `ip netns exec`
        **NORMAL_HOST_SYSCTL,
        "net.ipv4.tcp_mem": ABSENT,
        "net.ipv4.tcp_rmem": rw("netns", BYTES, [4096, 131072, 33554432]),
        "net.ipv4.udp_mem": ABSENT,
        "net.core.rmem_max": read_only("global", BYTES, 4194304),
        "net.core.wmem_max": read_only("global", BYTES, 4194304),
        "net.core.rmem_default": read_only("global", BYTES, 212992),
        "net.core.wmem_default": read_only("global", BYTES, 212992),
        "net.core.optmem_max": rw("netns", BYTES, 131072),
    },
    "old_kernel": {  # 4.9: before any of these keys was per namespace
        "net.ipv4.tcp_mem": rw("global", PAGES, [11604, 15472, 23208]),
        "net.ipv4.tcp_rmem": rw("global", BYTES, [4096, 87380, 6291456]),
        "net.ipv4.tcp_wmem": rw("global", BYTES, [4096, 16384, 4194304]),
        "net.ipv4.udp_mem": rw("global", PAGES, [23208, 30945, 46416]),
        "net.ipv4.tcp_moderate_rcvbuf": rw("global", "boolean", 1),
        "net.ipv4.tcp_adv_win_scale": rw("global", "count", 1),
        "net.ipv4.tcp_notsent_lowat": rw("global", BYTES, 4294967295),
        "net.core.rmem_max": rw("global", BYTES, 212992),
        "net.core.wmem_max": rw("global", BYTES, 212992),
        "net.core.rmem_default": rw("global", BYTES, 212992),
        "net.core.wmem_default": rw("global", BYTES, 212992),
        "net.core.optmem_max": rw("global", BYTES, 20480),
    },
}
# sockstat's TCP mem against tcp_mem of each tree (see its tree.json).
EXPECTED_LEVEL = {"normal_host": "ok", "pressure_host": "pressure", "container_netns": "unknown", "old_kernel": "ok"}


def facts_of(tmp_path, name, **options):
    proc_root, sys_root = materialize(name, str(tmp_path))
    return gather(proc_root=proc_root, sys_root=sys_root, **options)


@pytest.mark.parametrize("name", TREES)
def test_every_tree_gives_the_whole_contract(tmp_path, name):
    facts = facts_of(tmp_path, name)
    assert set(facts) == TOP_LEVEL
    assert facts["schema_version"] == 1
    for entry in facts["sysctl"].values():
        assert set(entry) == {"present", "writable", "scope", "unit", "value", "raw"}
    rows = {
        key: (entry["present"], entry["writable"], entry["scope"], entry["unit"], entry["value"])
        for key, entry in facts["sysctl"].items()
    }
    assert rows == EXPECTED_SYSCTL[name]
    assert tuple(facts["pressure"]["counters"]) == proc.TCPEXT_PRESSURE_COUNTERS
    assert facts["status"]["level"] == EXPECTED_LEVEL[name]
    assert facts["connections"] is None and facts["top_sockets"] is None and facts["blocked_writers"] is None
    # The default call times its own steps only: the optional ones did not run.
    elapsed = facts["elapsed_ms"]
    assert tuple(elapsed) == ELAPSED_STEPS
    assert elapsed["base"] >= 0 and elapsed["socket_memory"] >= 0
    assert [elapsed[step] for step in ("connections", "blocked_writers", "calibration", "cgroups")] == [None] * 4


def test_normal_host(tmp_path):
    facts = facts_of(tmp_path, "normal_host")
    assert facts["kernel"] == {"release": "6.1.0-31-cloud-amd64", "version": [6, 1, 0]}
    assert facts["cpu_count"] == 2
    assert facts["memory"] == {
        "mem_total_bytes": 2022992 * 1024,
        "mem_available_bytes": 1757812 * 1024,
        "nr_free_buffer_pages_estimate": 501806,
        "nr_free_buffer_pages_source": "zoneinfo",
    }
    # Nobody tuned this host: what the kernel computed at boot is what it reports now.
    assert facts["boot_defaults"]["tcp_mem_pages"] == facts["sysctl"]["net.ipv4.tcp_mem"]["value"]
    assert facts["boot_defaults"]["tcp_rmem_bytes"] == facts["sysctl"]["net.ipv4.tcp_rmem"]["value"]
    assert facts["boot_defaults"]["tcp_wmem_bytes"] == facts["sysctl"]["net.ipv4.tcp_wmem"]["value"]
    assert facts["namespace"]["initial"] is True
    assert facts["namespace"]["method"].startswith("compared /proc/self/ns/net")
    tcp_mem = facts["sysctl"]["net.ipv4.tcp_mem"]
    assert tcp_mem == {
        "present": True,
        "writable": True,
        "scope": "global",
        "unit": "pages",
        "value": [23520, 31362, 47040],
        "raw": "23520\t31362\t47040",
    }
    assert facts["sysctl"]["net.ipv4.tcp_rmem"]["scope"] == "netns"
    assert facts["sysctl"]["net.core.optmem_max"]["scope"] == "global"  # per netns only from 6.8
    assert facts["sockstat"] == {
        "sockets_used": 150,
        "tcp": {
            "inuse": 12,
            "orphan": 0,
            "tw": 2,
            "alloc": 14,
            "mem_units": 3,
            "mem_unit_bytes": 4096,
            "mem_bytes": 12288,
        },
        "tcp6": {"inuse": 1},
        "udp": {"inuse": 2, "mem_units": 1, "mem_unit_bytes": 4096, "mem_bytes": 4096},
        "udp6": {"inuse": 0},
        "host_wide_fields": [],
    }
    assert facts["snmp"] == {"tcp_curr_estab": 10, "tcp_active_opens": 100, "tcp_passive_opens": 90}
    assert facts["pressure"]["tcp_under_pressure_now"] is False
    status = facts["status"]
    assert (status["level"], status["used_pages"], status["buffer_bytes_per_connection"]) == ("ok", 3, 1024.0)
    assert status["fraction_of_pressure"] == round(3 / 31362, 6)
    assert status["notes"] == []


def test_host_under_pressure(tmp_path):
    facts = facts_of(tmp_path, "pressure_host")
    status = facts["status"]
    assert status["level"] == "pressure"
    assert (status["fraction_of_min"], status["fraction_of_pressure"], status["fraction_of_max"]) == (1.8, 1.2, 0.9)
    assert status["buffer_bytes_per_connection"] == round(1800 * 4096 / 5003, 1)
    assert facts["pressure"] == {
        "counters": {
            "TCPMemoryPressures": 12,
            "TCPMemoryPressuresChrono": 53211,
            "TCPAbortOnMemory": 3,
            "PruneCalled": 4242,
            "RcvPruned": 17,
            "OfoPruned": 5,
            "TCPRcvCollapsed": 9000,
            "TCPRcvQDrop": 3456,
        },
        "tcp_under_pressure_now": True,
    }
    assert facts["cpu_count"] == 4


def test_container_network_namespace(tmp_path):
    facts = facts_of(tmp_path, "container_netns")
    namespace = facts["namespace"]
    assert namespace["initial"] is False
    assert "/proc/1/ns/net not readable" in namespace["method"] and "net:[4026532177]" in namespace["method"]
    sysctl = facts["sysctl"]
    for key in ("net.ipv4.tcp_mem", "net.ipv4.udp_mem"):
        assert sysctl[key] == {
            "present": False,
            "writable": False,
            "scope": "global",
            "unit": "pages",
            "value": None,
            "raw": None,
        }
    for key in ("net.core.rmem_max", "net.core.wmem_max", "net.core.rmem_default", "net.core.wmem_default"):
        assert sysctl[key]["present"] is True and sysctl[key]["writable"] is False, key
        assert sysctl[key]["scope"] == "global"
    assert sysctl["net.core.optmem_max"]["scope"] == "netns"
    assert sysctl["net.core.optmem_max"]["writable"] is True
    assert sysctl["net.ipv4.tcp_rmem"] == {
        "present": True,
        "writable": True,
        "scope": "netns",
        "unit": "bytes",
        "value": [4096, 131072, 33554432],
        "raw": "4096\t131072\t33554432",
    }
    assert facts["sockstat"]["host_wide_fields"] == ["alloc", "orphan", "mem"]
    status = facts["status"]
    assert status["level"] == "unknown" and status["fraction_of_max"] is None
    assert status["used_pages"] == 5180
    assert status["buffer_bytes_per_connection"] == round(5180 * 4096 / 6016, 1)  # host-wide mem / host-wide alloc
    assert any("tcp_mem is not visible" in note for note in status["notes"])
    assert any("host-wide inside a network namespace" in note for note in status["notes"])
    assert facts["boot_defaults"]["tcp_rmem_bytes"][2] == 32 * 1024 * 1024


def test_read_only_proc_sys_mount_makes_every_key_unwritable(tmp_path):
    proc_root, sys_root = materialize("container_netns", str(tmp_path))
    with open(os.path.join(proc_root, "self/mountinfo"), "a") as handle:
        handle.write("40 22 0:21 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw\n")
    facts = gather(proc_root=proc_root, sys_root=sys_root)
    assert [key for key, entry in facts["sysctl"].items() if entry["writable"]] == []
    assert facts["sysctl"]["net.ipv4.tcp_rmem"]["present"] is True


def test_old_kernel_without_newer_counters(tmp_path):
    facts = facts_of(tmp_path, "old_kernel")
    assert facts["pressure"]["counters"]["TCPMemoryPressuresChrono"] is None
    assert facts["pressure"]["counters"]["TCPRcvQDrop"] is None
    assert facts["pressure"]["counters"]["TCPMemoryPressures"] == 0
    assert facts["sockstat"]["tcp6"] is None and facts["sockstat"]["udp6"] is None
    assert facts["memory"]["mem_available_bytes"] is None
    assert facts["memory"]["nr_free_buffer_pages_source"] == "meminfo"
    assert facts["memory"]["nr_free_buffer_pages_estimate"] == 1015000 // 4 - (33 + 2000)
    assert facts["boot_defaults"]["tcp_rmem_bytes"][1] == 87380
    assert {key: entry["scope"] for key, entry in facts["sysctl"].items() if entry["scope"] == "netns"} == {}
    assert facts["cpu_count"] == 1
    assert not any("tcp_adv_win_scale" in note for note in facts["status"]["notes"])


def test_optional_files_missing_are_null(tmp_path):
    proc_root, sys_root = materialize("normal_host", str(tmp_path))
    for relative in (
        "net/netstat",
        "net/protocols",
        "net/sockstat6",
        "zoneinfo",
        "sys/kernel/osrelease",
        "self/mountinfo",
    ):
        os.remove(os.path.join(proc_root, relative))
    shutil.rmtree(os.path.join(proc_root, "self/ns"))
    os.remove(os.path.join(sys_root, "devices/system/cpu/online"))
    facts = gather(proc_root=proc_root, sys_root=sys_root)
    assert set(facts["pressure"]["counters"].values()) == {None}
    assert facts["pressure"]["tcp_under_pressure_now"] is None
    assert facts["kernel"]["release"] == os.uname().release
    assert facts["cpu_count"] == os.sysconf("SC_NPROCESSORS_ONLN")
    assert facts["memory"]["nr_free_buffer_pages_source"] == "meminfo"
    assert facts["namespace"] == {
        "initial": True,
        "method": "/proc/self/ns/net not readable; net.ipv4.tcp_mem is present under /proc/sys "
        "(it exists only in the initial namespace)",
    }


@pytest.mark.parametrize("relative", ["meminfo", "net/sockstat", "net/snmp"])
def test_required_file_missing_is_an_error_naming_it(tmp_path, relative):
    proc_root, sys_root = materialize("normal_host", str(tmp_path))
    os.remove(os.path.join(proc_root, relative))
    with pytest.raises(ProcParseError) as caught:
        gather(proc_root=proc_root, sys_root=sys_root)
    assert str(caught.value) == f"{os.path.join(proc_root, relative)}: file is missing"


BROKEN_PROBLEMS = {
    "cpu_online_garbage": ("sys/devices/system/cpu/online", "range '0-'"),
    "meminfo_binary": ("proc/meminfo", "not text: byte 0xff at offset 32"),
    "meminfo_no_total": ("proc/meminfo", "no MemTotal line"),
    "meminfo_not_number": ("proc/meminfo", "is not an integer"),
    "mountinfo_garbage": ("proc/self/mountinfo", "is not a mountinfo line"),
    "netstat_short_values": ("proc/net/netstat", "TcpExt: 3 names but 2 values (truncated?)"),
    "protocols_garbage": ("proc/net/protocols", "no 'protocol ... press' header"),
    "rmem_max_garbage": ("proc/sys/net/core/rmem_max", "'lots' is not an integer"),
    "snmp_truncated": ("proc/net/snmp", "odd number of lines"),
    "sockstat_empty": ("proc/net/sockstat", "file is empty"),
    "sockstat_garbage": ("proc/net/sockstat", "field inuse: 'twelve' is not an integer"),
    "sockstat_truncated": ("proc/net/sockstat", "is not 'PROTO: name N name N ...'"),
    "tcp_mem_garbage": ("proc/sys/net/ipv4/tcp_mem", "expected 3 integer(s)"),
    "mem_pcpu_rsv_garbage": ("proc/sys/net/core/mem_pcpu_rsv", "mem_pcpu_rsv value 0 is outside 1..2147483647"),
    "tcp_table_garbage": ("proc/net/tcp", "line 2 is not a socket line"),
    "tcp_table_truncated": ("proc/net/tcp", "line 2 is truncated"),
    "zoneinfo_bad_number": ("proc/zoneinfo", "line 2: '6x2' is not an integer"),
    "zoneinfo_garbage": ("proc/zoneinfo", "comes before any 'Node N, zone NAME' line"),
}


def test_every_broken_tree_has_an_expected_problem():
    assert set(BROKEN_PROBLEMS) == set(BROKEN)


@pytest.mark.parametrize("case", BROKEN)
def test_broken_files_fail_naming_the_file(tmp_path, case):
    relative, problem = BROKEN_PROBLEMS[case]
    proc_root, sys_root = materialize("broken/" + case, str(tmp_path))
    with pytest.raises(ProcParseError) as caught:
        # states=True so the /proc/net/tcp cases are read too (a fixture root never uses netlink).
        gather(proc_root=proc_root, sys_root=sys_root, states=True)
    root = os.path.dirname(proc_root)
    assert caught.value.name == os.path.join(root, relative)
    assert str(caught.value).startswith(os.path.join(root, relative) + ": ")
    assert problem in caught.value.problem


def test_states_from_a_fixture_tree_read_proc_tables(tmp_path):
    facts = facts_of(tmp_path, "normal_host", states=True, top_sockets=1)
    connections = facts["connections"]
    assert connections["source"] == "proc"
    assert connections["fallback_reason"] == "proc_root is not the live /proc"
    assert connections["by_state"] == {"LISTEN": 2, "ESTABLISHED": 2, "TIME_WAIT": 1}
    assert [s["local"] for s in facts["top_sockets"]] == ["127.0.0.1:5000"]


def test_top_sockets_alone_reports_connections_too(tmp_path):
    facts = facts_of(tmp_path, "normal_host", top_sockets=2)
    assert facts["connections"]["total"] == 5
    assert len(facts["top_sockets"]) == 2


def test_no_socket_source_is_a_note_not_an_error(tmp_path):
    proc_root, sys_root = materialize("old_kernel", str(tmp_path))
    facts = gather(proc_root=proc_root, sys_root=sys_root, states=True)
    assert facts["connections"] is None
    assert any("no socket source" in note for note in facts["status"]["notes"])


def test_tcp_max_orphans_is_read_on_the_host_and_absent_in_a_container(tmp_path):
    # a global key (ipv4_table), not shown in a non-initial network namespace
    assert facts_of(tmp_path, "normal_host")["tcp_max_orphans"] == 65536
    assert facts_of(tmp_path, "container_netns")["tcp_max_orphans"] is None


def test_congestion_control_is_read_and_checked(tmp_path):
    # tcp_sndbuf_expand asks for 3x the per-MSS truesize under BBR, 2x otherwise
    assert facts_of(tmp_path, "normal_host")["tcp_congestion_control"] == "cubic"
    assert proc.parse_congestion_control("bbr\n", "x") == "bbr"
    with pytest.raises(ProcParseError, match="not a congestion control name"):
        proc.parse_congestion_control("cubic reno\n", "x")


# --- socket memory: the per-CPU reserve and the prot-mem bypass, per kernel --------------------------------
# net.core.mem_pcpu_rsv sits in net_core_table (initial namespace only) on kernels where the reserve became a
# sysctl; net.core.bypass_prot_mem in netns_core_table (every namespace) on newer ones.
EXPECTED_SOCKET_SYSCTLS = {
    "normal_host": (None, None),  # 6.1: the fixed SK_MEMORY_PCPU_RESERVE, no sysctl
    "pressure_host": (256, None),  # 6.12, initial namespace
    "container_netns": (None, None),  # 6.18 in a namespace: net_core_table is not shown there
    "old_kernel": (None, None),  # 4.9: no per-CPU reserve at all
}


@pytest.mark.parametrize("name", TREES)
def test_socket_memory_sysctls_per_kernel(tmp_path, name):
    facts = facts_of(tmp_path, name)
    socket_memory = facts["socket_memory"]
    assert (socket_memory["mem_pcpu_rsv_pages"], socket_memory["bypass_prot_mem"]) == EXPECTED_SOCKET_SYSCTLS[name]
    # A fixture tree is not the live kernel: no loopback probe ran.
    assert socket_memory["per_mss_bytes"] is None and socket_memory["probe_mss_bytes"] is None


@pytest.mark.parametrize(("content", "expected"), [("0\n", False), ("1\n", True)])
def test_bypass_prot_mem_where_the_kernel_has_it(tmp_path, content, expected):
    proc_root, sys_root = materialize("container_netns", str(tmp_path))
    with open(os.path.join(proc_root, "sys/kernel/osrelease"), "w") as handle:
        handle.write("6.19.0-1-amd64\n")
    with open(os.path.join(proc_root, proc.BYPASS_PROT_MEM_PATH), "w") as handle:
        handle.write(content)
    assert gather(proc_root=proc_root, sys_root=sys_root)["socket_memory"]["bypass_prot_mem"] is expected


def test_bypass_prot_mem_garbage_names_the_file(tmp_path):
    proc_root, sys_root = materialize("container_netns", str(tmp_path))
    path = os.path.join(proc_root, proc.BYPASS_PROT_MEM_PATH)
    with open(path, "w") as handle:
        handle.write("2\n")
    with pytest.raises(ProcParseError, match="bypass_prot_mem value 2 is not 0 or 1") as caught:
        gather(proc_root=proc_root, sys_root=sys_root)
    assert caught.value.name == path


# --- per_mss from the probe's initial send buffer ------------------------------------------------------------


def probe_result(sndbuf, snd_cwnd=10, reordering=3, congestion_control="cubic"):
    result = {"mss_bytes": 1460, "sndbuf_bytes": sndbuf, "snd_cwnd": snd_cwnd, "reordering": reordering}
    return lambda: dict(result, congestion_control=congestion_control, address="127.0.0.1")


@pytest.mark.parametrize(
    ("probe", "per_mss"),
    [
        (probe_result(87040), 4352),  # Debian generic: 2 x 10 x 4352
        (probe_result(46080), 2304),  # Debian cloud: 2 x 10 x 2304
        (probe_result(69120, congestion_control="bbr"), 2304),  # bbr asks 3x
        (probe_result(2 * 20 * 4352, snd_cwnd=20), 4352),  # a route's initcwnd 20
        (probe_result(2 * 10 * 4352, reordering=300), None),  # reordering + 1 = 301 segments: not a multiple
        (probe_result(2 * 301 * 2304, reordering=300), 2304),
    ],
)
def test_per_mss_follows_tcp_sndbuf_expand(tmp_path, probe, per_mss):
    facts = facts_of(tmp_path, "normal_host", probe=probe)
    assert facts["socket_memory"]["per_mss_bytes"] == per_mss
    assert facts["socket_memory"]["probe_mss_bytes"] == 1460


@pytest.mark.parametrize(
    ("sndbuf", "why"),
    [
        (4194304, "reached tcp_wmem[2] 4194304: capped"),
        (16384, "not above tcp_wmem[1] 16384"),
    ],
)
def test_per_mss_is_null_when_the_buffer_does_not_show_it(tmp_path, sndbuf, why):
    facts = facts_of(tmp_path, "normal_host", probe=probe_result(sndbuf))
    assert facts["socket_memory"]["per_mss_bytes"] is None
    assert facts["socket_memory"]["initial_sndbuf_bytes"] == sndbuf
    assert any(why in note for note in facts["status"]["notes"])


def test_per_mss_is_null_without_loopback(tmp_path):
    def no_loopback():
        raise OSError(101, "127.0.0.1: Network is unreachable; ::1: Network is unreachable")

    facts = facts_of(tmp_path, "normal_host", probe=no_loopback)
    assert facts["socket_memory"]["per_mss_bytes"] is None and facts["socket_memory"]["probe_mss_bytes"] is None
    assert any("no loopback connection" in note for note in facts["status"]["notes"])


# --- sockstat units: SK_MEM_QUANTUM before 6.0 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "unit_bytes", "level"),
    [
        ("4.19.0-27-arm64", 65536, "above_min"),  # SK_MEM_QUANTUM was PAGE_SIZE
        ("5.10.0-30-arm64", 4096, "ok"),  # bd68a2a854ad: 4096 bytes whatever the page size
        ("6.1.0-31-arm64", 65536, "above_min"),  # 6.0 went back to pages
    ],
)
def test_sockstat_mem_on_64k_pages_counts_the_kernels_unit(tmp_path, release, unit_bytes, level):
    proc_root, sys_root = materialize("normal_host", str(tmp_path))  # tcp_mem 23520 31362 47040 pages
    with open(os.path.join(proc_root, "sys/kernel/osrelease"), "w") as handle:
        handle.write(release + "\n")
    with open(os.path.join(proc_root, "net/sockstat"), "w") as handle:
        handle.write("sockets: used 150\nTCP: inuse 12 orphan 0 tw 2 alloc 14 mem 30000\nUDP: inuse 2 mem 1\n")
    facts = gather(proc_root=proc_root, sys_root=sys_root, page_size=65536)
    tcp = facts["sockstat"]["tcp"]
    assert (tcp["mem_units"], tcp["mem_unit_bytes"], tcp["mem_bytes"]) == (30000, unit_bytes, 30000 * unit_bytes)
    status = facts["status"]
    # tcp_mem stays in pages: 30000 quanta of 4 KiB are 1875 pages of 64 KiB, below tcp_mem[0].
    assert status["used_pages"] == 30000 * unit_bytes // 65536
    assert status["fraction_of_min"] == round(30000 * unit_bytes / (23520 * 65536), 6)
    assert status["level"] == level

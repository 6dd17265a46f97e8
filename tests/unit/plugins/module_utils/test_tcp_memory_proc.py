# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure parsers and arithmetic of module_utils.facts.proc."""

from __future__ import annotations

import contextlib

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils import tcp_memory_keys as keys
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import proc
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import ProcParseError
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("release", "version"),
    [
        ("6.18.44-fc-v509", [6, 18, 44]),
        ("6.1.0-31-cloud-amd64", [6, 1, 0]),
        ("3.10.0-1160.el7.x86_64", [3, 10, 0]),
        ("6.8", [6, 8, 0]),
        ("5.15.0+", [5, 15, 0]),
    ],
)
def test_kernel_version(release, version):
    assert proc.kernel_version(release) == version


def test_at_least():
    assert keys.at_least([6, 16, 0], (6, 16))
    assert not keys.at_least([6, 15, 9], (6, 16))
    assert not keys.at_least([], (4, 15))


# --- memory --------------------------------------------------------------------------------


def test_meminfo_bytes_and_unitless_lines():
    info = proc.parse_meminfo("MemTotal:  2022992 kB\nMemAvailable: 10 kB\nHugePages_Total:       0\n")
    assert info == {"MemTotal": 2022992 * 1024, "MemAvailable": 10240, "HugePages_Total": 0}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "file is empty"),
        ("MemFree: 10 kB\n", "no MemTotal line"),
        ("MemTotal 10 kB\n", "is not 'Field: N kB'"),
        ("MemTotal: 10 MB\n", "is not 'Field: N kB'"),
        ("MemTotal: ten kB\n", "'ten' is not an integer"),
    ],
)
def test_meminfo_errors_name_the_file(text, problem):
    with pytest.raises(ProcParseError) as caught:
        proc.parse_meminfo(text, "/x/meminfo")
    assert str(caught.value).startswith("/x/meminfo: ")
    assert problem in str(caught.value)


ZONEINFO = """Node 0, zone      DMA
  pages free     3840
        high     62
        managed  3840
  pagesets
    cpu: 0
              high:     999
Node 0, zone    DMA32
        high     12799
        managed  772919
Node 1, zone   Normal
        high     12480
        managed  5394241
  pagesets
              high:     36403
Node 1, zone  Movable
        high     32
        managed  7
"""


def test_zoneinfo_skips_pageset_high_and_keeps_nodes():
    zones = proc.parse_zoneinfo(ZONEINFO)
    assert [(z["node"], z["zone"], z["managed_pages"], z["high_pages"]) for z in zones] == [
        (0, "DMA", 3840, 62),
        (0, "DMA32", 772919, 12799),
        (1, "Normal", 5394241, 12480),
        (1, "Movable", 7, 32),
    ]


def test_estimate_from_zoneinfo_counts_zones_up_to_normal():
    zones = proc.parse_zoneinfo(ZONEINFO)
    mem_total = (3840 + 772919 + 5394241 + 7) * 4096
    estimate = proc.estimate_nr_free_buffer_pages(zones, mem_total, 4096)
    assert estimate == {"pages": (3840 - 62) + (772919 - 12799) + (5394241 - 12480), "source": "zoneinfo", "note": None}


def test_estimate_falls_back_to_meminfo_when_zones_lost_their_pages():
    # This CI machine: zones manage 1.5M pages while MemTotal (and tcp_mem at boot) says 6.17M.
    zones = [
        {"node": 0, "zone": "DMA", "managed_pages": 3840, "high_pages": 62},
        {"node": 0, "zone": "DMA32", "managed_pages": 772919, "high_pages": 12799},
        {"node": 0, "zone": "Normal", "managed_pages": 753664, "high_pages": 12480},
    ]
    estimate = proc.estimate_nr_free_buffer_pages(zones, 24684100 * 1024, 4096)
    assert estimate["source"] == "meminfo"
    assert estimate["pages"] == 6171025 - (62 + 12799 + 12480)
    assert "far below MemTotal" in estimate["note"]
    # ... which is what the kernel sized tcp_mem 287901 383870 575802 from at boot.
    defaults = proc.boot_defaults(estimate["pages"], 4096, [6, 18, 44])
    assert defaults["tcp_mem_pages"][1] == pytest.approx(383870, rel=0.002)


def test_estimate_without_zoneinfo_or_managed():
    assert proc.estimate_nr_free_buffer_pages(None, 4096 * 1000, 4096)["pages"] == 1000
    zones = [{"node": 0, "zone": "DMA32", "managed_pages": None, "high_pages": 10}]
    estimate = proc.estimate_nr_free_buffer_pages(zones, 4096 * 1000, 4096)
    assert estimate == {"pages": 990, "source": "meminfo", "note": estimate["note"]}
    assert "no managed pages" in estimate["note"]


def test_boot_defaults_of_a_2gib_debian_6_1_guest():
    defaults = proc.boot_defaults(501806, 4096, [6, 1, 0])
    assert defaults == {
        "tcp_mem_pages": [23520, 31362, 47040],
        "tcp_rmem_bytes": [4096, 131072, 6291456],
        "tcp_wmem_bytes": [4096, 16384, 4194304],
    }


def test_boot_defaults_rmem_cap_follows_the_kernel_version():
    big = 6_000_000
    assert proc.boot_defaults(big, 4096, [6, 15, 0])["tcp_rmem_bytes"][2] == 6 * 1024 * 1024
    assert proc.boot_defaults(big, 4096, [6, 16, 0])["tcp_rmem_bytes"][2] == 32 * 1024 * 1024
    assert proc.boot_defaults(big, 4096, [4, 19, 0])["tcp_rmem_bytes"][1] == 87380


def test_boot_defaults_floors_on_a_tiny_host():
    defaults = proc.boot_defaults(1000, 4096, [6, 1, 0])
    assert defaults["tcp_mem_pages"] == [96, 128, 192]
    assert defaults["tcp_wmem_bytes"][2] == 64 * 1024
    assert defaults["tcp_rmem_bytes"][2] == 131072


def test_cpu_list():
    assert proc.parse_cpu_list("0-3,8,10-11\n", "online") == 7
    with pytest.raises(ProcParseError, match="online: range '3-1' runs backwards"):
        proc.parse_cpu_list("3-1", "online")


# --- sockets -------------------------------------------------------------------------------


def test_sockstat():
    parsed = proc.parse_sockstat("sockets: used 14\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 11\nUDP: inuse 0 mem 0\n")
    assert parsed["sockets"] == {"used": 14}
    assert parsed["TCP"] == {"inuse": 1, "orphan": 0, "tw": 0, "alloc": 1, "mem": 11}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("TCP: inuse 1 orph", "is not 'PROTO: name N name N ...'"),
        ("TCP inuse 1", "is not 'PROTO: name N name N ...'"),
        ("TCP: inuse x", "field inuse: 'x' is not an integer"),
    ],
)
def test_sockstat_errors(text, problem):
    with pytest.raises(
        ProcParseError, match="^/proc/net/sockstat: .*" + problem.replace("(", r"\(").replace(")", r"\)")
    ):
        proc.parse_sockstat(text)


def test_header_value_table_keeps_negative_values():
    tables = proc.parse_header_value_table("Tcp: MaxConn CurrEstab\nTcp: -1 7\nUdp: InErrors\nUdp: 0\n", "snmp")
    assert tables == {"Tcp": {"MaxConn": -1, "CurrEstab": 7}, "Udp": {"InErrors": 0}}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Tcp: A B\n", "odd number of lines"),
        ("Tcp: A B\nTcp: 1\n", "Tcp: 2 names but 1 values (truncated?)"),
        ("Tcp: A\nUdp: 1\n", "do not form a 'Tcp:' header/value pair"),
    ],
)
def test_header_value_table_errors(text, problem):
    with pytest.raises(ProcParseError) as caught:
        proc.parse_header_value_table(text, "/proc/net/snmp")
    assert problem in str(caught.value)


PROTOCOLS = """protocol  size sockets  memory press maxhdr  slab module     cl co
UDP       1344      0       0   NI       0   yes  kernel      y  y
TCP       2304      5       0   {press}     192   yes  kernel      y  y
"""


@pytest.mark.parametrize(("press", "expected"), [("yes", True), ("no", False), ("NI", None)])
def test_protocols_pressure(press, expected):
    assert proc.parse_protocols_pressure(PROTOCOLS.format(press=press)) is expected


def test_protocols_without_tcp_row():
    assert proc.parse_protocols_pressure(PROTOCOLS.format(press="no"), "SCTP") is None


# --- sysctl, scope, mounts -----------------------------------------------------------------


def test_sysctl_values():
    assert proc.parse_sysctl_value("287901\t383870\t575802\n", 3, "tcp_mem") == [287901, 383870, 575802]
    assert proc.parse_sysctl_value("-2\n", 1, "tcp_adv_win_scale") == -2
    with pytest.raises(ProcParseError, match=r"^tcp_mem: expected 3 integer\(s\), found '1 2\\n'$"):
        proc.parse_sysctl_value("1 2\n", 3, "tcp_mem")


@pytest.mark.parametrize(
    ("key", "version", "scope"),
    [
        ("net.ipv4.tcp_mem", [6, 18, 0], "global"),
        ("net.ipv4.tcp_rmem", [4, 15, 0], "netns"),
        ("net.ipv4.tcp_rmem", [4, 14, 0], "global"),
        ("net.core.optmem_max", [6, 8, 0], "netns"),
        ("net.core.optmem_max", [6, 7, 0], "global"),
        ("net.core.rmem_max", [6, 18, 0], "global"),
    ],
)
def test_sysctl_scope(key, version, scope):
    assert proc.sysctl_scope(key, version) == scope


def test_every_key_has_a_unit_and_arity():
    assert len(keys.MANAGED_KEYS) == 12
    for key in keys.MANAGED_KEYS:
        assert key.unit in ("pages", "bytes", "boolean", "count")
        assert key.arity in (1, 3)
    # The kernel's vector sysctls among them (proc_doulongvec_minmax / proc_dointvec_minmax on 3 ints).
    assert set(keys.TRIPLE_KEYS) == {"net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.udp_mem"}
    assert set(keys.PAGES_KEYS) == {"net.ipv4.tcp_mem", "net.ipv4.udp_mem"}


DOCKER_MOUNTINFO = r"""1 0 0:21 / / rw,relatime - overlay overlay rw
2 1 0:22 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
3 2 0:22 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw
4 2 0:23 / /proc/kcore rw,nosuid - tmpfs tmpfs rw
5 1 0:24 / /mnt/with\040space rw - tmpfs tmpfs ro
"""


def test_mountinfo_read_only_proc_sys():
    mounts = proc.parse_mountinfo(DOCKER_MOUNTINFO)
    assert proc.mount_read_only(mounts, "/proc/sys/net/core/rmem_max") is True
    assert proc.mount_read_only(mounts, "/proc/sysrq-trigger") is False
    assert proc.mount_read_only(mounts, "/proc/net/sockstat") is False
    # Read-only through the superblock options, with an escaped space in the mount point.
    assert proc.mount_read_only(mounts, "/mnt/with space/x") is True
    assert proc.mount_read_only([], "/proc/sys") is None


def test_mountinfo_later_mount_on_the_same_point_wins():
    mounts = proc.parse_mountinfo("1 0 0:1 / /proc rw - proc proc rw\n2 1 0:2 / /proc ro - proc proc rw\n")
    assert proc.mount_read_only(mounts, "/proc/sys/x") is True


def test_mountinfo_garbage():
    with pytest.raises(ProcParseError, match="is not a mountinfo line"):
        proc.parse_mountinfo("22 27 0:21 /proc\n")


# --- namespace -----------------------------------------------------------------------------


def test_namespace_compares_links_when_both_are_readable():
    decided = proc.decide_namespace("net:[4026532177]", "net:[4026531840]", [5, 10, 0], True)
    assert decided["initial"] is False
    assert decided["method"].startswith("compared /proc/self/ns/net (net:[4026532177]) with /proc/1/ns/net")
    assert proc.decide_namespace("net:[7]", "net:[7]", [5, 10, 0], False)["initial"] is True


def test_namespace_by_fixed_initial_inode():
    decided = proc.decide_namespace("net:[4026531833]", None, [5, 10, 0], None)
    assert decided["initial"] is True
    assert "fixed inode of the initial namespace" in decided["method"]
    decided = proc.decide_namespace("net:[4026532177]", None, [6, 18, 44], True)
    assert decided["initial"] is False
    assert "kernels >= 6.18" in decided["method"]


def test_namespace_by_tcp_mem_presence_on_older_kernels():
    decided = proc.decide_namespace("net:[4026532177]", None, [6, 1, 0], False)
    assert decided["initial"] is False
    assert "tcp_mem is absent" in decided["method"]
    assert proc.decide_namespace(None, None, [6, 1, 0], None) == {
        "initial": None,
        "method": "/proc/self/ns/net not readable; no other evidence",
    }


# --- status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "press", "level"),
    [
        (0, False, "ok"),
        (999, False, "ok"),
        (1000, False, "above_min"),
        (1000, True, "pressure"),
        (1500, False, "pressure"),
        (2000, False, "at_max"),
        (3500, True, "at_max"),
    ],
)
def test_memory_status_levels(used, press, level):
    assert proc.memory_status([1000, 1500, 2000], used * 4096, 4096, press)["level"] == level


def test_memory_status_fractions_and_unknown():
    status = proc.memory_status([1000, 1500, 2000], 1800 * 4096, 4096, True)
    assert (status["fraction_of_min"], status["fraction_of_pressure"], status["fraction_of_max"]) == (1.8, 1.2, 0.9)
    assert proc.memory_status(None, 5 * 4096, 4096, None) == {
        "level": "unknown",
        "used_pages": 5,
        "fraction_of_min": None,
        "fraction_of_pressure": None,
        "fraction_of_max": None,
    }


def test_used_pages_round_up_partial_pages():
    # 17 quanta of 4 KiB on 64 KiB pages: 1.06 pages, counted as 2 whole pages, compared exactly.
    status = proc.memory_status([1, 2, 3], 17 * 4096, 65536, False)
    assert (status["used_pages"], status["level"], status["fraction_of_min"]) == (2, "above_min", 1.0625)


@pytest.mark.parametrize(
    ("version", "page_size", "unit"),
    [
        ([4, 19, 0], 4096, 4096),
        ([4, 19, 0], 65536, 65536),
        ([5, 4, 0], 65536, 65536),
        ([5, 5, 0], 65536, 4096),
        ([5, 19, 17], 65536, 4096),
        ([6, 0, 0], 65536, 65536),
        ([6, 12, 0], 16384, 16384),
    ],
)
def test_charge_unit_follows_sk_mem_quantum(version, page_size, unit):
    assert proc.charge_unit_bytes(version, page_size) == unit


def test_round_up_to_unit_counts_whole_units():
    assert [proc.round_up_to_unit(n, 4096) for n in (0, 1, 4096, 4097, -5)] == [0, 4096, 4096, 8192, 0]


@pytest.mark.parametrize(
    ("sndbuf", "factor", "segments", "expected"),
    [
        (87040, 2, 10, (4352, None)),
        (46080, 2, 10, (2304, None)),
        (69120, 3, 10, (2304, None)),
        (87041, 2, 10, (None, "SO_SNDBUF 87041 is not a multiple of 2 x 10 segments")),
        (4194304, 2, 10, (None, "SO_SNDBUF 4194304 reached tcp_wmem[2] 4194304: capped, per_mss not derivable")),
        (16384, 2, 10, (None, "SO_SNDBUF 16384 is not above tcp_wmem[1] 16384: tcp_sndbuf_expand did not raise it")),
    ],
)
def test_per_mss_from_sndbuf(sndbuf, factor, segments, expected):
    assert proc.per_mss_from_sndbuf(sndbuf, factor, segments, [4096, 16384, 4194304]) == expected


def test_sndbuf_segments_and_factor():
    assert proc.sndbuf_segments(10, 3) == 10
    assert proc.sndbuf_segments(4, 3) == 10  # never below TCP_INIT_CWND
    assert proc.sndbuf_segments(32, 3) == 32
    assert proc.sndbuf_segments(10, 20) == 21
    assert (proc.sndbuf_expand_factor("bbr"), proc.sndbuf_expand_factor("cubic"), proc.sndbuf_expand_factor(None)) == (
        3,
        2,
        2,
    )


# --- nothing but ProcParseError, whatever the bytes -----------------------------------------

PARSERS = [
    proc.parse_meminfo,
    proc.parse_zoneinfo,
    proc.parse_sockstat,
    lambda t: proc.parse_header_value_table(t, "/proc/net/netstat"),
    proc.parse_protocols_pressure,
    lambda t: proc.parse_sysctl_value(t, 3, "tcp_mem"),
    proc.parse_mountinfo,
    lambda t: proc.parse_cpu_list(t, "online"),
]


@pytest.mark.parametrize("parse", PARSERS)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("Node zone:TCP inuse mem 0123456789-,\t\nkBhighmanaged[]")), max_size=200
    )
)
def test_parsers_raise_only_proc_parse_error(parse, text):
    with contextlib.suppress(ProcParseError):
        parse(text)

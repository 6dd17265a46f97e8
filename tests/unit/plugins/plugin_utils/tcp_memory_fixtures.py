# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible_facts.tcp_memory dicts built from docs/data-model.md section 1, for the model and filter tests.

Boot defaults follow the kernel's formulas (net/ipv4/tcp.c tcp_init_mem / tcp_init), so a test host
looks like a real one of that size.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

GIB = 1 << 30
MIB = 1 << 20

NETNS_KEYS = (
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_moderate_rcvbuf",
    "net.ipv4.tcp_adv_win_scale",
    "net.ipv4.tcp_notsent_lowat",
)
TRIPLE_KEYS = ("net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.udp_mem")
ALL_KEYS = (
    *TRIPLE_KEYS,
    "net.ipv4.tcp_moderate_rcvbuf",
    "net.ipv4.tcp_adv_win_scale",
    "net.ipv4.tcp_notsent_lowat",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.rmem_default",
    "net.core.wmem_default",
    "net.core.optmem_max",
)


def free_buffer_pages(mem_total_bytes: int, page_size_bytes: int) -> int:
    """About what nr_free_buffer_pages() gives: managed pages minus high watermarks (~3% here)."""
    return max(1, mem_total_bytes // page_size_bytes * 97 // 100)


def boot_defaults(
    mem_total_bytes: int, page_size_bytes: int, kernel_version: tuple[int, int, int]
) -> dict[str, list[int]]:
    free_pages = free_buffer_pages(mem_total_bytes, page_size_bytes)
    limit_pages = max(free_pages // 16, 128)
    per_socket_limit_bytes = free_pages * page_size_bytes // 128
    rmem_cap_bytes = 32 * MIB if kernel_version >= (6, 16, 0) else 6 * MIB
    return {
        "tcp_mem_pages": [limit_pages // 4 * 3, limit_pages, 2 * (limit_pages // 4 * 3)],
        "tcp_rmem_bytes": [page_size_bytes, 131072, max(131072, min(rmem_cap_bytes, per_socket_limit_bytes))],
        "tcp_wmem_bytes": [page_size_bytes, 16384, max(65536, min(4 * MIB, per_socket_limit_bytes))],
    }


def sysctl_entry(key: str, value: Any, present: bool = True, writable: bool = True) -> dict[str, Any]:
    unit = "pages" if key.endswith("_mem") else "boolean" if key.endswith("moderate_rcvbuf") else "bytes"
    if key.endswith("adv_win_scale"):
        unit = "count"
    if not present:
        value = None
    raw = None if value is None else "\t".join(str(n) for n in value) if isinstance(value, list) else str(value)
    return {
        "present": present,
        "writable": writable and present,
        "scope": "netns" if key in NETNS_KEYS else "global",
        "unit": unit,
        "value": value,
        "raw": raw,
    }


def make_facts(
    mem_total_bytes: int = 16 * GIB,
    page_size_bytes: int = 4096,
    cpu_count: int = 8,
    kernel_version: tuple[int, int, int] = (6, 1, 0),
    initial_netns: bool = True,
    used_pages: Optional[int] = 1200,
    live: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Facts of a host that runs its boot defaults (plus `live` overrides of sysctl values)."""
    boot = boot_defaults(mem_total_bytes, page_size_bytes, kernel_version)
    values: dict[str, Any] = {
        "net.ipv4.tcp_mem": list(boot["tcp_mem_pages"]),
        "net.ipv4.tcp_rmem": list(boot["tcp_rmem_bytes"]),
        "net.ipv4.tcp_wmem": list(boot["tcp_wmem_bytes"]),
        "net.ipv4.udp_mem": [n * 2 for n in boot["tcp_mem_pages"]],
        "net.ipv4.tcp_moderate_rcvbuf": 1,
        "net.ipv4.tcp_adv_win_scale": 1,
        "net.ipv4.tcp_notsent_lowat": 4294967295,  # UINT_MAX, the kernel's default
        "net.core.rmem_max": 212992,
        "net.core.wmem_max": 212992,
        "net.core.rmem_default": 212992,
        "net.core.wmem_default": 212992,
        "net.core.optmem_max": 20480,
    }
    values.update(live or {})
    sysctl = {}
    for key in ALL_KEYS:
        if initial_netns:
            sysctl[key] = sysctl_entry(key, values[key])
        elif key in ("net.ipv4.tcp_mem", "net.ipv4.udp_mem"):
            sysctl[key] = sysctl_entry(key, values[key], present=False)
        elif key.startswith("net.core."):
            sysctl[key] = sysctl_entry(key, values[key], writable=False)
        else:
            sysctl[key] = sysctl_entry(key, values[key])
    tcp_mem = values["net.ipv4.tcp_mem"]
    return {
        "schema_version": 1,
        "kernel": {
            "release": "{}.{}.{}-test".format(*kernel_version),
            "version": list(kernel_version),
        },
        "page_size_bytes": page_size_bytes,
        "cpu_count": cpu_count,
        "memory": {
            "mem_total_bytes": mem_total_bytes,
            "mem_available_bytes": mem_total_bytes * 9 // 10,
            "nr_free_buffer_pages_estimate": free_buffer_pages(mem_total_bytes, page_size_bytes),
            "nr_free_buffer_pages_source": "zoneinfo",
        },
        "boot_defaults": boot,
        "namespace": {
            "initial": initial_netns,
            "method": "compared /proc/self/ns/net with /proc/1/ns/net",
        },
        "sysctl": sysctl,
        "sockstat": {
            "sockets_used": 123,
            "tcp": {
                "inuse": 10,
                "orphan": 0,
                "tw": 2,
                "alloc": 12,
                "mem_pages": used_pages,
                "mem_bytes": None if used_pages is None else used_pages * page_size_bytes,
            },
            "tcp6": {"inuse": 1},
            "udp": {"inuse": 2, "mem_pages": 1, "mem_bytes": page_size_bytes},
            "udp6": {"inuse": 0},
            "host_wide_fields": [] if initial_netns else ["alloc", "orphan", "mem"],
        },
        "snmp": {"tcp_curr_estab": 10, "tcp_active_opens": 100, "tcp_passive_opens": 90},
        "pressure": {
            "counters": {
                "TCPMemoryPressures": 0,
                "TCPMemoryPressuresChrono": 0,
                "TCPAbortOnMemory": 0,
                "PruneCalled": 0,
                "RcvPruned": 0,
                "OfoPruned": 0,
                "TCPRcvCollapsed": 0,
                "TCPRcvQDrop": 0,
            },
            "tcp_under_pressure_now": False,
        },
        "status": {
            "level": "ok" if used_pages is None or used_pages < tcp_mem[0] else "above_min",
            "used_pages": used_pages,
            "fraction_of_min": None if used_pages is None else used_pages / tcp_mem[0],
            "fraction_of_pressure": None if used_pages is None else used_pages / tcp_mem[1],
            "fraction_of_max": None if used_pages is None else used_pages / tcp_mem[2],
            "buffer_bytes_per_connection": None,
            "notes": [] if initial_netns else ["sockstat mem is host-wide inside a network namespace"],
        },
        "tcp_congestion_control": "cubic",
        "tcp_max_orphans": 65536 if initial_netns else None,
        "connections": None,
        "top_sockets": None,
        "blocked_writers": None,
    }


def without(facts: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A deep copy of facts with the key at path removed."""
    broken = copy.deepcopy(facts)
    node = broken
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return broken


def host_of(facts: dict[str, Any]) -> Any:
    """HostFacts with the facts' Measurements attached, as the filter builds them for the model.

    A split calibration (loopback/other, no top-level rx/tx) is left out of parse_facts, which reads the
    mixed one only; the model takes the split from the Measurements.
    """
    from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import parse_facts
    from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import with_measurements

    plain = facts
    calibration = facts.get("calibration")
    if isinstance(calibration, dict) and "rx" not in calibration:
        plain = {**facts, "calibration": None}
    return with_measurements(parse_facts(plain), facts)

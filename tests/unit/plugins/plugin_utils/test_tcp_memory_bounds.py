# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter refuses facts no real host has, with the facts module's bounds (both import
them from module_utils/tcp_memory_keys)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.netstack.tcp_tuning.plugins.filter.recommend_tcp_memory import recommend_tcp_memory
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import make_facts


def refused(facts) -> str:
    with pytest.raises(AnsibleFilterError) as caught:
        recommend_tcp_memory(facts, connections=100000)
    return str(caught.value)


def test_the_absurd_memtotal_of_the_issue_is_refused_naming_the_fact():
    facts = make_facts()
    facts["memory"]["mem_total_bytes"] = 99999999999999999999 * 1024
    message = refused(facts)
    assert "facts.memory.mem_total_bytes must be <= 4503599627370496" in message
    assert "102399999999999999998976" in message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("memory", "mem_total_bytes"), 1 << 20, "facts.memory.mem_total_bytes must be >= 4194304, got 1048576"),
        (("memory", "mem_available_bytes"), 32 << 30, "facts.memory.mem_available_bytes must be <= 17179869184"),
        (("page_size_bytes",), 12288, "facts.page_size_bytes must be a power of two, got 12288"),
        (("page_size_bytes",), 2 << 20, "facts.page_size_bytes must be <= 1048576, got 2097152"),
        (("page_size_bytes",), 2048, "facts.page_size_bytes must be >= 4096, got 2048"),
        (("cpu_count",), 10**6, "facts.cpu_count must be <= 65536, got 1000000"),
        (("cpu_count",), 0, "facts.cpu_count must be >= 1, got 0"),
        (("status", "used_pages"), 2**62, "facts.status.used_pages must be <= 2251799813685247"),
        (
            ("boot_defaults", "tcp_rmem_bytes"),
            [4096, 131072, 2**31],
            "facts.boot_defaults.tcp_rmem_bytes[2] must be <=",
        ),
        (("boot_defaults", "tcp_mem_pages"), [1, 2, 2**62], "facts.boot_defaults.tcp_mem_pages[2] must be <="),
    ],
)
def test_facts_outside_the_bounds_are_refused_naming_fact_and_value(path, value, expected):
    facts = make_facts()
    node = facts
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert expected in refused(facts)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("net.ipv4.tcp_mem", [1, 2, 2**62], "facts.sysctl['net.ipv4.tcp_mem'].value[2] must be <= 2251799813685247"),
        ("net.ipv4.udp_mem", [1, 2, 2**63], "facts.sysctl['net.ipv4.udp_mem'].value[2] must be <="),
        (
            "net.ipv4.tcp_rmem",
            [4096, 131072, 2**31],
            "facts.sysctl['net.ipv4.tcp_rmem'].value[2] must be <= 2147483647",
        ),
        ("net.core.rmem_max", 2**40, "facts.sysctl['net.core.rmem_max'].value must be <= 2147483647"),
        ("net.core.wmem_max", -1, "facts.sysctl['net.core.wmem_max'].value must be >= 0"),
        ("net.ipv4.tcp_adv_win_scale", 64, "facts.sysctl['net.ipv4.tcp_adv_win_scale'].value must be <= 31"),
    ],
)
def test_sysctl_values_no_kernel_holds_are_refused(key, value, expected):
    facts = make_facts(live={key: value})
    assert expected in refused(facts)


def test_real_extremes_still_pass():
    """A 4 PiB host with 64 KiB pages and 8192 CPUs is within bounds, and so is a 16 MiB one."""
    big = make_facts(mem_total_bytes=1 << 52, page_size_bytes=65536, cpu_count=8192)
    assert recommend_tcp_memory(big, connections=100000)["sysctl"]["net.ipv4.tcp_mem"]
    small = make_facts(mem_total_bytes=16 << 20, cpu_count=1)
    assert recommend_tcp_memory(small, connections=10, best_effort=True)["sysctl"]["net.ipv4.tcp_rmem"]

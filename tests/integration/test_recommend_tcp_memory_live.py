# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""recommend_tcp_memory as a real run uses it: loaded by an `ansible` process, and fed with the facts this
collection's gatherer reads from this machine's /proc (read-only). Moved here from the filter's unit tests,
which use fixture facts only."""

from __future__ import annotations

import os

from ansible_collections.netstack.tcp_tuning.plugins.filter.recommend_tcp_memory import recommend_tcp_memory
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.gather import gather
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.filter.test_recommend_tcp_memory import assert_plain
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    GIB,
    make_facts,
)
from conftest import ansible_adhoc

FQCN = "netstack.tcp_tuning.recommend_tcp_memory"


def test_ansible_adhoc_run_loads_the_filter_as_ansible_does(collections_path):
    expression = f"{{{{ tcp_memory_facts | {FQCN}(connections=200000, bandwidth_bps=10000000000, rtt_ms=100) }}}}"
    result = ansible_adhoc(
        "ansible.builtin.debug",
        {"msg": expression},
        collections_path,
        timeout=120,
        extra_vars={"tcp_memory_facts": make_facts(mem_total_bytes=16 * GIB)},
    )
    assert not result.get("failed"), result
    message = result["msg"]
    assert message["sysctl"]["net.ipv4.tcp_mem"] == "262048 348715 522048"
    assert int(message["sysctl"]["net.ipv4.tcp_rmem"].split()[2]) >= 250_000_000


def test_facts_gathered_from_the_running_kernel_are_accepted():
    """The contract end to end: this collection's own gatherer, reading this machine's /proc (read-only)."""
    # what tcp_memory_facts adds around gather(): the cgroups (not asked for here) and whether it ran as root
    facts = {"cgroups": None, "root": os.geteuid() == 0, **gather()}
    result = recommend_tcp_memory(facts, connections=1000)
    assert_plain(result)
    live_tcp_mem = facts["sysctl"]["net.ipv4.tcp_mem"]["value"]
    # tcp_mem is in ipv4_table: visible exactly in the initial network namespace
    assert (live_tcp_mem is not None) is facts["namespace"]["initial"], facts["namespace"]
    if live_tcp_mem is not None:  # never below the live value (allow_decrease=false)
        recommended = [int(n) for n in result["sysctl"]["net.ipv4.tcp_mem"].split()]
        assert all(new >= old for new, old in zip(recommended, live_tcp_mem))

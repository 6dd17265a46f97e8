# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests of the recommendation model over wide random hosts and targets."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any, Optional

from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import parse_facts, resolve_workload
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import (
    AboveMemTotalError,
    TargetDoesNotFitError,
    bytes_charged,
    pages_charged,
    recommend,
    slab_bytes_per_socket,
    steady_state_usage,
)
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    MIB,
    make_facts,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

INT_MAX = 2147483647
# A longer search when asked: TCP_MEMORY_MAX_EXAMPLES=5000 pytest tests/unit/plugins/plugin_utils
MAX_EXAMPLES = int(os.environ.get("TCP_MEMORY_MAX_EXAMPLES", "300"))
TIB = 1 << 40

ordered_triples = st.lists(st.integers(min_value=1, max_value=INT_MAX), min_size=3, max_size=3).map(sorted)


@st.composite
def hosts(draw: Any) -> dict[str, Any]:
    live: dict[str, Any] = {}
    if draw(st.booleans()):  # an operator already tuned this host, sometimes wildly
        live["net.ipv4.tcp_mem"] = draw(ordered_triples)
        live["net.ipv4.tcp_rmem"] = draw(ordered_triples)
        live["net.ipv4.tcp_wmem"] = draw(ordered_triples)
        live["net.core.rmem_max"] = draw(st.integers(min_value=1, max_value=INT_MAX))
        live["net.core.wmem_max"] = draw(st.integers(min_value=1, max_value=INT_MAX))
        live["net.ipv4.tcp_adv_win_scale"] = draw(st.integers(min_value=-31, max_value=31))
    return make_facts(
        mem_total_bytes=draw(st.integers(min_value=64 * MIB, max_value=4 * TIB)),
        page_size_bytes=draw(st.sampled_from([4096, 16384, 65536])),
        cpu_count=draw(st.integers(min_value=1, max_value=256)),
        kernel_version=draw(
            st.sampled_from([(4, 19, 0), (5, 4, 0), (5, 15, 0), (6, 1, 0), (6, 6, 0), (6, 12, 0), (6, 18, 0)])
        ),
        initial_netns=draw(st.booleans()),
        used_pages=draw(st.none() | st.integers(min_value=0, max_value=10**9)),
        live=live,
    )


fractions = st.floats(min_value=1e-4, max_value=1.0, allow_nan=False)


@st.composite
def workloads(draw: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "connections": draw(st.integers(min_value=1, max_value=10_000_000)),
        "profile": draw(st.sampled_from(["many_idle", "balanced", "bulk_throughput"])),
        "memory_fraction": draw(fractions),
        "allow_decrease": draw(st.booleans()),
        "best_effort": draw(st.booleans()),
    }
    if draw(st.booleans()):
        arguments["active_fraction"] = draw(fractions)
        arguments["rx_buffered_bytes"] = draw(st.integers(min_value=0, max_value=4 * MIB))
        arguments["tx_buffered_bytes"] = draw(st.integers(min_value=0, max_value=4 * MIB))
    if draw(st.booleans()):
        arguments["bandwidth_bps"] = draw(st.integers(min_value=1_000_000, max_value=400_000_000_000))
        arguments["rtt_ms"] = draw(st.floats(min_value=0.05, max_value=1000, allow_nan=False))
    return arguments


def triple(result: dict[str, Any], key: str) -> tuple[int, ...]:
    return tuple(int(part) for part in result["sysctl"][key].split())


def attempt(facts: dict[str, Any], arguments: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The recommendation, or None when the target does not fit (checked to be a real misfit)."""
    host = parse_facts(facts)
    workload = resolve_workload(**arguments)
    slab_bytes = workload.connections * slab_bytes_per_socket(host)[0]
    try:
        return recommend(host, workload)
    except TargetDoesNotFitError as error:
        usage = steady_state_usage(workload.connections, workload, host)
        # buffers at tcp_mem[2] plus the socket slab against the budget
        budget_bytes = int(host.mem_total_bytes * workload.memory_fraction)
        budget_pages = (budget_bytes - slab_bytes) // host.page_size_bytes
        assert not workload.best_effort or budget_pages < 1
        at_max_pages = max(usage.steady_pages, 2 * usage.buffer_pages + usage.per_cpu_slack_pages)
        assert at_max_pages * host.page_size_bytes + slab_bytes > budget_bytes, "raised although it fits"
        assert "short by" in str(error) and "To fit" in str(error)
        return None
    except AboveMemTotalError:
        # only a live value kept by allow_decrease=false or an override passes MemTotal
        live = facts["sysctl"]["net.ipv4.tcp_mem"]["value"]
        assert not workload.allow_decrease and live
        assert live[2] * host.page_size_bytes + slab_bytes > host.mem_total_bytes
        with_allowed = recommend(host, resolve_workload(**{**arguments, "allow_above_mem_total": True}))
        assert "more than MemTotal" in with_allowed["warnings"][0]
        return None


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=hosts(), arguments=workloads())
def test_invariants_hold_for_every_host_and_target(facts, arguments):
    result = attempt(facts, arguments)
    assume(result is not None)
    assert result is not None
    host = parse_facts(facts)
    page = host.page_size_bytes
    steady_pages = result["estimate"]["steady_state_pages"]
    budget_pages = result["inputs"]["memory_budget_pages"]
    clamped = any(warning.startswith("best_effort") for warning in result["warnings"])

    tcp_mem = triple(result, "net.ipv4.tcp_mem")
    assert 0 < tcp_mem[0] <= tcp_mem[1] <= tcp_mem[2]
    lag_pages = result["estimate"]["per_cpu_reserve_pages"]
    estimate = result["estimate"]
    # the buffers B the thresholds scale (steady_state_pages has a floor of one page when nothing is buffered)
    buffer_pages = estimate["active_connections"] * (
        estimate["rx_pages_per_active_connection"] + estimate["tx_pages_per_active_connection"]
    )
    if not clamped:
        assert tcp_mem[0] >= steady_pages  # normal load sits at or below min
        # pressure and max have headroom above the buffers; the per-CPU lag is counter error, added once
        assert tcp_mem[1] >= buffer_pages * 4 / 3 + lag_pages
        assert tcp_mem[2] >= 2 * buffer_pages + lag_pages
    if tcp_mem[2] > budget_pages:
        # only the boot default or the live value may exceed the budget, kept by allow_decrease=false
        assert not arguments["allow_decrease"]
        floors = [facts["boot_defaults"]["tcp_mem_pages"][2], facts["sysctl"]["net.ipv4.tcp_mem"]["value"]]
        assert tcp_mem[2] in [floors[0], floors[1] and floors[1][2]]
        assert any("above the budget" in warning for warning in result["warnings"])
    else:
        assert tcp_mem[2] * page <= host.mem_total_bytes * arguments["memory_fraction"] + page

    for key, core_key in (("net.ipv4.tcp_rmem", "net.core.rmem_max"), ("net.ipv4.tcp_wmem", "net.core.wmem_max")):
        minimum, default, maximum = triple(result, key)
        assert 4096 <= minimum <= default <= maximum <= INT_MAX
        assert minimum >= page
        assert int(result["sysctl"][core_key]) >= maximum
    if result["inputs"]["bdp_bytes"] is not None:
        bdp = result["inputs"]["bdp_bytes"]
        assert triple(result, "net.ipv4.tcp_wmem")[2] >= min(bdp, INT_MAX)
        assert triple(result, "net.ipv4.tcp_rmem")[2] >= min(2 * bdp, INT_MAX)

    assert result["sysctl"]["net.ipv4.tcp_moderate_rcvbuf"] == "1"
    if host.kernel_version >= (6, 6, 0):
        assert "net.ipv4.tcp_adv_win_scale" not in result["sysctl"]
    for key, value in result["sysctl"].items():
        assert all(part.isdigit() for part in value.split(" ")), (key, value)
        assert result["scope"][key]["settable"] == (
            facts["sysctl"][key]["present"] and facts["sysctl"][key]["writable"]
        )
        assert key in result["explain"]


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(
    facts=hosts(),
    arguments=workloads(),
    more=st.integers(min_value=0, max_value=10_000_000),
)
def test_more_connections_never_yield_a_smaller_tcp_mem(facts, arguments, more):
    fewer = attempt(facts, arguments)
    larger = attempt(facts, {**arguments, "connections": arguments["connections"] + more})
    if larger is not None:
        assert fewer is not None, "a larger target fitted where a smaller one did not"
        # best_effort clamps to the budget left after the socket slab, which more connections shrink:
        # a clamped value may fall, and says so; every value sized from the target never does
        if not any(warning.startswith("best_effort") for warning in larger["warnings"]):
            for small, big in zip(triple(fewer, "net.ipv4.tcp_mem"), triple(larger, "net.ipv4.tcp_mem")):
                assert small <= big


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(facts=hosts(), arguments=workloads())
def test_estimate_capacity_is_consistent_with_the_recommendation(facts, arguments):
    result = attempt(facts, arguments)
    assume(result is not None)
    assert result is not None
    estimate = result["estimate"]
    held = estimate["recommended_connections_before_pressure"]
    clamped = any(warning.startswith("best_effort") for warning in result["warnings"])
    if held is not None and not clamped:
        assert held >= arguments["connections"]
    # the memory at the target, worked out here from the kernel's accounting (docs/recommendation-model.md)
    host = parse_facts(facts)
    expected_total = expected_bytes_at_target(host, arguments)
    assert estimate["total_bytes_at_target"] == expected_total
    assert estimate["ram_share_at_target"] == round(expected_total / host.mem_total_bytes, 6)


# Written out from the kernel, not taken from the model: the presets of docs/recommendation-model.md,
# the default truesize factors, an skb head of SKB_DATA_ALIGN(sizeof(sk_buff)) 256 + the 1024 B kmalloc
# bucket of MAX_TCP_HEADER 320 + skb_shared_info 320 before 6.3, + skb_small_head_cache's 640 B from 6.3 and
# 704 B from 6.12 (generic kernels), at most 64 KiB per skb (GSO_LEGACY_MAX_SIZE), each socket rounded to
# SK_MEM_QUANTUM 4096 B on 5.5 .. 5.19 and to a page otherwise, SK_MEMORY_PCPU_RESERVE 1 MiB per CPU from
# 6.0 and the measured slab per socket (4.7 KB from 5.0, 3.3 KB before).
PRESETS = {
    "many_idle": (Fraction(1, 20), 4096, 16384, 4096),
    "balanced": (Fraction(1, 10), 16384, 16384, 16384),
    "bulk_throughput": (Fraction(1), 262144, 262144, 65536),
}
RX_FACTOR, TX_FACTOR = Fraction(2), Fraction(5, 4)
HEAD_BYTES = 256 + 1024


def head_bytes_of(version: tuple[int, ...]) -> int:
    return 256 + (704 if version >= (6, 12, 0) else 640 if version >= (6, 3, 0) else 1024)


def unit_bytes_of(version: tuple[int, ...], page_bytes: int) -> int:
    return 4096 if (5, 5, 0) <= version < (6, 0, 0) else page_bytes


SKB_PAYLOAD_MAX_BYTES = 64 * 1024


def expected_pages_per_socket(
    payload_bytes: int, factor: Fraction, message_bytes: int, page_bytes: int, head_bytes: int = HEAD_BYTES
) -> int:
    if payload_bytes == 0:
        return 0
    skbs = -(-payload_bytes // min(message_bytes, SKB_PAYLOAD_MAX_BYTES))
    charged = max(payload_bytes * factor, payload_bytes + skbs * head_bytes)
    return max(1, -(-charged.numerator // (charged.denominator * page_bytes)))


def expected_bytes_at_target(host: Any, arguments: dict[str, Any]) -> int:
    active_fraction, rx_bytes, tx_bytes, message_bytes = PRESETS[arguments["profile"]]
    if "active_fraction" in arguments:
        active_fraction = Fraction(str(arguments["active_fraction"]))
        rx_bytes, tx_bytes = arguments["rx_buffered_bytes"], arguments["tx_buffered_bytes"]
    message_bytes = arguments.get("message_bytes") or message_bytes
    connections, page = arguments["connections"], host.page_size_bytes
    active = -(-connections * active_fraction.numerator // active_fraction.denominator)
    head, unit = head_bytes_of(host.kernel_version), unit_bytes_of(host.kernel_version, page)
    per_active = expected_pages_per_socket(rx_bytes, RX_FACTOR, message_bytes, unit, head) + expected_pages_per_socket(
        tx_bytes, TX_FACTOR, message_bytes, unit, head
    )
    per_cpu_pages = host.cpu_count * -(-(1 << 20) // page) if host.kernel_version >= (6, 0, 0) else 0
    steady_pages = max(1, -(-active * per_active * unit // page) + per_cpu_pages)
    slab_per_socket = 4700 if host.kernel_version >= (5, 0, 0) else 3300
    return steady_pages * page + connections * slab_per_socket


# ---------------------------------------------------------------- never falls when the load grows

payloads = st.integers(min_value=0, max_value=64 * MIB)
message_sizes = st.integers(min_value=1, max_value=1 << 20)
factors = st.fractions(min_value=1, max_value=8, max_denominator=1000)
heads = st.integers(min_value=0, max_value=8192)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(payload=payloads, more=payloads, message=message_sizes, factor=factors, more_factor=factors, head=heads)
def test_charged_memory_never_falls_when_bytes_overhead_or_factor_grow(
    payload, more, message, factor, more_factor, head
):
    base = bytes_charged(payload, message, factor, head)
    assert bytes_charged(payload + more, message, factor, head) >= base
    assert bytes_charged(payload, message, factor + more_factor, head) >= base
    assert bytes_charged(payload, message, factor, head + 1) >= base
    assert base >= payload  # never below the payload itself
    for page in (4096, 65536):
        pages = pages_charged(payload, factor, page, message)
        assert pages_charged(payload + more, factor, page, message) >= pages
        assert pages >= (1 if payload else 0)  # a socket holding any data holds at least a page


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    facts=hosts(),
    arguments=workloads(),
    more_bytes=st.integers(min_value=0, max_value=4 * MIB),
    more_factor=st.sampled_from([0, 0.25, 1, 3]),
    message=st.sampled_from([None, 100, 1024, 16384, 65536]),
)
def test_recommendation_never_falls_when_bytes_or_factor_grow(facts, arguments, more_bytes, more_factor, message):
    arguments = {**arguments, "best_effort": False, "message_bytes": message}
    base = attempt(facts, arguments)
    assume(base is not None)
    assert base is not None
    grown_rx = {**arguments, "rx_buffered_bytes": _bytes(base, "rx") + more_bytes}
    grown_factor = {**arguments, "tx_truesize_factor": 1.25 + more_factor, "rx_truesize_factor": 2 + more_factor}
    grown_tx = {**arguments, "tx_buffered_bytes": _bytes(base, "tx") + more_bytes}
    # smaller messages: more skbs for the same bytes, each paying its head
    more_heads = {**arguments, "message_bytes": max(1, int(base["inputs"]["message_bytes"]) // (2 + more_bytes % 7))}
    for grown in (grown_rx, grown_tx, grown_factor, more_heads):
        larger = attempt(facts, grown)
        if larger is not None:
            for small, big in zip(triple(base, "net.ipv4.tcp_mem"), triple(larger, "net.ipv4.tcp_mem")):
                assert small <= big


def _bytes(result: dict[str, Any], direction: str) -> int:
    return int(result["inputs"][f"{direction}_buffered_bytes"])

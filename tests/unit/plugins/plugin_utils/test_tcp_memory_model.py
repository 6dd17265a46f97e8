# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Examples of the recommendation model with hand-checked arithmetic and the comparisons the docs show."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import (
    ModelInputError,
    parse_facts,
    resolve_workload,
)
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import (
    SKB_HEAD_TRUESIZE_BYTES,
    AboveMemTotalError,
    TargetDoesNotFitError,
    bytes_charged,
    per_mss_truesize_bytes,
    recommend,
    send_queue_ceiling_bytes,
    skbs_queued,
    steady_state_usage,
)
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    GIB,
    MIB,
    host_of,
    make_facts,
)

TUNED_NETWORK_THROUGHPUT = {"net.ipv4.tcp_rmem": (4096, 131072, 16777216), "net.ipv4.tcp_wmem": (4096, 16384, 16777216)}
ESNET_10G = {
    "net.ipv4.tcp_rmem": (4096, 87380, 67108864),
    "net.ipv4.tcp_wmem": (4096, 65536, 67108864),
    "net.core.rmem_max": (134217728,),
    "net.core.wmem_max": (134217728,),
}


def run(facts: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    return recommend(host_of(facts), resolve_workload(**arguments))


def triple(result: dict[str, Any], key: str) -> tuple[int, ...]:
    return tuple(int(part) for part in result["sysctl"][key].split())


# ---------------------------------------------------------------- the worked example of the docs


def test_worked_example_16_gib_200k_connections_arithmetic():
    result = run(make_facts(mem_total_bytes=16 * GIB, cpu_count=8), connections=200000)
    # balanced: 20000 active x (16384 B x 2 = 8 pages rx + 16384 B x 1.25 = 5 pages tx) + 8 CPUs x 256 pages
    steady_pages = 20000 * (8 + 5) + 8 * 256
    assert result["estimate"]["steady_state_pages"] == steady_pages
    # the buffers B scale by 4/3 and 2, the per-CPU lag L (counter error, not memory) is added once
    buffers, lag = 20000 * (8 + 5), 8 * 256
    assert triple(result, "net.ipv4.tcp_mem") == (steady_pages, -(-buffers * 4 // 3) + lag, 2 * buffers + lag)
    assert "U 262048 pages" in result["explain"]["net.ipv4.tcp_mem"]
    assert result["estimate"]["slab_bytes_at_target"] == 200000 * 4700
    assert result["estimate"]["recommended_connections_before_pressure"] >= 200000
    # the host's boot defaults would put this target under pressure: that is why we raise them
    assert result["estimate"]["current_connections_before_pressure"] < 200000
    assert result["warnings"] == []


def test_output_is_plain_data_with_every_recommended_key_explained_and_scoped():
    result = run(make_facts(), connections=1000)
    assert set(result) == {
        "schema_version",
        "sysctl",
        "explain",
        "scope",
        "unsettable",
        "rows",
        "estimate",
        "warnings",
        "inputs",
        "cgroup",
    }
    assert set(result["explain"]) == set(result["sysctl"]) == set(result["scope"])
    assert set(result["sysctl"]) >= {
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.ipv4.tcp_moderate_rcvbuf",
    }
    assert result["sysctl"]["net.ipv4.tcp_moderate_rcvbuf"] == "1"
    assert all(isinstance(value, str) for value in result["sysctl"].values())


# ---------------------------------------------------------------- comparisons shown in the docs table


def test_boot_defaults_are_a_floor_without_allow_decrease():
    facts = make_facts(mem_total_bytes=16 * GIB)
    result = run(facts, connections=10)  # a tiny target would need far less than the boot defaults
    boot = facts["boot_defaults"]
    assert triple(result, "net.ipv4.tcp_mem") == tuple(boot["tcp_mem_pages"])
    assert triple(result, "net.ipv4.tcp_rmem") == tuple(boot["tcp_rmem_bytes"])
    assert triple(result, "net.ipv4.tcp_wmem") == tuple(boot["tcp_wmem_bytes"])
    assert "held up" in result["explain"]["net.ipv4.tcp_mem"]


def test_allow_decrease_lets_a_small_target_go_below_boot_defaults():
    facts = make_facts(mem_total_bytes=16 * GIB)
    result = run(facts, connections=10, allow_decrease=True)
    assert triple(result, "net.ipv4.tcp_mem")[1] < facts["boot_defaults"]["tcp_mem_pages"][1]
    assert "held up" not in result["explain"]["net.ipv4.tcp_mem"]


def test_live_values_above_the_model_are_kept_and_reported():
    live = {"net.ipv4.tcp_mem": [900000, 1000000, 1100000], "net.core.rmem_max": 134217728}
    result = run(make_facts(live=live), connections=200000)
    assert triple(result, "net.ipv4.tcp_mem") == (900000, 1000000, 1100000)
    assert "held up from 262048 to 900000 (live value" in result["explain"]["net.ipv4.tcp_mem"]
    assert result["sysctl"]["net.core.rmem_max"] == "134217728"


def test_tuned_network_throughput_comparison():
    result = run(make_facts(), connections=200000)
    for key, (tuned_min, tuned_default, tuned_max) in TUNED_NETWORK_THROUGHPUT.items():
        ours = triple(result, key)
        # same floor and initial size as tuned (the kernel's own), but tuned's 16 MiB maxima are a fixed guess
        assert ours[:2] == (tuned_min, tuned_default)
        assert ours[2] < tuned_max


def test_ten_gigabit_100_ms_link_reaches_the_bandwidth_delay_product():
    result = run(make_facts(), connections=2000, bandwidth_bps=10_000_000_000, rtt_ms=100)
    bdp_bytes = 10_000_000_000 // 8 * 100 // 1000
    assert bdp_bytes == 125_000_000 == result["inputs"]["bdp_bytes"]
    assert triple(result, "net.ipv4.tcp_wmem")[2] >= bdp_bytes
    assert triple(result, "net.ipv4.tcp_rmem")[2] >= 2 * bdp_bytes  # receive side pays skb truesize
    assert int(result["sysctl"]["net.core.rmem_max"]) >= triple(result, "net.ipv4.tcp_rmem")[2]
    assert int(result["sysctl"]["net.core.wmem_max"]) >= triple(result, "net.ipv4.tcp_wmem")[2]
    # ESnet's 10G host tuning (64 MiB) is sized for shorter paths; at 100 ms we need more
    for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
        assert triple(result, key)[2] > ESNET_10G[key][2]


def test_link_sizes_are_capped_at_int_max_with_a_warning():
    result = run(make_facts(mem_total_bytes=1024 * GIB), connections=10, bandwidth_bps=400_000_000_000, rtt_ms=300)
    assert triple(result, "net.ipv4.tcp_rmem")[2] == 2147483647
    assert any("C ints" in warning for warning in result["warnings"])


# ---------------------------------------------------------------- budget


def test_target_beyond_the_budget_says_by_how_much_and_how_many_fit():
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=2)
    with pytest.raises(TargetDoesNotFitError) as caught:
        run(facts, connections=400_000)
    message = str(caught.value)
    # at tcp_mem[2] = 2 B + L: (2 x 40000 x 13 + 512) pages x 4096 B + 400000 x 4700 B of slab, against 4 GiB
    needed_bytes = (2 * 40000 * 13 + 512) * 4096 + 400000 * 4700
    assert f"short by {-(-(needed_bytes - 4 * GIB) // 4096)} pages" in message
    assert "binding term is the buffer pages at tcp_mem[2]" in message
    assert "at most 279670 connections" in message
    assert "memory_fraction" in message and "of RAM" in message and "best_effort" in message
    # the advice is exact: the suggested count fits, one more does not
    run(facts, connections=279670)
    with pytest.raises(TargetDoesNotFitError):
        run(facts, connections=279671)


def test_socket_slab_counts_against_the_budget_and_a_refusal_names_it():
    # Buffers at tcp_mem[2] alone fit (2.69 GiB of 4 GiB) but with 4.38 GiB of slab they don't
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=8)
    with pytest.raises(TargetDoesNotFitError, match="socket slab alone exceeds the budget"):
        run(facts, connections=1_000_000, profile="many_idle")
    with pytest.raises(TargetDoesNotFitError, match=r"binding term is the socket slab \(fewer connections"):
        run(facts, connections=800_000, profile="many_idle", active_fraction=0.001, memory_fraction=0.22)
    result = run(facts, connections=1_000_000, profile="many_idle", memory_fraction=0.5)
    assert "+ socket slab 4.38 GiB" in result["explain"]["net.ipv4.tcp_mem"]


def test_best_effort_clamps_to_the_budget_with_a_warning():
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=2)
    result = run(facts, connections=500_000, best_effort=True)
    tcp_mem = triple(result, "net.ipv4.tcp_mem")
    assert tcp_mem[2] == (16 * GIB // 4 - 500_000 * 4700) // 4096  # the budget less the socket slab
    assert tcp_mem[0] <= tcp_mem[1] <= tcp_mem[2]
    assert any(warning.startswith("best_effort") and "short by" in warning for warning in result["warnings"])


def test_per_cpu_reserve_alone_beyond_the_budget_is_explained():
    facts = make_facts(mem_total_bytes=64 * MIB, cpu_count=256)
    with pytest.raises(TargetDoesNotFitError, match=r"per-CPU counter lag alone \(65536 pages\)"):
        run(facts, connections=10, rx_buffered_bytes=0, tx_buffered_bytes=0)
    with pytest.raises(TargetDoesNotFitError, match=r"per-CPU counter lag alone \(65536 pages\)"):
        run(facts, connections=10)


def test_best_effort_cannot_clamp_to_a_budget_below_one_page():
    with pytest.raises(TargetDoesNotFitError, match="less than one page"):
        run(make_facts(mem_total_bytes=64 * MIB), connections=10, memory_fraction=0.00001, best_effort=True)


def test_larger_memory_fraction_makes_room():
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=2)
    result = run(facts, connections=550_000, memory_fraction=0.5)
    assert triple(result, "net.ipv4.tcp_mem")[2] * 4096 + 550_000 * 4700 <= 8 * GIB


# ---------------------------------------------------------------- containers, kernels, page sizes


def test_container_namespace_scope_and_warnings():
    result = run(make_facts(initial_netns=False), connections=1000)
    scope = result["scope"]
    assert scope["net.ipv4.tcp_mem"] == {
        "scope": "global",
        "settable": False,
        "reason": scope["net.ipv4.tcp_mem"]["reason"],
    }
    assert "absent here" in scope["net.ipv4.tcp_mem"]["reason"]
    assert scope["net.core.rmem_max"]["settable"] is False and "read-only" in scope["net.core.rmem_max"]["reason"]
    assert scope["net.ipv4.tcp_rmem"] == {
        "scope": "netns",
        "settable": True,
        "reason": "writable here; applies to this network namespace only",
    }
    warnings = " | ".join(result["warnings"])
    assert "net.ipv4.tcp_mem can't be set here" in warnings
    assert "net.core.wmem_max can't be set here" in warnings
    assert "host-wide" in warnings
    # net.core.rmem_max stays 212992 on the host: setsockopt users are capped below autotuning
    assert "SO_RCVBUF are capped by net.core.rmem_max=212992" in warnings
    # still recommended, so the operator can set it on the host
    assert "net.ipv4.tcp_mem" in result["sysctl"]
    # tcp_mem is not visible here: the current capacity is unknown, not an estimated boot default
    assert result["estimate"]["current_tcp_mem_source"] is None
    assert result["estimate"]["current_tcp_mem_pages"] is None
    assert result["estimate"]["current_connections_before_pressure"] is None
    assert result["estimate"]["current_connections_before_stalls"] is None
    assert result["estimate"]["current_settings_hold_target"] is None


@pytest.mark.parametrize(("version", "live_scale"), [((6, 6, 0), 2), ((6, 18, 0), 2), ((5, 15, 0), 2), ((6, 18, 0), 1)])
def test_tcp_adv_win_scale_never_emitted_and_warned_about_on_new_kernels(version, live_scale):
    result = run(make_facts(kernel_version=version, live={"net.ipv4.tcp_adv_win_scale": live_scale}), connections=100)
    assert "net.ipv4.tcp_adv_win_scale" not in result["sysctl"]
    warned = any("tcp_adv_win_scale=2" in warning for warning in result["warnings"])
    assert warned == (version >= (6, 6, 0) and live_scale != 1)


def test_tcp_adv_win_scale_override_dropped_on_new_kernels_kept_on_old():
    override = {"net.ipv4.tcp_adv_win_scale": 2}
    new = run(make_facts(kernel_version=(6, 18, 0)), connections=100, overrides=override)
    assert "net.ipv4.tcp_adv_win_scale" not in new["sysctl"]
    assert any("ignored" in warning for warning in new["warnings"])
    old = run(make_facts(kernel_version=(5, 15, 0)), connections=100, overrides=override)
    assert old["sysctl"]["net.ipv4.tcp_adv_win_scale"] == "2"


@pytest.mark.parametrize(("version", "slab_bytes"), [((4, 19, 0), 3300), ((5, 10, 0), 4700), ((6, 18, 0), 4700)])
def test_slab_figure_by_kernel_version(version, slab_bytes):
    result = run(make_facts(kernel_version=version), connections=1000)
    assert result["estimate"]["slab_bytes_per_connection"] == slab_bytes
    assert result["estimate"]["slab_bytes_at_target"] == 1000 * slab_bytes


def test_64k_pages_keep_socket_triples_ordered():
    # 64 KiB-page kernels boot with tcp_wmem = 65536 16384 ...: min above default
    facts = make_facts(mem_total_bytes=64 * GIB, page_size_bytes=65536)
    result = run(facts, connections=1000)
    for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
        minimum, default, maximum = triple(result, key)
        assert minimum == 65536 and minimum <= default <= maximum
    # per-CPU reserve is 1 MiB of pages: 16 pages of 64 KiB
    assert result["estimate"]["per_cpu_reserve_pages"] == 8 * 16


def test_unknown_boot_defaults_fall_back_to_live_values_then_kernel_caps():
    facts = make_facts(live={"net.ipv4.tcp_wmem": [4096, 16384, 8388608]})
    facts["boot_defaults"] = {"tcp_mem_pages": None, "tcp_rmem_bytes": None, "tcp_wmem_bytes": None}
    result = run(facts, connections=1000, allow_decrease=True)
    assert triple(result, "net.ipv4.tcp_wmem")[2] == 8388608
    assert "(live value, no link given)" in result["explain"]["net.ipv4.tcp_wmem"]
    facts["sysctl"]["net.ipv4.tcp_rmem"].update(present=False, writable=False, value=None, raw=None)
    result = run(facts, connections=1000, allow_decrease=True)
    assert triple(result, "net.ipv4.tcp_rmem")[2] == 6291456
    assert "(kernel cap, no link given)" in result["explain"]["net.ipv4.tcp_rmem"]
    assert result["scope"]["net.ipv4.tcp_rmem"]["reason"] == "absent here: this kernel has no such key under /proc/sys"


def test_every_buffered_direction_costs_at_least_one_page():
    usage = steady_state_usage(
        10,
        resolve_workload(connections=10, active_fraction=1, rx_buffered_bytes=1, tx_buffered_bytes=1),
        parse_facts(make_facts(page_size_bytes=65536, cpu_count=1)),
    )
    assert (usage.rx_pages_per_active, usage.tx_pages_per_active) == (1, 1)
    assert usage.steady_pages == 10 * 2 + 16


def test_usage_already_above_the_new_pressure_is_warned_about():
    result = run(make_facts(used_pages=500000, live={"net.ipv4.tcp_mem": [1, 2, 3]}), connections=1000)
    assert any("already above the recommended pressure" in warning for warning in result["warnings"])


def test_mem_available_too_small_for_the_target_is_warned_about():
    facts = make_facts(mem_total_bytes=16 * GIB)
    facts["memory"]["mem_available_bytes"] = 1 * GIB
    result = run(facts, connections=200000)
    assert any("MemAvailable" in warning for warning in result["warnings"])


def test_none_means_not_given():
    facts = make_facts()
    given_nothing = run(facts, connections=1000)
    given_nones = run(
        facts,
        connections=1000,
        profile=None,
        active_fraction=None,
        rx_buffered_bytes=None,
        tx_buffered_bytes=None,
        bandwidth_bps=None,
        rtt_ms=None,
        memory_fraction=None,
        allow_decrease=None,
        best_effort=None,
        overrides=None,
    )
    assert given_nones == given_nothing


def test_profiles_and_explicit_arguments():
    facts = make_facts()
    many_idle = run(facts, connections=1_000_000, profile="many_idle", allow_decrease=True, memory_fraction=0.5)
    assert many_idle["inputs"]["active_fraction"] == 0.05
    assert many_idle["estimate"]["rx_pages_per_active_connection"] == 2
    arguments = {"connections": 1_000_000, "profile": "many_idle", "allow_decrease": True, "memory_fraction": 0.5}
    explicit = run(facts, active_fraction=0.01, **arguments)
    assert explicit["inputs"]["active_fraction"] == 0.01
    assert triple(explicit, "net.ipv4.tcp_mem")[0] < triple(many_idle, "net.ipv4.tcp_mem")[0]
    bulk = run(facts, connections=1000, profile="bulk_throughput")
    assert bulk["inputs"]["rx_buffered_bytes"] == 262144


# ---------------------------------------------------------------- overrides


def test_overrides_win_are_normalised_and_explained():
    overrides = {"net.ipv4.tcp_rmem": "4096\t87380   67108864", "net.core.optmem_max": 81920}
    result = run(make_facts(), connections=1000, overrides=overrides)
    assert result["sysctl"]["net.ipv4.tcp_rmem"] == "4096 87380 67108864"
    assert result["sysctl"]["net.core.optmem_max"] == "81920"
    assert result["explain"]["net.ipv4.tcp_rmem"].startswith("set by overrides (the model recommended ")
    # the model names its own argument, not the role variable that feeds it
    assert "tcp_memory_" not in " ".join(result["explain"].values())
    # the derived limit follows the operator's triple
    assert result["sysctl"]["net.core.rmem_max"] == "67108864"
    assert result["inputs"]["overrides"]["net.ipv4.tcp_rmem"] == "4096 87380 67108864"


def test_override_breaking_an_invariant_is_warned_about():
    result = run(make_facts(), connections=1000, overrides={"net.core.rmem_max": 1 * MIB})
    assert result["sysctl"]["net.core.rmem_max"] == str(MIB)
    assert any("SO_RCVBUF are capped by net.core.rmem_max=1048576" in warning for warning in result["warnings"])


def test_tcp_mem_override_replaces_an_impossible_target_with_warnings():
    facts = make_facts(mem_total_bytes=16 * GIB)
    result = run(facts, connections=5_000_000, overrides={"net.ipv4.tcp_mem": "100 200 300"})
    assert result["sysctl"]["net.ipv4.tcp_mem"] == "100 200 300"
    assert any("below the target's steady-state usage" in warning for warning in result["warnings"])


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"net.ipv4.tcp_foo": 1}, "unknown key 'net.ipv4.tcp_foo'"),
        ({"net.core.rmem_max": True}, "True (bool)"),
        ({"net.core.rmem_max": "yes"}, "'yes'"),
        ({"net.core.rmem_max": 1.5}, "1.5 (float)"),
        ({"net.core.rmem_max": -1}, "-1 (int)"),
        ({"net.core.rmem_max": "-1"}, "'-1'"),
        ({"net.ipv4.tcp_rmem": "4096 131072"}, "exactly 3"),
        ({"net.ipv4.tcp_rmem": "4096 131072 65536"}, "min <= default <= max"),
        ({"net.ipv4.tcp_mem": "3 2 1"}, "min <= pressure <= max"),
        ({"net.core.wmem_max": 2147483648}, "<= 2147483647"),
        ({"net.ipv4.tcp_moderate_rcvbuf": 2}, "0 or 1"),
        ({"net.core.wmem_max": "1 2"}, "exactly 1"),
        ("net.core.wmem_max=1", "must be a dict"),
    ],
)
def test_bad_overrides_are_rejected_naming_key_and_value(overrides, fragment):
    with pytest.raises(ModelInputError) as caught:
        run(make_facts(), connections=1000, overrides=overrides)
    assert fragment in str(caught.value)
    assert "overrides" in str(caught.value)


# What sysctl_dropin refuses (module_utils/dropin/values.py) the filter refuses first, so the
# role fails before anything is written: a 0 in any memory triple, tcp_adv_win_scale outside the
# kernel's -31..31 (net/ipv4/sysctl_net_ipv4.c tcp_adv_win_scale_min/max).
@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"net.ipv4.tcp_wmem": "0 16384 4194304"}, ["overrides['net.ipv4.tcp_wmem']", "'0 16384 4194304'", ">= 1"]),
        ({"net.ipv4.tcp_rmem": "0 0 0"}, ["overrides['net.ipv4.tcp_rmem']", "'0 0 0'", ">= 1"]),
        ({"net.ipv4.tcp_rmem": "4096 0 6291456"}, ["overrides['net.ipv4.tcp_rmem']", "'4096 0 6291456'", ">= 1"]),
        ({"net.ipv4.tcp_mem": "0 100 200"}, ["overrides['net.ipv4.tcp_mem']", "'0 100 200'", ">= 1"]),
        ({"net.ipv4.udp_mem": "0 1 2"}, ["overrides['net.ipv4.udp_mem']", "'0 1 2'", ">= 1"]),
        ({"net.ipv4.tcp_adv_win_scale": 32}, ["overrides['net.ipv4.tcp_adv_win_scale']", "32 (int)", "-31 and 31"]),
        ({"net.ipv4.tcp_adv_win_scale": -32}, ["overrides['net.ipv4.tcp_adv_win_scale']", "-32 (int)", "-31 and 31"]),
        ({"net.ipv4.tcp_adv_win_scale": "-32"}, ["overrides['net.ipv4.tcp_adv_win_scale']", "'-32'", "-31 and 31"]),
        ({"net.ipv4.tcp_adv_win_scale": "2147483648"}, ["'2147483648'", "-31 and 31"]),
        ({"net.ipv4.tcp_adv_win_scale": "- 2"}, ["overrides['net.ipv4.tcp_adv_win_scale']", "'- 2'"]),
        ({"net.ipv4.tcp_adv_win_scale": "1 -2"}, ["overrides['net.ipv4.tcp_adv_win_scale']", "'1 -2'"]),
        # only tcp_adv_win_scale is signed
        ({"net.core.optmem_max": "-2"}, ["overrides['net.core.optmem_max']", "'-2'", "non-negative"]),
        ({"net.ipv4.tcp_rmem": "-1 2 3"}, ["overrides['net.ipv4.tcp_rmem']", "'-1 2 3'", "non-negative"]),
    ],
)
def test_overrides_the_dropin_module_or_kernel_refuse_are_rejected_by_the_filter(overrides, fragments):
    with pytest.raises(ModelInputError) as caught:
        run(make_facts(), connections=1000, overrides=overrides)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(("value", "expected"), [(-31, "-31"), ("-2", "-2"), (" -31 ", "-31"), (31, "31"), ("0", "0")])
def test_tcp_adv_win_scale_override_within_the_kernel_range_is_kept_on_old_kernels(value, expected):
    result = run(make_facts(kernel_version=(6, 1, 0)), connections=100, overrides={"net.ipv4.tcp_adv_win_scale": value})
    assert result["sysctl"]["net.ipv4.tcp_adv_win_scale"] == expected


def test_triple_override_of_ones_is_accepted():
    result = run(make_facts(), connections=100, overrides={"net.ipv4.tcp_wmem": "1 1 1", "net.ipv4.tcp_mem": "1 1 1"})
    assert result["sysctl"]["net.ipv4.tcp_wmem"] == "1 1 1"
    assert result["sysctl"]["net.ipv4.tcp_mem"] == "1 1 1"


def test_live_value_just_under_the_estimated_boot_default_is_not_raised():
    # The boot default is an estimate from today's zones; an untuned host reads a hair below it.
    facts = make_facts(mem_total_bytes=16 * GIB)
    boot = facts["boot_defaults"]["tcp_mem_pages"]
    live = [value - value // 1000 for value in boot]  # 0.1% under the estimate
    facts["sysctl"]["net.ipv4.tcp_mem"]["value"] = live
    result = run(facts, connections=10)
    assert triple(result, "net.ipv4.tcp_mem") == tuple(live)


def test_live_value_well_under_the_boot_default_is_raised_to_it():
    facts = make_facts(mem_total_bytes=16 * GIB)
    boot = facts["boot_defaults"]["tcp_mem_pages"]
    facts["sysctl"]["net.ipv4.tcp_mem"]["value"] = [value // 2 for value in boot]
    result = run(facts, connections=10)
    assert triple(result, "net.ipv4.tcp_mem") == tuple(boot)


# ---------------------------------------------------------------- statements true per kernel


def test_receive_default_before_4_20_is_the_kernels_87380_and_says_so():
    # a337531b942b (4.20) raised tcp_rmem[1] from 87380 to 131072: a 4.19 kernel boots with 87380
    facts = make_facts(kernel_version=(4, 19, 0))
    facts["boot_defaults"]["tcp_rmem_bytes"][1] = 87380
    facts["sysctl"]["net.ipv4.tcp_rmem"]["value"][1] = 87380
    result = run(facts, connections=1000)
    assert triple(result, "net.ipv4.tcp_rmem")[1] == 87380
    assert "the kernel's initial 87380 B" in result["explain"]["net.ipv4.tcp_rmem"]
    assert "131072" not in result["explain"]["net.ipv4.tcp_rmem"]


def test_receive_default_from_4_20_is_131072():
    result = run(make_facts(kernel_version=(4, 20, 0)), connections=1000)
    assert triple(result, "net.ipv4.tcp_rmem")[1] == 131072
    assert "the kernel's initial 131072 B" in result["explain"]["net.ipv4.tcp_rmem"]


@pytest.mark.parametrize(("version", "lag_pages"), [((5, 15, 0), 0), ((6, 0, 0), 8 * 256), ((6, 18, 0), 8 * 256)])
def test_per_cpu_counter_lag_only_from_6_0(version, lag_pages):
    # 3cd3399dd7a8 (6.0): each CPU folds up to SK_MEMORY_PCPU_RESERVE (1 MiB) into the global counter
    # late; before, every charge reached it at once, so U carries no per-CPU term there.
    result = run(make_facts(cpu_count=8, kernel_version=version), connections=200000)
    assert result["estimate"]["per_cpu_reserve_pages"] == lag_pages
    assert result["estimate"]["steady_state_pages"] == 20000 * (8 + 5) + lag_pages
    assert f"{lag_pages} pages of per-CPU counter lag" in result["explain"]["net.ipv4.tcp_mem"]


# ---------------------------------------------------------------- no change for nothing


def debian12_2048mb_guest() -> dict[str, Any]:
    """The untuned Debian 12 guest of the pressure scenario: the kernel booted with 22695 30263 45390; the facts
    estimate 22950 30600 45900 (1.1% above: memory freed after tcp_init_mem)."""
    facts = make_facts(mem_total_bytes=2048 * MIB, cpu_count=2, kernel_version=(6, 1, 0), used_pages=5)
    facts["boot_defaults"]["tcp_mem_pages"] = [22950, 30600, 45900]
    facts["sysctl"]["net.ipv4.tcp_mem"]["value"] = [22695, 30263, 45390]
    return facts


def test_untuned_host_whose_boot_values_hold_the_target_is_not_changed():
    result = run(debian12_2048mb_guest(), connections=1000)
    assert triple(result, "net.ipv4.tcp_mem") == (22695, 30263, 45390)
    assert "min held up from 1812 to 22695 (kernel boot default" in result["explain"]["net.ipv4.tcp_mem"]
    assert "22950" not in result["explain"]["net.ipv4.tcp_mem"]


def test_untuned_small_host_5_percent_under_the_estimate_is_not_changed():
    # 512 MB guests read 4-6% under the estimate (the initramfs freed after tcp_init_mem weighs more)
    facts = make_facts(mem_total_bytes=512 * MIB, cpu_count=1, kernel_version=(6, 1, 0), used_pages=5)
    boot = facts["boot_defaults"]["tcp_mem_pages"]
    live = [value * 95 // 100 for value in boot]
    facts["sysctl"]["net.ipv4.tcp_mem"]["value"] = live
    assert triple(run(facts, connections=10), "net.ipv4.tcp_mem") == tuple(live)


def test_untuned_host_is_raised_when_the_target_needs_more():
    result = run(debian12_2048mb_guest(), connections=20000)
    assert triple(result, "net.ipv4.tcp_mem")[0] > 22695
    assert triple(result, "net.ipv4.tcp_mem")[0] == result["estimate"]["steady_state_pages"]


def test_live_value_lowered_by_an_operator_is_raised_to_the_boot_default():
    facts = debian12_2048mb_guest()
    facts["sysctl"]["net.ipv4.tcp_mem"]["value"] = [20000, 26000, 40000]  # 13% under: not the boot value
    assert triple(run(facts, connections=1000), "net.ipv4.tcp_mem") == (22950, 30600, 45900)


@pytest.mark.parametrize("source", ["live", "override"])
def test_tcp_mem_above_mem_total_is_an_error_unless_allowed(source):
    # 16 GiB host, tcp_mem[2] of 5,000,000 pages = 19 GiB: more than all RAM
    big = [3_000_000, 4_000_000, 5_000_000]
    live = {"net.ipv4.tcp_mem": big} if source == "live" else None
    overrides = {"net.ipv4.tcp_mem": " ".join(map(str, big))} if source == "override" else None
    facts = make_facts(mem_total_bytes=16 * GIB, live=live)
    with pytest.raises(AboveMemTotalError, match=r"max 5000000 pages \(19.07 GiB\).*more than MemTotal 16.00 GiB"):
        run(facts, connections=1000, overrides=overrides)
    result = run(facts, connections=1000, overrides=overrides, allow_above_mem_total=True)
    assert triple(result, "net.ipv4.tcp_mem") == tuple(big)
    assert "more than MemTotal" in result["warnings"][0]
    assert result["inputs"]["allow_above_mem_total"] is True


def test_live_tcp_mem_above_mem_total_is_replaced_with_allow_decrease():
    facts = make_facts(mem_total_bytes=16 * GIB, live={"net.ipv4.tcp_mem": [3_000_000, 4_000_000, 5_000_000]})
    result = run(facts, connections=1000, allow_decrease=True)
    assert triple(result, "net.ipv4.tcp_mem")[2] < 5_000_000
    assert not any("MemTotal" in warning for warning in result["warnings"])


def test_allow_above_mem_total_must_be_a_boolean():
    with pytest.raises(ModelInputError, match="allow_above_mem_total must be a boolean"):
        run(make_facts(), connections=10, allow_above_mem_total="yes")


# ---------------------------------------------------------------- udp_mem and orphans


def test_explanation_names_udp_mem_and_orphans_from_the_facts():
    result = run(make_facts(mem_total_bytes=16 * GIB), connections=1000)
    explain = result["explain"]["net.ipv4.tcp_mem"]
    udp_mem = make_facts(mem_total_bytes=16 * GIB)["sysctl"]["net.ipv4.udp_mem"]["value"]
    assert f"net.ipv4.udp_mem {' '.join(map(str, udp_mem))} pages" in explain
    assert "own counter" in explain and "on top of this budget" in explain
    assert "up to tcp_max_orphans=65536 sockets closed with data still queued" in explain
    assert result["estimate"]["udp_mem_max_bytes"] == udp_mem[2] * 4096
    assert result["estimate"]["tcp_max_orphans"] == 65536


def test_tcp_max_orphans_not_visible_says_the_default():
    facts = make_facts()
    facts["tcp_max_orphans"] = None  # not visible here
    result = run(facts, connections=1000)
    assert "tcp_max_orphans (half the established-hash size by default)" in result["explain"]["net.ipv4.tcp_mem"]
    assert result["estimate"]["tcp_max_orphans"] is None


def test_container_without_udp_mem_says_it_is_not_visible():
    result = run(make_facts(initial_netns=False), connections=1000)
    assert "net.ipv4.udp_mem (not visible here)" in result["explain"]["net.ipv4.tcp_mem"]
    assert result["estimate"]["udp_mem_max_bytes"] is None


def test_udp_mem_beside_tcp_mem_beyond_mem_total_is_warned():
    # 4 GiB host: tcp_mem max 2 GiB (override) + udp_mem max 3 GiB (live) + slab: more than all RAM
    facts = make_facts(mem_total_bytes=4 * GIB, live={"net.ipv4.udp_mem": [393216, 524288, 786432]})
    result = run(facts, connections=1000, overrides={"net.ipv4.tcp_mem": "262144 393216 524288"})
    assert any(w.startswith("net.ipv4.udp_mem max 3.00 GiB is UDP's own limit") for w in result["warnings"])
    quiet = run(make_facts(mem_total_bytes=4 * GIB), connections=1000)
    assert not any("UDP's own limit" in warning for warning in quiet["warnings"])


def test_tcp_max_orphans_fact_is_validated():
    facts = make_facts()
    facts["tcp_max_orphans"] = "many"
    with pytest.raises(ModelInputError, match=r"facts.tcp_max_orphans must be an integer"):
        run(facts, connections=10)


# ---------------------------------------------------------------- send maximum as the kernel sizes it


def kmalloc_bucket(size_bytes: int) -> int:
    """The kmalloc-N slab a head of size_bytes lands in (mm/slab_common.c kmalloc_info, sizes above 192 B)."""
    return next(bucket for bucket in (256, 512, 1024, 2048, 4096, 8192) if bucket >= size_bytes)


def test_per_mss_truesize_is_the_kernels_worst_case_skb():
    # tcp_sndbuf_expand: roundup_pow_of_two(1460 + MAX_TCP_HEADER 320 + skb_shared_info 320) + sk_buff 256
    assert per_mss_truesize_bytes() == kmalloc_bucket(1460 + 320 + 320) + 256 == 4096 + 256


@pytest.mark.parametrize("congestion_control", ["cubic", "bbr", None])
def test_send_max_is_twice_the_bdp_at_the_gso_overhead_not_tcp_sndbuf_expands_worst_case(congestion_control):
    facts = make_facts(mem_total_bytes=64 * GIB)
    facts["tcp_congestion_control"] = congestion_control
    # 1 Gbit/s x 100 ms: BDP 12,500,000 B; bulk 64 KiB skbs cost (65536 + 1280) / 65536 each
    result = run(facts, connections=10, profile="bulk_throughput", bandwidth_bps=1_000_000_000, rtt_ms=100)
    needed = -(-2 * 12_500_000 * (65536 + 1280) // 65536)
    assert triple(result, "net.ipv4.tcp_wmem")[2] == -(-needed // 4096) * 4096
    assert triple(result, "net.ipv4.tcp_wmem")[2] <= 2.5 * 12_500_000
    # the old rule, tcp_sndbuf_expand's non-GSO ask, was 2 (3 under bbr) x 8633 segments x 4352 B: 6x (9x) the BDP
    assert triple(result, "net.ipv4.tcp_wmem")[2] < 2 * 8633 * 4352
    assert "GSO truesize overhead (65536 + skb head 1280) / 65536" in result["explain"]["net.ipv4.tcp_wmem"]
    assert int(result["sysctl"]["net.core.wmem_max"]) == triple(result, "net.ipv4.tcp_wmem")[2]


def test_send_max_uses_a_measured_send_factor():
    facts = make_facts(mem_total_bytes=64 * GIB)
    facts["calibration"] = {
        "rx": {"factor": None, "sockets": 0, "payload_bytes": 0},
        "tx": {"factor": 1.1, "sockets": 500, "payload_bytes": 50 << 20},
    }
    result = run(facts, connections=10, profile="bulk_throughput", bandwidth_bps=1_000_000_000, rtt_ms=100)
    assert triple(result, "net.ipv4.tcp_wmem")[2] == -(-27_500_000 // 4096) * 4096  # 2 x 12,500,000 x 1.1


def test_tcp_notsent_lowat_only_for_bulk_profiles():
    facts = make_facts(mem_total_bytes=64 * GIB)
    bulk = run(facts, connections=10, profile="bulk_throughput", bandwidth_bps=100_000_000, rtt_ms=800)
    assert bulk["sysctl"]["net.ipv4.tcp_notsent_lowat"] == "131072"
    assert "the kernel's default UINT_MAX" in bulk["explain"]["net.ipv4.tcp_notsent_lowat"]
    assert bulk["scope"]["net.ipv4.tcp_notsent_lowat"]["scope"] == "netns"
    assert "net.ipv4.tcp_notsent_lowat" not in run(facts, connections=1000)["sysctl"]


def test_bulk_flows_at_their_maxima_past_the_pressure_threshold_are_warned_with_the_count_that_fits():
    facts = make_facts(mem_total_bytes=16 * GIB)
    # 10 bulk flows over 10 Gbit/s x 100 ms: each send maximum is ~255 MB, ten of them pass tcp_mem[1]
    result = run(facts, connections=10, profile="bulk_throughput", bandwidth_bps=10_000_000_000, rtt_ms=100)
    pressure_bytes = triple(result, "net.ipv4.tcp_mem")[1] * 4096
    maximum = triple(result, "net.ipv4.tcp_wmem")[2]
    assert 10 * maximum > pressure_bytes
    warning = next(w for w in result["warnings"] if w.startswith(f"net.ipv4.tcp_wmem[2]={maximum} bytes: 10 flows"))
    assert f"this host carries {pressure_bytes // maximum} such flow" in warning
    quiet = run(facts, connections=1000)  # no link: kernel maxima, one flow at a time
    assert not any("at this maximum would hold" in w for w in quiet["warnings"])


@pytest.mark.parametrize(
    ("kernel", "rx_factor", "expected"),
    [
        # before 6.6: (2 x BDP + 16 x 1460) / 1460 segments x rcvmem, rcvmem = SKB_TRUESIZE(1460 + 320) = 2356
        # raised by 128 until rcvmem - rcvmem / 2 >= 1460: 2996 B; the window it advertises is half
        ((6, 1, 0), None, (2 * 62_500_000 + 16 * 1460) // 1460 * 2996),
        # from 6.6: (2 x BDP + 16 x advmss) x the receive truesize (1 / scaling_ratio)
        ((6, 12, 0), 1.02, -(-(2 * 62_500_000 + 16 * 1460) * 102 // 100)),
    ],
)
def test_receive_max_lets_autotuning_reach_its_target(kernel, rx_factor, expected):
    facts = make_facts(mem_total_bytes=64 * GIB, kernel_version=kernel)
    arguments = {"rx_truesize_factor": rx_factor} if rx_factor else {}
    # the example: 10 Gbit/s x 50 ms, BDP 62.5 MB
    result = run(facts, connections=10, bandwidth_bps=10_000_000_000, rtt_ms=50, **arguments)
    assert triple(result, "net.ipv4.tcp_rmem")[2] == -(-expected // 4096) * 4096
    assert int(result["sysctl"]["net.core.rmem_max"]) == triple(result, "net.ipv4.tcp_rmem")[2]
    if kernel < (6, 6, 0):  # the window advertised from that buffer still holds twice the BDP
        assert triple(result, "net.ipv4.tcp_rmem")[2] // 2 >= 2 * 62_500_000


def test_receive_max_follows_a_changed_tcp_adv_win_scale_before_6_6():
    facts = make_facts(mem_total_bytes=64 * GIB, kernel_version=(5, 10, 0), live={"net.ipv4.tcp_adv_win_scale": 2})
    result = run(facts, connections=10, bandwidth_bps=1_000_000_000, rtt_ms=100)
    # scale 2: window = space - space / 4, rcvmem 2356 already holds 1767 >= 1460
    expected = (2 * 12_500_000 + 16 * 1460) // 1460 * 2356
    assert triple(result, "net.ipv4.tcp_rmem")[2] == -(-expected // 4096) * 4096


def test_decrease_of_a_live_per_socket_maximum_is_warned():
    live = {"net.ipv4.tcp_wmem": [4096, 16384, 67108864], "net.core.rmem_max": 134217728}
    result = run(make_facts(live=live), connections=1000, allow_decrease=True)
    warnings = [w for w in result["warnings"] if "(allow_decrease=true)" in w]
    assert any(w.startswith("net.ipv4.tcp_wmem[2] goes down from the live 67108864 to 4194304") for w in warnings)
    assert any(w.startswith("net.core.rmem_max goes down from the live 134217728 to 6291456") for w in warnings)
    kept = run(make_facts(live=live), connections=1000)
    assert not any("goes down" in warning for warning in kept["warnings"])


def test_congestion_control_fact_is_validated():
    facts = make_facts()
    facts["tcp_congestion_control"] = "cubic; reboot"
    with pytest.raises(ModelInputError, match=r"facts\.tcp_congestion_control must be an algorithm name"):
        run(facts, connections=10)


# ---------------------------------------------------------------- messages and page granularity


def test_skb_head_truesize_is_the_kernels_arithmetic():
    # SKB_DATA_ALIGN(sizeof(struct sk_buff)) = 256 on x86_64; the head kmalloc'ed for MAX_TCP_HEADER (320)
    # plus skb_shared_info (320) is rounded up to the 1024-byte kmalloc bucket
    sk_buff_bytes, max_tcp_header_bytes, shared_info_bytes = 256, 320, 320
    head_bytes = sk_buff_bytes + kmalloc_bucket(max_tcp_header_bytes + shared_info_bytes)
    assert SKB_HEAD_TRUESIZE_BYTES == head_bytes == 1280
    # the measurements: ~2.2x at 1 KiB, ~7x at 200 B per write
    assert bytes_charged(1024, 1024, Fraction(1)) / 1024 == Fraction(2304, 1024)
    assert round(float(bytes_charged(200, 200, Fraction(1)) / 200), 1) == 7.4


@pytest.mark.parametrize(
    ("payload", "message", "skbs"), [(0, 1024, 0), (1, 1024, 1), (1024, 1024, 1), (1025, 1024, 2), (262144, 10**6, 4)]
)
def test_one_skb_per_message_at_most_64_kib_each(payload, message, skbs):
    assert skbs_queued(payload, message) == skbs


def test_small_sends_cost_a_head_each_and_large_ones_follow_the_factor():
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=8)
    # 16 KiB in 1 KiB writes: 16384 + 16 x 1280 = 36864 B = 9 pages, against 16384 x 1.25 = 5 pages
    small = run(facts, connections=1000, tx_buffered_bytes=16384, message_bytes=1024)
    assert small["estimate"]["tx_pages_per_active_connection"] == 9
    assert "tx 16384 B + 16 skb heads x 1280 B (1024 B messages) = 9 pages" in small["explain"]["net.ipv4.tcp_mem"]
    large = run(facts, connections=1000, tx_buffered_bytes=16384, message_bytes=16384)
    assert large["estimate"]["tx_pages_per_active_connection"] == 5
    assert large["inputs"]["message_bytes"] == 16384


def test_a_small_broadcast_to_every_connection_costs_a_page_each():
    # sk_mem_pages: a socket holding any data holds at least one page, whatever the average says
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=8)
    result = run(facts, connections=100_000, active_fraction=1, rx_buffered_bytes=0, tx_buffered_bytes=200)
    assert result["estimate"]["steady_state_pages"] == 100_000 + 8 * 256


@pytest.mark.parametrize("profile", ["many_idle", "balanced", "bulk_throughput"])
def test_every_profile_sets_a_message_size(profile):
    assert run(make_facts(), connections=10, profile=profile)["inputs"]["message_bytes"] in (4096, 16384, 65536)


@pytest.mark.parametrize("value", [0, -1, "big", 1.5, True])
def test_bad_message_bytes_is_named(value):
    with pytest.raises(ModelInputError, match="message_bytes must be"):
        run(make_facts(), connections=10, message_bytes=value)


# ---------------------------------------------------------------- factors measured on the host


def calibration(rx_factor, rx_sockets, rx_payload, tx_factor=None, tx_sockets=0, tx_payload=0) -> dict[str, Any]:
    return {
        "rx": {"factor": rx_factor, "sockets": rx_sockets, "payload_bytes": rx_payload, "charged_bytes": 0},
        "tx": {"factor": tx_factor, "sockets": tx_sockets, "payload_bytes": tx_payload, "charged_bytes": 0},
        "sampled_sockets": rx_sockets + tx_sockets,
        "max_sockets": 10000,
        "stopped_early": False,
        "method": "inet_diag INET_DIAG_MEMINFO",
    }


def test_a_factor_measured_on_enough_sockets_replaces_the_default():
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=8)
    facts["calibration"] = calibration(2.8, 500, 50 * MIB, tx_factor=1.02, tx_sockets=400, tx_payload=40 * MIB)
    result = run(facts, connections=200000)
    # rx 16384 B x 2.8 = 45875.2 B = 12 pages (default x2: 8); tx 16384 x 1.25 = 5 pages stays (max with heads)
    assert result["estimate"]["rx_pages_per_active_connection"] == 12
    assert result["inputs"]["rx_truesize_factor"] == 2.8
    explain = result["explain"]["net.ipv4.tcp_mem"]
    assert f"rx x2.8 measured on 500 sockets ({50 * MIB} B queued, calibrate)" in explain
    assert f"tx x1.02 measured on 400 sockets ({40 * MIB} B queued, calibrate)" in explain


@pytest.mark.parametrize(
    ("sockets", "payload", "reason"),
    [(99, 50 * MIB, "99 sockets with data, fewer than 100"), (500, MIB - 1, f"{MIB - 1} B queued, less than")],
)
def test_a_small_sample_keeps_the_default_and_says_why(sockets, payload, reason):
    facts = make_facts()
    facts["calibration"] = calibration(2.8, sockets, payload)
    result = run(facts, connections=1000)
    assert result["inputs"]["rx_truesize_factor"] == 2
    assert f"rx x2 default (calibration: {reason}" in result["explain"]["net.ipv4.tcp_mem"]


def test_an_explicit_factor_wins_over_the_measured_one():
    facts = make_facts()
    facts["calibration"] = calibration(2.8, 500, 50 * MIB)
    result = run(facts, connections=1000, rx_truesize_factor=1.5)
    assert result["inputs"]["rx_truesize_factor"] == 1.5
    assert "rx x1.5 given" in result["explain"]["net.ipv4.tcp_mem"]


def test_a_measured_factor_is_clamped_to_the_argument_range():
    facts = make_facts()
    facts["calibration"] = calibration(0.7, 500, 50 * MIB)  # loopback coalescing can report below 1
    assert run(facts, connections=1000)["inputs"]["rx_truesize_factor"] == 1


def test_without_calibration_the_explanation_says_default():
    result = run(make_facts(), connections=1000)
    assert "rx x2 default (no calibration in the facts)" in result["explain"]["net.ipv4.tcp_mem"]


def test_malformed_calibration_is_named():
    facts = make_facts()
    facts["calibration"] = {"rx": {"factor": "x", "sockets": 1, "payload_bytes": 1}, "tx": {}}
    with pytest.raises(ModelInputError, match=r"facts\.calibration\.rx\.factor must be a number"):
        run(facts, connections=10)


# ---------------------------------------------------------------- charges version by version


def with_socket_memory(facts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Facts carrying socket_memory (docs/data-model.md), the fields not given null."""
    names = ("mem_pcpu_rsv_pages", "bypass_prot_mem", "per_mss_bytes", "initial_sndbuf_bytes", "probe_mss_bytes")
    return {**facts, "socket_memory": {name: fields.get(name) for name in names}}


@pytest.mark.parametrize(
    ("version", "release", "head_bytes"),
    [
        ((5, 10, 0), "5.10.0-30-amd64", 1280),  # kmalloc-1024 of SKB_HEAD_ALIGN(MAX_TCP_HEADER 320) = 640
        ((6, 1, 0), "6.1.0-31-amd64", 1280),
        ((6, 1, 0), "6.1.0-31-cloud-amd64", 1280),  # 576 B, still kmalloc-1024
        ((6, 5, 0), "6.5.0-test", 256 + 640),  # skb_small_head_cache of SKB_HEAD_ALIGN(320)
        ((6, 12, 0), "6.12.9-amd64", 256 + 704),  # SKB_HEAD_ALIGN(max(320, GRO_MAX_HEAD_PAD 368))
        ((6, 12, 0), "6.12.9-cloud-amd64", 256 + 640),
    ],
)
def test_skb_head_charge_follows_the_kernel_version_and_flavour(version, release, head_bytes):
    facts = make_facts(kernel_version=version)
    facts["kernel"]["release"] = release
    # 16 KiB pushed in 1 KiB writes: 16 skbs, each its payload plus a head
    result = run(facts, connections=1000, tx_buffered_bytes=16384, message_bytes=1024)
    assert f"16 skb heads x {head_bytes} B" in result["explain"]["net.ipv4.tcp_mem"]
    assert result["estimate"]["tx_pages_per_active_connection"] == -(-(16384 + 16 * head_bytes) // 4096)


def test_measured_per_mss_tells_the_cloud_flavour_apart():
    facts = with_socket_memory(make_facts(kernel_version=(6, 12, 0)), per_mss_bytes=2304)  # release says nothing
    result = run(facts, connections=1000, tx_buffered_bytes=16384, message_bytes=1024)
    assert "16 skb heads x 896 B" in result["explain"]["net.ipv4.tcp_mem"]


@pytest.mark.parametrize(
    ("version", "steady_pages"),
    [
        # 5.5 .. 5.19 round each socket to SK_MEM_QUANTUM 4096 B: rx 4096 x 2 = 2 quanta, tx 16384 B in 4 KiB
        # writes + 4 heads x 1280 B = 21504 B = 6 quanta: 8 x 4096 B per active socket; 5000 of them = 2500 pages
        ((5, 10, 0), 2500),
        # from 6.0 the unit is the page again: one 64 KiB page per direction, + 4 CPUs x 16 pages of per-CPU lag
        ((6, 1, 0), 5000 * 2 + 4 * 16),
    ],
)
def test_64_kib_page_kernels_charge_in_sk_mem_quantum_units_before_6_0(version, steady_pages):
    facts = make_facts(mem_total_bytes=256 * GIB, page_size_bytes=65536, cpu_count=4, kernel_version=version)
    result = run(facts, connections=100_000, profile="many_idle")
    assert result["estimate"]["steady_state_pages"] == steady_pages


def test_per_cpu_reserve_comes_from_mem_pcpu_rsv_and_is_not_scaled():
    facts = with_socket_memory(make_facts(kernel_version=(6, 12, 0), cpu_count=8), mem_pcpu_rsv_pages=64)
    result = run(facts, connections=200_000)
    buffers = 20000 * (8 + 5)
    assert result["estimate"]["per_cpu_reserve_pages"] == 8 * 64
    assert triple(result, "net.ipv4.tcp_mem") == (buffers + 512, -(-buffers * 4 // 3) + 512, 2 * buffers + 512)
    assert "8 CPUs x net.core.mem_pcpu_rsv 64 pages" in result["explain"]["net.ipv4.tcp_mem"]
    fallback = run(make_facts(kernel_version=(6, 12, 0), cpu_count=8), connections=200_000)
    assert fallback["estimate"]["per_cpu_reserve_pages"] == 8 * 256  # the fixed 1 MiB where the sysctl is absent
    old = run(with_socket_memory(make_facts(kernel_version=(5, 10, 0), cpu_count=8)), connections=200_000)
    assert old["estimate"]["per_cpu_reserve_pages"] == 0  # no per-CPU batch before 6.0


@pytest.mark.parametrize("bypass", [True, False, None])
def test_bypass_prot_mem_is_said_when_set(bypass):
    facts = with_socket_memory(make_facts(kernel_version=(6, 18, 0)), bypass_prot_mem=bypass)
    result = run(facts, connections=1000)
    said = "net.core.bypass_prot_mem=1" in result["explain"]["net.ipv4.tcp_mem"]
    assert said == (bypass is True)
    assert any("charged only to their memory cgroup" in warning for warning in result["warnings"]) == said


@pytest.mark.parametrize(
    ("socket_memory", "release", "expected"),
    [
        ({"initial_sndbuf_bytes": 46080, "per_mss_bytes": 2304}, "6.1.0-31-cloud-amd64", "46080 B (measured on this"),
        ({"per_mss_bytes": 2304}, "6.1.0-31-amd64", "46080 B (2 x 10 segments x 2304 B (measured per_mss))"),
        ({}, "6.1.0-31-amd64", "87040 B (2 x 10 segments x 4352 B (this kernel flavour's per_mss))"),
        ({}, "6.1.0-31-cloud-amd64", "46080 B (2 x 10 segments x 2304 B (this kernel flavour's per_mss))"),
    ],
)
def test_initial_send_buffer_is_tcp_sndbuf_expands_not_tcp_wmem_1(socket_memory, release, expected):
    facts = with_socket_memory(make_facts(), **socket_memory)
    facts["kernel"]["release"] = release
    explain = run(facts, connections=1000)["explain"]["net.ipv4.tcp_wmem"]
    assert f"an established socket starts at tcp_sndbuf_expand's {expected}" in explain
    assert "SO_SNDBUF of a socket before it connects" in explain


def split_calibration(other: tuple[int, int, float], loopback: tuple[int, int, float], stopped_early: bool = False):
    def sample(sockets: int, payload: int, factor: float) -> dict[str, Any]:
        entry = {"sockets": sockets, "payload_bytes": payload, "charged_bytes": int(payload * factor), "factor": factor}
        return {"sockets": sockets, "rx": entry, "tx": {"sockets": 0, "payload_bytes": 0, "factor": None}}

    return {
        "loopback": sample(*loopback),
        "other": sample(*other),
        "stopped_early": stopped_early,
        "sampled_sockets": other[0] + loopback[0],
        "max_sockets": 10000,
    }


def test_calibration_prefers_the_non_loopback_factor_when_its_sample_is_large_enough():
    facts = make_facts()
    facts["calibration"] = split_calibration(other=(300, 30 << 20, 1.4), loopback=(500, 50 << 20, 1.06))
    explain = run(facts, connections=1000)["explain"]["net.ipv4.tcp_mem"]
    assert "rx x1.4 measured on 300 non-loopback sockets" in explain


def test_calibration_falls_back_to_loopback_and_says_when_the_sample_stopped_early():
    facts = make_facts()
    facts["calibration"] = split_calibration(
        other=(20, 30 << 20, 2.8), loopback=(500, 50 << 20, 1.06), stopped_early=True
    )
    explain = run(facts, connections=1000)["explain"]["net.ipv4.tcp_mem"]
    assert "rx x1.06 measured on 500 loopback sockets" in explain
    assert "reading stopped at calibrate_sample" in explain
    assert "tx x1.25 default (calibration: non-loopback 0 sockets with data" in explain


def test_send_queue_ceiling_is_tcp_fragments_allowance():
    """tcp_fragment() splits queued skbs until sk_wmem_queued / 2 passes sk_sndbuf + 2 * SKB_TRUESIZE(64 KiB):
    a bulk flow's queue can be charged up to twice its send buffer plus two full-size skbs."""
    truesize_64k = 65536 + 256 + 320
    assert send_queue_ceiling_bytes(20_400_000) == 2 * (20_400_000 + 2 * truesize_64k)

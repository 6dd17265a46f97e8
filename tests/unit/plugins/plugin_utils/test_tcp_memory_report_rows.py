# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the report playbook takes from the filter as plain data: per-key rows, whether the current
settings hold the target, and one "not running as root" warning instead of one per key."""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.netstack.tcp_tuning.plugins.filter.recommend_tcp_memory import recommend_tcp_memory
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    GIB,
    make_facts,
)


def as_gathered_without_root(facts: dict[str, Any]) -> dict[str, Any]:
    """What tcp_memory_facts returns for a non-root login: values read, nothing writable, root false."""
    facts = copy.deepcopy(facts)
    for entry in facts["sysctl"].values():
        entry["writable"] = False
    facts["root"] = False
    return facts


def test_rows_are_sorted_and_carry_live_recommended_settable_and_why():
    facts = make_facts(live={"net.core.rmem_max": 212992})
    result = recommend_tcp_memory(facts, connections=1000)
    rows = result["rows"]
    assert [row["key"] for row in rows] == sorted(result["sysctl"])
    assert all(set(row) == {"key", "live", "recommended", "settable", "why"} for row in rows)
    by_key = {row["key"]: row for row in rows}
    # live is the facts' raw value with its tabs made single spaces, as the report always showed it
    raw = facts["sysctl"]["net.ipv4.tcp_mem"]["raw"]
    assert by_key["net.ipv4.tcp_mem"]["live"] == " ".join(raw.split())
    assert by_key["net.core.rmem_max"]["live"] == "212992"
    for key, row in by_key.items():
        assert row["recommended"] == result["sysctl"][key]
        assert row["why"] == result["explain"][key]
        assert row["settable"] is True


def test_absent_key_has_no_live_value_and_is_not_settable():
    rows = recommend_tcp_memory(make_facts(initial_netns=False), connections=1000)["rows"]
    tcp_mem = next(row for row in rows if row["key"] == "net.ipv4.tcp_mem")
    assert tcp_mem["live"] is None and tcp_mem["settable"] is False


def test_current_settings_hold_a_small_target_but_not_a_large_one():
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=8)
    small = recommend_tcp_memory(facts, connections=1000)["estimate"]
    large = recommend_tcp_memory(facts, connections=200000)["estimate"]
    # the boot tcp_mem of a 16 GiB host holds about 194000 balanced connections before pressure
    assert small["current_connections_before_pressure"] >= 1000
    assert small["current_settings_hold_target"] is True
    assert large["current_connections_before_pressure"] < 200000
    assert large["current_settings_hold_target"] is False


def test_capacity_unknown_without_tcp_mem():
    facts = make_facts(initial_netns=False)
    facts["boot_defaults"]["tcp_mem_pages"] = None
    estimate = recommend_tcp_memory(facts, connections=1000)["estimate"]
    assert estimate["current_connections_before_pressure"] is None
    assert estimate["current_settings_hold_target"] is None


def test_without_root_one_warning_replaces_one_per_key():
    as_root = recommend_tcp_memory(make_facts(), connections=1000)
    facts = as_gathered_without_root(make_facts())
    result = recommend_tcp_memory(facts, connections=1000)
    about_root = [warning for warning in result["warnings"] if "not running as root" in warning]
    assert len(about_root) == 1 and about_root[0].startswith("not running as root")
    assert "not judged" in about_root[0] and "net.ipv4.tcp_rmem" in about_root[0]
    assert not [warning for warning in result["warnings"] if "can't be set here" in warning]
    assert all(row["settable"] is None for row in result["rows"])
    assert all(entry["reason"].startswith("not judged: not running as root") for entry in result["scope"].values())
    # the values themselves are the same as root would get
    assert result["sysctl"] == as_root["sysctl"]


def test_without_root_an_absent_key_is_still_reported_as_absent():
    facts = as_gathered_without_root(make_facts(initial_netns=False))
    result = recommend_tcp_memory(facts, connections=1000)
    assert result["scope"]["net.ipv4.tcp_mem"]["settable"] is False
    assert "absent here" in result["scope"]["net.ipv4.tcp_mem"]["reason"]
    assert len([warning for warning in result["warnings"] if "not running as root" in warning]) == 1
    assert any(warning.startswith("net.ipv4.tcp_mem can't be set here (absent here") for warning in result["warnings"])


def test_as_root_a_read_only_key_is_reported_read_only():
    facts = make_facts()
    facts["sysctl"]["net.core.rmem_max"]["writable"] = False
    assert facts["root"] is True
    result = recommend_tcp_memory(facts, connections=1000)
    assert result["scope"]["net.core.rmem_max"]["settable"] is False
    assert any("net.core.rmem_max can't be set here (read-only here)" in warning for warning in result["warnings"])
    assert not any("not running as root" in warning for warning in result["warnings"])


def test_unsettable_lists_each_key_that_cannot_be_set_with_its_reason():
    facts = make_facts(initial_netns=False)
    facts["sysctl"]["net.core.rmem_max"]["writable"] = False
    result = recommend_tcp_memory(facts, connections=1000)
    unsettable = result["unsettable"]
    # in a container the global tcp_mem is absent; rmem_max was made read-only above; the per-netns
    # tcp_rmem stays writable
    assert unsettable["net.ipv4.tcp_mem"].startswith("absent here: a global key")
    assert unsettable["net.core.rmem_max"].startswith("read-only here")
    assert "net.ipv4.tcp_rmem" not in unsettable
    assert list(unsettable) == sorted(unsettable)
    assert set(unsettable) <= set(result["sysctl"])
    for key, reason in unsettable.items():
        assert f"{key} can't be set here ({reason})" in " ".join(result["warnings"])


def test_unsettable_is_empty_when_every_key_can_be_set():
    assert recommend_tcp_memory(make_facts(), connections=1000)["unsettable"] == {}


def test_unsettable_leaves_out_keys_not_judged_without_root():
    facts = as_gathered_without_root(make_facts(initial_netns=False))
    unsettable = recommend_tcp_memory(facts, connections=1000)["unsettable"]
    # absent keys are still known unsettable; present ones are unjudged (settable null), not unsettable
    assert "net.ipv4.tcp_mem" in unsettable
    assert "net.ipv4.tcp_rmem" not in unsettable and "net.core.rmem_max" not in unsettable

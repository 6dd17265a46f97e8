# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.plan import (
    keys_to_write,
    managed_settings,
    plan_keys,
    readback_mismatches,
)

SETTINGS = {"net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.tcp_wmem": "4096 16384 4194304"}


def test_plan_compares_whitespace_normalised_and_only_sets_what_differs():
    live = {"net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.tcp_wmem": "4096 16384 1000"}
    plan = plan_keys(SETTINGS, {}, live)
    assert plan["net.ipv4.tcp_rmem"]["action"] == "unchanged"
    assert plan["net.ipv4.tcp_wmem"] == {
        "action": "set",
        "before": "4096 16384 1000",
        "after": "4096 16384 4194304",
        "reason": "live value differs",
    }
    assert keys_to_write(plan) == ["net.ipv4.tcp_wmem"]


def test_skipped_keys_are_reported_with_their_reason_and_never_written():
    skip = {"net.ipv4.tcp_mem": "global, read-only in this namespace", "net.ipv4.tcp_rmem": "asked"}
    plan = plan_keys(SETTINGS, skip, {"net.ipv4.tcp_mem": None, "net.ipv4.tcp_rmem": "1 2 3"})
    assert plan["net.ipv4.tcp_mem"] == {
        "action": "skipped",
        "after": None,
        "before": None,
        "reason": "global, read-only in this namespace",
    }
    assert plan["net.ipv4.tcp_rmem"]["action"] == "skipped"
    assert keys_to_write(plan) == ["net.ipv4.tcp_wmem"]
    assert managed_settings(SETTINGS, skip) == {"net.ipv4.tcp_wmem": "4096 16384 4194304"}


def test_file_only_mode_says_when_the_value_takes_effect():
    plan = plan_keys(SETTINGS, {}, {}, apply_live=False)
    assert "apply=false" in plan["net.ipv4.tcp_rmem"]["reason"]


def test_readback_mismatches_name_what_the_kernel_kept():
    expected = {"net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.tcp_wmem": "4096 16384 0"}
    read_back = {"net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.tcp_wmem": "4096 16384 4194304"}
    assert readback_mismatches(expected, read_back) == {"net.ipv4.tcp_wmem": "4096 16384 4194304"}
    assert readback_mismatches(expected, expected) == {}

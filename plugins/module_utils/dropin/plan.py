# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decide, per key, what the sysctl_dropin module does with the live value (pure functions)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import normalise_value

ACTION_UNCHANGED = "unchanged"
ACTION_SET = "set"
ACTION_SKIPPED = "skipped"


def plan_keys(
    settings: Mapping[str, str],
    skip: Mapping[str, str],
    live: Mapping[str, Optional[str]],
    apply_live: bool = True,
) -> Dict[str, Dict[str, Any]]:
    """key -> {before, after, action, reason}; `live` holds normalised live values (None = absent)."""
    plan: Dict[str, Dict[str, Any]] = {}
    for key in sorted(set(settings) | set(skip)):
        before = live.get(key)
        after = normalise_value(str(settings[key])) if key in settings else None
        if key in skip:
            entry = {"action": ACTION_SKIPPED, "after": None, "reason": str(skip[key])}
        elif before == after:
            entry = {"action": ACTION_UNCHANGED, "after": after, "reason": "live value already matches"}
        elif apply_live:
            entry = {"action": ACTION_SET, "after": after, "reason": "live value differs"}
        else:
            entry = {
                "action": ACTION_SET,
                "after": after,
                "reason": "written to the drop-in only (apply=false): takes effect at boot or on sysctl --system",
            }
        entry["before"] = before
        plan[key] = entry
    return plan


def keys_to_write(plan: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """Keys whose live value must be written, in a stable order."""
    return sorted(key for key, entry in plan.items() if entry["action"] == ACTION_SET)


def managed_settings(settings: Mapping[str, str], skip: Mapping[str, str]) -> Dict[str, str]:
    """The keys that go into the drop-in: everything asked for except what is skipped."""
    return {key: normalise_value(str(value)) for key, value in settings.items() if key not in skip}


def readback_mismatches(expected: Mapping[str, str], read_back: Mapping[str, Optional[str]]) -> Dict[str, Any]:
    """key -> what the kernel kept, for every key whose read-back value is not the one written."""
    return {key: read_back.get(key) for key in sorted(expected) if read_back.get(key) != expected[key]}

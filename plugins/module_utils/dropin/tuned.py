# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether tuned's active profile overrides a managed key (pure functions of file texts).

tuned applies the [sysctl] section of its active profile (includes first, then the profile's own
lines; with several active profiles the later ones win). Then, with `reapply_sysctl = 1` in
tuned-main.conf (tuned's default), it applies /run/sysctl.d and /etc/sysctl.d (file name order)
and /etc/sysctl.conf again, so a drop-in there wins over the profile; /usr/lib/sysctl.d is not
re-applied. With `reapply_sysctl = 0` the profile's values stay.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.precedence import (
    Assignment,
    key_matches,
    normalise_conf_key,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import normalise_value

# tuned's record of its active profiles (post_loaded_profile sits beside it) and its main configuration.
TUNED_ACTIVE_PROFILE = "/etc/tuned/active_profile"
TUNED_MAIN_CONF = "/etc/tuned/tuned-main.conf"
# Where tuned looks for PROFILE/tuned.conf, first match wins (tuned >= 2.24 uses the profiles/ subdirectories).
TUNED_PROFILE_DIRS = ("/etc/tuned/profiles", "/etc/tuned", "/usr/lib/tuned/profiles", "/usr/lib/tuned")
# The directories tuned re-applies after its profile when reapply_sysctl is on (tuned's SYSCTL_CONFIG_DIRS).
TUNED_REAPPLIED_ROOTS = ("/run/sysctl.d", "/etc/sysctl.d")
# tuned runs now (its pid file) or starts at boot (an enabled unit): only then does its profile matter.
TUNED_IN_USE_PATHS = ("/run/tuned/tuned.pid", "/etc/systemd/system/*.wants/tuned.service")
MAX_INCLUDE_DEPTH = 16
# Options of a tuned plugin section, not sysctl keys (uname_regex/cpuinfo_regex make a section conditional:
# such a section is taken as active, the cautious reading).
PLUGIN_OPTIONS = frozenset(
    {"type", "devices", "devices_udev_regex", "replace", "enabled", "priority", "drop", "uname_regex", "cpuinfo_regex"}
)


class TunedProfile(NamedTuple):
    includes: List[str]  # parent profiles named in [main] include=
    sysctl: List[Assignment]  # lines of [sysctl] sections (or sections with type=sysctl)


class TunedAssignment(NamedTuple):
    path: str  # the tuned.conf that sets it
    assignment: Assignment


def unquote(value: str) -> str:
    """tuned strips one pair of surrounding quotes from a value."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_tuned_profile(text: str) -> TunedProfile:
    """[main] include= and the sysctl assignments of one tuned.conf."""
    sections: Dict[str, List[Assignment]] = {}
    types: Dict[str, str] = {}
    includes: List[str] = []
    section = ""
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            sections.setdefault(section, [])
            continue
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if section == "main" and key == "include":
            includes.extend(name for name in re.split(r"[\s,;]+", value) if name)
        elif key == "type":
            types[section] = value
        elif key not in PLUGIN_OPTIONS:
            sections.setdefault(section, []).append(
                Assignment(number, normalise_conf_key(key), normalise_value(unquote(value)))
            )
    sysctl = [
        assignment
        for name, assignments in sections.items()
        if types.get(name, name) == "sysctl"
        for assignment in assignments
    ]
    return TunedProfile(includes, sorted(sysctl))


def reapply_sysctl(main_conf_text: Optional[str]) -> bool:
    """reapply_sysctl of tuned-main.conf; tuned's default is on."""
    for raw_line in (main_conf_text or "").splitlines():
        key, sep, value = raw_line.partition("=")
        if sep and key.strip() == "reapply_sysctl":
            return value.strip().lower() not in ("0", "false", "no", "off")
    return True


def active_profiles(active_profile_text: Optional[str], post_loaded_text: Optional[str] = None) -> List[str]:
    """The profiles tuned applies, in order: active_profile (space separated), then post_loaded_profile."""
    names = (active_profile_text or "").split() + (post_loaded_text or "").split()
    return [name for name in names if name]


def profile_assignments(
    names: Sequence[str], read_profile: Callable[[str], Optional[Tuple[str, str]]]
) -> Tuple[List[TunedAssignment], List[str]]:
    """Every sysctl assignment tuned makes, in the order it makes them, and what could not be read.

    read_profile(name) returns (path, text) of that profile's tuned.conf, or None.
    """
    ordered: List[TunedAssignment] = []
    problems: List[str] = []

    def visit(name: str, stack: Tuple[str, ...]) -> None:
        if name in stack or len(stack) >= MAX_INCLUDE_DEPTH:
            problems.append(f"tuned profile {name}: include loop or too deep ({' -> '.join((*stack, name))})")
            return
        if "${" in name:
            problems.append(f"tuned profile include {name!r} uses a variable this check does not expand")
            return
        found = read_profile(name)
        if found is None:
            problems.append(f"tuned profile {name}: no tuned.conf found")
            return
        path, text = found
        profile = parse_tuned_profile(text)
        for parent in profile.includes:
            visit(parent, (*stack, name))
        ordered.extend(TunedAssignment(path, assignment) for assignment in profile.sysctl)

    for name in names:
        visit(name, ())
    return ordered, problems


def tuned_would_override(tuned_value: str, managed_value: str) -> Optional[bool]:
    """Whether tuned writes its value over the managed one (None: it can't be told from the file).

    tuned's assignment modifiers: '>N' writes N only if N is above the current value, '<N' only if below;
    tuned compares single integers and writes anything else as given.
    """
    if "${" in tuned_value:
        return None
    wanted = normalise_value(managed_value)
    operator, operand = tuned_value[:1], tuned_value[1:].strip()
    if operator in "<>" and operand.isdigit() and wanted.isdigit():
        return int(operand) > int(wanted) if operator == ">" else int(operand) < int(wanted)
    return normalise_value(tuned_value) != wanted


def effective_for_keys(managed: Mapping[str, str], ordered: Sequence[TunedAssignment]) -> Dict[str, TunedAssignment]:
    """Managed key -> the tuned assignment that is in force for it last (a later one overrides an earlier one)."""
    effective: Dict[str, TunedAssignment] = {}
    for item in ordered:
        for key in managed:
            if key_matches(item.assignment.key, key):
                effective[key] = item
    return effective


def tuned_conflicts(
    managed: Mapping[str, str],
    ordered: Sequence[TunedAssignment],
    reapplies: bool,
    dropin_path: str,
    reapplied_roots: Sequence[str] = TUNED_REAPPLIED_ROOTS,
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Conflicts (tuned's value stays in force) and notes (tuned sets the key, the drop-in wins afterwards)."""
    dropin_reapplied = reapplies and os.path.normpath(os.path.dirname(dropin_path)) in {
        os.path.normpath(root) for root in reapplied_roots
    }
    conflicts: List[Dict[str, Any]] = []
    notes: List[str] = []
    for key, item in sorted(effective_for_keys(managed, ordered).items()):
        overrides = tuned_would_override(item.assignment.value, managed[key])
        if overrides is False:
            continue
        where = f"{item.path} line {item.assignment.line} sets {key} = {item.assignment.value}"
        if overrides is None:
            notes.append(f"tuned: {where}, a variable this check does not expand: check it by hand")
            continue
        if dropin_reapplied:
            notes.append(f"tuned: {where}, but tuned re-applies the drop-in after its profile (reapply_sysctl)")
            continue
        reason = (
            "tuned applies its profile after boot (reapply_sysctl = 0 in tuned-main.conf)"
            if not reapplies
            else "tuned applies its profile after boot and does not re-apply the drop-in's directory"
        )
        conflicts.append(
            {
                "key": key,
                "file": item.path,
                "line": item.assignment.line,
                "value": item.assignment.value,
                "reason": reason,
            }
        )
    return conflicts, notes

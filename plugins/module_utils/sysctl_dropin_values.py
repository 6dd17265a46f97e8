# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate and normalise sysctl keys and values for the sysctl_dropin module (pure functions)."""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.tcp_memory_keys import (
    INT_MAX,
    INT_MIN,
    KEYS,
    MANAGED_KEYS,
    TRIPLE_KEYS,
)

# The kernel stores these knobs as C ints (INT_MIN..INT_MAX): anything outside cannot be what the
# operator meant. The memory vectors (TRIPLE_KEYS: min/default/max of tcp_rmem, tcp_wmem or
# min/pressure/max in pages of tcp_mem, udp_mem) need each number at least 1 and never above the
# next. The kernel checks only part of this (net/ipv4/sysctl_net_ipv4.c: tcp_rmem/tcp_wmem entries
# >= 1, tcp_mem not at all) and stores a reversed triple, which then makes every socket allocation
# decision nonsense.

# How many integers each key takes. The managed keys come from the key table; a few
# other well-known vector sysctls are listed so the module stays usable for them. Every other key
# takes exactly one integer.
OTHER_VECTOR_COUNTS = {
    "net.ipv4.ip_local_port_range": 2,  # net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range()
    "net.ipv4.ping_group_range": 2,  # net/ipv4/sysctl_net_ipv4.c ipv4_ping_group_range()
    "net.sctp.sctp_mem": 3,
    "net.sctp.sctp_rmem": 3,
    "net.sctp.sctp_wmem": 3,
    "kernel.printk": 4,
    "kernel.sem": 4,
}
VALUE_COUNTS: Dict[str, int] = {
    **{key.name: key.arity for key in MANAGED_KEYS},
    **OTHER_VECTOR_COUNTS,
}

_KEY_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
# Plain decimal only: the kernel parses with base 0, so "010" would be read as octal 8 and a
# leading "+" or "0x" would not round-trip through read-back either.
_INT_TOKEN_RE = re.compile(r"0|-?[1-9][0-9]*")


def normalise_value(text: str) -> str:
    """Collapse whitespace: the kernel prints vectors with tabs, sysctl.d files use spaces."""
    return " ".join(text.split())


def key_problem(key: object) -> Optional[str]:
    """Why `key` is not a usable dotted sysctl name, or None. The whole key must match: a trailing
    newline would otherwise start a second line in the drop-in."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        return "not a dotted sysctl name such as net.ipv4.tcp_rmem"
    return None


def value_count(key: str) -> int:
    """How many integers `key` takes (1 for keys not in VALUE_COUNTS)."""
    return VALUE_COUNTS.get(key, 1)


def triple_problem(numbers: List[int]) -> Optional[str]:
    """Why a memory triple is not min <= default <= max with every number at least 1, or None."""
    if any(number < 1 for number in numbers):
        return "every number of this triple must be at least 1"
    low, middle, high = numbers
    if not low <= middle <= high:
        return f"must be ordered min <= default/pressure <= max, got {low} {middle} {high}"
    return None


def value_problem(key: str, value: object) -> Optional[str]:
    """Why `value` cannot be written to `key`, or None. Booleans are refused: YAML turns yes/on into them."""
    if isinstance(value, bool):
        return "is a boolean; quote sysctl values as strings"
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return "must be a string of integers"
    tokens = value.split()
    if not tokens:
        return "is empty"
    for token in tokens:
        if not _INT_TOKEN_RE.fullmatch(token):
            return f"token {token!r} is not a plain decimal integer"
        highest = KEYS[key].maximum if key in KEYS else INT_MAX  # tcp_notsent_lowat: unsigned
        if not INT_MIN <= int(token) <= highest:
            return f"token {token} is outside the kernel's int range ({INT_MIN}..{highest})"
    expected_count = value_count(key)
    if len(tokens) != expected_count:
        return f"needs {expected_count} number{'s' if expected_count > 1 else ''}, got {len(tokens)}"
    if key in TRIPLE_KEYS:
        return triple_problem([int(token) for token in tokens])
    return None


def proc_sys_path(proc_sys_root: str, key: str) -> str:
    """/proc/sys file of a dotted key (net.ipv4.tcp_rmem -> {root}/net/ipv4/tcp_rmem)."""
    return os.path.join(proc_sys_root, *key.split("."))

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate and normalise sysctl keys and values for the sysctl_dropin module (pure functions).

Generic: what a caller knows about its keys (how many integers each takes, which are ordered memory
triples) is passed in as KeyRules; the module's entry point passes the collection's key table."""

from __future__ import annotations

import os
import re
from typing import AbstractSet, List, Mapping, NamedTuple, Optional

# The kernel stores these knobs as C ints (INT_MIN..INT_MAX): anything outside cannot be what the
# operator meant. Ordered memory triples (min/default/max of tcp_rmem, tcp_wmem or min/pressure/max
# in pages of tcp_mem, udp_mem) need each number at least 1 and never above the next. The kernel
# checks only part of this (net/ipv4/sysctl_net_ipv4.c: tcp_rmem/tcp_wmem entries >= 1, tcp_mem not
# at all) and stores a reversed triple, which then makes every socket allocation decision nonsense.
INT_MIN = -(2**31)
INT_MAX = 2**31 - 1


class KeyRules(NamedTuple):
    """What the caller knows about the keys it writes: how many integers each takes (every other key takes
    one), and which are ordered triples (each number at least 1, min <= default/pressure <= max)."""

    counts: Mapping[str, int]
    ordered_triples: AbstractSet[str]
    # Keys the kernel stores as unsigned int (e.g. tcp_notsent_lowat, up to 4294967295): their highest value.
    maximums: Mapping[str, int] = {}


# Well-known vector sysctls of the kernel, which any caller's rules may include.
KNOWN_VECTOR_COUNTS = {
    "net.ipv4.ip_local_port_range": 2,  # net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range()
    "net.ipv4.ping_group_range": 2,  # net/ipv4/sysctl_net_ipv4.c ipv4_ping_group_range()
    "net.sctp.sctp_mem": 3,
    "net.sctp.sctp_rmem": 3,
    "net.sctp.sctp_wmem": 3,
    "kernel.printk": 4,
    "kernel.sem": 4,
}

_KEY_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
# systemd-sysctl also takes glob patterns (net.ipv4.conf.*.rp_filter); never turned into a path.
_GLOB_KEY_RE = re.compile(r"[A-Za-z0-9_*?!\[\]-]+(\.[A-Za-z0-9_*?!\[\]-]+)+")
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


def glob_key_problem(pattern: str) -> Optional[str]:
    """Why a key read from a sysctl.d file is neither a dotted sysctl name nor a glob of such names, or None."""
    if not isinstance(pattern, str) or not _GLOB_KEY_RE.fullmatch(pattern):
        return "not a dotted sysctl name such as net.ipv4.tcp_rmem"
    return None


def value_count(key: str, rules: KeyRules) -> int:
    """How many integers `key` takes (1 for keys the rules do not name)."""
    return rules.counts.get(key, 1)


def triple_problem(numbers: List[int]) -> Optional[str]:
    """Why a memory triple is not min <= default <= max with every number at least 1, or None."""
    if any(number < 1 for number in numbers):
        return "every number of this triple must be at least 1"
    low, middle, high = numbers
    if not low <= middle <= high:
        return f"must be ordered min <= default/pressure <= max, got {low} {middle} {high}"
    return None


def value_problem(key: str, value: object, rules: KeyRules) -> Optional[str]:
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
        highest = rules.maximums.get(key, INT_MAX)
        if not INT_MIN <= int(token) <= highest:
            return f"token {token} is outside the kernel's int range for this key ({INT_MIN}..{highest})"
    expected_count = value_count(key, rules)
    if len(tokens) != expected_count:
        return f"needs {expected_count} number{'s' if expected_count > 1 else ''}, got {len(tokens)}"
    if key in rules.ordered_triples:
        return triple_problem([int(token) for token in tokens])
    return None


class UnsafeKey(ValueError):
    """A key that does not name a file under /proc/sys: never opened."""


def proc_sys_path(proc_sys_root: str, key: str, realpath=os.path.realpath) -> str:
    """/proc/sys file of a dotted key (net.ipv4.tcp_rmem -> {root}/net/ipv4/tcp_rmem).

    Every path derived from a key goes through here: the key must be a dotted sysctl name (no '/', no
    empty or '..' part) and the path, links resolved, must stay under the root's /proc/sys. Raises
    UnsafeKey otherwise, so a key read from a file can never name another file.
    """
    problem = key_problem(key)
    if problem:
        raise UnsafeKey(f"key {key!r}: {problem}; not opened")
    path = os.path.join(proc_sys_root, *key.split("."))
    resolved_root = realpath(proc_sys_root)
    if os.path.commonpath([resolved_root, realpath(path)]) != resolved_root:
        raise UnsafeKey(f"key {key!r}: {path} resolves outside {proc_sys_root}; not opened")
    return path

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate and normalise sysctl keys and values for the sysctl_dropin module (pure functions)."""

from __future__ import annotations

import os
import re
from typing import Optional

# The kernel stores these knobs as C ints: anything outside cannot be what the operator meant.
INT_MIN = -2147483648
INT_MAX = 2147483647

# Keys whose value is a vector of three numbers (min/default/max or min/pressure/max).
TRIPLE_KEYS = frozenset({"net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.udp_mem"})

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
# Plain decimal only: the kernel parses with base 0, so "010" would be read as octal 8 and a
# leading "+" or "0x" would not round-trip through read-back either.
_INT_TOKEN_RE = re.compile(r"^(0|-?[1-9][0-9]*)$")


def normalise_value(text: str) -> str:
    """Collapse whitespace: the kernel prints vectors with tabs, sysctl.d files use spaces."""
    return " ".join(text.split())


def key_problem(key: object) -> Optional[str]:
    """Why `key` is not a usable dotted sysctl name, or None."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        return "not a dotted sysctl name such as net.ipv4.tcp_rmem"
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
        if not _INT_TOKEN_RE.match(token):
            return f"token {token!r} is not a plain decimal integer"
        if not INT_MIN <= int(token) <= INT_MAX:
            return f"token {token} is outside the kernel's int range"
    expected_count = 3 if key in TRIPLE_KEYS else None
    if expected_count is not None and len(tokens) != expected_count:
        return f"needs {expected_count} numbers, got {len(tokens)}"
    return None


def proc_sys_path(proc_sys_root: str, key: str) -> str:
    """/proc/sys file of a dotted key (net.ipv4.tcp_rmem -> {root}/net/ipv4/tcp_rmem)."""
    return os.path.join(proc_sys_root, *key.split("."))

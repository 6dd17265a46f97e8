# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter for the undo steps of the default scenario: whether two sysctl values are the same boot value of two boots.

net/ipv4/tcp.c tcp_init() computes tcp_mem (nr_free_buffer_pages() / 16) and tcp_rmem[2], tcp_wmem[2]
(nr_free_buffer_pages() << (PAGE_SHIFT - 7), 32 B a page) from each boot's free pages, which can differ
between boots by a few pages: equal, or every number within 0.1 % of the other.
"""

from __future__ import annotations

PERMILLE_APART_MAX = 1


def _numbers(value):
    return [int(token) for token in str(value).split()]


def same_boot_value(now, before):
    """True when NOW equals BEFORE, or both hold as many integers each within 0.1 % of the other."""
    if now == before:
        return True
    try:
        now_numbers, before_numbers = _numbers(now), _numbers(before)
    except ValueError:
        return False
    if len(now_numbers) != len(before_numbers):
        return False
    return all(abs(a - b) * 1000 <= PERMILLE_APART_MAX * max(a, b) for a, b in zip(now_numbers, before_numbers))


class FilterModule:
    def filters(self):
        return {"same_boot_value": same_boot_value}

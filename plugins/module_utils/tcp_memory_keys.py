# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sysctl keys this collection manages and the kernel constants it relies on, defined once.

The facts module (module_utils/facts/proc), the sysctl_dropin module's entry point (which passes the
key rules to the generic writer in module_utils/dropin) and the recommendation model (plugin_utils,
controller side) import this file; the role and the Molecule helpers take the key list from the facts. Pure
data and two helpers, standard library only: it runs on targets.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

# --- kernel versions where a boot default, a limit or a sysctl's scope changed ---------------------
KERNEL_TCP_SYSCTLS_PER_NETNS = (4, 15)  # net.ipv4.tcp_{r,w}mem, tcp_moderate_rcvbuf & co. per netns
# tcp_notsent_lowat lives in struct netns_ipv4 (include/net/netns/ipv4.h) next to the keys above on every
# kernel that has them per netns; earlier kernels are treated as global (the safe side: set on the host)
KERNEL_TCP_NOTSENT_LOWAT_PER_NETNS = (4, 15)
KERNEL_TCP_RMEM_DEFAULT_131072 = (4, 20)  # a337531b942b: tcp_rmem[1] 87380 -> 131072
KERNEL_SK_MEM_QUANTUM_4096 = (5, 5)  # bd68a2a854ad: SK_MEM_QUANTUM 4096 (was PAGE_SIZE); dropped in 6.0
KERNEL_PER_CPU_RESERVE = (6, 0)  # include/net/sock.h sk_memory_allocated_add(): SK_MEMORY_PCPU_RESERVE
KERNEL_ADV_WIN_SCALE_OBSOLETE = (6, 6)  # dfa2f0483360: per-socket scaling_ratio replaced tcp_adv_win_scale
KERNEL_OPTMEM_MAX_PER_NETNS = (6, 8)  # f5769faeec36 "net: Namespace-ify sysctl_optmem_max"
KERNEL_TCP_RMEM_MAX_32MIB = (6, 16)  # tcp_rmem[2] cap 6 MiB -> 32 MiB (ip-sysctl.rst of 6.16)
KERNEL_INIT_NETNS_FIXED_INODE = (6, 18)  # the initial netns is always net:[4026531833]

# --- C types of sysctl values ------------------------------------------------------------------------
INT_MIN = -(2**31)
INT_MAX = 2**31 - 1  # tcp_rmem, tcp_wmem, net.core.* are C ints (proc_dointvec_minmax)
UINT_MAX = 2**32 - 1  # tcp_notsent_lowat is an unsigned int (proc_douintvec), UINT_MAX by default
LONG_MAX = 2**63 - 1  # tcp_mem, udp_mem are longs of pages (proc_doulongvec_minmax)
ADV_WIN_SCALE_RANGE = (-31, 31)  # net/ipv4/sysctl_net_ipv4.c: tcp_adv_win_scale_min/max

# --- the kernel's own values ---------------------------------------------------------------------------
SK_MEM_QUANTUM_BYTES = 4096  # include/net/sock.h SK_MEM_QUANTUM, 5.5 .. 5.19: sockstat mem and per-socket rounding
TCP_MEM_INIT_DIVISOR = 16  # net/ipv4/tcp.c tcp_init_mem(): tcp_mem[1] = nr_free_buffer_pages() / 16
TCP_RMEM_DEFAULT_BYTES = 131072  # tcp_rmem[1] from 4.20 (net/ipv4/tcp.c tcp_init())
TCP_RMEM_DEFAULT_BEFORE_4_20_BYTES = 87380  # tcp_rmem[1] before 4.20
TCP_WMEM_DEFAULT_BYTES = 16384  # tcp_wmem[1] (net/ipv4/tcp.c tcp_init())
TCP_RMEM_MAX_BYTES = 33554432  # tcp_rmem[2] cap from 6.16 (net/ipv4/tcp.c tcp_init(): max_rshare)
TCP_RMEM_MAX_BEFORE_6_16_BYTES = 6291456  # tcp_rmem[2] cap before 6.16
TCP_WMEM_MAX_BYTES = 4194304  # tcp_wmem[2] cap
TCP_WMEM_MAX_FLOOR_BYTES = 65536  # tcp_wmem[2] is at least 64 KiB (tcp_init(): max(64*1024, max_wshare))
TCP_MODERATE_RCVBUF_DEFAULT = 1  # net/ipv4/tcp_ipv4.c tcp_sk_init()
TCP_ADV_WIN_SCALE_DEFAULT = 1  # net/ipv4/tcp_ipv4.c tcp_sk_init()
TCP_NOTSENT_LOWAT_DEFAULT = UINT_MAX  # net/ipv4/tcp_ipv4.c tcp_sk_init(): no limit on unsent bytes

# --- plausibility bounds of the facts (a machine outside them is not one the model can size for) -----
MEM_TOTAL_MIN_BYTES = 4 << 20  # a kernel with networking does not boot in less than 4 MiB
MEM_TOTAL_MAX_BYTES = 1 << 52  # 52-bit physical addresses (x86-64 5-level paging, arm64 LPA)
PAGE_SIZE_MIN_BYTES = 4 << 10  # 4 KiB (x86) ... 256 KiB (hexagon)
PAGE_SIZE_MAX_BYTES = 1 << 20
CPU_COUNT_MAX = 65536  # CONFIG_NR_CPUS tops out at 8192 (x86 MAXSMP, powerpc)


class SysctlKey(NamedTuple):
    """One managed key: its unit, how many integers it takes, and its scope."""

    name: str
    unit: str  # "pages", "bytes", "boolean" or "count"
    arity: int  # 1 or 3
    per_netns_since: Optional[Tuple[int, int]]  # None: global on every kernel
    # the largest number the kernel stores for a bytes/count/boolean key (its C type); pages keys are
    # bounded by LONG_MAX / page size instead
    maximum: int = INT_MAX


MANAGED_KEYS = (
    SysctlKey("net.ipv4.tcp_mem", "pages", 3, None),
    SysctlKey("net.ipv4.tcp_rmem", "bytes", 3, KERNEL_TCP_SYSCTLS_PER_NETNS),
    SysctlKey("net.ipv4.tcp_wmem", "bytes", 3, KERNEL_TCP_SYSCTLS_PER_NETNS),
    SysctlKey("net.ipv4.udp_mem", "pages", 3, None),
    SysctlKey("net.ipv4.tcp_moderate_rcvbuf", "boolean", 1, KERNEL_TCP_SYSCTLS_PER_NETNS),
    SysctlKey("net.ipv4.tcp_adv_win_scale", "count", 1, KERNEL_TCP_SYSCTLS_PER_NETNS),
    SysctlKey("net.ipv4.tcp_notsent_lowat", "bytes", 1, KERNEL_TCP_NOTSENT_LOWAT_PER_NETNS, UINT_MAX),
    SysctlKey("net.core.rmem_max", "bytes", 1, None),
    SysctlKey("net.core.wmem_max", "bytes", 1, None),
    SysctlKey("net.core.rmem_default", "bytes", 1, None),
    SysctlKey("net.core.wmem_default", "bytes", 1, None),
    SysctlKey("net.core.optmem_max", "bytes", 1, KERNEL_OPTMEM_MAX_PER_NETNS),
)
KEYS = {key.name: key for key in MANAGED_KEYS}
KEY_NAMES = tuple(KEYS)
TRIPLE_KEYS = tuple(key.name for key in MANAGED_KEYS if key.arity == 3)
PAGES_KEYS = tuple(key.name for key in MANAGED_KEYS if key.unit == "pages")
BOOLEAN_KEYS = tuple(key.name for key in MANAGED_KEYS if key.unit == "boolean")


def _named(last_part: str) -> str:
    """The managed key whose name ends in .LAST_PART, so code names a key without spelling it again."""
    (name,) = (name for name in KEY_NAMES if name.rsplit(".", 1)[1] == last_part)
    return name


# the keys code refers to by name (the recommendation model), taken from the table above
TCP_MEM = _named("tcp_mem")
UDP_MEM = _named("udp_mem")
TCP_RMEM = _named("tcp_rmem")
TCP_WMEM = _named("tcp_wmem")
TCP_MODERATE_RCVBUF = _named("tcp_moderate_rcvbuf")
TCP_ADV_WIN_SCALE = _named("tcp_adv_win_scale")
TCP_NOTSENT_LOWAT = _named("tcp_notsent_lowat")
RMEM_MAX = _named("rmem_max")
WMEM_MAX = _named("wmem_max")


def at_least(version, minimum) -> bool:
    """Whether a kernel version (a sequence of ints) is at least MINIMUM (a shorter tuple compares by prefix)."""
    return tuple(version[: len(minimum)]) >= tuple(minimum)


def per_netns(name: str, version) -> bool:
    """Whether KEY is per network namespace on a kernel of VERSION (False for a global key)."""
    since = KEYS[name].per_netns_since
    return since is not None and at_least(version, since)

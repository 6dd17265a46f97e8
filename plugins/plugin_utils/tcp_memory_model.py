# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The recommendation model: a host's facts and a workload in, sysctl values with their reasons out.

Pure arithmetic, no I/O and no Ansible imports (the filter turns ModelInputError into
AnsibleFilterError). The filter's arguments are validated into a Workload by tcp_memory_inputs; the key names
and the kernel's own constants come from module_utils/tcp_memory_keys. Read top to bottom: the per-direction
table (receive/send) -> expected usage -> one function per decision (tcp_mem, per-socket triples, net.core
limits, scope) -> estimate -> warnings -> recommend(), the one entry point. Every constant is
justified with its source in docs/recommendation-model.md: kernel source files and functions
(net/ipv4/tcp.c, net/core/sock.c) and measurements on real kernels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Optional

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.tcp_memory_keys import (
    INT_MAX,
    KERNEL_ADV_WIN_SCALE_OBSOLETE,
    KERNEL_PER_CPU_RESERVE,
    KERNEL_SK_MEM_QUANTUM_4096,
    KERNEL_TCP_RMEM_DEFAULT_131072,
    RMEM_MAX,
    SK_MEM_QUANTUM_BYTES,
    TCP_ADV_WIN_SCALE,
    TCP_ADV_WIN_SCALE_DEFAULT,
    TCP_MEM,
    TCP_MEM_INIT_DIVISOR,
    TCP_MODERATE_RCVBUF,
    TCP_NOTSENT_LOWAT,
    TCP_NOTSENT_LOWAT_DEFAULT,
    TCP_RMEM,
    TCP_RMEM_DEFAULT_BEFORE_4_20_BYTES,
    TCP_RMEM_DEFAULT_BYTES,
    TCP_RMEM_MAX_BEFORE_6_16_BYTES,
    TCP_WMEM,
    TCP_WMEM_DEFAULT_BYTES,
    TCP_WMEM_MAX_BYTES,
    UDP_MEM,
    WMEM_MAX,
    at_least,
)
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import (
    FACTOR_RANGE,
    CgroupOwner,
    HostFacts,
    MeasuredFactor,
    ModelInputError,
    Workload,
)

RECOMMENDATION_SCHEMA_VERSION = 1

# From 6.0 (commit 3cd3399dd7a8, "net: implement per-cpu reserves for memory_allocated") each CPU
# keeps up to SK_MEMORY_PCPU_RESERVE = 1 MiB of pages charged or uncharged locally before folding
# it into the global counter (include/net/sock.h sk_memory_allocated_add/_sub). That counter is what
# /proc/net/sockstat `mem` shows and what __sk_mem_raise_allocated compares with tcp_mem: it does
# not include the per-CPU amounts and lags the truth by up to one batch per CPU in either
# direction. The model keeps that much headroom from 6.0 on; before, the counter was exact.
PER_CPU_RESERVE_BYTES = 1 << 20

# tcp_mem = U : 4/3 U : 2 U, the kernel's own 3:4:6 (tcp_init_mem) anchored at min = U.
TCP_MEM_PRESSURE_OVER_MIN = Fraction(4, 3)
TCP_MEM_MAX_OVER_MIN = 2
# How far below the estimated boot default an untuned host's live value is seen to sit. The facts
# estimate nr_free_buffer_pages from today's zones; tcp_init_mem() (net/ipv4/tcp.c, an fs_initcall)
# counted them before the kernel freed the initramfs and its init sections ("Freeing initrd memory",
# "Freeing unused kernel image memory"): measured 19-24 MB on Debian 11-13 guests (molecule
# boot_defaults), i.e. 1.1% of tcp_mem on a 2048 MB Debian 12 guest (22695 30263 45390 live vs
# 22950 30600 45900 estimated), 4-6% at 512 MB, 0.06% on a 64 GB host. The tolerance is 1% plus
# twice the largest measured frees, relative to the free buffer pages behind the estimate.
BOOT_ESTIMATE_TOLERANCE = Fraction(1, 100)
FREED_AFTER_TCP_INIT_MAX_BYTES = 48 << 20

# What one skb costs besides its data (tcp_stream_alloc_skb: alloc_skb_fclone(MAX_TCP_HEADER) and the data
# in page fragments): SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 + the kmalloc'ed head,
# kmalloc_size_roundup(SKB_DATA_ALIGN(MAX_TCP_HEADER 320) + SKB_DATA_ALIGN(sizeof(skb_shared_info) 320)) = 1024
# (x86_64, 6.1). A 1 KiB write pushed alone costs 2.25x its payload, 200 B 7.4x (measured ~2.2x and ~7x).
SKB_HEAD_TRUESIZE_BYTES = 256 + 1024
# One skb carries at most this much (GSO_LEGACY_MAX_SIZE / sk_gso_max_size): larger writes split.
SKB_MAX_PAYLOAD_BYTES = 65536

SOCKET_MIN_BYTES = 4096  # SK_MEM_QUANTUM on older kernels; PAGE_SIZE on newer ones

# Slab outside tcp_mem per established socket: measured 4.7 KB on 6.18; the articles' 3.3 KB
# is an older kernel's. Unmeasured kernels in between get the larger figure (safe side).
SLAB_BYTES_PER_SOCKET_MEASURED = 4700
SLAB_BYTES_PER_SOCKET_OLD = 3300
SLAB_LARGER_SINCE = (5, 0)

# A factor measured by tcp_memory_facts calibrate=true replaces the default when it comes from at least
# this many sockets holding data that way and this much payload (fewer are one application's accident),
# clamped to the range an argument may take (FACTOR_RANGE).
CALIBRATION_MIN_SOCKETS = 100
CALIBRATION_MIN_PAYLOAD_BYTES = 1 << 20

# tcp_sndbuf_expand() (net/ipv4/tcp_input.c) grows an autotuned send buffer to
#   sndbuf_expand x max(TCP_INIT_CWND, cwnd) x per_mss,
#   per_mss = roundup_pow_of_two(mss_clamp + MAX_TCP_HEADER + SKB_DATA_ALIGN(sizeof(skb_shared_info)))
#             + SKB_DATA_ALIGN(sizeof(sk_buff)),
# capped at tcp_wmem[2]. sndbuf_expand is 2 ("Cubic needs 1.7 factor, rounded to 2") unless the congestion
# control has its own: bbr_sndbuf_expand() returns 3 (net/ipv4/tcp_bbr.c). Sizes of x86_64 distribution
# kernels (6.1): MAX_TCP_HEADER = L1_CACHE_ALIGN(128 + MAX_HEADER 176) = 320, skb_shared_info 320,
# sk_buff 232 -> 256; Ethernet MTU 1500: mss_clamp 1460, mss_cache 1448 (timestamps).
SNDBUF_EXPAND_DEFAULT = 2
# The send maximum for a link: 2 x BDP x the send queue's truesize overhead (see _send_max_source).
SEND_MAX_BDP_MULTIPLE = 2
# tcp_rcv_space_adjust(): rcvwin = 2 x copied + 16 x advmss ("Add some cushion because of small variations").
RCV_SPACE_CUSHION_SEGMENTS = 16
# Profiles whose connections carry bulk flows: they get net.ipv4.tcp_notsent_lowat.
BULK_PROFILES = ("bulk_throughput",)
# Unsent bytes a bulk socket keeps queued (two 64 KiB GSO skbs): enough to keep TSO fed between wake-ups.
NOTSENT_LOWAT_BULK_BYTES = 131072
SNDBUF_EXPAND_BY_CONGESTION_CONTROL = {"bbr": 3}
TCP_INIT_CWND = 10
MSS_CLAMP_BYTES = 1460
MSS_CACHE_BYTES = 1448
MAX_TCP_HEADER_BYTES = 320
MAX_TCP_HEADER_CLOUD_BYTES = 256
MAX_HEADER_BYTES = 176
MAX_HEADER_CLOUD_BYTES = 80  # LL_MAX_HEADER 32 + 48: any value up to 128 gives the same head
GRO_MAX_HEAD_EXTRA_BYTES = 128  # GRO_MAX_HEAD = MAX_HEADER + 128 (include/net/gro.h)
NET_SKB_PAD_BYTES = 64  # NET_SKB_PAD = max(32, L1_CACHE_BYTES) on x86_64; NET_IP_ALIGN 0
SMP_CACHE_BYTES = 64
KERNEL_SKB_SMALL_HEAD_CACHE = (6, 3)  # bf9f1baa279f "net: add dedicated kmem_cache for typical/small skb->head"
KERNEL_SKB_SMALL_HEAD_GRO_PAD = (6, 12)  # SKB_SMALL_HEAD_SIZE takes max(MAX_TCP_HEADER, GRO_MAX_HEAD_PAD)
SKB_SHARED_INFO_BYTES = 320
SK_BUFF_BYTES = 256


# ---------------------------------------------------------------- per-kernel measurements from the facts


@dataclass(frozen=True)
class Measurements:
    """Facts of the kernel's own charging the model reads besides HostFacts (docs/data-model.md:
    socket_memory, the split calibration, the owning cgroup's file and sock_throttled). Every field is
    None when the facts do not carry it (older facts, a container, a kernel without the file)."""

    kernel_release: Optional[str] = None
    mem_pcpu_rsv_pages: Optional[int] = None
    bypass_prot_mem: Optional[bool] = None
    per_mss_bytes: Optional[int] = None
    initial_sndbuf_bytes: Optional[int] = None
    calibration_loopback: Optional[dict[str, MeasuredFactor]] = None
    calibration_other: Optional[dict[str, MeasuredFactor]] = None
    calibration_stopped_early: Optional[bool] = None
    cgroup_sock_throttled: Optional[int] = None
    cgroup_file_bytes: Optional[int] = None


@dataclass(frozen=True)
class MeasuredHostFacts(HostFacts):
    """HostFacts plus the Measurements (with_measurements); the model reads both."""

    measured: Measurements = Measurements()


def _get(node: Any, *path: str) -> Any:
    """The value at path in nested dicts, None where any part is missing or not a dict."""
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _optional_count(name: str, value: Any, maximum: int = 2**63 - 1) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ModelInputError(f"facts.{name} must be a non-negative integer or null, got {value!r}")
    return int(value)


def _optional_flag(name: str, value: Any) -> Optional[bool]:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ModelInputError(f"facts.{name} must be true, false or null, got {value!r}")
    return value


def _split_calibration(name: str, value: Any) -> Optional[dict[str, MeasuredFactor]]:
    """calibration.loopback / calibration.other -> {'rx': MeasuredFactor, 'tx': MeasuredFactor}."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ModelInputError(f"facts.{name} must be a dict or null, got {value!r}")
    result = {}
    for direction in ("rx", "tx"):
        entry = value.get(direction) or {}
        factor = entry.get("factor") if isinstance(entry, Mapping) else None
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))):
            raise ModelInputError(f"facts.{name}.{direction}.factor must be a number or null, got {factor!r}")
        result[direction] = MeasuredFactor(
            factor=None if factor is None else Fraction(str(factor)),
            sockets=_optional_count(f"{name}.{direction}.sockets", _get(entry, "sockets")) or 0,
            payload_bytes=_optional_count(f"{name}.{direction}.payload_bytes", _get(entry, "payload_bytes")) or 0,
        )
    return result


def measurements_from_facts(facts: Any) -> Measurements:
    """The Measurements in ansible_facts.tcp_memory; missing fields are None, wrong types an error naming them."""
    release = _get(facts, "kernel", "release")
    owner = None
    owners = _get(facts, "cgroups", "owners")
    if isinstance(owners, Sequence) and not isinstance(owners, (str, bytes)) and owners:
        owner = owners[0]
    file_bytes = _get(owner, "socket_limit", "file_bytes")
    return Measurements(
        kernel_release=release if isinstance(release, str) else None,
        mem_pcpu_rsv_pages=_optional_count(
            "socket_memory.mem_pcpu_rsv_pages", _get(facts, "socket_memory", "mem_pcpu_rsv_pages")
        ),
        bypass_prot_mem=_optional_flag(
            "socket_memory.bypass_prot_mem", _get(facts, "socket_memory", "bypass_prot_mem")
        ),
        per_mss_bytes=_optional_count("socket_memory.per_mss_bytes", _get(facts, "socket_memory", "per_mss_bytes")),
        initial_sndbuf_bytes=_optional_count(
            "socket_memory.initial_sndbuf_bytes", _get(facts, "socket_memory", "initial_sndbuf_bytes")
        ),
        calibration_loopback=_split_calibration("calibration.loopback", _get(facts, "calibration", "loopback")),
        calibration_other=_split_calibration("calibration.other", _get(facts, "calibration", "other")),
        calibration_stopped_early=_optional_flag(
            "calibration.stopped_early", _get(facts, "calibration", "stopped_early")
        ),
        cgroup_sock_throttled=_optional_count("cgroups.owners[0].sock_throttled", _get(owner, "sock_throttled")),
        cgroup_file_bytes=_optional_count(
            "cgroups.owners[0].socket_limit.file_bytes",
            file_bytes if file_bytes is not None else _get(owner, "file_bytes"),
        ),
    )


def with_measurements(host: HostFacts, facts: Any) -> MeasuredHostFacts:
    """host with the facts' Measurements attached: what the filter passes to recommend()."""
    fields = {field.name: getattr(host, field.name) for field in dataclasses.fields(HostFacts)}
    return MeasuredHostFacts(**fields, measured=measurements_from_facts(facts))


def _measured(host: HostFacts) -> Measurements:
    measured = getattr(host, "measured", None)
    return measured if isinstance(measured, Measurements) else Measurements()


BYPASS_PROT_MEM_SENTENCE = (
    "net.core.bypass_prot_mem=1 in this network namespace: sockets created here are charged only to their "
    "memory cgroup, not to tcp_mem or sockstat (__sk_mem_raise_allocated skips the protocol's counter), so "
    "tcp_mem neither limits nor counts them; what stalls them is their cgroup's memory limit, and the "
    "current usage read from sockstat leaves them out."
)


class TargetDoesNotFitError(ModelInputError):
    """The memory budget cannot hold the target; the message says by how much and what to change."""


class AboveMemTotalError(ModelInputError):
    """A live value or override lets TCP buffers plus socket slab grow past all RAM (allow_above_mem_total)."""


@dataclass(frozen=True)
class Decision:
    """One sysctl value with the sentence that explains it and any warnings it raised."""

    value: tuple[int, ...]
    explain: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Expected steady-state TCP buffer usage of the target workload.

    Each socket is charged in whole charge units (sk_mem_pages: SK_MEM_QUANTUM = 4096 B on kernels 5.5 to
    5.19, the page size otherwise); tcp_mem and steady_pages are in pages. buffer_pages is what the
    active sockets hold; per_cpu_slack_pages is the counter's per-CPU lag, added once, never scaled.
    """

    active_connections: int
    rx_units_per_active: int
    tx_units_per_active: int
    unit_bytes: int
    page_bytes: int
    per_cpu_slack_pages: int
    buffer_pages: int
    steady_pages: int

    @property
    def bytes_per_active(self) -> int:
        return (self.rx_units_per_active + self.tx_units_per_active) * self.unit_bytes

    def _pages(self, units: int) -> Any:
        pages = Fraction(units * self.unit_bytes, self.page_bytes)
        return int(pages) if pages.denominator == 1 else round(float(pages), 6)

    @property
    def rx_pages_per_active(self) -> Any:
        return self._pages(self.rx_units_per_active)

    @property
    def tx_pages_per_active(self) -> Any:
        return self._pages(self.tx_units_per_active)

    @property
    def pages_per_active(self) -> Any:
        return self._pages(self.rx_units_per_active + self.tx_units_per_active)


@dataclass(frozen=True)
class _Direction:
    """What receiving and sending differ in, so that each step is written once for both directions.

    name is the prefix of the filter arguments (rx_buffered_bytes, rx_truesize_factor) and of the facts'
    calibration entry; link_max gives tcp_rmem[2]/tcp_wmem[2] for a link's BDP and the sentence deriving it.
    """

    name: str
    triple_key: str
    core_key: str
    socket_option: str
    boot_triple: Callable[[HostFacts], Optional[tuple[int, int, int]]]
    # the kernel's initial buffer (tcp_[rw]mem[1]) by the kernel it appeared in, newest first
    initial_bytes_since: tuple[tuple[tuple[int, ...], int], ...]
    # tcp_[rw]mem[2] when the facts carry neither a boot default nor a live value: the older kernel cap
    fallback_max_bytes: int
    link_max: Callable[[HostFacts, Workload, int, str], tuple[int, str]]

    def buffered_bytes(self, workload: Workload) -> int:
        return getattr(workload, f"{self.name}_buffered_bytes")

    def truesize_factor(self, workload: Workload) -> Fraction:
        return getattr(workload, f"{self.name}_truesize_factor")

    def factor_given(self, workload: Workload) -> bool:
        return getattr(workload, f"{self.name}_factor_given")

    def initial_bytes(self, host: HostFacts) -> int:
        return next(size for since, size in self.initial_bytes_since if at_least(host.kernel_version, since))


_RX = _Direction(
    name="rx",
    triple_key=TCP_RMEM,
    core_key=RMEM_MAX,
    socket_option="SO_RCVBUF",
    boot_triple=lambda host: host.boot_tcp_rmem_bytes,
    initial_bytes_since=(
        (KERNEL_TCP_RMEM_DEFAULT_131072, TCP_RMEM_DEFAULT_BYTES),
        ((0,), TCP_RMEM_DEFAULT_BEFORE_4_20_BYTES),
    ),
    fallback_max_bytes=TCP_RMEM_MAX_BEFORE_6_16_BYTES,
    link_max=lambda host, workload, link_bdp, source: _receive_max_source(host, workload, link_bdp),
)
_TX = _Direction(
    name="tx",
    triple_key=TCP_WMEM,
    core_key=WMEM_MAX,
    socket_option="SO_SNDBUF",
    boot_triple=lambda host: host.boot_tcp_wmem_bytes,
    initial_bytes_since=(((0,), TCP_WMEM_DEFAULT_BYTES),),
    fallback_max_bytes=TCP_WMEM_MAX_BYTES,
    link_max=lambda host, workload, link_bdp, source: _send_max_source(host, workload, link_bdp, tx_source=source),
)
_DIRECTIONS = (_RX, _TX)


# ---------------------------------------------------------------- formatting


def _format_bytes(size_bytes: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(size_bytes) >= scale:
            return f"{size_bytes / scale:.2f} {unit}"
    return f"{int(size_bytes)} B"


def _format_number(number: Fraction) -> str:
    """0.1 rather than 1/10; integers without a decimal point."""
    return str(int(number)) if number.denominator == 1 else f"{float(number):g}"


def _sysctl_text(value: tuple[int, ...]) -> str:
    return " ".join(str(number) for number in value)


# ---------------------------------------------------------------- expected usage


def _cloud_flavour(host: HostFacts) -> bool:
    """Whether the kernel is built like Debian's cloud flavour (smaller MAX_HEADER, so MAX_TCP_HEADER 256):
    from the measured per_mss when the facts have it (2304 B at MSS 1460 vs 4352 B), else the release name."""
    measured = _measured(host)
    if measured.per_mss_bytes is not None:
        return measured.per_mss_bytes <= 2048 + SK_BUFF_BYTES
    return "-cloud-" in (measured.kernel_release or "")


def max_tcp_header_bytes(host: HostFacts) -> int:
    """MAX_TCP_HEADER = L1_CACHE_ALIGN(128 + MAX_HEADER) (include/net/tcp.h): 320 on Debian's generic x86_64
    kernels (MAX_HEADER 176: LL_MAX_HEADER 128 with Hyper-V networking, + 48 for tunnels), 256 on its cloud
    kernels."""
    return MAX_TCP_HEADER_CLOUD_BYTES if _cloud_flavour(host) else MAX_TCP_HEADER_BYTES


def _skb_data_align(size_bytes: int) -> int:
    return -(-size_bytes // SMP_CACHE_BYTES) * SMP_CACHE_BYTES


def skb_head_truesize_bytes(host: HostFacts) -> int:
    """What one skb of a TCP send queue costs besides its data (tcp_stream_alloc_skb -> alloc_skb_fclone(
    MAX_TCP_HEADER) -> __alloc_skb -> kmalloc_reserve, net/core/skbuff.c), by kernel version:

    - before 6.3: kmalloc of SKB_HEAD_ALIGN(MAX_TCP_HEADER) (640 / 576 B) lands in kmalloc-1024: 256 + 1024;
    - 6.3 (bf9f1baa279f) to 6.11: skb_small_head_cache of SKB_HEAD_ALIGN(MAX_TCP_HEADER): 256 + 640 (cloud 576);
    - 6.12 on: the cache is sized SKB_HEAD_ALIGN(max(MAX_TCP_HEADER, GRO_MAX_HEAD_PAD)), GRO_MAX_HEAD_PAD =
      MAX_HEADER + 128 + NET_SKB_PAD 64: 256 + 704 = 960 generic, 256 + 640 = 896 cloud.
    """
    header = max_tcp_header_bytes(host)
    if not at_least(host.kernel_version, KERNEL_SKB_SMALL_HEAD_CACHE):
        head = _roundup_pow_of_two(_skb_data_align(header) + SKB_SHARED_INFO_BYTES)
    else:
        if at_least(host.kernel_version, KERNEL_SKB_SMALL_HEAD_GRO_PAD):
            max_header = MAX_HEADER_CLOUD_BYTES if _cloud_flavour(host) else MAX_HEADER_BYTES
            header = max(header, max_header + GRO_MAX_HEAD_EXTRA_BYTES + NET_SKB_PAD_BYTES)
        head = _skb_data_align(header) + SKB_SHARED_INFO_BYTES
        if head & (head - 1) == 0:  # SKB_SMALL_HEAD_CACHE_SIZE is never a power of two
            head += SMP_CACHE_BYTES
    return SK_BUFF_BYTES + head


def skbs_queued(payload_bytes: int, message_bytes: int) -> int:
    """skbs holding payload_bytes written message_bytes at a time (at most 64 KiB per skb)."""
    return math.ceil(Fraction(payload_bytes, min(message_bytes, SKB_MAX_PAYLOAD_BYTES)))


def bytes_charged(
    payload_bytes: int, message_bytes: int, truesize_factor: Fraction, head_bytes: int = SKB_HEAD_TRUESIZE_BYTES
) -> Fraction:
    """Kernel memory one socket is charged for payload_bytes queued in one direction: the truesize factor of
    the payload, but never less than the payload plus one skb head per message."""
    with_heads = payload_bytes + skbs_queued(payload_bytes, message_bytes) * head_bytes
    return max(payload_bytes * truesize_factor, Fraction(with_heads))


def _sample_problem(measured: MeasuredFactor) -> Optional[str]:
    """Why a calibration sample is too small to use, or None."""
    if measured.factor is None or measured.sockets < CALIBRATION_MIN_SOCKETS:
        return f"{measured.sockets} sockets with data, fewer than {CALIBRATION_MIN_SOCKETS}"
    if measured.payload_bytes < CALIBRATION_MIN_PAYLOAD_BYTES:
        return f"{measured.payload_bytes} B queued, less than {CALIBRATION_MIN_PAYLOAD_BYTES}"
    return None


def _calibration_classes(host: HostFacts) -> list[tuple[str, dict[str, MeasuredFactor]]]:
    """The calibration samples to try, best first: non-loopback sockets (a NIC's truesize, what the target
    sees), then loopback (~1.06x, optimistic for a NIC); facts without the split give one mixed sample."""
    measured = _measured(host)
    classes = [
        (name, sample)
        for name, sample in (("non-loopback", measured.calibration_other), ("loopback", measured.calibration_loopback))
        if sample is not None
    ]
    if not classes and host.calibration is not None:
        classes.append(("", host.calibration))
    return classes


def _measured_factor(host: HostFacts, direction: _Direction) -> tuple[Optional[Fraction], str]:
    """The calibrated factor of one direction from the best sample large enough, and why (or why not)."""
    classes = _calibration_classes(host)
    if not classes:
        return None, "default (no calibration in the facts)"
    partial = (
        "; reading stopped at calibrate_sample, so it covers a sample of the sockets"
        if _measured(host).calibration_stopped_early
        else ""
    )
    problems = []
    for name, sample in classes:
        measured = sample[direction.name]
        problem = _sample_problem(measured)
        if problem is None:
            factor = min(max(measured.factor, FACTOR_RANGE[0]), FACTOR_RANGE[1])
            label = f"{name} " if name else ""
            return factor, (
                f"measured on {measured.sockets} {label}sockets ({measured.payload_bytes} B queued, calibrate{partial})"
            )
        problems.append(f"{name} {problem}" if name else problem)
    return None, f"default (calibration: {'; '.join(problems)}{partial})"


def _calibrated(host: HostFacts, workload: Workload) -> tuple[Workload, dict[str, str]]:
    """The workload with measured factors where not given explicitly, and each factor's source."""
    sources = {}
    changes: dict[str, Fraction] = {}
    for direction in _DIRECTIONS:
        if direction.factor_given(workload):
            sources[direction.name] = "given"
            continue
        factor, sources[direction.name] = _measured_factor(host, direction)
        if factor is not None:
            changes[f"{direction.name}_truesize_factor"] = factor
    return dataclasses.replace(workload, **changes), sources


def pages_charged(
    payload_bytes: int,
    truesize_factor: Fraction,
    page_size_bytes: int,
    message_bytes: int = SKB_MAX_PAYLOAD_BYTES,
    head_bytes: int = SKB_HEAD_TRUESIZE_BYTES,
) -> int:
    """Whole charge units (page_size_bytes: the kernel's unit, see charge_unit_bytes) one socket holds for
    payload_bytes queued in one direction (sk_mem_pages: at least one once anything is, rounded per socket,
    not per average)."""
    if payload_bytes == 0:
        return 0
    charged = bytes_charged(payload_bytes, message_bytes, truesize_factor, head_bytes)
    return max(1, math.ceil(charged / page_size_bytes))


def charge_unit_bytes(host: HostFacts) -> int:
    """The unit a socket's charge is rounded to and sockstat counts in: SK_MEM_QUANTUM (include/net/sock.h),
    4096 B from 5.5 (bd68a2a854ad) until 6.0 dropped it (sk_mem_pages() then shifts by PAGE_SHIFT); the
    page size before 5.5 and from 6.0. tcp_mem itself is in pages on every kernel (sk_prot_mem_limits()
    converted it to quanta before 6.0). The two differ on 64 KiB-page kernels only."""
    if at_least(host.kernel_version, KERNEL_SK_MEM_QUANTUM_4096) and not at_least(
        host.kernel_version, KERNEL_PER_CPU_RESERVE
    ):
        return SK_MEM_QUANTUM_BYTES
    return host.page_size_bytes


def _per_cpu_lag_pages(host: HostFacts) -> int:
    """Pages the global counter (sockstat `mem`, compared with tcp_mem) may lag the truth, per CPU times the
    CPUs: net.core.mem_pcpu_rsv where the facts read it, else SK_MEMORY_PCPU_RESERVE (1 MiB) from 6.0; 0
    before 6.0, when every charge reached the counter at once."""
    if not at_least(host.kernel_version, KERNEL_PER_CPU_RESERVE):
        return 0
    measured = _measured(host).mem_pcpu_rsv_pages
    if measured is not None:
        return host.cpu_count * measured
    return host.cpu_count * math.ceil(Fraction(PER_CPU_RESERVE_BYTES, host.page_size_bytes))


def _per_cpu_lag_source(host: HostFacts) -> str:
    if not at_least(host.kernel_version, KERNEL_PER_CPU_RESERVE):
        return "none before kernel 6.0"
    measured = _measured(host).mem_pcpu_rsv_pages
    if measured is not None:
        return f"{host.cpu_count} CPUs x net.core.mem_pcpu_rsv {measured} pages"
    return f"{host.cpu_count} CPUs x the fixed 1 MiB SK_MEMORY_PCPU_RESERVE"


def steady_state_usage(connections: int, workload: Workload, host: HostFacts) -> Usage:
    active = math.ceil(connections * workload.active_fraction)
    unit = charge_unit_bytes(host)
    rx_units, tx_units = (
        pages_charged(
            direction.buffered_bytes(workload),
            direction.truesize_factor(workload),
            unit,
            workload.message_bytes,
            skb_head_truesize_bytes(host),
        )
        for direction in _DIRECTIONS
    )
    slack_pages = _per_cpu_lag_pages(host)
    buffer_pages = math.ceil(Fraction(active * (rx_units + tx_units) * unit, host.page_size_bytes))
    # at least one page: a workload that buffers nothing on a kernel without per-CPU lag would give
    # U = 0, and tcp_mem 0 would put TCP under pressure from the first page
    return Usage(
        active,
        rx_units,
        tx_units,
        unit,
        host.page_size_bytes,
        slack_pages,
        buffer_pages,
        max(1, buffer_pages + slack_pages),
    )


def connections_held(limit_pages: int, usage: Usage, workload: Workload) -> Optional[int]:
    """Most connections whose steady-state usage stays <= limit_pages; None when buffers don't limit them."""
    if usage.bytes_per_active == 0:
        return None
    active_held = max(0, limit_pages - usage.per_cpu_slack_pages) * usage.page_bytes // usage.bytes_per_active
    # ceil(c * f) <= A  <=>  c <= A / f
    return math.floor(Fraction(active_held) / workload.active_fraction)


def _memory_budget_pages(host: HostFacts, workload: Workload) -> int:
    return math.floor(host.mem_total_bytes * workload.memory_fraction / host.page_size_bytes)


def _bdp_bytes(workload: Workload) -> Optional[int]:
    """Bandwidth-delay product: bandwidth_bps / 8 * rtt_ms / 1000."""
    if workload.bandwidth_bps is None or workload.rtt_ms is None:
        return None
    return math.ceil(Fraction(workload.bandwidth_bps, 8) * workload.rtt_ms / 1000)


# ---------------------------------------------------------------- shared steps


def _current_value(host: HostFacts, key: str) -> Optional[tuple[int, ...]]:
    return host.sysctl[key].value


def _raise_to_floors(
    value: tuple[int, ...], floors: list[tuple[str, Optional[tuple[int, ...]]]], labels: tuple[str, ...]
) -> tuple[tuple[int, ...], list[str]]:
    """Element-wise max with each floor (boot default, live value); notes say which field was held up."""
    raised = list(value)
    notes: list[str] = []
    for index, label in enumerate(labels):
        for source, floor in floors:
            if floor is not None and floor[index] > raised[index]:
                notes.append(f"{label} held up from {raised[index]} to {floor[index]} ({source})")
                raised[index] = floor[index]
    return tuple(raised), notes


def _ordered(triple: tuple[int, ...]) -> tuple[int, ...]:
    """Make min <= middle <= max after floors (64 KiB-page kernels boot with tcp_wmem[0] > tcp_wmem[1])."""
    first = triple[0]
    second = max(triple[1], first)
    return (first, second, max(triple[2], second))


def _boot_estimate_error(host: HostFacts) -> Fraction:
    """How far (relative) the facts' boot defaults may sit above what the kernel really chose at boot.

    The memory freed after tcp_init_mem() is a near-constant number of bytes, so its share of the
    free buffer pages (16 x tcp_mem[1] of the estimate) is large on small hosts and tiny on big ones.
    """
    boot = host.boot_tcp_mem_pages
    if boot is None or boot[1] < 1:
        return BOOT_ESTIMATE_TOLERANCE
    free_buffer_bytes = TCP_MEM_INIT_DIVISOR * boot[1] * host.page_size_bytes
    return BOOT_ESTIMATE_TOLERANCE + Fraction(FREED_AFTER_TCP_INIT_MAX_BYTES, free_buffer_bytes)


def _boot_floor(
    boot: Optional[tuple[int, ...]], live: Optional[tuple[int, ...]], error: Fraction = BOOT_ESTIMATE_TOLERANCE
) -> Optional[tuple[int, ...]]:
    """The boot default as a floor, trusting a live value within the estimate's error below it.

    The facts estimate nr_free_buffer_pages from today's zones; the kernel sized its defaults from
    the zones at boot, before it freed the initramfs and its init sections. An untuned host's live
    value therefore sits under the estimate (1.1% on a 2048 MB guest), and raising it would be a
    change for nothing, reported on every untuned host of a fleet.
    """
    if boot is None or live is None or len(live) != len(boot):
        return boot
    return tuple(
        live_field if boot_field * (1 - error) <= live_field < boot_field else boot_field
        for boot_field, live_field in zip(boot, live)
    )


def _floors_for(host: HostFacts, key: str, boot: Optional[tuple[int, ...]], workload: Workload) -> list:
    if workload.allow_decrease:
        return []
    live = _current_value(host, key)
    return [
        ("kernel boot default, allow_decrease=false", _boot_floor(boot, live, _boot_estimate_error(host))),
        ("live value, allow_decrease=false", live),
    ]


# ---------------------------------------------------------------- tcp_mem


def _tcp_mem_for_usage(usage: Usage) -> tuple[int, int, int]:
    """min = U so normal load sits at min; the buffers B scaled by 4/3 and 2 keep the kernel's 3:4:6 spacing;
    the per-CPU lag L is measurement error of the counter, added once: B + L, ceil(4/3 B) + L, 2 B + L."""
    buffers, lag = usage.buffer_pages, usage.per_cpu_slack_pages
    return (
        usage.steady_pages,
        max(usage.steady_pages, math.ceil(buffers * TCP_MEM_PRESSURE_OVER_MIN) + lag),
        max(usage.steady_pages, buffers * TCP_MEM_MAX_OVER_MIN + lag),
    )


def _slab_bytes_at(connections: int, host: HostFacts) -> int:
    """Socket slab outside tcp_mem (tcp_sock, inode, dentry, file) for this many connections."""
    return connections * slab_bytes_per_socket(host)[0]


def _budget_bytes(host: HostFacts, workload: Workload) -> int:
    return math.floor(host.mem_total_bytes * workload.memory_fraction)


def _buffer_budget_pages(host: HostFacts, workload: Workload) -> int:
    """Pages tcp_mem[2] may reach: the budget minus the target's socket slab (negative when slab alone
    does not fit), because at tcp_mem[2] both are in RAM at once."""
    return (_budget_bytes(host, workload) - _slab_bytes_at(workload.connections, host)) // host.page_size_bytes


def _bytes_at_tcp_mem_max(connections: int, workload: Workload, host: HostFacts) -> int:
    """What `connections` of this workload need at the model's tcp_mem[2] = 2 U: buffer pages plus slab."""
    usage = steady_state_usage(connections, workload, host)
    return _tcp_mem_for_usage(usage)[2] * host.page_size_bytes + _slab_bytes_at(connections, host)


def _connections_within_budget(host: HostFacts, workload: Workload) -> int:
    """Most connections (up to the target) whose buffers at tcp_mem[2] plus slab fit the budget; exact."""
    low, high = 0, workload.connections
    budget = _budget_bytes(host, workload)
    while low < high:
        middle = (low + high + 1) // 2
        if _bytes_at_tcp_mem_max(middle, workload, host) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def _binding_term(buffer_bytes: int, slab_bytes: int, budget: int) -> str:
    """Which term of buffers-at-tcp_mem[2] + socket slab decides that the target does not fit."""
    if slab_bytes >= budget:
        return "the socket slab alone exceeds the budget, so smaller buffers cannot help"
    if buffer_bytes >= slab_bytes:
        return "the binding term is the buffer pages at tcp_mem[2]"
    return "the binding term is the socket slab (fewer connections or more memory help, smaller buffers little)"


def _does_not_fit_message(host: HostFacts, workload: Workload, usage: Usage, needed_pages: int) -> str:
    page = host.page_size_bytes
    slab_per_socket, slab_source = slab_bytes_per_socket(host)
    slab_bytes = _slab_bytes_at(workload.connections, host)
    buffer_bytes = needed_pages * page
    needed_bytes = buffer_bytes + slab_bytes
    budget = _budget_bytes(host, workload)
    short_bytes = needed_bytes - budget
    fitting = _connections_within_budget(host, workload)
    needed_fraction = Fraction(needed_bytes, host.mem_total_bytes)
    fraction_hint = (
        f"memory_fraction >= {math.ceil(float(needed_fraction) * 1000) / 1000:g}"
        if needed_fraction <= 1
        else "no memory_fraction suffices (more than all RAM)"
    )
    connections_hint = (
        f"the per-CPU counter lag alone ({usage.per_cpu_slack_pages} pages) exceeds half the budget"
        if _bytes_at_tcp_mem_max(0, workload, host) > budget
        else f"at most {fitting} connections at this workload"
    )
    return (
        f"connections={workload.connections} ({workload.profile}: {usage.active_connections} active x "
        f"{usage.pages_per_active} pages + {usage.per_cpu_slack_pages} per-CPU lag pages = {usage.steady_pages} pages "
        f"steady state) needs tcp_mem max = {TCP_MEM_MAX_OVER_MIN} x {usage.buffer_pages} + "
        f"{usage.per_cpu_slack_pages} = {needed_pages} pages "
        f"({_format_bytes(buffer_bytes)}) plus socket slab {workload.connections} x {slab_per_socket} B = "
        f"{_format_bytes(slab_bytes)} ({slab_source}) = {_format_bytes(needed_bytes)}, but "
        f"memory_fraction={_format_number(workload.memory_fraction)} of MemTotal "
        f"{_format_bytes(host.mem_total_bytes)} allows {_format_bytes(budget)}: short by "
        f"{math.ceil(Fraction(short_bytes, page))} pages ({_format_bytes(short_bytes)}, "
        f"{100 * short_bytes / budget if budget else math.inf:.0f}% over the budget); "
        f"{_binding_term(buffer_bytes, slab_bytes, budget)}. "
        f"To fit: {connections_hint}, or smaller rx_buffered_bytes/tx_buffered_bytes "
        f"or active_fraction, or {fraction_hint}, or at least "
        f"{_format_bytes(math.ceil(needed_bytes / workload.memory_fraction))} of RAM"
    )


def _direction_text(payload_bytes: int, factor: Fraction, workload: Workload, head_bytes: int) -> str:
    """'16384 B x 2' or, where the skb heads weigh more, '16384 B + 16 skb heads x 1280 B'."""
    skbs = skbs_queued(payload_bytes, workload.message_bytes)
    if payload_bytes * factor >= payload_bytes + skbs * head_bytes:
        return f"{payload_bytes} B x {_format_number(factor)}"
    return f"{payload_bytes} B + {skbs} skb heads x {head_bytes} B ({workload.message_bytes} B messages)"


def _decide_tcp_mem(host: HostFacts, workload: Workload, usage: Usage) -> Decision:
    budget_pages = _buffer_budget_pages(host, workload)
    ideal = _tcp_mem_for_usage(usage)
    warnings: list[str] = []
    rx_text, tx_text = (
        _direction_text(
            direction.buffered_bytes(workload),
            direction.truesize_factor(workload),
            workload,
            skb_head_truesize_bytes(host),
        )
        for direction in _DIRECTIONS
    )
    arithmetic = (
        f"{workload.connections} connections x {_format_number(workload.active_fraction)} active = "
        f"{usage.active_connections} x (rx {rx_text} = {usage.rx_pages_per_active} pages + "
        f"tx {tx_text} = {usage.tx_pages_per_active} pages) + "
        f"{usage.per_cpu_slack_pages} pages of per-CPU counter lag ({_per_cpu_lag_source(host)}) = "
        f"U {usage.steady_pages} pages; buffers B = {usage.buffer_pages} pages, lag L = {usage.per_cpu_slack_pages}: "
        f"min = U, pressure = ceil(4/3 B) + L, max = 2 B + L (the kernel's 3:4:6 on the buffers; the lag is "
        f"the counter's error, not memory, so it is not scaled)"
    )
    value: tuple[int, ...] = ideal
    if ideal[2] > budget_pages:
        message = _does_not_fit_message(host, workload, usage, ideal[2])
        if budget_pages < 1:  # not even one page: there is nothing to clamp to
            raise TargetDoesNotFitError(
                message + "; the budget left for buffers is less than one page, so best_effort can't help."
            )
        if not workload.best_effort:
            raise TargetDoesNotFitError(message + "; or pass best_effort=true for clamped values with a warning.")
        value = _ordered((max(1, budget_pages // 2), max(1, budget_pages * 2 // 3), max(1, budget_pages)))
        warnings.append(f"best_effort: tcp_mem clamped to the budget. {message}")
        arithmetic += (
            f"; clamped to the budget left for buffers after the socket slab, {budget_pages} pages "
            f"(best_effort), in the same 3:4:6 spacing"
        )
    value, notes = _raise_to_floors(
        value, _floors_for(host, TCP_MEM, host.boot_tcp_mem_pages, workload), ("min", "pressure", "max")
    )
    value = _ordered(value)
    if value[2] > budget_pages and notes:
        warnings.append(
            f"{TCP_MEM} max {value[2]} pages ({_format_bytes(value[2] * host.page_size_bytes)}) is above the budget "
            f"({budget_pages} pages left for buffers after the socket slab) because "
            f"allow_decrease=false keeps the boot default or live value; "
            f"pass allow_decrease=true to bring it within memory_fraction={_format_number(workload.memory_fraction)}"
        )
    slab_bytes = _slab_bytes_at(workload.connections, host)
    share = Fraction(value[2] * host.page_size_bytes + slab_bytes, host.mem_total_bytes)
    explain = (
        f"{arithmetic}; max {_format_bytes(value[2] * host.page_size_bytes)} + socket slab "
        f"{_format_bytes(slab_bytes)} = {100 * float(share):.1f}% of MemTotal "
        f"(budget {100 * float(workload.memory_fraction):.0f}%)."
    )
    if notes:
        explain += " " + "; ".join(notes) + "."
    explain += " " + _udp_and_orphans_sentence(host)
    if _measured(host).bypass_prot_mem:
        explain += " " + BYPASS_PROT_MEM_SENTENCE
    return Decision(value, explain, tuple(warnings))


def _with_factor_sources(decision: Decision, workload: Workload, sources: dict[str, str]) -> Decision:
    """Say which truesize factor each direction used and from how many sockets."""
    sentence = (
        f" Factors: rx x{_format_number(workload.rx_truesize_factor)} {sources['rx']}; "
        f"tx x{_format_number(workload.tx_truesize_factor)} {sources['tx']}."
    )
    return dataclasses.replace(decision, explain=decision.explain + sentence)


def _udp_and_orphans_sentence(host: HostFacts) -> str:
    """What tcp_mem does not cover (udp_mem, its own counter) and what it also holds (orphans)."""
    udp_mem = _current_value(host, UDP_MEM)
    udp = (
        f"{UDP_MEM} {_sysctl_text(udp_mem)} pages (max {_format_bytes(udp_mem[2] * host.page_size_bytes)}) is UDP's "
        f"own limit on its own counter, left as it is: UDP memory comes on top of this budget"
        if udp_mem
        else f"{UDP_MEM} (not visible here) is UDP's own limit on its own counter, on top of this budget"
    )
    orphans = (
        f"tcp_max_orphans={host.tcp_max_orphans}"
        if host.tcp_max_orphans is not None
        else "tcp_max_orphans (half the established-hash size by default)"
    )
    return (
        f"Not counted: {udp}. Counted: up to {orphans} sockets closed with data still queued (orphans) keep "
        f"their buffers in tcp_mem until sent or reset; beyond that number, or once TCP memory passes tcp_mem[2] "
        f"(tcp_check_oom: tcp_too_many_orphans, tcp_out_of_memory), the kernel resets them."
    )


# ---------------------------------------------------------------- per-socket triples


def _socket_min_bytes(host: HostFacts) -> int:
    return max(SOCKET_MIN_BYTES, host.page_size_bytes)


def _roundup_pow_of_two(number: int) -> int:
    return 1 << (number - 1).bit_length()


def per_mss_truesize_bytes(host: Optional[HostFacts] = None) -> int:
    """tcp_sndbuf_expand's worst case per segment: one non-GSO skb with a kmalloc'ed power-of-two head.
    The facts' measured per_mss where present (it depends on MAX_TCP_HEADER, i.e. the kernel config)."""
    if host is not None and _measured(host).per_mss_bytes is not None:
        return _measured(host).per_mss_bytes
    header = MAX_TCP_HEADER_BYTES if host is None else max_tcp_header_bytes(host)
    return _roundup_pow_of_two(MSS_CLAMP_BYTES + header + SKB_SHARED_INFO_BYTES) + SK_BUFF_BYTES


def initial_sndbuf_bytes(host: HostFacts) -> tuple[int, str]:
    """SO_SNDBUF of a newly established socket: tcp_init_buffer_space -> tcp_sndbuf_expand sets it to
    sndbuf_expand x TCP_INIT_CWND x per_mss (not tcp_wmem[1], which only a socket that never connects
    keeps); measured by the facts where they could."""
    measured = _measured(host).initial_sndbuf_bytes
    if measured is not None:
        return measured, "measured on this host (loopback probe)"
    per_mss = per_mss_truesize_bytes(host)
    factor = _sndbuf_expand_factor(host)
    source = "measured per_mss" if _measured(host).per_mss_bytes is not None else "this kernel flavour's per_mss"
    return factor * TCP_INIT_CWND * per_mss, f"{factor} x {TCP_INIT_CWND} segments x {per_mss} B ({source})"


def _sndbuf_expand_factor(host: HostFacts) -> int:
    return SNDBUF_EXPAND_BY_CONGESTION_CONTROL.get(host.tcp_congestion_control or "", SNDBUF_EXPAND_DEFAULT)


def _cwnd_segments(link_bdp_bytes: int) -> int:
    """Segments in flight to fill the link: BDP / MSS, at least the initial window."""
    return max(TCP_INIT_CWND, math.ceil(Fraction(link_bdp_bytes, MSS_CACHE_BYTES)))


def _sndbuf_expand_bytes(host: HostFacts, link_bdp_bytes: int) -> int:
    """What tcp_sndbuf_expand asks for a socket that fills the link."""
    return _sndbuf_expand_factor(host) * _cwnd_segments(link_bdp_bytes) * per_mss_truesize_bytes(host)


def _advmss_bytes() -> int:
    """The advertised MSS at MTU 1500 (tp->advmss: MTU - 40), the receive side's segment."""
    return MSS_CLAMP_BYTES


def _autotuning_window_bytes(link_bdp_bytes: int) -> int:
    """The window receive autotuning aims at once a flow delivers a BDP per RTT: tcp_rcv_space_adjust()
    (net/ipv4/tcp_input.c, 4.19 .. 6.15) rcvwin = 2 x copied + 16 x advmss; tcp_rcvbuf_grow() (6.16 on)
    rcvwin = 2 x the bytes delivered in the last RTT. The model keeps the older, larger cushion."""
    return 2 * link_bdp_bytes + RCV_SPACE_CUSHION_SEGMENTS * _advmss_bytes()


def _rcvmem_per_segment_bytes(adv_win_scale: int) -> int:
    """tcp_rcv_space_adjust() before 6.6: SKB_TRUESIZE(advmss + MAX_TCP_HEADER), raised by 128 B until
    tcp_win_from_space() of it holds one advmss."""
    rcvmem = _advmss_bytes() + MAX_TCP_HEADER_BYTES + SK_BUFF_BYTES + SKB_SHARED_INFO_BYTES
    if adv_win_scale <= 0:  # window = space >> -scale: jump to the first step that holds an advmss
        short = (_advmss_bytes() << -adv_win_scale) - rcvmem
        return rcvmem + max(0, math.ceil(Fraction(short, 128))) * 128
    while win_from_space_bytes(rcvmem, adv_win_scale) < _advmss_bytes():  # at most a few steps: window >= space/2
        rcvmem += 128
    return rcvmem


def win_from_space_bytes(space_bytes: int, adv_win_scale: int) -> int:
    """tcp_win_from_space() before 6.6 (include/net/tcp.h): the window a buffer of space_bytes advertises."""
    if adv_win_scale <= 0:
        return space_bytes >> -adv_win_scale
    return space_bytes - (space_bytes >> adv_win_scale)


def _adv_win_scale(host: HostFacts) -> int:
    live = _current_value(host, TCP_ADV_WIN_SCALE)
    return live[0] if live else TCP_ADV_WIN_SCALE_DEFAULT


def _receive_max_source(host: HostFacts, workload: Workload, link_bdp_bytes: int) -> tuple[int, str]:
    """tcp_rmem[2] for a link (unrounded): the receive buffer autotuning itself asks for at line rate.

    Before 6.6 the buffer is rcvwin / advmss segments of rcvmem each and advertises tcp_win_from_space()
    of it (tcp_adv_win_scale 1: half); from 6.6 tcp_space_from_win() turns rcvwin into buffer with the
    socket's scaling_ratio, the payload share of truesize that tcp_measure_rcv_mss() learns, i.e.
    rcvwin x the receive truesize factor."""
    link = f"BDP {link_bdp_bytes} B ({workload.bandwidth_bps} bit/s / 8 x {_format_number(workload.rtt_ms or 0)} ms)"
    window = _autotuning_window_bytes(link_bdp_bytes)
    window_text = (
        f"receive autotuning's target window 2 x {link} + {RCV_SPACE_CUSHION_SEGMENTS} x advmss "
        f"{_advmss_bytes()} = {window} B (tcp_rcv_space_adjust/tcp_rcvbuf_grow)"
    )
    if at_least(host.kernel_version, KERNEL_ADV_WIN_SCALE_OBSOLETE):
        factor = workload.rx_truesize_factor
        return math.ceil(window * factor), (
            f"max = {window_text} x receive truesize {_format_number(factor)} (tcp_space_from_win with the "
            f"socket's scaling_ratio, kernel >= 6.6)"
        )
    scale = _adv_win_scale(host)
    rcvmem = _rcvmem_per_segment_bytes(scale)
    segments = window // _advmss_bytes()
    needed = segments * rcvmem
    return needed, (
        f"max = {window_text} / advmss = {segments} segments x {rcvmem} B each (SKB_TRUESIZE(advmss + "
        f"MAX_TCP_HEADER) raised until tcp_win_from_space with tcp_adv_win_scale={scale} holds an advmss, "
        f"kernel < 6.6) = {needed} B, which advertises a window of "
        f"{win_from_space_bytes(needed, scale)} B"
    )


def gso_overhead(host: HostFacts, message_bytes: int) -> Fraction:
    """Bytes charged per payload byte of a bulk send queue: one skb head per skb of min(message, 64 KiB)
    (tcp_sendmsg puts the data in page fragments of GSO-sized skbs): about 1.02 at 64 KiB."""
    skb_bytes = min(message_bytes, SKB_MAX_PAYLOAD_BYTES)
    return Fraction(skb_bytes + skb_head_truesize_bytes(host), skb_bytes)


def _send_overhead(host: HostFacts, workload: Workload, tx_source: str) -> tuple[Fraction, str]:
    """The truesize overhead a bulk send queue is charged: the measured or given send factor, else GSO's."""
    if tx_source != "default":
        return workload.tx_truesize_factor, f"send truesize {_format_number(workload.tx_truesize_factor)} ({tx_source})"
    overhead = gso_overhead(host, workload.message_bytes)
    skb_bytes = min(workload.message_bytes, SKB_MAX_PAYLOAD_BYTES)
    return overhead, (
        f"GSO truesize overhead ({skb_bytes} + skb head {skb_head_truesize_bytes(host)}) / {skb_bytes} = "
        f"{float(overhead):.4f}"
    )


def _send_max_source(host: HostFacts, workload: Workload, link_bdp_bytes: int, tx_source: str) -> tuple[int, str]:
    """tcp_wmem[2] for a link (unrounded): 2 x BDP x the send queue's truesize overhead.

    tcp_sndbuf_expand() asks sndbuf_expand x cwnd x per_mss, the non-GSO worst case (~6x the BDP, 9x
    under bbr); with GSO the queue costs ~1.02x its payload. What must fit is the data in flight (one
    BDP) plus what recovery and cwnd growth keep queued (the kernel's own "Cubic needs 1.7 factor,
    rounded to 2"), the unsent part bounded by tcp_notsent_lowat."""
    overhead, overhead_text = _send_overhead(host, workload, tx_source)
    needed = math.ceil(SEND_MAX_BDP_MULTIPLE * link_bdp_bytes * overhead)
    return needed, (
        f"max = {SEND_MAX_BDP_MULTIPLE} x BDP {link_bdp_bytes} B x {overhead_text} = {needed} B (data in flight "
        f"plus what loss recovery and cwnd growth keep queued; tcp_sndbuf_expand's own ask, "
        f"{_sndbuf_expand_bytes(host, link_bdp_bytes)} B, assumes one non-GSO skb per segment)"
    )


def _decide_socket_triple(
    host: HostFacts, workload: Workload, direction: _Direction, factor_source: str = "default"
) -> Decision:
    """tcp_rmem / tcp_wmem: kernel min and initial size; max from the link's BDP or the boot default."""
    key = direction.triple_key
    boot = direction.boot_triple(host)
    initial = direction.initial_bytes(host)
    minimum = _socket_min_bytes(host)
    default = max(initial, minimum)
    warnings: list[str] = []
    link_bdp = _bdp_bytes(workload)
    if link_bdp is not None:
        needed, derivation = direction.link_max(host, workload, link_bdp, factor_source.split(" ", 1)[0])
        page = host.page_size_bytes
        maximum = min(math.ceil(Fraction(needed, page)) * page, INT_MAX)
        if needed > INT_MAX:
            warnings.append(
                f"{key}: the link needs {needed} bytes per socket but sysctl values are C ints; capped at {INT_MAX}"
            )
        source = f"{derivation}, rounded up to a page = {maximum}"
    else:
        live = _current_value(host, key)
        maximum = boot[2] if boot else live[2] if live else direction.fallback_max_bytes
        origin = "boot default" if boot else "live value" if live else "kernel cap"
        source = f"max = {maximum} ({origin}, no link given)"
    value, notes = _raise_to_floors(
        (minimum, default, max(maximum, default)), _floors_for(host, key, boot, workload), ("min", "default", "max")
    )
    value = _ordered(value)
    if direction is _TX:
        established, how = initial_sndbuf_bytes(host)
        default_text = (
            f"default = {initial} B, the kernel's tcp_wmem[1]: SO_SNDBUF of a socket before it connects; an "
            f"established socket starts at tcp_sndbuf_expand's {established} B ({how}) and grows from there"
        )
    else:
        default_text = f"default = the kernel's initial {initial} B"
    explain = f"min = max(4096, page size {host.page_size_bytes}) = {minimum}; {default_text}; {source}."
    if notes:
        explain += " " + "; ".join(notes) + "."
    return Decision(value, explain, tuple(warnings))


# ---------------------------------------------------------------- net.core limits and switches


def _decide_core_max(host: HostFacts, workload: Workload, direction: _Direction, triple_max: int) -> Decision:
    """rmem_max >= tcp_rmem[2] (and wmem likewise) so SO_RCVBUF/SO_SNDBUF users reach what autotuning reaches."""
    key, triple_key = direction.core_key, direction.triple_key
    floors = [] if workload.allow_decrease else [("live value, allow_decrease=false", _current_value(host, key))]
    value, notes = _raise_to_floors((triple_max,), floors, ("value",))
    explain = (
        f"{key} = {triple_key}[2] = {triple_max}, so applications that set {direction.socket_option} are not "
        "capped below what autotuned sockets reach."
    )
    if notes:
        explain += " " + "; ".join(notes) + "."
    return Decision(value, explain)


def _decide_moderate_rcvbuf(host: HostFacts) -> Decision:
    live = _current_value(host, TCP_MODERATE_RCVBUF)
    state = "already on" if live == (1,) else f"live value {_sysctl_text(live)}" if live else "live value unknown"
    return Decision((1,), f"receive autotuning grows each buffer on demand up to {TCP_RMEM}[2] ({state}).")


def _decide_notsent_lowat(host: HostFacts, workload: Workload) -> Optional[Decision]:
    """tcp_notsent_lowat for profiles with bulk flows; None (key left alone) for the others."""
    if workload.profile not in BULK_PROFILES:
        return None
    live = _current_value(host, TCP_NOTSENT_LOWAT)
    live_text = (
        "unknown here"
        if live is None
        else "the kernel's default UINT_MAX, no limit"
        if live[0] == TCP_NOTSENT_LOWAT_DEFAULT
        else f"{live[0]}"
    )
    return Decision(
        (NOTSENT_LOWAT_BULK_BYTES,),
        f"{NOTSENT_LOWAT_BULK_BYTES} B = two 64 KiB GSO skbs of unsent data per socket (live: {live_text}). "
        f"Without it a bulk writer fills its send queue up to sk_sndbuf with data not yet sent "
        f"(sk_stream_memory_free -> tcp_stream_memory_free, net/ipv4/tcp.c); with it the writer sleeps once "
        f"this much is unsent, so the queue holds what is in flight plus at most this much, and the memory of "
        f"a bulk sender follows the link instead of {TCP_WMEM}[2]. Per network namespace; applications may "
        f"still set TCP_NOTSENT_LOWAT per socket.",
    )


def _override_decision(workload: Workload, key: str, modelled: Optional[Decision]) -> Decision:
    value = workload.overrides[key]
    model_part = f" (the model recommended {_sysctl_text(modelled.value)})" if modelled else ""
    return Decision(value, f"set by overrides{model_part}.")


# ---------------------------------------------------------------- scope


def _scope_of(host: HostFacts, key: str) -> dict[str, Any]:
    fact = host.sysctl[key]
    elsewhere = host.initial_netns is False and fact.scope == "global"
    if not fact.present:
        reason = (
            "absent here: a global key that a non-initial network namespace (container) does not show; "
            "set it on the host"
            if elsewhere
            else "absent here: this kernel has no such key under /proc/sys"
        )
        return {"scope": fact.scope, "settable": False, "reason": reason}
    if not fact.writable:
        reason = "read-only here" + (
            ": a global key, read-only in a non-initial network namespace; set it on the host" if elsewhere else ""
        )
        return {"scope": fact.scope, "settable": False, "reason": reason}
    where = "this network namespace only" if fact.scope == "netns" else "the whole host"
    return {"scope": fact.scope, "settable": True, "reason": f"writable here; applies to {where}"}


NOT_ROOT_REASON = "not judged: not running as root (writing /proc/sys needs root)"


def _scope_without_root(host: HostFacts, key: str, scope: dict[str, Any]) -> dict[str, Any]:
    """Without root no key is writable: a present key's writability is unknown (settable None), not false."""
    if scope["settable"] or not host.sysctl[key].present:
        return scope
    return {"scope": scope["scope"], "settable": None, "reason": NOT_ROOT_REASON}


def _not_root_warning(unjudged_keys: list[str]) -> str:
    judged = (
        f"whether {', '.join(unjudged_keys)} can be set here was not judged (writing /proc/sys needs root), "
        "so nothing can be applied in this run"
        if unjudged_keys
        else "no key's writability depended on it"
    )
    return (
        f"not running as root: {judged}; every value this recommendation uses was readable without root. "
        "Run as root (become) to judge and apply the keys."
    )


# ---------------------------------------------------------------- estimate


def slab_bytes_per_socket(host: HostFacts) -> tuple[int, str]:
    if at_least(host.kernel_version, SLAB_LARGER_SINCE):
        return (
            SLAB_BYTES_PER_SOCKET_MEASURED,
            "4.7 KB per established socket: measured on kernel 6.18, used from kernel 5.0 on",
        )
    return SLAB_BYTES_PER_SOCKET_OLD, "3.3 KB per established socket: the older kernels' figure, used before 5.0"


def _current_settings_hold_target(
    host: HostFacts, workload: Workload, usage: Usage, live_tcp_mem: Optional[tuple[int, ...]]
) -> Optional[bool]:
    """Whether the tcp_mem in force keeps the target below pressure; None when tcp_mem is unknown here."""
    if not live_tcp_mem:
        return None
    held = connections_held(live_tcp_mem[1], usage, workload)
    # None: the workload buffers nothing, so no number of connections reaches pressure
    return True if held is None else held >= workload.connections


# tcp_fragment() (net/ipv4/tcp_output.c, since 5.2 and the 4.19/5.1 stable fixes) refuses to split a queued
# skb only once sk_wmem_queued / 2 passes sk_sndbuf + 2 * SKB_TRUESIZE(GSO_LEGACY_MAX_SIZE) (GSO_MAX_SIZE before
# 5.19; 64 KiB either way). Splits as the window opens (tcp_fragment, tso_fragment: a new head each) are charged
# past sk_sndbuf, up to that ceiling: the most one bulk flow's send queue can hold in tcp_mem.
GSO_LEGACY_MAX_BYTES = 65536


def send_queue_ceiling_bytes(send_max_bytes: int) -> int:
    """The most a flow's send queue can be charged when its buffer is send_max_bytes (tcp_fragment's allowance)."""
    return 2 * (send_max_bytes + 2 * (GSO_LEGACY_MAX_BYTES + SK_BUFF_BYTES + SKB_SHARED_INFO_BYTES))


def _udp_mem_max_bytes(host: HostFacts) -> Optional[int]:
    udp_mem = _current_value(host, UDP_MEM)
    return None if not udp_mem else udp_mem[2] * host.page_size_bytes


def _build_estimate(host: HostFacts, workload: Workload, usage: Usage, tcp_mem: tuple[int, ...]) -> dict[str, Any]:
    page = host.page_size_bytes
    slab_per_socket, slab_source = slab_bytes_per_socket(host)
    buffer_bytes = usage.steady_pages * page
    slab_bytes = workload.connections * slab_per_socket
    # only the live value: where tcp_mem is not visible (a container) the host's capacity is unknown, and
    # an estimated boot default would pass off a guess as the host's setting
    live_tcp_mem = _current_value(host, TCP_MEM)
    live_source = "live value" if live_tcp_mem else None
    return {
        "active_connections": usage.active_connections,
        "rx_pages_per_active_connection": usage.rx_pages_per_active,
        "tx_pages_per_active_connection": usage.tx_pages_per_active,
        "per_cpu_reserve_pages": usage.per_cpu_slack_pages,
        "steady_state_pages": usage.steady_pages,
        "buffer_bytes_at_target": buffer_bytes,
        "slab_bytes_per_connection": slab_per_socket,
        "slab_bytes_source": slab_source,
        "slab_bytes_at_target": slab_bytes,
        "total_bytes_at_target": buffer_bytes + slab_bytes,
        "ram_share_at_target": round((buffer_bytes + slab_bytes) / host.mem_total_bytes, 6),
        "tcp_mem_max_bytes": tcp_mem[2] * page,
        "ram_share_at_tcp_mem_max": round((tcp_mem[2] * page + slab_bytes) / host.mem_total_bytes, 6),
        "memory_budget_bytes": _memory_budget_pages(host, workload) * page,
        "recommended_connections_before_pressure": connections_held(tcp_mem[1], usage, workload),
        "recommended_connections_before_stalls": connections_held(tcp_mem[2], usage, workload),
        "current_tcp_mem_pages": list(live_tcp_mem) if live_tcp_mem else None,
        "current_tcp_mem_source": live_source,
        "current_connections_before_pressure": connections_held(live_tcp_mem[1], usage, workload)
        if live_tcp_mem
        else None,
        "current_connections_before_stalls": connections_held(live_tcp_mem[2], usage, workload)
        if live_tcp_mem
        else None,
        "current_settings_hold_target": _current_settings_hold_target(host, workload, usage, live_tcp_mem),
        "udp_mem_max_bytes": _udp_mem_max_bytes(host),
        "tcp_max_orphans": host.tcp_max_orphans,
        "current_used_pages": host.used_pages,
        "current_level": host.status_level,
        "current_used_fraction_of_recommended_pressure": round(host.used_pages / tcp_mem[1], 6)
        if host.used_pages is not None
        else None,
    }


# ---------------------------------------------------------------- warnings


def _effective_value(host: HostFacts, key: str, recommended: dict[str, tuple[int, ...]]) -> Optional[tuple[int, ...]]:
    """What will be in force after apply: the recommendation where settable, else the live value."""
    if key in recommended and _scope_of(host, key)["settable"]:
        return recommended[key]
    return _current_value(host, key)


def _buffer_cap_warnings(host: HostFacts, recommended: dict[str, tuple[int, ...]]) -> list[str]:
    warnings = []
    for direction in _DIRECTIONS:
        core_key, triple_key, option = direction.core_key, direction.triple_key, direction.socket_option
        core = _effective_value(host, core_key, recommended)
        triple = _effective_value(host, triple_key, recommended)
        if core is not None and triple is not None and core[0] < triple[2]:
            warnings.append(
                f"applications that set {option} are capped by {core_key}={core[0]}, below {triple_key}[2]="
                f"{triple[2]} that autotuned sockets reach (bpftune issue #188); raise {core_key}"
                + ("" if _scope_of(host, core_key)["settable"] else " on the host")
            )
    return warnings


def _override_warnings(host: HostFacts, workload: Workload, usage: Usage, tcp_mem: tuple[int, ...]) -> list[str]:
    warnings = []
    if TCP_MEM in workload.overrides:
        budget_pages = _buffer_budget_pages(host, workload)
        if tcp_mem[2] > budget_pages:
            warnings.append(
                f"override {TCP_MEM} max {tcp_mem[2]} pages is above the budget ({budget_pages} pages left for "
                f"buffers after the socket slab, memory_fraction={_format_number(workload.memory_fraction)})"
            )
        if tcp_mem[1] < usage.steady_pages:
            warnings.append(
                f"override {TCP_MEM} pressure {tcp_mem[1]} pages is below the target's steady-state usage of "
                f"{usage.steady_pages} pages: the target load would run under memory pressure (receivers drop)"
            )
        if tcp_mem[0] == 0:
            warnings.append(f"override {TCP_MEM} min is 0: TCP would be under pressure from the first page")
    for key in (direction.triple_key for direction in _DIRECTIONS):
        if key in workload.overrides and workload.overrides[key][0] < SOCKET_MIN_BYTES:
            warnings.append(f"override {key} min {workload.overrides[key][0]} is below {SOCKET_MIN_BYTES} bytes")
    if workload.overrides.get(TCP_MODERATE_RCVBUF) == (0,):
        warnings.append(f"override {TCP_MODERATE_RCVBUF}=0 turns receive autotuning off: buffers stay at {TCP_RMEM}[1]")
    return warnings


def _host_warnings(host: HostFacts, workload: Workload, usage: Usage, tcp_mem: tuple[int, ...]) -> list[str]:
    warnings = []
    if host.used_pages is not None and host.used_pages > tcp_mem[1]:
        warnings.append(
            f"current TCP buffer usage {host.used_pages} pages is already above the recommended pressure "
            f"threshold {tcp_mem[1]} pages: the host carries more than this target now"
        )
    if host.sockstat_host_wide_fields:
        warnings.append(
            f"/proc/net/sockstat {', '.join(host.sockstat_host_wide_fields)} are host-wide in this network "
            "namespace: current usage figures describe the whole host, not this container"
        )
    if _measured(host).bypass_prot_mem:
        warnings.append(BYPASS_PROT_MEM_SENTENCE)
    adv = _current_value(host, TCP_ADV_WIN_SCALE)
    if (
        at_least(host.kernel_version, KERNEL_ADV_WIN_SCALE_OBSOLETE)
        and adv is not None
        and adv[0] != TCP_ADV_WIN_SCALE_DEFAULT
    ):
        warnings.append(
            f"{TCP_ADV_WIN_SCALE}={adv[0]} was changed from the default {TCP_ADV_WIN_SCALE_DEFAULT}, but it has no "
            f"effect on kernel >= 6.6 (per-socket scaling_ratio replaced it); remove it from sysctl configuration"
        )
    slab_per_socket = slab_bytes_per_socket(host)[0]
    total_bytes = usage.steady_pages * host.page_size_bytes + workload.connections * slab_per_socket
    if host.mem_available_bytes is not None and total_bytes > host.mem_available_bytes:
        warnings.append(
            f"the target needs about {_format_bytes(total_bytes)} (buffers + socket slab) but MemAvailable is "
            f"{_format_bytes(host.mem_available_bytes)}"
        )
    return warnings


def _udp_mem_warnings(host: HostFacts, workload: Workload, tcp_mem: tuple[int, ...]) -> list[str]:
    """udp_mem is a separate limit: both maxima plus the socket slab above MemTotal can exhaust RAM."""
    udp_bytes = _udp_mem_max_bytes(host)
    if udp_bytes is None:
        return []
    tcp_bytes = tcp_mem[2] * host.page_size_bytes
    slab_bytes = _slab_bytes_at(workload.connections, host)
    if tcp_bytes + slab_bytes > host.mem_total_bytes or tcp_bytes + udp_bytes + slab_bytes <= host.mem_total_bytes:
        return []  # the first case is the above-MemTotal check's
    return [
        f"{UDP_MEM} max {_format_bytes(udp_bytes)} is UDP's own limit beside {TCP_MEM} max {_format_bytes(tcp_bytes)}: "
        f"with the socket slab {_format_bytes(slab_bytes)} both can take "
        f"{_format_bytes(tcp_bytes + udp_bytes + slab_bytes)}, more than MemTotal "
        f"{_format_bytes(host.mem_total_bytes)}; lower {UDP_MEM} (overrides) if this host carries much UDP"
    ]


PER_SOCKET_MAXIMA = tuple((direction.triple_key, 2) for direction in _DIRECTIONS) + tuple(
    (direction.core_key, 0) for direction in _DIRECTIONS
)


def _lowered_maximum_warnings(host: HostFacts, recommended: dict[str, tuple[int, ...]]) -> list[str]:
    """allow_decrease=true may lower a per-socket maximum the host runs with: say which and what it costs."""
    warnings = []
    for key, index in PER_SOCKET_MAXIMA:
        live = _current_value(host, key)
        if key not in recommended or live is None or recommended[key][index] >= live[index]:
            continue
        field = f"{key}[{index}]" if index else key
        warnings.append(
            f"{field} goes down from the live {live[index]} to {recommended[key][index]} bytes (allow_decrease=true): "
            f"sockets already grown past it keep what they hold, but none grows beyond it any more; connections "
            f"whose bandwidth-delay product needs more lose throughput"
        )
    return warnings


def flows_at_maximum(workload: Workload, usage: Usage) -> int:
    """Sockets expected to grow to their maximum at once: every active one of a bulk profile over a described
    link (the link sized the maxima), else one."""
    bulk_over_link = workload.profile in BULK_PROFILES and _bdp_bytes(workload) is not None
    return usage.active_connections if bulk_over_link else 1


def _socket_max_warnings(
    host: HostFacts, workload: Workload, usage: Usage, recommended: dict[str, tuple[int, ...]]
) -> list[str]:
    """Flows at their per-socket maximum that would together pass tcp_mem[1], and how many fit below it."""
    pressure_bytes = recommended[TCP_MEM][1] * host.page_size_bytes
    flows = flows_at_maximum(workload, usage)
    warnings = []
    for key in (direction.triple_key for direction in _DIRECTIONS):
        maximum = recommended[key][2]
        if flows * maximum <= pressure_bytes:
            continue
        carried = pressure_bytes // maximum
        warnings.append(
            f"{key}[2]={maximum} bytes: {flows} flow{'s' if flows > 1 else ''} at this maximum would hold "
            f"{_format_bytes(flows * maximum)}, more than the {TCP_MEM} pressure threshold "
            f"{_format_bytes(pressure_bytes)}; this host carries {carried} such flow{'' if carried == 1 else 's'} "
            f"before every socket is put under memory pressure (buffers stop growing, windows shrink): fewer bulk "
            f"flows per host, a shorter link, or a larger memory_fraction"
        )
    return warnings


def _kept_tcp_mem(host: HostFacts, workload: Workload) -> Optional[tuple[int, ...]]:
    """The tcp_mem the operator imposes: an override, or the live value that allow_decrease=false keeps."""
    if TCP_MEM in workload.overrides:
        return workload.overrides[TCP_MEM]
    return None if workload.allow_decrease else _current_value(host, TCP_MEM)


def _above_mem_total_warning(host: HostFacts, workload: Workload) -> Optional[str]:
    """A live value or override whose tcp_mem[2] plus the target's socket slab exceeds MemTotal (the model's
    own values stay within memory_fraction). An error unless allow_above_mem_total=true; then the first
    warning."""
    tcp_mem = _kept_tcp_mem(host, workload)
    if tcp_mem is None:
        return None
    buffer_bytes = tcp_mem[2] * host.page_size_bytes
    slab_bytes = _slab_bytes_at(workload.connections, host)
    if buffer_bytes + slab_bytes <= host.mem_total_bytes or slab_bytes >= host.mem_total_bytes:
        return None  # fits; or the target's slab alone passes MemTotal (host_warnings says so), not tcp_mem
    source = "the override" if TCP_MEM in workload.overrides else "the live value, kept by allow_decrease=false,"
    message = (
        f"{TCP_MEM} max {tcp_mem[2]} pages ({_format_bytes(buffer_bytes)}) from {source} plus the target's socket "
        f"slab {_format_bytes(slab_bytes)} is {_format_bytes(buffer_bytes + slab_bytes)}, more than MemTotal "
        f"{_format_bytes(host.mem_total_bytes)}: TCP would not push back on senders before the host runs out of "
        f"memory (the OOM killer, not tcp_mem, would stop it)"
    )
    if not workload.allow_above_mem_total:
        fix = "drop or lower the override" if TCP_MEM in workload.overrides else "pass allow_decrease=true"
        raise AboveMemTotalError(
            f"{message}; {fix} to size it from the target, or allow_above_mem_total=true to keep it"
        )
    return message + " (kept: allow_above_mem_total=true)"


# ---------------------------------------------------------------- memory cgroups

MIB = 1 << 20
SYSTEMD_UNIT_SUFFIXES = (".service", ".scope", ".slice")
# Each CPU keeps up to MEMCG_CHARGE_BATCH (64) pages charged ahead to the cgroup it last charged
# (include/linux/memcontrol.h, mm/memcontrol.c consume_stock/refill_stock): slack a limit must leave.
MEMCG_CHARGE_BATCH_PAGES = 64


def _cgroup_socket_bytes(connections: int, workload: Workload, host: HostFacts, with_slab: bool) -> int:
    """Socket memory a cgroup is charged for `connections`: buffers (tcp_mem's per-CPU reserve left
    out) plus the memcg's own per-CPU charge batches, and the socket slab on cgroup v2, where slab
    is charged too."""
    usage = steady_state_usage(connections, workload, host)
    buffer_bytes = usage.active_connections * usage.bytes_per_active
    batch_bytes = host.cpu_count * MEMCG_CHARGE_BATCH_PAGES * host.page_size_bytes
    return buffer_bytes + batch_bytes + (connections * slab_bytes_per_socket(host)[0] if with_slab else 0)


def _cgroup_connections_within(budget_bytes: int, workload: Workload, host: HostFacts, with_slab: bool) -> int:
    """Most connections (up to the target) whose socket memory fits budget_bytes; the cost only grows."""
    low, high = 0, workload.connections
    while low < high:
        middle = (low + high + 1) // 2
        if _cgroup_socket_bytes(middle, workload, host, with_slab) <= budget_bytes:
            low = middle
        else:
            high = middle - 1
    return low


def _cgroup_fix(owner: CgroupOwner, needed_limit_bytes: int) -> str:
    """What to raise: the systemd unit's MemoryMax=/MemoryHigh=, a container's limit, or v1's kmem.tcp limit."""
    if owner.version == 1:
        return (
            f"memory.kmem.tcp.limit_in_bytes of {owner.limit_cgroup} (the container runtime's kernel TCP memory "
            f"limit) to at least {needed_limit_bytes} bytes"
        )
    setting = "MemoryHigh" if owner.limit_file == "memory.high" else "MemoryMax"
    mib = math.ceil(needed_limit_bytes / MIB)
    leaf = owner.limit_cgroup.rstrip("/").rsplit("/", 1)[-1]
    if leaf.endswith(SYSTEMD_UNIT_SUFFIXES):
        return (
            f"{setting}= of the systemd unit {leaf} to at least {mib}M (systemctl set-property {leaf} "
            f"{setting}={mib}M, or the unit file), or the memory limit of the container it runs"
        )
    return (
        f"the memory limit ({owner.limit_file}) of the container or unit in {owner.limit_cgroup} to at least {mib} MiB"
    )


def _cgroup_limit_effect(owner: CgroupOwner) -> str:
    """What the limit does to a socket charge (mm/memcontrol.c try_charge_memcg, mem_cgroup_charge_skmem)."""
    if owner.version == 1:
        return (
            "At memory.kmem.tcp.limit_in_bytes a charge is refused: writers wait in sk_stream_wait_memory, "
            "receivers drop."
        )
    if owner.limit_file == "memory.high":
        return (
            "memory.high never refuses a charge: past it the task is throttled (made to reclaim and sleep) on its "
            "way back to user space, and reclaim marks the cgroup's sockets as under pressure."
        )
    return (
        "At memory.max a charge from a writer (process context) is refused after reclaim (or the cgroup's OOM "
        "killer ends the service): the writer waits in sk_stream_wait_memory; from 6.1 receive charges in "
        "softirq are forced past memory.max instead of dropped, so memory can pass the limit."
    )


def _cgroup_throttled_sentence(host: HostFacts) -> Optional[str]:
    """memory.events sock_throttled where the kernel counts it: pressure already seen, limit or not."""
    throttled = _measured(host).cgroup_sock_throttled
    if not throttled:
        return None
    return (
        f"memory.events sock_throttled = {throttled} for the cgroup owning the most TCP sockets: the kernel has "
        f"already put its sockets under memory pressure that many times (a limit, or reclaim scanning the "
        f"cgroup, vmpressure), whatever tcp_mem says; raising tcp_mem does not change it."
    )


def _cgroup_check(host: HostFacts, workload: Workload) -> Optional[dict[str, Any]]:
    """Whether the target's socket memory fits the headroom of the cgroup owning the most TCP sockets.

    None without cgroup facts or without a finite limit over that cgroup. The collection never writes
    cgroup settings: a target that does not fit is a warning naming the limit to raise.
    """
    owner = host.cgroup_owner
    if owner is None:
        return None
    with_slab = owner.version == 2
    needed_bytes = _cgroup_socket_bytes(workload.connections, workload, host, with_slab)
    fits = needed_bytes <= owner.headroom_bytes
    needed_limit_bytes = owner.other_bytes + needed_bytes
    within = _cgroup_connections_within(max(0, owner.headroom_bytes), workload, host, with_slab)
    measured = _measured(host)
    result = {
        "path": owner.path,
        "version": owner.version,
        "tcp_sockets": owner.tcp_sockets,
        "limit_cgroup": owner.limit_cgroup,
        "limit_file": owner.limit_file,
        "limit_bytes": owner.limit_bytes,
        "other_bytes": owner.other_bytes,
        "headroom_bytes": owner.headroom_bytes,
        "needed_bytes": needed_bytes,
        "needed_limit_bytes": needed_limit_bytes,
        "connections_within_headroom": within,
        "sock_throttled": measured.cgroup_sock_throttled,
        "file_bytes": measured.cgroup_file_bytes,
        "fits": fits,
        "warning": None,
    }
    if not fits:
        what = "buffers and socket slab" if with_slab else "buffers (memory.kmem.tcp counts buffers only)"
        file_bytes = measured.cgroup_file_bytes
        file_text = (
            f" (its reclaimable page cache, {_format_bytes(file_bytes)} of file memory, left out: reclaim frees it "
            f"before the limit binds)"
            if file_bytes
            else ""
        )
        other = (
            f"{_format_bytes(owner.other_bytes)} of other memory charged there{file_text} leaves "
            f"{_format_bytes(owner.headroom_bytes)} for these sockets"
            if with_slab
            else f"this limit leaves {_format_bytes(owner.headroom_bytes)} for these sockets"
        )
        result["warning"] = (
            f"memory cgroup {owner.path} owns {owner.tcp_sockets} of the {owner.tcp_sockets_attributed} TCP sockets "
            f"attributed to a cgroup; the kernel charges their memory to it and, near its limit, puts them under "
            f"memory pressure whatever tcp_mem says (buffers stop growing, windows shrink). "
            f"{_cgroup_limit_effect(owner)} "
            f"{owner.limit_file} of {owner.limit_cgroup} is {_format_bytes(owner.limit_bytes)}: {other}, but "
            f"{workload.connections} connections need {_format_bytes(needed_bytes)} ({what}). Raising tcp_mem does "
            f"not help: raise {_cgroup_fix(owner, needed_limit_bytes)}, or hold at most {within} connections per "
            f"instance in this cgroup. This collection never changes cgroup settings."
        )
    return result


# ---------------------------------------------------------------- the recommendation


def _decide_all(
    host: HostFacts, workload: Workload, usage: Usage, factor_sources: Optional[dict[str, str]] = None
) -> dict[str, Decision]:
    """Decisions in dependency order: overrides of triples feed the net.core limits derived from them."""

    def pick(key: str, modelled: Decision) -> Decision:
        return _override_decision(workload, key, modelled) if key in workload.overrides else modelled

    decisions: dict[str, Decision] = {}
    if TCP_MEM in workload.overrides:
        # an operator's tcp_mem stands even where the model's target would not fit (warned about later)
        try:
            modelled_tcp_mem: Optional[Decision] = _decide_tcp_mem(host, workload, usage)
        except TargetDoesNotFitError:
            modelled_tcp_mem = None
        decisions[TCP_MEM] = _override_decision(workload, TCP_MEM, modelled_tcp_mem)
    else:
        decisions[TCP_MEM] = _decide_tcp_mem(host, workload, usage)
    for direction in _DIRECTIONS:
        source = (factor_sources or {}).get(direction.name, "default")
        decisions[direction.triple_key] = pick(
            direction.triple_key, _decide_socket_triple(host, workload, direction, source)
        )
    for direction in _DIRECTIONS:
        modelled = _decide_core_max(host, workload, direction, decisions[direction.triple_key].value[2])
        decisions[direction.core_key] = pick(direction.core_key, modelled)
    decisions[TCP_MODERATE_RCVBUF] = pick(TCP_MODERATE_RCVBUF, _decide_moderate_rcvbuf(host))
    notsent_lowat = _decide_notsent_lowat(host, workload)
    if notsent_lowat is not None:
        decisions[TCP_NOTSENT_LOWAT] = pick(TCP_NOTSENT_LOWAT, notsent_lowat)
    for key in workload.overrides:
        if key not in decisions:
            decisions[key] = _override_decision(workload, key, None)
    return decisions


def _without_obsolete(host: HostFacts, decisions: dict[str, Decision]) -> tuple[dict[str, Decision], list[str]]:
    """tcp_adv_win_scale is never written on kernel >= 6.6, even when an override asks for it."""
    if TCP_ADV_WIN_SCALE in decisions and at_least(host.kernel_version, KERNEL_ADV_WIN_SCALE_OBSOLETE):
        kept = {key: decision for key, decision in decisions.items() if key != TCP_ADV_WIN_SCALE}
        return kept, [f"override {TCP_ADV_WIN_SCALE} ignored: it has no effect on kernel >= 6.6, so it is not written"]
    return decisions, []


def _resolved_inputs(host: HostFacts, workload: Workload) -> dict[str, Any]:
    return {
        "connections": workload.connections,
        "profile": workload.profile,
        "active_fraction": float(workload.active_fraction),
        "rx_buffered_bytes": workload.rx_buffered_bytes,
        "tx_buffered_bytes": workload.tx_buffered_bytes,
        "message_bytes": workload.message_bytes,
        "rx_truesize_factor": float(workload.rx_truesize_factor),
        "tx_truesize_factor": float(workload.tx_truesize_factor),
        "bandwidth_bps": workload.bandwidth_bps,
        "rtt_ms": None if workload.rtt_ms is None else float(workload.rtt_ms),
        "bdp_bytes": _bdp_bytes(workload),
        "memory_fraction": float(workload.memory_fraction),
        "memory_budget_pages": _memory_budget_pages(host, workload),
        "allow_decrease": workload.allow_decrease,
        "best_effort": workload.best_effort,
        "allow_above_mem_total": workload.allow_above_mem_total,
        "overrides": {key: _sysctl_text(value) for key, value in workload.overrides.items()},
        "page_size_bytes": host.page_size_bytes,
        "cpu_count": host.cpu_count,
        "mem_total_bytes": host.mem_total_bytes,
        "kernel_version": list(host.kernel_version),
    }


def _unsettable_keys(scope: dict[str, Any]) -> dict[str, str]:
    """Recommended keys that cannot be set here (settable false, not merely unjudged), with the reason."""
    return {key: entry["reason"] for key, entry in sorted(scope.items()) if entry["settable"] is False}


def _report_rows(
    host: HostFacts, values: dict[str, tuple[int, ...]], decisions: dict[str, Decision], scope: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per recommended key, sorted by name: the live value (None when absent), the recommendation, why."""
    return [
        {
            "key": key,
            "live": None if host.sysctl[key].value is None else _sysctl_text(host.sysctl[key].value),
            "recommended": _sysctl_text(values[key]),
            "settable": scope[key]["settable"],
            "why": decisions[key].explain,
        }
        for key in sorted(values)
    ]


def recommend(host: HostFacts, workload: Workload, root: Optional[bool] = None) -> dict[str, Any]:
    """The recommendation of docs/data-model.md section 2, as plain data.

    root is the facts' root flag: False turns "read-only here" into "not judged" and says so once.
    """
    workload, factor_sources = _calibrated(host, workload)
    usage = steady_state_usage(workload.connections, workload, host)
    decisions, warnings = _without_obsolete(host, _decide_all(host, workload, usage, factor_sources))
    decisions[TCP_MEM] = _with_factor_sources(decisions[TCP_MEM], workload, factor_sources)
    values = {key: decision.value for key, decision in decisions.items()}
    tcp_mem = values[TCP_MEM]
    above_ram = _above_mem_total_warning(host, workload)
    if above_ram:
        warnings.insert(0, above_ram)
    for decision in decisions.values():
        warnings.extend(decision.warnings)
    scope = {key: _scope_of(host, key) for key in values}
    if root is False:
        scope = {key: _scope_without_root(host, key, entry) for key, entry in scope.items()}
        warnings.append(_not_root_warning([key for key in values if scope[key]["settable"] is None]))
    warnings.extend(
        f"{key} can't be set here ({scope[key]['reason']}); recommended value: {_sysctl_text(values[key])}"
        for key in values
        if scope[key]["settable"] is False
    )
    warnings.extend(_override_warnings(host, workload, usage, tcp_mem))
    warnings.extend(_buffer_cap_warnings(host, values))
    warnings.extend(_socket_max_warnings(host, workload, usage, values))
    warnings.extend(_udp_mem_warnings(host, workload, tcp_mem))
    warnings.extend(_lowered_maximum_warnings(host, values))
    warnings.extend(_host_warnings(host, workload, usage, tcp_mem))
    cgroup = _cgroup_check(host, workload)
    if cgroup is not None and cgroup["warning"]:
        warnings.append(cgroup["warning"])
    throttled = _cgroup_throttled_sentence(host)
    if throttled:
        warnings.append(throttled)
    return {
        "schema_version": RECOMMENDATION_SCHEMA_VERSION,
        "sysctl": {key: _sysctl_text(value) for key, value in values.items()},
        "explain": {key: decision.explain for key, decision in decisions.items()},
        "scope": scope,
        "unsettable": _unsettable_keys(scope),
        "rows": _report_rows(host, values, decisions, scope),
        "estimate": {
            **_build_estimate(host, workload, usage, tcp_mem),
            "send_queue_ceiling_bytes_per_flow": send_queue_ceiling_bytes(values[TCP_WMEM][2])
            if TCP_WMEM in values
            else None,
        },
        "warnings": warnings,
        "inputs": _resolved_inputs(host, workload),
        "cgroup": cgroup,
    }

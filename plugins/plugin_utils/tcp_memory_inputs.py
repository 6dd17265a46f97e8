# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validation of what the recommendation model is given: the facts and the operator's arguments.

Pure functions, no I/O, no Ansible imports: every rejection is a ModelInputError whose message
names the argument (or the facts key) and the value it got, so the filter can pass it on verbatim.
Values arriving from Ansible 2.19 templates may be lazy containers or tagged str/int subclasses,
so every check uses isinstance(), never type() identity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Optional

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.tcp_memory_keys import (
    ADV_WIN_SCALE_RANGE,
    BOOLEAN_KEYS,
    CPU_COUNT_MAX,
    INT_MAX,
    INT_MIN,
    KEY_NAMES,
    KEYS,
    LONG_MAX,
    MEM_TOTAL_MAX_BYTES,
    MEM_TOTAL_MIN_BYTES,
    PAGE_SIZE_MAX_BYTES,
    PAGE_SIZE_MIN_BYTES,
    PAGES_KEYS,
    TCP_ADV_WIN_SCALE,
    TRIPLE_KEYS,
)

FACTS_SCHEMA_VERSION = 1
# Everything else tcp_memory_facts measures by (fact bounds, key table, C types) is imported above from
# module_utils/tcp_memory_keys, the file the facts module checks the same bounds with.

# Workload presets per ACTIVE connection: active_fraction, rx/tx_buffered_bytes, and message_bytes, the
# typical bytes per write (every skb in a queue pays its head).
PROFILES: dict[str, dict[str, Any]] = {
    # C1M push/chat: one in twenty connections has a small request unread (one page) and a
    # push burst the size of the kernel's initial send buffer (tcp_wmem[1] = 16 KiB) queued, in 4 KiB messages.
    "many_idle": {
        "active_fraction": Fraction(1, 20),
        "rx_buffered_bytes": 4096,
        "tx_buffered_bytes": 16384,
        "message_bytes": 4096,
    },
    # Web/API keep-alive: one in ten connections moves a 16 KiB message each way at once.
    "balanced": {
        "active_fraction": Fraction(1, 10),
        "rx_buffered_bytes": 16384,
        "tx_buffered_bytes": 16384,
        "message_bytes": 16384,
    },
    # Transfers: every connection streams and keeps a 256 KiB window buffered each way (64 KiB GSO skbs).
    "bulk_throughput": {
        "active_fraction": Fraction(1),
        "rx_buffered_bytes": 262144,
        "tx_buffered_bytes": 262144,
        "message_bytes": 65536,
    },
}
PROFILE_NAMES = tuple(PROFILES)
DEFAULT_PROFILE = "balanced"

# Kernel accounting (skb truesize) exceeds payload. Receive: loopback measured 1.06x, real NIC
# skbs up to 2x (the kernel's per-socket scaling_ratio starts at 50%). Send: the kernel builds
# large page-frag skbs, so its overhead is smaller; 1.25x covers the skb heads of small writes.
RX_TRUESIZE_FACTOR = Fraction(2)
TX_TRUESIZE_FACTOR = Fraction(5, 4)
# A truesize factor: the kernel charges at least the payload and, per skb, at most a few times it.
FACTOR_RANGE = (Fraction(1), Fraction(8))

DEFAULT_MEMORY_FRACTION = Fraction(1, 4)  # bpftune caps tcp_mem at 1/4 of free buffer pages
RTT_MAX_MS = 60000

_INTEGER_TEXT = re.compile(r"^\s*\d+\s*$")
_DECIMAL_TEXT = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_OVERRIDE_TEXT = re.compile(r"^\s*\d+(\s+\d+)*\s*$")


class ModelInputError(ValueError):
    """An argument or a facts key the model cannot use; the message names it and its value."""


@dataclass(frozen=True)
class SysctlFact:
    present: bool
    writable: bool
    scope: str
    value: Optional[tuple[int, ...]]  # a 1-tuple for scalars, None when absent here


@dataclass(frozen=True)
class HostFacts:
    kernel_version: tuple[int, int, int]
    page_size_bytes: int
    cpu_count: int
    mem_total_bytes: int
    mem_available_bytes: Optional[int]
    boot_tcp_mem_pages: Optional[tuple[int, int, int]]
    boot_tcp_rmem_bytes: Optional[tuple[int, int, int]]
    boot_tcp_wmem_bytes: Optional[tuple[int, int, int]]
    sysctl: dict[str, SysctlFact]
    initial_netns: Optional[bool]
    sockstat_host_wide_fields: tuple[str, ...]
    used_pages: Optional[int]
    status_level: Optional[str]
    # From facts.cgroups (tcp_memory_facts cgroups=true): the cgroup owning the most TCP sockets, when a
    # finite limit applies to its sockets; None when not gathered or unlimited.
    cgroup_owner: Optional[CgroupOwner] = None
    # facts.tcp_max_orphans (net.ipv4.tcp_max_orphans), optional: facts gathered before issue 17 lack it
    tcp_max_orphans: Optional[int] = None
    # net.ipv4.tcp_congestion_control of the namespace, optional in the facts (issue 17 on)
    tcp_congestion_control: Optional[str] = None
    # facts.calibration (tcp_memory_facts calibrate=true): direction -> measured factor
    calibration: Optional[dict[str, MeasuredFactor]] = None


@dataclass(frozen=True)
class MeasuredFactor:
    """Kernel bytes charged per queued payload byte in one direction, over `sockets` sockets holding data."""

    factor: Optional[Fraction]
    sockets: int
    payload_bytes: int


@dataclass(frozen=True)
class Workload:
    connections: int
    profile: str
    active_fraction: Fraction  # exact, so "0.1 of 200000" is 20000 and not 20000.000000000004
    rx_buffered_bytes: int
    tx_buffered_bytes: int
    rx_truesize_factor: Fraction
    tx_truesize_factor: Fraction
    bandwidth_bps: Optional[int]
    rtt_ms: Optional[Fraction]
    memory_fraction: Fraction
    allow_decrease: bool
    best_effort: bool
    overrides: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # keep a live value or override whose tcp_mem[2] plus socket slab exceeds MemTotal (a warning, not an error)
    allow_above_mem_total: bool = False
    # typical bytes per write (issue 17 item 3): every skb in a queue pays its head
    message_bytes: int = 65536
    # whether the truesize factors were given (they then win over a measured calibration)
    rx_factor_given: bool = False
    tx_factor_given: bool = False


# ---------------------------------------------------------------- scalar arguments


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _parse_int(name: str, value: Any, minimum: int = 0, maximum: Optional[int] = None) -> int:
    """An integer given as int, integral float or digit string; bools are refused (YAML yes/no)."""
    integral = (
        (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer())
        or (isinstance(value, str) and _INTEGER_TEXT.match(value) is not None)
    )
    if not integral:
        raise ModelInputError(f"{name} must be an integer, got {_describe(value)}")
    number = int(value)
    if number < minimum:
        raise ModelInputError(f"{name} must be >= {minimum}, got {_describe(value)}")
    if maximum is not None and number > maximum:
        raise ModelInputError(f"{name} must be <= {maximum}, got {_describe(value)}")
    return number


def _parse_number(name: str, value: Any) -> Fraction:
    """A real number as an exact Fraction of its decimal text (0.1 stays exactly 1/10)."""
    if isinstance(value, Fraction):  # the model's own presets
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ModelInputError(f"{name} must be a number, got {_describe(value)}")
    if isinstance(value, str) and not _DECIMAL_TEXT.match(value):
        raise ModelInputError(f"{name} must be a number, got {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelInputError(f"{name} must be a finite number, got {_describe(value)}")
    return Fraction(str(value).strip()) if isinstance(value, (str, float)) else Fraction(int(value))


def _parse_fraction(name: str, value: Any) -> Fraction:
    """A share in (0, 1]."""
    number = _parse_number(name, value)
    if not 0 < number <= 1:
        raise ModelInputError(f"{name} must be in (0, 1], got {_describe(value)}")
    return number


def _parse_factor(name: str, value: Any) -> Fraction:
    """A truesize factor: the kernel charges at least the payload and, per skb, at most a few times it."""
    number = _parse_number(name, value)
    low, high = FACTOR_RANGE
    if not low <= number <= high:
        raise ModelInputError(f"{name} must be between {low} and {high}, got {_describe(value)}")
    return number


def _parse_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ModelInputError(f"{name} must be a boolean (true/false), got {_describe(value)}")
    return value


# ---------------------------------------------------------------- overrides


def _parse_override(key: str, value: Any) -> tuple[int, ...]:
    """One operator value: an int, or a string of whitespace-separated integers.

    Refused here, before anything is written, is whatever the sysctl_dropin module refuses: a memory
    triple needs every number >= 1 (the kernel's own floor for tcp_rmem/tcp_wmem, extra1 = SYSCTL_ONE in
    net/ipv4/sysctl_net_ipv4.c) in order. tcp_adv_win_scale is the one signed key, -31..31 as the kernel
    checks it (tcp_adv_win_scale_min/max in net/ipv4/sysctl_net_ipv4.c); every other key is 0..INT_MAX.
    """
    name = f"overrides[{key!r}]"
    if key not in KEY_NAMES:
        raise ModelInputError(f"overrides: unknown key {key!r}; known keys: {', '.join(KEY_NAMES)}")
    if isinstance(value, bool):
        raise ModelInputError(f"{name} must be an integer or a string of integers, got {_describe(value)}")
    signed = key == TCP_ADV_WIN_SCALE
    if isinstance(value, int):
        numbers: tuple[int, ...] = (int(value),)
        if value < 0 and not signed:
            raise ModelInputError(f"{name} must not be negative, got {_describe(value)}")
    elif isinstance(value, str) and (_OVERRIDE_TEXT.match(value) or (signed and re.fullmatch(r"\s*-\d+\s*", value))):
        numbers = tuple(int(part) for part in value.split())
    else:
        raise ModelInputError(
            f"{name} must be an integer or a string of {'' if signed else 'non-negative '}integers separated by "
            f"spaces, got {_describe(value)}"
        )
    expected_count = 3 if key in TRIPLE_KEYS else 1
    if len(numbers) != expected_count:
        raise ModelInputError(f"{name} needs exactly {expected_count} value(s), got {_describe(value)}")
    if signed and not ADV_WIN_SCALE_RANGE[0] <= numbers[0] <= ADV_WIN_SCALE_RANGE[1]:
        low, high = ADV_WIN_SCALE_RANGE
        raise ModelInputError(f"{name} must be between {low} and {high} (the kernel's range), got {_describe(value)}")
    if any(number > INT_MAX for number in numbers):
        raise ModelInputError(f"{name} values must be <= {INT_MAX}, got {_describe(value)}")
    if expected_count == 3 and min(numbers) < 1:
        raise ModelInputError(f"{name} needs every number >= 1, as sysctl_dropin does, got {_describe(value)}")
    if expected_count == 3 and not numbers[0] <= numbers[1] <= numbers[2]:
        order = "min <= pressure <= max" if key.endswith("_mem") else "min <= default <= max"
        raise ModelInputError(f"{name} must satisfy {order}, got {_describe(value)}")
    if key in BOOLEAN_KEYS and numbers[0] not in (0, 1):
        raise ModelInputError(f"{name} must be 0 or 1, got {_describe(value)}")
    return numbers


def _parse_overrides(value: Any) -> dict[str, tuple[int, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelInputError(f"overrides must be a dict of sysctl key -> value, got {_describe(value)}")
    return {str(key): _parse_override(str(key), item) for key, item in value.items()}


# ---------------------------------------------------------------- the filter's arguments


def _given_or(value: Any, default: Any) -> Any:
    """None stands for "not given", so a role can pass its unset variables straight through."""
    return default if value is None else value


def resolve_workload(
    connections: Any = None,
    profile: Any = DEFAULT_PROFILE,
    active_fraction: Any = None,
    rx_buffered_bytes: Any = None,
    tx_buffered_bytes: Any = None,
    bandwidth_bps: Any = None,
    rtt_ms: Any = None,
    memory_fraction: Any = None,
    allow_decrease: Any = False,
    best_effort: Any = False,
    overrides: Any = None,
    rx_truesize_factor: Any = None,
    tx_truesize_factor: Any = None,
    allow_above_mem_total: Any = False,
    message_bytes: Any = None,
) -> Workload:
    """Validate the filter's arguments; explicit values win over the profile's presets.

    None stands for "not given" everywhere, so a role can pass its unset variables straight through.
    """
    if connections is None:
        raise ModelInputError("connections is required: the concurrent TCP connections the host must hold")
    profile = _given_or(profile, DEFAULT_PROFILE)
    if not isinstance(profile, str) or profile not in PROFILE_NAMES:
        raise ModelInputError(f"profile must be one of {', '.join(PROFILE_NAMES)}, got {profile!r}")
    preset = PROFILES[profile]
    if (bandwidth_bps is None) != (rtt_ms is None):
        raise ModelInputError(
            f"bandwidth_bps and rtt_ms go together (the bandwidth-delay product needs both), "
            f"got bandwidth_bps={bandwidth_bps!r}, rtt_ms={rtt_ms!r}"
        )
    rtt = None if rtt_ms is None else _parse_number("rtt_ms", rtt_ms)
    if rtt is not None and not 0 < rtt <= RTT_MAX_MS:
        raise ModelInputError(f"rtt_ms must be > 0 and <= {RTT_MAX_MS}, got {rtt_ms!r}")
    return Workload(
        connections=_parse_int("connections", connections, minimum=1, maximum=INT_MAX),
        profile=profile,
        active_fraction=_parse_fraction("active_fraction", _given_or(active_fraction, preset["active_fraction"])),
        rx_buffered_bytes=_parse_int(
            "rx_buffered_bytes", _given_or(rx_buffered_bytes, preset["rx_buffered_bytes"]), maximum=INT_MAX
        ),
        tx_buffered_bytes=_parse_int(
            "tx_buffered_bytes", _given_or(tx_buffered_bytes, preset["tx_buffered_bytes"]), maximum=INT_MAX
        ),
        rx_truesize_factor=_parse_factor("rx_truesize_factor", _given_or(rx_truesize_factor, RX_TRUESIZE_FACTOR)),
        tx_truesize_factor=_parse_factor("tx_truesize_factor", _given_or(tx_truesize_factor, TX_TRUESIZE_FACTOR)),
        bandwidth_bps=None if bandwidth_bps is None else _parse_int("bandwidth_bps", bandwidth_bps, minimum=1),
        rtt_ms=rtt,
        memory_fraction=_parse_fraction("memory_fraction", _given_or(memory_fraction, DEFAULT_MEMORY_FRACTION)),
        allow_decrease=_parse_bool("allow_decrease", _given_or(allow_decrease, False)),
        best_effort=_parse_bool("best_effort", _given_or(best_effort, False)),
        overrides=_parse_overrides(overrides),
        rx_factor_given=rx_truesize_factor is not None,
        tx_factor_given=tx_truesize_factor is not None,
        message_bytes=_parse_int(
            "message_bytes", _given_or(message_bytes, preset["message_bytes"]), minimum=1, maximum=INT_MAX
        ),
        allow_above_mem_total=_parse_bool("allow_above_mem_total", _given_or(allow_above_mem_total, False)),
    )


# ---------------------------------------------------------------- facts


def _fetch(facts: Mapping, path: str) -> Any:
    """facts[a][b][c] for path 'a.b.c' (sysctl keys contain dots: use a tuple path for those)."""
    return _fetch_parts(facts, tuple(path.split(".")))


def _fetch_parts(facts: Mapping, parts: tuple[str, ...]) -> Any:
    node: Any = facts
    walked: list[str] = []
    for part in parts:
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            shown = ".".join(walked[:-1]) + (f"[{part!r}]" if "." in part else f".{part}" if walked[:-1] else part)
            raise ModelInputError(
                f"facts: missing key {shown}; pass ansible_facts.tcp_memory from tcp_memory_facts "
                f"(schema_version {FACTS_SCHEMA_VERSION})"
            )
        node = node[part]
    return node


def _fact_int(facts: Mapping, path: str, minimum: int, maximum: Optional[int] = None) -> int:
    return _parse_int(f"facts.{path}", _fetch(facts, path), minimum=minimum, maximum=maximum)


def _optional_int(name: str, value: Any, maximum: Optional[int] = None) -> Optional[int]:
    return None if value is None else _parse_int(name, value, maximum=maximum)


def _fact_triple(name: str, value: Any, maximum: int) -> Optional[tuple[int, int, int]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
        raise ModelInputError(f"{name} must be a list of 3 integers or null, got {_describe(value)}")
    first, second, third = (_parse_int(f"{name}[{index}]", item, maximum=maximum) for index, item in enumerate(value))
    return (first, second, third)


def _pages_max(page_size_bytes: int) -> int:
    """The most pages a long counts in bytes: tcp_mem beyond this overflows the kernel's arithmetic."""
    return LONG_MAX // page_size_bytes


def _fact_value(key: str, value: Any, page_size_bytes: int) -> Optional[tuple[int, ...]]:
    name = f"facts.sysctl[{key!r}].value"
    if value is None:
        return None
    if key in TRIPLE_KEYS:
        return _fact_triple(name, value, _pages_max(page_size_bytes) if key in PAGES_KEYS else INT_MAX)
    if key == TCP_ADV_WIN_SCALE:
        return (_parse_int(name, value, minimum=ADV_WIN_SCALE_RANGE[0], maximum=ADV_WIN_SCALE_RANGE[1]),)
    if key in BOOLEAN_KEYS:  # a C int; the kernel reads any non-zero as on
        return (_parse_int(name, value, minimum=INT_MIN, maximum=INT_MAX),)
    return (_parse_int(name, value, maximum=KEYS[key].maximum),)


def _page_size(facts: Mapping) -> int:
    size = _fact_int(facts, "page_size_bytes", minimum=PAGE_SIZE_MIN_BYTES, maximum=PAGE_SIZE_MAX_BYTES)
    if size & (size - 1):
        raise ModelInputError(f"facts.page_size_bytes must be a power of two, got {size}")
    return size


def _sysctl_fact(facts: Mapping, key: str, page_size_bytes: int) -> SysctlFact:
    entry = _fetch_parts(facts, ("sysctl", key))
    for part in ("present", "writable", "scope", "value"):
        _fetch_parts(facts, ("sysctl", key, part))
    present = entry["present"]
    writable = entry["writable"]
    if not isinstance(present, bool):
        raise ModelInputError(f"facts.sysctl[{key!r}].present must be a boolean, got {_describe(present)}")
    if writable is not None and not isinstance(writable, bool):
        raise ModelInputError(f"facts.sysctl[{key!r}].writable must be a boolean, got {_describe(writable)}")
    if entry["scope"] not in ("global", "netns"):
        raise ModelInputError(f"facts.sysctl[{key!r}].scope must be global or netns, got {_describe(entry['scope'])}")
    return SysctlFact(present, bool(writable), str(entry["scope"]), _fact_value(key, entry["value"], page_size_bytes))


def _kernel_version(facts: Mapping) -> tuple[int, int, int]:
    value = _fetch(facts, "kernel.version")
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) < 2:
        raise ModelInputError(f"facts.kernel.version must be a list like [6, 1, 0], got {_describe(value)}")
    numbers = [_parse_int(f"facts.kernel.version[{index}]", item) for index, item in enumerate(value[:3])]
    numbers += [0] * (3 - len(numbers))
    return (numbers[0], numbers[1], numbers[2])


def parse_facts(facts: Any) -> HostFacts:
    """Check ansible_facts.tcp_memory against docs/data-model.md section 1 and keep what the model reads."""
    if not isinstance(facts, Mapping):
        raise ModelInputError(
            f"facts (the filter input) must be ansible_facts.tcp_memory (a dict), got {_describe(facts)}"
        )
    version = _fetch(facts, "schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version != FACTS_SCHEMA_VERSION:
        raise ModelInputError(
            f"facts.schema_version {version!r} is not supported (this filter reads version "
            f"{FACTS_SCHEMA_VERSION}); gather the facts again with this collection's tcp_memory_facts"
        )
    sockstat_fields = _fetch(facts, "sockstat.host_wide_fields") or []
    if isinstance(sockstat_fields, (str, bytes)) or not isinstance(sockstat_fields, Sequence):
        raise ModelInputError(f"facts.sockstat.host_wide_fields must be a list, got {_describe(sockstat_fields)}")
    initial = _fetch(facts, "namespace.initial")
    level = _fetch(facts, "status.level")
    page_size_bytes = _page_size(facts)
    mem_total_bytes = _fact_int(
        facts, "memory.mem_total_bytes", minimum=MEM_TOTAL_MIN_BYTES, maximum=MEM_TOTAL_MAX_BYTES
    )
    return HostFacts(
        kernel_version=_kernel_version(facts),
        page_size_bytes=page_size_bytes,
        cpu_count=_fact_int(facts, "cpu_count", minimum=1, maximum=CPU_COUNT_MAX),
        mem_total_bytes=mem_total_bytes,
        mem_available_bytes=_optional_int(
            "facts.memory.mem_available_bytes", _fetch(facts, "memory.mem_available_bytes"), maximum=mem_total_bytes
        ),
        boot_tcp_mem_pages=_fact_triple(
            "facts.boot_defaults.tcp_mem_pages",
            _fetch(facts, "boot_defaults.tcp_mem_pages"),
            _pages_max(page_size_bytes),
        ),
        boot_tcp_rmem_bytes=_fact_triple(
            "facts.boot_defaults.tcp_rmem_bytes", _fetch(facts, "boot_defaults.tcp_rmem_bytes"), INT_MAX
        ),
        boot_tcp_wmem_bytes=_fact_triple(
            "facts.boot_defaults.tcp_wmem_bytes", _fetch(facts, "boot_defaults.tcp_wmem_bytes"), INT_MAX
        ),
        sysctl={key: _sysctl_fact(facts, key, page_size_bytes) for key in KEY_NAMES},
        initial_netns=initial if isinstance(initial, bool) else None,
        sockstat_host_wide_fields=tuple(str(item) for item in sockstat_fields),
        used_pages=_optional_int(
            "facts.status.used_pages", _fetch(facts, "status.used_pages"), maximum=_pages_max(page_size_bytes)
        ),
        status_level=None if level is None else str(level),
        cgroup_owner=_parse_cgroup_owner(facts.get("cgroups")),
        tcp_max_orphans=_optional_int("facts.tcp_max_orphans", facts.get("tcp_max_orphans"), maximum=INT_MAX),
        tcp_congestion_control=_congestion_control(facts.get("tcp_congestion_control")),
        calibration=_parse_calibration(facts.get("calibration")),
    )


def _parse_calibration(value: Any) -> Optional[dict[str, MeasuredFactor]]:
    """facts.calibration -> {'rx': MeasuredFactor, 'tx': MeasuredFactor}, None when not gathered."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ModelInputError(f"facts.calibration must be a dict or null, got {_describe(value)}")
    result = {}
    for direction in ("rx", "tx"):
        entry = value.get(direction)
        name = f"facts.calibration.{direction}"
        if not isinstance(entry, Mapping):
            raise ModelInputError(f"{name} must be a dict, got {_describe(entry)}")
        factor = entry.get("factor")
        result[direction] = MeasuredFactor(
            factor=None if factor is None else _parse_number(f"{name}.factor", factor),
            sockets=_parse_int(f"{name}.sockets", entry.get("sockets")),
            payload_bytes=_parse_int(f"{name}.payload_bytes", entry.get("payload_bytes")),
        )
    return result


def _congestion_control(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", value):
        raise ModelInputError(f"facts.tcp_congestion_control must be an algorithm name or null, got {_describe(value)}")
    return str(value)


# ---------------------------------------------------------------- memory cgroups (optional facts)


CGROUP_BYTES_MAX = LONG_MAX  # cgroup counters are 64-bit


@dataclass(frozen=True)
class CgroupOwner:
    """The memory cgroup owning the most TCP sockets and the tightest limit over its socket memory."""

    path: str
    version: int
    tcp_sockets: int
    tcp_sockets_attributed: int
    limit_cgroup: str
    limit_file: str
    limit_bytes: int
    other_bytes: int
    headroom_bytes: int  # limit - other; negative when the other memory alone passes the limit


def _cgroup_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ModelInputError(f"{name} must be a non-empty string, got {_describe(value)}")
    return str(value)


def _parse_cgroup_owner(cgroups: Any) -> Optional[CgroupOwner]:
    """facts.cgroups -> the first owner (most TCP sockets) when its socket_limit is finite, else None."""
    if cgroups is None:
        return None
    if not isinstance(cgroups, Mapping):
        raise ModelInputError(f"facts.cgroups must be a dict or null, got {_describe(cgroups)}")
    owners = cgroups.get("owners")
    if isinstance(owners, (str, bytes)) or not isinstance(owners, Sequence):
        raise ModelInputError(f"facts.cgroups.owners must be a list, got {_describe(owners)}")
    if not owners:
        return None
    first = owners[0]
    if not isinstance(first, Mapping):
        raise ModelInputError(f"facts.cgroups.owners[0] must be a dict, got {_describe(first)}")
    limit = first.get("socket_limit")
    if limit is None:
        return None
    if not isinstance(limit, Mapping):
        raise ModelInputError(f"facts.cgroups.owners[0].socket_limit must be a dict or null, got {_describe(limit)}")
    name = "facts.cgroups.owners[0]"
    version = _parse_int(f"{name}.version", first.get("version"), minimum=1, maximum=2)
    scan = cgroups.get("scan") if isinstance(cgroups.get("scan"), Mapping) else {}
    return CgroupOwner(
        path=_cgroup_str(f"{name}.path", first.get("path")),
        version=version,
        tcp_sockets=_parse_int(f"{name}.tcp_sockets", first.get("tcp_sockets")),
        tcp_sockets_attributed=_parse_int(
            "facts.cgroups.scan.tcp_sockets_attributed", scan.get("tcp_sockets_attributed", 0)
        ),
        limit_cgroup=_cgroup_str(f"{name}.socket_limit.cgroup", limit.get("cgroup")),
        limit_file=_cgroup_str(f"{name}.socket_limit.file", limit.get("file")),
        limit_bytes=_parse_int(f"{name}.socket_limit.limit_bytes", limit.get("limit_bytes"), maximum=CGROUP_BYTES_MAX),
        other_bytes=_parse_int(f"{name}.socket_limit.other_bytes", limit.get("other_bytes"), maximum=CGROUP_BYTES_MAX),
        headroom_bytes=_parse_int(
            f"{name}.socket_limit.headroom_bytes",
            limit.get("headroom_bytes"),
            minimum=-CGROUP_BYTES_MAX,
            maximum=CGROUP_BYTES_MAX,
        ),
    )

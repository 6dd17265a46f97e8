# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure parsers and arithmetic for the text the kernel exposes under /proc.

Every parser takes the file's text and the name to blame in errors, and either returns plain
data or raises ProcParseError naming the file and what was wrong with it. Nothing here opens
a file: facts.gather maps a root directory to these texts.
"""

from __future__ import annotations

import re

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.tcp_memory_keys import (
    ADV_WIN_SCALE_RANGE,
    CPU_COUNT_MAX,
    INT_MAX,
    KERNEL_INIT_NETNS_FIXED_INODE,
    KERNEL_TCP_RMEM_DEFAULT_131072,
    KERNEL_TCP_RMEM_MAX_32MIB,
    KEYS,
    LONG_MAX,
    MEM_TOTAL_MAX_BYTES,
    MEM_TOTAL_MIN_BYTES,
    PAGE_SIZE_MAX_BYTES,
    PAGE_SIZE_MIN_BYTES,
    TCP_MEM_INIT_DIVISOR,
    TCP_RMEM_DEFAULT_BEFORE_4_20_BYTES,
    TCP_RMEM_DEFAULT_BYTES,
    TCP_RMEM_MAX_BEFORE_6_16_BYTES,
    TCP_RMEM_MAX_BYTES,
    TCP_WMEM_DEFAULT_BYTES,
    TCP_WMEM_MAX_BYTES,
    TCP_WMEM_MAX_FLOOR_BYTES,
    at_least,
    per_netns,
)

# The inode of the initial network namespace on kernels that number it statically
# (PROC_NET_INIT_INO). Dynamically allocated namespace inodes start at 0xF0000000, so this
# value can only ever name the initial namespace.
INIT_NET_NS_INODE = 0xEFFFFFF9

ZONES_COUNTED = ("DMA", "DMA32", "Normal")  # nr_free_buffer_pages(): zones <= ZONE_NORMAL
# When the zones' managed pages fall this far below MemTotal the zoneinfo view is not the
# memory the kernel booted with (seen on VMs whose balloon/hotplug drivers shrink zones).
ZONEINFO_CONSISTENT_FRACTION = 0.9

# The TcpExt counters of memory pressure (include/uapi/linux/snmp.h LINUX_MIB_TCPMEMORYPRESSURES ..., shown in
# /proc/net/netstat by net/ipv4/proc.c snmp4_net_list): the one list the facts report.
TCPEXT_PRESSURE_COUNTERS = (
    "TCPMemoryPressures",
    "TCPMemoryPressuresChrono",
    "TCPAbortOnMemory",
    "PruneCalled",
    "RcvPruned",
    "OfoPruned",
    "TCPRcvCollapsed",
    "TCPRcvQDrop",
)

# Read beside the managed keys, never written (facts tcp_max_orphans): sockets closed with data still
# queued that the kernel keeps, their buffers in tcp_mem. net/ipv4/tcp.c tcp_init() sets it to half
# the established-hash size; it sits in ipv4_table (global: absent outside the initial netns).
TCP_MAX_ORPHANS_PATH = "sys/net/ipv4/tcp_max_orphans"

# net.ipv4.tcp_congestion_control: a name (TCP_CA_NAME_MAX = 16 bytes with its NUL), per netns from 4.15.
CONGESTION_CONTROL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


# --- units of sockstat `mem` --------------------------------------------------------------------
# proto_memory_allocated() counts SK_MEM_QUANTUM units. bd68a2a854ad ("net: set SK_MEM_QUANTUM to 4096",
# 5.5) fixed the quantum at 4096 bytes whatever the page size; e70f3c701276 and 100fdd1faf50 (6.0) went back
# to pages and removed SK_MEM_QUANTUM. tcp_mem and udp_mem stay in pages on every kernel (before 6.0
# sk_prot_mem_limits() converted them to quanta).
SK_MEM_QUANTUM_BYTES = 4096
KERNEL_SK_MEM_QUANTUM_4096 = (5, 5)
KERNEL_SK_MEM_QUANTUM_REMOVED = (6, 0)


def charge_unit_bytes(version, page_size: int) -> int:
    """Bytes per unit of sockstat `mem` (and per unit a socket is charged in) on a kernel of `version`."""
    if at_least(version, KERNEL_SK_MEM_QUANTUM_4096) and not at_least(version, KERNEL_SK_MEM_QUANTUM_REMOVED):
        return SK_MEM_QUANTUM_BYTES
    return page_size


def round_up_to_unit(amount_bytes: int, unit_bytes: int) -> int:
    """`amount_bytes` rounded up to whole charge units, as sk_mem_pages() counts them (0 stays 0)."""
    return -(-max(amount_bytes, 0) // unit_bytes) * unit_bytes


# --- socket memory sysctls ------------------------------------------------------------------------
# net.core.mem_pcpu_rsv (net/core/sysctl_net_core.c, global): pages each CPU may batch before
# sk_memory_allocated_add() folds them into tcp_memory_allocated; its minimum is SK_MEMORY_PCPU_RESERVE.
MEM_PCPU_RSV_PATH = "sys/net/core/mem_pcpu_rsv"
# net.core.bypass_prot_mem (netns_core_table, per namespace, a u8 0..1): sockets created with it set are charged
# to their memory cgroup only, never to tcp_mem / sockstat (sk_is_bypass_prot_mem()).
BYPASS_PROT_MEM_PATH = "sys/net/core/bypass_prot_mem"


def parse_mem_pcpu_rsv(text: str, name: str) -> int:
    """net.core.mem_pcpu_rsv in pages (a C int, proc_dointvec_minmax with a positive minimum)."""
    value = parse_sysctl_value(text, 1, name)
    if not 1 <= value <= INT_MAX:
        raise ProcParseError(name, f"net.core.mem_pcpu_rsv value {value} is outside 1..{INT_MAX} (pages)")
    return value


def parse_bypass_prot_mem(text: str, name: str) -> bool:
    """net.core.bypass_prot_mem: 0 or 1 (proc_dou8vec_minmax, 0..1)."""
    value = parse_sysctl_value(text, 1, name)
    if value not in (0, 1):
        raise ProcParseError(name, f"net.core.bypass_prot_mem value {value} is not 0 or 1")
    return value == 1


# --- tcp_sndbuf_expand(): the initial send buffer of an established socket --------------------------
# net/ipv4/tcp_input.c: sk_sndbuf = max(sk_sndbuf, min(factor * nr_segs * per_mss, tcp_wmem[2])) with
# per_mss = roundup_pow_of_two(max(mss_clamp, mss_cache) + MAX_TCP_HEADER + SKB_DATA_ALIGN(skb_shared_info))
#           + SKB_DATA_ALIGN(sizeof(struct sk_buff)),
# nr_segs = max(TCP_INIT_CWND, snd_cwnd, reordering + 1), factor = ca_ops->sndbuf_expand() (3 for bbr) or 2.
TCP_INIT_CWND = 10
SNDBUF_EXPAND_FACTOR = 2
SNDBUF_EXPAND_FACTORS = {"bbr": 3}  # congestion controls with their own sndbuf_expand (net/ipv4/tcp_bbr.c)


def sndbuf_segments(snd_cwnd: int, reordering: int) -> int:
    """nr_segs of tcp_sndbuf_expand(): max(TCP_INIT_CWND, snd_cwnd, reordering + 1)."""
    return max(TCP_INIT_CWND, snd_cwnd, reordering + 1)


def sndbuf_expand_factor(congestion_control) -> int:
    """tcp_sndbuf_expand()'s multiplier: the congestion control's sndbuf_expand() (bbr: 3), else 2."""
    return SNDBUF_EXPAND_FACTORS.get(congestion_control, SNDBUF_EXPAND_FACTOR)


def per_mss_from_sndbuf(sndbuf_bytes: int, factor: int, segments: int, tcp_wmem) -> tuple:
    """(per_mss bytes or None, why not) from the SO_SNDBUF an established socket started with.

    The buffer is tcp_wmem[1] until tcp_sndbuf_expand() raises it to min(factor * segments * per_mss,
    tcp_wmem[2]): per_mss is only known when the buffer is above tcp_wmem[1], below tcp_wmem[2] and a
    whole multiple of factor * segments.
    """
    _low, default, high = tcp_wmem
    if sndbuf_bytes >= high:
        return None, f"SO_SNDBUF {sndbuf_bytes} reached tcp_wmem[2] {high}: capped, per_mss not derivable"
    if sndbuf_bytes <= default:
        return None, f"SO_SNDBUF {sndbuf_bytes} is not above tcp_wmem[1] {default}: tcp_sndbuf_expand did not raise it"
    per_mss, rest = divmod(sndbuf_bytes, factor * segments)
    if rest:
        return None, f"SO_SNDBUF {sndbuf_bytes} is not a multiple of {factor} x {segments} segments"
    return per_mss, None


def parse_congestion_control(text: str, name: str) -> str:
    """The algorithm name in /proc/sys/net/ipv4/tcp_congestion_control ('cubic', 'bbr', ...)."""
    value = text.strip()
    if not CONGESTION_CONTROL_NAME.match(value):
        raise ProcParseError(name, f"not a congestion control name: {value[:40]!r}")
    return value


# The plausibility bounds of the facts (MEM_TOTAL_*, PAGE_SIZE_*, CPU_COUNT_MAX) and the C types of the
# sysctl values come from tcp_memory_keys: a value outside them is not a machine the model can size for,
# so the module refuses it naming the file and the filter refuses it naming the fact.


class ProcParseError(ValueError):
    """A kernel file whose content cannot be what the kernel writes there."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def _int(token: str, name: str, where: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise ProcParseError(name, f"{where}: {token!r} is not an integer") from None


def _nonempty_lines(text: str, name: str) -> list:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ProcParseError(name, "file is empty")
    return lines


# --- kernel --------------------------------------------------------------------------------


def kernel_version(release: str) -> list:
    """First three numbers of a kernel release string ('6.18.44-fc' -> [6, 18, 44])."""
    numbers = [int(n) for n in re.findall(r"\d+", release.split("-", 1)[0])[:3]]
    while len(numbers) < 3:
        numbers.append(0)
    return numbers


# --- memory --------------------------------------------------------------------------------


def parse_meminfo(text: str, name: str = "/proc/meminfo") -> dict:
    """Return {field: bytes} for every 'Field: N kB' line (N for unit-less lines)."""
    values = {}
    for number, line in enumerate(_nonempty_lines(text, name), 1):
        key, sep, rest = line.partition(":")
        tokens = rest.split()
        if not sep or not tokens or len(tokens) > 2 or (len(tokens) == 2 and tokens[1] != "kB"):
            raise ProcParseError(name, f"line {number} {line.strip()!r} is not 'Field: N kB'")
        value = _int(tokens[0], name, f"line {number}")
        values[key.strip()] = value * 1024 if len(tokens) == 2 else value
    if "MemTotal" not in values:
        raise ProcParseError(name, "no MemTotal line")
    return values


def parse_zoneinfo(text: str, name: str = "/proc/zoneinfo") -> list:
    """Return [{node, zone, managed_pages, high_pages}] from /proc/zoneinfo.

    Only the zone's own 'high' and 'managed' lines count; the per-CPU 'high:' lines under
    'pagesets' have a colon and are skipped. A value missing for a zone (old kernels lack
    'managed') is None.
    """
    zones = []
    current = None
    header = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)\s*$")
    for number, line in enumerate(_nonempty_lines(text, name), 1):
        match = header.match(line)
        if match:
            current = {"node": int(match.group(1)), "zone": match.group(2), "managed_pages": None, "high_pages": None}
            zones.append(current)
            continue
        tokens = line.split()
        if current is None:
            raise ProcParseError(name, f"line {number} {line.strip()!r} comes before any 'Node N, zone NAME' line")
        if len(tokens) == 2 and tokens[0] in ("managed", "high"):
            field = tokens[0] + "_pages"
            if current[field] is None:
                current[field] = _int(tokens[1], name, f"line {number}")
    if not zones:
        raise ProcParseError(name, "no 'Node N, zone NAME' line")
    return zones


def estimate_nr_free_buffer_pages(zones, mem_total_bytes: int, page_size: int) -> dict:
    """Estimate the kernel's nr_free_buffer_pages(): sum over zones <= Normal of managed - high.

    `zones` is parse_zoneinfo()'s list or None. Falls back to MemTotal minus the counted
    zones' high watermarks (or nothing) when zoneinfo is missing, lacks 'managed', or its
    managed pages are far below (or above) MemTotal: the kernel sized tcp_mem at boot, from the memory
    MemTotal still reports. Returns {pages, source, note}.
    """
    mem_total_pages = mem_total_bytes // page_size
    counted = [z for z in zones or [] if z["zone"] in ZONES_COUNTED]
    high_pages = sum(z["high_pages"] or 0 for z in counted)
    note = None
    if counted and all(z["managed_pages"] is not None for z in counted):
        managed_all = sum(z["managed_pages"] or 0 for z in zones)
        if managed_all > mem_total_pages / ZONEINFO_CONSISTENT_FRACTION:
            note = (
                f"zoneinfo managed pages ({managed_all}) are far above MemTotal ({mem_total_pages} pages): "
                "nr_free_buffer_pages estimated from meminfo"
            )
        elif managed_all >= ZONEINFO_CONSISTENT_FRACTION * mem_total_pages:
            pages = sum(max(z["managed_pages"] - (z["high_pages"] or 0), 0) for z in counted)
            return {"pages": pages, "source": "zoneinfo", "note": None}
        else:
            note = (
                f"zoneinfo managed pages ({managed_all}) are far below MemTotal ({mem_total_pages} pages): "
                "nr_free_buffer_pages estimated from meminfo"
            )
    elif zones is None:
        note = "zoneinfo not readable: nr_free_buffer_pages estimated from meminfo"
    else:
        note = "zoneinfo has no managed pages for DMA/DMA32/Normal: nr_free_buffer_pages estimated from meminfo"
    return {"pages": max(mem_total_pages - high_pages, 0), "source": "meminfo", "note": note}


def boot_defaults(nr_free_buffer_pages: int, page_size: int, version) -> dict:
    """What tcp_init() computes at boot for this many free buffer pages (net/ipv4/tcp.c)."""
    limit_pages = max(nr_free_buffer_pages // TCP_MEM_INIT_DIVISOR, 128)
    tcp_mem = [limit_pages // 4 * 3, limit_pages, limit_pages // 4 * 3 * 2]

    page_shift = page_size.bit_length() - 1
    limit_bytes = nr_free_buffer_pages << (page_shift - 7)
    rmem_cap = TCP_RMEM_MAX_BEFORE_6_16_BYTES
    if at_least(version, KERNEL_TCP_RMEM_MAX_32MIB):
        rmem_cap = TCP_RMEM_MAX_BYTES
    rmem_default = TCP_RMEM_DEFAULT_BEFORE_4_20_BYTES
    if at_least(version, KERNEL_TCP_RMEM_DEFAULT_131072):
        rmem_default = TCP_RMEM_DEFAULT_BYTES
    tcp_wmem = [
        page_size,
        TCP_WMEM_DEFAULT_BYTES,
        max(TCP_WMEM_MAX_FLOOR_BYTES, min(TCP_WMEM_MAX_BYTES, limit_bytes)),
    ]
    tcp_rmem = [page_size, rmem_default, max(rmem_default, min(rmem_cap, limit_bytes))]
    return {"tcp_mem_pages": tcp_mem, "tcp_rmem_bytes": tcp_rmem, "tcp_wmem_bytes": tcp_wmem}


def parse_cpu_list(text: str, name: str) -> int:
    """Count the CPUs in a list such as '0-3,8,10-11' (/sys/devices/system/cpu/online)."""
    count = 0
    body = text.strip()
    if not body:
        raise ProcParseError(name, "file is empty")
    for part in body.split(","):
        low, sep, high = part.partition("-")
        first = _int(low, name, f"range {part!r}")
        last = _int(high, name, f"range {part!r}") if sep else first
        if last < first:
            raise ProcParseError(name, f"range {part!r} runs backwards")
        if first < 0 or last >= CPU_COUNT_MAX:
            raise ProcParseError(name, f"range {part!r} names a CPU outside 0..{CPU_COUNT_MAX - 1}")
        count += last - first + 1
    return check_cpu_count(count, name)


# --- plausibility ---------------------------------------------------------------------------


def check_mem_total(mem_total_bytes: int, name: str) -> int:
    """MemTotal in bytes, refused outside MEM_TOTAL_MIN_BYTES..MEM_TOTAL_MAX_BYTES."""
    if not MEM_TOTAL_MIN_BYTES <= mem_total_bytes <= MEM_TOTAL_MAX_BYTES:
        raise ProcParseError(
            name,
            f"MemTotal {mem_total_bytes} bytes is outside {MEM_TOTAL_MIN_BYTES}..{MEM_TOTAL_MAX_BYTES} "
            "(4 MiB..4 PiB): not a real host's memory",
        )
    return mem_total_bytes


def check_mem_available(mem_available_bytes, mem_total_bytes: int, name: str):
    """MemAvailable (None when the kernel lacks it), refused when negative or above MemTotal."""
    if mem_available_bytes is not None and not 0 <= mem_available_bytes <= mem_total_bytes:
        raise ProcParseError(
            name, f"MemAvailable {mem_available_bytes} bytes is outside 0..MemTotal ({mem_total_bytes} bytes)"
        )
    return mem_available_bytes


def check_page_size(page_size_bytes: int, name: str) -> int:
    """A page size is a power of two between PAGE_SIZE_MIN_BYTES and PAGE_SIZE_MAX_BYTES."""
    power_of_two = page_size_bytes > 0 and page_size_bytes & (page_size_bytes - 1) == 0
    if not power_of_two or not PAGE_SIZE_MIN_BYTES <= page_size_bytes <= PAGE_SIZE_MAX_BYTES:
        raise ProcParseError(
            name,
            f"page size {page_size_bytes} bytes is not a power of two between {PAGE_SIZE_MIN_BYTES} "
            f"and {PAGE_SIZE_MAX_BYTES}",
        )
    return page_size_bytes


def check_cpu_count(count: int, name: str) -> int:
    if not 1 <= count <= CPU_COUNT_MAX:
        raise ProcParseError(name, f"{count} online CPUs is outside 1..{CPU_COUNT_MAX}")
    return count


def sysctl_bounds(key: str, page_size_bytes: int) -> tuple:
    """(lowest, highest) value each number of `key` can hold on a kernel (its C type and handler)."""
    unit = KEYS[key].unit
    if unit == "pages":
        return (0, LONG_MAX // page_size_bytes)
    if unit == "bytes":
        return (0, KEYS[key].maximum)
    if key == "net.ipv4.tcp_adv_win_scale":
        return ADV_WIN_SCALE_RANGE
    return (-INT_MAX - 1, INT_MAX)


def check_sysctl_value(key: str, value, page_size_bytes: int, name: str):
    """Refuse a value no kernel can hold for `key`; returns `value` (an int or a list)."""
    lowest, highest = sysctl_bounds(key, page_size_bytes)
    numbers = value if isinstance(value, list) else [value]
    for number in numbers:
        if not lowest <= number <= highest:
            unit = KEYS[key].unit
            raise ProcParseError(name, f"{key} value {number} is outside {lowest}..{highest} ({unit})")
    return value


def triple_order_note(key: str, value, name: str):
    """A note when a min/middle/max triple is out of order (the kernel accepts it; it is still wrong).

    tcp_mem and udp_mem must be min <= pressure <= max. For tcp_rmem/tcp_wmem only a max below
    min or default is flagged: kernels with 64 KiB pages boot with tcp_wmem[0] (a page) above
    tcp_wmem[1] (16 KiB).
    """
    if not isinstance(value, list) or len(value) != 3:
        return None
    low, middle, high = value
    if KEYS[key].unit == "pages":
        broken = not low <= middle <= high
        expected = "min <= pressure <= max"
    else:
        broken = high < low or high < middle
        expected = "max >= min and max >= default"
    if not broken:
        return None
    return f"{key} is {low} {middle} {high} ({name}): not {expected}; the kernel uses it as it is"


# --- sockets -------------------------------------------------------------------------------


def parse_sockstat(text: str, name: str = "/proc/net/sockstat") -> dict:
    """Return {'sockets': {'used': N}, 'TCP': {'inuse': N, ...}, ...} from sockstat/sockstat6."""
    result = {}
    for number, line in enumerate(_nonempty_lines(text, name), 1):
        proto, sep, rest = line.partition(":")
        tokens = rest.split()
        if not sep or not tokens or len(tokens) % 2:
            raise ProcParseError(name, f"line {number} {line.strip()!r} is not 'PROTO: name N name N ...'")
        fields = {}
        for key, value in zip(tokens[0::2], tokens[1::2]):
            fields[key] = _int(value, name, f"line {number} field {key}")
        result[proto.strip()] = fields
    return result


def parse_header_value_table(text: str, name: str) -> dict:
    """Parse /proc/net/snmp and /proc/net/netstat: pairs of 'Prefix: names' / 'Prefix: values'."""
    lines = _nonempty_lines(text, name)
    if len(lines) % 2:
        raise ProcParseError(name, f"odd number of lines ({len(lines)}): a header line has no value line")
    tables = {}
    for index in range(0, len(lines), 2):
        head_prefix, _colon, head_rest = lines[index].partition(":")
        value_prefix, _colon, value_rest = lines[index + 1].partition(":")
        keys, values = head_rest.split(), value_rest.split()
        if head_prefix != value_prefix or not keys:
            raise ProcParseError(
                name, f"lines {index + 1}-{index + 2} do not form a '{head_prefix}:' header/value pair"
            )
        if len(keys) != len(values):
            raise ProcParseError(name, f"{head_prefix}: {len(keys)} names but {len(values)} values (truncated?)")
        tables[head_prefix] = {key: _int(value, name, f"{head_prefix} field {key}") for key, value in zip(keys, values)}
    return tables


def parse_protocols_pressure(text: str, protocol: str = "TCP", name: str = "/proc/net/protocols"):
    """Return True/False from the 'press' column for `protocol`, None when NI or not listed."""
    lines = _nonempty_lines(text, name)
    header = lines[0].split()
    if "press" not in header or header[0] != "protocol":
        raise ProcParseError(name, "first line has no 'protocol ... press' header")
    column = header.index("press")
    for line in lines[1:]:
        tokens = line.split()
        if tokens and tokens[0] == protocol:
            if len(tokens) <= column:
                raise ProcParseError(name, f"{protocol} line is truncated: {line.strip()!r}")
            return {"yes": True, "no": False}.get(tokens[column])
    return None


# --- sysctl and mounts ---------------------------------------------------------------------


def sysctl_path(key: str) -> str:
    """'net.ipv4.tcp_mem' -> 'sys/net/ipv4/tcp_mem' (relative to the proc root)."""
    return "sys/" + key.replace(".", "/")


def parse_sysctl_value(raw: str, count: int, name: str):
    """An int for scalar keys, a list of `count` ints for vectors such as tcp_mem."""
    tokens = raw.split()
    if len(tokens) != count:
        raise ProcParseError(name, f"expected {count} integer(s), found {raw!r}")
    values = [_int(token, name, "value") for token in tokens]
    return values[0] if count == 1 else values


def sysctl_scope(key: str, version) -> str:
    """'netns' when `key` is per network namespace on a kernel of `version`, else 'global'."""
    return "netns" if per_netns(key, version) else "global"


def _unescape_mount_path(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_mountinfo(text: str, name: str = "/proc/self/mountinfo") -> list:
    """Return [(mount_point, read_only)] in mount order from /proc/PID/mountinfo."""
    mounts = []
    for number, line in enumerate(_nonempty_lines(text, name), 1):
        tokens = line.split()
        if " - " not in line or len(tokens) < 6:
            raise ProcParseError(name, f"line {number} {line.strip()!r} is not a mountinfo line")
        mount_options = tokens[5].split(",")
        super_options = line.split(" - ", 1)[1].split()
        super_options = super_options[2].split(",") if len(super_options) >= 3 else []
        mounts.append((_unescape_mount_path(tokens[4]), "ro" in mount_options or "ro" in super_options))
    return mounts


def mount_read_only(mounts, path: str):
    """True when the mount `path` lives on is read-only; None when no mount covers it."""
    best = None
    for mount_point, read_only in mounts:
        prefix = mount_point.rstrip("/") + "/"
        # Later entries sit on top of earlier ones at the same point; longer points win.
        covers = path == mount_point or path.startswith(prefix)
        if covers and (best is None or len(mount_point) >= len(best[0])):
            best = (mount_point, read_only)
    return None if best is None else best[1]


# --- namespace -----------------------------------------------------------------------------


def _ns_inode(link):
    match = re.match(r"^net:\[(\d+)\]$", link or "")
    return int(match.group(1)) if match else None


def decide_namespace(self_link, init_link, version, tcp_mem_present) -> dict:
    """Decide whether we run in the initial network namespace, and say how.

    1. /proc/self/ns/net and /proc/1/ns/net both readable: equal means initial. (PID 1 may be
       unreadable: another user namespace, or capabilities PID 1 has and we lack.)
    2. Our namespace inode: INIT_NET_NS_INODE is only ever the initial one; on kernels that
       always number the initial namespace so, any other inode is not it.
    3. /proc/sys/net/ipv4/tcp_mem exists only in the initial namespace (a global table).
    """
    self_inode, init_inode = _ns_inode(self_link), _ns_inode(init_link)
    if self_inode is not None and init_inode is not None:
        return {
            "initial": self_inode == init_inode,
            "method": f"compared /proc/self/ns/net ({self_link}) with /proc/1/ns/net ({init_link})",
        }
    unreadable = "/proc/1/ns/net not readable" if self_inode is not None else "/proc/self/ns/net not readable"
    if self_inode == INIT_NET_NS_INODE:
        return {
            "initial": True,
            "method": f"{unreadable}; /proc/self/ns/net is {self_link}, the fixed inode of the initial namespace",
        }
    if self_inode is not None and at_least(version, KERNEL_INIT_NETNS_FIXED_INODE):
        return {
            "initial": False,
            "method": f"{unreadable}; /proc/self/ns/net is {self_link}, not net:[{INIT_NET_NS_INODE}] "
            "which kernels >= {}.{} give the initial namespace".format(*KERNEL_INIT_NETNS_FIXED_INODE),
        }
    if tcp_mem_present is not None:
        return {
            "initial": bool(tcp_mem_present),
            "method": "{}; net.ipv4.tcp_mem is {} under /proc/sys (it exists only in the initial namespace)".format(
                unreadable, "present" if tcp_mem_present else "absent"
            ),
        }
    return {"initial": None, "method": f"{unreadable}; no other evidence"}


# --- derived status ------------------------------------------------------------------------


def memory_status(tcp_mem_pages, used_bytes, page_size: int, under_pressure_now) -> dict:
    """Level of TCP buffer memory against tcp_mem [min, pressure, max] (pages), and used fractions.

    `used_bytes` is sockstat's TCP mem in bytes (its units times their size): compared in bytes, so a
    kernel counting 4096-byte quanta on 64 KiB pages is read right. used_pages is it in whole pages.
    """
    used_pages = None if used_bytes is None else -(-used_bytes // page_size)
    status = {
        "level": "unknown",
        "used_pages": used_pages,
        "fraction_of_min": None,
        "fraction_of_pressure": None,
        "fraction_of_max": None,
    }
    if not tcp_mem_pages or used_bytes is None:
        return status
    low, pressure, high = (pages * page_size for pages in tcp_mem_pages)
    if used_bytes >= high:
        level = "at_max"
    elif used_bytes >= pressure or under_pressure_now:
        # The kernel stays in pressure until usage falls below tcp_mem[0].
        level = "pressure"
    elif used_bytes >= low:
        level = "above_min"
    else:
        level = "ok"
    status.update(
        level=level,
        fraction_of_min=round(used_bytes / low, 6) if low else None,
        fraction_of_pressure=round(used_bytes / pressure, 6) if pressure else None,
        fraction_of_max=round(used_bytes / high, 6) if high else None,
    )
    return status

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a host's TCP memory state from a /proc and a /sys root into ansible_facts.tcp_memory.

The only I/O of the facts module lives here: each file is read once and handed to the pure
parsers of facts.proc. Roots are parameters so unit tests read fixture trees. The
default call reads a fixed set of small files: its cost does not grow with connections.
"""

from __future__ import annotations

import os
import socket
import time

from ansible_collections.netstack.tcp_tuning.plugins.module_utils import tcp_memory_keys as keys
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import blocked_writers as writers
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import diag, proc
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import read as reader

SCHEMA_VERSION = 1
HOST_WIDE_SOCKSTAT_FIELDS = ["alloc", "orphan", "mem"]
LIVE = object()  # gather(probe=LIVE): measure on the live /proc only
# The steps whose wall time elapsed_ms reports, in the order gather() runs them (cgroups: the module's own step).
ELAPSED_STEPS = ("base", "connections", "blocked_writers", "socket_memory", "calibration", "cgroups")


def elapsed_ms_since(start_s: float) -> float:
    """Milliseconds of wall time since `start_s` (a time.monotonic() reading), to 0.1 ms."""
    return round((time.monotonic() - start_s) * 1000.0, 1)


def timed(elapsed: dict, step: str, gather_step, *args, **kwargs):
    """Run gather_step(*args, **kwargs), record its wall time in elapsed[step] (ms), return its result."""
    start_s = time.monotonic()
    try:
        return gather_step(*args, **kwargs)
    finally:
        elapsed[step] = elapsed_ms_since(start_s)


def read_text(root: str, relative: str, required: bool = False, max_bytes: int = reader.SMALL_FILE_MAX_BYTES):
    """Text of root/relative; None when an optional file is missing or unreadable.

    Only a regular file of at most `max_bytes` is read: anything else raises ProcParseError
    naming the path, required or not (a FIFO or device there is a fault, not an absence).
    """
    path = os.path.join(root, relative)
    try:
        data = reader.read_capped(path, max_bytes)
    except FileNotFoundError:
        if required:
            raise proc.ProcParseError(path, "file is missing") from None
        return None
    except OSError as exc:
        if required:
            raise proc.ProcParseError(path, f"cannot read: {exc.strerror}") from None
        return None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise proc.ProcParseError(path, f"not text: byte 0x{data[exc.start]:02x} at offset {exc.start}") from None


def _readlink(path: str):
    try:
        return os.readlink(path)
    except OSError:
        return None


def kernel_facts(proc_root: str) -> dict:
    release = read_text(proc_root, "sys/kernel/osrelease")
    release = release.strip() if release and release.strip() else os.uname().release
    return {"release": release, "version": proc.kernel_version(release)}


def cpu_count(sys_root: str) -> int:
    relative = "devices/system/cpu/online"
    text = read_text(sys_root, relative)
    if text is not None:
        return proc.parse_cpu_list(text, os.path.join(sys_root, relative))
    return proc.check_cpu_count(os.sysconf("SC_NPROCESSORS_ONLN"), "sysconf(SC_NPROCESSORS_ONLN)")


def page_size_bytes() -> int:
    return proc.check_page_size(os.sysconf("SC_PAGE_SIZE"), "sysconf(SC_PAGE_SIZE)")


def memory_facts(proc_root: str, page_size: int, version, notes: list):
    meminfo_path = os.path.join(proc_root, "meminfo")
    meminfo = proc.parse_meminfo(read_text(proc_root, "meminfo", required=True), meminfo_path)
    proc.check_mem_total(meminfo["MemTotal"], meminfo_path)
    proc.check_mem_available(meminfo.get("MemAvailable"), meminfo["MemTotal"], meminfo_path)
    zoneinfo_text = read_text(proc_root, "zoneinfo", max_bytes=reader.LARGE_FILE_MAX_BYTES)
    zones = None
    if zoneinfo_text is not None:
        zones = proc.parse_zoneinfo(zoneinfo_text, os.path.join(proc_root, "zoneinfo"))
    estimate = proc.estimate_nr_free_buffer_pages(zones, meminfo["MemTotal"], page_size)
    if estimate["note"]:
        notes.append(estimate["note"])
    memory = {
        "mem_total_bytes": meminfo["MemTotal"],
        "mem_available_bytes": meminfo.get("MemAvailable"),
        "nr_free_buffer_pages_estimate": estimate["pages"],
        "nr_free_buffer_pages_source": estimate["source"],
    }
    return memory, proc.boot_defaults(estimate["pages"], page_size, version)


def _writable(path: str, canonical: str, mounts) -> bool:
    """Writable by this process without writing: permission, mode bits and mount flags.

    Root passes os.access(W_OK) on any regular file, yet the kernel refuses writes to a
    sysctl whose mode has no write bit (net.core.* inside a netns are 0444), and a
    container's /proc/sys is often a read-only bind mount.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not mode & 0o222 or not os.access(path, os.W_OK):
        return False
    return not proc.mount_read_only(mounts, canonical)


def sysctl_facts(proc_root: str, version, page_size: int, notes: list) -> dict:
    mountinfo = read_text(proc_root, "self/mountinfo", max_bytes=reader.LARGE_FILE_MAX_BYTES)
    mounts = proc.parse_mountinfo(mountinfo, os.path.join(proc_root, "self/mountinfo")) if mountinfo else []
    facts = {}
    for managed in keys.MANAGED_KEYS:
        key, unit, count = managed.name, managed.unit, managed.arity
        relative = proc.sysctl_path(key)
        path = os.path.join(proc_root, relative)
        raw = read_text(proc_root, relative)
        entry = {
            "present": os.path.exists(path),
            "writable": False,
            "scope": proc.sysctl_scope(key, version),
            "unit": unit,
            "value": None,
            "raw": None,
        }
        if raw is not None:
            entry["raw"] = raw.strip()
            entry["value"] = proc.check_sysctl_value(key, proc.parse_sysctl_value(raw, count, path), page_size, path)
            order_note = proc.triple_order_note(key, entry["value"], path)
            if order_note:
                notes.append(order_note)
            # Mounts describe the live system: match them against the path under /proc.
            entry["writable"] = _writable(path, "/proc/" + relative, mounts)
        facts[key] = entry
    return facts


def namespace_facts(proc_root: str, version, tcp_mem_present) -> dict:
    return proc.decide_namespace(
        _readlink(os.path.join(proc_root, "self/ns/net")),
        _readlink(os.path.join(proc_root, "1/ns/net")),
        version,
        tcp_mem_present,
    )


def sockstat_facts(proc_root: str, unit_bytes: int, initial) -> dict:
    """sockstat and sockstat6; `mem` counts units of `unit_bytes` (proc.charge_unit_bytes())."""
    path = os.path.join(proc_root, "net/sockstat")
    sockstat = proc.parse_sockstat(read_text(proc_root, "net/sockstat", required=True), path)
    if "TCP" not in sockstat:
        raise proc.ProcParseError(path, "no 'TCP:' line")
    text6 = read_text(proc_root, "net/sockstat6")
    sockstat6 = proc.parse_sockstat(text6, os.path.join(proc_root, "net/sockstat6")) if text6 else {}

    def units_and_bytes(fields):
        units = fields.get("mem")
        return {
            "mem_units": units,
            "mem_unit_bytes": unit_bytes,
            "mem_bytes": units * unit_bytes if units is not None else None,
        }

    tcp, udp = sockstat["TCP"], sockstat.get("UDP")
    return {
        "sockets_used": sockstat.get("sockets", {}).get("used"),
        "tcp": dict({key: tcp.get(key) for key in ("inuse", "orphan", "tw", "alloc")}, **units_and_bytes(tcp)),
        "tcp6": {"inuse": sockstat6["TCP6"].get("inuse")} if "TCP6" in sockstat6 else None,
        "udp": dict({"inuse": udp.get("inuse")}, **units_and_bytes(udp)) if udp is not None else None,
        "udp6": {"inuse": sockstat6["UDP6"].get("inuse")} if "UDP6" in sockstat6 else None,
        "host_wide_fields": [] if initial is True else list(HOST_WIDE_SOCKSTAT_FIELDS),
    }


def snmp_facts(proc_root: str) -> dict:
    path = os.path.join(proc_root, "net/snmp")
    tcp = proc.parse_header_value_table(read_text(proc_root, "net/snmp", required=True), path).get("Tcp")
    if tcp is None:
        raise proc.ProcParseError(path, "no 'Tcp:' lines")
    return {
        "tcp_curr_estab": tcp.get("CurrEstab"),
        "tcp_active_opens": tcp.get("ActiveOpens"),
        "tcp_passive_opens": tcp.get("PassiveOpens"),
    }


def pressure_facts(proc_root: str) -> dict:
    text = read_text(proc_root, "net/netstat")
    tcpext = {}
    if text is not None:
        tcpext = proc.parse_header_value_table(text, os.path.join(proc_root, "net/netstat")).get("TcpExt", {})
    protocols = read_text(proc_root, "net/protocols")
    return {
        "counters": {name: tcpext.get(name) for name in proc.TCPEXT_PRESSURE_COUNTERS},
        "tcp_under_pressure_now": (
            proc.parse_protocols_pressure(protocols, "TCP", os.path.join(proc_root, "net/protocols"))
            if protocols is not None
            else None
        ),
    }


def status_facts(sysctl, sockstat, pressure, namespace, page_size: int, notes: list) -> dict:
    tcp = sockstat["tcp"]
    status = proc.memory_status(
        sysctl["net.ipv4.tcp_mem"]["value"], tcp["mem_bytes"], page_size, pressure["tcp_under_pressure_now"]
    )
    if sysctl["net.ipv4.tcp_mem"]["value"] is None:
        notes.append("net.ipv4.tcp_mem is not visible here (it is global, absent in a non-initial network namespace)")
    if namespace["initial"] is True:
        denominator = tcp["inuse"]
    else:
        # mem is host-wide here while inuse counts this namespace only: divide by alloc, host-wide too.
        denominator = tcp["alloc"]
        notes.append(
            "sockstat alloc, orphan and mem are host-wide inside a network namespace; "
            "buffer_bytes_per_connection divides mem by alloc"
        )
    status["buffer_bytes_per_connection"] = (
        round(tcp["mem_bytes"] / denominator, 1) if tcp["mem_bytes"] is not None and denominator else None
    )
    status["notes"] = notes
    return status


def curr_estab(proc_root: str) -> int:
    """Tcp CurrEstab of /proc/net/snmp: ESTABLISHED plus CLOSE_WAIT sockets of this namespace."""
    value = snmp_facts(proc_root)["tcp_curr_estab"]
    if value is None:
        raise ValueError("/proc/net/snmp has no Tcp CurrEstab")
    return value


def hashed_tcp_sockets(proc_root: str):
    """TCP inuse of sockstat plus TCP6 inuse of sockstat6: every hashed full socket (no TIME_WAIT)."""
    sockstat = sockstat_facts(proc_root, 1, None)
    inuse6 = (sockstat["tcp6"] or {}).get("inuse") or 0
    inuse = sockstat["tcp"]["inuse"]
    return None if inuse is None else inuse + inuse6


def fast_state_counts(proc_root: str, notes: list):
    """Counts by state from CurrEstab and a dump without ESTABLISHED sockets; None when unusable."""
    try:
        result = diag.count_states_fast(lambda: curr_estab(proc_root), lambda: hashed_tcp_sockets(proc_root))
    except diag.DiagUnavailable:
        return None  # the full dump below meets the same refusal and handles it
    except ValueError as exc:
        notes.append(f"state counts from counters not consistent ({exc}): counted from a full dump")
        return None
    result["connections"]["fallback_reason"] = None
    return result


def connection_facts(
    proc_root: str, top_sockets: int, source: str, notes: list, connection_bytes: bool = False
) -> dict:
    """Enumerate sockets: netlink when allowed and reading the live /proc, else /proc/net/tcp{,6}.

    States alone (no top_sockets, no connection_bytes) on the live /proc take the fast way:
    CurrEstab minus a dump of every state but ESTABLISHED.
    """
    live = os.path.realpath(proc_root) == "/proc"
    if live and source != "proc" and not top_sockets and not connection_bytes:
        result = fast_state_counts(proc_root, notes)
        if result is not None:
            return result
    if source == "netlink" or (source == "auto" and live):
        try:
            result = diag.dump_netlink(top_n=top_sockets)
            result["connections"]["fallback_reason"] = None
            return result
        except diag.DiagUnavailable as exc:
            if source == "netlink":
                raise
            reason = str(exc)
            notes.append(f"netlink inet_diag unavailable ({reason}): sockets read from /proc/net/tcp{{,6}}")
    else:
        reason = None if source == "proc" else "proc_root is not the live /proc"
    paths = [
        (socket.AF_INET, os.path.join(proc_root, "net/tcp")),
        (socket.AF_INET6, os.path.join(proc_root, "net/tcp6")),
    ]
    try:
        result = diag.dump_proc(paths, top_n=top_sockets)
    except FileNotFoundError:
        why = reason or "connections_source=proc"
        notes.append(f"no socket source: netlink not used ({why}) and no net/tcp or net/tcp6 under {proc_root}")
        return {"connections": None, "top_sockets": None}
    result["connections"]["fallback_reason"] = reason
    return result


def congestion_control(proc_root: str):
    """The default congestion control of this network namespace, None when not readable."""
    relative = "sys/net/ipv4/tcp_congestion_control"
    raw = read_text(proc_root, relative)
    return None if raw is None else proc.parse_congestion_control(raw, os.path.join(proc_root, relative))


def max_orphans(proc_root: str):
    """net.ipv4.tcp_max_orphans, None where not visible (outside the initial network namespace)."""
    raw = read_text(proc_root, proc.TCP_MAX_ORPHANS_PATH)
    if raw is None:
        return None
    path = os.path.join(proc_root, proc.TCP_MAX_ORPHANS_PATH)
    value = proc.parse_sysctl_value(raw, 1, path)
    if not 0 <= value <= keys.INT_MAX:  # a C int the kernel keeps non-negative (proc_dointvec)
        raise proc.ProcParseError(path, f"net.ipv4.tcp_max_orphans value {value} is outside 0..{keys.INT_MAX}")
    return value


def calibration_facts(max_sockets: int, unit_bytes: int, notes: list):
    """Measured kernel memory per queued payload byte (diag.sample_skmeminfo); None without netlink."""
    try:
        return diag.sample_skmeminfo(max_sockets, unit_bytes)
    except diag.DiagUnavailable as exc:
        notes.append(f"calibrate: {exc}; no calibration")
        return None


def optional_sysctl(proc_root: str, relative: str, parse):
    """parse(text, path) of an optional sysctl file, None when the kernel has no such file."""
    raw = read_text(proc_root, relative)
    return None if raw is None else parse(raw, os.path.join(proc_root, relative))


def socket_memory_facts(proc_root: str, tcp_wmem, congestion_control, probe, notes: list) -> dict:
    """The socket_memory facts: per-CPU reserve, prot-mem bypass and the measured per_mss.

    `probe()` returns diag.probe_initial_sndbuf()'s dict (or raises OSError); None runs no probe.
    """
    facts = {
        "mem_pcpu_rsv_pages": optional_sysctl(proc_root, proc.MEM_PCPU_RSV_PATH, proc.parse_mem_pcpu_rsv),
        "bypass_prot_mem": optional_sysctl(proc_root, proc.BYPASS_PROT_MEM_PATH, proc.parse_bypass_prot_mem),
        "per_mss_bytes": None,
        "initial_sndbuf_bytes": None,
        "probe_mss_bytes": None,
    }
    if probe is None:
        return facts
    try:
        measured = probe()
    except OSError as exc:
        notes.append(f"per_mss not measured: no loopback connection ({exc})")
        return facts
    facts["probe_mss_bytes"] = measured["mss_bytes"]
    facts["initial_sndbuf_bytes"] = measured["sndbuf_bytes"]
    if tcp_wmem is None:
        notes.append("per_mss not measured: net.ipv4.tcp_wmem is not readable")
        return facts
    factor = proc.sndbuf_expand_factor(measured.get("congestion_control") or congestion_control)
    segments = proc.sndbuf_segments(measured["snd_cwnd"], measured["reordering"])
    per_mss, why = proc.per_mss_from_sndbuf(measured["sndbuf_bytes"], factor, segments, tcp_wmem)
    if why:
        notes.append(f"per_mss not measured: {why}")
    facts["per_mss_bytes"] = per_mss
    return facts


def gather(
    proc_root: str = "/proc",
    sys_root: str = "/sys",
    states: bool = False,
    top_sockets: int = 0,
    connection_bytes: bool = False,
    connections_source: str = "auto",
    blocked_writers: bool = False,
    blocked_writers_samples: int = 5,
    blocked_writers_interval_ms: int = 100,
    calibrate: bool = False,
    calibrate_sample: int = 10000,
    probe=LIVE,
    page_size=None,
) -> dict:
    """Return the ansible_facts.tcp_memory dict (docs/data-model.md section 1).

    `proc_root` and `sys_root` name the trees read (tests pass fixture trees). `probe` measures the
    initial send buffer (diag.probe_initial_sndbuf): LIVE runs it on the live /proc only, None never,
    a callable instead of it. `page_size` (bytes) stands for sysconf(SC_PAGE_SIZE) when given.

    Raises ProcParseError for a file whose content is wrong, DiagUnavailable when
    connections_source='netlink' was forced and netlink cannot be used.
    """
    notes = []
    elapsed = dict.fromkeys(ELAPSED_STEPS)
    start_s = time.monotonic()
    kernel = kernel_facts(proc_root)
    page_size = page_size_bytes() if page_size is None else proc.check_page_size(page_size, "page_size")
    memory, defaults = memory_facts(proc_root, page_size, kernel["version"], notes)
    sysctl = sysctl_facts(proc_root, kernel["version"], page_size, notes)
    namespace = namespace_facts(proc_root, kernel["version"], sysctl["net.ipv4.tcp_mem"]["present"])
    unit_bytes = proc.charge_unit_bytes(kernel["version"], page_size)
    sockstat = sockstat_facts(proc_root, unit_bytes, namespace["initial"])
    pressure = pressure_facts(proc_root)
    if keys.at_least(kernel["version"], keys.KERNEL_ADV_WIN_SCALE_OBSOLETE):
        notes.append(
            "net.ipv4.tcp_adv_win_scale has no effect on kernels >= {}.{} (per-socket scaling_ratio)".format(
                *keys.KERNEL_ADV_WIN_SCALE_OBSOLETE
            )
        )
    facts = {
        "schema_version": SCHEMA_VERSION,
        "kernel": kernel,
        "page_size_bytes": page_size,
        "cpu_count": cpu_count(sys_root),
        "memory": memory,
        "boot_defaults": defaults,
        "namespace": namespace,
        "sysctl": sysctl,
        "sockstat": sockstat,
        "snmp": snmp_facts(proc_root),
        "pressure": pressure,
        "tcp_congestion_control": congestion_control(proc_root),
        "tcp_max_orphans": max_orphans(proc_root),
        "socket_memory": None,
        "connections": None,
        "top_sockets": None,
        "blocked_writers": None,
        "elapsed_ms": elapsed,
    }
    elapsed["base"] = elapsed_ms_since(start_s)
    if states or top_sockets or connection_bytes:
        facts.update(
            timed(
                elapsed,
                "connections",
                connection_facts,
                proc_root,
                top_sockets,
                connections_source,
                notes,
                connection_bytes,
            )
        )
    if blocked_writers:
        facts["blocked_writers"] = timed(
            elapsed,
            "blocked_writers",
            writers.sample_blocked_writers,
            proc_root,
            blocked_writers_samples,
            blocked_writers_interval_ms,
        )
    if probe is LIVE:
        probe = diag.probe_initial_sndbuf if os.path.realpath(proc_root) == "/proc" else None
    facts["socket_memory"] = timed(
        elapsed,
        "socket_memory",
        socket_memory_facts,
        proc_root,
        sysctl["net.ipv4.tcp_wmem"]["value"],
        facts["tcp_congestion_control"],
        probe,
        notes,
    )
    facts["calibration"] = (
        timed(elapsed, "calibration", calibration_facts, calibrate_sample, unit_bytes, notes) if calibrate else None
    )
    # Last: the notes list collects what every step above had to say.
    facts["status"] = status_facts(sysctl, sockstat, pressure, namespace, page_size, notes)
    return facts

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Find the memory cgroups that own a host's TCP sockets, and how much room their limits leave.

The kernel charges a socket's buffer memory to the memory cgroup of the task that created or
accepted it (mm/memcontrol.c: mem_cgroup_sk_alloc, mem_cgroup_charge_skmem). On cgroup v2 the
charge counts in memory.current and in memory.stat `sock`; once the cgroup nears memory.high or
memory.max, reclaim marks it (mm/vmpressure.c: vmpressure sets memcg->socket_pressure) and
include/linux/memcontrol.h mem_cgroup_under_socket_pressure() puts its sockets (and those of its
descendants) under memory pressure: the symptoms of a full tcp_mem while tcp_mem is far from full.
On cgroup v1 sockets are charged only to memory.kmem.tcp.*, and only limit there when someone set
memory.kmem.tcp.limit_in_bytes.

Parsers are pure functions of file text. The reader is bounded: it reads /proc/PID/status of at
most `max_processes` processes, then the fd links of the processes with the largest fd tables
first, at most `max_fds` links in all; socket inodes found there are matched against the inode
column of /proc/net/tcp and tcp6 (the reader's network namespace). Memory stays O(max_fds).
"""

from __future__ import annotations

import contextlib
import os
import stat

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import diag

# PAGE_COUNTER_MAX * PAGE_SIZE: what cgroup v1 prints for "no limit" (9223372036854771712 on
# x86_64 with 4 KiB pages); anything this large is no limit.
V1_UNLIMITED_BYTES = 1 << 62
MAX_OWNERS = 10  # cgroups reported, those owning the most TCP sockets
MAX_DEPTH = 32  # ancestors walked up from a cgroup, a bound against a corrupt path
MAX_FILE_BYTES = 1 << 16  # every cgroup and /proc file read here is far smaller
SOCKET_LINK_PREFIX = "socket:["
V2_EVENTS = ("low", "high", "max", "oom", "oom_kill")
NOTE_SOURCE = (
    "sockets are attributed to the cgroup of the process holding them (the kernel charges a socket "
    "to the memory cgroup of the task that created or accepted it)"
)


class CgroupParseError(ValueError):
    """A cgroup or /proc file whose content is not what the kernel writes; names the file."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


# ---------------------------------------------------------------- pure parsers


def parse_proc_pid_cgroup(text: str) -> dict:
    """/proc/PID/cgroup -> {'v2': path or None, 'v1_memory': path or None}.

    Lines are 'hierarchy-ID:controller-list:path'; cgroup v2 is the line '0::path', a v1 hierarchy
    with the memory controller lists 'memory' among its controllers.
    """
    result = {"v2": None, "v1_memory": None}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            result["v2"] = path
        elif "memory" in controllers.split(","):
            result["v1_memory"] = path
    return result


def _unescape_mount_field(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (fs/proc_namespace.c mangle()).
    out, index = [], 0
    while index < len(field):
        if field[index] == "\\" and index + 4 <= len(field) and field[index + 1 : index + 4].isdigit():
            out.append(chr(int(field[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def parse_cgroup_mounts(text: str) -> dict:
    """/proc/self/mountinfo -> {'v2': (root, mountpoint) or None, 'v1_memory': (root, mountpoint) or None}.

    Fields: ID parent major:minor root mountpoint options [optional...] - fstype source superoptions;
    `root` is the cgroup the mount shows at its mountpoint (a container's own cgroup, say).
    """
    result = {"v2": None, "v1_memory": None}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 3:
            continue
        fstype, super_options = fields[dash + 1], fields[dash + 3] if len(fields) > dash + 3 else ""
        place = (_unescape_mount_field(fields[3]), _unescape_mount_field(fields[4]))
        if fstype == "cgroup2" and result["v2"] is None:
            result["v2"] = place
        elif fstype == "cgroup" and "memory" in super_options.split(",") and result["v1_memory"] is None:
            result["v1_memory"] = place
    return result


def parse_limit_bytes(text: str, name: str):
    """A limit file: bytes, or None for no limit ('max' on v2, PAGE_COUNTER_MAX pages on v1)."""
    value = text.strip()
    if value == "max":
        return None
    if not value.isdigit():
        raise CgroupParseError(name, f"expected a number of bytes or 'max', got {value[:40]!r}")
    number = int(value)
    return None if number >= V1_UNLIMITED_BYTES else number


def parse_bytes(text: str, name: str) -> int:
    value = text.strip()
    if not value.isdigit():
        raise CgroupParseError(name, f"expected a number, got {value[:40]!r}")
    return int(value)


def parse_flat_keyed(text: str, name: str) -> dict:
    """memory.stat / memory.events: 'key value' per line -> {key: int}."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise CgroupParseError(name, f"line {number} is not 'key value': {line[:60]!r}")
        values[fields[0]] = int(fields[1])
    return values


def parse_status_fdsize(text: str):
    """FDSize (the size of the fd table, >= the highest fd) from /proc/PID/status, or None."""
    for line in text.splitlines():
        if line.startswith("FDSize:"):
            value = line.split(":", 1)[1].strip()
            return int(value) if value.isdigit() else None
    return None


def socket_inode(link: str):
    """The inode of an fd link 'socket:[12345]', None for any other link."""
    if link.startswith(SOCKET_LINK_PREFIX) and link.endswith("]"):
        number = link[len(SOCKET_LINK_PREFIX) : -1]
        if number.isdigit():
            return int(number)
    return None


def tcp_table_inodes(lines, name: str):
    """Yield the socket inode of every line of /proc/net/tcp or tcp6 (bytes lines, header first).

    Column 10 is the inode; TIME_WAIT and request sockets show 0 (no file) and are skipped.
    """
    for number, line in enumerate(lines, 1):
        if number == 1:
            continue
        fields = line.split(None, 10)
        if not fields:
            continue
        if len(fields) < 10 or not fields[9].isdigit():
            raise CgroupParseError(name, f"line {number} has no inode column: {line[:80]!r}")
        inode = int(fields[9])
        if inode:
            yield inode


def resolve_cgroup_path(cgroup_path: str):
    """`cgroup_path` with '.' and '..' folded, None when '..' climbs above '/'.

    /proc/PID/cgroup names a cgroup relative to the reader's cgroup namespace root; a process of another
    cgroup namespace shows up as '/../..' and the like: a cgroup outside what this reader can see.
    """
    parts = []
    for part in cgroup_path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def filesystem_dir(mount, cgroup_path: str, fs_root: str):
    """The directory of `cgroup_path` under the mount (root, mountpoint), or None when outside it.

    The path is resolved first ('..' folded, refused above '/'), then must lie under the mount's root; the
    directory found is resolved again (links followed) and must stay under the mountpoint.
    """
    if mount is None or cgroup_path is None:
        return None
    mount_root, mountpoint = mount
    resolved = resolve_cgroup_path(cgroup_path)
    prefix = mount_root.rstrip("/")
    if resolved is None or (resolved != (prefix or "/") and not resolved.startswith(prefix + "/")):
        return None  # e.g. '/../other' from another cgroup namespace
    relative = resolved[len(prefix) :].lstrip("/")
    top = os.path.join(fs_root, mountpoint.lstrip("/"))
    directory = os.path.join(top, relative)
    real_top, real_directory = os.path.realpath(top), os.path.realpath(directory)
    if real_directory != real_top and not real_directory.startswith(real_top.rstrip("/") + "/"):
        return None
    return directory


def socket_headroom(chain, own_sock_bytes: int):
    """Room left for the sockets of one cgroup under every limit on its way up, the tightest one.

    `chain` lists (cgroup path, current bytes or None, {limit file: bytes or None}, file bytes or None) from the
    cgroup itself up to the top of the hierarchy. Under a limit L of a cgroup whose usage is `current`, the
    sockets of our cgroup can grow to L - (current - own_sock_bytes - file): the limit minus the other memory
    charged there, page cache (memory.stat `file`) excepted, which reclaim frees before a charge fails.
    Returns None when no finite limit applies.
    """
    tightest = None
    for path, current_bytes, limits, file_bytes in chain:
        for limit_file, limit_bytes in limits.items():
            if limit_bytes is None or current_bytes is None:
                continue
            other_bytes = max(0, current_bytes - own_sock_bytes - (file_bytes or 0))
            headroom_bytes = limit_bytes - other_bytes
            if tightest is None or headroom_bytes < tightest["headroom_bytes"]:
                tightest = {
                    "cgroup": path,
                    "file": limit_file,
                    "limit_bytes": limit_bytes,
                    "file_bytes": file_bytes,
                    "other_bytes": other_bytes,
                    "headroom_bytes": headroom_bytes,
                }
    return tightest


def ancestors(cgroup_path: str, mount_root: str):
    """The cgroup path and its ancestors up to the mount's root (included), at most MAX_DEPTH."""
    paths = [cgroup_path]
    floor = mount_root.rstrip("/") or "/"
    path = cgroup_path
    while path not in ("/", floor) and len(paths) < MAX_DEPTH:
        path = path.rsplit("/", 1)[0] or "/"
        paths.append(path)
    return paths


# ---------------------------------------------------------------- bounded reading


def _read(path: str):
    """Text of a small regular file, or None when it is missing, unreadable (a process that exited)
    or not a regular file (a FIFO or device in its place would block or never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, MAX_FILE_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _readlink(path: str):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read_limit(directory: str, name: str):
    text = _read(os.path.join(directory, name))
    return None if text is None else parse_limit_bytes(text, os.path.join(directory, name))


def _read_bytes(directory: str, name: str):
    text = _read(os.path.join(directory, name))
    return None if text is None else parse_bytes(text, os.path.join(directory, name))


def _file_exists(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


def scan_processes(proc_root: str, max_processes: int, max_fds: int) -> dict:
    """Socket inodes held by processes: {'owners': {inode: pid}, and counters of what was read}.

    Processes are visited largest fd table first (FDSize), so a server holding most sockets is
    read before the fd budget runs out; processes of another network namespace are skipped (their
    sockets are not in this namespace's /proc/net/tcp).
    """
    try:
        pids = sorted((int(name) for name in os.listdir(proc_root) if name.isdigit()), reverse=True)
    except OSError:
        pids = []
    own_netns = _readlink(os.path.join(proc_root, "self/ns/net"))
    sized = []
    other_netns = 0
    for pid in pids[:max_processes]:
        if own_netns is not None:
            netns = _readlink(os.path.join(proc_root, str(pid), "ns/net"))
            if netns is not None and netns != own_netns:
                # Its sockets are not in this namespace's /proc/net/tcp: reading its fds is wasted.
                other_netns += 1
                continue
        status = _read(os.path.join(proc_root, str(pid), "status"))
        fdsize = parse_status_fdsize(status) if status is not None else None
        if fdsize:
            sized.append((fdsize, pid))
    sized.sort(key=lambda item: (-item[0], item[1]))
    owners = {}
    fds_read = 0
    processes_read = 0
    unreadable = 0
    truncated = len(pids) > max_processes
    for _fdsize, pid in sized:
        if fds_read >= max_fds:
            truncated = True
            break
        fd_dir = os.path.join(proc_root, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            unreadable += 1
            continue
        except OSError:
            continue  # exited meanwhile
        processes_read += 1
        for fd in fds:
            if fds_read >= max_fds:
                truncated = True
                break
            fds_read += 1
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            inode = socket_inode(link)
            if inode is not None:
                owners.setdefault(inode, pid)
    return {
        "owners": owners,
        "processes_listed": len(pids),
        "processes_other_netns": other_netns,
        "processes_read": processes_read,
        "processes_unreadable": unreadable,
        "fds_read": fds_read,
        "truncated": truncated,
    }


def count_tcp_sockets(proc_root: str, owners: dict) -> tuple:
    """({pid: TCP sockets it holds}, TCP sockets with a file in this network namespace).

    On the live /proc from one inet_diag dump (no line formatted per socket: at a million connections
    /proc/net/tcp is two million lines); from /proc/net/tcp{,6} where netlink cannot be used.
    """
    if os.path.realpath(proc_root) == "/proc":
        with contextlib.suppress(diag.DiagUnavailable):
            return diag.count_owned_sockets(owners)
    per_pid = {}
    seen = 0
    for relative in ("net/tcp", "net/tcp6"):
        path = os.path.join(proc_root, relative)
        try:
            with open(path, "rb") as handle:
                for inode in tcp_table_inodes(handle, path):
                    seen += 1
                    pid = owners.get(inode)
                    if pid is not None:
                        per_pid[pid] = per_pid.get(pid, 0) + 1
        except FileNotFoundError:
            continue
    return per_pid, seen


def v2_cgroup(directory: str, path: str) -> dict:
    stat = _read(os.path.join(directory, "memory.stat"))
    events = _read(os.path.join(directory, "memory.events"))
    stat_values = parse_flat_keyed(stat, os.path.join(directory, "memory.stat")) if stat is not None else {}
    event_values = parse_flat_keyed(events, os.path.join(directory, "memory.events")) if events is not None else {}
    return {
        "path": path,
        "memory_max_bytes": _read_limit(directory, "memory.max"),
        "memory_high_bytes": _read_limit(directory, "memory.high"),
        "memory_current_bytes": _read_bytes(directory, "memory.current"),
        "memory_stat_sock_bytes": stat_values.get("sock"),
        "file_bytes": stat_values.get("file"),
        "memory_events": {name: event_values.get(name) for name in V2_EVENTS} if events is not None else None,
        # Counted by newer kernels (socket pressure episodes, mem_cgroup_under_socket_pressure()): None elsewhere.
        "sock_throttled": event_values.get("sock_throttled"),
        "limit_files_present": _file_exists(directory, "memory.max"),
    }


def v1_cgroup(directory: str, path: str) -> dict:
    return {
        "path": path,
        "memory_limit_bytes": _read_limit(directory, "memory.limit_in_bytes"),
        "memory_usage_bytes": _read_bytes(directory, "memory.usage_in_bytes"),
        "kmem_tcp_limit_bytes": _read_limit(directory, "memory.kmem.tcp.limit_in_bytes"),
        "kmem_tcp_usage_bytes": _read_bytes(directory, "memory.kmem.tcp.usage_in_bytes"),
        "kmem_tcp_max_usage_bytes": _read_bytes(directory, "memory.kmem.tcp.max_usage_in_bytes"),
        "kmem_tcp_failcnt": _read_bytes(directory, "memory.kmem.tcp.failcnt"),
        "kmem_tcp_present": _file_exists(directory, "memory.kmem.tcp.limit_in_bytes"),
    }


def describe_owner(version: int, mount, cgroup_path: str, fs_root: str, sockets: int, processes: int) -> dict:
    """One owner cgroup: its files, and the tightest limit over it and its ancestors."""
    entry = {"path": cgroup_path, "version": version, "tcp_sockets": sockets, "processes": processes}
    directory = filesystem_dir(mount, cgroup_path, fs_root)
    if directory is None or not os.path.isdir(directory):
        entry.update(readable=False, socket_limit=None, socket_headroom_bytes=None)
        return entry
    entry["readable"] = True
    chain = []
    resolved = resolve_cgroup_path(cgroup_path)
    read_node = v2_cgroup if version == 2 else v1_cgroup
    own = read_node(directory, cgroup_path)
    for path in ancestors(resolved, mount[0]):
        if path == resolved:
            node = own
        else:
            ancestor_dir = filesystem_dir(mount, path, fs_root)
            if ancestor_dir is None:
                continue
            node = read_node(ancestor_dir, path)
        if version == 2:
            limits = {"memory.high": node["memory_high_bytes"], "memory.max": node["memory_max_bytes"]}
            chain.append((path, node["memory_current_bytes"], limits, node["file_bytes"]))
        else:
            limits = {"memory.kmem.tcp.limit_in_bytes": node["kmem_tcp_limit_bytes"]}
            chain.append((path, node["kmem_tcp_usage_bytes"], limits, None))
    if version == 2:
        own_sock = own["memory_stat_sock_bytes"] or 0
        own.pop("limit_files_present")
    else:
        own_sock = own["kmem_tcp_usage_bytes"] or 0
    del own["path"]
    entry.update(own)
    tightest = socket_headroom(chain, own_sock)
    entry["socket_limit"] = tightest
    entry["socket_headroom_bytes"] = tightest["headroom_bytes"] if tightest else None
    return entry


def gather_cgroups(proc_root: str = "/proc", fs_root: str = "/", max_processes: int = 4096, max_fds: int = 100000):
    """The `cgroups` facts: which memory cgroups own this namespace's TCP sockets, their limits and headroom."""
    notes = [NOTE_SOURCE]
    mountinfo = _read(os.path.join(proc_root, "self/mountinfo")) or ""
    mounts = parse_cgroup_mounts(mountinfo)
    if mounts["v1_memory"] is not None:
        version, mount, key = 1, mounts["v1_memory"], "v1_memory"
        notes.append(
            "the memory controller is on cgroup v1: sockets are charged only to memory.kmem.tcp.*, and are "
            "limited only where memory.kmem.tcp.limit_in_bytes is set; memory.limit_in_bytes does not "
            "count socket buffers"
        )
    elif mounts["v2"] is not None:
        version, mount, key = 2, mounts["v2"], "v2"
    else:
        version, mount, key = None, None, None
        notes.append("no cgroup v2 or v1 memory hierarchy is mounted here")
    scan = scan_processes(proc_root, max_processes, max_fds)
    per_pid, tcp_seen = count_tcp_sockets(proc_root, scan["owners"])
    per_cgroup = {}
    for pid, sockets in per_pid.items():
        text = _read(os.path.join(proc_root, str(pid), "cgroup"))
        path = parse_proc_pid_cgroup(text)[key] if text is not None and key else None
        if path is None:
            continue
        counts = per_cgroup.setdefault(path, [0, 0])
        counts[0] += sockets
        counts[1] += 1
    ranked = sorted(per_cgroup.items(), key=lambda item: (-item[1][0], item[0]))[:MAX_OWNERS]
    owners = [
        describe_owner(version, mount, path, fs_root, sockets, processes) for path, (sockets, processes) in ranked
    ]
    if scan["processes_unreadable"]:
        notes.append(
            f"{scan['processes_unreadable']} processes' fds were not readable (run as root to see every owner)"
        )
    if scan["truncated"]:
        notes.append(
            f"the scan stopped at its bounds (max_processes={max_processes}, max_fds={max_fds}): "
            "socket counts are lower bounds"
        )
    return {
        "memory_controller": f"v{version}" if version else None,
        "owners": owners,
        "scan": {
            "processes_listed": scan["processes_listed"],
            "processes_other_netns": scan["processes_other_netns"],
            "processes_read": scan["processes_read"],
            "processes_unreadable": scan["processes_unreadable"],
            "fds_read": scan["fds_read"],
            "tcp_sockets_seen": tcp_seen,
            "tcp_sockets_attributed": sum(per_pid.values()),
            "max_processes": max_processes,
            "max_fds": max_fds,
            "truncated": scan["truncated"],
        },
        "notes": notes,
    }

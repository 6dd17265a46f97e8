# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounded reads of kernel files: regular files only, never more than a cap per kind of file.

Every /proc and /sys file the facts module reads is a regular file (procfs and sysfs report
S_IFREG, size 0) and small. Under a proc_root that is not the live /proc, or on a host where
something odd sits in its place, a FIFO would block open() and read() forever and a link to
/dev/zero would fill the target's memory: both are refused here, naming the path.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import ProcParseError

# Caps per kind of file (bytes). The small files hold a fixed set of lines (meminfo ~1.5 KiB,
# netstat ~3 KiB, a sysctl value a few bytes); 1 MiB is hundreds of times what a kernel writes.
SMALL_FILE_MAX_BYTES = 1 << 20
# zoneinfo grows with CPUs (a per-CPU pageset block of ~120 bytes per zone) and mountinfo with
# mounts (~150 bytes each): 16 MiB holds 4096 CPUs x 32 zones, or 100,000 mounts.
LARGE_FILE_MAX_BYTES = 16 << 20
# A kernel stack, wchan or comm of one thread (CONFIG_STACKTRACE prints at most 64 frames).
TASK_FILE_MAX_BYTES = 64 << 10
# /proc/net/tcp{,6} is streamed line by line and grows with sockets: 150 (tcp) or 178 (tcp6)
# bytes a line, so 4 GiB is ~24 million sockets; a line is never longer than 4 KiB.
SOCKET_TABLE_MAX_BYTES = 4 << 30
SOCKET_TABLE_LINE_MAX_BYTES = 4096

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """'a FIFO', 'a character device', ... for a st_mode that is not a regular file."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return f"not a regular file (mode 0o{stat.S_IFMT(mode):o})"


def _refuse_unless_regular(path: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise ProcParseError(path, f"is {file_kind(mode)}, not a regular file: refused")


def open_regular(path: str):
    """Open `path` for binary reading only if it is a regular file (symlinks followed).

    Checked before opening (opening a device can have side effects) and again on the open
    descriptor (the path may have changed in between). O_NONBLOCK keeps open() of a FIFO from
    waiting for a writer. Raises OSError like open() for a missing or unreadable file.
    """
    _refuse_unless_regular(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _refuse_unless_regular(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: str, max_bytes: int) -> bytes:
    """The whole content of regular file `path`; ProcParseError when it holds more than max_bytes."""
    with open_regular(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ProcParseError(path, f"larger than {max_bytes} bytes, the cap for this kind of file: refused")
    return data


def capped_lines(
    handle, path: str, max_bytes: int = SOCKET_TABLE_MAX_BYTES, line_max_bytes: int = SOCKET_TABLE_LINE_MAX_BYTES
):
    """Yield the lines of an open binary file, refusing an over-long line or file."""
    total = 0
    for number, line in enumerate(iter(lambda: handle.readline(line_max_bytes + 1), b""), 1):
        if len(line) > line_max_bytes:
            raise ProcParseError(path, f"line {number} is longer than {line_max_bytes} bytes: refused")
        total += len(line)
        if total > max_bytes:
            raise ProcParseError(path, f"larger than {max_bytes} bytes, the cap for this kind of file: refused")
        yield line

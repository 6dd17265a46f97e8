# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""One sysctl_dropin run at a time per host: an exclusive flock(2) on a lock file only root can create.

Two runs at once (two inventory names for one host, or two playbooks) would otherwise interleave
their plan, file write, live writes and read-back, and leave the file saying one value and the
kernel holding another. The lock is held from reading the current state to the read-back. The
holder writes its pid into the file so that a run that gives up can say who holds it. The kernel
drops a flock when its holder exits, so a killed run never leaves the lock held.

The lock file lives in a directory of its own under /run (mode 0700, owned by the user running the
module, root), not in the world-writable /run/lock: there any user could create the file first and
hold it (every run would wait, then fail quoting the user's text) or plant a link that makes root
truncate another file. The directory and the file are checked before use - a directory that is a
link, is owned by another user or is writable by others, a lock file that is a link, not a regular
file, owned by another user or hard-linked elsewhere, is refused with the path and the reason - and
the file is opened without following links and without truncating.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from typing import Callable

LOCK_DIRECTORY = "/run/netstack-tcp-tuning"
LOCK_NAME = "sysctl_dropin.lock"
LOCK_POLL_SECONDS = 0.05
HOLDER_READ_LIMIT_BYTES = 4096


class LockTimeout(Exception):
    """Another run held the lock for longer than the timeout."""

    def __init__(self, lock_file: str, timeout_s: float, holder: str) -> None:
        who = holder or "a process that did not record itself"
        super().__init__(f"lock {lock_file} is still held after {timeout_s:g} s by {who}")
        self.lock_file, self.timeout_s, self.holder = lock_file, timeout_s, holder


class Untrusted(Exception):
    """A directory or file (the lock's, the backups') this module may not trust; the message names the path and
    why."""


def lock_path(lock_directory: str) -> str:
    return os.path.join(lock_directory, LOCK_NAME)


def trust_problem(path: str, info: os.stat_result, kind: str, owner_uid: int) -> str:
    """Why a lock directory or file (its lstat/fstat) must not be used, or ''."""
    if stat.S_ISLNK(info.st_mode):
        return f"{kind} {path} is a symbolic link: refused (a link there could point root at another file); remove it"
    is_directory = kind.endswith("directory")
    wanted = stat.S_ISDIR if is_directory else stat.S_ISREG
    if not wanted(info.st_mode):
        what = "a directory" if is_directory else "a regular file"
        return f"{kind} {path} is not {what}: refused; remove it"
    if info.st_uid != owner_uid:
        return (
            f"{kind} {path} is owned by uid {info.st_uid}, not uid {owner_uid} (the user running this module): "
            "refused, another user may have planted it; remove it"
        )
    if is_directory and stat.S_IMODE(info.st_mode) & 0o022:
        return f"{kind} {path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): refused"
    if kind == "lock file" and info.st_nlink != 1:
        return f"{kind} {path} has {info.st_nlink} hard links: refused (it may be another file); remove it"
    return ""


def private_directory(directory: str, owner_uid: int, kind: str = "lock directory") -> None:
    """Create `directory` (0700) when missing, then check it is one only its owner can write."""
    os.makedirs(os.path.dirname(directory), mode=0o755, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    problem = trust_problem(directory, os.lstat(directory), kind, owner_uid)
    if problem:
        raise Untrusted(problem)


def open_lock_file(lock_file: str, owner_uid: int) -> int:
    """The lock file's descriptor: created 0600 when missing, never through a link, never truncated on open."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(lock_file, flags, 0o600)
    except OSError:
        # A link (ELOOP) or a directory (EISDIR) there: say which, not just the errno.
        try:
            problem = trust_problem(lock_file, os.lstat(lock_file), "lock file", owner_uid)
        except OSError:
            problem = ""
        if problem:
            raise Untrusted(problem) from None
        raise
    problem = trust_problem(lock_file, os.fstat(fd), "lock file", owner_uid)
    if problem:
        os.close(fd)
        raise Untrusted(problem)
    return fd


def acquire(
    lock_directory: str,
    timeout_s: float,
    holder: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    owner_uid: int = -1,
) -> int:
    """Take an exclusive flock on LOCK_NAME in `lock_directory`, waiting at most `timeout_s`.

    Returns the descriptor that holds the lock; raises LockTimeout naming the recorded holder, Untrusted
    when the directory or file is not trustworthy, or OSError when it cannot be created or opened.
    """
    owner_uid = os.geteuid() if owner_uid < 0 else owner_uid
    private_directory(lock_directory, owner_uid)
    lock_file = lock_path(lock_directory)
    fd = open_lock_file(lock_file, owner_uid)
    deadline = clock() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if clock() >= deadline:
                recorded = os.pread(fd, HOLDER_READ_LIMIT_BYTES, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                raise LockTimeout(lock_file, timeout_s, recorded) from None
            sleep(LOCK_POLL_SECONDS)
    # Our own checked file, held: only now is its old holder text replaced.
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode("utf-8") + b"\n", 0)
    return fd


def release(fd: int) -> None:
    """Forget the holder and drop the lock (closing the descriptor drops the flock)."""
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def holder_text(path: str, pid: int, now: float) -> str:
    """What a waiting run reports about the holder."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return f"pid {pid} (sysctl_dropin writing {path}, since {since})"

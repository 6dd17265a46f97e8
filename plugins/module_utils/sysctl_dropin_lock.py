# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""One sysctl_dropin run at a time per host: an exclusive flock(2) on a lock file.

Two runs at once (two inventory names for one host, or two playbooks) would otherwise interleave
their plan, file write, live writes and read-back, and leave the file saying one value and the
kernel holding another. The lock is held from reading the current state to the read-back. The
holder writes its pid into the file so that a run that gives up can say who holds it. The kernel
drops a flock when its holder exits, so a killed run never leaves the lock held.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Callable

DEFAULT_LOCK_FILE = "/run/lock/netstack-tcp-memory.lock"
LOCK_POLL_SECONDS = 0.05
HOLDER_READ_LIMIT_BYTES = 4096


class LockTimeout(Exception):
    """Another run held the lock for longer than the timeout."""

    def __init__(self, lock_file: str, timeout_s: float, holder: str) -> None:
        who = holder or "a process that did not record itself"
        super().__init__(f"lock {lock_file} is still held after {timeout_s:g} s by {who}")
        self.lock_file, self.timeout_s, self.holder = lock_file, timeout_s, holder


def acquire(
    lock_file: str,
    timeout_s: float,
    holder: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Open (create) `lock_file` and take an exclusive flock, waiting at most `timeout_s`.

    Returns the descriptor that holds the lock; raises LockTimeout naming the recorded holder, or
    OSError when the file cannot be opened.
    """
    os.makedirs(os.path.dirname(lock_file) or ".", mode=0o755, exist_ok=True)
    # O_NOFOLLOW: a link planted at the lock path must not make a root process create another file.
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
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

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Find threads blocked in sk_stream_wait_memory right now, without systemtap.

As root, /proc/PID/task/TID/stack shows the kernel stack of a sleeping thread; a writer
waiting for TCP send memory has sk_stream_wait_memory on it (its wchan only says
wait_woken). Sampling a few times over a short window separates threads that stay blocked
from ones passing through.
"""

from __future__ import annotations

import os
import time

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import read as reader

BLOCKING_FRAME = "sk_stream_wait_memory"
# wchan values a thread waiting in sk_stream_wait_memory can show: reading wchan is cheaper
# than unwinding the stack, so threads sleeping anywhere else are skipped.
CANDIDATE_WCHANS = frozenset(("wait_woken", "sk_stream_wait_memory", "sk_wait_event", "schedule_timeout"))
NOTE = (
    "a full per-socket send buffer also waits in sk_stream_wait_memory; "
    "read this together with status.level and the pressure counters"
)


def _read(path: str):
    """Text of a task file; None when it vanished or is unreadable (threads come and go).

    A FIFO, device or oversized file in its place raises ProcParseError naming it.
    """
    try:
        return reader.read_capped(path, reader.TASK_FILE_MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def _tasks(proc_root: str):
    try:
        pids = [name for name in os.listdir(proc_root) if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        task_dir = os.path.join(proc_root, pid, "task")
        try:
            tids = os.listdir(task_dir)
        except OSError:
            continue  # the process exited meanwhile
        for tid in tids:
            yield int(pid), int(tid), os.path.join(task_dir, tid)


def sample_once(proc_root: str, self_pid: int):
    """Return ({(pid, tid): comm} of threads blocked now, number of stacks read)."""
    blocked = {}
    stacks_read = 0
    for pid, tid, task in _tasks(proc_root):
        if pid == self_pid:
            continue
        wchan = _read(os.path.join(task, "wchan"))
        if wchan and wchan.strip() not in ("", "0") and wchan.strip() not in CANDIDATE_WCHANS:
            continue
        stack = _read(os.path.join(task, "stack"))
        if stack is None:
            continue
        stacks_read += 1
        if BLOCKING_FRAME in stack:
            comm = _read(os.path.join(task, "comm"))
            blocked[(pid, tid)] = comm.strip() if comm is not None else None
    return blocked, stacks_read


def stacks_readable(proc_root: str, self_pid: int) -> bool:
    """Whether this process may read kernel stacks (root with CONFIG_STACKTRACE)."""
    return _read(os.path.join(proc_root, str(self_pid), "task", str(self_pid), "stack")) is not None


def sample_blocked_writers(proc_root: str, samples: int, interval_ms: int) -> dict:
    """Sample `samples` times, `interval_ms` apart; report threads seen in sk_stream_wait_memory."""
    self_pid = os.getpid()
    result = {"samples": samples, "window_ms": 0, "threads": None, "note": NOTE}
    if not stacks_readable(proc_root, self_pid):
        result["note"] = "kernel stacks are not readable here (needs root and CONFIG_STACKTRACE); " + NOTE
        return result
    seen = {}
    start = time.monotonic()
    for index in range(samples):
        if index:
            time.sleep(interval_ms / 1000.0)
        blocked, _stacks_read = sample_once(proc_root, self_pid)
        for key, comm in blocked.items():
            entry = seen.setdefault(key, {"pid": key[0], "tid": key[1], "comm": comm, "seen_in_samples": 0})
            entry["seen_in_samples"] += 1
    result["window_ms"] = round((time.monotonic() - start) * 1000)
    result["threads"] = sorted(seen.values(), key=lambda t: (-t["seen_in_samples"], t["pid"], t["tid"]))
    return result

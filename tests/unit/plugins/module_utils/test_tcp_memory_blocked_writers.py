# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sampling kernel stacks for writers blocked in sk_stream_wait_memory, on a fake /proc."""

from __future__ import annotations

import os

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import blocked_writers as writers

BLOCKED_STACK = """[<0>] sk_stream_wait_memory+0x1b5/0x370
[<0>] tcp_sendmsg_locked+0x6f3/0x1080
[<0>] tcp_sendmsg+0x2c/0x50
[<0>] __sys_sendto+0x1e2/0x200
"""
IDLE_STACK = "[<0>] ep_poll+0x2ae/0x2f0\n[<0>] do_epoll_wait+0xe0/0x100\n"


def task(root, pid, tid, comm, wchan, stack):
    directory = os.path.join(root, str(pid), "task", str(tid))
    os.makedirs(directory, exist_ok=True)
    for name, text in (("comm", comm + "\n"), ("wchan", wchan), ("stack", stack)):
        if text is not None:
            with open(os.path.join(directory, name), "w") as handle:
                handle.write(text)


def fake_proc(tmp_path, self_stack=True):
    root = str(tmp_path)
    me = os.getpid()
    task(root, me, me, "pytest", "do_sys_poll", "[<0>] proc_pid_stack+0xb1/0x150\n" if self_stack else None)
    task(root, 1234, 1234, "load", "wait_woken", BLOCKED_STACK)
    task(root, 1234, 1240, "load-io", "wait_woken", BLOCKED_STACK)
    task(root, 1234, 1241, "load-poll", "ep_poll", IDLE_STACK)
    # wchan says something unrelated: skipped without reading its stack, by design.
    task(root, 2000, 2000, "odd", "pipe_read", BLOCKED_STACK)
    task(root, 3000, 3000, "sleeper", "wait_woken", IDLE_STACK)
    os.makedirs(os.path.join(root, "sys"), exist_ok=True)  # non-numeric entries are not processes
    return root


def test_reports_blocked_threads_in_every_sample(tmp_path):
    result = writers.sample_blocked_writers(fake_proc(tmp_path), samples=3, interval_ms=10)
    assert result["samples"] == 3
    assert result["window_ms"] >= 20
    assert result["threads"] == [
        {"pid": 1234, "tid": 1234, "comm": "load", "seen_in_samples": 3},
        {"pid": 1234, "tid": 1240, "comm": "load-io", "seen_in_samples": 3},
    ]
    assert "a full per-socket send buffer also waits" in result["note"]


def test_unreadable_stacks_give_null_threads(tmp_path):
    result = writers.sample_blocked_writers(fake_proc(tmp_path, self_stack=False), samples=2, interval_ms=10)
    assert result["threads"] is None
    assert result["note"].startswith("kernel stacks are not readable here")


def test_sample_once_skips_itself_and_counts_stack_reads(tmp_path):
    blocked, stacks_read = writers.sample_once(fake_proc(tmp_path), os.getpid())
    assert blocked == {(1234, 1234): "load", (1234, 1240): "load-io"}
    assert stacks_read == 3  # the two blocked threads and the wait_woken sleeper

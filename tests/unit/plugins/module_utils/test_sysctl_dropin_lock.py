# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lock with real flock(2) calls: a second open file description conflicts like another process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_lock import (
    LockTimeout,
    acquire,
    holder_text,
    release,
)


def test_the_holder_is_recorded_and_a_second_taker_times_out_naming_it(tmp_path):
    lock_file = str(tmp_path / "run/lock/netstack.lock")  # missing directories are created
    first = acquire(lock_file, 1, "pid 111 (first)")
    slept = []
    clock = iter([0.0, 0.0, 0.5, 1.0])  # deadline 1.0: tries at 0.0 and 0.5, gives up at 1.0
    with pytest.raises(LockTimeout) as raised:
        acquire(lock_file, 1, "pid 222 (second)", clock=lambda: next(clock), sleep=slept.append)
    assert raised.value.holder == "pid 111 (first)"
    assert str(raised.value) == f"lock {lock_file} is still held after 1 s by pid 111 (first)"
    assert slept == [0.05, 0.05]
    release(first)
    second = acquire(lock_file, 0, "pid 222 (second)")
    assert Path(lock_file).read_text() == "pid 222 (second)\n"
    release(second)
    assert Path(lock_file).read_text() == ""  # no stale holder after release


def test_the_lock_is_a_real_flock(tmp_path):
    lock_file = str(tmp_path / "netstack.lock")
    held = acquire(lock_file, 0, "me")
    other = os.open(lock_file, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        release(held)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)


def test_a_symlink_at_the_lock_path_is_not_followed(tmp_path):
    (tmp_path / "target").write_text("keep")
    (tmp_path / "netstack.lock").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        acquire(str(tmp_path / "netstack.lock"), 0, "me")
    assert (tmp_path / "target").read_text() == "keep"


def test_holder_text_names_pid_path_and_utc_time():
    assert (
        holder_text("/etc/sysctl.d/x.conf", 42, 0)
        == "pid 42 (sysctl_dropin writing /etc/sysctl.d/x.conf, since 1970-01-01T00:00:00Z)"
    )

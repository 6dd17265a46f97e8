# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lock with real flock(2) calls: a second open file description conflicts like another process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.lock import (
    LOCK_NAME,
    LockTimeout,
    Untrusted,
    acquire,
    holder_text,
    release,
)


def test_the_holder_is_recorded_and_a_second_taker_times_out_naming_it(tmp_path):
    directory = str(tmp_path / "run/netstack-tcp-tuning")  # missing directories are created
    lock_file = f"{directory}/{LOCK_NAME}"
    first = acquire(directory, 1, "pid 111 (first)")
    slept = []
    clock = iter([0.0, 0.0, 0.5, 1.0])  # deadline 1.0: tries at 0.0 and 0.5, gives up at 1.0
    with pytest.raises(LockTimeout) as raised:
        acquire(directory, 1, "pid 222 (second)", clock=lambda: next(clock), sleep=slept.append)
    assert raised.value.holder == "pid 111 (first)"
    assert str(raised.value) == f"lock {lock_file} is still held after 1 s by pid 111 (first)"
    assert slept == [0.05, 0.05]
    release(first)
    second = acquire(directory, 0, "pid 222 (second)")
    assert Path(lock_file).read_text() == "pid 222 (second)\n"
    release(second)
    assert Path(lock_file).read_text() == ""  # no stale holder after release
    assert oct(Path(directory).stat().st_mode & 0o777) == "0o700" and oct(Path(lock_file).stat().st_mode) == "0o100600"


def test_the_lock_is_a_real_flock(tmp_path):
    held = acquire(str(tmp_path), 0, "me")
    other = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        release(held)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)


def plant(directory: Path, kind: str, target: Path) -> None:
    directory.mkdir(mode=0o700, exist_ok=True)
    lock_file = directory / LOCK_NAME
    if kind == "symlink":
        lock_file.symlink_to(target)
    elif kind == "hardlink":
        os.link(target, lock_file)
    elif kind == "fifo":
        os.mkfifo(lock_file)
    elif kind == "directory":
        lock_file.mkdir()
    elif kind == "foreign-owner":
        lock_file.write_text("pid 1 (the other user's text)\n")
        os.chown(lock_file, 65534, 65534)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("symlink", "is a symbolic link: refused"),
        ("hardlink", "has 2 hard links: refused"),
        ("fifo", "is not a regular file: refused"),
        ("directory", "is not a regular file: refused"),
        ("foreign-owner", "is owned by uid 65534, not uid 0"),
    ],
)
def test_a_lock_file_that_is_not_our_own_regular_file_is_refused_naming_path_and_reason(tmp_path, kind, reason):
    """A symlink used to be refused with only "Permission denied"; a hard link made root truncate its target."""
    if os.geteuid() != 0:
        pytest.skip("needs root (chown, and the owner check compares with root)")
    target = tmp_path / "target"
    target.write_text("keep\n")
    directory = tmp_path / "run/netstack-tcp-tuning"
    directory.parent.mkdir()
    plant(directory, kind, target)
    with pytest.raises(Untrusted) as raised:
        acquire(str(directory), 0, "me")
    assert str(raised.value).startswith(f"lock file {directory}/{LOCK_NAME} {reason}"), raised.value
    assert target.read_text() == "keep\n"


@pytest.mark.parametrize("kind", ["symlink", "foreign-owner", "group-writable"])
def test_a_lock_directory_that_is_not_ours_alone_is_refused(tmp_path, kind):
    if os.geteuid() != 0:
        pytest.skip("needs root (chown)")
    directory = tmp_path / "run/netstack-tcp-tuning"
    directory.parent.mkdir()
    if kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        directory.symlink_to(tmp_path / "elsewhere")
    else:
        directory.mkdir()
        if kind == "foreign-owner":
            os.chown(directory, 65534, 65534)
        else:
            directory.chmod(0o770)
    with pytest.raises(Untrusted, match=f"^lock directory {directory} "):
        acquire(str(directory), 0, "me")
    assert not (tmp_path / "elsewhere" / LOCK_NAME).exists()


def test_holder_text_names_pid_path_and_utc_time():
    assert (
        holder_text("/etc/sysctl.d/x.conf", 42, 0)
        == "pid 42 (sysctl_dropin writing /etc/sysctl.d/x.conf, since 1970-01-01T00:00:00Z)"
    )

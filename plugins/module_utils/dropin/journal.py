# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a sysctl_dropin run is about to change, written down before it changes anything.

A run killed (SIGKILL, a lost host) between its first change and the end of its rollback used to leave a
drop-in with a value the kernel refuses and a hidden temporary file, and later runs rolled back to that
file. The run now writes a journal first - the drop-in's previous bytes, mode and owner (or that there was
none) and each key's previous live value - into the lock's root-only directory, and removes it once it has
finished or fully rolled back. A later run that finds a journal (under the lock, so its writer is gone) puts
that state back first. The journal lives under /run: after a reboot the kernel's values come from the files
again, and there is nothing to finish.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import time
from typing import Any, Dict, Mapping, Optional

JOURNAL_NAME = "interrupted-run.json"


def journal_path(lock_directory: str) -> str:
    return os.path.join(lock_directory, JOURNAL_NAME)


def journal_entry(
    path: str,
    old: Optional[Mapping[str, Any]],
    created_directory: Optional[str],
    live_before: Mapping[str, Optional[str]],
    pid: int,
    now: float,
) -> Dict[str, Any]:
    """The journal of one run: `old` is {data (bytes), mode, uid, gid} of the file it replaces, or None."""
    return {
        "pid": pid,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "path": path,
        "old": None
        if old is None
        else {
            "data": base64.b64encode(old["data"]).decode("ascii"),
            "mode": old["mode"],
            "uid": old["uid"],
            "gid": old["gid"],
        },
        "created_directory": created_directory,
        "live": dict(live_before),
    }


def write_journal(lock_directory: str, entry: Mapping[str, Any]) -> None:
    """Write the journal whole (a temporary file renamed in, flushed to disk) before the first change."""
    fd, tmp_path = tempfile.mkstemp(dir=lock_directory, prefix=".journal.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp_path, journal_path(lock_directory))
    except BaseException:
        if os.path.lexists(tmp_path):
            os.unlink(tmp_path)
        raise


def decode_old(entry: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The journal's previous file as {data (bytes), mode, uid, gid}, or None when there was none."""
    old = entry.get("old")
    if old is None:
        return None
    return {**old, "data": base64.b64decode(old["data"])}


def remove_journal(lock_directory: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(lock_directory))

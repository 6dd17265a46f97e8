#!/usr/bin/python
# Copyright: netstack.tcp_tuning contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_exporter_textfile
short_description: Write a node_exporter textfile without following links, or test that its directory takes one
version_added: 0.1.0
description:
  - Writes O(content) to O(path), a file of node_exporter's textfile collector directory, the way a root-run tool
    must write into a directory another user may be able to write (Debian's C(/var/lib/prometheus/node-exporter)
    belongs to the C(prometheus) user).
  - The new content goes to a temporary file created in the same directory (C(O_CREAT|O_EXCL|O_NOFOLLOW), mode
    0600, through a descriptor of the directory), written, given O(mode) and O(mtime), flushed to disk, then
    renamed over O(path). A rename replaces the name itself, so whatever a link at O(path) points to is never
    opened, truncated, read or chowned. The temporary file's name starts with a dot and ends in C(.tmp), which
    the textfile collector ignores (it reads C(*.prom)).
  - The old file is read, to compare and for the diff, only when it is a regular file owned by the user the module
    runs as with a single link, opened with C(O_NOFOLLOW|O_NONBLOCK) and checked again on the open descriptor.
    Anything else at O(path) is never opened; its content never appears in the result.
  - A symbolic link, FIFO, socket, device or directory at O(path) is refused with a message saying what it is;
    nothing is written and nothing is removed (whoever planted it should be found).
  - With O(state=writable) nothing is changed; the module proves that the directory takes a new file (creates a
    temporary file there, writes O(content) or one byte, flushes it and removes it) and that O(path) is absent or
    a regular file, so a read-only, full or foreign directory fails before anything else is touched.
author:
  - netstack.tcp_tuning developers (@netstack)
options:
  path:
    description:
      - The textfile to write, an absolute path; its directory must exist.
      - A link in the directory part is followed (the administrator chose the directory); a link at the last
        component is not.
    type: path
    required: true
  content:
    description:
      - The text to write (Prometheus text exposition format). Required with O(state=present).
      - With O(state=writable), the bytes written to the temporary file (so a full file system is caught for a
        file this size); one byte when omitted.
    type: str
  mode:
    description:
      - Permissions of the written file, an octal string.
    type: str
    default: "0644"
  mtime:
    description:
      - Modification time to give the file, in seconds since the epoch. Omitted, the time of the write.
      - The file is rewritten when its content or its modification time differs.
    type: int
  state:
    description:
      - V(present) writes the file. V(writable) changes nothing and tests that the directory takes a new file.
    type: str
    choices: [present, writable]
    default: present
attributes:
  check_mode:
    support: full
    details: With O(state=present) reports whether the file would change, and the diff when the old file may be
      read; writes nothing. O(state=writable) writes nothing in check mode, it only checks what is at O(path).
  diff_mode:
    support: full
    details: The old file (only when it is a regular file of the user the module runs as, else empty) and the new one.
  platform:
    support: full
    platforms: posix
    details: Linux (O_NOFOLLOW and descriptor-relative calls).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
seealso:
  - name: node_exporter textfile collector
    description: The directory node_exporter reads C(*.prom) files from.
    link: https://github.com/prometheus/node_exporter#textfile-collector
"""

EXAMPLES = r"""
- name: Check that node_exporter's textfile directory takes a file, before changing anything
  netstack.tcp_tuning.node_exporter_textfile:
    path: /var/lib/prometheus/node-exporter/netstack_tcp_memory.prom
    state: writable

- name: Write the textfile
  netstack.tcp_tuning.node_exporter_textfile:
    path: /var/lib/prometheus/node-exporter/netstack_tcp_memory.prom
    content: |
      # HELP netstack_tcp_memory_target_connections Concurrent TCP connections the settings are sized for.
      # TYPE netstack_tcp_memory_target_connections gauge
      netstack_tcp_memory_target_connections 50000
    mtime: 1767225600
"""

RETURN = r"""
path:
  description: The textfile.
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/netstack_tcp_memory.prom
previous:
  description: What was at O(path) before, from C(lstat) (never opened unless it was the module user's own
    regular file).
  returned: always
  type: dict
  contains:
    exists:
      description: Whether anything was there.
      type: bool
    kind:
      description: V(file), V(symlink), V(fifo), V(socket), V(directory), V(character device), V(block device),
        or V(null) when nothing was there.
      type: str
    mtime:
      description: Its modification time in seconds since the epoch (V(null) when nothing was there).
      type: int
  sample: {"exists": true, "kind": "file", "mtime": 1767225600}
"""

import contextlib
import errno
import os
import secrets
import stat
from typing import Optional, Tuple

from ansible.module_utils.basic import AnsibleModule

# A textfile is small; refuse to read an old "file" larger than this (it is not ours, replace it unread).
PREVIOUS_READ_LIMIT_BYTES = 1 << 20

KINDS = (
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def kind_of(mode: int) -> str:
    """'file', 'symlink', 'fifo'... for an st_mode."""
    for test, kind in KINDS:
        if test(mode):
            return kind
    return "unknown file type"


def lstat_at(dir_fd: int, name: str) -> Optional[os.stat_result]:
    """lstat of `name` in the directory `dir_fd`, None when nothing is there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def refusal(path: str, dir_fd: int, name: str, found: Optional[os.stat_result]) -> Optional[str]:
    """Why the module will not replace what is at `path`, or None (nothing there, or a regular file)."""
    if found is None or stat.S_ISREG(found.st_mode):
        return None
    kind = kind_of(found.st_mode)
    what = kind
    if stat.S_ISLNK(found.st_mode):
        try:
            what = f"symbolic link to {os.readlink(name, dir_fd=dir_fd)!r}"
        except OSError:
            what = "symbolic link"
    return (
        f"{path} is a {what} (owner uid {found.st_uid}), not a regular file: refusing to replace it, it was not "
        "followed or opened and nothing was written. Someone who can write the directory may have planted it: "
        "find out who, remove it, and run again."
    )


def read_own_previous(dir_fd: int, name: str, found: Optional[os.stat_result]) -> Optional[str]:
    """The old file's text when it is our own single-link regular file, else None (never opened then).

    O_NOFOLLOW|O_NONBLOCK: a link or FIFO swapped in since the lstat neither is followed nor blocks;
    the descriptor is checked again before anything is read."""
    if found is None or not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid() or found.st_nlink != 1:
        return None
    if found.st_size > PREVIOUS_READ_LIMIT_BYTES:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino) or not stat.S_ISREG(opened.st_mode):
            return None
        data = os.read(fd, PREVIOUS_READ_LIMIT_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def create_temporary(dir_fd: int, name: str) -> Tuple[int, str]:
    """A new file `.NAME.RANDOM.tmp` in the directory, created by us (O_EXCL, O_NOFOLLOW), mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(100):
        temporary = f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temporary, flags, 0o600, dir_fd=dir_fd), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", name)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_temporary(dir_fd: int, name: str, data: bytes, mode: int, mtime: Optional[int]) -> str:
    """The complete new file under a temporary name, on disk; its name. Removed again on any error."""
    fd, temporary = create_temporary(dir_fd, name)
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        remove_quietly(dir_fd, temporary)
        raise
    return temporary


def remove_quietly(dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def open_directory(directory: str) -> int:
    """A descriptor of the directory for the *at calls; O_PATH (search permission only) when it may not be read,
    e.g. a check-mode run by a user who may not list it."""
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:
        return os.open(directory, getattr(os, "O_PATH", 0) | os.O_DIRECTORY | os.O_CLOEXEC)


def os_error_message(path: str, action: str, error: OSError) -> str:
    reason = {
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
    }.get(error.errno, error.strerror or str(error))
    return f"cannot {action} {path}: {reason} ({errno.errorcode.get(error.errno, error.errno)})"


def previous_info(found: Optional[os.stat_result]) -> dict:
    if found is None:
        return {"exists": False, "kind": None, "mtime": None}
    return {"exists": True, "kind": kind_of(found.st_mode), "mtime": int(found.st_mtime)}


def run(module: AnsibleModule, dir_fd: int, path: str, name: str) -> None:
    params = module.params
    found = lstat_at(dir_fd, name)
    result = {"changed": False, "path": path, "previous": previous_info(found)}
    refused = refusal(path, dir_fd, name, found)
    if refused:
        module.fail_json(msg=refused, **result)
    try:
        mode = int(params["mode"], 8)
    except (TypeError, ValueError):
        module.fail_json(msg=f"mode must be an octal string such as 0644, got {params['mode']!r}", **result)

    if params["state"] == "writable":
        if not module.check_mode:
            data = (params["content"] or "\n").encode("utf-8")
            try:
                remove_quietly(dir_fd, write_temporary(dir_fd, name, data, 0o600, None))
            except OSError as error:
                module.fail_json(msg=os_error_message(os.path.dirname(path), "write a file in", error), **result)
        module.exit_json(**result)

    if params["content"] is None:
        module.fail_json(msg="content is required with state=present", **result)
    data = params["content"].encode("utf-8")
    before = read_own_previous(dir_fd, name, found)
    same = (
        before is not None
        and before.encode("utf-8") == data
        and stat.S_IMODE(found.st_mode) == mode
        and (params["mtime"] is None or int(found.st_mtime) == params["mtime"])
    )
    result["changed"] = not same
    if module._diff:
        result["diff"] = {
            "before_header": path,
            "before": before or "",
            "after_header": path,
            "after": params["content"],
        }
    if same or module.check_mode:
        module.exit_json(**result)
    try:
        temporary = write_temporary(dir_fd, name, data, mode, params["mtime"])
    except OSError as error:
        module.fail_json(msg=os_error_message(path, "write a temporary file for", error), **result)
    renamed = False
    try:
        # What is there now (a link or FIFO swapped in since the first look) is refused, not replaced: the
        # rename would replace it safely, but the planter should be found.
        refused = refusal(path, dir_fd, name, lstat_at(dir_fd, name))
        if refused:
            module.fail_json(msg=refused, **result)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        renamed = True
    except OSError as error:
        module.fail_json(msg=os_error_message(path, "rename a temporary file over", error), **result)
    finally:
        if not renamed:
            remove_quietly(dir_fd, temporary)
    with contextlib.suppress(OSError):  # the rename is durable once the directory is flushed; O_PATH cannot be
        os.fsync(dir_fd)
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            content=dict(type="str"),
            mode=dict(type="str", default="0644"),
            mtime=dict(type="int"),
            state=dict(type="str", choices=["present", "writable"], default="present"),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    directory, name = os.path.split(path)
    if not os.path.isabs(path) or not name:
        module.fail_json(msg=f"path must be an absolute path to a file, got {path!r}", changed=False)
    try:
        dir_fd = open_directory(directory)
    except OSError as error:
        module.fail_json(msg=os_error_message(directory, "open the directory", error), changed=False, path=path)
    try:
        run(module, dir_fd, path, name)
    finally:
        os.close(dir_fd)


if __name__ == "__main__":
    main()

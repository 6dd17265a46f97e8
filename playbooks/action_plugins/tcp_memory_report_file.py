# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report playbook's file writer (playbook-local, not part of the collection's plugin surface).

Writes one report file on the controller, in the controller's own process, so the file belongs to
whoever runs ansible-playbook whatever become the hosts needed, and never follows a link:

- the report directory is created (mode 0755) when missing, and opened with O_NOFOLLOW: a symbolic
  link, or anything but a directory, in its place is refused, as is a directory owned by another
  user (someone else could swap the files afterwards);
- the file is written to a temporary file created O_EXCL|O_NOFOLLOW in that directory, given its
  mode through the descriptor, synced and renamed over the name: a symbolic link planted at the name
  is replaced, never followed or read; a FIFO, device, socket or directory there is refused.

Arguments: `dir` (the report directory, `~` expanded, a relative path taken from the controller's
working directory), `name` (a file name, no `/`; without it only the directory is made ready),
`content` (text) or `data` (written as JSON with sorted keys and an indent of 4, as
`to_nice_json(sort_keys=true)` writes it), `mode` (default 0644).
Returns `dir` (absolute), `path`, `size_bytes`, and for the report's header `generated_at` (the
controller's clock, UTC, ISO 8601) and `collection_version` (this collection's MANIFEST.json, or
galaxy.yml in a checkout). It writes in check mode too (the reports are the playbook's output);
with --diff it shows one line per file instead of the whole text.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import stat

import yaml  # ansible-core's own dependency
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.action import ActionBase

DIR_MODE = 0o755
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_version() -> str | None:
    """This collection's version: MANIFEST.json when installed, galaxy.yml in a checkout, else None."""
    try:
        with open(os.path.join(COLLECTION_ROOT, "MANIFEST.json"), encoding="utf-8") as handle:
            return str(json.load(handle)["collection_info"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(COLLECTION_ROOT, "galaxy.yml"), encoding="utf-8") as handle:
            return str(yaml.safe_load(handle)["version"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return None


def _link_refused(path: str, link: str) -> AnsibleActionFail:
    """The refusal of a link at LINK on the way to the report directory PATH (or at PATH itself)."""
    where = f"tcp_memory_report_dir {path}" if link == path else f"tcp_memory_report_dir {path}: {link}"
    owner = "" if link == path else f" owned by uid {os.lstat(link).st_uid}, neither this user nor root"
    return AnsibleActionFail(
        f"{where} is a symbolic link (to {os.readlink(link)}){owner}: refused, the report is not written "
        "through it; remove it or name the real directory"
    )


def _open_parent(path: str) -> int:
    """The directory holding PATH as an fd, created (0755) where missing. A link on the way is followed
    only when this user or root owns it (as fs.protected_symlinks would in a sticky directory)."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = ""
    try:
        for part in [p for p in os.path.dirname(path).split("/") if p]:
            walked += "/" + part
            try:
                info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as error:
                    raise AnsibleActionFail(
                        f"tcp_memory_report_dir {path}: cannot create {walked}: {error.strerror}"
                    ) from None
                info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            if stat.S_ISLNK(info.st_mode):
                if info.st_uid not in (os.geteuid(), 0):
                    raise _link_refused(path, walked)
            else:
                flags |= os.O_NOFOLLOW
            try:
                next_fd = os.open(part, flags, dir_fd=fd)
            except OSError as error:
                raise AnsibleActionFail(f"tcp_memory_report_dir {path}: {walked}: {error.strerror}") from None
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_directory_nofollow(path: str) -> int:
    """The report directory as an fd (created when missing), refusing a link or a foreign owner."""
    name = os.path.basename(path)
    parent_fd = _open_parent(path)
    try:
        try:
            os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
            created = True
        except FileExistsError:
            created = False
        except OSError as error:
            raise AnsibleActionFail(
                f"tcp_memory_report_dir {path}: cannot create the directory: {error.strerror}"
            ) from None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError as error:
            if stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
                raise _link_refused(path, path) from None
            raise AnsibleActionFail(
                f"tcp_memory_report_dir {path} is not a directory ({error.strerror}): refused"
            ) from None
    finally:
        os.close(parent_fd)
    info = os.fstat(fd)
    if info.st_uid not in (os.geteuid(), 0):
        os.close(fd)
        raise AnsibleActionFail(
            f"tcp_memory_report_dir {path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}): "
            "refused, its owner could replace the report; use a directory of your own"
        )
    if created:
        os.fchmod(fd, DIR_MODE)  # the umask may have taken bits off; the fd is the directory itself
    return fd


def _existing_entry(dir_fd: int, name: str, dir_path: str) -> os.stat_result | None:
    """What is at NAME now (not followed), None when nothing; refuses what a rename must not replace."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        kind = (
            "a directory"
            if stat.S_ISDIR(info.st_mode)
            else "a FIFO"
            if stat.S_ISFIFO(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "not a regular file"
        )
        raise AnsibleActionFail(
            f"{os.path.join(dir_path, name)} is {kind}, not a regular file: refused, nothing written; remove it"
        )
    return info


def _same_bytes(dir_fd: int, name: str, data: bytes, info: os.stat_result | None, mode: int) -> bool:
    """True when NAME is a regular file (not a link) holding exactly DATA with MODE."""
    if info is None or not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
        return False
    if stat.S_IMODE(info.st_mode) != mode:
        return False
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(len(data) + 1) == data
    finally:
        os.close(fd)


def write_nofollow(dir_path: str, name: str, data: bytes, mode: int) -> dict:
    """Write DATA to DIR_PATH/NAME without following links; returns changed and what was there."""
    if not name or "/" in name or name in (".", ".."):
        raise AnsibleActionFail(f"name must be a plain file name, got {name!r}")
    dir_fd = _open_directory_nofollow(dir_path)
    try:
        before = _existing_entry(dir_fd, name, dir_path)
        if _same_bytes(dir_fd, name, data, before, mode):
            return {"changed": False, "before": before}
        temp_name = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp_name, flags, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)
        return {"changed": True, "before": before}
    finally:
        os.close(dir_fd)


def _describe(before: os.stat_result | None, size_bytes: int, changed: bool) -> str:
    if not changed:
        return f"unchanged, {size_bytes:,} bytes"
    if before is None:
        return f"created, {size_bytes:,} bytes"
    if stat.S_ISLNK(before.st_mode):
        return f"written, {size_bytes:,} bytes (a symbolic link was there: replaced, not followed)"
    return f"rewritten, {size_bytes:,} bytes (was {before.st_size:,})"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "name", "content", "data", "mode"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        for required in ("dir", "name"):
            if (required == "dir" or required in args) and (
                not isinstance(args.get(required), str) or not args[required]
            ):
                raise AnsibleActionFail(f"{required} must be a non-empty string, got {args.get(required)!r}")
        dir_path = os.path.abspath(os.path.expanduser(args["dir"]))
        result.update(
            dir=dir_path,
            collection_version=collection_version(),
            generated_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if "name" not in args:
            os.close(_open_directory_nofollow(dir_path))
            result["changed"] = False
            return result
        if ("content" in args) == ("data" in args):
            raise AnsibleActionFail("give exactly one of content (text) and data (written as JSON)")
        if "data" in args:
            text = json.dumps(args["data"], cls=AnsibleJSONEncoder, indent=4, sort_keys=True, separators=(",", ": "))
            text += "\n"
        else:
            text = str(args["content"])
        mode_text = str(args.get("mode", "0644"))
        try:
            mode = int(mode_text, 8)
        except ValueError:
            raise AnsibleActionFail(f"mode must be octal such as 0644, got {mode_text!r}") from None
        data = text.encode("utf-8")
        written = write_nofollow(dir_path, args["name"], data, mode)
        path = os.path.join(dir_path, args["name"])
        summary = _describe(written["before"], len(data), written["changed"])
        result.update(changed=written["changed"], path=path, size_bytes=len(data))
        result["msg"] = f"{path}: {summary}"
        if self._task.diff:
            result["diff"] = {"prepared": f"{path}: {summary}"}
        return result

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decide whether the sysctl_dropin module may write a given drop-in path (pure functions).

systemd-sysctl reads only regular, non-hidden files named *.conf in its search directories
(systemd src/sysctl/sysctl.c: conf_files_list_strv(..., ".conf", ...), which skips hidden and
backup files); any other name is written without effect at boot.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from typing import Iterable, NamedTuple, Optional, Tuple

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.lock import LOCK_DIRECTORY
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import MANAGED_LINE
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.tuned import (
    TUNED_ACTIVE_PROFILE,
    TUNED_IN_USE_PATHS,
    TUNED_MAIN_CONF,
    TUNED_PROFILE_DIRS,
    TUNED_REAPPLIED_ROOTS,
)

DROPIN_SUFFIX = ".conf"
# systemd-sysctl's directories (sysctl.d(5)); /lib/sysctl.d only on systems without merged /usr.
SYSCTL_D_ROOTS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
# The legacy file `sysctl --system` applies after all drop-ins.
SYSCTL_CONF = "/etc/sysctl.conf"
PROC_SYS = "/proc/sys"
# Backups of replaced or removed drop-ins: outside every directory the boot reads, root only.
BACKUP_DIRECTORY = "/var/backups/netstack-tcp-tuning"


class HostPaths(NamedTuple):
    """Every host path the module reads or writes, taken under one root directory (option `root`)."""

    root: str
    proc_sys: str  # live values
    search_roots: Tuple[str, ...]  # the sysctl.d directories, in precedence order
    sysctl_conf: str
    tuned_active_profile: str  # tuned's record of its active profiles (post_loaded_profile beside it)
    tuned_main_conf: str
    tuned_profile_dirs: Tuple[str, ...]  # tuned's profile lookup order
    tuned_reapplied_roots: Tuple[str, ...]  # the sysctl.d directories tuned re-applies after its profile
    tuned_in_use_paths: Tuple[str, ...]  # paths or glob patterns: tuned runs now or starts at boot
    lock_directory: str  # root-only directory of the lock file
    backup_directory: str  # root-only directory of the backups (option backup)


def under_root(root: str, path: str) -> str:
    """`path` (absolute, as on a host) seen from `root`: /etc/sysctl.d under /srv/img is /srv/img/etc/sysctl.d."""
    return os.path.normpath(os.path.join(root, path.lstrip("/")))


def host_paths(root: str) -> HostPaths:
    """The paths of a host whose / is `root`."""

    def each(paths: Iterable[str]) -> Tuple[str, ...]:
        return tuple(under_root(root, path) for path in paths)

    return HostPaths(
        root=os.path.normpath(root),
        proc_sys=under_root(root, PROC_SYS),
        search_roots=each(SYSCTL_D_ROOTS),
        sysctl_conf=under_root(root, SYSCTL_CONF),
        tuned_active_profile=under_root(root, TUNED_ACTIVE_PROFILE),
        tuned_main_conf=under_root(root, TUNED_MAIN_CONF),
        tuned_profile_dirs=each(TUNED_PROFILE_DIRS),
        tuned_reapplied_roots=each(TUNED_REAPPLIED_ROOTS),
        tuned_in_use_paths=each(TUNED_IN_USE_PATHS),
        lock_directory=under_root(root, LOCK_DIRECTORY),
        backup_directory=under_root(root, BACKUP_DIRECTORY),
    )


def root_problem(root: str, path: str) -> Optional[str]:
    """Why `root` cannot be the host's root for the drop-in at `path`, or None. Looks at the strings only,
    but for whether `root` is a directory."""
    if not root or not os.path.isabs(root) or has_control_character(root):
        return f"root {root!r} must be an absolute path without control characters, such as /"
    if not os.path.isdir(root):
        return f"root {root!r} is not a directory"
    normal_root, normal_path = os.path.normpath(root), os.path.normpath(path)
    if os.path.isabs(normal_path) and os.path.commonpath([normal_root, normal_path]) != normal_root:
        return f"path {path} is not under root {root}: the drop-in must be a file of that host"
    return None


def has_control_character(text: str) -> bool:
    """Newlines, tabs, escapes and other Unicode control characters (category Cc)."""
    return any(unicodedata.category(char) == "Cc" for char in text)


def path_syntax_problem(path: str) -> Optional[str]:
    """Why `path` cannot name a drop-in that systemd-sysctl reads, or None. Looks at the string only."""
    if not path:
        return "path is empty: give the absolute path of the drop-in, such as /etc/sysctl.d/99-netstack-tcp-memory.conf"
    if has_control_character(path):
        return f"path {path!r} contains a control character (newline, tab...): refused"
    if not os.path.isabs(path):
        return f"path {path!r} is relative: give an absolute path, such as /etc/sysctl.d/99-netstack-tcp-memory.conf"
    name = os.path.basename(path)
    if not name:
        return f"path {path!r} ends with '/', which names a directory: give the drop-in file itself"
    if name.startswith(".") or not name.endswith(DROPIN_SUFFIX) or name == DROPIN_SUFFIX:
        return (
            f"path {path!r}: the file name must end in {DROPIN_SUFFIX} and not start with '.', "
            "or systemd-sysctl ignores it and the settings vanish at boot"
        )
    return None


def in_roots(path: str, roots: Iterable[str], realpath=os.path.realpath) -> bool:
    """Whether the drop-in's directory is one of `roots`, symlinks resolved (/lib -> /usr/lib)."""
    directory = realpath(os.path.dirname(path))
    return any(directory == realpath(root) for root in roots)


def file_type_problem(path: str, mode: int, link_target: Optional[str] = None) -> Optional[str]:
    """Why the existing entry at `path` (its lstat st_mode) cannot be replaced as a drop-in, or None."""
    if stat.S_ISLNK(mode):
        return (
            f"path {path} is a symbolic link (to {link_target}): refused, the module replaces files and does "
            "not follow links; point path at the file itself or remove the link"
        )
    if stat.S_ISDIR(mode):
        return f"path {path} is a directory: give the drop-in file inside it"
    if not stat.S_ISREG(mode):
        return f"path {path} exists and is not a regular file: refused"
    return None


def is_managed(text: Optional[str]) -> bool:
    """Whether a file's content starts with this collection's managed-by line (also with CRLF line ends, as an
    editor may leave them; systemd-sysctl reads such a file the same)."""
    return text is not None and text.split("\n", 1)[0].rstrip("\r") == MANAGED_LINE


def text_problem(text: str) -> Optional[str]:
    """Why free text (a comment, the header) cannot go into the drop-in, or None. Newlines start another '# '
    line; every other control character is refused: systemd-sysctl ends a line at a NUL or a carriage return,
    and the text after it would become a setting."""
    for offset, char in enumerate(text):
        if char != "\n" and unicodedata.category(char) == "Cc":
            return (
                f"contains the control character {char!r} at offset {offset}: refused, only newlines are allowed "
                "(a NUL or carriage return could end the comment line and make the rest a setting)"
            )
    return None


def ownership_problem(
    path: str, roots: Iterable[str], old_text: Optional[str], realpath=os.path.realpath
) -> Optional[str]:
    """Why replacing `path` needs force=true (outside the search roots, or a file this collection did
    not write), or None."""
    roots = list(roots)
    hint = "set force=true (role: tcp_memory_sysctl_file_force=true) to replace it anyway"
    if not in_roots(path, roots, realpath):
        return f"path {path} is not in the sysctl.d search roots ({', '.join(roots)}): refused, {hint}"
    if old_text is not None and not is_managed(old_text):
        return f"path {path} exists and was not written by this collection (no managed-by header): refused, {hint}"
    return None

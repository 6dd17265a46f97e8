# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide whether the sysctl_dropin module may write a given drop-in path (pure functions).

systemd-sysctl reads only regular, non-hidden files named *.conf in its search directories
(systemd src/sysctl/sysctl.c: conf_files_list_strv(..., ".conf", ...), which skips hidden and
backup files); any other name is written without effect at boot.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from typing import Iterable, Optional

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_render import MANAGED_LINE

DROPIN_SUFFIX = ".conf"
# systemd-sysctl's directories (sysctl.d(5)); /lib/sysctl.d only on systems without merged /usr.
SYSCTL_D_ROOTS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")


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
    """Whether a file's content starts with this collection's managed-by line."""
    return text is not None and text.split("\n", 1)[0] == MANAGED_LINE


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

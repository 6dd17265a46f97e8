# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which sysctl.d files would override the drop-in at boot (pure functions of listings and texts).

systemd-sysctl and `sysctl --system` merge the *.conf files of all search directories, sorted by
FILE NAME; a name in an earlier directory (/etc before /run before /usr/...) masks the same name in
later ones; for a key set twice the later file wins. `sysctl --system` applies /etc/sysctl.conf
after all of them (Debian also links it in as /etc/sysctl.d/99-sysctl.conf), so it always wins.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import (
    glob_key_problem,
    key_problem,
    normalise_value,
)


class Assignment(NamedTuple):
    line: int  # 1-based line number in its file
    key: str  # normalised to the dotted form, may be a glob
    value: str  # whitespace-normalised


class Precedence(NamedTuple):
    later_files: List[str]  # files applied after the drop-in, in application order
    masked_by: Optional[str]  # a same-named file that hides the drop-in entirely
    in_search_roots: bool  # False: nothing applies the drop-in at boot


def normalise_conf_key(key: str) -> str:
    """sysctl.d accepts net/ipv4/tcp_rmem too: when '/' comes first, '/' and '.' swap meaning."""
    slash, dot = key.find("/"), key.find(".")
    if slash != -1 and (dot == -1 or slash < dot):
        return key.translate(str.maketrans("/.", "./"))
    return key


def parse_sysctl_conf(text: str) -> List[Assignment]:
    """Assignments of a sysctl.d file; comments (# ;), blank and malformed lines are ignored as systemd does."""
    assignments = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        # A leading '-' only tells systemd to ignore a failed write; the key is still set.
        key = normalise_conf_key(key.strip().lstrip("-").strip())
        if key:
            assignments.append(Assignment(number, key, normalise_value(value)))
    return assignments


def is_glob(key: str) -> bool:
    return any(char in key for char in "*?[")


def assignment_key_problem(assignment: Assignment) -> Optional[str]:
    """Why a key read from a sysctl.d file fails the check a key given as a setting passes (globs aside), or None."""
    return glob_key_problem(assignment.key) if is_glob(assignment.key) else key_problem(assignment.key)


def valid_assignments(assignments: Sequence[Assignment]) -> List[Assignment]:
    """The assignments of another package's file that can name a sysctl; the others (net/../x) are never used."""
    return [assignment for assignment in assignments if assignment_key_problem(assignment) is None]


def effective_files(search_roots: Sequence[str], listing: Mapping[str, Sequence[str]]) -> List[Tuple[str, str]]:
    """(name, path) of the *.conf files that are applied, sorted by name; earlier roots mask later ones."""
    chosen: Dict[str, str] = {}
    for root in search_roots:
        for name in listing.get(root, ()):
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = os.path.join(root, name)
    return sorted(chosen.items())


def precedence(
    dropin_path: str, search_roots: Sequence[str], listing: Mapping[str, Sequence[str]], sysctl_conf: Optional[str]
) -> Precedence:
    """Where the drop-in lands in the boot-time order and which files come after it."""
    dropin_name = os.path.basename(dropin_path)
    roots = [os.path.normpath(root) for root in search_roots]
    in_search_roots = os.path.normpath(os.path.dirname(dropin_path)) in roots
    files = effective_files(roots, {os.path.normpath(k): v for k, v in listing.items()})
    masked_by = None
    for name, path in files:
        if name == dropin_name and os.path.normpath(path) != os.path.normpath(dropin_path) and in_search_roots:
            masked_by = path
    later = [path for name, path in files if name > dropin_name]
    if sysctl_conf:
        # Already in the list through a symlink (Debian's 99-sysctl.conf): report the real file once, last.
        later = [path for path in later if os.path.realpath(path) != os.path.realpath(sysctl_conf)]
        later.append(sysctl_conf)
    return Precedence(later, masked_by, in_search_roots)


def key_matches(pattern: str, key: str) -> bool:
    """systemd-sysctl accepts globs in keys (net.ipv4.conf.*.rp_filter)."""
    if is_glob(pattern):
        return fnmatch.fnmatchcase(key, pattern)
    return pattern == key


def find_conflicts(
    managed: Mapping[str, str], later_files: Sequence[Tuple[str, Sequence[Assignment]]]
) -> List[Dict[str, Any]]:
    """{key, file, line, value} for each later assignment that would replace a managed value at boot."""
    conflicts = []
    for path, assignments in later_files:
        for assignment in assignments:
            for key in sorted(managed):
                if key_matches(assignment.key, key) and assignment.value != normalise_value(managed[key]):
                    conflicts.append({"key": key, "file": path, "line": assignment.line, "value": assignment.value})
    return conflicts


def masking_conflicts(managed: Mapping[str, str], masked_by: str) -> List[Dict[str, Any]]:
    """A same-named file in an earlier directory hides the whole drop-in: every managed key is lost at boot."""
    return [
        {"key": key, "file": masked_by, "line": None, "value": None, "reason": "masks the drop-in (same file name)"}
        for key in sorted(managed)
    ]

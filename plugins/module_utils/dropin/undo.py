# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What each managed key goes back to when the drop-in is removed (pure functions, state=absent).

The value to restore is the one the host would hold after a reboot without the drop-in:

1. a value the user names (option ``settings`` with state=absent), else
2. the value of the sysctl.d file that would then win for the key, in the boot order of
   dropin.precedence (files of all search roots merged and sorted by name, an earlier root
   masking a same-named file of a later one, /etc/sysctl.conf last). systemd-sysctl lets an
   explicit key win over a glob that matches it, whatever their order (src/sysctl/sysctl.c,
   apply_glob_option: "not setting ... explicit setting exists"), else
3. the live value the key had before this collection first set it, recorded in the drop-in
   (exact where nothing changed it at runtime before; the facts' boot_defaults over-estimate a
   host's boot values by the memory the kernel frees after tcp_init()), else
4. the kernel's boot default: given by the caller (the facts' ``boot_defaults``), a constant the
   kernel sets in its init code, or net.core.rmem_max/wmem_max read from rmem_default/wmem_default,
   which boot at the same constant (net/core/sock.c: sysctl_rmem_max and sysctl_rmem_default are both
   initialised to SK_RMEM_MAX, the wmem pair to SK_WMEM_MAX), when no sysctl.d file and not the
   drop-in sets those, else
5. nothing: the live value is left and the reason says how to name a value.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.precedence import (
    Assignment,
    effective_files,
    key_matches,
    normalise_conf_key,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import RECORD_PREFIX
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import (
    key_problem,
    normalise_value,
)

SOURCE_GIVEN = "given"
SOURCE_FILE = "file"
SOURCE_RECORDED = "recorded"
SOURCE_BOOT_DEFAULT = "boot_default"
SOURCE_KERNEL_CONSTANT = "kernel_constant"
SOURCE_SAME_CONSTANT = "same_constant"
SOURCE_UNKNOWN = "unknown"

# Keys that boot at the value another key also boots at (net/core/sock.c): key -> that other key.
SAME_BOOT_CONSTANT = {
    "net.core.rmem_max": "net.core.rmem_default",
    "net.core.wmem_max": "net.core.wmem_default",
}


class Restore(NamedTuple):
    """The value a key goes back to (None: unknown, leave it) and where that value comes from."""

    value: Optional[str]
    source: str
    origin: str  # a sentence: the file and line, the fact, or why it stays as it is


def boot_order_without(
    dropin_path: str,
    search_roots: Sequence[str],
    listing: Mapping[str, Sequence[str]],
    sysctl_conf: Optional[str],
    realpath=os.path.realpath,
) -> List[str]:
    """The files systemd-sysctl / sysctl --system apply at boot once the drop-in is gone, in order.

    Without the drop-in a same-named file of a later root (/usr/lib/sysctl.d) is no longer masked
    and takes its place; /etc/sysctl.conf comes last, once (Debian also links it as 99-sysctl.conf).
    """
    roots = [os.path.normpath(root) for root in search_roots]
    dropin_dir, dropin_name = os.path.split(os.path.normpath(dropin_path))
    pruned = {
        os.path.normpath(root): [name for name in names if (os.path.normpath(root), name) != (dropin_dir, dropin_name)]
        for root, names in listing.items()
    }
    files = [path for _name, path in effective_files(roots, pruned)]
    if sysctl_conf:
        files = [path for path in files if realpath(path) != realpath(sysctl_conf)]
        files.append(sysctl_conf)
    return files


def winning_assignment(
    key: str, parsed: Sequence[Tuple[str, Sequence[Assignment]]]
) -> Optional[Tuple[str, Assignment]]:
    """(file, assignment) that sets `key` last at boot: the last explicit one, else the last glob."""
    explicit: Optional[Tuple[str, Assignment]] = None
    glob: Optional[Tuple[str, Assignment]] = None
    for path, assignments in parsed:
        for assignment in assignments:
            if assignment.key == key:
                explicit = (path, assignment)
            elif key_matches(assignment.key, key):
                glob = (path, assignment)
    return explicit or glob


def restore_value(
    key: str,
    given: Mapping[str, str],
    parsed: Sequence[Tuple[str, Sequence[Assignment]]],
    boot_defaults: Mapping[str, str],
    live: Mapping[str, Optional[str]],
    managed_keys: Sequence[str] = (),
    recorded: Optional[Mapping[str, str]] = None,
    kernel_constants: Optional[Mapping[str, str]] = None,
) -> Restore:
    """Where `key` goes back to after the drop-in is removed (see the module docstring for the order).
    `kernel_constants`: key -> the value the kernel's init code sets whatever the machine (the caller's table)."""
    if key in given:
        return Restore(given[key], SOURCE_GIVEN, "the value given in settings")
    found = winning_assignment(key, parsed)
    if found:
        path, assignment = found
        return Restore(assignment.value, SOURCE_FILE, f"{path} line {assignment.line}, which then wins at boot")
    if recorded and key in recorded:
        return Restore(
            recorded[key], SOURCE_RECORDED, "the value before this collection first set it (recorded in the drop-in)"
        )
    if key in boot_defaults:
        return Restore(boot_defaults[key], SOURCE_BOOT_DEFAULT, "the kernel's boot default (boot_defaults)")
    if kernel_constants and key in kernel_constants:
        return Restore(kernel_constants[key], SOURCE_KERNEL_CONSTANT, "the value the kernel sets at boot")
    twin = SAME_BOOT_CONSTANT.get(key)
    if twin and live.get(twin) and twin_untouched(twin, given, parsed, managed_keys):
        return Restore(
            live[twin],
            SOURCE_SAME_CONSTANT,
            f"the kernel's boot default, the constant {twin} also boots at (no sysctl.d file sets {twin})",
        )
    return Restore(
        None,
        SOURCE_UNKNOWN,
        "no sysctl.d file sets it and its boot default is not known here: left as it is "
        "(give the value in settings, role: tcp_memory_undo_values)",
    )


def twin_untouched(
    twin: str, given: Mapping[str, str], parsed: Sequence[Tuple[str, Sequence[Assignment]]], managed_keys: Sequence[str]
) -> bool:
    """Whether `twin` still holds its boot value as far as the files tell: neither the drop-in, a sysctl.d
    file nor the user sets it."""
    return twin not in managed_keys and twin not in given and winning_assignment(twin, parsed) is None


class Record(NamedTuple):
    """A '# before netstack.tcp_tuning: key = value' line of a drop-in."""

    line: int  # 1-based line number in the drop-in
    key: str
    value: str


def parse_records(text: Optional[str]) -> List[Record]:
    """Every record line of a drop-in, as written (checked by checked_records)."""
    records = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if line.startswith(RECORD_PREFIX):
            key, _sep, value = line[len(RECORD_PREFIX) :].partition("=")
            records.append(Record(number, normalise_conf_key(key.strip()), normalise_value(value)))
    return records


def checked_records(
    records: Sequence[Record], dropin_keys: Sequence[str], value_problem: Callable[[str, str], Optional[str]]
) -> Tuple[Dict[str, str], List[str]]:
    """(key -> recorded value, problems). A record is what a key goes back to, so it passes the checks a
    setting passes: a dotted key the drop-in itself sets (a record for any other key restores nothing this
    collection changed), a value `value_problem` accepts, one record per key. Each problem names its line."""
    values: Dict[str, str] = {}
    first_line: Dict[str, int] = {}
    problems = []
    for record in records:
        where = f"line {record.line} ({RECORD_PREFIX}{record.key} = {record.value})"
        problem = key_problem(record.key)
        if not problem and record.key not in dropin_keys:
            problem = "the drop-in does not set this key, so there is nothing of this collection's to restore"
        if not problem:
            problem = value_problem(record.key, record.value)
            problem = problem and f"value {record.value!r} {problem}"
        if not problem and record.key in first_line:
            problem = f"a second record for {record.key} (the first is line {first_line[record.key]})"
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        first_line[record.key] = record.line
        values[record.key] = record.value
    return values, problems


def records_to_keep(
    managed: Mapping[str, str],
    old_records: Mapping[str, str],
    old_keys: Sequence[str],
    live: Mapping[str, Optional[str]],
) -> Dict[str, str]:
    """The previous values to record in the new drop-in: what the old drop-in recorded (`old_records`, checked),
    and for a key it did not set yet, the live value now (this collection has not changed it). A key the old
    file set without a record (its record was removed by hand) gets none: its live value is this collection's."""
    records = {}
    for key in sorted(managed):
        if key in old_records:
            records[key] = old_records[key]
        elif key not in old_keys and live.get(key):  # absent (None) or unreadable (empty): nothing to record
            records[key] = live[key]
    return records


def dropin_keys(assignments: Sequence[Assignment]) -> Tuple[List[str], List[str]]:
    """(exact keys the drop-in sets, glob patterns it holds). The module never writes globs; a managed
    file edited by hand might: their keys cannot be told, so they are reported, not restored."""
    keys: List[str] = []
    globs: List[str] = []
    for assignment in assignments:
        target = globs if any(char in assignment.key for char in "*?[") else keys
        if assignment.key not in target:
            target.append(assignment.key)
    return sorted(keys), sorted(globs)


def plan_restore(
    keys: Sequence[str],
    restores: Mapping[str, Restore],
    skip: Mapping[str, str],
    live: Mapping[str, Optional[str]],
    apply_live: bool = True,
) -> Dict[str, Dict[str, Any]]:
    """key -> {before, after, action, reason, source} like plan_keys, for state=absent."""
    plan: Dict[str, Dict[str, Any]] = {}
    for key in sorted(keys):
        before = live.get(key)
        restore = restores[key]
        entry: Dict[str, Any] = {"before": before, "source": restore.source}
        if key in skip:
            entry.update(action="skipped", after=before, reason=str(skip[key]))
        elif before is None:
            entry.update(action="skipped", after=None, reason="absent here: nothing to restore")
        elif restore.value is None:
            entry.update(action="skipped", after=before, reason=restore.origin)
        elif restore.value == before:
            entry.update(action="unchanged", after=before, reason=f"live value already is {restore.origin}")
        elif apply_live:
            entry.update(action="set", after=restore.value, reason=f"restored to {restore.origin}")
        else:
            entry.update(
                action="skipped",
                after=before,
                reason=f"apply=false: the live value stays until the next boot ({restore.origin} then)",
            )
        plan[key] = entry
    return plan

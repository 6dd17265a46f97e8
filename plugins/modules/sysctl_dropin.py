#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysctl_dropin
short_description: Write a whole sysctl.d drop-in and apply its values, with read-back and rollback
version_added: 0.1.0
description:
  - Renders the complete drop-in file from O(settings) (sorted keys, a header saying the file is managed,
    each key under its comment), compares it with the file on disk and every value with the live kernel
    value (whitespace-normalised, the kernel prints vectors with tabs).
  - Writes the file atomically, writes only the keys whose live value differs directly to C(/proc/sys)
    (C(sysctl -w) exits 0 on some rejected writes), then reads every key back.
  - On any write error or read-back mismatch it restores the previous file (or removes the new one) and
    the previous live values of every key it wrote, then fails naming the key, the value written and what
    the kernel kept.
  - Reports files in the sysctl.d search path (or C(/etc/sysctl.conf)) that would override a managed key
    at boot, naming the file and line, and the lines of the active tuned profile that set a managed key to
    another value (a conflict when tuned's value stays in force, see O(tuned_active_profile)).
  - Validates every key, value and the path before touching anything, and refuses a drop-in it must not replace
    (see O(path) and O(force)); nothing is changed when it refuses.
  - Takes an exclusive lock (O(lock_file)) from reading the current state to the read-back, so two runs against
    one host at once cannot leave the file and the kernel disagreeing.
author:
  - netstack.tcp_tuning developers (@netstack)
options:
  path:
    description:
      - The drop-in file to manage, an absolute path. It is replaced as a whole.
      - The file name must end in C(.conf) and not start with C(.), and the path must not contain control
        characters (newlines, tabs); systemd-sysctl ignores other names, so the settings would vanish at boot.
      - A path that is a directory, a symbolic link or another non-regular file is always refused (links are not
        followed; replacing the link's target, or the link by a file, is rarely what was meant).
      - Without O(force), a path whose directory is not one of O(search_roots), or an existing file that does not
        start with this collection's managed-by line, is refused.
      - Its directory is created (mode 0755) when missing, provided that directory's parent exists;
        a rollback removes it again.
    type: path
    required: true
  force:
    description:
      - Replace the drop-in even when it is outside O(search_roots) or an existing file that this collection did
        not write (no managed-by line). Symbolic links, directories and other non-regular files are refused anyway.
    type: bool
    default: false
  settings:
    description:
      - Dotted sysctl key to value. Every key must exist under O(proc_sys_root), also with O(apply=false)
        (pass absent keys in O(skip)).
      - Values are strings of plain decimal integers within the kernel's int range (vectors separated by
        blanks); integers are accepted, booleans are refused.
      - C(net.ipv4.tcp_mem), C(net.ipv4.tcp_rmem), C(net.ipv4.tcp_wmem) and C(net.ipv4.udp_mem) need exactly three
        numbers, each at least 1, ordered min <= default (pressure) <= max.
        C(net.ipv4.ip_local_port_range) and C(net.ipv4.ping_group_range) need two, C(net.sctp.sctp_mem),
        C(net.sctp.sctp_rmem) and C(net.sctp.sctp_wmem) three, C(kernel.printk) and C(kernel.sem) four;
        every other key exactly one.
    type: dict
    required: true
  comments:
    description:
      - Key to free text, written as C(# ) lines above that key. Keys not in O(settings) are ignored.
    type: dict
    default: {}
  header:
    description:
      - Text written as C(# ) lines below the managed-by line at the top of the file.
    type: str
  skip:
    description:
      - Key to reason. These keys are neither written to the file nor applied; they are reported with
        action C(skipped) and the reason (for example keys that are global and read-only inside a container).
    type: dict
    default: {}
  conflicts:
    description:
      - What to do when another file applied after the drop-in at boot sets a managed key to another value.
      - V(warn) reports them in RV(conflicts) and RV(notes) and warns, V(fail) fails before writing anything,
        V(ignore) only lists them in RV(conflicts).
    type: str
    choices: [warn, fail, ignore]
    default: warn
  backup:
    description:
      - Keep a timestamped copy of the file it replaces. A run that fails and rolls back removes the copy again.
    type: bool
    default: false
  apply:
    description:
      - V(true) writes the file and the live values.
      - V(false) only writes the file; the values take effect at the next boot or C(sysctl --system).
        Keys must then exist here but need not be writable.
      - To change nothing at all use check mode.
    type: bool
    default: true
  proc_sys_root:
    description:
      - Where the live values are read and written. Tests point it at a fixture tree.
    type: path
    default: /proc/sys
  search_roots:
    description:
      - The sysctl.d directories in precedence order (a file name in an earlier directory masks the same
        name in later ones), used to find files that override the drop-in at boot.
      - Without O(force), O(path) must be in one of them. Tests point them at private directories.
    type: list
    elements: path
    aliases: [search_paths]
    default: [/etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d]
  sysctl_conf:
    description:
      - The legacy file C(sysctl --system) applies after all drop-ins.
    type: path
    default: /etc/sysctl.conf
  tuned_active_profile:
    description:
      - tuned's record of its active profiles. When it names profiles, their C(tuned.conf) files (and the
        profiles they include, and C(post_loaded_profile) beside it) are read for C([sysctl]) lines that set a
        managed key to another value.
      - Such a line is a conflict when tuned's value stays in force after boot, that is when
        C(reapply_sysctl = 0) in O(tuned_main_conf), or when the drop-in is not in C(/etc/sysctl.d) or
        C(/run/sysctl.d), the directories tuned re-applies after its profile. Otherwise it is only noted.
    type: path
    default: /etc/tuned/active_profile
  tuned_main_conf:
    description:
      - tuned's main configuration, read for C(reapply_sysctl) (tuned's default is on).
    type: path
    default: /etc/tuned/tuned-main.conf
  tuned_profile_dirs:
    description:
      - Where tuned profiles live, in tuned's lookup order (the first C(PROFILE/tuned.conf) found is used).
    type: list
    elements: path
    default: [/etc/tuned/profiles, /etc/tuned, /usr/lib/tuned/profiles, /usr/lib/tuned]
  tuned_reapplied_roots:
    description:
      - The sysctl.d directories tuned applies again after its profile when C(reapply_sysctl) is on.
    type: list
    elements: path
    default: [/run/sysctl.d, /etc/sysctl.d]
  lock_file:
    description:
      - The file locked with C(flock) (exclusive) while the module reads the current state, writes and reads back,
        so that one run at a time changes this host. Created when missing; the holder writes its pid into it.
      - Not taken in check mode, which changes nothing.
    type: path
    default: /run/lock/netstack-tcp-memory.lock
  lock_timeout:
    description:
      - Seconds to wait for another run to release O(lock_file); the module then fails, naming the pid that holds
        it, without changing anything.
    type: int
    default: 60
  tuned_in_use_paths:
    description:
      - tuned counts as in use (running now, or started at boot) when one of these paths or glob patterns
        exists. A profile recorded by a tuned that is not in use is not checked, only noted.
    type: list
    elements: str
    default: [/run/tuned/tuned.pid, /etc/systemd/system/*.wants/tuned.service]
attributes:
  check_mode:
    support: full
    details: Reports the file diff and, per key, the live value and the value it would set.
  diff_mode:
    support: full
    details: The diff is the drop-in file before and after.
  platform:
    support: full
    platforms: posix
    details: Linux only (reads and writes /proc/sys).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
notes:
  - Keys that are removed from O(settings) disappear from the file, but their live values are left as
    they are (the module cannot know what they were before the first run).
  - A rollback puts back the previous file byte for byte with its mode, owner and SELinux context (or removes the
    new file, and the directory made for it), removes the backup made by O(backup), and writes back the previous
    live value of every key it wrote.
seealso:
  - module: netstack.tcp_tuning.tcp_memory_facts
  - module: ansible.posix.sysctl
"""

EXAMPLES = r"""
- name: Persist and apply TCP buffer limits
  netstack.tcp_tuning.sysctl_dropin:
    path: /etc/sysctl.d/99-netstack-tcp-memory.conf
    settings:
      net.ipv4.tcp_rmem: "4096 131072 16777216"
      net.core.rmem_max: "16777216"
    comments:
      net.ipv4.tcp_rmem: Receive buffers up to 16 MiB for 10 Gbit/s at 10 ms.
    skip:
      net.ipv4.tcp_mem: global key, read-only in this container
    conflicts: fail
    backup: true

- name: Show what would change without changing anything
  netstack.tcp_tuning.sysctl_dropin:
    path: /etc/sysctl.d/99-netstack-tcp-memory.conf
    settings:
      net.ipv4.tcp_wmem: "4096 16384 4194304"
  check_mode: true
  register: dropin_plan
"""

RETURN = r"""
path:
  description: The drop-in file.
  returned: always
  type: str
  sample: /etc/sysctl.d/99-netstack-tcp-memory.conf
file_changed:
  description: Whether the drop-in content differs (or would differ in check mode) from the file on disk.
  returned: always
  type: bool
  sample: true
diff:
  description: The drop-in before and after (empty before when the file did not exist).
  returned: always
  type: dict
  sample: {before: "", after: "# Managed by netstack.tcp_tuning ...\n", before_header: /etc/sysctl.d/x.conf}
keys:
  description:
    - Per key the normalised live value before the run (null when the key does not exist here), the value
      after, the action (V(unchanged), V(set), V(skipped)) and why.
  returned: always
  type: dict
  sample:
    net.ipv4.tcp_rmem: {before: "4096 131072 6291456", after: "4096 131072 16777216", action: set,
                        reason: live value differs}
notes:
  description:
    - Sentences about the boot order, also emitted as warnings - one per conflict (unless O(conflicts=ignore)),
      a drop-in outside the search roots, a tuned profile line that tuned overrides in turn, a tuned profile
      that could not be read.
  returned: always
  type: list
  elements: str
  sample:
    - /etc/sysctl.conf line 12 sets net.ipv4.tcp_rmem = 4096 87380 6291456 and is applied after the drop-in at boot
conflicts:
  description:
    - Assignments in files applied after the drop-in at boot that would replace a managed value
      (file, 1-based line, the value there); C(reason) is set when a same-named file masks the drop-in
      (C(line) is null then) and for a tuned profile line whose value stays in force.
  returned: always
  type: list
  elements: dict
  sample: [{key: net.ipv4.tcp_rmem, file: /etc/sysctl.conf, line: 12, value: "4096 87380 6291456"}]
backup_file:
  description: The backup copy, when O(backup=true) and the file was replaced.
  returned: when a backup was made and kept (a run that rolls back removes it)
  type: str
  sample: /etc/sysctl.d/99-netstack-tcp-memory.conf.12345.2026-11-23@20:00:00~
lock_holder:
  description: What the O(lock_file) records about the run that held it, when this run gave up waiting.
  returned: failure after O(lock_timeout)
  type: str
  sample: pid 4242 (sysctl_dropin writing /etc/sysctl.d/99-netstack-tcp-memory.conf, since 2026-12-01T21:00:00Z)
rollback:
  description: On failure, what was restored (file, live values, and the backup copy this run made, removed).
  returned: failure after something was written
  type: dict
  sample: {file: restored, backup_file: removed, live: {net.ipv4.tcp_rmem: restored}}
"""

import glob
import os
import stat
import tempfile
import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_lock import (
    DEFAULT_LOCK_FILE,
    LockTimeout,
    acquire,
    holder_text,
    release,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_paths import (
    SYSCTL_D_ROOTS,
    file_type_problem,
    ownership_problem,
    path_syntax_problem,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_plan import (
    keys_to_write,
    managed_settings,
    plan_keys,
    readback_mismatches,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_precedence import (
    find_conflicts,
    masking_conflicts,
    parse_sysctl_conf,
    precedence,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_render import render_dropin
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_tuned import (
    TUNED_IN_USE_PATHS,
    TUNED_PROFILE_DIRS,
    TUNED_REAPPLIED_ROOTS,
    active_profiles,
    profile_assignments,
    reapply_sysctl,
    tuned_conflicts,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_values import (
    key_problem,
    normalise_value,
    proc_sys_path,
    value_problem,
)

# A sysctl file never holds more than a page; the cap keeps a broken fixture from reading forever.
READ_LIMIT_BYTES = 65536
# sysctl.d files, sysctl.conf and tuned profiles are a few KiB; a larger one is not a config file.
CONFIG_READ_LIMIT_BYTES = 1024 * 1024


class LiveWriteError(Exception):
    """A write to /proc/sys failed; carries the key and the value."""

    def __init__(self, key: str, value: str, error: str) -> None:
        super().__init__(f"{key}: writing {value!r} failed: {error}")
        self.key, self.value, self.error = key, value, error


class UnreadableFile(Exception):
    """A configuration file that is not a regular file, or too large to be one."""


class FileState(NamedTuple):
    """What a rollback must put back: content, permission bits, owner and SELinux context."""

    data: bytes
    mode: int
    uid: int
    gid: int
    selinux_context: Optional[List[str]]


def read_config_bytes(path: str, limit_bytes: int = CONFIG_READ_LIMIT_BYTES) -> Optional[bytes]:
    """Content of a regular file, None when it does not exist.

    O_NONBLOCK: opening a FIFO planted where a file should be must not hang the run; it is then
    refused by the regular-file check, as are devices (/dev/zero would never end).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile(f"{path} is not a regular file")
        data = os.read(fd, limit_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > limit_bytes:
        raise UnreadableFile(f"{path} is larger than {limit_bytes} bytes")
    return data


def read_text(path: str) -> Optional[str]:
    """File content, or None when it does not exist."""
    data = read_config_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def read_live(proc_sys_root: str, keys: List[str]) -> Dict[str, Optional[str]]:
    """Normalised live values; None for keys this kernel (or namespace) does not have."""
    live: Dict[str, Optional[str]] = {}
    for key in keys:
        try:
            with open(proc_sys_path(proc_sys_root, key), "rb") as handle:
                live[key] = normalise_value(handle.read(READ_LIMIT_BYTES).decode("utf-8", "replace"))
        except (FileNotFoundError, NotADirectoryError):
            live[key] = None
    return live


def write_live(proc_sys_root: str, key: str, value: str) -> None:
    """One write(2) of the whole value, as the kernel parses a sysctl write in one go."""
    data = to_bytes(value + "\n")
    try:
        fd = os.open(proc_sys_path(proc_sys_root, key), os.O_WRONLY | os.O_TRUNC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as error:
        raise LiveWriteError(key, value, error.strerror or str(error)) from error
    if written != len(data):
        raise LiveWriteError(key, value, f"short write ({written} of {len(data)} bytes)")


def input_problems(params: Mapping[str, Any]) -> List[str]:
    """Every problem with the path, keys and values that the input alone shows, so one run names them all."""
    problems = []
    path_problem = path_syntax_problem(params["path"])
    if path_problem and params["path"] and os.path.isdir(params["path"]):  # the sysctl.d directory itself
        path_problem = f"path {params['path']!r} is a directory: give the drop-in file inside it"
    if path_problem:
        problems.append(path_problem)
    for key, value in sorted(params["settings"].items(), key=lambda item: str(item[0])):
        problem = key_problem(key) or value_problem(key, value)
        if problem:
            problems.append(f"settings[{key!r}] = {value!r}: {problem}")
    for key in sorted(params["skip"], key=str):
        problem = key_problem(key)
        if problem:
            problems.append(f"skip[{key!r}]: {problem}")
    if params["lock_timeout"] < 0:
        problems.append(f"lock_timeout = {params['lock_timeout']}: must be 0 or more seconds")
    if path_problem:
        return problems
    # A missing /etc/sysctl.d (hosts without procps) is created; a missing tree above it is a typo.
    directory = os.path.dirname(params["path"])
    if not os.path.isdir(directory) and not os.path.isdir(os.path.dirname(directory)):
        problems.append(f"path {params['path']}: neither its directory nor that directory's parent exists")
    return problems


def existing_file(module: AnsibleModule, path: str) -> Tuple[Optional[FileState], Optional[str]]:
    """(state of the file at `path` or None when there is none, why it must not be replaced or None)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"path {path}: {error.strerror or error}"
    link_target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
    problem = file_type_problem(path, info.st_mode, link_target)
    if problem:
        return None, problem
    try:
        data = read_config_bytes(path)
    except (UnreadableFile, OSError) as error:
        return None, f"path {path}: {to_native(error)}"
    if data is None:  # removed between lstat and open
        return None, None
    context = module.selinux_context(path) if module.selinux_enabled() else None
    return FileState(data, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, context), None


def host_problems(
    proc_sys_root: str, plan: Mapping[str, Mapping[str, Any]], managed: Mapping[str, str], apply_live: bool
) -> List[str]:
    """Keys that cannot be used here: absent (also with apply=false), or not writable while their value must change."""
    problems = []
    for key in sorted(managed):
        entry = plan[key]
        if entry["before"] is None:
            problems.append(
                f"settings[{key!r}]: {key} does not exist under {proc_sys_root} here; pass it in skip with a reason"
            )
        elif apply_live and entry["action"] == "set" and not os.access(proc_sys_path(proc_sys_root, key), os.W_OK):
            wanted = entry["after"]
            problems.append(f"{key} is read-only here (live {entry['before']}, wanted {wanted}); pass it in skip")
    return problems


def list_search_roots(search_roots: List[str]) -> Dict[str, List[str]]:
    """File names per sysctl.d directory; a missing directory simply holds nothing."""
    listing: Dict[str, List[str]] = {}
    for root in search_roots:
        try:
            listing[root] = sorted(os.listdir(root))
        except OSError:
            listing[root] = []
    return listing


def scan_conflicts(params: Mapping[str, Any], managed: Mapping[str, str]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Conflicting assignments in files applied after the drop-in, and warnings about the boot order."""
    notes = []
    order = precedence(
        params["path"], params["search_roots"], list_search_roots(params["search_roots"]), params["sysctl_conf"]
    )
    if not order.in_search_roots:
        notes.append(f"{params['path']} is not in the sysctl.d search roots: nothing applies it at boot")
    conflicts: List[Dict[str, Any]] = []
    if order.masked_by:
        conflicts.extend(masking_conflicts(managed, order.masked_by))
    parsed = []
    for later_path in order.later_files:
        if os.path.realpath(later_path) == os.path.realpath(params["path"]):
            continue
        try:
            text = read_text(later_path)
        except (UnreadableFile, OSError) as error:
            notes.append(f"{to_native(error)}: not checked for managed keys")
            continue
        if text is not None:
            parsed.append((later_path, parse_sysctl_conf(text)))
    conflicts.extend(find_conflicts(managed, parsed))
    tuned_found, tuned_notes = scan_tuned(params, managed)
    return conflicts + tuned_found, notes + tuned_notes


def read_tuned_text(path: str) -> Optional[str]:
    """A tuned file's text; a file that is not a regular one counts as missing (tuned could not read it either)."""
    try:
        return read_text(path)
    except (UnreadableFile, OSError):
        return None


def read_tuned_profile(profile_dirs: List[str], name: str) -> Optional[Tuple[str, str]]:
    """(path, text) of the first PROFILE/tuned.conf in tuned's lookup order."""
    for directory in profile_dirs:
        path = os.path.join(directory, name, "tuned.conf")
        text = read_tuned_text(path)
        if text is not None:
            return path, text
    return None


def scan_tuned(params: Mapping[str, Any], managed: Mapping[str, str]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Managed keys the active tuned profile sets to another value: conflicts where tuned's value stays."""
    active_path = params["tuned_active_profile"]
    names = active_profiles(
        read_tuned_text(active_path),
        read_tuned_text(os.path.join(os.path.dirname(active_path), "post_loaded_profile")),
    )
    if not names:
        return [], []
    if not any(glob.glob(pattern) for pattern in params["tuned_in_use_paths"]):
        return [], [
            f"tuned profile {' '.join(names)} is recorded in {active_path} but tuned is not in use: not checked"
        ]
    ordered, problems = profile_assignments(names, lambda name: read_tuned_profile(params["tuned_profile_dirs"], name))
    reapplies = reapply_sysctl(read_tuned_text(params["tuned_main_conf"]))
    conflicts, notes = tuned_conflicts(managed, ordered, reapplies, params["path"], params["tuned_reapplied_roots"])
    notes.extend(f"{problem}: check by hand that tuned does not set the managed keys" for problem in problems)
    return conflicts, notes


def conflict_sentence(conflict: Mapping[str, Any]) -> str:
    """One line an operator can act on: which file, which line, what it sets."""
    where, key = conflict["file"], conflict["key"]
    if conflict.get("reason") and conflict.get("line") is not None:
        return f"{where} line {conflict['line']} sets {key} = {conflict['value']}: {conflict['reason']}"
    if conflict.get("reason"):
        return f"{where} {conflict['reason']}: {key} from the drop-in is not applied at boot"
    return f"{where} line {conflict['line']} sets {key} = {conflict['value']} and is applied after the drop-in at boot"


def write_file_atomically(module: AnsibleModule, path: str, text: str) -> None:
    """Readers (systemd-sysctl at boot) never see a half-written file."""
    fd, tmp_path = tempfile.mkstemp(dir=module.tmpdir)
    with os.fdopen(fd, "wb") as handle:
        handle.write(to_bytes(text))
    os.chmod(tmp_path, 0o644)
    module.atomic_move(tmp_path, path)
    module.set_mode_if_different(path, "0644", False)


def put_back(module: AnsibleModule, path: str, old: FileState) -> None:
    """Replace `path` by the previous file: same bytes, mode, owner, context; renamed in, never half-written."""
    directory, name = os.path.split(path)
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".restore")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(old.data)
            handle.flush()
            os.fchown(handle.fileno(), old.uid, old.gid)
            os.fchmod(handle.fileno(), old.mode)
            os.fsync(handle.fileno())
        if old.selinux_context:
            module.set_context_if_different(tmp_path, old.selinux_context, False)
        os.rename(tmp_path, path)
    except BaseException:
        if os.path.lexists(tmp_path):
            os.unlink(tmp_path)
        raise


def restore_file(
    module: AnsibleModule, path: str, old: Optional[FileState], created_directory: Optional[str] = None
) -> str:
    """Put back the previous file, or remove the file (and a directory made for it) when there was none."""
    try:
        if old is None:
            if os.path.lexists(path):
                os.unlink(path)
            if created_directory:
                os.rmdir(created_directory)
                return "removed with its directory (did not exist before)"
            return "removed (did not exist before)"
        put_back(module, path, old)
        return "restored"
    except Exception as error:  # rollback must report, not mask, the first failure
        return f"RESTORE FAILED: {to_native(error)}"


def remove_backup(backup_file: str) -> str:
    """A rolled-back run leaves the directory as it found it: its backup copy goes too."""
    try:
        os.unlink(backup_file)
        return "removed"
    except OSError as error:
        return f"REMOVE FAILED: {to_native(error)}"


def restore_live(proc_sys_root: str, written: List[str], plan: Mapping[str, Mapping[str, Any]]) -> Dict[str, str]:
    """Write back the previous value of every key touched, newest first; report each outcome."""
    outcome = {}
    for key in reversed(written):
        previous = plan[key]["before"]
        try:
            write_live(proc_sys_root, key, previous)
        except LiveWriteError as error:
            outcome[key] = f"RESTORE FAILED: {error.error}"
            continue
        now = read_live(proc_sys_root, [key])[key]
        outcome[key] = "restored" if now == previous else f"RESTORE MISMATCH: kernel kept {now}"
    return outcome


def apply_live_values(
    proc_sys_root: str, plan: Mapping[str, Mapping[str, Any]], managed: Mapping[str, str]
) -> Tuple[List[str], Optional[str]]:
    """Write differing keys, read all back. Returns (written keys, failure sentence or None)."""
    written: List[str] = []
    for key in keys_to_write(plan):
        # Counted as written before the write: a rejected vector can still have changed its first numbers.
        written.append(key)
        try:
            write_live(proc_sys_root, key, managed[key])
        except LiveWriteError as error:
            kept = read_live(proc_sys_root, [key])[key]
            return (
                written,
                f"{key}: wrote {error.value!r}, the kernel refused it ({error.error}) and now holds {kept!r}",
            )
    mismatches = readback_mismatches(managed, read_live(proc_sys_root, sorted(managed)))
    if mismatches:
        return written, "; ".join(
            f"{key}: wrote {managed[key]!r}, the kernel kept {kept!r}" for key, kept in mismatches.items()
        )
    return written, None


def take_lock(module: AnsibleModule, params: Mapping[str, Any]) -> Optional[int]:
    """The host-wide lock, or None in check mode (nothing is written then)."""
    if module.check_mode:
        return None
    lock_file = params["lock_file"]
    try:
        return acquire(lock_file, params["lock_timeout"], holder_text(params["path"], os.getpid(), time.time()))
    except LockTimeout as error:
        module.fail_json(
            msg=f"{error}: another run is changing sysctls on this host (lock_timeout={params['lock_timeout']}); "
            "nothing was changed",
            lock_holder=error.holder,
        )
    except OSError as error:
        module.fail_json(msg=f"cannot take the lock lock_file={lock_file}: {to_native(error)}; nothing was changed")
    return None


def run(module: AnsibleModule) -> None:
    """Everything after the input checks, under the lock: plan, write, apply, read back, roll back."""
    params = module.params
    path, proc_sys_root, apply_live = params["path"], params["proc_sys_root"], params["apply"]
    old, path_problem = existing_file(module, path)
    if not path_problem and not params["force"]:
        path_problem = ownership_problem(
            path, params["search_roots"], None if old is None else old.data.decode("utf-8", "replace")
        )
    if path_problem:
        module.fail_json(msg=f"refusing the drop-in, nothing was changed: {path_problem}")

    skip = {key: str(reason) for key, reason in params["skip"].items()}
    managed = managed_settings(params["settings"], skip)
    try:
        live = read_live(proc_sys_root, sorted(set(params["settings"]) | set(skip)))
    except OSError as error:
        module.fail_json(msg=f"cannot read the live values, nothing was changed: {to_native(error)}")
    plan = plan_keys(params["settings"], skip, live, apply_live)
    problems = host_problems(proc_sys_root, plan, managed, apply_live)
    if problems:
        module.fail_json(msg="cannot apply here, nothing was changed: " + "; ".join(problems), keys=plan)

    comments = {key: str(text) for key, text in params["comments"].items() if key in managed}
    new_text = render_dropin(managed, comments, params["header"])
    old_text = None if old is None else old.data.decode("utf-8", "replace")
    conflicts, notes = scan_conflicts(params, managed)
    result: Dict[str, Any] = dict(
        path=path,
        keys=plan,
        conflicts=conflicts,
        file_changed=old is None or old.data != to_bytes(new_text),
        diff=dict(before=old_text or "", after=new_text, before_header=path, after_header=path),
    )
    if conflicts and params["conflicts"] == "fail":
        module.fail_json(
            msg="later sysctl files override managed keys at boot, nothing was changed: "
            + "; ".join(conflict_sentence(c) for c in conflicts),
            **result,
        )
    if params["conflicts"] != "ignore":
        notes = [conflict_sentence(conflict) for conflict in conflicts] + notes
    result["notes"] = notes
    for note in notes:
        module.warn(note)

    live_changed = apply_live and bool(keys_to_write(plan))
    result["changed"] = result["file_changed"] or live_changed
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    created_directory = None
    if result["file_changed"]:
        if params["backup"] and old is not None:
            result["backup_file"] = module.backup_local(path)
        try:
            if not os.path.isdir(os.path.dirname(path)):
                created_directory = os.path.dirname(path)
                os.mkdir(created_directory, 0o755)
            write_file_atomically(module, path, new_text)
        except Exception as error:
            result["rollback"] = {"file": restore_file(module, path, old, created_directory), "live": {}}
            roll_back_backup(result)
            module.fail_json(msg=f"writing {path} failed: {to_native(error)}", **result)

    if apply_live:
        written, failure = apply_live_values(proc_sys_root, plan, managed)
        if failure:
            live_outcome = restore_live(proc_sys_root, written, plan)
            file_outcome = restore_file(module, path, old, created_directory) if result["file_changed"] else "unchanged"
            result["rollback"] = {"file": file_outcome, "live": live_outcome}
            roll_back_backup(result)
            restored = ", ".join(f"{key} {outcome}" for key, outcome in live_outcome.items())
            module.fail_json(msg=f"{failure}. Rolled back: file {file_outcome}; live values: {restored}", **result)
    module.exit_json(**result)


def roll_back_backup(result: Dict[str, Any]) -> None:
    """Remove the backup a failed run made, and say so in the rollback report."""
    backup_file = result.pop("backup_file", None)
    if backup_file:
        result["rollback"]["backup_file"] = remove_backup(backup_file)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            force=dict(type="bool", default=False),
            settings=dict(type="dict", required=True),
            comments=dict(type="dict", default={}),
            header=dict(type="str"),
            skip=dict(type="dict", default={}),
            conflicts=dict(type="str", choices=["warn", "fail", "ignore"], default="warn"),
            backup=dict(type="bool", default=False),
            apply=dict(type="bool", default=True),
            proc_sys_root=dict(type="path", default="/proc/sys"),
            search_roots=dict(
                type="list",
                elements="path",
                aliases=["search_paths"],
                default=list(SYSCTL_D_ROOTS),
            ),
            sysctl_conf=dict(type="path", default="/etc/sysctl.conf"),
            lock_file=dict(type="path", default=DEFAULT_LOCK_FILE),
            lock_timeout=dict(type="int", default=60),
            tuned_active_profile=dict(type="path", default="/etc/tuned/active_profile"),
            tuned_main_conf=dict(type="path", default="/etc/tuned/tuned-main.conf"),
            tuned_profile_dirs=dict(type="list", elements="path", default=list(TUNED_PROFILE_DIRS)),
            tuned_reapplied_roots=dict(type="list", elements="path", default=list(TUNED_REAPPLIED_ROOTS)),
            tuned_in_use_paths=dict(type="list", elements="str", default=list(TUNED_IN_USE_PATHS)),
        ),
        supports_check_mode=True,
    )
    problems = input_problems(module.params)
    if problems:
        module.fail_json(msg="invalid input, nothing was changed: " + "; ".join(problems))
    lock_fd = take_lock(module, module.params)
    try:
        run(module)
    finally:
        if lock_fd is not None:
            release(lock_fd)


if __name__ == "__main__":
    main()

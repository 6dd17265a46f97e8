#!/usr/bin/python
# Copyright: netstack.tcp_tuning contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

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
    another value. A tuned profile (the profiles named in C(/etc/tuned/active_profile), the profiles they include,
    and C(post_loaded_profile)) is read only when tuned is in use. Its line is a conflict when tuned's value stays
    in force after boot, that is when C(reapply_sysctl = 0) in C(/etc/tuned/tuned-main.conf), or when the drop-in
    is not in C(/etc/sysctl.d) or C(/run/sysctl.d), the directories tuned re-applies after its profile; otherwise
    it is only noted.
  - Validates every key, value and the path before touching anything, and refuses a drop-in it must not replace
    (see O(path) and O(force)); nothing is changed when it refuses.
  - Takes an exclusive lock from reading the current state to the read-back, so two runs against one host at once
    cannot leave the file and the kernel disagreeing. The lock file is C(/run/netstack-tcp-tuning/sysctl_dropin.lock)
    (under O(root)), in a directory only root can create (mode 0700); a lock directory or file that is a link, is
    owned by another user or is not what it should be is refused, naming the path and the reason. Not taken in check
    mode, which changes nothing.
  - With O(state=absent) it undoes that work - removes the drop-in (only a file this collection wrote) and sets each
    key the drop-in held, live, back to what the host would hold after a reboot without it. That is the value of
    the sysctl.d file that would then win for the key (same boot order as the conflict check), else the value the
    key had before this collection first set it (recorded in the drop-in), else the kernel's boot default
    (O(boot_defaults), a constant of the kernel's init code, or C(net.core.rmem_max)/C(wmem_max) from
    C(rmem_default)/C(wmem_default)), else the key is left as it is and the reason says so.
    Values named in O(settings) win over all of these.
  - With O(state=present) the drop-in records, under its header, the live value each key had before this
    collection first set it (C(# before netstack.tcp_tuning) lines, kept from run to run). A key the drop-in set
    before and O(settings) no longer names goes back, live, to what a reboot would now give it - the sysctl.d file
    that then wins, else its recorded value - as with O(state=absent) for that key; its entry in C(keys) says so.
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
      - Without O(force), a path whose directory is not one of the sysctl.d directories (see O(root)), or an
        existing file that does not
        start with this collection's managed-by line, is refused.
      - Its directory is created (mode 0755) when missing, provided that directory's parent exists;
        a rollback removes it again.
    type: path
    required: true
  state:
    description:
      - V(present) writes the drop-in and applies its values.
      - V(absent) removes the drop-in and restores, live, every key it set (see the description); the file
        must start with this collection's managed-by line, also with O(force=true) - a file this collection
        did not write is never removed. A missing file is not an error - only keys named in O(settings) are
        then set.
      - With V(absent), O(apply=false) removes the file and leaves every live value as it is.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Replace the drop-in even when it is outside the sysctl.d directories or an existing file that this collection
        did not write (no managed-by line). Symbolic links, directories and other non-regular files are refused anyway,
        and so is a path outside O(root).
      - With O(state=absent) it only allows a drop-in outside the sysctl.d directories; a file without the managed-by
        line is still refused.
    type: bool
    default: false
  settings:
    description:
      - Dotted sysctl key to value. Every key must exist under C(/proc/sys) (see O(root)), also with O(apply=false)
        (pass absent keys in O(skip)).
      - Required with O(state=present). With O(state=absent), the values to restore instead of the computed ones
        (for example a key whose previous value nothing records); keys not in the drop-in are set too.
      - Values are strings of plain decimal integers within the kernel's int range (vectors separated by
        blanks); integers are accepted, booleans are refused.
      - C(net.ipv4.tcp_mem), C(net.ipv4.tcp_rmem), C(net.ipv4.tcp_wmem) and C(net.ipv4.udp_mem) need exactly three
        numbers, each at least 1, ordered min <= default (pressure) <= max.
        C(net.ipv4.ip_local_port_range) and C(net.ipv4.ping_group_range) need two, C(net.sctp.sctp_mem),
        C(net.sctp.sctp_rmem) and C(net.sctp.sctp_wmem) three, C(kernel.printk) and C(kernel.sem) four;
        every other key exactly one.
    type: dict
  comments:
    description:
      - Key to free text, written as C(# ) lines above that key. Keys not in O(settings) are ignored.
      - A newline starts another C(# ) line; any other control character (a NUL, a carriage return, a tab) is
        refused, in O(header) too.
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
  boot_defaults:
    description:
      - With O(state=absent), key to the value the kernel sets at boot on this host, used for a key no remaining
        sysctl.d file sets (the C(tcp_memory) role passes C(tcp_mem), C(tcp_rmem) and C(tcp_wmem) from the facts'
        C(boot_defaults)). Values are checked like O(settings). Ignored with O(state=present).
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
      - Keep a timestamped copy of the file it replaces or removes, in C(/var/backups/netstack-tcp-tuning) (under
        O(root); created mode 0700, checked like the lock's directory), out of every directory the boot reads. A run
        that fails and rolls back removes the copy again.
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
  root:
    description:
      - The host's root directory. Every host path the module reads or writes is taken under it - C(/proc/sys),
        the sysctl.d directories (C(/etc/sysctl.d), C(/run/sysctl.d), C(/usr/local/lib/sysctl.d),
        C(/usr/lib/sysctl.d), C(/lib/sysctl.d), in that precedence order), C(/etc/sysctl.conf), tuned's files
        (C(/etc/tuned/active_profile) and C(post_loaded_profile) beside it, C(/etc/tuned/tuned-main.conf), the
        profile directories C(/etc/tuned/profiles), C(/etc/tuned), C(/usr/lib/tuned/profiles), C(/usr/lib/tuned),
        and whether tuned is in use - C(/run/tuned/tuned.pid) or C(/etc/systemd/system/*.wants/tuned.service))
        and the lock directory C(/run/netstack-tcp-tuning).
      - O(path) must lie under it; without O(force) its directory must be one of the sysctl.d directories under it.
      - For a root file system other than the running one, for example an image being built or a chroot, with
        O(apply=false) - the drop-in is written into that tree for its next boot and no live value is touched. The
        keys must then exist under its C(proc/sys), so mount (or bind-mount) C(/proc) there first.
    type: path
    default: /
  lock_timeout:
    description:
      - Seconds to wait for another run to release the lock; the module then fails, naming the pid that holds
        it, without changing anything.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details: Reports the file diff and, per key, the live value and the value it would set (or restore).
  diff_mode:
    support: full
    details: The diff is the drop-in file before and after (empty after O(state=absent)).
  platform:
    support: full
    platforms: posix
    details: Linux only (reads and writes /proc/sys).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
notes:
  - Keys that are removed from O(settings) disappear from the file (and so does their record), but their live values
    are left as they are; O(state=absent) restores the keys the file holds when it runs.
  - Runs as root (become); without root only check mode runs, judging from the file modes whether a key is
    writable. See C(docs/threat-model.md) for the files it reads and writes and what it refuses.
  - In a non-initial network namespace (a container) a per-namespace key (C(tcp_rmem), C(tcp_wmem)...) started from
    the host's values when the namespace was created, not from the boot defaults, so the C(tcp_memory) role passes no
    O(boot_defaults) for them there; they go back to the sysctl.d file that sets them, else to the value recorded in
    the drop-in (the namespace's own, read when this collection first set the key), else they are left as they are.
  - The recorded previous value is the boot value where nothing changed the key at runtime before the first run; it is
    preferred to O(boot_defaults) because the facts' estimate runs a few percent high (the kernel frees memory after
    it sized C(tcp_mem), C(tcp_rmem) and C(tcp_wmem) at boot).
  - C(net.core.rmem_max)/C(wmem_max) boot at the same constant as C(rmem_default)/C(wmem_default)
    (SK_RMEM_MAX/SK_WMEM_MAX in C(net/core/sock.c)); the restore reads those when no sysctl.d file (and not the
    drop-in) sets them. A C(sysctl -w) of C(rmem_default) since boot would mislead it; name the value in O(settings)
    then.
  - O(state=absent) writes the live values first and removes the file last; a write the kernel refuses, or a
    removal that fails, puts back every live value written and leaves the file.
  - A write that fails before the new file replaces the old one (a full or read-only file system) changes nothing;
    the message says why (no space left, read-only) and C(changed) and C(file_changed) are false. With
    O(state=absent) a drop-in on a read-only file system is refused before any live value is written.
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

- name: Undo - remove the drop-in and restore each key it set to its value after a reboot without it
  netstack.tcp_tuning.sysctl_dropin:
    path: /etc/sysctl.d/99-netstack-tcp-memory.conf
    state: absent
    boot_defaults:
      net.ipv4.tcp_mem: "{{ ansible_facts.tcp_memory.boot_defaults.tcp_mem_pages | join(' ') }}"
      net.ipv4.tcp_rmem: "{{ ansible_facts.tcp_memory.boot_defaults.tcp_rmem_bytes | join(' ') }}"
      net.ipv4.tcp_wmem: "{{ ansible_facts.tcp_memory.boot_defaults.tcp_wmem_bytes | join(' ') }}"
"""

RETURN = r"""
path:
  description: The drop-in file.
  returned: always
  type: str
  sample: /etc/sysctl.d/99-netstack-tcp-memory.conf
changed:
  description:
    - Whether this run changed the drop-in or a live value. In check mode, as Ansible has it, whether a real run
      would. False when the run was refused; after a rollback, true only when something could not be put back.
  returned: always
  type: bool
  sample: true
file_changed:
  description:
    - Whether this run replaced (with O(state=absent) removed) the drop-in and left it so. False in check mode,
      when nothing differs, when the run was refused, and after a rollback that put the previous file back.
  returned: always
  type: bool
  sample: true
file_would_change:
  description:
    - Whether the rendered drop-in differs from the file on disk (with O(state=absent), whether there is a file to
      remove) - what the run does, or would have done in check mode or when refused after that was known.
  returned: success, and failures after the file was compared
  type: bool
  sample: true
live_would_change:
  description:
    - Whether a live value must be written (a key with action V(set) and O(apply=true)), whatever the run then did.
  returned: success, and failures after the live values were compared
  type: bool
  sample: true
diff:
  description:
    - The drop-in before and after (empty before when the file did not exist, empty after with O(state=absent)).
  returned: always
  type: dict
  sample: {before: "", after: "# Managed by netstack.tcp_tuning ...\n", before_header: /etc/sysctl.d/x.conf}
keys:
  description:
    - Per key the normalised live value before the run (null when the key does not exist here), the value
      after, the action (V(unchanged), V(set), V(skipped)) and why.
    - With O(state=absent) also C(source), where the restored value comes from - V(given) (O(settings)),
      V(file) (the sysctl.d file that then wins, named in C(reason)), V(recorded) (the value before this
      collection first set the key, recorded in the drop-in), V(boot_default) (O(boot_defaults)),
      V(kernel_constant), V(same_constant) (the twin C(net.core) default), or V(unknown) (left as it is).
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
  sample: /var/backups/netstack-tcp-tuning/99-netstack-tcp-memory.conf.2026-11-23T20:00:00Z.12345~
lock_holder:
  description: What the lock file records about the run that held it, when this run gave up waiting.
  returned: failure after O(lock_timeout)
  type: str
  sample: pid 4242 (sysctl_dropin writing /etc/sysctl.d/99-netstack-tcp-memory.conf, since 2026-12-01T21:00:00Z)
rollback:
  description: On failure, what was restored (file, live values, and the backup copy this run made, removed).
  returned: failure after something was written
  type: dict
  sample: {file: restored, backup_file: removed, live: {net.ipv4.tcp_rmem: restored}}
"""

import binascii
import errno
import glob
import json
import os
import stat
import tempfile
import time
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.journal import (
    decode_old,
    journal_entry,
    journal_path,
    remove_journal,
    write_journal,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.lock import (
    LockTimeout,
    Untrusted,
    acquire,
    holder_text,
    private_directory,
    release,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.paths import (
    HostPaths,
    file_type_problem,
    host_paths,
    in_roots,
    is_managed,
    ownership_problem,
    path_syntax_problem,
    root_problem,
    text_problem,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.plan import (
    keys_to_write,
    managed_settings,
    plan_keys,
    readback_mismatches,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.precedence import (
    assignment_key_problem,
    find_conflicts,
    masking_conflicts,
    parse_sysctl_conf,
    precedence,
    valid_assignments,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import render_dropin
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.tuned import (
    active_profiles,
    profile_assignments,
    reapply_sysctl,
    tuned_conflicts,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.undo import (
    SAME_BOOT_CONSTANT,
    SOURCE_BOOT_DEFAULT,
    SOURCE_FILE,
    boot_order_without,
    checked_records,
    dropin_keys,
    parse_records,
    plan_restore,
    records_to_keep,
    restore_value,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import (
    KNOWN_VECTOR_COUNTS,
    KeyRules,
    UnsafeKey,
    key_problem,
    normalise_value,
    proc_sys_path,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import (
    value_problem as generic_value_problem,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.tcp_memory_keys import (
    INT_MAX,
    MANAGED_KEYS,
    TCP_ADV_WIN_SCALE_DEFAULT,
    TCP_MODERATE_RCVBUF_DEFAULT,
    TRIPLE_KEYS,
)

# The generic writer's rules for this collection: the managed keys' arities and ordered triples (the key
# table), and the kernel's other well-known vectors.
KEY_RULES = KeyRules(
    counts={**KNOWN_VECTOR_COUNTS, **{key.name: key.arity for key in MANAGED_KEYS}},
    ordered_triples=frozenset(TRIPLE_KEYS),
    maximums={key.name: key.maximum for key in MANAGED_KEYS if key.maximum != INT_MAX},
)
# Values the kernel's init code sets, whatever the machine (net/ipv4/tcp_ipv4.c, tcp_sk_init():
# sysctl_tcp_moderate_rcvbuf = 1, sysctl_tcp_adv_win_scale = 1): what undo restores when nothing else says.
KERNEL_CONSTANT_DEFAULTS = {
    "net.ipv4.tcp_moderate_rcvbuf": str(TCP_MODERATE_RCVBUF_DEFAULT),
    "net.ipv4.tcp_adv_win_scale": str(TCP_ADV_WIN_SCALE_DEFAULT),
}


def value_problem(key: str, value: object) -> Optional[str]:
    """Why `value` cannot be written to `key` under this collection's rules, or None."""
    return generic_value_problem(key, value, KEY_RULES)


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


def read_config_bytes(path: str, limit_bytes: int = CONFIG_READ_LIMIT_BYTES, follow: bool = True) -> Optional[bytes]:
    """Content of a regular file, None when it does not exist.

    O_NONBLOCK: opening a FIFO planted where a file should be must not hang the run; it is then
    refused by the regular-file check, as are devices (/dev/zero would never end). `follow=False`
    (the drop-in itself) refuses a link swapped in after the lstat.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
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


# Opening a key's file: never through a link, never waiting on a FIFO (O_NONBLOCK), regular files only.
PROC_SYS_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_proc_sys(proc_sys: str, key: str, flags: int) -> int:
    """A descriptor on the /proc/sys file of `key` (checked by proc_sys_path), which must be a regular file."""
    path = proc_sys_path(proc_sys, key)
    fd = os.open(path, flags | PROC_SYS_OPEN_FLAGS)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file, not used as a sysctl", path)
    return fd


def read_live(proc_sys: str, keys: List[str]) -> Dict[str, Optional[str]]:
    """Normalised live values; None for keys this kernel (or namespace) does not have."""
    live: Dict[str, Optional[str]] = {}
    for key in keys:
        try:
            fd = open_proc_sys(proc_sys, key, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            live[key] = None
            continue
        try:
            live[key] = normalise_value(os.read(fd, READ_LIMIT_BYTES).decode("utf-8", "replace"))
        finally:
            os.close(fd)
    return live


def write_live(proc_sys: str, key: str, value: str) -> None:
    """One write(2) of the whole value, as the kernel parses a sysctl write in one go."""
    data = to_bytes(value + "\n")
    try:
        fd = open_proc_sys(proc_sys, key, os.O_WRONLY | os.O_TRUNC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
    except (OSError, UnsafeKey) as error:
        raise LiveWriteError(key, value, getattr(error, "strerror", None) or str(error)) from error
    if written != len(data):
        raise LiveWriteError(key, value, f"short write ({written} of {len(data)} bytes)")


class Refused(Exception):
    """The run must not change anything: the message says why, `fields` go into the result."""

    def __init__(self, msg: str, **fields: Any) -> None:
        super().__init__(msg)
        self.msg, self.fields = msg, fields


class Plan(NamedTuple):
    """What a run would do, found without changing anything (the plan step of either state)."""

    old: Optional[FileState]  # the drop-in on disk before the run
    new_text: Optional[str]  # the drop-in to write; None with state=absent (the file goes)
    keys: Dict[str, Dict[str, Any]]  # key -> {before, after, action, reason[, source]}
    targets: Dict[str, str]  # key -> the live value the execute step writes and reads back
    result: Dict[str, Any]  # path, keys, conflicts, notes, diff, file_would_change, live_would_change


def input_problems(params: Mapping[str, Any]) -> List[str]:
    """Every problem with the root, path, keys and values that the input alone shows, so one run names them all."""
    problems = []
    path_problem = path_syntax_problem(params["path"])
    if path_problem and params["path"] and os.path.isdir(params["path"]):  # the sysctl.d directory itself
        path_problem = f"path {params['path']!r} is a directory: give the drop-in file inside it"
    if path_problem:
        problems.append(path_problem)
    problem = root_problem(params["root"], params["path"] or "")
    if problem:
        problems.append(problem)
        path_problem = path_problem or problem
    if params["state"] == "present" and params["settings"] is None:
        problems.append("settings is required with state=present: give the sysctl key -> value dict to write")
    for option in ("settings", "boot_defaults"):
        for key, value in sorted((params[option] or {}).items(), key=lambda item: str(item[0])):
            problem = key_problem(key) or value_problem(key, value)
            if problem:
                problems.append(f"{option}[{key!r}] = {value!r}: {problem}")
    for key in sorted(params["skip"], key=str):
        problem = key_problem(key)
        if problem:
            problems.append(f"skip[{key!r}]: {problem}")
    texts = [("header", params["header"])]
    texts += [(f"comments[{key!r}]", text) for key, text in sorted(params["comments"].items(), key=lambda i: str(i[0]))]
    for name, text in texts:
        problem = text_problem(str(text)) if text is not None else None
        if problem:
            problems.append(f"{name} = {text!r}: {problem}")
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
        data = read_config_bytes(path, follow=False)
    except (UnreadableFile, OSError) as error:
        return None, f"path {path}: {to_native(error)}"
    if data is None:  # removed between lstat and open
        return None, None
    context = module.selinux_context(path) if module.selinux_enabled() else None
    return FileState(data, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, context), None


def writable_as_root(path: str) -> bool:
    """Whether root may write the /proc/sys file: as root, access(2) says; a check-mode run without root judges by
    the owner's write bit (the kernel shows a key that is read-only here, a global one in a container, as 0444)."""
    if os.geteuid() == 0:
        return os.access(path, os.W_OK)
    return bool(os.stat(path).st_mode & stat.S_IWUSR)


NOT_ROOT = (
    "sysctl_dropin runs as uid {uid}, not root: writing {path} and /proc/sys needs root, nothing was changed. "
    "Run it with become (ansible-playbook --become, or -e tcp_memory_become=true with netstack.tcp_tuning.tune "
    "and untune); check mode (--check --diff) shows the changes without root"
)


def unjudged_read_only(
    proc_sys: str, settings: Mapping[str, Any], skip: Mapping[str, str], live: Mapping[str, Optional[str]]
) -> Dict[str, str]:
    """Check mode without root: keys read-only here (mode 0444, a global key in a container), which the caller
    could not leave out (without root the facts cannot judge writability), are shown skipped, not refused."""
    return {
        key: "read-only here (mode 0444): left out of this check-mode preview run without root; as root, pass it "
        "in skip (the tcp_memory role does, tcp_memory_unsettable: skip)"
        for key in sorted(settings)
        if key not in skip and live.get(key) is not None and not writable_as_root(proc_sys_path(proc_sys, key))
    }


def host_problems(
    proc_sys: str, plan: Mapping[str, Mapping[str, Any]], managed: Mapping[str, str], apply_live: bool
) -> List[str]:
    """Keys that cannot be used here: absent (also with apply=false), or not writable while their value must change."""
    problems = []
    for key in sorted(managed):
        entry = plan[key]
        if entry["before"] is None:
            problems.append(
                f"settings[{key!r}]: {key} does not exist under {proc_sys} here; pass it in skip with a reason"
            )
        elif apply_live and entry["action"] == "set" and not writable_as_root(proc_sys_path(proc_sys, key)):
            wanted = entry["after"]
            problems.append(f"{key} is read-only here (live {entry['before']}, wanted {wanted}); pass it in skip")
    return problems


def list_search_roots(search_roots: Sequence[str]) -> Dict[str, List[str]]:
    """File names per sysctl.d directory; a missing directory simply holds nothing."""
    listing: Dict[str, List[str]] = {}
    for root in search_roots:
        try:
            listing[root] = sorted(os.listdir(root))
        except OSError:
            listing[root] = []
    return listing


def scan_conflicts(path: str, paths: HostPaths, managed: Mapping[str, str]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Conflicting assignments in files applied after the drop-in, and warnings about the boot order."""
    notes = []
    order = precedence(path, paths.search_roots, list_search_roots(paths.search_roots), paths.sysctl_conf)
    if not order.in_search_roots:
        notes.append(f"{path} is not in the sysctl.d search roots: nothing applies it at boot")
    conflicts: List[Dict[str, Any]] = []
    if order.masked_by:
        conflicts.extend(masking_conflicts(managed, order.masked_by))
    parsed = []
    for later_path in order.later_files:
        if os.path.realpath(later_path) == os.path.realpath(path):
            continue
        try:
            text = read_text(later_path)
        except (UnreadableFile, OSError) as error:
            notes.append(f"{to_native(error)}: not checked for managed keys")
            continue
        if text is not None:
            parsed.append((later_path, valid_assignments(parse_sysctl_conf(text))))
    conflicts.extend(find_conflicts(managed, parsed))
    tuned_found, tuned_notes = scan_tuned(path, paths, managed)
    return conflicts + tuned_found, notes + tuned_notes


def read_tuned_text(path: str) -> Optional[str]:
    """A tuned file's text; a file that is not a regular one counts as missing (tuned could not read it either)."""
    try:
        return read_text(path)
    except (UnreadableFile, OSError):
        return None


def read_tuned_profile(profile_dirs: Sequence[str], name: str) -> Optional[Tuple[str, str]]:
    """(path, text) of the first PROFILE/tuned.conf in tuned's lookup order."""
    for directory in profile_dirs:
        path = os.path.join(directory, name, "tuned.conf")
        text = read_tuned_text(path)
        if text is not None:
            return path, text
    return None


def scan_tuned(path: str, paths: HostPaths, managed: Mapping[str, str]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Managed keys the active tuned profile sets to another value: conflicts where tuned's value stays."""
    active_path = paths.tuned_active_profile
    names = active_profiles(
        read_tuned_text(active_path),
        read_tuned_text(os.path.join(os.path.dirname(active_path), "post_loaded_profile")),
    )
    if not names:
        return [], []
    if not any(glob.glob(pattern) for pattern in paths.tuned_in_use_paths):
        return [], [
            f"tuned profile {' '.join(names)} is recorded in {active_path} but tuned is not in use: not checked"
        ]
    ordered, problems = profile_assignments(names, lambda name: read_tuned_profile(paths.tuned_profile_dirs, name))
    reapplies = reapply_sysctl(read_tuned_text(paths.tuned_main_conf))
    conflicts, notes = tuned_conflicts(managed, ordered, reapplies, path, list(paths.tuned_reapplied_roots))
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


class NotWritten(Exception):
    """Writing failed before anything replaced the file: the directory is as it was."""


FILE_SYSTEM_REASONS = {
    errno.ENOSPC: "no space left on the file system",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def file_system_reason(error: OSError) -> str:
    """What an operator reads: 'no space left on the file system', not only '[Errno 28]'."""
    return FILE_SYSTEM_REASONS.get(error.errno, error.strerror or str(error))


def temp_prefix(path: str) -> str:
    """Hidden name prefix of this module's temporary files beside `path` (systemd-sysctl skips hidden files)."""
    return f".{os.path.basename(path)}."


def write_file_atomically(module: AnsibleModule, path: str, text: str) -> None:
    """Write a hidden temporary file beside `path`, flush it to disk and rename it over `path`: readers
    (systemd-sysctl at boot) never see a half-written file, and a failure before the rename (a full or
    read-only file system) leaves `path` as it was and raises NotWritten."""
    directory = os.path.dirname(path)
    tmp_path = None
    try:
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=temp_prefix(path), suffix=".new")
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(text))
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        if module.selinux_enabled():
            module.set_context_if_different(tmp_path, module.selinux_default_context(path), False)
        os.rename(tmp_path, path)
    except OSError as error:
        if tmp_path and os.path.lexists(tmp_path):
            os.unlink(tmp_path)
        raise NotWritten(f"writing {path} failed: {file_system_reason(error)} ({to_native(error)})") from error


def make_backup(path: str, old: FileState, backup_directory: str) -> str:
    """Copy the file about to be replaced or removed into `backup_directory` (created 0700, checked like the
    lock's), out of the directories the boot reads; returns the copy's path. Raises NotWritten."""
    name = f"{os.path.basename(path)}.{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.{os.getpid()}~"
    backup_path = os.path.join(backup_directory, name)
    try:
        private_directory(backup_directory, os.geteuid(), "backup directory")
        fd = os.open(backup_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, old.data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except Untrusted as error:
        raise NotWritten(f"backing up {path} failed: {error}") from error
    except OSError as error:
        if os.path.lexists(backup_path):
            os.unlink(backup_path)
        raise NotWritten(f"backing up {path} to {backup_path} failed: {file_system_reason(error)}") from error
    return backup_path


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


RESTORE_FAILED = "RESTORE FAILED"


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
        return f"{RESTORE_FAILED}: {to_native(error)}"


def remove_backup(backup_file: str) -> str:
    """A rolled-back run leaves the directory as it found it: its backup copy goes too."""
    try:
        os.unlink(backup_file)
        return "removed"
    except OSError as error:
        return f"REMOVE FAILED: {to_native(error)}"


def restore_live(proc_sys: str, written: List[str], plan: Mapping[str, Mapping[str, Any]]) -> Dict[str, str]:
    """Write back the previous value of every key touched, newest first; report each outcome."""
    outcome = {}
    for key in reversed(written):
        previous = plan[key]["before"]
        try:
            write_live(proc_sys, key, previous)
        except LiveWriteError as error:
            outcome[key] = f"{RESTORE_FAILED}: {error.error}"
            continue
        now = read_live(proc_sys, [key])[key]
        outcome[key] = "restored" if now == previous else f"RESTORE MISMATCH: kernel kept {now}"
    return outcome


def apply_live_values(
    proc_sys: str, plan: Mapping[str, Mapping[str, Any]], targets: Mapping[str, str]
) -> Tuple[List[str], Optional[str]]:
    """Write differing keys, read all back. Returns (written keys, failure sentence or None)."""
    written: List[str] = []
    for key in keys_to_write(plan):
        # Counted as written before the write: a rejected vector can still have changed its first numbers.
        written.append(key)
        try:
            write_live(proc_sys, key, targets[key])
        except LiveWriteError as error:
            kept = read_live(proc_sys, [key])[key]
            return (
                written,
                f"{key}: wrote {error.value!r}, the kernel refused it ({error.error}) and now holds {kept!r}",
            )
    mismatches = readback_mismatches(targets, read_live(proc_sys, sorted(targets)))
    if mismatches:
        return written, "; ".join(
            f"{key}: wrote {targets[key]!r}, the kernel kept {kept!r}" for key, kept in mismatches.items()
        )
    return written, None


def take_lock(module: AnsibleModule, lock_directory: str) -> Optional[int]:
    """The host-wide lock, or None in check mode (nothing is written then)."""
    if module.check_mode:
        return None
    timeout = module.params["lock_timeout"]
    try:
        return acquire(lock_directory, timeout, holder_text(module.params["path"], os.getpid(), time.time()))
    except LockTimeout as error:
        module.fail_json(
            msg=f"{error}: another run is changing sysctls on this host (lock_timeout={timeout}); nothing was changed",
            lock_holder=error.holder,
            changed=False,
            file_changed=False,
        )
    except Untrusted as error:
        module.fail_json(msg=f"cannot take the lock: {error}; nothing was changed", changed=False, file_changed=False)
    except OSError as error:
        module.fail_json(
            msg=f"cannot take the lock in {lock_directory}: {to_native(error)}; nothing was changed",
            changed=False,
            file_changed=False,
        )
    return None


def read_live_or_refuse(proc_sys: str, keys: Iterable[str]) -> Dict[str, Optional[str]]:
    try:
        return read_live(proc_sys, sorted(set(keys)))
    except (OSError, UnsafeKey) as error:
        raise Refused(f"cannot read the live values, nothing was changed: {to_native(error)}") from error


def dropin_contents(path: str, text: Optional[str], refusal: str) -> Tuple[List[str], Dict[str, str]]:
    """(keys, recorded previous values) of a managed drop-in. Every key and record is checked as a setting is
    (a key read from the file becomes a /proc/sys path, a record a live value); raises Refused naming each
    bad line."""
    assignments = parse_sysctl_conf(text or "")
    problems = [
        f"line {assignment.line}: key {assignment.key!r} is {problem}"
        for assignment in assignments
        for problem in [assignment_key_problem(assignment)]
        if problem
    ]
    keys = sorted({assignment.key for assignment in assignments})
    records, record_problems = checked_records(parse_records(text), keys, value_problem)
    problems.extend(record_problems)
    if problems:
        raise Refused(f"{refusal}, nothing was changed: {path} " + "; ".join(problems))
    return keys, records


def plan_present(module: AnsibleModule, params: Mapping[str, Any], paths: HostPaths) -> Plan:
    """state=present without changing anything: check the path and keys, read the file and the live values,
    render the new drop-in, find conflicts. Raises Refused when the run must not go on."""
    path, apply_live = params["path"], params["apply"]
    old, path_problem = existing_file(module, path)
    old_text = None if old is None else old.data.decode("utf-8", "replace")
    if not path_problem and not params["force"]:
        path_problem = ownership_problem(path, paths.search_roots, old_text)
    if path_problem:
        raise Refused(f"refusing the drop-in, nothing was changed: {path_problem}")

    old_keys, old_records = dropin_contents(path, old_text if is_managed(old_text) else None, "refusing the drop-in")
    skip = {key: str(reason) for key, reason in params["skip"].items()}
    live = read_live_or_refuse(paths.proc_sys, set(params["settings"]) | set(skip) | set(old_keys))
    if module.check_mode and os.geteuid() != 0:
        skip.update(unjudged_read_only(paths.proc_sys, params["settings"], skip, live))
    managed = managed_settings(params["settings"], skip)
    keys = plan_keys(params["settings"], skip, live, apply_live)
    problems = host_problems(paths.proc_sys, keys, managed, apply_live)
    if problems:
        raise Refused("cannot apply here, nothing was changed: " + "; ".join(problems), keys=keys)
    released = plan_released(
        path, paths, sorted(set(old_keys) - set(managed) - set(skip)), old_records, live, apply_live
    )
    keys.update(released)
    targets = dict(managed, **{key: entry["after"] for key, entry in released.items() if entry["action"] == "set"})

    comments = {key: str(text) for key, text in params["comments"].items() if key in managed}
    records = records_to_keep(managed, old_records, old_keys, live)
    new_text = render_dropin(managed, comments, params["header"], records)
    conflicts, notes = scan_conflicts(path, paths, managed)
    result: Dict[str, Any] = dict(
        path=path,
        keys=keys,
        conflicts=conflicts,
        file_would_change=old is None or old.data != to_bytes(new_text),
        live_would_change=apply_live and bool(keys_to_write(keys)),
        diff=dict(before=old_text or "", after=new_text, before_header=path, after_header=path),
    )
    if conflicts and params["conflicts"] == "fail":
        raise Refused(
            "later sysctl files override managed keys at boot, nothing was changed: "
            + "; ".join(conflict_sentence(c) for c in conflicts),
            **result,
        )
    if params["conflicts"] != "ignore":
        notes = [conflict_sentence(conflict) for conflict in conflicts] + notes
    result["notes"] = notes
    return Plan(old, new_text, keys, targets, result)


def plan_released(
    path: str,
    paths: HostPaths,
    released: List[str],
    recorded: Mapping[str, str],
    live: Mapping[str, Optional[str]],
    apply_live: bool,
) -> Dict[str, Dict[str, Any]]:
    """key -> plan entry for the keys the drop-in set before and no longer sets (a later run asked for fewer):
    each goes back to what a reboot would now give it, as an undo of that key would (a later file, the value
    recorded before this collection first set it), so the live value never outlives the file that set it. A key
    with neither, or read-only here, stays as it is, and says why."""
    if not released:
        return {}
    parsed, _notes = boot_order_assignments(path, paths)
    restores = {
        key: restore_value(key, {}, parsed, {}, live, released, recorded, KERNEL_CONSTANT_DEFAULTS) for key in released
    }
    plan = plan_restore(released, restores, {}, live, apply_live)
    for key, entry in plan.items():
        if entry["action"] == "set" and not writable_as_root(proc_sys_path(paths.proc_sys, key)):
            entry.update(
                action="skipped", after=entry["before"], reason=f"read-only here, {entry['reason']} not possible"
            )
        entry["reason"] = f"no longer in the drop-in: {entry['reason']}"
    return plan


def execute_present(module: AnsibleModule, params: Mapping[str, Any], paths: HostPaths, plan: Plan) -> Dict[str, Any]:
    """Write the drop-in, apply and read back the live values; on any failure roll back and fail."""
    path, result = params["path"], dict(plan.result)
    directory = os.path.dirname(path)
    created_directory = None if not result["file_would_change"] or os.path.isdir(directory) else directory
    begin_journal(module, paths, plan, created_directory, result)
    if result["file_would_change"]:
        try:
            if params["backup"] and plan.old is not None:
                result["backup_file"] = make_backup(path, plan.old, paths.backup_directory)
            if created_directory:
                os.mkdir(created_directory, 0o755)
            write_file_atomically(module, path, plan.new_text)
        except (NotWritten, OSError) as error:
            if created_directory and os.path.isdir(created_directory):
                os.rmdir(created_directory)
            reason = str(error) if isinstance(error, NotWritten) else f"{path}: {file_system_reason(error)}"
            failure = f"{reason}; the previous file is unchanged and no live value was written"
            fail_unchanged(module, result, failure, paths.lock_directory)
        result["file_changed"] = True
    if params["apply"]:
        written, failure = apply_live_values(paths.proc_sys, plan.keys, plan.targets)
        if failure:
            live_outcome = restore_live(paths.proc_sys, written, plan.keys)
            file_outcome = (
                restore_file(module, path, plan.old, created_directory) if result["file_changed"] else "unchanged"
            )
            fail_rolled_back(module, result, failure, file_outcome, live_outcome, paths.lock_directory)
    remove_journal(paths.lock_directory)
    return result


def begin_journal(
    module: AnsibleModule, paths: HostPaths, plan: Plan, created_directory: Optional[str], result: Dict[str, Any]
) -> None:
    """Write down what this run is about to change, so that a later run can put it back if this one is killed."""
    old = None if plan.old is None else plan.old._asdict()
    live_before = {key: plan.keys[key]["before"] for key in keys_to_write(plan.keys)} if module.params["apply"] else {}
    entry = journal_entry(module.params["path"], old, created_directory, live_before, os.getpid(), time.time())
    try:
        write_journal(paths.lock_directory, entry)
    except OSError as error:
        failure = f"cannot write the run's journal in {paths.lock_directory}: {file_system_reason(error)}"
        fail_unchanged(module, result, failure, None)


def recover_interrupted_run(module: AnsibleModule, paths: HostPaths) -> Optional[str]:
    """Put back what a killed run changed (its journal says what that was), before this run plans anything, and
    return the sentence saying so (None without a journal). In check mode only say that the next real run will."""
    location = journal_path(paths.lock_directory)
    try:
        try:
            data = read_config_bytes(location, follow=False)
        except PermissionError:
            if module.check_mode:  # without root (only check mode runs so) the lock's directory is closed
                return None
            raise
        if data is None:
            return None
        entry = json.loads(data)
        path, live_before, old = entry["path"], dict(entry["live"]), decode_old(entry)
        created_directory = entry.get("created_directory")
        since = f"pid {entry['pid']}, since {entry['since']}"
    except (UnreadableFile, OSError, ValueError, KeyError, TypeError, binascii.Error) as error:
        module.fail_json(msg=f"the journal {location} of an interrupted run is unreadable ({error}): remove it")
    problems = [problem for problem in (path_syntax_problem(path), root_problem(paths.root, path)) if problem]
    for key, value in sorted(live_before.items()):
        problem = key_problem(key) or (bool(value) and value_problem(key, value))
        if problem:
            problems.append(f"live[{key!r}] = {value!r}: {problem}")
    if problems:
        module.fail_json(msg=f"the journal {location} of an interrupted run is not valid: {'; '.join(problems)}")
    what = f"{path} and the live values of {', '.join(sorted(live_before)) or 'no key'}"
    if module.check_mode:
        return f"a previous run ({since}) was interrupted: the next real run first puts back {what}"
    failures = []
    for key, value in sorted(live_before.items()):
        if value:  # None or empty: nothing was known about it before
            try:
                write_live(paths.proc_sys, key, value)
            except LiveWriteError as error:
                failures.append(str(error))
    try:
        put_back_or_remove(module, path, old, created_directory)
    except (OSError, Refused) as error:
        failures.append(f"{path}: {getattr(error, 'msg', None) or to_native(error)}")
    remove_stale_temporaries(path)
    if failures:
        module.fail_json(
            msg=f"a previous run ({since}) was interrupted and putting back what it changed failed: "
            + "; ".join(failures)
            + f". Its journal {location} is kept for the next run"
        )
    remove_journal(paths.lock_directory)
    return f"a previous run ({since}) was interrupted: put back {what} as they were before it"


def put_back_or_remove(
    module: AnsibleModule, path: str, old: Optional[Mapping[str, Any]], created: Optional[str]
) -> None:
    """The drop-in as it was before an interrupted run: its previous bytes, or no file (only a managed one is
    removed) and no directory made for it."""
    if old is not None:
        put_back(module, path, FileState(old["data"], old["mode"], old["uid"], old["gid"], None))
        return
    if os.path.lexists(path):
        info = os.lstat(path)
        data = read_config_bytes(path, follow=False) if stat.S_ISREG(info.st_mode) else None
        if data is None or not is_managed(data.decode("utf-8", "replace")):
            raise Refused("is not a file this collection wrote: left as it is")
        os.unlink(path)
    if created and os.path.isdir(created) and not os.listdir(created):
        os.rmdir(created)


def remove_stale_temporaries(path: str) -> None:
    """The hidden temporary files (.NAME.*.new, .NAME.*.restore) a killed run left beside the drop-in."""
    directory, prefix = os.path.dirname(path), temp_prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        candidate = os.path.join(directory, name)
        if name.startswith(prefix) and name.endswith((".new", ".restore")) and os.path.isfile(candidate):
            os.unlink(candidate)


def removal_problem(params: Mapping[str, Any], paths: HostPaths, old_text: Optional[str]) -> Optional[str]:
    """Why state=absent must not remove the file at `path`, or None. A file without the managed-by
    line is never removed, also not with force; force only allows a path outside the search roots."""
    path = params["path"]
    if old_text is not None and not is_managed(old_text):
        return (
            f"path {path} exists and was not written by this collection (no managed-by header): "
            "state=absent never removes it, also not with force=true"
        )
    if not params["force"] and not in_roots(path, paths.search_roots):
        return ownership_problem(path, paths.search_roots, None)
    return None


def boot_order_assignments(path: str, paths: HostPaths) -> Tuple[List[Tuple[str, List[Any]]], List[str]]:
    """(file, assignments) of every file applied at boot once the drop-in is gone, in order, and notes
    about the files that could not be read."""
    order = boot_order_without(path, paths.search_roots, list_search_roots(paths.search_roots), paths.sysctl_conf)
    parsed, notes = [], []
    for conf_path in order:
        try:
            text = read_text(conf_path)
        except (UnreadableFile, OSError) as error:
            notes.append(f"{to_native(error)}: not read, so not taken into account for the values restored")
            continue
        if text is not None:
            parsed.append((conf_path, valid_assignments(parse_sysctl_conf(text))))
    return parsed, notes


def restore_problems(proc_sys: str, plan: Mapping[str, Mapping[str, Any]], given: Mapping[str, str]) -> List[str]:
    """Values that cannot be restored: a given key absent here, a value from a file or the facts the kernel
    would refuse, a read-only key that must change."""
    problems = []
    for key, entry in sorted(plan.items()):
        if key in given and entry["before"] is None:
            problems.append(f"settings[{key!r}]: {key} does not exist under {proc_sys} here")
            continue
        if entry["action"] != "set":
            continue
        if entry["source"] in (SOURCE_FILE, SOURCE_BOOT_DEFAULT):
            problem = value_problem(key, entry["after"])
            if problem:
                problems.append(f"{key}: {entry['reason']} gives {entry['after']!r}, which {problem}")
                continue
        if not writable_as_root(proc_sys_path(proc_sys, key)):
            problems.append(
                f"{key} is read-only here (live {entry['before']}, to restore {entry['after']}); pass it in skip"
            )
    return problems


def plan_absent(module: AnsibleModule, params: Mapping[str, Any], paths: HostPaths) -> Plan:
    """state=absent without changing anything: check the file may go, find each key's value after a reboot
    without it. Raises Refused when the run must not go on."""
    path, apply_live = params["path"], params["apply"]
    old, path_problem = existing_file(module, path)
    old_text = None if old is None else old.data.decode("utf-8", "replace")
    path_problem = path_problem or removal_problem(params, paths, old_text)
    if path_problem:
        raise Refused(f"refusing to remove the drop-in, nothing was changed: {path_problem}")

    _keys, recorded = dropin_contents(path, old_text, "refusing to remove the drop-in")
    keys, globs = dropin_keys(parse_sysctl_conf(old_text or ""))
    given = {key: normalise_value(str(value)) for key, value in (params["settings"] or {}).items()}
    boot_defaults = {key: normalise_value(str(value)) for key, value in params["boot_defaults"].items()}
    skip = {key: str(reason) for key, reason in params["skip"].items()}
    restored_keys = sorted(set(keys) | set(given))
    live = read_live_or_refuse(paths.proc_sys, set(restored_keys) | set(SAME_BOOT_CONSTANT.values()))
    parsed, notes = boot_order_assignments(path, paths)
    restores = {
        key: restore_value(key, given, parsed, boot_defaults, live, keys, recorded, KERNEL_CONSTANT_DEFAULTS)
        for key in restored_keys
    }
    plan = plan_restore(restored_keys, restores, skip, live, apply_live)
    problems = restore_problems(paths.proc_sys, plan, given)
    if problems:
        raise Refused("cannot restore here, nothing was changed: " + "; ".join(problems), keys=plan)
    notes.extend(
        f"{path} sets the pattern {pattern}: the keys it matched are not restored (name them in settings)"
        for pattern in globs
    )
    result: Dict[str, Any] = dict(
        path=path,
        keys=plan,
        conflicts=[],
        notes=notes,
        file_would_change=old is not None,
        live_would_change=apply_live and bool(keys_to_write(plan)),
        diff=dict(before=old_text or "", after="", before_header=path, after_header=f"{path} (removed)"),
    )
    targets = {key: entry["after"] for key, entry in plan.items() if entry["action"] in ("set", "unchanged")}
    return Plan(old, None, plan, targets, result)


def removal_blocker(path: str) -> Optional[str]:
    """Why the drop-in could not be removed (its directory on a read-only file system, or not writable), or
    None: known before any live value is written, so nothing needs undoing then."""
    directory = os.path.dirname(path)
    if os.access(directory, os.W_OK):
        return None
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        return f"{directory} is on a read-only file system"
    return f"{directory} is not writable (permission denied)"


def execute_absent(module: AnsibleModule, params: Mapping[str, Any], paths: HostPaths, plan: Plan) -> Dict[str, Any]:
    """Write the restored live values and read them back, then remove the file; on failure put back the live
    values (the file is left) and fail."""
    path, result = params["path"], dict(plan.result)
    if plan.old is not None:
        problem = removal_blocker(path)
        if problem:
            fail_unchanged(module, result, f"cannot remove {path}: {problem}; no live value was written")
    begin_journal(module, paths, plan, None, result)
    if result["file_would_change"] and params["backup"] and plan.old is not None:
        try:
            result["backup_file"] = make_backup(path, plan.old, paths.backup_directory)
        except NotWritten as error:
            fail_unchanged(module, result, f"{error}; no live value was written", paths.lock_directory)
    written: List[str] = []
    if result["live_would_change"]:
        written, failure = apply_live_values(paths.proc_sys, plan.keys, plan.targets)
        if failure:
            live_outcome = restore_live(paths.proc_sys, written, plan.keys)
            fail_rolled_back(module, result, failure, "unchanged", live_outcome, paths.lock_directory)
    if plan.old is not None:
        try:
            os.unlink(path)
        except OSError as error:
            live_outcome = restore_live(paths.proc_sys, written, plan.keys)
            failure = f"removing {path} failed: {to_native(error)}"
            fail_rolled_back(module, result, failure, "unchanged", live_outcome, paths.lock_directory)
        result["file_changed"] = True
    remove_journal(paths.lock_directory)
    return result


def fail_unchanged(
    module: AnsibleModule, result: Dict[str, Any], failure: str, journal_directory: Optional[str] = None
) -> None:
    """Fail before anything was changed (the file was never replaced, no live value written)."""
    backup_file = result.pop("backup_file", None)
    if backup_file:
        remove_backup(backup_file)
    if journal_directory:
        remove_journal(journal_directory)
    module.fail_json(msg=f"{failure}: nothing was changed", **{**result, "changed": False, "file_changed": False})


def fail_rolled_back(
    module: AnsibleModule,
    result: Dict[str, Any],
    failure: str,
    file_outcome: str,
    live_outcome: Mapping[str, str],
    journal_directory: str,
) -> None:
    """Fail after a rollback, saying what was put back. `file_changed` and `changed` then say what is still
    different from before the run: nothing, unless a restore failed (the journal then stays, for the next run)."""
    result["rollback"] = {"file": file_outcome, "live": dict(live_outcome)}
    backup_file = result.pop("backup_file", None)
    if backup_file:
        result["rollback"]["backup_file"] = remove_backup(backup_file)
    result["file_changed"] = file_outcome.startswith(RESTORE_FAILED)
    result["changed"] = result["file_changed"] or any(outcome != "restored" for outcome in live_outcome.values())
    restored = ", ".join(f"{key} {outcome}" for key, outcome in live_outcome.items())
    if not result["changed"]:
        remove_journal(journal_directory)
    module.fail_json(msg=f"{failure}. Rolled back: file {file_outcome}; live values: {restored}", **result)


def run(module: AnsibleModule, paths: HostPaths, recovered: Optional[str] = None) -> None:
    """Plan, then (unless check mode or nothing to do) execute; report what was done, or what would be.
    `recovered` says what was put back of an interrupted run first: a note, and the run changed something."""
    params = module.params
    absent = params["state"] == "absent"
    try:
        plan = plan_absent(module, params, paths) if absent else plan_present(module, params, paths)
    except Refused as refused:
        module.fail_json(msg=refused.msg, **{**refused.fields, "changed": False, "file_changed": False})
    if recovered:
        plan.result["notes"].insert(0, recovered)
    for note in plan.result["notes"]:
        module.warn(note)
    would_change = plan.result["file_would_change"] or plan.result["live_would_change"]
    if module.check_mode or not would_change:
        # Check mode: `changed` says what a real run would change (Ansible's convention); nothing did.
        module.exit_json(**plan.result, changed=would_change or bool(recovered), file_changed=False)
    plan = plan._replace(result={**plan.result, "file_changed": False})
    execute = execute_absent if absent else execute_present
    module.exit_json(**execute(module, params, paths, plan), changed=True)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            force=dict(type="bool", default=False),
            settings=dict(type="dict"),
            boot_defaults=dict(type="dict", default={}),
            comments=dict(type="dict", default={}),
            header=dict(type="str"),
            skip=dict(type="dict", default={}),
            conflicts=dict(type="str", choices=["warn", "fail", "ignore"], default="warn"),
            backup=dict(type="bool", default=False),
            apply=dict(type="bool", default=True),
            root=dict(type="path", default="/"),
            lock_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    if os.geteuid() != 0 and not module.check_mode:
        module.fail_json(msg=NOT_ROOT.format(uid=os.geteuid(), path=module.params["path"]), changed=False)
    problems = input_problems(module.params)
    if problems:
        module.fail_json(msg="invalid input, nothing was changed: " + "; ".join(problems), changed=False)
    paths = host_paths(module.params["root"])
    lock_fd = take_lock(module, paths.lock_directory)
    try:
        run(module, paths, recover_interrupted_run(module, paths))
    finally:
        if lock_fd is not None:
            release(lock_fd)


if __name__ == "__main__":
    main()

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which value a key goes back to once the drop-in is gone (state=absent), pure functions."""

from __future__ import annotations

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.precedence import (
    Assignment,
    parse_sysctl_conf,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import (
    MANAGED_LINE,
    RECORD_PREFIX,
    render_dropin,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.undo import (
    SOURCE_BOOT_DEFAULT,
    SOURCE_FILE,
    SOURCE_GIVEN,
    SOURCE_KERNEL_CONSTANT,
    SOURCE_RECORDED,
    SOURCE_SAME_CONSTANT,
    SOURCE_UNKNOWN,
    Restore,
    boot_order_without,
    checked_records,
    dropin_keys,
    parse_records,
    plan_restore,
    records_to_keep,
    restore_value,
    winning_assignment,
)
from ansible_collections.netstack.tcp_tuning.plugins.modules.sysctl_dropin import (
    KERNEL_CONSTANT_DEFAULTS,
    value_problem,
)

ROOTS = ["/nonexistent/etc/sysctl.d", "/nonexistent/run/sysctl.d", "/nonexistent/usr/lib/sysctl.d"]
DROPIN = "/nonexistent/etc/sysctl.d/99-netstack-tcp-memory.conf"
CONF = "/nonexistent/etc/sysctl.conf"
RMEM = "net.ipv4.tcp_rmem"
BOOT = {RMEM: "4096 131072 6291456", "net.ipv4.tcp_mem": "22500 30000 45000"}


def parsed(*files):
    return [(path, parse_sysctl_conf(text)) for path, text in files]


def test_boot_order_without_the_dropin_unmasks_a_same_named_vendor_file_and_ends_with_sysctl_conf():
    listing = {
        ROOTS[0]: ["99-netstack-tcp-memory.conf", "10-local.conf", "99-sysctl.conf"],
        ROOTS[2]: ["99-netstack-tcp-memory.conf", "50-default.conf", "README"],
    }
    # realpath: 99-sysctl.conf is Debian's link to /etc/sysctl.conf, listed once, last.
    links = {ROOTS[0] + "/99-sysctl.conf": CONF}
    order = boot_order_without(DROPIN, ROOTS, listing, CONF, realpath=lambda path: links.get(path, path))
    assert order == [
        ROOTS[0] + "/10-local.conf",
        ROOTS[2] + "/50-default.conf",
        ROOTS[2] + "/99-netstack-tcp-memory.conf",
        CONF,
    ]


def test_the_last_file_in_boot_order_wins_and_an_explicit_key_beats_a_later_glob():
    files = parsed(
        ("/a/10-early.conf", f"{RMEM} = 4096 87380 1000000\n"),
        ("/a/50-mid.conf", "net.ipv4.tcp_rmem=4096 87380 2000000\n"),
        ("/a/90-glob.conf", "net.ipv4.tcp_*mem = 1 2 3\n"),
    )
    path, assignment = winning_assignment(RMEM, files)
    assert (path, assignment.value, assignment.line) == ("/a/50-mid.conf", "4096 87380 2000000", 1)
    # Only a glob sets tcp_wmem: the glob wins.
    assert winning_assignment("net.ipv4.tcp_wmem", files)[1].value == "1 2 3"
    assert winning_assignment("net.core.rmem_max", files) is None


def test_a_later_sysctl_d_file_wins_over_the_kernel_boot_default():
    files = parsed(("/etc/sysctl.d/zz-local.conf", "# local\nnet/ipv4/tcp_rmem = 4096\t87380   8388608\n"))
    restore = restore_value(RMEM, {}, files, BOOT, {RMEM: "4096 131072 16777216"})
    assert restore == Restore(
        "4096 87380 8388608", SOURCE_FILE, "/etc/sysctl.d/zz-local.conf line 2, which then wins at boot"
    )


def test_without_a_file_the_boot_default_and_a_given_value_wins_over_both():
    files = parsed(("/etc/sysctl.d/zz-local.conf", f"{RMEM} = 4096 87380 8388608\n"))
    assert restore_value(RMEM, {}, [], BOOT, {}).value == BOOT[RMEM]
    assert restore_value(RMEM, {}, [], BOOT, {}).source == SOURCE_BOOT_DEFAULT
    given = restore_value(RMEM, {RMEM: "4096 65536 1048576"}, files, BOOT, {})
    assert (given.value, given.source) == ("4096 65536 1048576", SOURCE_GIVEN)


def test_kernel_constants_and_the_net_core_twin_default():
    live = {"net.core.rmem_default": "212992", "net.core.wmem_default": "212992"}
    moderate = restore_value(
        "net.ipv4.tcp_moderate_rcvbuf", {}, [], {}, live, kernel_constants=KERNEL_CONSTANT_DEFAULTS
    )
    assert (moderate.value, moderate.source) == ("1", SOURCE_KERNEL_CONSTANT)
    rmem_max = restore_value("net.core.rmem_max", {}, [], {}, live)
    assert (rmem_max.value, rmem_max.source) == ("212992", SOURCE_SAME_CONSTANT)
    # rmem_default set by a file, by the drop-in, or by the user: no longer the boot constant.
    files = parsed(("/etc/sysctl.d/10-x.conf", "net.core.rmem_default = 1000000\n"))
    assert restore_value("net.core.rmem_max", {}, files, {}, live).source == SOURCE_UNKNOWN
    assert restore_value("net.core.rmem_max", {}, [], {}, live, ["net.core.rmem_default"]).source == SOURCE_UNKNOWN
    given = {"net.core.rmem_default": "1000000"}
    assert restore_value("net.core.rmem_max", given, [], {}, live).source == SOURCE_UNKNOWN


def test_unknown_boot_value_is_left_and_says_how_to_name_one():
    restore = restore_value("net.core.optmem_max", {}, [], BOOT, {})
    assert restore.value is None and restore.source == SOURCE_UNKNOWN
    assert "tcp_memory_undo_values" in restore.origin


def test_dropin_keys_separates_globs():
    keys, globs = dropin_keys(
        [Assignment(2, RMEM, "1 2 3"), Assignment(3, "net.ipv4.conf.*.rp_filter", "2"), Assignment(4, RMEM, "1 2 3")]
    )
    assert keys == [RMEM] and globs == ["net.ipv4.conf.*.rp_filter"]


def test_plan_sets_what_differs_keeps_what_matches_and_skips_what_it_cannot_know():
    keys = [RMEM, "net.ipv4.tcp_wmem", "net.ipv4.tcp_mem", "net.core.optmem_max", "net.ipv4.udp_mem"]
    restores = {
        RMEM: Restore("4096 131072 6291456", SOURCE_BOOT_DEFAULT, "the kernel's boot default (boot_defaults)"),
        "net.ipv4.tcp_wmem": Restore("4096 16384 4194304", SOURCE_BOOT_DEFAULT, "the kernel's boot default"),
        "net.ipv4.tcp_mem": Restore("1 2 3", SOURCE_BOOT_DEFAULT, "the kernel's boot default"),
        "net.core.optmem_max": Restore(None, SOURCE_UNKNOWN, "not known"),
        "net.ipv4.udp_mem": Restore("1 2 3", SOURCE_BOOT_DEFAULT, "x"),
    }
    live = {
        RMEM: "4096 131072 16777216",
        "net.ipv4.tcp_wmem": "4096 16384 4194304",
        "net.ipv4.tcp_mem": None,
        "net.core.optmem_max": "131072",
        "net.ipv4.udp_mem": "9 9 9",
    }
    plan = plan_restore(keys, restores, {"net.ipv4.udp_mem": "global key, read-only here"}, live)
    assert plan[RMEM]["action"] == "set" and plan[RMEM]["after"] == "4096 131072 6291456"
    assert plan[RMEM]["reason"] == "restored to the kernel's boot default (boot_defaults)"
    assert plan["net.ipv4.tcp_wmem"]["action"] == "unchanged"
    assert plan["net.ipv4.tcp_mem"]["action"] == "skipped" and "absent here" in plan["net.ipv4.tcp_mem"]["reason"]
    assert plan["net.core.optmem_max"] == {
        "before": "131072",
        "after": "131072",
        "action": "skipped",
        "reason": "not known",
        "source": SOURCE_UNKNOWN,
    }
    assert plan["net.ipv4.udp_mem"]["action"] == "skipped"
    assert plan["net.ipv4.udp_mem"]["reason"] == "global key, read-only here"
    # apply=false: the file goes, live values stay until the next boot.
    assert plan_restore([RMEM], restores, {}, live, apply_live=False)[RMEM]["action"] == "skipped"


def test_records_round_trip_through_the_rendered_dropin_and_systemd_ignores_them():
    text = render_dropin({RMEM: "1 2 3"}, header="h", records={RMEM: "4096\t131072   6291456"})
    assert checked_records(parse_records(text), [RMEM], value_problem) == ({RMEM: "4096 131072 6291456"}, [])
    assert [assignment.key for assignment in parse_sysctl_conf(text)] == [RMEM]
    assert text.startswith(MANAGED_LINE + "\n")


def test_records_keep_old_ones_add_new_keys_and_never_record_a_value_this_collection_set():
    old_text = render_dropin({RMEM: "1 2 3", "net.core.rmem_max": "5"}, records={RMEM: "4 5 6"})
    managed = {RMEM: "7 8 9", "net.core.rmem_max": "5", "net.ipv4.tcp_wmem": "1 2 3"}
    live = {RMEM: "1 2 3", "net.core.rmem_max": "5", "net.ipv4.tcp_wmem": "4096 16384 4194304"}
    old_records, problems = checked_records(parse_records(old_text), [RMEM, "net.core.rmem_max"], value_problem)
    assert not problems
    kept = records_to_keep(managed, old_records, [RMEM, "net.core.rmem_max"], live)
    assert kept == {RMEM: "4 5 6", "net.ipv4.tcp_wmem": "4096 16384 4194304"}


def test_a_later_file_beats_the_record_which_beats_the_boot_default():
    files = parsed(("/etc/sysctl.d/zz-local.conf", f"{RMEM} = 4096 87380 8388608\n"))
    recorded = {RMEM: "4096 131072 5000000"}
    assert restore_value(RMEM, {}, files, BOOT, {}, (), recorded).source == SOURCE_FILE
    restore = restore_value(RMEM, {}, [], BOOT, {}, (), recorded)
    assert (restore.value, restore.source) == ("4096 131072 5000000", SOURCE_RECORDED)


def test_records_are_checked_like_settings_and_each_problem_names_its_line():
    """A record is applied as a live value: a reversed or zero triple, a key the drop-in does not set (a
    core_pattern pipe), a key that is no sysctl name, or a second record for one key are refused."""
    text = "\n".join(
        [
            MANAGED_LINE,
            f"{RECORD_PREFIX}{RMEM} = 6291456 87380 4096",
            f"{RECORD_PREFIX}net.ipv4.tcp_mem = 0 0 0",
            f"{RECORD_PREFIX}kernel.core_pattern = |/tmp/evil %p",
            f"{RECORD_PREFIX}net/../tmp/x = 1",
            f"{RECORD_PREFIX}net.ipv4.tcp_wmem = 4096 16384 4194304",
            f"{RECORD_PREFIX}net.ipv4.tcp_wmem = 4096 16384 6291456",
            f"{RMEM} = 4096 131072 7340032",
            "net.ipv4.tcp_mem = 1 2 3",
            "net.ipv4.tcp_wmem = 4096 16384 5242880",
        ]
    )
    keys = [RMEM, "net.ipv4.tcp_mem", "net.ipv4.tcp_wmem"]
    values, problems = checked_records(parse_records(text), keys, value_problem)
    assert values == {"net.ipv4.tcp_wmem": "4096 16384 4194304"}
    assert problems[0].startswith(f"line 2 ({RECORD_PREFIX}{RMEM} = 6291456 87380 4096): value")
    assert "ordered min <= default" in problems[0]
    assert problems[1].startswith("line 3") and "at least 1" in problems[1]
    assert problems[2].startswith("line 4") and "the drop-in does not set this key" in problems[2]
    assert problems[3].startswith("line 5") and "not a dotted sysctl name" in problems[3]
    assert problems[4] == (
        f"line 7 ({RECORD_PREFIX}net.ipv4.tcp_wmem = 4096 16384 6291456): "
        "a second record for net.ipv4.tcp_wmem (the first is line 6)"
    )
    assert len(problems) == 5

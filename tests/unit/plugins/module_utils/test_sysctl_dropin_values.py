# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import (
    KeyRules,
    UnsafeKey,
    key_problem,
    normalise_value,
    proc_sys_path,
    triple_problem,
    value_count,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import (
    value_problem as generic_value_problem,
)
from ansible_collections.netstack.tcp_tuning.plugins.modules.sysctl_dropin import KEY_RULES

ROOT = Path(__file__).resolve().parents[4]


def value_problem(key, value):
    """The writer under the rules the module passes in (the collection's key table)."""
    return generic_value_problem(key, value, KEY_RULES)


def test_normalise_value_collapses_kernel_tabs_and_padding():
    assert normalise_value("4096\t131072\t6291456\n") == "4096 131072 6291456"
    assert normalise_value("  1 ") == "1"


@pytest.mark.parametrize(
    "key, value",
    [
        ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
        ("net.ipv4.tcp_mem", "1 2 3"),
        ("net.core.rmem_max", "2147483647"),
        ("net.core.rmem_max", 16777216),
        ("net.ipv4.tcp_adv_win_scale", "-2"),
        ("net.ipv4.tcp_moderate_rcvbuf", "0"),
        ("net.ipv4.tcp_rmem", "4096 4096 4096"),  # equal numbers are ordered
        ("net.ipv4.tcp_mem", "1 1 2147483647"),
        ("net.ipv4.ip_local_port_range", "32768 60999"),
        ("net.ipv4.conf.all.rp_filter", "2"),  # keys outside the table take one integer
        ("net.ipv4.tcp_notsent_lowat", "4294967295"),  # an unsigned int: its default UINT_MAX, restored by undo
    ],
)
def test_acceptable_values(key, value):
    assert value_problem(key, value) is None


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("net.ipv4.tcp_moderate_rcvbuf", True, "boolean"),
        ("net.ipv4.tcp_rmem", "4096 131072", "needs 3 numbers"),
        ("net.ipv4.tcp_rmem", "4096 131072 1 1", "needs 3 numbers"),
        ("net.core.rmem_max", "2147483648", "int range"),
        ("net.ipv4.tcp_notsent_lowat", "4294967296", "int range"),
        ("net.core.rmem_max", "010", "plain decimal"),  # the kernel would read octal 8
        ("net.core.rmem_max", "0x10", "plain decimal"),
        ("net.core.rmem_max", "+5", "plain decimal"),
        ("net.core.rmem_max", "", "empty"),
        ("net.core.rmem_max", "1.5", "plain decimal"),
        ("net.core.rmem_max", None, "string"),
        ("net.core.rmem_max", ["1"], "string"),
        # A triple out of order, a zero, beyond INT_MAX
        ("net.ipv4.tcp_rmem", "6291456 87380 4096", "ordered min <= default/pressure <= max, got 6291456 87380 4096"),
        ("net.ipv4.tcp_wmem", "4096 65536 4096", "ordered"),
        ("net.ipv4.tcp_mem", "3 2 1", "ordered"),
        ("net.ipv4.udp_mem", "0 1 2", "at least 1"),
        ("net.ipv4.tcp_rmem", "-1 2 3", "at least 1"),
        ("net.ipv4.tcp_mem", "1 2 2147483648", "int range"),
        # item 3: two numbers for a one-number key, also when split by a newline
        ("net.ipv4.tcp_adv_win_scale", "1\n5", "needs 1 number, got 2"),
        ("net.core.rmem_max", "1 2", "needs 1 number, got 2"),
        ("net.ipv4.conf.all.rp_filter", "1 2", "needs 1 number, got 2"),
        ("net.ipv4.ip_local_port_range", "32768", "needs 2 numbers, got 1"),
    ],
)
def test_refused_values_say_why(key, value, fragment):
    assert fragment in value_problem(key, value)


@pytest.mark.parametrize(
    "key",
    [
        "tcp_rmem",
        "net..ipv4",
        "net.ipv4.tcp_rmem ",
        "net/ipv4/tcp_rmem",
        5,
        "",
        "net.ipv4.tcp_rmem\n",  # `$` matched before a final newline
        "net.ipv4.tcp_rmem\nnet.ipv4.tcp_wmem",
        "\nnet.ipv4.tcp_rmem",
    ],
)
def test_refused_keys(key):
    assert key_problem(key)


def test_proc_sys_path_maps_dots_to_directories():
    assert proc_sys_path("/proc/sys", "net.ipv4.tcp_rmem") == "/proc/sys/net/ipv4/tcp_rmem"


def test_the_triples_refuse_nothing_the_kernel_needs():
    assert triple_problem([1, 1, 1]) is None
    assert triple_problem([4096, 131072, 6291456]) is None


def test_value_counts_come_from_the_rules_passed_in_and_default_to_one():
    assert (
        value_count("net.ipv4.tcp_rmem", KEY_RULES) == 3 and value_count("net.ipv4.tcp_adv_win_scale", KEY_RULES) == 1
    )
    assert value_count("vm.swappiness", KEY_RULES) == 1 and KEY_RULES.counts["net.ipv4.udp_mem"] == 3
    # The writer is generic: other rules, other arities and triples.
    rules = KeyRules(counts={"net.sctp.sctp_mem": 3}, ordered_triples=frozenset({"net.sctp.sctp_mem"}))
    assert "needs 1 number" in generic_value_problem("net.ipv4.tcp_rmem", "4096 131072 6291456", rules)
    assert "ordered" in generic_value_problem("net.sctp.sctp_mem", "3 2 1", rules)


def test_the_drop_in_writer_does_not_import_the_collection_key_table():
    """The dependency points one way: the module entry point passes the key table into the generic writer."""
    for path in sorted((ROOT / "plugins/module_utils/dropin").glob("*.py")):
        assert "tcp_memory_keys" not in path.read_text(), path


@pytest.mark.parametrize("key", ["net.//.tmp.x", "net./tmp/x", "net...x", "net.ipv4.tcp_rmem\n", "a.b/../c", ".net.x"])
def test_a_key_that_is_no_sysctl_name_never_becomes_a_path(tmp_path, key):
    """A key read from a file (net/../tmp/x in a drop-in is net.//.tmp.x once sysctl.d's '/' form is swapped)
    used to be joined into //tmp/x, outside /proc/sys."""
    with pytest.raises(UnsafeKey, match="not a dotted sysctl name"):
        proc_sys_path(str(tmp_path / "proc/sys"), key)


def test_a_link_under_proc_sys_that_leads_out_is_refused(tmp_path):
    proc_sys = tmp_path / "proc/sys"
    (proc_sys / "net").mkdir(parents=True)
    (proc_sys / "net/ipv4").symlink_to(tmp_path)
    with pytest.raises(UnsafeKey, match="resolves outside"):
        proc_sys_path(str(proc_sys), "net.ipv4.tcp_rmem")
    assert proc_sys_path(str(proc_sys), "net.core.rmem_max") == str(proc_sys / "net/core/rmem_max")

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.precedence import (
    Assignment,
    effective_files,
    find_conflicts,
    masking_conflicts,
    normalise_conf_key,
    parse_sysctl_conf,
    precedence,
)

ROOTS = ["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"]
DROPIN = "/etc/sysctl.d/99-netstack-tcp-memory.conf"


def test_parse_follows_systemd_syntax():
    text = (
        "# comment\n"
        "; also a comment\n"
        "\n"
        "net.ipv4.tcp_rmem=4096\t87380   6291456\n"
        "-net.core.rmem_max = 1\n"
        "net/ipv4/tcp_wmem = 1 2 3\n"
        "not an assignment\n"
        "net.ipv4.conf.*.rp_filter = 2\n"
    )
    assert parse_sysctl_conf(text) == [
        Assignment(4, "net.ipv4.tcp_rmem", "4096 87380 6291456"),
        Assignment(5, "net.core.rmem_max", "1"),
        Assignment(6, "net.ipv4.tcp_wmem", "1 2 3"),
        Assignment(8, "net.ipv4.conf.*.rp_filter", "2"),
    ]


def test_slash_keys_swap_separators_like_sysctl():
    assert normalise_conf_key("net/ipv4/tcp_rmem") == "net.ipv4.tcp_rmem"
    # An interface name with a dot (VLAN eth0.100) keeps its dot in slash form.
    assert normalise_conf_key("net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"
    assert normalise_conf_key("net.ipv4.tcp_rmem") == "net.ipv4.tcp_rmem"


def test_a_name_in_etc_masks_the_same_name_in_usr_lib_and_files_sort_by_name():
    listing = {
        "/usr/lib/sysctl.d": ["50-default.conf", "99-protect-links.conf", "README"],
        "/etc/sysctl.d": ["50-default.conf", "10-local.conf"],
    }
    assert effective_files(ROOTS, listing) == [
        ("10-local.conf", "/etc/sysctl.d/10-local.conf"),
        ("50-default.conf", "/etc/sysctl.d/50-default.conf"),
        ("99-protect-links.conf", "/usr/lib/sysctl.d/99-protect-links.conf"),
    ]


def test_later_names_and_sysctl_conf_come_after_the_dropin_once():
    # Paths under /nonexistent: realpath() cannot follow this machine's real Debian symlink.
    roots = ["/nonexistent/etc/sysctl.d", "/nonexistent/usr/lib/sysctl.d"]
    listing = {
        roots[0]: ["99-netstack-tcp-memory.conf", "99-sysctl.conf", "zz-late.conf", "10-early.conf"],
        roots[1]: ["99-protect-links.conf"],
    }
    order = precedence(roots[0] + "/99-netstack-tcp-memory.conf", roots, listing, "/nonexistent/etc/sysctl.conf")
    assert order.later_files == [
        "/nonexistent/usr/lib/sysctl.d/99-protect-links.conf",
        "/nonexistent/etc/sysctl.d/99-sysctl.conf",
        "/nonexistent/etc/sysctl.d/zz-late.conf",
        "/nonexistent/etc/sysctl.conf",
    ]
    assert order.masked_by is None and order.in_search_roots


def test_symlink_to_sysctl_conf_is_reported_as_the_real_file(tmp_path):
    etc = tmp_path / "sysctl.d"
    etc.mkdir()
    conf = tmp_path / "sysctl.conf"
    conf.write_text("")
    (etc / "99-sysctl.conf").symlink_to(conf)
    order = precedence(str(etc / "99-netstack-tcp-memory.conf"), [str(etc)], {str(etc): ["99-sysctl.conf"]}, str(conf))
    assert order.later_files == [str(conf)]


def test_a_same_named_file_in_etc_masks_a_dropin_in_usr_lib():
    listing = {"/etc/sysctl.d": ["90-x.conf"], "/usr/lib/sysctl.d": ["90-x.conf"]}
    order = precedence("/usr/lib/sysctl.d/90-x.conf", ROOTS, listing, None)
    assert order.masked_by == "/etc/sysctl.d/90-x.conf"
    assert masking_conflicts({"net.ipv4.tcp_rmem": "1 2 3"}, order.masked_by)[0]["key"] == "net.ipv4.tcp_rmem"


def test_dropin_outside_the_search_roots_is_flagged():
    assert not precedence("/tmp/x/99-a.conf", ROOTS, {}, None).in_search_roots


def test_conflicts_name_file_line_and_value_and_ignore_equal_values_and_other_keys():
    managed = {"net.ipv4.tcp_rmem": "4096 131072 16777216", "net.core.rmem_max": "16777216"}
    later = [
        (
            "/etc/sysctl.conf",
            [
                Assignment(3, "net.ipv4.tcp_rmem", "4096 87380 6291456"),
                Assignment(4, "net.core.rmem_max", "16777216"),
                Assignment(5, "net.ipv4.ip_forward", "1"),
            ],
        ),
        ("/etc/sysctl.d/zz.conf", [Assignment(1, "net.core.*mem_max", "1")]),
    ]
    assert find_conflicts(managed, later) == [
        {"key": "net.ipv4.tcp_rmem", "file": "/etc/sysctl.conf", "line": 3, "value": "4096 87380 6291456"},
        {"key": "net.core.rmem_max", "file": "/etc/sysctl.d/zz.conf", "line": 1, "value": "1"},
    ]

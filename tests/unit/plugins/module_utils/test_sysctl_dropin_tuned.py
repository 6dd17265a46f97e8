# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.precedence import Assignment
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.tuned import (
    TunedAssignment,
    active_profiles,
    parse_tuned_profile,
    profile_assignments,
    reapply_sysctl,
    tuned_conflicts,
    tuned_would_override,
)

MANAGED = {"net.ipv4.tcp_rmem": "4096 131072 16777216", "net.core.rmem_max": "16777216"}
DROPIN = "/etc/sysctl.d/99-netstack-tcp-memory.conf"
# As /usr/lib/tuned/network-throughput/tuned.conf ships it (tuned 2.2x).
NETWORK_THROUGHPUT = """#
# tuned configuration
#

[main]
summary=Optimize for streaming network throughput, generally only necessary on older CPUs or 40G+ networks
include=throughput-performance

[sysctl]
# Increase kernel buffer size maximums.  Currently this seems only necessary at 40Gb speeds.
#
# The buffer tuning values below do not account for any potential hugepage allocation.
# Ensure that you do not oversubscribe system memory.
net.ipv4.udp_mem="3145728 4194304 16777216"
net.core.rmem_max=16777216
net.core.wmem_max=16777216
net.ipv4.tcp_rmem="4096 87380 16777216"
net.ipv4.tcp_wmem="4096 16384 16777216"
"""
THROUGHPUT_PERFORMANCE = """[main]
summary=Broadly applicable tuning

[cpu]
governor=performance

[sysctl]
kernel.sched_min_granularity_ns = 10000000
net.core.rmem_max = 8388608
"""


def profiles(tree):
    return lambda name: (f"/usr/lib/tuned/{name}/tuned.conf", tree[name]) if name in tree else None


def test_parse_reads_includes_and_only_sysctl_lines_with_quotes_removed():
    profile = parse_tuned_profile(NETWORK_THROUGHPUT)
    assert profile.includes == ["throughput-performance"]
    assert Assignment(17, "net.ipv4.tcp_rmem", "4096 87380 16777216") in profile.sysctl
    assert len(profile.sysctl) == 5
    # [cpu] governor is not a sysctl; a custom section counts when it says type=sysctl.
    assert parse_tuned_profile(THROUGHPUT_PERFORMANCE).sysctl[0].key == "kernel.sched_min_granularity_ns"
    custom = parse_tuned_profile("[main]\ninclude = a, b;c\n[net]\nnet.core.rmem_max=1\ntype=sysctl\n")
    assert custom == ([*"abc"], [Assignment(4, "net.core.rmem_max", "1")])


def test_reapply_sysctl_defaults_to_on_like_tuned():
    assert reapply_sysctl(None) is True
    assert reapply_sysctl("# reapply_sysctl = 0\ndaemon = 1\n") is True
    assert reapply_sysctl("reapply_sysctl = 0\n") is False
    assert reapply_sysctl("reapply_sysctl=false\n") is False


def test_active_profiles_lists_every_profile_then_the_post_loaded_one():
    assert active_profiles("virtual-guest network-throughput\n", "mine\n") == [
        "virtual-guest",
        "network-throughput",
        "mine",
    ]
    assert active_profiles(None, None) == []
    assert active_profiles("\n") == []


def test_includes_come_first_and_the_profile_overrides_them():
    tree = {"network-throughput": NETWORK_THROUGHPUT, "throughput-performance": THROUGHPUT_PERFORMANCE}
    ordered, problems = profile_assignments(["network-throughput"], profiles(tree))
    assert problems == []
    rmem_max = [item for item in ordered if item.assignment.key == "net.core.rmem_max"]
    assert [item.path for item in rmem_max] == [
        "/usr/lib/tuned/throughput-performance/tuned.conf",
        "/usr/lib/tuned/network-throughput/tuned.conf",
    ]
    conflicts, _notes = tuned_conflicts(MANAGED, ordered, reapplies=False, dropin_path=DROPIN)
    # The profile's own 16777216 wins over the parent's 8388608 and equals the managed value: no conflict.
    assert [conflict["key"] for conflict in conflicts] == ["net.ipv4.tcp_rmem"]


def test_missing_profiles_variables_and_loops_are_reported_not_raised():
    tree = {"a": "[main]\ninclude=b\n", "b": "[main]\ninclude=a,${f:virt_check:x:y}\n"}
    _ordered, problems = profile_assignments(["a", "gone"], profiles(tree))
    assert any("include loop" in problem for problem in problems)
    assert any("variable" in problem for problem in problems)
    assert any("gone: no tuned.conf" in problem for problem in problems)


def test_tuned_value_stays_when_reapply_is_off_or_the_dropin_is_not_reapplied():
    ordered = [TunedAssignment("/etc/tuned/mine/tuned.conf", Assignment(7, "net.ipv4.tcp_rmem", "4096 87380 6291456"))]
    conflicts, notes = tuned_conflicts(MANAGED, ordered, reapplies=False, dropin_path=DROPIN)
    assert conflicts == [
        {
            "key": "net.ipv4.tcp_rmem",
            "file": "/etc/tuned/mine/tuned.conf",
            "line": 7,
            "value": "4096 87380 6291456",
            "reason": "tuned applies its profile after boot (reapply_sysctl = 0 in tuned-main.conf)",
        }
    ]
    assert notes == []
    conflicts, _notes = tuned_conflicts(MANAGED, ordered, reapplies=True, dropin_path="/usr/lib/sysctl.d/99-x.conf")
    assert "does not re-apply" in conflicts[0]["reason"]


def test_reapplied_dropin_wins_and_is_only_noted():
    ordered = [TunedAssignment("/etc/tuned/mine/tuned.conf", Assignment(7, "net.ipv4.tcp_rmem", "4096 87380 6291456"))]
    conflicts, notes = tuned_conflicts(MANAGED, ordered, reapplies=True, dropin_path=DROPIN)
    assert conflicts == []
    assert notes == [
        "tuned: /etc/tuned/mine/tuned.conf line 7 sets net.ipv4.tcp_rmem = 4096 87380 6291456, "
        "but tuned re-applies the drop-in after its profile (reapply_sysctl)"
    ]
    same = [TunedAssignment("/x/tuned.conf", Assignment(1, "net.ipv4.tcp_rmem", "4096\t131072 16777216"))]
    assert tuned_conflicts(MANAGED, same, reapplies=False, dropin_path=DROPIN) == ([], [])


def test_conditional_sections_count_but_their_conditions_are_not_sysctl_keys():
    text = "[sysctl.arm]\ntype=sysctl\nuname_regex=aarch64\ncpuinfo_regex=thunderx\nkernel.numa_balancing=0\n"
    assert parse_tuned_profile(text).sysctl == [Assignment(5, "kernel.numa_balancing", "0")]


def test_modifiers_override_only_when_their_condition_holds_and_variables_are_unknown():
    assert tuned_would_override(">1000", "4000000") is False  # raise-only, already above
    assert tuned_would_override(">8000000", "4000000") is True
    assert tuned_would_override("<1000", "4000000") is True  # lower-only
    assert tuned_would_override("<8000000", "4000000") is False
    assert tuned_would_override(">4096 87380 1048576", "4096 131072 6291456") is True  # tuned writes it as given
    assert tuned_would_override("${f:calc_isolated_cores:2}", "1") is None
    ordered = [
        TunedAssignment("/p/tuned.conf", Assignment(3, "net.core.rmem_max", ">1000")),
        TunedAssignment("/p/tuned.conf", Assignment(4, "net.ipv4.tcp_rmem", "${rmem}")),
    ]
    conflicts, notes = tuned_conflicts(MANAGED, ordered, reapplies=False, dropin_path=DROPIN)
    assert conflicts == []
    assert notes == [
        "tuned: /p/tuned.conf line 4 sets net.ipv4.tcp_rmem = ${rmem}, "
        "a variable this check does not expand: check it by hand"
    ]

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.sysctl_dropin_values import (
    key_problem,
    normalise_value,
    proc_sys_path,
    value_problem,
)


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
        ("net.core.rmem_max", "010", "plain decimal"),  # the kernel would read octal 8
        ("net.core.rmem_max", "0x10", "plain decimal"),
        ("net.core.rmem_max", "+5", "plain decimal"),
        ("net.core.rmem_max", "", "empty"),
        ("net.core.rmem_max", "1.5", "plain decimal"),
        ("net.core.rmem_max", None, "string"),
        ("net.core.rmem_max", ["1"], "string"),
    ],
)
def test_refused_values_say_why(key, value, fragment):
    assert fragment in value_problem(key, value)


@pytest.mark.parametrize("key", ["tcp_rmem", "net..ipv4", "net.ipv4.tcp_rmem ", "net/ipv4/tcp_rmem", 5, ""])
def test_refused_keys(key):
    assert key_problem(key)


def test_proc_sys_path_maps_dots_to_directories():
    assert proc_sys_path("/proc/sys", "net.ipv4.tcp_rmem") == "/proc/sys/net/ipv4/tcp_rmem"

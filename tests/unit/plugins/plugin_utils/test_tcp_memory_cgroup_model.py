# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The model's memory cgroup check: the target's socket memory against the owning cgroup's headroom."""

from __future__ import annotations

import math
from typing import Any, Optional

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import (
    ModelInputError,
    resolve_workload,
)
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import recommend
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    MIB,
    host_of,
    make_facts,
)

# Every connection queues 64 KiB on the send side: 65536 x 1.25 / 4096 = 20 pages = 81920 bytes, plus
# 4700 bytes of socket slab (kernel 6.1) on cgroup v2.
WORKLOAD = {"active_fraction": 1, "rx_buffered_bytes": 0, "tx_buffered_bytes": 65536}
PER_CONNECTION_V2 = 81920 + 4700
# make_facts(): 8 CPUs, each holding up to 64 pages charged ahead (MEMCG_CHARGE_BATCH).
BATCH_BYTES = 8 * 64 * 4096


def cgroups(
    limit_bytes: Optional[int],
    other_bytes: int = 11000000,
    path: str = "/system.slice/run-load.scope",
    limit_cgroup: Optional[str] = None,
    limit_file: str = "memory.max",
    version: int = 2,
) -> dict[str, Any]:
    socket_limit = (
        None
        if limit_bytes is None
        else {
            "cgroup": limit_cgroup or path,
            "file": limit_file,
            "limit_bytes": limit_bytes,
            "other_bytes": other_bytes,
            "headroom_bytes": limit_bytes - other_bytes,
        }
    )
    owner = {"path": path, "version": version, "tcp_sockets": 2000, "processes": 4, "socket_limit": socket_limit}
    return {"memory_controller": f"v{version}", "owners": [owner], "scan": {"tcp_sockets_attributed": 2003}}


def run(cgroup_facts: Any, connections: int, **workload: Any) -> dict[str, Any]:
    facts = make_facts()
    if cgroup_facts is not ...:
        facts["cgroups"] = cgroup_facts
    return recommend(host_of(facts), resolve_workload(connections=connections, **dict(WORKLOAD, **workload)))


def cgroup_warnings(result: dict[str, Any]) -> list[str]:
    return [warning for warning in result["warnings"] if warning.startswith("memory cgroup ")]


@pytest.mark.parametrize("cgroup_facts", [..., None, {"memory_controller": "v2", "owners": []}, cgroups(None)])
def test_no_check_without_a_limited_owner(cgroup_facts):
    result = run(cgroup_facts, connections=1000)
    assert result["cgroup"] is None
    assert cgroup_warnings(result) == []


def test_scope_too_small_warns_with_the_unit_setting_to_raise():
    result = run(cgroups(64 * MIB), connections=1000)
    check = result["cgroup"]
    needed = 1000 * PER_CONNECTION_V2 + BATCH_BYTES
    assert check["needed_bytes"] == needed
    assert check["headroom_bytes"] == 64 * MIB - 11000000
    assert check["fits"] is False
    assert check["needed_limit_bytes"] == 11000000 + needed
    assert check["connections_within_headroom"] == (64 * MIB - 11000000 - BATCH_BYTES) // PER_CONNECTION_V2
    mib = math.ceil((11000000 + needed) / MIB)
    (warning,) = cgroup_warnings(result)
    assert warning == check["warning"]
    assert warning.startswith("memory cgroup /system.slice/run-load.scope owns 2000 of the 2003 TCP sockets")
    assert "memory.max of /system.slice/run-load.scope is 64.00 MiB" in warning
    assert f"systemctl set-property run-load.scope MemoryMax={mib}M" in warning
    assert f"at most {check['connections_within_headroom']} connections per instance" in warning
    assert "Raising tcp_mem does not help" in warning
    assert "never changes cgroup settings" in warning


def test_raising_the_limit_as_the_warning_says_fits():
    needed_limit = run(cgroups(64 * MIB), connections=1000)["cgroup"]["needed_limit_bytes"]
    raised = math.ceil(needed_limit / MIB) * MIB
    result = run(cgroups(raised), connections=1000)
    assert result["cgroup"]["fits"] is True
    assert result["cgroup"]["warning"] is None
    assert cgroup_warnings(result) == []


def test_a_target_within_the_headroom_fits():
    result = run(cgroups(64 * MIB), connections=100)
    assert result["cgroup"]["fits"] is True
    assert cgroup_warnings(result) == []


def test_memory_high_of_a_container_parent():
    facts = cgroups(
        200 * MIB,
        other_bytes=190 * MIB,
        path="/kubepods/pod1/ctr",
        limit_cgroup="/kubepods/pod1",
        limit_file="memory.high",
    )
    (warning,) = cgroup_warnings(run(facts, connections=1000))
    assert "memory.high of /kubepods/pod1 is 200.00 MiB" in warning
    assert "the memory limit (memory.high) of the container or unit in /kubepods/pod1" in warning


def test_memory_high_of_a_unit_names_memoryhigh():
    (warning,) = cgroup_warnings(run(cgroups(64 * MIB, limit_file="memory.high"), connections=1000))
    assert "MemoryHigh= of the systemd unit run-load.scope" in warning


def test_v1_counts_buffers_only_and_names_kmem_tcp():
    facts = cgroups(64 * MIB, other_bytes=0, path="/docker/abc", limit_file="memory.kmem.tcp.limit_in_bytes", version=1)
    result = run(facts, connections=1000)
    assert result["cgroup"]["needed_bytes"] == 1000 * 81920 + BATCH_BYTES
    (warning,) = cgroup_warnings(result)
    assert "memory.kmem.tcp.limit_in_bytes of /docker/abc" in warning
    assert "memory.kmem.tcp counts buffers only" in warning


def test_other_memory_over_the_limit_leaves_no_connection():
    result = run(cgroups(10 * MIB, other_bytes=12 * MIB), connections=10)
    assert result["cgroup"]["headroom_bytes"] < 0
    assert result["cgroup"]["connections_within_headroom"] == 0


@pytest.mark.parametrize(
    ("cgroup_facts", "message"),
    [
        ("v2", "facts.cgroups must be a dict or null, got 'v2'"),
        ({"owners": "x"}, "facts.cgroups.owners must be a list, got 'x'"),
        ({"owners": [{"path": "/a", "version": 3, "socket_limit": {}}]}, "facts.cgroups.owners[0].version must be"),
    ],
)
def test_bad_cgroup_facts_name_the_key(cgroup_facts, message):
    with pytest.raises(ModelInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run(cgroup_facts, connections=10)


# ---------------------------------------------------------------- what each limit does, sock_throttled, file pages


@pytest.mark.parametrize(
    ("limit_file", "said", "not_said"),
    [
        ("memory.high", "memory.high never refuses a charge: past it the task is throttled", "sk_stream_wait_memory"),
        ("memory.max", "from 6.1 receive charges in softirq are forced past memory.max", "never refuses"),
    ],
)
def test_the_warning_says_what_the_limit_does(limit_file, said, not_said):
    (warning,) = cgroup_warnings(run(cgroups(64 * MIB, limit_file=limit_file), connections=1000))
    assert said in warning
    assert not_said not in warning


def test_sock_throttled_is_surfaced_even_without_a_limit():
    facts = cgroups(None)
    facts["owners"][0]["sock_throttled"] = 17
    result = run(facts, connections=1000)
    assert any(w.startswith("memory.events sock_throttled = 17") for w in result["warnings"])
    quiet = cgroups(None)
    quiet["owners"][0]["sock_throttled"] = 0
    assert not any("sock_throttled" in w for w in run(quiet, connections=1000)["warnings"])


def test_reclaimable_file_memory_is_named_in_the_headroom():
    facts = cgroups(64 * MIB)
    facts["owners"][0]["socket_limit"]["file_bytes"] = 30 * MIB
    result = run(facts, connections=1000)
    assert result["cgroup"]["file_bytes"] == 30 * MIB
    (warning,) = cgroup_warnings(result)
    assert "30.00 MiB of file memory, left out" in warning

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""tcp_memory_facts cgroups=true on this machine's real kernel and cgroup hierarchy (v2, or v1 on a
hybrid host): the memory cgroup of a process holding loopback connections is named with its socket
count; where no cgroup hierarchy is mounted (`ip netns exec` remounts /sys without it) the facts
say so; the default call has no cgroups."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import cgroups as cg
from conn_holder import Holder  # tests/tools, on sys.path through conftest

MODULE = "netstack.tcp_tuning.tcp_memory_facts"
CONNECTIONS = 40
HOLDER = os.path.join(os.path.dirname(__file__), "..", "tools", "conn_holder.py")


def memory_cgroup_of(pid: int, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup", encoding="ascii") as handle:
        return cg.parse_proc_pid_cgroup(handle.read())["v1_memory" if controller == "v1" else "v2"]


def mounted_controller():
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        mounts = cg.parse_cgroup_mounts(handle.read())
    return "v1" if mounts["v1_memory"] else "v2" if mounts["v2"] else None


@pytest.fixture
def loopback_holder():
    """conn_holder in this network namespace (loopback only), stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to read every process's fds")
    process = subprocess.Popen(
        [sys.executable, HOLDER, "--stop-on-stdin-eof", "--connections", str(CONNECTIONS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = Holder(process, {})
    try:
        line = process.stdout.readline()
        assert line.startswith("READY "), process.stderr.read() if process.poll() is not None else line
        yield holder
    finally:
        holder.stop(timeout=60)


def test_the_holders_cgroup_owns_its_sockets(loopback_holder, run_ansible_module):
    controller = mounted_controller()
    if controller is None:
        pytest.skip("no cgroup hierarchy is mounted here")
    cgroups = run_ansible_module(MODULE, {"cgroups": True})["ansible_facts"]["tcp_memory"]["cgroups"]
    assert cgroups["memory_controller"] == controller
    expected_path = memory_cgroup_of(loopback_holder.process.pid, controller)
    owners = {owner["path"]: owner for owner in cgroups["owners"]}
    assert expected_path in owners, cgroups
    # both ends of every connection (plus the workers' listeners), held by the holder's processes
    assert owners[expected_path]["tcp_sockets"] >= 2 * CONNECTIONS
    assert owners[expected_path]["readable"] is True
    assert cgroups["scan"]["truncated"] is False


def test_without_a_cgroup_mount_the_facts_say_so(netns, run_ansible_module):
    cgroups = run_ansible_module(MODULE, {"cgroups": True}, netns_name=netns)["ansible_facts"]["tcp_memory"]["cgroups"]
    assert cgroups["memory_controller"] is None
    assert cgroups["owners"] == []
    assert any("no cgroup v2 or v1 memory hierarchy" in note for note in cgroups["notes"])


def test_the_default_call_has_no_cgroups(netns, run_ansible_module):
    assert run_ansible_module(MODULE, {}, netns_name=netns)["ansible_facts"]["tcp_memory"]["cgroups"] is None

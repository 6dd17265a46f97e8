# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The facts reader over a proc root with faults, and the module on a namespace's live /proc.

A FIFO, a link to /dev/zero, a huge file and absurd values where kernel files should
be. The module reads only the live /proc (no option points it elsewhere), so the reader it runs,
tcp_memory_gather.gather(), is called on the faulty tree in a child process of the target's Python,
inside a namespace and bounded (2 GiB of address space, 90 s): the code before the fix, which hung on
the FIFO and read /dev/zero until memory ran out, fails here instead of hurting the machine; what it
left running in the namespace is killed with the namespace. The last test runs the module itself.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.proc_trees.trees import materialize
from conftest import TARGET_PYTHON, ansible_adhoc, in_netns

MODULE = "netstack.tcp_tuning.tcp_memory_facts"
ADDRESS_SPACE_BYTES = 2 << 30
RUN_SECONDS = 90
# gather() on the tree, its facts or its ProcParseError as one JSON line (what the module turns into fail_json).
GATHER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.gather import gather
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import ProcParseError
try:
    facts = gather(**json.loads(sys.argv[2]))
except ProcParseError as exc:
    print(json.dumps({"failed": True, "file": exc.name, "msg": str(exc)}))
else:
    print(json.dumps({"ansible_facts": {"tcp_memory": facts}}))
"""


def run_bounded(netns_name: str, collections: str, args: dict) -> dict:
    """gather(**args) with the target's Python in the namespace, under prlimit --as and a deadline."""
    command = [*in_netns(netns_name), "prlimit", f"--as={ADDRESS_SPACE_BYTES}", TARGET_PYTHON, "-c", GATHER]
    try:
        out = subprocess.run(
            [*command, collections, json.dumps(args)], capture_output=True, text=True, timeout=RUN_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"gather({args}) did not finish in {RUN_SECONDS} s") from None
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def fault_root(tmp_path):
    """A copy of the normal host's fixture tree with its namespace links; returns (proc_root, sys_root)."""
    return materialize("normal_host", str(tmp_path))


def fails_naming(result: dict, path: str) -> str:
    assert result.get("failed") is True, result
    assert result["file"] == path, result
    assert result["msg"].startswith(path + ": "), result["msg"]
    return result["msg"]


def swap(path: str, make) -> None:
    os.unlink(path)
    make(path)


def write(text: str):
    def make(path: str) -> None:
        with open(path, "w") as handle:
            handle.write(text)

    return make


def test_the_intact_fixture_root_gathers(netns, collections_path, fault_root):
    proc_root, sys_root = fault_root
    result = run_bounded(netns, collections_path, {"proc_root": proc_root, "sys_root": sys_root})
    assert result.get("failed") is not True, result
    assert result["ansible_facts"]["tcp_memory"]["memory"]["mem_total_bytes"] == 2022992 * 1024


@pytest.mark.parametrize(
    ("relative", "make", "expected"),
    [
        ("sys/net/ipv4/tcp_rmem", os.mkfifo, "is a FIFO, not a regular file: refused"),
        ("meminfo", os.mkfifo, "is a FIFO, not a regular file: refused"),
        ("sys/net/ipv4/tcp_wmem", lambda path: os.symlink("/dev/zero", path), "is a character device"),
        ("zoneinfo", lambda path: os.symlink("/dev/zero", path), "is a character device"),
        ("sys/net/core/rmem_max", write("212992" + " " * (4 << 20) + "\n"), "larger than 1048576 bytes"),
        ("meminfo", write("MemTotal: 99999999999999999999 kB\n"), "MemTotal 102399999999999999998976 bytes is outside"),
        (
            "sys/net/ipv4/tcp_mem",
            write("1 2 99999999999999999\n"),
            "net.ipv4.tcp_mem value 99999999999999999 is outside",
        ),
    ],
    ids=["fifo-sysctl", "fifo-meminfo", "devzero-sysctl", "devzero-zoneinfo", "huge-sysctl", "memtotal", "tcp_mem"],
)
def test_a_fault_fails_the_module_naming_the_file(netns, collections_path, fault_root, relative, make, expected):
    proc_root, sys_root = fault_root
    path = os.path.join(proc_root, relative)
    swap(path, make)
    result = run_bounded(netns, collections_path, {"proc_root": proc_root, "sys_root": sys_root})
    assert expected in fails_naming(result, path)


def test_a_fifo_socket_table_fails_the_states_run(netns, collections_path, fault_root):
    proc_root, sys_root = fault_root
    path = os.path.join(proc_root, "net/tcp")
    swap(path, os.mkfifo)
    args = {"proc_root": proc_root, "sys_root": sys_root, "states": True, "connections_source": "proc"}
    assert "is a FIFO" in fails_naming(run_bounded(netns, collections_path, args), path)


def test_a_huge_sparse_cpu_list_fails_without_being_read(netns, collections_path, fault_root):
    proc_root, sys_root = fault_root
    path = os.path.join(sys_root, "devices/system/cpu/online")
    with open(path, "r+b") as handle:
        handle.truncate(16 << 30)  # 16 GiB of holes after "0-1": read whole, it exceeds the 2 GiB limit
    assert "larger than 1048576 bytes" in fails_naming(
        run_bounded(netns, collections_path, {"proc_root": proc_root, "sys_root": sys_root}), path
    )


def test_the_live_proc_of_the_namespace_still_gathers(netns, collections_path):
    wrapper = ("prlimit", f"--as={ADDRESS_SPACE_BYTES}")
    result = ansible_adhoc(MODULE, {"states": True}, collections_path, netns, timeout=RUN_SECONDS, wrapper=wrapper)
    assert result.get("failed") is not True, result
    assert result["ansible_facts"]["tcp_memory"]["connections"]["source"] == "netlink"

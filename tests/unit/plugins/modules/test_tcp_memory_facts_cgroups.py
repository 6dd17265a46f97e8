# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tcp_memory_facts module's cgroups option: off by default, bounded, failures name the file.

What the reader finds on v2, v1 and hostile fixture trees is tested on tcp_memory_cgroups.gather_cgroups with
the tree's root; here the module runs on this machine, or its gather_cgroups reads a broken tree.
"""

from __future__ import annotations

import functools
import os

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import cgroups as tcp_memory_cgroups
from ansible_collections.netstack.tcp_tuning.plugins.modules import tcp_memory_facts
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.cgroup_trees import trees as cgroup_trees
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules import module_args
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules.module_args import ExitJson, FailJson


def run_module(args):
    return module_args.run_module(tcp_memory_facts.main, args)


def test_default_call_reads_no_process(monkeypatch):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("the default call must not walk /proc/PID")

    monkeypatch.setattr(tcp_memory_cgroups, "scan_processes", forbidden)
    kind, result = run_module({})
    assert kind is ExitJson
    assert result["ansible_facts"]["tcp_memory"]["cgroups"] is None


def test_cgroups_of_this_host_within_the_bounds_given():
    kind, result = run_module({"cgroups": True, "cgroups_max_processes": 50, "cgroups_max_fds": 500})
    assert kind is ExitJson, result
    cgroups = result["ansible_facts"]["tcp_memory"]["cgroups"]
    assert cgroups["scan"]["max_processes"] == 50 and cgroups["scan"]["fds_read"] <= 500


def test_garbage_cgroup_file_fails_naming_it(tmp_path, monkeypatch):
    root = cgroup_trees.materialize("broken/memory_max_garbage", str(tmp_path))
    # The real reader on a broken tree instead of this host: what the module does with its error is under test.
    reader = functools.partial(tcp_memory_cgroups.gather_cgroups, proc_root=os.path.join(root, "proc"), fs_root=root)
    monkeypatch.setattr(tcp_memory_cgroups, "gather_cgroups", reader)
    kind, result = run_module({"cgroups": True})
    assert kind is FailJson
    assert result["file"].endswith("/sys/fs/cgroup/system.slice/run-load.scope/memory.max")
    assert result["msg"].startswith(result["file"] + ": expected a number of bytes or 'max', got '64M'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"cgroups_max_processes": 0}, "cgroups_max_processes must be between 1 and 65536, got 0"),
        ({"cgroups_max_fds": 1000001}, "cgroups_max_fds must be between 1 and 1000000, got 1000001"),
    ],
)
def test_out_of_range_bounds_fail(args, message):
    kind, result = run_module(dict({"cgroups": True}, **args))
    assert kind is FailJson
    assert result["msg"] == message

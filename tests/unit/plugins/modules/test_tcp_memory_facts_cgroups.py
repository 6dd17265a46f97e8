# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tcp_memory_facts module's cgroups option: off by default, bounded, failures name the file."""

from __future__ import annotations

import os

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils import tcp_memory_cgroups
from ansible_collections.netstack.tcp_tuning.plugins.modules import tcp_memory_facts
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.cgroup_trees import trees as cgroup_trees
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.proc_trees.trees import materialize
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules import module_args
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules.module_args import ExitJson, FailJson


def run_module(args):
    return module_args.run_module(tcp_memory_facts.main, args)


def host_with_cgroups(tmp_path, cgroup_tree):
    """A normal host's /proc and /sys with a cgroup tree's processes and cgroup files on top."""
    proc_root, sys_root = materialize("normal_host", str(tmp_path))
    cgroup_trees.overlay(cgroup_tree, os.path.dirname(proc_root))
    return proc_root, sys_root


def test_default_call_reads_no_process(tmp_path, monkeypatch):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("the default call must not walk /proc/PID")

    monkeypatch.setattr(tcp_memory_cgroups, "scan_processes", forbidden)
    proc_root, sys_root = host_with_cgroups(tmp_path, "v2_scope")
    kind, result = run_module({"proc_root": proc_root, "sys_root": sys_root})
    assert kind is ExitJson
    assert result["ansible_facts"]["tcp_memory"]["cgroups"] is None


def cgroups_of(tmp_path, cgroup_tree):
    """The module's cgroups facts (cgroups=true) on a normal host with `cgroup_tree` on top."""
    proc_root, sys_root = host_with_cgroups(tmp_path, cgroup_tree)
    kind, result = run_module({"proc_root": proc_root, "sys_root": sys_root, "cgroups": True})
    assert kind is ExitJson, result
    return result["ansible_facts"]["tcp_memory"]["cgroups"]


def test_cgroups_option_names_the_limited_cgroup(tmp_path):
    cgroups = cgroups_of(tmp_path, "v2_scope")
    assert cgroups["memory_controller"] == "v2"
    first = cgroups["owners"][0]
    assert (first["path"], first["memory_max_bytes"], first["socket_headroom_bytes"]) == (
        "/system.slice/run-load.scope",
        67108864,
        56108864,
    )


def test_v1_host(tmp_path):
    cgroups = cgroups_of(tmp_path, "v1_hybrid")
    assert cgroups["memory_controller"] == "v1"
    assert cgroups["owners"][0]["kmem_tcp_limit_bytes"] == 16777216


def test_garbage_cgroup_file_fails_naming_it(tmp_path):
    proc_root, sys_root = host_with_cgroups(tmp_path, "broken/memory_max_garbage")
    kind, result = run_module({"proc_root": proc_root, "sys_root": sys_root, "cgroups": True})
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
def test_out_of_range_bounds_fail(tmp_path, args, message):
    proc_root, sys_root = host_with_cgroups(tmp_path, "v2_scope")
    kind, result = run_module(dict({"proc_root": proc_root, "sys_root": sys_root, "cgroups": True}, **args))
    assert kind is FailJson
    assert result["msg"] == message

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tcp_memory_facts module: arguments, documentation, exit and failure paths.

The module reads only the live /proc and /sys (no option points it elsewhere): a run here reads this
machine. Fixture trees are read by calling tcp_memory_gather.gather() with their roots - directly in the
module_utils tests, and here through the module's own gather name where the failure path is under test.
"""

from __future__ import annotations

import functools

import pytest
import yaml
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import gather as tcp_memory_gather
from ansible_collections.netstack.tcp_tuning.plugins.modules import tcp_memory_facts
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.proc_trees.trees import materialize
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules import module_args
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules.module_args import ExitJson, FailJson

TEST_ONLY_OPTIONS = {"proc_root", "sys_root", "root"}


def run_module(args):
    return module_args.run_module(tcp_memory_facts.main, args)


def test_returns_facts_of_this_host_and_never_changes():
    kind, result = run_module({"_ansible_check_mode": True})
    assert kind is ExitJson
    assert result["changed"] is False
    facts = result["ansible_facts"]["tcp_memory"]
    assert facts["schema_version"] == 1
    assert facts["status"]["level"] in ("ok", "above_min", "pressure", "at_max", "unknown")
    assert set(facts["socket_memory"]) == {
        "mem_pcpu_rsv_pages",
        "bypass_prot_mem",
        "per_mss_bytes",
        "initial_sndbuf_bytes",
        "probe_mss_bytes",
    }


@pytest.mark.parametrize("option", sorted(TEST_ONLY_OPTIONS))
def test_no_option_points_the_module_at_another_tree(option):
    kind, result = run_module({option: "/tmp"})
    assert kind is FailJson
    assert "Unsupported parameters" in result["msg"] and option in result["msg"]


def test_garbage_file_fails_with_a_message_naming_it(tmp_path, monkeypatch):
    proc_root, sys_root = materialize("broken/sockstat_truncated", str(tmp_path))
    # The real gather, reading a broken tree instead of /proc: what the module does with its error is under test.
    monkeypatch.setattr(
        tcp_memory_facts, "gather", functools.partial(tcp_memory_gather.gather, proc_root=proc_root, sys_root=sys_root)
    )
    kind, result = run_module({})
    assert kind is FailJson
    assert result["msg"].startswith(proc_root + "/net/sockstat: line 2 ")
    assert result["file"] == proc_root + "/net/sockstat"


def test_forced_netlink_failure_fails_cleanly(monkeypatch):
    from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import diag as tcp_memory_diag

    def refuse(**_):
        raise tcp_memory_diag.DiagUnavailable("cannot open a NETLINK_SOCK_DIAG socket: denied")

    monkeypatch.setattr(tcp_memory_diag, "dump_netlink", refuse)
    monkeypatch.setattr(tcp_memory_gather, "fast_state_counts", lambda *_args: None)
    kind, result = run_module({"states": True, "connections_source": "netlink"})
    assert kind is FailJson
    assert result["msg"] == "connections_source=netlink: cannot open a NETLINK_SOCK_DIAG socket: denied"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"top_sockets": -1}, "top_sockets must be between 0 and 1000, got -1"),
        ({"calibrate": True, "calibrate_sample": 99}, "calibrate_sample must be between 100 and 1000000, got 99"),
        ({"calibrate_sample": 1000001}, "calibrate_sample must be between 100 and 1000000, got 1000001"),
        ({"blocked_writers_samples": 0}, "blocked_writers_samples must be between 1 and 50, got 0"),
        ({"blocked_writers_interval_ms": 5}, "blocked_writers_interval_ms must be between 10 and 2000, got 5"),
        ({"blocked_writers_samples": 50, "blocked_writers_interval_ms": 2000}, "window"),
        ({"connections_source": "bpf"}, "value of connections_source must be one of: auto, netlink, proc"),
    ],
)
def test_out_of_range_options_fail(args, message):
    kind, result = run_module(args)
    assert kind is FailJson
    assert message in result["msg"]


def test_documentation_matches_the_argument_spec():
    documented = yaml.safe_load(tcp_memory_facts.DOCUMENTATION)["options"]
    spec = tcp_memory_facts.argument_spec()
    assert set(documented) == set(spec)
    assert not TEST_ONLY_OPTIONS & set(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name].get("choices") == option.get("choices"), name
    yaml.safe_load(tcp_memory_facts.EXAMPLES)
    yaml.safe_load(tcp_memory_facts.RETURN)

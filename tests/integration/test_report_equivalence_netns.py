# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 13 item 3: the report playbook, now built on the role's read-only entry point
(tasks_from: measure), writes the same tcp-memory-report.json as the report before it.

The previous report is frozen unchanged in fixtures/report-before (report.yml and its templates, as of
commit de72d91). Both run against the same fresh network namespace with the same target and workload,
one right after the other; the JSON must be equal, every field of every host and of the summary.

One field is masked: each host's used_pages, the TCP memory in use now. /proc/net/sockstat's "mem" is
host-wide (the kernel's tcp_memory_allocated, not per namespace), so it moves with whatever else this
machine runs between the two reports. Every other field comes from per-namespace values, the host's
MemTotal and the model, and must not move.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from conftest import real_kernel_ready
from test_playbooks_netns import output, read_report, run_playbook

pytestmark = pytest.mark.skipif(bool(real_kernel_ready()), reason=real_kernel_ready() or "ready")

FROZEN_REPORT = Path(__file__).resolve().parent / "fixtures" / "report-before" / "report.yml"

# The same target and workload for both reports; together they take every path the report's JSON has:
# a recommendation with rows, every workload variable passed through, a target that does not fit (the
# filter's message kept as the host's finding) and an input the filter rejects (a finding too).
CASES = {
    "fits-with-an-override": {
        "tcp_memory_connections": 1000,
        "tcp_memory_overrides": {"net.ipv4.tcp_rmem": "4096 131072 7340032"},
    },
    "every-workload-variable": {
        "tcp_memory_connections": 20000,
        "tcp_memory_profile": "bulk_throughput",
        "tcp_memory_active_fraction": 0.5,
        "tcp_memory_rx_buffered_bytes": 65536,
        "tcp_memory_tx_buffered_bytes": 32768,
        "tcp_memory_bandwidth_bps": 1000000000,
        "tcp_memory_rtt_ms": 20,
        "tcp_memory_memory_fraction": 0.2,
        "tcp_memory_message_bytes": 8192,
        "tcp_memory_allow_decrease": True,
        "tcp_memory_best_effort": True,
        "tcp_memory_allow_above_mem_total": True,
        "tcp_memory_cgroups": False,
    },
    "does-not-fit": {"tcp_memory_connections": 2000000000},
    "override-refused": {
        "tcp_memory_connections": 1000,
        "tcp_memory_overrides": {"net.ipv4.tcp_rmem": "6291456 87380 4096"},
    },
}


def report_json(playbook: str, extra_vars: Dict[str, Any], collections: str, netns: str, directory: Path) -> dict:
    run = run_playbook(playbook, {**extra_vars, "tcp_memory_report_dir": str(directory)}, collections, netns)
    assert run.returncode == 0, output(run)
    return masked(read_report(directory))


def masked(report: dict) -> dict:
    """The report with each host's used_pages (host-wide usage now, see the docstring) replaced by a mark."""
    for host in report["hosts"]:
        assert isinstance(host["used_pages"], int), host["used_pages"]  # present, so the mask hides no drop
        host["used_pages"] = "masked: host-wide usage"
    return report


def differences(before: Any, after: Any, path: str = "") -> list:
    """Every path where the two JSON values differ (a missing or extra key, another value)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            if key not in after:
                found.append(f"{path}.{key}: dropped")
            elif key not in before:
                found.append(f"{path}.{key}: added")
            else:
                found += differences(before[key], after[key], f"{path}.{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        pairs = enumerate(zip(before, after))
        return [line for index, pair in pairs for line in differences(*pair, f"{path}[{index}]")]
    return [] if before == after else [f"{path}: {json.dumps(before)} -> {json.dumps(after)}"]


@pytest.mark.parametrize("extra_vars", list(CASES.values()), ids=list(CASES))
def test_the_report_writes_the_same_json_as_before(collections_path, netns, tmp_path, extra_vars):
    before = report_json(str(FROZEN_REPORT), extra_vars, collections_path, netns, tmp_path / "before")
    after = report_json("report", extra_vars, collections_path, netns, tmp_path / "after")
    assert differences(before, after) == [], json.dumps(after, indent=1)[:4000]
    assert before == after


def test_the_comparison_sees_a_dropped_or_changed_field():
    """The check above can fail: a field dropped, a value changed or a row lost is each reported."""

    def host(**fields):
        return {"hosts": [{"host": "h", **fields}], "summary": {"hosts": ["h"]}}

    report = host(rows=[{"key": "k", "live": "1"}], cgroup=None)
    dropped = host(rows=[{"key": "k", "live": "1"}])
    changed = host(rows=[{"key": "k", "live": "2"}], cgroup=None)
    row_lost = host(rows=[], cgroup=None)
    assert differences(report, report) == []
    assert differences(report, dropped) == [".hosts[0].cgroup: dropped"]
    assert differences(report, changed) == ['.hosts[0].rows[0].live: "1" -> "2"']
    assert differences(report, row_lost) == ['.hosts[0].rows: [{"key": "k", "live": "1"}] -> []']

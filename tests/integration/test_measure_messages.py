# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's read-only entry point (tasks_from: measure) as an operator meets it on localhost: what it says
about a misspelt variable, a missing target and a target that does not fit. Read-only: nothing is written."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import ansible_playbook, cases_inventory, real_kernel_ready

pytestmark = pytest.mark.skipif(bool(real_kernel_ready()), reason=real_kernel_ready() or "ready")

PLAYBOOK = """\
- name: Measure only
  hosts: all
  gather_facts: false
  tasks:
    - name: Measure and recommend, changing nothing
      ansible.builtin.include_role:
        name: netstack.tcp_tuning.tcp_memory
        tasks_from: measure
    - name: Show the finding
      ansible.builtin.debug:
        msg: "finding: {{ tcp_memory_measurement.error }}"
"""
# Each case is a host of one run (conftest's cases_inventory), with its variables.
CASES = {
    "misspelt": {"tcp_memory_connections": 1000, "tcp_memory_profil": "many_idle"},
    "missing": {},
    "unfit": {"tcp_memory_connections": 2000000000},
}


def output(completed: subprocess.CompletedProcess) -> str:
    return completed.stdout + completed.stderr


def recap(text: str, host: str) -> str:
    line = re.search(rf"^{host}\s+:.*$", text, re.M)
    assert line, text
    return line.group(0)


def test_a_misspelt_variable_a_missing_target_and_a_target_that_does_not_fit(collections_path, tmp_path):
    """One test, one run (the three ran one each; as separate tests they could land on different xdist workers)."""
    run = cases_inventory(tmp_path, CASES)
    playbook = tmp_path / "measure.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    measured = output(ansible_playbook(str(playbook), collections_path, inventory=str(run["inventory"])))
    text = " ".join(measured.split())

    # A misspelt variable is warned about, naming the close match.
    assert " failed=0 " in recap(measured, "misspelt"), measured
    assert "tcp_memory_profil is not a variable of the role netstack.tcp_tuning.tcp_memory (ignored); " in text
    assert "did you mean tcp_memory_profile?" in text
    assert 'ok: [misspelt] => { "msg": "finding: " }' in text  # no refusal

    # A missing target says in one line what to pass.
    assert " failed=1 " in recap(measured, "missing"), measured
    fatal = [line for line in measured.splitlines() if line.startswith("fatal: [missing]")]
    assert fatal and "tcp_memory_connections is not set: pass the target" in fatal[0], measured
    assert "e.g. -e tcp_memory_connections=100000" in fatal[0]
    assert "missing required arguments" not in measured and "argument_spec" not in measured

    # A target that does not fit is a finding, not a failed task.
    assert " failed=0 " in recap(measured, "unfit"), measured
    assert "fatal: [unfit]" not in measured and "...ignoring" not in measured
    assert 'ok: [unfit] => { "msg": "finding: recommend_tcp_memory: tcp_memory_connections=2000000000' in text
    assert "tcp_memory_best_effort" in text and "more than all RAM" not in text

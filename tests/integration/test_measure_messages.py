# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's read-only entry point (tasks_from: measure) as an operator meets it on localhost: what it says
about a misspelt variable, a missing target and a target that does not fit. Read-only: nothing is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import ansible_playbook, real_kernel_ready

pytestmark = pytest.mark.skipif(bool(real_kernel_ready()), reason=real_kernel_ready() or "ready")

PLAYBOOK = """\
- name: Measure only
  hosts: localhost
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


def output(completed: subprocess.CompletedProcess) -> str:
    return completed.stdout + completed.stderr


def run(tmp_path: Path, collections_path: str, extra_vars: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / "measure.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    return ansible_playbook(str(playbook), collections_path, extra_vars)


def test_a_misspelt_variable_is_warned_about_naming_the_close_match(collections_path, tmp_path):
    completed = run(tmp_path, collections_path, {"tcp_memory_connections": 1000, "tcp_memory_profil": "many_idle"})
    assert completed.returncode == 0, output(completed)
    text = " ".join(output(completed).split())
    assert "tcp_memory_profil is not a variable of the role netstack.tcp_tuning.tcp_memory (ignored); " in text
    assert "did you mean tcp_memory_profile?" in text
    assert '"msg": "finding: "' in text  # no refusal


def test_a_missing_target_says_in_one_line_what_to_pass(collections_path, tmp_path):
    completed = run(tmp_path, collections_path, {})
    assert completed.returncode != 0
    text = output(completed)
    assert "tcp_memory_connections is not set: pass the target" in text, text
    assert "e.g. -e tcp_memory_connections=100000" in text
    assert "missing required arguments" not in text and "argument_spec" not in text


def test_a_target_that_does_not_fit_is_a_finding_not_a_failed_task(collections_path, tmp_path):
    completed = run(tmp_path, collections_path, {"tcp_memory_connections": 2000000000})
    assert completed.returncode == 0, output(completed)
    text = output(completed)
    assert "fatal:" not in text and "FAILED!" not in text and "...ignoring" not in text
    assert "finding: recommend_tcp_memory: tcp_memory_connections=2000000000" in text
    assert "tcp_memory_best_effort" in text and "more than all RAM" not in text

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter unknown_tcp_memory_variables: the tcp_memory_* variables nothing in the collection reads.

Documentation: unknown_tcp_memory_variables.yml next to this file.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.yaml import yaml_load
from ansible.utils.display import Display
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_workload import ROLE_PREFIX

ARGUMENT_SPECS = Path(__file__).resolve().parents[2] / "roles" / "tcp_memory" / "meta" / "argument_specs.yml"
# tcp_memory_* variables that are not role options: the playbooks' own, and the facts the role and playbooks set.
PLAYBOOK_VARIABLES = (
    "tcp_memory_hosts",
    "tcp_memory_become",
    "tcp_memory_serial",
    "tcp_memory_report_dir",
    "tcp_memory_diagnose",
    "tcp_memory_report_timeout",
)
SET_FACTS = ("tcp_memory_measurement", "tcp_memory_result", "tcp_memory_report_host")


def known_variables(argument_specs: Path = ARGUMENT_SPECS) -> list[str]:
    """Every tcp_memory_* variable the role (any entry point) or the collection's playbooks read or set."""
    specs = yaml_load(argument_specs.read_text(encoding="utf-8"))["argument_specs"]
    options = {name for entry in specs.values() for name in entry.get("options", {})}
    return sorted(options | set(PLAYBOOK_VARIABLES) | set(SET_FACTS))


def unknown_variable_warnings(names: Sequence[str], known: Sequence[str]) -> list[str]:
    """One sentence per tcp_memory_* name nobody reads, with the closest known name (a typo runs with defaults)."""
    result = []
    # compared without the common prefix, which would make every name look close
    suffixes = {name[len(ROLE_PREFIX) :]: name for name in known}
    for name in sorted({str(name) for name in names} - set(known)):
        match = difflib.get_close_matches(name[len(ROLE_PREFIX) :], list(suffixes), n=1)
        hint = f"; did you mean {suffixes[match[0]]}?" if match else ""
        result.append(f"{name} is not a variable of the role netstack.tcp_tuning.tcp_memory (ignored){hint}")
    return result


def unknown_tcp_memory_variables(names: Any) -> list[str]:
    """query('ansible.builtin.varnames', '^tcp_memory_') | netstack.tcp_tuning.unknown_tcp_memory_variables.

    Returns one sentence per name the collection does not read and shows each as a warning.
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise AnsibleFilterError(
            f"unknown_tcp_memory_variables: expects a list of variable names, got {type(names).__name__} {names!r}"
        )
    if any(not isinstance(name, str) for name in names):
        raise AnsibleFilterError(f"unknown_tcp_memory_variables: every name must be a string, got {list(names)!r}")
    warnings = unknown_variable_warnings([name for name in names if name.startswith(ROLE_PREFIX)], known_variables())
    for warning in warnings:
        Display().warning(warning)
    return warnings


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"unknown_tcp_memory_variables": unknown_tcp_memory_variables}

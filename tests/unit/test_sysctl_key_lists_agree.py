# Copyright: netstack.tcp_tuning contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The eleven managed sysctl keys are still listed in two places that must agree with the key table.

module_utils/tcp_memory_keys is the source (the facts, the drop-in module and the model import it).
The role refuses unknown override keys before the host is read; the Molecule helper runs on a test
host by itself. Both go once they take the list from the facts; then this file goes too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml
from ansible_collections.netstack.tcp_tuning.plugins.module_utils import tcp_memory_keys as keys

ROOT = Path(__file__).resolve().parents[2]
FACT_KEYS = list(keys.KEY_NAMES)


def tuple_assigned(path: Path, name: str) -> list:
    """The literal tuple assigned to NAME at module level of a script that is not imported here."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{path}: no {name} = (...)")


def test_the_role_refuses_exactly_the_keys_the_facts_do_not_carry():
    role_vars = yaml.safe_load((ROOT / "roles/tcp_memory/vars/main.yml").read_text(encoding="utf-8"))
    assert role_vars["__tcp_memory_known_keys"] == FACT_KEYS


def test_the_molecule_helper_run_on_test_hosts_reads_the_same_keys():
    assert tuple_assigned(ROOT / "molecule/_shared/files/sysctl_state.py", "KEYS") == FACT_KEYS

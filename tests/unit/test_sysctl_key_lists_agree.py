# Copyright: netstack.tcp_tuning contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The eleven managed sysctl keys are listed in places that must stand alone; they must agree.

tcp_memory_facts (module_utils) is the source: it decides which keys the facts carry. The model
(plugin_utils) validates the facts against its own copy, since it imports nothing of Ansible; the
drop-in module checks vector lengths; the role refuses unknown override keys before the host is
read; the Molecule helper runs on a test host by itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml
from ansible_collections.netstack.tcp_tuning.plugins.module_utils import sysctl_dropin_values
from ansible_collections.netstack.tcp_tuning.plugins.module_utils import tcp_memory_proc as proc
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils import tcp_memory_inputs

ROOT = Path(__file__).resolve().parents[2]
FACT_KEYS = list(proc.SYSCTL_KEYS)
FACT_TRIPLES = {key for key, (_unit, count, _scope) in proc.SYSCTL_KEYS.items() if count == 3}


def tuple_assigned(path: Path, name: str) -> list:
    """The literal tuple assigned to NAME at module level of a script that is not imported here."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{path}: no {name} = (...)")


def test_the_model_knows_the_same_keys_and_triples_as_the_facts():
    assert list(tcp_memory_inputs.SYSCTL_KEYS) == FACT_KEYS
    assert set(tcp_memory_inputs.TRIPLE_KEYS) == FACT_TRIPLES


def test_the_dropin_module_knows_the_same_triples():
    assert set(sysctl_dropin_values.TRIPLE_KEYS) == FACT_TRIPLES


def test_the_role_refuses_exactly_the_keys_the_facts_do_not_carry():
    role_vars = yaml.safe_load((ROOT / "roles/tcp_memory/vars/main.yml").read_text(encoding="utf-8"))
    assert role_vars["__tcp_memory_known_keys"] == FACT_KEYS


def test_the_molecule_helper_run_on_test_hosts_reads_the_same_keys():
    assert tuple_assigned(ROOT / "molecule/_shared/files/sysctl_state.py", "KEYS") == FACT_KEYS

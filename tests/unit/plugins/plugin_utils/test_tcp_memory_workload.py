# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The workload is defined once (plugins/plugin_utils/tcp_memory_workload.py); everything else follows it.

The files Ansible needs as YAML are generated from it (`make generate`); this test fails when one drifts.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.netstack.tcp_tuning.plugins.filter.recommend_tcp_memory import recommend_tcp_memory
from ansible_collections.netstack.tcp_tuning.plugins.filter.unknown_tcp_memory_variables import (
    PLAYBOOK_VARIABLES,
    known_variables,
    unknown_tcp_memory_variables,
    unknown_variable_warnings,
)
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils import tcp_memory_workload as schema
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import (
    ModelInputError,
    Workload,
    check_workload,
)
from ansible_collections.netstack.tcp_tuning.tests.tools import generate_workload
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    GIB,
    make_facts,
)

ROOT = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("path", sorted(generate_workload.FILES))
def test_generated_files_match_the_schema(path):
    current, generated = generate_workload.rendered(ROOT)[path]
    assert current == generated, f"{path} differs from the workload schema: run `make generate`"


def test_every_input_is_a_field_of_the_models_workload():
    fields = {field.name for field in dataclasses.fields(Workload)}
    assert set(schema.NAMES) <= fields
    assert fields - set(schema.NAMES) == {"rx_factor_given", "tx_factor_given"}


@pytest.fixture
def fake_input(monkeypatch):
    """The schema with one more input, and nothing else edited."""
    fake = schema.Input("fake_window_bytes", "count", "A fake input.", unit="bytes", minimum=16, maximum=4096)
    inputs = (*schema.INPUTS, fake)
    monkeypatch.setattr(schema, "INPUTS", inputs)
    monkeypatch.setattr(schema, "BY_NAME", {spec.name: spec for spec in inputs})
    monkeypatch.setattr(schema, "NAMES", tuple(spec.name for spec in inputs))
    return fake


def test_a_new_input_reaches_the_checking_the_argument_spec_and_the_docs(fake_input):
    # the filter's checking
    with pytest.raises(AnsibleFilterError, match=r"fake_window_bytes must be >= 16, got 3"):
        recommend_tcp_memory(make_facts(), connections=1000, fake_window_bytes=3)
    with pytest.raises(ModelInputError, match=r"tcp_memory_fake_window_bytes must be <= 4096"):
        check_workload({"connections": 1000, "fake_window_bytes": 5000}, lambda name: "tcp_memory_" + name)
    assert check_workload({"connections": 1000, "fake_window_bytes": "64"})["fake_window_bytes"] == 64
    generated = {path: text for path, (_source, text) in generate_workload.rendered(ROOT).items()}
    # the role's argument spec, both entry points, and its defaults and variable list
    specs = yaml.safe_load(generated["roles/tcp_memory/meta/argument_specs.yml"])["argument_specs"]
    for entry in ("main", "measure"):
        option = specs[entry]["options"]["tcp_memory_fake_window_bytes"]
        assert option["type"] == "int" and option["description"] == ["A fake input. In bytes."]
    assert yaml.safe_load(generated["roles/tcp_memory/defaults/main.yml"])["tcp_memory_fake_window_bytes"] is None
    names = yaml.safe_load(generated["roles/tcp_memory/vars/main.yml"])["__tcp_memory_workload_variables"]
    assert names[-1] == "tcp_memory_fake_window_bytes"
    # the filter's documentation and the role README
    options = yaml.safe_load(generated["plugins/filter/recommend_tcp_memory.yml"])["DOCUMENTATION"]["options"]
    assert options["fake_window_bytes"] == {"description": ["A fake input. In bytes."], "type": "int"}
    assert "| `tcp_memory_fake_window_bytes` | int |" in generated["roles/tcp_memory/README.md"]
    # and the committed files no longer match: the drift test fails until `make generate`
    for path, (current, text) in generate_workload.rendered(ROOT).items():
        assert current != text, path


def test_generated_yaml_is_what_ansible_reads():
    specs = yaml.safe_load((ROOT / "roles/tcp_memory/meta/argument_specs.yml").read_text())["argument_specs"]
    defaults = yaml.safe_load((ROOT / "roles/tcp_memory/defaults/main.yml").read_text())
    for spec in schema.INPUTS:
        option = specs["main"]["options"][spec.role_variable]
        assert option == specs["measure"]["options"][spec.role_variable]
        assert option["type"] == spec.ansible_type
        expected = None if spec.default is None or spec.measured else generate_workload.number(spec.default)
        assert option.get("default") == expected
        assert defaults.get(spec.role_variable) == expected
        if spec.choices:
            assert option["choices"] == list(spec.choices)


# ---------------------------------------------------------------- messages for the role's user


def role_call(facts, refusal="return", **variables):
    return recommend_tcp_memory(
        facts, role_variables={f"tcp_memory_{name}": value for name, value in variables.items()}, refusal=refusal
    )


def test_a_refusal_names_the_role_variable_and_is_returned_for_the_read_only_path():
    result = role_call(make_facts(mem_total_bytes=16 * GIB), connections=300_000)
    assert set(result) == {"error"}
    error = result["error"]
    assert "tcp_memory_connections=300000" in error
    assert "set tcp_memory_best_effort=true" in error and "pass best_effort" not in error
    assert "tcp_memory_memory_fraction" in error and "tcp_memory_rx_buffered_bytes" in error
    ok = role_call(make_facts(), connections=1000)
    assert ok["error"] is None and ok["recommendation"]["inputs"]["connections"] == 1000


def test_the_tune_path_still_fails_with_the_message():
    with pytest.raises(AnsibleFilterError, match=r"set tcp_memory_best_effort=true"):
        role_call(make_facts(mem_total_bytes=16 * GIB), refusal="raise", connections=300_000)


def test_more_than_all_ram_is_said_plainly():
    error = role_call(make_facts(mem_total_bytes=1 * GIB), connections=50_000_000, memory_fraction=1)["error"]
    assert "more than all RAM" not in error
    assert "more memory than the host has (even tcp_memory_memory_fraction=1, all of MemTotal, is short)" in error


def test_role_booleans_are_read_as_ansible_reads_them():
    result = role_call(make_facts(mem_total_bytes=16 * GIB), connections=300_000, best_effort="true")
    assert result["error"] is None
    assert role_call(make_facts(), connections=1000, best_effort="maybe")["error"].endswith(
        "tcp_memory_best_effort must be a boolean (true/false), got 'maybe'"
    )


# ---------------------------------------------------------------- variables nobody reads


def test_a_misspelt_variable_is_warned_about_with_the_closest_known_name():
    known = known_variables()
    warnings = unknown_variable_warnings(["tcp_memory_profil", "tcp_memory_connections", "tcp_memory_xyz"], known)
    assert warnings == [
        "tcp_memory_profil is not a variable of the role netstack.tcp_tuning.tcp_memory (ignored); "
        "did you mean tcp_memory_profile?",
        "tcp_memory_xyz is not a variable of the role netstack.tcp_tuning.tcp_memory (ignored)",
    ]


@pytest.mark.parametrize("names", ["tcp_memory_profil", {"tcp_memory_profil": 1}, [1], None])
def test_the_filter_refuses_anything_but_a_list_of_names(names):
    with pytest.raises(AnsibleFilterError, match=r"unknown_tcp_memory_variables: (expects a list|every name must)"):
        unknown_tcp_memory_variables(names)


def test_the_filter_ignores_names_outside_the_prefix():
    assert unknown_tcp_memory_variables(["ansible_host", "tcp_memory_connections"]) == []


def test_every_variable_the_role_and_playbooks_use_is_known():
    """A variable a playbook or the role reads but known_variables() lacks would be warned about wrongly."""
    known = set(known_variables())
    assert set(PLAYBOOK_VARIABLES) <= known
    modules = {path.stem for path in [*ROOT.glob("plugins/modules/*.py"), *ROOT.glob("playbooks/action_plugins/*.py")]}
    used = set()
    for path in [*ROOT.glob("playbooks/*.yml"), *ROOT.glob("roles/tcp_memory/*/*.yml")]:
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        # a name, not part of a longer one, a file name (tcp_memory_host.txt.j2), a module or action (tcp_memory_facts)
        used |= set(re.findall(r"(?<![\w.])tcp_memory_[a-z0-9_]*[a-z0-9](?![\w.])", code)) - modules
    assert used, "the scan found no variable"
    assert sorted(used - known) == []

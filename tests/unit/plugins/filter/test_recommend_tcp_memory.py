# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter as Ansible loads it: through Jinja (Templar) and bad input. The ad-hoc `ansible` run and the facts
of the running kernel are in tests/integration/test_recommend_tcp_memory_live.py."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.netstack.tcp_tuning.plugins.filter.recommend_tcp_memory import (
    FilterModule,
    recommend_tcp_memory,
    to_plain,
)
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    GIB,
    make_facts,
    without,
)
from hypothesis import given, settings
from hypothesis import strategies as st

COLLECTION_ROOT = Path(__file__).resolve().parents[4]
FQCN = "netstack.tcp_tuning.recommend_tcp_memory"


def collections_path() -> Path:
    """A directory where this checkout is importable as ansible_collections.netstack.tcp_tuning."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if parent.name == "ansible_collections":
            return parent.parent
    return COLLECTION_ROOT / ".cache" / "dev"  # `make devlink`


class ReadOnlyMapping(Mapping):
    """Stands in for ansible-core 2.19's lazy containers: a Mapping that is not a dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return ReadOnlyMapping(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def assert_plain(value: Any) -> None:
    """Exact built-in classes: a subclass (lazy container, tagged str) must not leak out of the filter."""
    if isinstance(value, dict):
        assert value.__class__ is dict
        for key, item in value.items():
            assert key.__class__ is str
            assert_plain(item)
    elif isinstance(value, list):
        assert value.__class__ is list
        for item in value:
            assert_plain(item)
    else:
        assert value is None or value.__class__ in (str, int, float, bool), value.__class__


# ---------------------------------------------------------------- through Jinja


def test_filter_is_registered():
    assert FilterModule().filters() == {"recommend_tcp_memory": recommend_tcp_memory}


def test_templar_renders_the_filter_with_lazy_containers():
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar

    try:
        from ansible.template import trust_as_template
    except ImportError:  # ansible-core < 2.19 trusts every template string

        def trust_as_template(template: str) -> str:
            return template

    with warnings.catch_warnings():  # pytest-ansible may have configured the collection finder already
        warnings.simplefilter("ignore")
        init_plugin_loader([str(collections_path())])
    templar = Templar(
        loader=DataLoader(),
        variables={
            "facts": make_facts(mem_total_bytes=16 * GIB),
            "target": 200000,
            "extra": {"net.core.optmem_max": 81920},
        },
    )
    result = templar.template(
        trust_as_template(f"{{{{ facts | {FQCN}(connections=target, overrides=extra, profile='balanced') }}}}")
    )
    assert result["sysctl"]["net.ipv4.tcp_mem"] == "262048 348715 522048"
    assert result["sysctl"]["net.core.optmem_max"] == "81920"
    assert_plain(result)
    # positional form: facts | filter(200000)
    positional = templar.template(trust_as_template(f"{{{{ facts | {FQCN}(200000) }}}}"))
    assert positional["sysctl"]["net.ipv4.tcp_mem"] == "262048 348715 522048"
    with pytest.raises(AnsibleFilterError, match=r"connections must be >= 1, got 0"):
        templar.template(trust_as_template(f"{{{{ facts | {FQCN}(connections=0) }}}}"))


def test_mapping_that_is_not_a_dict_is_accepted_and_output_is_plain():
    result = recommend_tcp_memory(ReadOnlyMapping(make_facts()), connections="200000", overrides=ReadOnlyMapping({}))
    assert_plain(result)
    assert to_plain(ReadOnlyMapping({"a": ReadOnlyMapping({"b": (1, 2)})})) == {"a": {"b": [1, 2]}}


# ---------------------------------------------------------------- bad input names the argument and the value


def assert_rejected(argument: str, value: Any, **arguments: Any) -> None:
    facts = arguments.pop("facts", make_facts())
    with pytest.raises(AnsibleFilterError) as caught:
        recommend_tcp_memory(facts, **arguments)
    message = str(caught.value)
    assert argument in message, message
    shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
    assert shown in message, message


not_integer_text = st.text(max_size=12).filter(lambda text: not re.fullmatch(r"\s*\d+\s*", text))


@settings(max_examples=150, deadline=None)
@given(
    value=st.integers(max_value=0)
    | st.booleans()
    | not_integer_text
    | st.floats().filter(lambda number: not (number.is_integer() and number > 0))
    | st.lists(st.integers(), max_size=2)
)
def test_bad_connections(value):
    assert_rejected("connections", value, connections=value)


out_of_unit = (
    st.floats().filter(lambda number: not 0 < number <= 1)
    | st.integers().filter(lambda number: number not in (1,))
    | st.booleans()
    | st.text(max_size=8).filter(lambda text: not re.fullmatch(r"\s*(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*", text))
)


@settings(max_examples=150, deadline=None)
@given(argument=st.sampled_from(["active_fraction", "memory_fraction"]), value=out_of_unit)
def test_bad_fractions(argument, value):
    assert_rejected(argument, value, connections=1000, **{argument: value})


@settings(max_examples=100, deadline=None)
@given(
    argument=st.sampled_from(["rx_buffered_bytes", "tx_buffered_bytes"]),
    value=st.integers(max_value=-1) | st.booleans() | not_integer_text | st.integers(min_value=2**31),
)
def test_bad_buffered_bytes(argument, value):
    assert_rejected(argument, value, connections=1000, **{argument: value})


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("profile", "turbo"),
        ("profile", 3),
        ("allow_decrease", "yes"),
        ("allow_decrease", 1),
        ("best_effort", "false"),
        ("bandwidth_bps", -5),
        ("rtt_ms", "fast"),
        ("rx_truesize_factor", 0.5),
        ("tx_truesize_factor", "x"),
        ("allow_above_mem_total", "yes"),
    ],
)
def test_bad_named_arguments(argument, value):
    arguments: dict[str, Any] = {"connections": 1000, argument: value}
    if argument in ("bandwidth_bps", "rtt_ms"):  # they go together
        arguments.setdefault("bandwidth_bps", 10**9)
        arguments.setdefault("rtt_ms", 10)
    assert_rejected(argument, value, **arguments)


def test_link_needs_both_bandwidth_and_rtt():
    assert_rejected("rtt_ms", None, connections=1000, bandwidth_bps=10**9)


def test_missing_connections_and_unknown_argument():
    with pytest.raises(AnsibleFilterError, match="connections is required"):
        recommend_tcp_memory(make_facts())
    # an unknown argument is Python's own error naming it (Ansible shows it as the template's error)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'conections'"):
        recommend_tcp_memory(make_facts(), connections=5, conections=5)


def test_target_that_does_not_fit_is_an_ansible_filter_error():
    with pytest.raises(AnsibleFilterError, match=r"short by .* at most"):
        recommend_tcp_memory(make_facts(mem_total_bytes=16 * GIB), connections=5_000_000)


def test_live_tcp_mem_above_mem_total_is_an_ansible_filter_error_unless_allowed():
    facts = make_facts(mem_total_bytes=16 * GIB, live={"net.ipv4.tcp_mem": [3_000_000, 4_000_000, 5_000_000]})
    with pytest.raises(AnsibleFilterError, match=r"more than MemTotal .* allow_above_mem_total=true"):
        recommend_tcp_memory(facts, connections=1000)
    result = recommend_tcp_memory(facts, connections=1000, allow_above_mem_total=True)
    assert result["sysctl"]["net.ipv4.tcp_mem"] == "3000000 4000000 5000000"
    assert "more than MemTotal" in result["warnings"][0]


# ---------------------------------------------------------------- bad facts

REQUIRED_FACT_PATHS = [
    ("schema_version",),
    ("kernel",),
    ("kernel", "version"),
    ("page_size_bytes",),
    ("cpu_count",),
    ("memory", "mem_total_bytes"),
    ("memory", "mem_available_bytes"),
    ("boot_defaults", "tcp_mem_pages"),
    ("boot_defaults", "tcp_rmem_bytes"),
    ("boot_defaults", "tcp_wmem_bytes"),
    ("namespace", "initial"),
    ("sysctl", "net.ipv4.tcp_mem"),
    ("sysctl", "net.core.optmem_max"),
    ("sysctl", "net.ipv4.tcp_rmem", "value"),
    ("sysctl", "net.core.rmem_max", "writable"),
    ("sockstat", "host_wide_fields"),
    ("status", "used_pages"),
    ("status", "level"),
]


@pytest.mark.parametrize("path", REQUIRED_FACT_PATHS, ids=".".join)
def test_missing_fact_key_is_named(path):
    with pytest.raises(AnsibleFilterError) as caught:
        recommend_tcp_memory(without(make_facts(), path), connections=1000)
    message = str(caught.value)
    assert "missing key" in message and path[-1] in message, message


@pytest.mark.parametrize("version", [0, 2, "1", True, None, 1.5])
def test_unknown_schema_version_is_refused(version):
    facts = make_facts()
    facts["schema_version"] = version
    with pytest.raises(AnsibleFilterError) as caught:
        recommend_tcp_memory(facts, connections=1000)
    assert "schema_version" in str(caught.value) and repr(version) in str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("page_size_bytes",), "4k", "facts.page_size_bytes"),
        (("cpu_count",), 0, "facts.cpu_count"),
        (("memory", "mem_total_bytes"), None, "facts.memory.mem_total_bytes"),
        (("boot_defaults", "tcp_mem_pages"), [1, 2], "facts.boot_defaults.tcp_mem_pages"),
        (("kernel", "version"), "6.1", "facts.kernel.version"),
    ],
)
def test_malformed_fact_values_are_named(path, value, fragment):
    facts = make_facts()
    node = facts
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(AnsibleFilterError, match=re.escape(fragment)):
        recommend_tcp_memory(facts, connections=1000)


def test_facts_that_are_not_a_dict():
    assert_rejected("facts", "nope", facts="nope", connections=10)

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter recommend_tcp_memory: a thin wrapper around plugin_utils/tcp_memory_model.

Documentation: recommend_tcp_memory.yml next to this file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils import tcp_memory_workload as schema
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import (
    ModelInputError,
    Workload,
    check_workload,
    fact_root,
    parse_facts,
)
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import recommend, with_measurements
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_workload import NAMES, ROLE_PREFIX

# An input named as an argument in a model message ("pass best_effort=true", "memory_fraction >= 0.3").
# Names with an underscore are identifiers wherever they stand; "connections" and "profile" only before "=".
_ARGUMENT = re.compile(
    r"(?<![\w.\[])(?:"
    + "|".join(sorted((name for name in NAMES if "_" in name), key=len, reverse=True))
    + r"|(?:"
    + "|".join(name for name in NAMES if "_" not in name)
    + r")(?==))(?!\w)"
)
_MORE_THAN_RAM = "no memory_fraction suffices (more than all RAM)"


def to_plain(value: Any) -> Any:
    """Plain dicts/lists/scalars from ansible-core 2.19 lazy containers and tagged values."""
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Sequence):
        return [to_plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _role_label(name: str) -> str:
    return ROLE_PREFIX + name


def _for_role(message: str) -> str:
    """A model message as the role's user reads it: the role variables they set instead of filter arguments."""
    message = _ARGUMENT.sub(lambda match: ROLE_PREFIX + match.group(0), message)
    return message.replace("pass " + ROLE_PREFIX, "set " + ROLE_PREFIX)


def _role_value(name: str, value: Any) -> Any:
    """A bool role variable given as text (-e tcp_memory_best_effort=true) read as Ansible reads it."""
    spec = schema.BY_NAME.get(name)
    if spec is not None and spec.kind == "bool" and isinstance(value, str):
        try:
            return boolean(value, strict=True)
        except TypeError:
            return value  # refused by the check, which names the variable
    return value


def _plainly(message: str) -> str:
    return message.replace(
        _MORE_THAN_RAM, "more memory than the host has (even memory_fraction=1, all of MemTotal, is short)"
    )


def recommend_tcp_memory(
    facts: Any,
    connections: Any = None,
    *,
    role_variables: Any = None,
    refusal: str = "raise",
    **arguments: Any,
) -> dict[str, Any]:
    """ansible_facts.tcp_memory | netstack.tcp_tuning.recommend_tcp_memory(connections=N, ...).

    The workload arguments are tcp_memory_workload.INPUTS; None for one means "not given" (its default, or the
    profile's), as the docs say. role_variables (the role's tcp_memory_* variable -> value) is how the role
    passes the workload: its messages then name those variables, and Ansible booleans ("true", "yes") are
    read as Ansible reads them. refusal='return' returns
    {'error': message} instead of failing when the model refuses (the role's read-only entry point).
    """
    if refusal not in ("raise", "return"):
        raise AnsibleFilterError(f"recommend_tcp_memory: refusal must be raise or return, got {refusal!r}")
    label = str
    workload = {name: to_plain(value) for name, value in arguments.items()}
    if role_variables is not None:
        label = _role_label
        for name, value in to_plain(role_variables).items():
            if not name.startswith(ROLE_PREFIX):
                raise AnsibleFilterError(
                    f"recommend_tcp_memory: role_variables: {name!r} does not start with {ROLE_PREFIX}"
                )
            workload.setdefault(name[len(ROLE_PREFIX) :], _role_value(name[len(ROLE_PREFIX) :], value))
    if connections is not None:
        workload["connections"] = to_plain(connections)
    try:
        plain_facts = to_plain(facts)
        host = with_measurements(parse_facts(plain_facts), plain_facts)
        resolved = check_workload(workload, label)
        result = recommend(
            host,
            Workload(
                **resolved,
                rx_factor_given=workload.get("rx_truesize_factor") is not None,
                tx_factor_given=workload.get("tx_truesize_factor") is not None,
            ),
            root=fact_root(plain_facts),
        )
    except ModelInputError as exc:
        message = _plainly(str(exc))
        if label is _role_label:
            message = _for_role(message)
        if refusal == "return":
            return {"error": f"recommend_tcp_memory: {message}"}
        raise AnsibleFilterError(f"recommend_tcp_memory: {message}") from exc
    if refusal == "return":
        return {"error": None, "recommendation": result}
    return result


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"recommend_tcp_memory": recommend_tcp_memory}

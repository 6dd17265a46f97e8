# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter recommend_tcp_memory: a thin wrapper around plugin_utils/tcp_memory_model.

Documentation: recommend_tcp_memory.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import (
    DEFAULT_PROFILE,
    ModelInputError,
    parse_facts,
    resolve_workload,
)
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import recommend


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


def recommend_tcp_memory(
    facts: Any,
    connections: Any = None,
    profile: Any = DEFAULT_PROFILE,
    active_fraction: Any = None,
    rx_buffered_bytes: Any = None,
    tx_buffered_bytes: Any = None,
    bandwidth_bps: Any = None,
    rtt_ms: Any = None,
    memory_fraction: Any = None,
    allow_decrease: Any = False,
    best_effort: Any = False,
    overrides: Any = None,
    rx_truesize_factor: Any = None,
    tx_truesize_factor: Any = None,
    allow_above_mem_total: Any = False,
    message_bytes: Any = None,
) -> dict[str, Any]:
    """ansible_facts.tcp_memory | netstack.tcp_tuning.recommend_tcp_memory(connections=N, ...).

    None for an argument means "not given" (its default, or the profile's preset), as the docs say.
    """
    try:
        plain_facts = to_plain(facts)
        host = parse_facts(plain_facts)
        workload = resolve_workload(
            connections=to_plain(connections),
            profile=to_plain(profile),
            active_fraction=to_plain(active_fraction),
            rx_buffered_bytes=to_plain(rx_buffered_bytes),
            tx_buffered_bytes=to_plain(tx_buffered_bytes),
            bandwidth_bps=to_plain(bandwidth_bps),
            rtt_ms=to_plain(rtt_ms),
            memory_fraction=to_plain(memory_fraction),
            allow_decrease=to_plain(allow_decrease),
            best_effort=to_plain(best_effort),
            overrides=to_plain(overrides),
            rx_truesize_factor=to_plain(rx_truesize_factor),
            tx_truesize_factor=to_plain(tx_truesize_factor),
            allow_above_mem_total=to_plain(allow_above_mem_total),
            message_bytes=to_plain(message_bytes),
        )
        # facts.root is optional (facts gathered before it existed): only false changes anything
        root = plain_facts.get("root")
        return recommend(host, workload, root=root if isinstance(root, bool) else None)
    except ModelInputError as exc:
        raise AnsibleFilterError(f"recommend_tcp_memory: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"recommend_tcp_memory": recommend_tcp_memory}

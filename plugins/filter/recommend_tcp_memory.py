# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter recommend_tcp_memory: a thin wrapper around plugin_utils/tcp_memory_model.

Documentation: recommend_tcp_memory.yml next to this file.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import (
    ModelInputError,
    parse_facts,
)
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import (
    recommend,
    resolve_workload,
)


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


# the keyword arguments resolve_workload takes, besides connections
OPTION_NAMES = tuple(name for name in inspect.signature(resolve_workload).parameters if name != "connections")


def recommend_tcp_memory(facts: Any, connections: Any = None, **options: Any) -> dict[str, Any]:
    """ansible_facts.tcp_memory | netstack.tcp_tuning.recommend_tcp_memory(connections=N, ...)."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise AnsibleFilterError(
            f"recommend_tcp_memory: unknown argument(s) {', '.join(unknown)}; "
            f"known: connections, {', '.join(OPTION_NAMES)}"
        )
    try:
        plain_facts = to_plain(facts)
        host = parse_facts(plain_facts)
        workload = resolve_workload(to_plain(connections), **{key: to_plain(value) for key, value in options.items()})
        # facts.root is optional (facts gathered before it existed): only false changes anything
        root = plain_facts.get("root")
        return recommend(host, workload, root=root if isinstance(root, bool) else None)
    except ModelInputError as exc:
        raise AnsibleFilterError(f"recommend_tcp_memory: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"recommend_tcp_memory": recommend_tcp_memory}

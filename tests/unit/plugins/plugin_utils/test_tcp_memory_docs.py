# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/recommendation-model.md shows numbers produced by the model, never typed by hand.

The generated blocks sit between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`.
This test fails when the model and the page disagree; regenerate the page with
  PYTHONPATH=.cache/dev .venv/bin/python \
    -m ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.test_tcp_memory_docs --write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Optional

from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_inputs import parse_facts, resolve_workload
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_model import (
    TargetDoesNotFitError,
    connections_held,
    recommend,
    steady_state_usage,
)
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.plugin_utils.tcp_memory_fixtures import (
    GIB,
    make_facts,
)

DOC = Path(__file__).resolve().parents[4] / "docs" / "recommendation-model.md"
TARGET_CONNECTIONS = 200000
LINK = {"bandwidth_bps": 10_000_000_000, "rtt_ms": 100}

# Published settings compared against (sources in docs/recommendation-model.md); None = not set, boot default stays.
TUNED_NETWORK_THROUGHPUT: dict[str, Optional[str]] = {
    "net.ipv4.tcp_rmem": "4096 131072 16777216",
    "net.ipv4.tcp_wmem": "4096 16384 16777216",
}
ESNET_10G: dict[str, Optional[str]] = {
    "net.ipv4.tcp_rmem": "4096 87380 67108864",
    "net.ipv4.tcp_wmem": "4096 65536 67108864",
    "net.core.rmem_max": "134217728",
    "net.core.wmem_max": "134217728",
}
KEYS = (
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_moderate_rcvbuf",
)


def example_facts() -> dict[str, Any]:
    """The worked example's host: 16 GiB, 8 CPUs, 4 KiB pages, Debian 12 kernel 6.1 at its boot defaults."""
    facts = make_facts(mem_total_bytes=16 * GIB, cpu_count=8, kernel_version=(6, 1, 0), used_pages=1200)
    facts["kernel"]["release"] = "6.1.0-31-amd64"
    return facts


def boot_settings(facts: dict[str, Any]) -> dict[str, str]:
    return {key: " ".join(str(n) for n in _as_list(facts["sysctl"][key]["value"])) for key in KEYS}


def _as_list(value: Any) -> list[int]:
    return value if isinstance(value, list) else [value]


def worked_example() -> str:
    facts = example_facts()
    result = recommend(parse_facts(facts), resolve_workload(connections=TARGET_CONNECTIONS))
    inputs = result["inputs"]
    estimate = result["estimate"]
    lines = [
        f"Host: MemTotal {facts['memory']['mem_total_bytes']} B (16 GiB), {facts['cpu_count']} CPUs, "
        f"{facts['page_size_bytes']} B pages, kernel {facts['kernel']['release']}, running its boot defaults.",
        f"Call: `recommend_tcp_memory(connections={TARGET_CONNECTIONS})` - profile `{inputs['profile']}`: "
        f"active_fraction {inputs['active_fraction']}, rx {inputs['rx_buffered_bytes']} B, "
        f"tx {inputs['tx_buffered_bytes']} B, truesize x{inputs['rx_truesize_factor']:g} / "
        f"x{inputs['tx_truesize_factor']:g}, memory_fraction {inputs['memory_fraction']}.",
        "",
        "| key | value | explain |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{key}` | `{value}` | {result['explain'][key]} |" for key, value in result["sysctl"].items()]
    lines += [
        "",
        "| estimate | value |",
        "| --- | --- |",
    ]
    lines += [f"| `{key}` | `{value}` |" for key, value in estimate.items()]
    lines += ["", f"Warnings: {result['warnings'] or 'none'}."]
    return "\n".join(lines)


def what_if() -> str:
    host = parse_facts(example_facts())
    lines = ["| call | tcp_mem | connections before pressure | note |", "| --- | --- | --- | --- |"]
    cases = [
        ("profile='many_idle'", {"profile": "many_idle"}),
        ("connections=1000000, profile='many_idle'", {"connections": 1_000_000, "profile": "many_idle"}),
        (
            "active_fraction=1, rx_buffered_bytes=0, tx_buffered_bytes=1024, message_bytes=1024",
            {"active_fraction": 1, "rx_buffered_bytes": 0, "tx_buffered_bytes": 1024, "message_bytes": 1024},
        ),
        (
            "connections=1000000, profile='many_idle', memory_fraction=0.5",
            {"connections": 1_000_000, "profile": "many_idle", "memory_fraction": 0.5},
        ),
        ("bandwidth_bps=10000000000, rtt_ms=100", dict(LINK)),
        ("profile='bulk_throughput'", {"profile": "bulk_throughput"}),
        ("profile='bulk_throughput', best_effort=true", {"profile": "bulk_throughput", "best_effort": True}),
    ]
    for label, arguments in cases:
        arguments = {"connections": TARGET_CONNECTIONS, **arguments}
        try:
            result = recommend(host, resolve_workload(**arguments))
        except TargetDoesNotFitError as error:
            lines.append(f"| `{label}` | - | - | error: {error} |")
            continue
        note = "; ".join(result["warnings"]) or "-"
        if "rtt_ms" in arguments:
            sysctl = result["sysctl"]
            note = f"tcp_rmem `{sysctl['net.ipv4.tcp_rmem']}`, tcp_wmem `{sysctl['net.ipv4.tcp_wmem']}`"
        lines.append(
            f"| `{label}` | `{result['sysctl']['net.ipv4.tcp_mem']}` | "
            f"{result['estimate']['recommended_connections_before_pressure']} | {note} |"
        )
    return "\n".join(lines)


def comparison() -> str:
    facts = example_facts()
    host = parse_facts(facts)
    workload = resolve_workload(connections=TARGET_CONNECTIONS)
    usage = steady_state_usage(TARGET_CONNECTIONS, workload, host)
    boot = boot_settings(facts)
    columns = {
        "this model": recommend(host, workload)["sysctl"],
        "this model, 10 Gbit/s 100 ms": recommend(host, resolve_workload(connections=TARGET_CONNECTIONS, **LINK))[
            "sysctl"
        ],
        "kernel boot defaults": boot,
        "tuned network-throughput": {**boot, **TUNED_NETWORK_THROUGHPUT},
        "ESnet 10G": {**boot, **ESNET_10G},
    }
    header = "| | " + " | ".join(columns) + " |"
    lines = [header, "|" + " --- |" * (len(columns) + 1)]
    for key in KEYS:
        cells = []
        for name, settings in columns.items():
            value = settings[key]
            own = name.startswith("this model") or key in (TUNED_NETWORK_THROUGHPUT if "tuned" in name else ESNET_10G)
            cells.append(f"`{value}`" if own or name == "kernel boot defaults" else f"`{value}` (boot)")
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")

    def row(label: str, compute: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(str(compute(settings)) for settings in columns.values()) + " |")

    def triple(settings: dict[str, str], key: str) -> list[int]:
        return [int(n) for n in settings[key].split()]

    row(
        f"connections before pressure (balanced workload, {usage.pages_per_active} pages per active connection)",
        lambda s: connections_held(triple(s, "net.ipv4.tcp_mem")[1], usage, workload),
    )
    row("connections before stalls", lambda s: connections_held(triple(s, "net.ipv4.tcp_mem")[2], usage, workload))
    row(
        "`rmem_max >= tcp_rmem[2]` (SO_RCVBUF users not capped)",
        lambda s: "yes" if triple(s, "net.core.rmem_max")[0] >= triple(s, "net.ipv4.tcp_rmem")[2] else "**no**",
    )
    row(
        "receive max >= 10 Gbit/s x 100 ms BDP (125 MB)",
        lambda s: "yes" if triple(s, "net.ipv4.tcp_rmem")[2] >= 125_000_000 else "no",
    )
    return "\n".join(lines)


BLOCKS = {"worked-example": worked_example, "what-if": what_if, "comparison": comparison}


def rendered(text: str) -> str:
    for name, build in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(<!-- END GENERATED: {name} -->)",
            re.DOTALL,
        )
        assert pattern.search(text), f"{DOC} lacks the {name} markers"
        text = pattern.sub(lambda match, b=build: match.group(1) + b() + "\n" + match.group(2), text)
    return text


def test_docs_show_what_the_model_computes():
    text = DOC.read_text(encoding="utf-8")
    assert rendered(text) == text, f"{DOC} is out of date: regenerate it (see this file's docstring)"


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(rendered(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print("\n\n".join(build() for build in BLOCKS.values()))

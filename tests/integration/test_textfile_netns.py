# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's node_exporter textfile (tcp_memory_textfile_dir), written by a real run of the role
inside a network namespace this test creates (what a container sees: tcp_mem absent, net.core.*
read-only), checked with promtool and read back against the facts and recommendation the role used.

Only per-namespace keys are written, and only inside the namespace (see conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
from conftest import ansible_playbook, ns_value

ROOT = Path(__file__).resolve().parents[2]
TEXTFILE = "netstack_tcp_memory.prom"
PROM_TEMPLATE = ROOT / "roles" / "tcp_memory" / "templates" / "tcp_memory.prom.j2"
WANTED_RMEM = "4096 131072 9437184"


def promtool() -> str:
    binary = shutil.which("promtool")
    # Not a skip: `make test` installs it (tests/hosts/install-deps.sh, Debian package prometheus).
    assert binary, "promtool is not installed: run tests/hosts/install-deps.sh (Debian package prometheus)"
    return binary


def promtool_check(path: Path) -> None:
    """`promtool check metrics` reads the exposition format on stdin and lints names, HELP and TYPE."""
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=path.read_text(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def samples(path: Path) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """(metric name, sorted labels) -> value, from a text-format file without timestamps."""
    values = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        assert match, f"not a sample line: {line!r}"
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")))
        values[(match.group(1), labels)] = float(match.group(3))
    return values


def tcp_mem(source: str, threshold: str) -> Tuple[str, Tuple[Tuple[str, str], ...]]:
    return ("netstack_tcp_mem_pages", (("source", source), ("threshold", threshold)))


def run_role(netns: str, collections: str, tmp_path: Path, extra: Dict[str, Any], check: bool = False):
    """The role in the namespace; returns (rc, output, tcp_memory_result or None)."""
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    playbook = tmp_path / "role.yml"
    playbook.write_text(
        "- name: Apply the role\n"
        "  hosts: localhost\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: netstack.tcp_tuning.tcp_memory\n"
        "  post_tasks:\n"
        "    - name: Keep the role's result\n"
        "      ansible.builtin.copy:\n"
        "        content: '{{ tcp_memory_result | to_json }}'\n"
        f"        dest: {result_file}\n"
        '        mode: "0600"\n'
        "      check_mode: false\n"
        "      changed_when: false\n"
    )
    out = ansible_playbook(str(playbook), collections, extra, netns, options=["--check"] if check else [])
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return out.returncode, out.stdout + out.stderr, result


def recap_changed(output: str) -> int:
    return int(re.search(r"localhost\s+:.*changed=(\d+)", output).group(1))


@pytest.fixture
def role_vars(tmp_path) -> Dict[str, Any]:
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    return {
        "tcp_memory_connections": 1000,
        "tcp_memory_sysctl_file": str(tmp_path / "99-netstack-tcp-memory.conf"),
        # A private directory outside the sysctl.d roots: refused unless forced.
        "tcp_memory_sysctl_file_force": True,
        "tcp_memory_overrides": {"net.ipv4.tcp_rmem": WANTED_RMEM},
        "tcp_memory_textfile_dir": str(textfile_dir),
    }


def test_textfile_after_apply_passes_promtool_and_matches_the_facts(netns, collections_path, tmp_path, role_vars):
    textfile = Path(role_vars["tcp_memory_textfile_dir"]) / TEXTFILE

    # Check mode and report-only runs write nothing.
    rc, output, _result = run_role(netns, collections_path, tmp_path, role_vars, check=True)
    assert rc == 0, output
    rc, output, _result = run_role(netns, collections_path, tmp_path, {**role_vars, "tcp_memory_apply": False})
    assert rc == 0, output
    assert not textfile.exists() and not list(textfile.parent.iterdir())

    started = int(time.time())
    rc, output, result = run_role(netns, collections_path, tmp_path, role_vars)
    assert rc == 0, output
    assert ns_value(netns, "net.ipv4.tcp_rmem") == WANTED_RMEM
    promtool_check(textfile)
    values = samples(textfile)
    # Only the file itself in the directory: the temporary file was renamed, not left behind.
    assert [p.name for p in textfile.parent.iterdir()] == [TEXTFILE]
    assert oct(textfile.stat().st_mode & 0o777) == "0o644"

    facts, recommendation = result["facts"], result["recommendation"]
    recommended = [int(n) for n in recommendation["sysctl"]["net.ipv4.tcp_mem"].split()]
    for threshold, pages in zip(("min", "pressure", "max"), recommended):
        assert values[tcp_mem("recommended", threshold)] == pages
    # In a network namespace tcp_mem is not visible: no live series rather than a guess.
    assert facts["sysctl"]["net.ipv4.tcp_mem"]["present"] is False
    assert not [key for key in values if key[1] and ("source", "live") in key[1]]
    assert values[("netstack_tcp_memory_target_connections", ())] == 1000
    assert values[("netstack_tcp_memory_page_size_bytes", ())] == facts["page_size_bytes"]
    assert values[("netstack_tcp_memory_expected_peak_pages", ())] == recommendation["estimate"]["steady_state_pages"]
    applied_at = values[("netstack_tcp_memory_last_apply_timestamp_seconds", ())]
    assert started <= applied_at <= time.time()

    # A rerun that changes nothing leaves the file alone, its apply time included.
    before = textfile.read_text()
    rc, output, _result = run_role(netns, collections_path, tmp_path, role_vars)
    assert rc == 0 and recap_changed(output) == 0, output
    assert textfile.read_text() == before

    # A run that changes a value records a new apply time.
    time.sleep(1.1)
    changed_vars = {**role_vars, "tcp_memory_overrides": {"net.ipv4.tcp_rmem": "4096 131072 10485760"}}
    rc, output, _result = run_role(netns, collections_path, tmp_path, changed_vars)
    assert rc == 0, output
    promtool_check(textfile)
    assert samples(textfile)[("netstack_tcp_memory_last_apply_timestamp_seconds", ())] > applied_at


@pytest.mark.parametrize(
    "directory, message",
    [
        ("relative/dir", "tcp_memory_textfile_dir must be an absolute path, got relative/dir"),
        ("/nonexistent/netstack-textfile", "tcp_memory_textfile_dir=/nonexistent/netstack-textfile is not a directory"),
    ],
)
def test_bad_textfile_dir_fails_naming_it_before_anything_changes(
    netns, collections_path, tmp_path, role_vars, directory, message
):
    before = ns_value(netns, "net.ipv4.tcp_rmem")
    rc, output, _result = run_role(
        netns, collections_path, tmp_path, {**role_vars, "tcp_memory_textfile_dir": directory}
    )
    assert rc != 0 and message in output, output
    assert ns_value(netns, "net.ipv4.tcp_rmem") == before
    assert not Path(role_vars["tcp_memory_sysctl_file"]).exists()


def test_live_thresholds_where_tcp_mem_is_visible(collections_path, tmp_path):
    """Where the role can see and set tcp_mem (a host, not a namespace), the live series follows the
    apply result: the value read back after `set`, the value found when unchanged. Rendered with the
    role's template through ansible, from an apply result shaped as sysctl_dropin returns it."""
    cases = {
        "set": {"before": "1000 2000 3000", "after": "4000 5000 6000", "action": "set"},
        "unchanged": {"before": "4000 5000 6000", "after": "4000 5000 6000", "action": "unchanged"},
    }
    for name, entry in cases.items():
        variables = {
            "__tcp_memory_applied": {"keys": {"net.ipv4.tcp_mem": entry}},
            "__tcp_memory_recommendation": {
                "sysctl": {"net.ipv4.tcp_mem": "4000 5000 6000"},
                "estimate": {"steady_state_pages": 3750},
            },
            "__tcp_memory_facts": {"page_size_bytes": 4096},
            "tcp_memory_connections": 2500,
            "__tcp_memory_last_apply_seconds": 1700000000,
        }
        out = tmp_path / f"{name}.prom"
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        playbook = tmp_path / "render.yml"
        playbook.write_text(
            "- name: Render the textfile template\n"
            "  hosts: localhost\n"
            "  gather_facts: false\n"
            "  tasks:\n"
            "    - name: Render\n"
            "      ansible.builtin.template:\n"
            f"        src: {PROM_TEMPLATE}\n"
            f"        dest: {out}\n"
            '        mode: "0644"\n'
        )
        options = ["-e", f"@{tmp_path / 'vars.json'}", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]
        run = ansible_playbook(str(playbook), collections_path, options=options, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        promtool_check(out)
        values = samples(out)
        live = [values[tcp_mem("live", threshold)] for threshold in ("min", "pressure", "max")]
        assert live == [4000, 5000, 6000], (name, live)
        assert values[tcp_mem("recommended", "pressure")] == 5000
        assert values[("netstack_tcp_memory_last_apply_timestamp_seconds", ())] == 1700000000


def test_readme_alert_rule_compares_node_sockstat_with_the_pressure_threshold(tmp_path):
    """The role README's example alert is valid and fires exactly when pages in use pass 80% of the
    live tcp_mem[1] that the textfile exports (promtool check rules, promtool test rules)."""
    readme = (ROOT / "roles" / "tcp_memory" / "README.md").read_text()
    rules = re.search(r"```yaml\n(groups:\n.*?)```", readme, re.S)
    assert rules, "no alert rule example in roles/tcp_memory/README.md"
    (tmp_path / "rules.yml").write_text(rules.group(1))
    check = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr

    def series(name: str, labels: str, value: int) -> Dict[str, str]:
        return {"series": f"{name}{{{labels}}}", "values": f"{value}x10"}

    live = 'source="live",threshold="pressure"'
    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # edge-1: 12000 pages in use, pressure at 14133: past 80% of it.
                    series("node_sockstat_TCP_mem", 'instance="edge-1"', 12000),
                    series("netstack_tcp_mem_pages", f'instance="edge-1",{live}', 14133),
                    series("netstack_tcp_mem_pages", 'instance="edge-1",source="live",threshold="max"', 21198),
                    series("netstack_tcp_mem_pages", 'instance="edge-1",source="recommended",threshold="pressure"', 9),
                    # core-1: far below its pressure threshold.
                    series("node_sockstat_TCP_mem", 'instance="core-1"', 341),
                    series("netstack_tcp_mem_pages", f'instance="core-1",{live}', 383867),
                ],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "TCPMemoryNearPressure", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "TCPMemoryNearPressure",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "instance": "edge-1"},
                                "exp_annotations": {
                                    "summary": "edge-1: TCP buffers at 12000 pages, near tcp_mem pressure"
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "rules_test.yml").write_text(json.dumps(unit_test))
    run = subprocess.run(
        [promtool(), "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two sysctl_dropin runs against one host at once, round after round.

Each round starts two runs of the module at the same moment in one network namespace, on the same
drop-in in a private sysctl.d, with different values. Serialised by the module's lock, both must
succeed and the file and the namespace's kernel must then hold the same values, one run's values
whole. Without the lock, plans, file writes, live writes and read-backs interleave: the file says
one value and the kernel holds another, or a run fails with "the kernel kept" another run's value.

The module is run as Ansible runs it on a target (its file with the arguments file as argv[1]),
not through `ansible`, so that both start within milliseconds of each other and a round costs
well under a second. NETSTACK_TEST_COLLECTIONS selects another tree, NETSTACK_CONCURRENCY_ROUNDS
the number of rounds (20).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
from conftest import dropin_root, ns_value

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = os.environ.get("NETSTACK_TEST_COLLECTIONS", str(ROOT / ".cache/dev"))
MODULE = Path(COLLECTIONS) / "ansible_collections/netstack/tcp_tuning/plugins/modules/sysctl_dropin.py"
ROUNDS = int(os.environ.get("NETSTACK_CONCURRENCY_ROUNDS", "20"))
KEYS = ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")
VALUES = {
    "a": {"net.ipv4.tcp_rmem": "4096 131072 7340032", "net.ipv4.tcp_wmem": "4096 32768 5242880"},
    "b": {"net.ipv4.tcp_rmem": "4096 262144 8388608", "net.ipv4.tcp_wmem": "4096 65536 6291456"},
}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2 (network namespaces)"
)


def file_values(path: Path) -> Dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = " ".join(value.split())
    return values


def start(netns: str, args_file: Path) -> subprocess.Popen:
    command = ["ip", "netns", "exec", netns, sys.executable, str(MODULE), str(args_file)]
    environment = dict(os.environ, PYTHONPATH=COLLECTIONS)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def result_of(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=120)
    try:
        return json.loads(stdout)
    except ValueError:
        raise AssertionError(f"no module result (rc {process.returncode}): {stdout}\n{stderr}") from None


def test_two_runs_at_once_leave_file_and_kernel_agreeing_every_round(netns, tmp_path):
    root = dropin_root(tmp_path / "root")  # its proc is the real /proc; both runs take root's lock file
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    args_files = {}
    for name, settings in VALUES.items():
        args = {
            "path": str(dropin),
            "settings": settings,
            "root": str(root),
            "_ansible_remote_tmp": str(tmp_path / "remote_tmp"),
        }
        args_files[name] = tmp_path / f"args-{name}.json"
        args_files[name].write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    host_before = {key: Path("/proc/sys/" + key.replace(".", "/")).read_text() for key in KEYS}

    problems = []
    for round_number in range(ROUNDS):
        order = ("a", "b") if round_number % 2 == 0 else ("b", "a")
        processes = {name: start(netns, args_files[name]) for name in order}
        results = {name: result_of(process) for name, process in processes.items()}
        failed = {name: result["msg"] for name, result in results.items() if result.get("failed")}
        in_file = {key: file_values(dropin).get(key) for key in KEYS}
        in_kernel = {key: ns_value(netns, key) for key in KEYS}
        if failed or in_file != in_kernel or in_file not in VALUES.values():
            problems.append(f"round {round_number}: failed {failed}, file {in_file}, kernel {in_kernel}")
    assert not problems, "\n".join(problems)
    assert {key: Path("/proc/sys/" + key.replace(".", "/")).read_text() for key in KEYS} == host_before

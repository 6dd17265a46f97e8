# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tune playbook's rolling rollout against five podman containers (tests/hosts/container.sh:
rootful, runc, --network none, so each has its own network namespace and only per-namespace keys
are written). The third host's /etc/sysctl.d is a read-only bind mount: sysctl_dropin fails there
after the canary and the first host of the second batch were tuned. The run must stop at once:
the hosts of the third batch are never touched. Every container is removed, also on failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
from conftest import ROOT, VENV_BIN, ansible_env

CONTAINER_SH = ROOT / "tests/hosts/container.sh"
CONTAINERS_CONF = ROOT / "tests/hosts/containers.conf"
HOSTS = [f"netstack-rollout-{index}" for index in range(1, 6)]
READ_ONLY_HOST = HOSTS[2]
DROPIN = "/etc/sysctl.d/99-netstack-tcp-memory.conf"
WANTED_RMEM = "4096 131072 7340032"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("podman") is None or not (VENV_BIN / "ansible-playbook").exists(),
    reason="needs root, podman and the project venv",
)


def podman(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))
    return subprocess.run(["podman", *arguments], capture_output=True, text=True, env=env, timeout=120, check=check)


def container_state(name: str) -> Dict[str, str]:
    """tcp_rmem, tcp_wmem of the container's namespace and whether the drop-in exists."""
    script = f"cat /proc/sys/net/ipv4/tcp_rmem /proc/sys/net/ipv4/tcp_wmem; test -e {DROPIN} && echo dropin || true"
    lines = podman("exec", name, "sh", "-c", script).stdout.splitlines()
    return {
        "tcp_rmem": " ".join(lines[0].split()),
        "tcp_wmem": " ".join(lines[1].split()),
        "dropin": str(len(lines) > 2 and lines[2] == "dropin"),
    }


@pytest.fixture
def fleet(tmp_path: Path) -> List[str]:
    """Five running containers; the third with a read-only /etc/sysctl.d. Removed whatever happens."""
    image = subprocess.run(
        [str(CONTAINER_SH), "image"],
        capture_output=True,
        text=True,
        env=dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF)),
        timeout=900,
        check=True,
    ).stdout.strip()
    read_only = tmp_path / "sysctl.d"
    read_only.mkdir()
    try:
        for name in HOSTS:
            podman("rm", "--force", "--time", "0", "--ignore", name)
            mount = ["-v", f"{read_only}:/etc/sysctl.d:ro"] if name == READ_ONLY_HOST else []
            podman(
                *("run", "--detach", "--name", name, "--hostname", name, "--label", "netstack.test-host=1"),
                *("--privileged", "--network", "none", *mount, image),
                *("sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"),
            )
        yield HOSTS
    finally:
        for name in HOSTS:
            podman("rm", "--force", "--time", "0", "--ignore", name, check=False)


def run_tune(inventory: Path, collections: str, extra_vars: Dict) -> subprocess.CompletedProcess:
    env = ansible_env(collections, CONTAINERS_CONF=str(CONTAINERS_CONF))
    command = [str(VENV_BIN / "ansible-playbook"), "netstack.tcp_tuning.tune", "-i", str(inventory)]
    command += ["-e", json.dumps(extra_vars)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)


def test_a_host_failing_after_the_canary_stops_the_run_and_later_batches_are_untouched(
    fleet, collections_path, tmp_path
):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[fleet]\n"
        + "".join(f"{name}\n" for name in fleet)
        + "[fleet:vars]\nansible_connection=containers.podman.podman\n"
        + "ansible_python_interpreter=/usr/bin/python3\n"
    )
    before = {name: container_state(name) for name in fleet}
    assert all(state["tcp_rmem"] != WANTED_RMEM for state in before.values())

    # Batches: [1] canary, [2, 3], [4, 5]. Host 3 fails in the second batch.
    run = run_tune(
        inventory,
        collections_path,
        {
            "tcp_memory_connections": 5000,
            "tcp_memory_overrides": {"net.ipv4.tcp_rmem": WANTED_RMEM},
            "tcp_memory_serial": [1, 2],
            "tcp_memory_cgroups": False,
        },
    )
    text = run.stdout + run.stderr
    assert run.returncode != 0, text
    after = {name: container_state(name) for name in fleet}

    # The canary and the other host of the failing batch were tuned.
    for name in fleet[:2]:
        assert after[name]["tcp_rmem"] == WANTED_RMEM and after[name]["dropin"] == "True", (name, after[name], text)
    # The failing host: refused to write its drop-in, nothing changed there.
    assert after[READ_ONLY_HOST] == before[READ_ONLY_HOST], text
    assert f"fatal: [{READ_ONLY_HOST}]" in text and f"writing {DROPIN} failed" in text, text
    # The third batch never ran: no task, no change.
    for name in fleet[3:]:
        assert after[name] == before[name], (name, text)
        assert f"[{name}]" not in text, text
    # The canary was measured again after its batch (the status check ran).
    assert "Measure again the hosts this batch changed" in text and f"ok: [{fleet[0]}]" in text, text

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sysctl_dropin module against a real kernel, inside a network namespace this test creates.

Only per-namespace keys (net.ipv4.tcp_rmem, net.ipv4.tcp_wmem) are written, and only inside the
namespace; the host's values are read before and after to prove they did not move.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / ".venv/bin/ansible"
HOST_PROC_SYS = Path("/proc/sys/net/ipv4")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or not ANSIBLE.exists(),
    reason="needs root, iproute2 and the project venv",
)


def host_values() -> Dict[str, str]:
    return {name: (HOST_PROC_SYS / name).read_text() for name in ("tcp_rmem", "tcp_wmem")}


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"netstack-dropin-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def ns_value(netns: str, key: str) -> str:
    path = "/proc/sys/" + key.replace(".", "/")
    out = subprocess.run(["ip", "netns", "exec", netns, "cat", path], check=True, capture_output=True, text=True)
    return " ".join(out.stdout.split())


def run_module(netns: str, check: bool = False, **args: Any) -> Dict[str, Any]:
    """Run the module through ansible's ad-hoc command inside the namespace and parse its one-line result."""
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache/dev"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        # The target is this machine's system Python (a module must run on 3.8+), not whatever
        # interpreter discovery finds first on PATH.
        ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
    )
    command = ["ip", "netns", "exec", netns, str(ANSIBLE), "localhost", "-c", "local", "-i", "localhost,", "-o"]
    command += ["--check"] if check else []
    command += ["-m", "netstack.tcp_tuning.sysctl_dropin", "-a", json.dumps(args)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    line = next((line for line in out.stdout.splitlines() if line.startswith("localhost |")), None)
    assert line, out.stdout + out.stderr
    status, payload = line.split("=>", 1)
    result = json.loads(payload)
    # The one-line callback states failure in the status column, not always in the payload.
    result["failed"] = "FAILED" in status or bool(result.get("failed"))
    return result


def test_applies_in_the_namespace_only_is_idempotent_and_rolls_back_a_refused_value(netns, tmp_path):
    host_before = host_values()
    dropin = tmp_path / "99-netstack-tcp-memory.conf"
    common = {"path": str(dropin), "search_roots": [str(tmp_path)], "sysctl_conf": str(tmp_path / "sysctl.conf")}
    wanted = {"net.ipv4.tcp_rmem": "4096 131072 7340032", "net.ipv4.tcp_wmem": "4096 32768 5242880"}
    ns_before = {key: ns_value(netns, key) for key in wanted}
    assert ns_before != wanted, "pick values that differ from the kernel defaults"

    check = run_module(netns, check=True, settings=wanted, **common)
    assert check["changed"] and not dropin.exists(), check
    assert {key: ns_value(netns, key) for key in wanted} == ns_before

    first = run_module(netns, settings=wanted, **common)
    assert first["changed"], first
    assert {key: ns_value(netns, key) for key in wanted} == wanted
    assert "net.ipv4.tcp_wmem = 4096 32768 5242880" in dropin.read_text()
    assert host_values() == host_before

    second = run_module(netns, settings=wanted, **common)
    assert not second["changed"], second

    # Global keys are read-only in a non-initial namespace: refused up front unless skipped.
    readonly = run_module(netns, settings={**wanted, "net.core.rmem_max": "7340032"}, **common)
    assert readonly["failed"] and "net.core.rmem_max is read-only here" in readonly["msg"]
    skipped = run_module(
        netns, settings={**wanted, "net.core.rmem_max": "7340032"}, skip={"net.core.rmem_max": "global"}, **common
    )
    assert not skipped["changed"] and skipped["keys"]["net.core.rmem_max"]["action"] == "skipped"

    # The kernel refuses a 0 maximum (minimum 1) but stores the numbers before it: a half-applied
    # vector. tcp_rmem is written first and must be restored too, as must the previous file.
    previous_file = dropin.read_text()
    refused = {"net.ipv4.tcp_rmem": "4096 131072 8388608", "net.ipv4.tcp_wmem": "4096 65536 0"}
    failed = run_module(netns, settings=refused, **common)
    assert failed["failed"], failed
    assert "net.ipv4.tcp_wmem: wrote '4096 65536 0', the kernel refused it" in failed["msg"]
    assert failed["rollback"]["live"] == {"net.ipv4.tcp_wmem": "restored", "net.ipv4.tcp_rmem": "restored"}
    assert failed["rollback"]["file"] == "restored"
    assert {key: ns_value(netns, key) for key in wanted} == wanted
    assert dropin.read_text() == previous_file
    assert host_values() == host_before

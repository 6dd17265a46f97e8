# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sysctl_dropin module and the tcp_memory role against a real kernel, inside a network
namespace this test creates (what a container sees: global keys absent or read-only).

Only per-namespace keys (net.ipv4.tcp_rmem, net.ipv4.tcp_wmem) are written, and only inside the
namespace; the host's values are read before and after to prove they did not move. The tune playbook's
apply in a namespace and the report's read-only run on the host are in test_playbooks_netns.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
from conftest import (
    VENV_BIN,
    ansible_adhoc,
    ansible_env,
    ansible_playbook,
    case_failures,
    cases_inventory,
    dropin_root,
    ns_value,
    real_kernel_ready,
)

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = str(ROOT / ".cache/dev")
HOST_PROC_SYS = Path("/proc/sys/net/ipv4")

pytestmark = pytest.mark.skipif(bool(real_kernel_ready()), reason=real_kernel_ready() or "ready")


def host_values() -> Dict[str, str]:
    return {name: (HOST_PROC_SYS / name).read_text() for name in ("tcp_rmem", "tcp_wmem")}


def run_playbook(
    playbook: str, extra_vars: Dict[str, Any], netns: Optional[str] = None, check: bool = False, key_values: str = ""
):
    """ansible-playbook netstack.tcp_tuning.<playbook> on localhost (conftest's); returns (returncode, output).

    key_values is passed as a second -e in key=value form, where every value is a string (as operators type it).
    """
    options = ["--diff"] + (["--check"] if check else []) + (["-e", key_values] if key_values else [])
    out = ansible_playbook(f"netstack.tcp_tuning.{playbook}", COLLECTIONS, extra_vars, netns, options)
    return out.returncode, out.stdout + out.stderr


def recap_changed(output: str) -> int:
    return int(re.search(r"localhost\s+:.*changed=(\d+)", output).group(1))


def run_module(netns: str, check: bool = False, **args: Any) -> Dict[str, Any]:
    """The module through ansible's ad-hoc command inside the namespace (conftest's), `failed` always set."""
    options = ["--check"] if check else []
    result = ansible_adhoc("netstack.tcp_tuning.sysctl_dropin", args, COLLECTIONS, netns, timeout=120, options=options)
    result["failed"] = bool(result.get("failed"))
    return result


def test_applies_in_the_namespace_only_is_idempotent_and_rolls_back_a_refused_value(netns, tmp_path):
    host_before = host_values()
    root = dropin_root(tmp_path)  # proc/sys is the namespace's own; the files and the lock are private
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    common = {"path": str(dropin), "root": str(root)}
    wanted = {"net.ipv4.tcp_rmem": "4096 131072 7340032", "net.ipv4.tcp_wmem": "4096 32768 5242880"}
    ns_before = {key: ns_value(netns, key) for key in wanted}
    assert ns_before != wanted, "pick values that differ from the kernel defaults"

    check = run_module(netns, check=True, settings=wanted, **common)
    assert check["changed"] and check["file_would_change"] and not check["file_changed"], check
    assert not dropin.exists()
    assert {key: ns_value(netns, key) for key in wanted} == ns_before

    first = run_module(netns, settings=wanted, **common)
    assert first["changed"], first
    assert {key: ns_value(netns, key) for key in wanted} == wanted
    assert "net.ipv4.tcp_wmem = 4096 32768 5242880" in dropin.read_text()
    assert host_values() == host_before

    second = run_module(netns, settings=wanted, **common)
    assert not second["changed"], second

    # Global keys are read-only in a non-initial namespace: refused up front (test_bad_input_dropin_netns.py, the
    # case ok-global-key-read-only-here, shows it changes nothing) unless skipped.
    skipped = run_module(
        netns, settings={**wanted, "net.core.rmem_max": "7340032"}, skip={"net.core.rmem_max": "global"}, **common
    )
    assert not skipped["changed"] and skipped["keys"]["net.core.rmem_max"]["action"] == "skipped"

    # The module refuses a 0 in a memory triple itself; the kernel refuses udp_rmem_min 0 (its minimum
    # is 1, net/ipv4/sysctl_net_ipv4.c), which sorts after the tcp_ keys: tcp_rmem and tcp_wmem are
    # written first and must be restored, as must the previous file.
    previous_file = dropin.read_text()
    udp_rmem_min = ns_value(netns, "net.ipv4.udp_rmem_min")
    refused = {
        "net.ipv4.tcp_rmem": "4096 131072 8388608",
        "net.ipv4.tcp_wmem": "4096 65536 6291456",
        "net.ipv4.udp_rmem_min": "0",
    }
    failed = run_module(netns, settings=refused, **common)
    assert failed["failed"], failed
    assert "net.ipv4.udp_rmem_min: wrote '0', the kernel refused it" in failed["msg"]
    assert failed["rollback"]["live"] == {
        "net.ipv4.udp_rmem_min": "restored",
        "net.ipv4.tcp_wmem": "restored",
        "net.ipv4.tcp_rmem": "restored",
    }
    assert failed["rollback"]["file"] == "restored"
    assert failed["file_would_change"] and not failed["file_changed"] and not failed["changed"]
    assert {key: ns_value(netns, key) for key in wanted} == wanted
    assert ns_value(netns, "net.ipv4.udp_rmem_min") == udp_rmem_min
    assert dropin.read_text() == previous_file
    assert host_values() == host_before


def test_role_with_apply_false_from_the_command_line_changes_nothing(netns, tmp_path):
    # -e tcp_memory_apply=false arrives as the string "false", truthy in Jinja: the role must read it as a bool.
    dropin = tmp_path / "99-netstack-tcp-memory.conf"
    wanted_rmem = "4096 131072 9437184"
    ns_before = ns_value(netns, "net.ipv4.tcp_rmem")
    assert ns_before != wanted_rmem
    extra = {
        "tcp_memory_connections": 1000,
        "tcp_memory_sysctl_file": str(dropin),
        # A private directory outside the sysctl.d roots: refused unless forced.
        "tcp_memory_sysctl_file_force": True,
        "tcp_memory_overrides": {"net.ipv4.tcp_rmem": wanted_rmem},
    }
    rc, output = run_playbook("tune", extra, netns=netns, key_values="tcp_memory_apply=false tcp_memory_best_effort=no")
    assert rc == 0, output
    assert "(tcp_memory_apply=false: report only)" in output, output
    assert f"net.ipv4.tcp_rmem: {ns_before} -> {wanted_rmem} [set" in output
    assert recap_changed(output) == 0, output
    assert not dropin.exists() and ns_value(netns, "net.ipv4.tcp_rmem") == ns_before


# (case, role variables, the message its failure must hold); all in one run of the role, one host per case.
BAD_ROLE_INPUT = [
    ("connections-negative", {"tcp_memory_connections": -5}, "tcp_memory_connections must be a positive integer"),
    # The filter's own message, naming its argument (overrides = tcp_memory_overrides).
    (
        "override-unknown-key",
        {"tcp_memory_overrides": {"net.ipv4.tcp_foo": "1"}},
        "Nothing was changed. recommend_tcp_memory: tcp_memory_overrides: unknown key 'net.ipv4.tcp_foo'",
    ),
    (
        "override-bool",
        {"tcp_memory_overrides": {"net.ipv4.tcp_moderate_rcvbuf": True}},
        "Nothing was changed. recommend_tcp_memory: tcp_memory_overrides['net.ipv4.tcp_moderate_rcvbuf']"
        " must be an integer or a string of integers, got True",
    ),
    (
        "override-triple-out-of-order",
        {"tcp_memory_overrides": {"net.ipv4.tcp_rmem": "4096 131072 100"}},
        "Nothing was changed. recommend_tcp_memory: tcp_memory_overrides['net.ipv4.tcp_rmem']"
        " must satisfy min <= default <= max, got '4096 131072 100'",
    ),
    ("profile-unknown", {"tcp_memory_profile": "huge"}, "tcp_memory_profile must be one of"),
]


def test_role_rejects_bad_input_naming_the_variable_before_writing(netns, tmp_path):
    """Each case is a host of one run (conftest's cases_inventory), each with its own drop-in path."""
    ns_before = ns_value(netns, "net.ipv4.tcp_rmem")
    dropins = {case: tmp_path / case / "99-netstack-tcp-memory.conf" for case, _extra, _message in BAD_ROLE_INPUT}
    cases = {
        case: {"tcp_memory_connections": 1000, "tcp_memory_sysctl_file": str(dropins[case]), **extra}
        for case, extra, _message in BAD_ROLE_INPUT
    }
    run = cases_inventory(tmp_path, cases)
    # Not check mode: the input checks alone must stop the run.
    out = ansible_playbook(str(run["playbook"]), COLLECTIONS, netns_name=netns, inventory=str(run["inventory"]))
    output = out.stdout + out.stderr
    assert out.returncode != 0, output
    failures = case_failures(output, cases)
    for case, _extra, message in BAD_ROLE_INPUT:
        assert message in failures[case], (case, output)
        assert not dropins[case].exists(), case
    assert ns_value(netns, "net.ipv4.tcp_rmem") == ns_before


def test_tune_without_root_shows_the_diff_in_check_mode_and_otherwise_stops_first_saying_so(netns, tmp_path):
    """Without root, check mode failed with "read-only here ...; pass it in skip" and a real run with a bare
    "[Errno 13] Permission denied" on the lock file. Run as nobody: the default drop-in path is only read."""
    home = Path(tempfile.mkdtemp(prefix="netstack-nobody-home-"))
    os.chown(home, 65534, 65534)
    wanted_rmem = "4096 131072 9437184"
    ns_before = ns_value(netns, "net.ipv4.tcp_rmem")
    extra = {"tcp_memory_connections": 1000, "tcp_memory_overrides": {"net.ipv4.tcp_rmem": wanted_rmem}}
    command = ["ip", "netns", "exec", netns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    command += [str(VENV_BIN / "ansible-playbook"), "netstack.tcp_tuning.tune", "-i", "localhost,", "-c", "local"]
    command += ["-e", json.dumps(extra), "--diff"]
    env = ansible_env(
        COLLECTIONS, HOME=str(home), ANSIBLE_REMOTE_TMP=f"{home}/remote", ANSIBLE_LOCAL_TEMP=f"{home}/local"
    )
    try:
        dry = subprocess.run([*command, "--check"], capture_output=True, text=True, env=env, timeout=300, check=False)
        real = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    finally:
        shutil.rmtree(home)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"net.ipv4.tcp_rmem: {ns_before} -> {wanted_rmem} [set" in dry.stdout, dry.stdout
    assert real.returncode != 0
    stopped = [line for line in real.stdout.splitlines() if "needs root on localhost" in line]
    # One sentence (Ansible shows it as the [ERROR] line and in the task's result).
    assert stopped and all("--become" in line and "tcp_memory_become=true" in line for line in stopped), real.stdout
    assert "Stop when not running as root" in real.stdout
    assert "Permission denied" not in real.stdout and ns_value(netns, "net.ipv4.tcp_rmem") == ns_before

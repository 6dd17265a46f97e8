# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Undo (sysctl_dropin state=absent, the untune playbook) against a real kernel, inside a network
namespace this test creates. Only per-namespace keys (tcp_rmem, tcp_wmem) are written, only there;
the drop-in and the sysctl.d directories are private directories under tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
from conftest import ansible_adhoc, ansible_playbook, case_failures, cases_inventory, dropin_root, real_kernel_ready
from test_playbooks_netns import ns_value, output, recap_changed, run_playbook

pytestmark = pytest.mark.skipif(bool(real_kernel_ready()), reason=real_kernel_ready() or "ready")

RMEM, WMEM = "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"
TUNED = {RMEM: "4096 131072 7340032", WMEM: "4096 32768 5242880"}
HOST_KEYS = ("/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem")


def host_values():
    return [Path(path).read_text() for path in HOST_KEYS]


def module(collections: str, netns: str, args: Dict[str, Any], check: bool = False) -> Dict[str, Any]:
    """sysctl_dropin through conftest's ad-hoc run in the namespace, with --diff (and --check)."""
    options = ["--diff"] + (["--check"] if check else [])
    result = ansible_adhoc("netstack.tcp_tuning.sysctl_dropin", args, collections, netns, timeout=120, options=options)
    result["failed"] = bool(result.get("failed"))
    return result


def test_module_undo_restores_the_later_file_or_the_boot_value_and_is_idempotent(collections_path, netns, tmp_path):
    host_before = host_values()
    root = dropin_root(tmp_path)  # proc/sys is the namespace's own; the files and the lock are private
    etc, usr = root / "etc/sysctl.d", root / "usr/lib/sysctl.d"
    dropin = etc / "99-netstack-tcp-memory.conf"
    common = {"path": str(dropin), "root": str(root)}
    start = {key: ns_value(netns, key) for key in TUNED}
    assert start != TUNED
    applied = module(collections_path, netns, {**common, "settings": TUNED})
    assert applied["changed"] and {key: ns_value(netns, key) for key in TUNED} == TUNED, applied

    # A later file sets tcp_wmem: it wins once the drop-in is gone. tcp_rmem goes back to the boot value.
    (usr / "zz-local.conf").write_text(f"{WMEM} = 4096 16384 3145728\n")
    undo = {**common, "state": "absent", "boot_defaults": {RMEM: start[RMEM]}}
    dry = module(collections_path, netns, undo, check=True)
    assert dry["changed"] and dry["keys"][WMEM]["after"] == "4096 16384 3145728", dry
    assert dry["file_would_change"] and not dry["file_changed"]
    assert dropin.exists() and {key: ns_value(netns, key) for key in TUNED} == TUNED

    done = module(collections_path, netns, undo)
    assert done["changed"] and done["file_changed"] and not dropin.exists(), done
    assert ns_value(netns, RMEM) == start[RMEM]
    assert ns_value(netns, WMEM) == "4096 16384 3145728"
    assert done["keys"][WMEM]["source"] == "file" and "zz-local.conf line 1" in done["keys"][WMEM]["reason"]

    again = module(collections_path, netns, undo)
    assert not again["changed"] and again["keys"] == {}, again
    assert host_values() == host_before


def test_untune_playbook_restores_the_recorded_per_namespace_values_and_a_second_run_changes_nothing(
    collections_path, netns, tmp_path
):
    """In a namespace, untune left tcp_wmem at the tuned value although the drop-in recorded the namespace's own
    value before the first run; now a named value wins (tcp_rmem) and the record is restored (tcp_wmem). An undo
    value for a key the collection does not manage is refused first, changing nothing, as is an undo of a file
    this collection did not write (never removed)."""
    host_before = host_values()
    dropin = tmp_path / "99-netstack-tcp-memory.conf"
    start = {key: ns_value(netns, key) for key in TUNED}
    common = {"tcp_memory_sysctl_file": str(dropin), "tcp_memory_sysctl_file_force": True}
    tune = run_playbook(
        "tune", {**common, "tcp_memory_connections": 1000, "tcp_memory_overrides": TUNED}, collections_path, netns
    )
    assert tune.returncode == 0 and {key: ns_value(netns, key) for key in TUNED} == TUNED, output(tune)
    assert f"# before netstack.tcp_tuning: {WMEM} = {start[WMEM]}" in dropin.read_text()

    # Two refusals on the undo path, each a host of one run of the role (conftest's cases_inventory): the role's one
    # check (sysctl_dropin would set any existing key), and a file this collection did not write, never removed.
    dropin_before, syncookies_before = dropin.read_bytes(), ns_value(netns, "net.ipv4.tcp_syncookies")
    wrong = "0" if syncookies_before != "0" else "2"
    foreign = tmp_path / "foreign" / "99-netstack-tcp-memory.conf"
    foreign.parent.mkdir()
    foreign.write_text(f"{RMEM} = 4096 131072 7340032\n")
    cases = {
        "unmanaged-key": {**common, "tcp_memory_undo_values": {"net.ipv4.tcp_syncookies": wrong}},
        "foreign-file": {"tcp_memory_sysctl_file": str(foreign), "tcp_memory_sysctl_file_force": True},
    }
    run = cases_inventory(tmp_path, {name: {**case, "tcp_memory_state": "absent"} for name, case in cases.items()})
    refused = ansible_playbook(
        str(run["playbook"]), collections_path, netns_name=netns, inventory=str(run["inventory"])
    )
    assert refused.returncode != 0, output(refused)
    failures = case_failures(output(refused), cases)
    message = "tcp_memory_undo_values names keys this collection does not manage: net.ipv4.tcp_syncookies"
    assert message in failures["unmanaged-key"], output(refused)
    assert "was not written by this collection" in failures["foreign-file"], output(refused)
    assert foreign.read_text() == f"{RMEM} = 4096 131072 7340032\n"
    assert ns_value(netns, "net.ipv4.tcp_syncookies") == syncookies_before
    assert dropin.read_bytes() == dropin_before and {key: ns_value(netns, key) for key in TUNED} == TUNED

    named_rmem = "4096 131072 6000000"
    untune_vars = {**common, "tcp_memory_undo_values": {RMEM: named_rmem}}
    # A misspelt variable is named on the undo path too (the undo there runs with the values recorded).
    dry = run_playbook(
        "untune", {**untune_vars, "tcp_memory_undo_value": {}}, collections_path, netns, options=["--check", "--diff"]
    )
    assert dry.returncode == 0 and dropin.exists(), output(dry)
    assert "tcp_memory_undo_value is not a variable of the role" in " ".join(output(dry).split())
    assert "did you mean tcp_memory_undo_values?" in output(dry)
    assert f"{RMEM}: {TUNED[RMEM]} -> {named_rmem} [set" in output(dry)
    assert f"{WMEM}: {TUNED[WMEM]} -> {start[WMEM]} [set: restored to the value before this collection" in output(dry)
    assert ns_value(netns, RMEM) == TUNED[RMEM]
    # tcp_memory_apply=false (not check mode): the same plan, reported, and nothing removed or restored.
    report_only = run_playbook("untune", {**untune_vars, "tcp_memory_apply": False}, collections_path, netns)
    assert report_only.returncode == 0 and recap_changed(output(report_only)) == 0, output(report_only)
    assert f"{WMEM}: {TUNED[WMEM]} -> {start[WMEM]} [set: restored to the value before this collection" in output(
        report_only
    )
    assert dropin.exists() and {key: ns_value(netns, key) for key in TUNED} == TUNED

    undo = run_playbook("untune", untune_vars, collections_path, netns)
    assert undo.returncode == 0 and not dropin.exists(), output(undo)
    assert ns_value(netns, RMEM) == named_rmem and ns_value(netns, WMEM) == start[WMEM]

    second = run_playbook("untune", untune_vars, collections_path, netns)
    assert second.returncode == 0 and recap_changed(output(second)) == 0, output(second)
    assert host_values() == host_before

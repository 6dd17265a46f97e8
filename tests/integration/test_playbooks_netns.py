# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tune and report playbooks as users run them, with the ansible-core next to this interpreter
(`make compat` runs this file once per release: 2.16, 2.17, 2.18 and 2.19).

tune writes only per-namespace keys, inside a namespace this test creates, to a drop-in in tmp_path.
report is read-only; it runs inside the namespace too, except where it must run as another user.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from conftest import VENV_BIN, ansible_env, real_kernel_ready

pytestmark = pytest.mark.skipif(bool(real_kernel_ready()), reason=real_kernel_ready() or "ready")

WANTED_RMEM = "4096 131072 7340032"


def playbook_env(collections: str, drop: tuple = ()) -> Dict[str, str]:
    env = ansible_env(collections)
    for name in drop:
        env.pop(name, None)
    return env


def run_playbook(
    name: str,
    extra_vars: Dict[str, Any],
    collections: str,
    netns: Optional[str] = None,
    cwd: Optional[Path] = None,
    drop_env: tuple = (),
    options: List[str] = (),
) -> subprocess.CompletedProcess:
    command = ["ip", "netns", "exec", netns] if netns else []
    playbook = name if name.endswith(".yml") else f"netstack.tcp_tuning.{name}"  # a path, or one of ours by name
    command += [str(VENV_BIN / "ansible-playbook"), playbook, "-i", "localhost,", "-c", "local"]
    command += ["-e", json.dumps(extra_vars), *options]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=playbook_env(collections, drop_env),
        cwd=cwd,
        timeout=300,
        check=False,
    )


def output(run: subprocess.CompletedProcess) -> str:
    return run.stdout + run.stderr


def recap_changed(text: str) -> int:
    return int(re.search(r"localhost\s+:.*changed=(\d+)", text).group(1))


def ns_value(netns: str, key: str) -> str:
    path = "/proc/sys/" + key.replace(".", "/")
    out = subprocess.run(["ip", "netns", "exec", netns, "cat", path], check=True, capture_output=True, text=True)
    return " ".join(out.stdout.split())


def host_values() -> Dict[str, str]:
    """This machine's own tcp_rmem and tcp_wmem (the initial namespace's), which no test may move."""
    return {name: Path(f"/proc/sys/net/ipv4/{name}").read_text() for name in ("tcp_rmem", "tcp_wmem")}


def read_report(directory: Path) -> Dict[str, Any]:
    return json.loads((directory / "tcp-memory-report.json").read_text(encoding="utf-8"))


def test_tune_applies_in_a_namespace_idempotently_skips_global_keys_and_report_reads_it_back(
    collections_path, netns, tmp_path
):
    host_before = host_values()
    dropin = tmp_path / "99-netstack-tcp-memory.conf"
    before = ns_value(netns, "net.ipv4.tcp_rmem")
    assert before != WANTED_RMEM
    tune_vars = {
        "tcp_memory_connections": 1000,
        "tcp_memory_sysctl_file": str(dropin),
        "tcp_memory_sysctl_file_force": True,  # a private directory outside the sysctl.d roots
        "tcp_memory_overrides": {"net.ipv4.tcp_rmem": WANTED_RMEM},
    }
    dry = run_playbook("tune", tune_vars, collections_path, netns=netns, options=["--check", "--diff"])
    assert dry.returncode == 0, output(dry)
    assert f"net.ipv4.tcp_rmem: {before} -> {WANTED_RMEM} [set" in output(dry)
    assert not dropin.exists() and ns_value(netns, "net.ipv4.tcp_rmem") == before

    first = run_playbook("tune", tune_vars, collections_path, netns=netns, options=["--diff"])
    assert first.returncode == 0, output(first)
    assert ns_value(netns, "net.ipv4.tcp_rmem") == WANTED_RMEM
    text = dropin.read_text(encoding="utf-8")
    assert f"net.ipv4.tcp_rmem = {WANTED_RMEM}" in text
    # Global keys: absent (tcp_mem) or read-only (net.core.*) in a non-initial namespace.
    assert "net.ipv4.tcp_mem" not in text and "net.core.rmem_max" not in text
    assert "net.ipv4.tcp_mem: (absent) -> " in output(first) and "[skipped: absent here" in output(first)
    assert host_values() == host_before
    second = run_playbook("tune", tune_vars, collections_path, netns=netns)
    assert second.returncode == 0 and recap_changed(output(second)) == 0, output(second)

    report_dir = tmp_path / "report"
    report = run_playbook(
        "report", {"tcp_memory_connections": 1000, "tcp_memory_report_dir": str(report_dir)}, collections_path, netns
    )
    assert report.returncode == 0, output(report)
    host = read_report(report_dir)["hosts"][0]
    assert host["root"] is True and host["initial_netns"] is False
    rows = {row["key"]: row for row in host["rows"]}
    assert rows["net.ipv4.tcp_rmem"]["live"] == WANTED_RMEM and rows["net.ipv4.tcp_rmem"]["settable"] is True
    # tcp_mem is global: absent in a namespace, so not settable here, and the capacity is unknown
    assert rows["net.ipv4.tcp_mem"]["live"] is None and rows["net.ipv4.tcp_mem"]["settable"] is False
    assert [row["key"] for row in host["rows"]] == sorted(rows)
    assert not [warning for warning in host["warnings"] if "not running as root" in warning]
    assert f"| `net.ipv4.tcp_rmem` | {WANTED_RMEM} |" in (report_dir / "tcp-memory-report.md").read_text()
    assert ns_value(netns, "net.ipv4.tcp_rmem") == WANTED_RMEM  # the report changed nothing


def test_report_is_read_only_holds_or_not_keeps_its_json_shape_and_writes_to_the_working_directory(
    collections_path, tmp_path
):
    """On this machine, outside any namespace: the report changes no sysctl and no sysctl.d file, and this
    ansible-core release is not warned about. Run from tmp_path without PWD: the report directory defaults to
    tcp-memory-report in the working directory, and a relative one is taken from the working directory too."""
    host_before, sysctl_d_before = host_values(), sorted(os.listdir("/etc/sysctl.d"))
    stray = Path("/tcp-memory-report")
    assert not stray.exists(), "a stray /tcp-memory-report is already there: remove it first"
    try:
        fits = run_playbook(
            "report", {"tcp_memory_connections": 1000}, collections_path, cwd=tmp_path, drop_env=("PWD", "OLDPWD")
        )
        assert fits.returncode == 0, output(fits)
        assert not stray.exists()
        # a relative directory is taken from the working directory too
        too_many = run_playbook(
            "report",
            {"tcp_memory_connections": 2000000000, "tcp_memory_report_dir": "out/fleet"},
            collections_path,
            cwd=tmp_path,
            drop_env=("PWD",),
        )
        assert too_many.returncode == 0, output(too_many)
    finally:
        # today's code wrote to /tcp-memory-report when PWD was unset: leave no such directory behind
        if stray.is_dir():
            for child in stray.iterdir():
                child.unlink()
            stray.rmdir()
    assert host_values() == host_before and sorted(os.listdir("/etc/sysctl.d")) == sysctl_d_before

    assert "does not support Ansible version" not in output(fits), output(fits)
    report_dir = tmp_path / "tcp-memory-report"
    report = read_report(report_dir)
    assert report["summary"]["hosts"] == ["localhost"]
    assert "| `net.ipv4.tcp_mem` |" in (report_dir / "tcp-memory-report.md").read_text(encoding="utf-8")
    assert set(report) == {"generated_at", "collection_version", "target_connections", "hosts", "summary"}
    # what the fleet summary always had, and not_root (other lists may join them)
    assert set(report["summary"]) >= {
        "hosts",
        "under_pressure",
        "cannot_hold_target",
        "unknown_capacity",
        "without_data",
        "not_root",
    }
    host = report["hosts"][0]
    assert host["can_hold_target"] is True and report["summary"]["cannot_hold_target"] == []
    assert isinstance(host["current_connections_before_pressure"], int)
    assert all(set(row) == {"key", "live", "recommended", "settable", "why"} for row in host["rows"])
    assert "net.ipv4.tcp_rmem" in [row["key"] for row in host["rows"]]

    report_dir = tmp_path / "out/fleet"
    assert (report_dir / "tcp-memory-report.md").is_file()
    assert f"reports: {tmp_path.resolve()}/out/fleet/tcp-memory-report.json" in output(too_many)
    report = read_report(report_dir)
    assert report["summary"]["cannot_hold_target"] == ["localhost"]
    assert report["hosts"][0]["can_hold_target"] is False and report["hosts"][0]["rows"] == []
    assert "recommend_tcp_memory" in report["hosts"][0]["recommendation_error"]


def test_report_without_root_says_so_once_and_writes_as_the_controller_user(collections_path, tmp_path):
    # The module runs as nobody (su from root needs no password; nobody's shell is nologin, hence -s).
    remote_tmp = tmp_path / "remote-tmp"
    report_dir = tmp_path / "report"
    run = run_playbook(
        "report",
        {
            "tcp_memory_connections": 1000,
            "tcp_memory_report_dir": str(report_dir),
            "tcp_memory_become": True,
            "ansible_become_method": "su",
            "ansible_become_user": "nobody",
            "ansible_become_flags": "-s /bin/sh",
            "ansible_remote_tmp": str(remote_tmp),
        },
        collections_path,
    )
    assert run.returncode == 0, output(run)
    report = read_report(report_dir)
    host = report["hosts"][0]
    assert host["root"] is False
    about_root = [warning for warning in host["warnings"] if "not running as root" in warning]
    assert len(about_root) == 1 and about_root[0].startswith("not running as root"), host["warnings"]
    assert not [warning for warning in host["warnings"] if "can't be set here (read-only here)" in warning]
    assert {row["settable"] for row in host["rows"]} == {None}
    assert report["summary"]["not_root"] == ["localhost"]
    assert "Not run as root" in (report_dir / "tcp-memory-report.md").read_text(encoding="utf-8")
    assert "run without root" in output(run)
    # the report belongs to whoever ran ansible-playbook, not to the become user
    for path in (report_dir, report_dir / "tcp-memory-report.json", report_dir / "tcp-memory-report.md"):
        assert path.stat().st_uid == os.geteuid(), path

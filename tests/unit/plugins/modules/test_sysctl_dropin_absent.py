# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""state=absent run for real against a temporary root (option root: its proc/sys and sysctl.d are plain
directories): the drop-in goes, each key it set goes back to what a reboot without it would give."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import (
    MANAGED_LINE,
    RECORD_PREFIX,
)
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules.test_sysctl_dropin import (
    LIVE,
    entries,
    live,
    reads_back_empty,
    run,
    snapshot,
)

BOOT = {"net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.tcp_wmem": "4096 16384 4194304"}
TUNED = {"net.ipv4.tcp_rmem": "4096 131072 16777216", "net.ipv4.tcp_wmem": "4096 16384 16777216"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """/proc/sys with LIVE, empty etc/sysctl.d and usr/lib/sysctl.d (as test_sysctl_dropin's fixture)."""
    for relative, text in LIVE.items():
        (tmp_path / "proc/sys" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "proc/sys" / relative).write_text(text)
    for directory in ("etc/sysctl.d", "usr/lib/sysctl.d"):
        (tmp_path / directory).mkdir(parents=True)
    return tmp_path


def tune(root: Path, capsys) -> Path:
    """Apply TUNED with state=present, as the role's first run would."""
    result = run(root, capsys, settings=TUNED)
    assert result["changed"] and not result.get("failed"), result
    return root / "etc/sysctl.d/99-netstack-tcp-memory.conf"


def undo(root: Path, capsys, check_mode: bool = False, **args):
    args = {"settings": None, "boot_defaults": BOOT, **args}
    return run(root, capsys, check_mode=check_mode, state="absent", **args)


def test_undo_removes_the_dropin_restores_the_recorded_values_and_a_second_run_changes_nothing(root, capsys):
    dropin = tune(root, capsys)
    result = undo(root, capsys)
    assert result["changed"] and result["file_changed"] and not result.get("failed"), result
    assert not dropin.exists()
    assert live(root, "net/ipv4/tcp_rmem") == "4096 131072 6291456\n"
    assert live(root, "net/ipv4/tcp_wmem") == "4096 16384 4194304\n"
    assert result["keys"]["net.ipv4.tcp_rmem"] == {
        "before": "4096 131072 16777216",
        "after": "4096 131072 6291456",
        "action": "set",
        "reason": "restored to the value before this collection first set it (recorded in the drop-in)",
        "source": "recorded",
    }
    assert result["diff"]["after"] == "" and result["diff"]["before"].startswith(MANAGED_LINE)
    second = undo(root, capsys)
    assert not second["changed"] and second["keys"] == {}, second


def test_check_mode_shows_the_restore_and_changes_nothing(root, capsys):
    tune(root, capsys)
    before = snapshot(root)
    result = undo(root, capsys, check_mode=True)
    assert result["changed"] and result["keys"]["net.ipv4.tcp_wmem"]["after"] == "4096 16384 4194304"
    # It would remove the file and set live values; it removed nothing.
    assert result["file_would_change"] and result["live_would_change"] and not result["file_changed"]
    assert result["keys"]["net.ipv4.tcp_wmem"]["action"] == "set"
    assert snapshot(root) == before


def test_a_later_sysctl_d_file_wins_over_the_boot_default(root, capsys):
    tune(root, capsys)
    (root / "usr/lib/sysctl.d/zz-local.conf").write_text("net.ipv4.tcp_rmem = 4096 87380 8388608\n")
    result = undo(root, capsys)
    assert live(root, "net/ipv4/tcp_rmem") == "4096 87380 8388608\n"
    assert result["keys"]["net.ipv4.tcp_rmem"]["source"] == "file"
    assert "zz-local.conf line 1" in result["keys"]["net.ipv4.tcp_rmem"]["reason"]


def test_a_file_this_collection_did_not_write_is_never_removed_even_with_force(root, capsys):
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    dropin.write_text("net.ipv4.tcp_rmem = 4096 131072 16777216\n")
    before = snapshot(root)
    for force in (False, True):
        result = undo(root, capsys, force=force)
        assert result["failed"] and "was not written by this collection" in result["msg"], result
        assert not result["changed"] and not result["file_changed"]
        assert "nothing was changed" in result["msg"]
    assert snapshot(root) == before


def test_a_key_without_a_known_boot_value_is_left_and_said_so(root, capsys):
    (root / "proc/sys/net/core/optmem_max").write_text("131072\n")
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    dropin.write_text(f"{MANAGED_LINE}\nnet.core.optmem_max = 262144\nnet.core.rmem_max = 16777216\n")
    result = undo(root, capsys)
    assert not dropin.exists()
    assert result["keys"]["net.core.optmem_max"]["action"] == "skipped"
    assert "boot default is not known" in result["keys"]["net.core.optmem_max"]["reason"]
    assert live(root, "net/core/optmem_max") == "131072\n"
    # No rmem_default under this fixture's /proc/sys: rmem_max cannot be derived either.
    assert result["keys"]["net.core.rmem_max"]["source"] == "unknown"


def test_rmem_max_goes_back_to_the_constant_rmem_default_boots_at(root, capsys):
    (root / "proc/sys/net/core/rmem_default").write_text("212992\n")
    (root / "proc/sys/net/core/rmem_max").write_text("16777216\n")
    (root / "etc/sysctl.d/99-netstack-tcp-memory.conf").write_text(f"{MANAGED_LINE}\nnet.core.rmem_max = 16777216\n")
    result = undo(root, capsys)
    assert live(root, "net/core/rmem_max") == "212992\n"
    assert result["keys"]["net.core.rmem_max"]["source"] == "same_constant"


def test_given_values_and_skipped_keys(root, capsys):
    tune(root, capsys)
    result = undo(
        root,
        capsys,
        settings={"net.ipv4.tcp_rmem": "4096 65536 1048576"},
        skip={"net.ipv4.tcp_wmem": "per-namespace key in a container"},
    )
    assert live(root, "net/ipv4/tcp_rmem") == "4096 65536 1048576\n"
    assert live(root, "net/ipv4/tcp_wmem") == "4096 16384 16777216\n"
    assert result["keys"]["net.ipv4.tcp_wmem"]["reason"] == "per-namespace key in a container"


def test_a_refused_restore_puts_back_the_live_values_and_keeps_the_file(root, capsys, monkeypatch):
    dropin = tune(root, capsys)
    before = entries(root / "etc/sysctl.d")
    rmem_before = live(root, "net/ipv4/tcp_rmem")
    # tcp_wmem reads back empty whatever is written (sorts after tcp_rmem, which is written first).
    reads_back_empty(monkeypatch, "net.ipv4.tcp_wmem")
    result = undo(root, capsys, backup=True)
    assert result["failed"] and "net.ipv4.tcp_wmem" in result["msg"], result
    assert result["rollback"]["file"] == "unchanged" and result["rollback"]["backup_file"] == "removed"
    assert result["rollback"]["live"]["net.ipv4.tcp_rmem"] == "restored"
    assert result["file_would_change"] and not result["file_changed"] and not result["changed"]
    assert live(root, "net/ipv4/tcp_rmem") == rmem_before
    assert dropin.exists() and entries(root / "etc/sysctl.d") == before


def test_bad_boot_defaults_and_missing_settings_are_refused(root, capsys):
    tune(root, capsys)
    before = snapshot(root)
    result = run(root, capsys, state="absent", settings=None, boot_defaults={"net.ipv4.tcp_rmem": "1 2"})
    assert result["failed"] and "boot_defaults['net.ipv4.tcp_rmem'] = '1 2': needs 3 numbers" in result["msg"]
    result = run(root, capsys, settings=None)
    assert result["failed"] and "settings is required with state=present" in result["msg"]
    assert snapshot(root) == before


def test_apply_false_removes_only_the_file(root, capsys):
    dropin = tune(root, capsys)
    result = undo(root, capsys, apply=False)
    assert result["changed"] and not dropin.exists()
    assert live(root, "net/ipv4/tcp_rmem") == "4096 131072 16777216\n"


def test_the_dropin_records_the_values_before_the_first_run_and_keeps_them(root, capsys):
    dropin = tune(root, capsys)
    first = dropin.read_text()
    assert f"{RECORD_PREFIX}net.ipv4.tcp_rmem = 4096 131072 6291456\n" in first
    # A second tune with other values: the live values are now this collection's, the record stays.
    run(root, capsys, settings={**TUNED, "net.ipv4.tcp_rmem": "4096 131072 8388608"})
    assert f"{RECORD_PREFIX}net.ipv4.tcp_rmem = 4096 131072 6291456\n" in dropin.read_text()
    assert not run(root, capsys, settings={**TUNED, "net.ipv4.tcp_rmem": "4096 131072 8388608"})["changed"]
    # The boot estimate (BOOT) differs from the recorded value: the record wins.
    result = undo(root, capsys, boot_defaults={"net.ipv4.tcp_rmem": "4096 131072 7000000"})
    assert live(root, "net/ipv4/tcp_rmem") == "4096 131072 6291456\n"
    assert result["keys"]["net.ipv4.tcp_rmem"]["source"] == "recorded"


def test_a_dropin_without_records_restores_the_boot_defaults(root, capsys):
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    # Written by an older release: no record. Tuning it again must not record its own live values.
    dropin.write_text(f"{MANAGED_LINE}\nnet.ipv4.tcp_rmem = 4096 131072 16777216\n")
    (root / "proc/sys/net/ipv4/tcp_rmem").write_text("4096\t131072\t16777216\n")
    run(root, capsys, settings=TUNED)
    assert f"{RECORD_PREFIX}net.ipv4.tcp_rmem" not in dropin.read_text()
    assert f"{RECORD_PREFIX}net.ipv4.tcp_wmem = 4096 16384 4194304" in dropin.read_text()
    result = undo(root, capsys, boot_defaults={"net.ipv4.tcp_rmem": "4096 131072 7000000"})
    assert live(root, "net/ipv4/tcp_rmem") == "4096 131072 7000000\n"
    assert result["keys"]["net.ipv4.tcp_rmem"]["source"] == "boot_default"


def test_a_managed_dropin_with_crlf_line_ends_is_undone(root, capsys):
    """An editor that saved the drop-in with CRLF made undo refuse it as "not written by this collection"."""
    dropin = tune(root, capsys)
    dropin.write_bytes(dropin.read_bytes().replace(b"\n", b"\r\n"))
    result = undo(root, capsys)
    assert result["changed"] and result["file_changed"] and not result.get("failed"), result
    assert not dropin.exists()
    assert live(root, "net/ipv4/tcp_rmem") == "4096 131072 6291456\n"
    assert result["keys"]["net.ipv4.tcp_rmem"]["source"] == "recorded"

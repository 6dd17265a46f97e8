# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the module for real against a temporary root (option root): its proc/sys and sysctl.d directories
are directories of plain files, so writes, read-back and rollback happen on a real filesystem."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, Dict

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.lock import acquire, release
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import MANAGED_LINE
from ansible_collections.netstack.tcp_tuning.plugins.modules import sysctl_dropin
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules.module_args import patch_module_args

LIVE = {
    "net/ipv4/tcp_rmem": "4096\t131072\t6291456\n",
    "net/ipv4/tcp_wmem": "4096\t16384\t4194304\n",
    "net/core/rmem_max": "212992\n",
}
WANTED = {"net.ipv4.tcp_rmem": "4096 131072 16777216", "net.ipv4.tcp_wmem": "4096 16384 16777216"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for relative, text in LIVE.items():
        (tmp_path / "proc/sys" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "proc/sys" / relative).write_text(text)
    for directory in ("etc/sysctl.d", "usr/lib/sysctl.d"):
        (tmp_path / directory).mkdir(parents=True)
    return tmp_path


def run(host: Path, capsys, check_mode: bool = False, **args: Any) -> Dict[str, Any]:
    module_args = {
        "path": str(host / "etc/sysctl.d/99-netstack-tcp-memory.conf"),
        "settings": WANTED,
        "root": str(host),
        "_ansible_check_mode": check_mode,
        "_ansible_diff": True,
        "_ansible_tmpdir": str(host),
        "_ansible_remote_tmp": str(host),
    }
    module_args.update(args)
    with patch_module_args(module_args), pytest.raises(SystemExit):
        sysctl_dropin.main()
    return json.loads(capsys.readouterr().out)


def reads_back_empty(monkeypatch, key: str) -> None:
    """`key` behaves as a kernel that keeps another value: whatever is written, it reads back empty. Plain
    files always read back what was written, and the module refuses links and devices under proc/sys."""
    real_open = sysctl_dropin.open_proc_sys

    def open_proc_sys(proc_sys: str, opened_key: str, flags: int) -> int:
        if opened_key == key:
            return os.open(os.devnull, os.O_WRONLY if flags & os.O_WRONLY else os.O_RDONLY)
        return real_open(proc_sys, opened_key, flags)

    monkeypatch.setattr(sysctl_dropin, "open_proc_sys", open_proc_sys)


def entries(directory: Path) -> Dict[str, Any]:
    """Every entry of a directory: type, mode, owner and content (bytes, or the link target)."""
    state = {}
    for entry in sorted(directory.iterdir()):
        info = entry.lstat()
        content = os.readlink(entry) if entry.is_symlink() else entry.read_bytes() if entry.is_file() else None
        state[entry.name] = (info.st_mode, info.st_uid, info.st_gid, content)
    return state


def live(root: Path, relative: str) -> str:
    return (root / "proc/sys" / relative).read_text()


def snapshot(root: Path) -> Dict[str, str]:
    """Every file under the root but the lock (under run/, which a run that takes it creates)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "run")
    return {str(p.relative_to(root)): p.read_text() for p in files}


def test_first_run_writes_file_and_differing_live_values_second_run_changes_nothing(root, capsys):
    first = run(root, capsys)
    assert first["changed"] and first["file_changed"] and not first.get("failed")
    assert live(root, "net/ipv4/tcp_rmem") == "4096 131072 16777216\n"
    assert first["keys"]["net.ipv4.tcp_rmem"] == {
        "action": "set",
        "before": "4096 131072 6291456",
        "after": "4096 131072 16777216",
        "reason": "live value differs",
    }
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    assert "net.ipv4.tcp_wmem = 4096 16384 16777216\n" in dropin.read_text()
    assert oct(dropin.stat().st_mode & 0o777) == "0o644"
    second = run(root, capsys)
    assert not second["changed"]
    assert {entry["action"] for entry in second["keys"].values()} == {"unchanged"}


def test_a_key_a_later_run_no_longer_sets_goes_back_to_its_recorded_value(root, capsys):
    """The first run sets tcp_rmem and tcp_wmem, the second only tcp_rmem: tcp_wmem must not stay at the first
    run's value, which no file sets any more (a reboot would give the value recorded before the first run)."""
    assert run(root, capsys)["changed"]
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    only_rmem = {"net.ipv4.tcp_rmem": WANTED["net.ipv4.tcp_rmem"]}
    dry = run(root, capsys, check_mode=True, settings=only_rmem)
    assert dry["keys"]["net.ipv4.tcp_wmem"] == {
        "action": "set",
        "before": "4096 16384 16777216",
        "after": "4096 16384 4194304",
        "source": "recorded",
        "reason": "no longer in the drop-in: restored to the value before this collection first set it "
        "(recorded in the drop-in)",
    }
    assert live(root, "net/ipv4/tcp_wmem") == "4096 16384 16777216\n"
    second = run(root, capsys, settings=only_rmem)
    assert second["changed"] and live(root, "net/ipv4/tcp_wmem") == "4096 16384 4194304\n"
    assert "tcp_wmem" not in dropin.read_text() and "net.ipv4.tcp_rmem = 4096 131072 16777216" in dropin.read_text()
    third = run(root, capsys, settings=only_rmem)
    assert not third["changed"] and set(third["keys"]) == {"net.ipv4.tcp_rmem"}


def test_check_mode_reports_diff_and_per_key_plan_and_touches_nothing(root, capsys):
    before = snapshot(root)
    result = run(root, capsys, check_mode=True)
    # changed: what a real run would change (Ansible's check mode); file_changed: what this run did.
    assert result["changed"] and result["file_would_change"] and result["live_would_change"]
    assert not result["file_changed"]
    assert result["diff"]["before"] == "" and "net.ipv4.tcp_rmem = 4096 131072 16777216" in result["diff"]["after"]
    assert result["keys"]["net.ipv4.tcp_wmem"]["before"] == "4096 16384 4194304"
    assert result["keys"]["net.ipv4.tcp_wmem"]["action"] == "set"
    assert snapshot(root) == before


def test_live_values_already_right_but_file_missing_only_writes_the_file(root, capsys):
    (root / "proc/sys/net/ipv4/tcp_rmem").write_text("4096\t131072\t16777216\n")
    (root / "proc/sys/net/ipv4/tcp_wmem").write_text("4096 16384  16777216\n")
    result = run(root, capsys)
    assert result["changed"] and result["file_changed"]
    assert {entry["action"] for entry in result["keys"].values()} == {"unchanged"}
    # Untouched: the original tab-separated text is still there.
    assert live(root, "net/ipv4/tcp_rmem") == "4096\t131072\t16777216\n"


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"net.ipv4.tcp_moderate_rcvbuf": True}, "boolean"),
        ({"net.ipv4.tcp_rmem": "4096 131072"}, "needs 3 numbers"),
        ({"net.ipv4.tcp_rmem": "4096 0131072 6291456"}, "plain decimal"),
        ({"tcp_rmem": "1 2 3"}, "dotted sysctl name"),
    ],
)
def test_invalid_input_fails_naming_key_and_touches_nothing(root, capsys, settings, fragment):
    before = snapshot(root)
    result = run(root, capsys, settings={**WANTED, **settings})
    assert result["failed"] and fragment in result["msg"] and next(iter(settings)) in result["msg"]
    assert snapshot(root) == before


def test_absent_key_must_be_skipped_explicitly(root, capsys):
    before = snapshot(root)
    settings = {**WANTED, "net.ipv4.tcp_mem": "1 2 3"}
    result = run(root, capsys, settings=settings)
    assert result["failed"] and "net.ipv4.tcp_mem does not exist" in result["msg"]
    assert snapshot(root) == before
    reason = "global key, absent in this network namespace"
    result = run(root, capsys, settings=settings, skip={"net.ipv4.tcp_mem": reason})
    assert not result.get("failed")
    assert result["keys"]["net.ipv4.tcp_mem"] == {"action": "skipped", "before": None, "after": None, "reason": reason}
    assert "tcp_mem" not in (root / "etc/sysctl.d/99-netstack-tcp-memory.conf").read_text()


def test_later_file_setting_a_managed_key_warns_and_can_fail_before_writing(root, capsys):
    (root / "etc/sysctl.conf").write_text("# admin\nnet.ipv4.tcp_rmem = 4096 87380 6291456\n")
    (root / "usr/lib/sysctl.d/10-early.conf").write_text("net.ipv4.tcp_wmem = 1 2 3\n")  # sorts before: fine
    before = snapshot(root)
    failed = run(root, capsys, conflicts="fail")
    assert failed["failed"] and "sysctl.conf line 2 sets net.ipv4.tcp_rmem" in failed["msg"]
    assert "nothing was changed" in failed["msg"]
    # The refused run says what it would have changed, and that it changed nothing.
    assert failed["file_would_change"] and not failed["file_changed"] and not failed["changed"]
    assert snapshot(root) == before
    warned = run(root, capsys)
    assert warned["changed"] and not warned.get("failed")
    assert warned["conflicts"] == [
        {"key": "net.ipv4.tcp_rmem", "file": str(root / "etc/sysctl.conf"), "line": 2, "value": "4096 87380 6291456"}
    ]
    assert any("sysctl.conf line 2" in note for note in warned["notes"])
    assert run(root, capsys, conflicts="ignore")["notes"] == []


def tuned_profile(root: Path, reapply: str) -> None:
    """An active, enabled tuned profile under the root that sets tcp_rmem to another value than the drop-in's."""
    (root / "etc/tuned/mine").mkdir(parents=True)
    (root / "etc/tuned/active_profile").write_text("mine\n")
    (root / "etc/tuned/tuned-main.conf").write_text(f"daemon = 1\nreapply_sysctl = {reapply}\n")
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    (root / "etc/systemd/system/multi-user.target.wants/tuned.service").write_text("[Unit]\n")
    (root / "etc/tuned/mine/tuned.conf").write_text(
        '[main]\nsummary=x\n\n[sysctl]\nnet.ipv4.tcp_rmem="4096 87380 6291456"\n'
    )


def test_tuned_profile_that_stays_in_force_is_a_conflict_naming_file_and_line(root, capsys):
    tuned_profile(root, reapply="0")
    before = snapshot(root)
    failed = run(root, capsys, conflicts="fail")
    assert failed["failed"] and snapshot(root) == before
    assert f"{root}/etc/tuned/mine/tuned.conf line 5 sets net.ipv4.tcp_rmem = 4096 87380 6291456" in failed["msg"]
    assert "reapply_sysctl = 0" in failed["msg"]


def test_tuned_profile_overridden_by_its_reapply_is_only_noted(root, capsys):
    tuned_profile(root, reapply="1")
    result = run(root, capsys, check_mode=True, conflicts="fail")
    assert not result.get("failed") and result["conflicts"] == []
    # Warnings also go to the controller's display; `notes` carries them in the result.
    assert any("tuned re-applies the drop-in" in note and "line 5" in note for note in result["notes"])


def test_readback_mismatch_restores_previous_file_and_live_values(root, capsys, monkeypatch):
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    previous = f"{MANAGED_LINE}\n# the previous run's file\n"
    dropin.write_text(previous)
    dropin.chmod(0o640)
    before = entries(root / "etc/sysctl.d")
    # tcp_wmem reads back empty whatever is written: the kernel "kept" another value. tcp_rmem sorts
    # first, so it is written (and must be restored) before the mismatch is seen.
    reads_back_empty(monkeypatch, "net.ipv4.tcp_wmem")
    result = run(root, capsys, backup=True)
    assert result["failed"]
    assert "net.ipv4.tcp_wmem: wrote '4096 16384 16777216', the kernel kept ''" in result["msg"]
    # Everything was put back: the run changed nothing, though it would have changed the file.
    assert result["file_would_change"] and not result["file_changed"] and not result["changed"]
    # Every key written is restored, the mismatching one included, newest first.
    # The backup made for this run is removed again: the directory is as it was.
    assert result["rollback"] == {
        "file": "restored",
        "backup_file": "removed",
        "live": {"net.ipv4.tcp_wmem": "restored", "net.ipv4.tcp_rmem": "restored"},
    }
    assert "backup_file" not in result
    assert entries(root / "etc/sysctl.d") == before


def test_rollback_removes_a_file_that_did_not_exist(root, capsys, monkeypatch):
    reads_back_empty(monkeypatch, "net.ipv4.tcp_wmem")
    result = run(root, capsys)
    assert result["failed"] and "net.ipv4.tcp_wmem" in result["msg"]
    assert result["rollback"]["file"] == "removed (did not exist before)"
    assert not (root / "etc/sysctl.d/99-netstack-tcp-memory.conf").exists()
    assert live(root, "net/ipv4/tcp_rmem") == "4096 131072 6291456\n"


def test_unreadable_live_value_fails_before_touching_anything(root, capsys):
    wmem = root / "proc/sys/net/ipv4/tcp_wmem"
    wmem.unlink()
    wmem.mkdir()
    before = snapshot(root)
    result = run(root, capsys)
    assert result["failed"] and "cannot read the live values" in result["msg"]
    assert snapshot(root) == before


def test_apply_false_writes_only_the_file(root, capsys):
    result = run(root, capsys, apply=False)
    assert result["changed"] and result["file_changed"] and result["file_would_change"]
    assert not result["live_would_change"]
    assert live(root, "net/ipv4/tcp_rmem") == LIVE["net/ipv4/tcp_rmem"]
    assert "apply=false" in result["keys"]["net.ipv4.tcp_rmem"]["reason"]
    assert not run(root, capsys, apply=False)["changed"]


def test_backup_keeps_the_replaced_file(root, capsys):
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    dropin.write_text(f"{MANAGED_LINE}\nnet.ipv4.tcp_rmem = 1 2 3\n")
    result = run(root, capsys, backup=True)
    assert Path(result["backup_file"]).read_text() == f"{MANAGED_LINE}\nnet.ipv4.tcp_rmem = 1 2 3\n"
    assert "backup_file" not in run(root, capsys, backup=True)
    # Out of the directories the boot reads (they used to pile up beside the drop-in), root only.
    backups = root / "var/backups/netstack-tcp-tuning"
    assert Path(result["backup_file"]).parent == backups and oct(backups.stat().st_mode & 0o777) == "0o700"
    assert sorted(os.listdir(root / "etc/sysctl.d")) == ["99-netstack-tcp-memory.conf"]


def test_missing_sysctl_d_is_created_and_removed_again_on_rollback(root, capsys, monkeypatch):
    etc = root / "etc/sysctl.d"
    etc.rmdir()
    reads_back_empty(monkeypatch, "net.ipv4.tcp_wmem")
    failed = run(root, capsys)
    assert failed["rollback"]["file"] == "removed with its directory (did not exist before)"
    assert not etc.exists()
    monkeypatch.undo()
    assert run(root, capsys)["changed"] and (etc / "99-netstack-tcp-memory.conf").exists()


def test_a_path_under_a_missing_tree_is_refused(root, capsys):
    result = run(root, capsys, path=str(root / "no/such/dir/x.conf"))
    assert result["failed"] and "neither its directory" in result["msg"]
    assert not (root / "no").exists()


def test_a_profile_recorded_by_a_tuned_not_in_use_is_only_noted(root, capsys):
    tuned_profile(root, reapply="0")
    (root / "etc/systemd/system/multi-user.target.wants/tuned.service").unlink()
    result = run(root, capsys, check_mode=True, conflicts="fail")
    assert not result.get("failed") and result["conflicts"] == []
    assert any("tuned is not in use: not checked" in note for note in result["notes"])
    (root / "run/tuned").mkdir(parents=True)
    (root / "run/tuned/tuned.pid").write_text("123\n")
    assert run(root, capsys, check_mode=True, conflicts="fail")["failed"]


# Every bad input is refused naming the option and the value, and nothing changes.
@pytest.mark.parametrize("apply", [True, False])
@pytest.mark.parametrize(
    "settings, fragments",
    [
        (
            {"net.ipv4.tcp_rmem": "6291456 87380 4096"},
            ["settings['net.ipv4.tcp_rmem'] = '6291456 87380 4096'", "ordered min <= default"],
        ),
        ({"net.ipv4.tcp_wmem": "0 16384 4194304"}, ["settings['net.ipv4.tcp_wmem']", "at least 1"]),
        ({"net.ipv4.tcp_rmem\n": "4096 131072 6291456"}, ["settings['net.ipv4.tcp_rmem\\n']", "dotted sysctl name"]),
        ({"net.core.rmem_max": "1\n5"}, ["settings['net.core.rmem_max'] = '1\\n5'", "needs 1 number, got 2"]),
        ({"net.ipv4.tcp_doesnotexist": "1"}, ["settings['net.ipv4.tcp_doesnotexist']", "does not exist"]),
        ({"net.ipv4.tcp_rmem": "4096 131072 2147483648"}, ["settings['net.ipv4.tcp_rmem']", "int range"]),
    ],
)
def test_bad_settings_are_refused_also_with_apply_false(root, capsys, settings, fragments, apply):
    before = snapshot(root)
    result = run(root, capsys, settings={**WANTED, **settings}, apply=apply)
    assert result["failed"] and "nothing was changed" in result["msg"], result
    for fragment in fragments:
        assert fragment in result["msg"]
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "relative_path, fragment",
    [
        ("", "path is empty"),
        ("50-t.conf", "path '50-t.conf' is relative"),
        ("etc/sysctl.d/50-dir.conf/", "names a directory"),
        ("etc/sysctl.d/50-u.txt", "must end in .conf"),
        ("etc/sysctl.d/50-u.conf\n", "control character"),
    ],
)
def test_bad_paths_are_refused_naming_path(root, capsys, relative_path, fragment):
    before = snapshot(root)
    # Strings, not Path: a Path drops the trailing '/'.
    path = f"{root}/{relative_path}" if relative_path.startswith("etc/") else relative_path
    result = run(root, capsys, path=path)
    assert result["failed"] and fragment in result["msg"] and "nothing was changed" in result["msg"], result
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "args, fragments",
    [
        # systemd-sysctl ends a line at a NUL or a carriage return and applies what follows
        (
            {"comments": {"net.ipv4.tcp_rmem": "fine\x00net.ipv4.tcp_syncookies = 0"}},
            ["comments['net.ipv4.tcp_rmem']", "control character '\\x00' at offset 4"],
        ),
        ({"header": "fine\rnet.ipv4.tcp_syncookies = 0"}, ["header = ", "control character '\\r' at offset 4"]),
    ],
)
def test_a_control_character_in_a_comment_or_the_header_is_refused(root, capsys, args, fragments):
    before = snapshot(root)
    result = run(root, capsys, **args)
    assert result["failed"] and "nothing was changed" in result["msg"], result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert snapshot(root) == before


def test_a_directory_at_the_path_is_refused(root, capsys):
    (root / "etc/sysctl.d/50-dir.conf").mkdir()
    before = snapshot(root)
    for path, fragment in [
        (f"{root}/etc/sysctl.d/50-dir.conf", "50-dir.conf is a directory"),
        (f"{root}/etc/sysctl.d/50-dir.conf/", "50-dir.conf/' is a directory"),
        (f"{root}/etc/sysctl.d/", "sysctl.d/' is a directory"),
        (f"{root}/etc/sysctl.d", "sysctl.d' is a directory"),
    ]:
        result = run(root, capsys, path=path)
        assert result["failed"] and fragment in result["msg"], result
    assert snapshot(root) == before and (root / "etc/sysctl.d/50-dir.conf").is_dir()


def test_a_symlinked_dropin_is_refused_even_with_force(root, capsys):
    target = root / "etc/sysctl.d/real.conf"
    target.write_text(f"{MANAGED_LINE}\n")
    (root / "etc/sysctl.d/99-netstack-tcp-memory.conf").symlink_to("real.conf")
    before = entries(root / "etc/sysctl.d")
    for force in (False, True):
        result = run(root, capsys, force=force)
        assert result["failed"] and "is a symbolic link (to real.conf): refused" in result["msg"], result
    assert entries(root / "etc/sysctl.d") == before
    assert live(root, "net/ipv4/tcp_rmem") == LIVE["net/ipv4/tcp_rmem"]


def test_a_fifo_at_the_path_is_refused_without_hanging(root, capsys):
    os.mkfifo(root / "etc/sysctl.d/99-netstack-tcp-memory.conf")
    result = run(root, capsys, force=True)
    assert result["failed"] and "not a regular file" in result["msg"]


def test_outside_the_roots_only_with_force(root, capsys):
    (root / "some/dir").mkdir(parents=True)
    (root / "some/dir/passwd2.conf").write_text("root:x:0:0::/root:/bin/sh\n")
    before = snapshot(root)
    refused = run(root, capsys, path=str(root / "some/dir/passwd2.conf"))
    assert refused["failed"] and "is not in the sysctl.d search roots" in refused["msg"] and "force" in refused["msg"]
    assert snapshot(root) == before
    forced = run(root, capsys, path=str(root / "some/dir/passwd2.conf"), force=True)
    assert forced["changed"] and not forced.get("failed")
    assert any("not in the sysctl.d search roots" in note for note in forced["notes"])


def test_an_existing_file_this_collection_did_not_write_only_with_force(root, capsys):
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    dropin.write_text("vm.swappiness = 10\n")
    before = snapshot(root)
    refused = run(root, capsys)
    assert refused["failed"] and "was not written by this collection" in refused["msg"], refused
    assert snapshot(root) == before
    assert run(root, capsys, force=True)["changed"]
    assert dropin.read_text().startswith(MANAGED_LINE)
    assert not run(root, capsys)["changed"]  # now it carries the header


def test_rollback_restores_content_mode_and_owner_of_a_forced_foreign_file(root, capsys, monkeypatch):
    dropin = root / "etc/sysctl.d/99-netstack-tcp-memory.conf"
    dropin.write_bytes(b"# an admin's file\r\nvm.swappiness = 10")  # odd bytes on purpose
    os.chown(dropin, 1234, 5678)
    dropin.chmod(0o600)
    before = entries(root / "etc/sysctl.d")
    reads_back_empty(monkeypatch, "net.ipv4.tcp_wmem")
    result = run(root, capsys, force=True, backup=True)
    assert result["failed"] and result.get("rollback", {}).get("file") == "restored", result.get("msg")
    assert result["rollback"]["backup_file"] == "removed"
    assert entries(root / "etc/sysctl.d") == before


def test_a_run_waits_for_the_lock_then_fails_naming_the_holder(root, capsys):
    held = acquire(str(root / "run/netstack-tcp-tuning"), 0, "pid 4242 (another run)")
    try:
        before = snapshot(root)
        result = run(root, capsys, lock_timeout=1)
        assert result["failed"] and "is still held after 1 s by pid 4242 (another run)" in result["msg"]
        assert result["lock_holder"] == "pid 4242 (another run)"
        assert snapshot(root) == before
        # Check mode changes nothing and does not wait.
        assert run(root, capsys, check_mode=True, lock_timeout=0)["changed"]
    finally:
        release(held)
    assert run(root, capsys, lock_timeout=0)["changed"]


def test_a_fifo_among_the_later_files_is_noted_not_read(root, capsys):
    os.mkfifo(root / "usr/lib/sysctl.d/zz-fifo.conf")
    result = run(root, capsys, check_mode=True)
    assert not result.get("failed")
    assert any("zz-fifo.conf is not a regular file: not checked" in note for note in result["notes"]), result


def test_the_lock_is_taken_in_a_private_directory_under_the_root(root, capsys):
    held = acquire(str(root / "run/netstack-tcp-tuning"), 0, "pid 4242 (another run)")
    try:
        result = run(root, capsys, lock_timeout=0)
        lock = f"{root}/run/netstack-tcp-tuning/sysctl_dropin.lock"
        assert result["failed"] and f"lock {lock} is still held" in result["msg"]
        assert not result["changed"] and not result["file_changed"]
    finally:
        release(held)
    assert run(root, capsys)["file_changed"]
    assert oct((root / "run/netstack-tcp-tuning").stat().st_mode & 0o777) == "0o700"


def test_lock_file_is_no_longer_an_option(root, capsys):
    """It emptied whatever file it named (the drop-in, sysctl.conf) and took relative paths."""
    result = run(root, capsys, lock_file=str(root / "etc/sysctl.d/10-x.conf"))
    assert result["failed"] and "Unsupported parameters" in result["msg"] and "lock_file" in result["msg"]


@pytest.mark.parametrize("relative", ["run/sysctl.d", "usr/local/lib/sysctl.d", "lib/sysctl.d"])
def test_every_sysctl_d_directory_is_taken_under_the_root(root, capsys, relative):
    (root / relative).mkdir(parents=True)
    (root / relative / "zz-later.conf").write_text("net.ipv4.tcp_rmem = 4096 87380 6291456\n")
    result = run(root, capsys, check_mode=True)
    assert result["conflicts"] == [
        {
            "key": "net.ipv4.tcp_rmem",
            "file": str(root / relative / "zz-later.conf"),
            "line": 1,
            "value": "4096 87380 6291456",
        }
    ]
    # A drop-in in that directory is in the search roots: no force needed.
    placed = run(root, capsys, check_mode=True, path=str(root / relative / "50-netstack.conf"))
    assert not placed.get("failed") and placed["file_would_change"], placed


def test_a_path_outside_the_root_is_refused_naming_both(root, capsys, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "99-netstack-tcp-memory.conf"
    before = snapshot(root)
    result = run(root, capsys, path=str(elsewhere), force=True)
    assert result["failed"] and f"path {elsewhere} is not under root {root}" in result["msg"], result
    assert not elsewhere.exists() and snapshot(root) == before


@pytest.mark.parametrize(
    ("given", "fragment"),
    [("relative/root", "must be an absolute path"), ("/no/such/root", "is not a directory")],
)
def test_a_root_that_is_not_a_directory_is_refused_naming_it(root, capsys, given, fragment):
    before = snapshot(root)
    result = run(root, capsys, root=given)
    assert result["failed"] and f"root {given!r}" in result["msg"] and fragment in result["msg"], result
    assert snapshot(root) == before


def test_the_removed_test_options_are_refused(root, capsys):
    result = run(root, capsys, proc_sys_root=str(root / "proc/sys"))
    assert result["failed"] and "proc_sys_root" in result["msg"]


def test_an_image_root_gets_the_dropin_for_its_next_boot_and_the_running_kernel_is_untouched(tmp_path, capsys):
    """What `root` is for: a root file system being built (an image, a chroot) with /proc mounted in it,
    written with apply=false. The running kernel's values are read, never written."""
    image = tmp_path / "image"
    (image / "etc/sysctl.d").mkdir(parents=True)
    (image / "proc").symlink_to("/proc")  # as `mount --bind /proc image/proc` would show it
    kernel_before = Path("/proc/sys/net/ipv4/tcp_rmem").read_text()
    settings = {"net.ipv4.tcp_rmem": "4096 131072 7340032"}
    result = run(image, capsys, settings=settings, apply=False)
    assert result["changed"] and result["file_changed"] and not result.get("failed"), result
    assert "net.ipv4.tcp_rmem = 4096 131072 7340032" in (image / "etc/sysctl.d/99-netstack-tcp-memory.conf").read_text()
    assert result["keys"]["net.ipv4.tcp_rmem"]["reason"].startswith("written to the drop-in only (apply=false)")
    assert Path("/proc/sys/net/ipv4/tcp_rmem").read_text() == kernel_before


def test_a_run_killed_during_its_rollback_is_undone_by_the_next_run(root, capsys, monkeypatch):
    """A SIGKILL during a rollback left the new drop-in (holding a value the kernel refuses) and a hidden .restore
    file; later runs then rolled back to that file and said "Rolled back: file restored". The next run must put
    back what the killed run changed before doing its own work."""
    etc = root / "etc/sysctl.d"
    dropin = etc / "99-netstack-tcp-memory.conf"
    previous = f"{MANAGED_LINE}\n# the previous run's file\n"
    dropin.write_text(previous)
    before, rmem_before = entries(etc), live(root, "net/ipv4/tcp_rmem")
    reads_back_empty(monkeypatch, "net.ipv4.tcp_wmem")  # the kernel "refuses" tcp_wmem: every run rolls back

    child = os.fork()
    if child == 0:  # the killed run: SIGKILL once the rollback's temporary file is being flushed
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if any(name.endswith(".restore") for name in os.listdir(etc)):
                os.kill(os.getpid(), signal.SIGKILL)
            real_fsync(fd)

        os.fsync = fsync
        try:
            run(root, capsys)
        finally:
            os._exit(3)
    _pid, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert dropin.read_text() != previous and any(name.endswith(".restore") for name in os.listdir(etc))
    assert live(root, "net/ipv4/tcp_rmem") != rmem_before

    result = run(root, capsys)
    assert result["failed"] and result.get("rollback", {}).get("file") == "restored", result.get("msg")
    assert "was interrupted: put back" in result["notes"][0], result["notes"]
    assert entries(etc) == before
    assert live(root, "net/ipv4/tcp_rmem").split() == rmem_before.split()
    assert not (root / "run/netstack-tcp-tuning/interrupted-run.json").exists()

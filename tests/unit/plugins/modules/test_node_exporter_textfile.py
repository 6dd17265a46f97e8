# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""node_exporter_textfile on a real directory: what is at the path decides whether it is read, replaced or refused.
(The role's namespace test plants links and FIFOs as another user; these are the cases that need no role run.)"""

from __future__ import annotations

import os
from pathlib import Path

from ansible_collections.netstack.tcp_tuning.plugins.modules import node_exporter_textfile
from ansible_collections.netstack.tcp_tuning.tests.unit.plugins.modules.module_args import (
    ExitJson,
    FailJson,
    run_module,
)

TEXT = "# HELP netstack_tcp_memory_target_connections x\n# TYPE netstack_tcp_memory_target_connections gauge\n"


def write(path: Path, **args):
    return run_module(node_exporter_textfile.main, {"path": str(path), "content": TEXT, **args})


def test_hard_link_at_the_path_is_replaced_without_touching_or_reading_its_target(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("secret bytes\n")
    directory = tmp_path / "textfile"
    directory.mkdir()
    textfile = directory / "netstack_tcp_memory.prom"
    os.link(secret, textfile)

    outcome, result = write(textfile, _ansible_diff=True, mtime=1700000000)

    assert outcome is ExitJson and result["changed"], result
    assert "secret" not in repr(result)  # nlink 2: never opened, no diff "before"
    assert secret.read_text() == "secret bytes\n" and secret.stat().st_nlink == 1
    assert textfile.read_text() == TEXT and oct(textfile.stat().st_mode & 0o777) == "0o644"
    assert textfile.stat().st_mtime == 1700000000
    assert [p.name for p in directory.iterdir()] == [textfile.name]

    # Its own file, same content and time: read back, nothing written.
    inode = textfile.stat().st_ino
    outcome, result = write(textfile, mtime=1700000000)
    assert outcome is ExitJson and not result["changed"] and textfile.stat().st_ino == inode
    assert result["previous"] == {"exists": True, "kind": "file", "mtime": 1700000000}


def test_directory_at_the_path_is_refused_and_left(tmp_path):
    textfile = tmp_path / "netstack_tcp_memory.prom"
    textfile.mkdir()
    for state in ("present", "writable"):
        outcome, result = write(textfile, state=state)
        assert outcome is FailJson and f"{textfile} is a directory" in result["msg"], result
    assert textfile.is_dir() and [p.name for p in tmp_path.iterdir()] == [textfile.name]


def test_writable_leaves_nothing_behind_and_check_mode_writes_nothing(tmp_path):
    textfile = tmp_path / "netstack_tcp_memory.prom"
    outcome, result = write(textfile, state="writable")
    assert outcome is ExitJson and not result["changed"]
    outcome, result = write(textfile, _ansible_check_mode=True)
    assert outcome is ExitJson and result["changed"]
    assert list(tmp_path.iterdir()) == []

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load program's view of its own memory cgroup (the memcg scenario asserts on it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

LOAD_PATH = Path(__file__).resolve().parents[2] / "tools" / "tcp_pressure_load.py"
spec = importlib.util.spec_from_file_location("tcp_pressure_load_memcg", LOAD_PATH)
load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load)


def cgroup_tree(tmp_path, limit="67108864", events_max=27):
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/system.slice/load.scope\n")
    scope = tmp_path / "cg/system.slice/load.scope"
    scope.mkdir(parents=True)
    (scope / "memory.max").write_text(limit + "\n")
    (scope / "memory.current").write_text("66000000\n")
    (scope / "memory.stat").write_text("anon 100\nsock 55000000\n")
    (scope / "memory.events").write_text(f"low 0\nhigh 0\nmax {events_max}\noom 0\noom_kill 0\n")
    return str(tmp_path / "proc"), str(tmp_path / "cg")


def test_memcg_path_v2_line_only():
    assert load.parse_memcg_path("12:memory:/x\n0::/a.scope\n") == "/a.scope"
    assert load.parse_memcg_path("12:memory:/x\n") is None


def test_read_memcg_and_summary(tmp_path):
    proc_root, cgroup_root = cgroup_tree(tmp_path)
    held = load.read_memcg(proc_root, cgroup_root)
    assert held == {
        "path": "/system.slice/load.scope",
        "max_bytes": 67108864,
        "current_bytes": 66000000,
        "sock_bytes": 55000000,
        "events": {"high": 0, "max": 27, "oom": 0, "oom_kill": 0},
    }
    before = dict(held, events={"high": 0, "max": 2, "oom": 0, "oom_kill": 0})
    summary = load.memcg_summary(before, held)
    assert summary["events_delta"] == {"high": 0, "max": 25, "oom": 0, "oom_kill": 0}
    assert summary["held_sock_bytes"] == 55000000


def test_unlimited_and_missing(tmp_path):
    proc_root, cgroup_root = cgroup_tree(tmp_path, limit="max")
    assert load.read_memcg(proc_root, cgroup_root)["max_bytes"] is None
    assert load.read_memcg(proc_root, str(tmp_path / "nowhere")) is None
    assert load.memcg_summary(None, None) is None

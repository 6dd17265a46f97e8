# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory cgroups owning TCP sockets: the parsers, and the whole reader on fixture trees (v2, v1)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import cgroups as cg
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.cgroup_trees.trees import BROKEN, materialize

V1_UNLIMITED = "9223372036854771712"


def gather_tree(tmp_path, name, **bounds):
    root = materialize(name, str(tmp_path))
    return cg.gather_cgroups(proc_root=os.path.join(root, "proc"), fs_root=root, **bounds)


def owner(facts, path):
    return next(entry for entry in facts["owners"] if entry["path"] == path)


# ---------------------------------------------------------------- parsers


def test_proc_pid_cgroup_v2_only():
    assert cg.parse_proc_pid_cgroup("0::/system.slice/ssh.service\n") == {
        "v2": "/system.slice/ssh.service",
        "v1_memory": None,
    }


def test_proc_pid_cgroup_hybrid_names_both():
    text = "12:memory:/docker/abc\n11:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/\n"
    assert cg.parse_proc_pid_cgroup(text) == {"v2": "/", "v1_memory": "/docker/abc"}


def test_proc_pid_cgroup_path_with_colon_is_kept_whole():
    assert cg.parse_proc_pid_cgroup("0::/a:b\n")["v2"] == "/a:b"


def test_mounts_hybrid_prefers_nothing_but_reports_both():
    text = (
        "32 31 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory\n"
        "36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    assert cg.parse_cgroup_mounts(text) == {
        "v2": ("/", "/sys/fs/cgroup/unified"),
        "v1_memory": ("/", "/sys/fs/cgroup/memory"),
    }


def test_mounts_container_root_and_escaped_mountpoint():
    text = "30 23 0:26 /machine.slice/x /sys/fs/cgroup\\040new rw - cgroup2 cgroup2 rw\n"
    assert cg.parse_cgroup_mounts(text)["v2"] == ("/machine.slice/x", "/sys/fs/cgroup new")


def test_mounts_ignore_lines_without_separator():
    assert cg.parse_cgroup_mounts("garbage\n\n1 2 3\n") == {"v2": None, "v1_memory": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max\n", None), ("67108864\n", 67108864), (V1_UNLIMITED + "\n", None), ("0\n", 0)],
)
def test_limit_bytes(text, expected):
    assert cg.parse_limit_bytes(text, "memory.max") == expected


@pytest.mark.parametrize("text", ["64M\n", "-1\n", "\n", "max max\n"])
def test_limit_bytes_garbage_names_the_file(text):
    with pytest.raises(cg.CgroupParseError, match=r"^/x/memory\.max: expected a number of bytes or 'max'"):
        cg.parse_limit_bytes(text, "/x/memory.max")


def test_flat_keyed_and_garbage():
    assert cg.parse_flat_keyed("low 0\nhigh 3\n\nmax 27\n", "e") == {"low": 0, "high": 3, "max": 27}
    with pytest.raises(cg.CgroupParseError, match=r"^e: line 2 is not 'key value'"):
        cg.parse_flat_keyed("low 0\nmax twenty\n", "e")


def test_status_fdsize():
    assert cg.parse_status_fdsize("Name:\tx\nFDSize:\t1024\n") == 1024
    assert cg.parse_status_fdsize("Name:\tx\n") is None


@pytest.mark.parametrize(
    ("link", "inode"),
    [("socket:[12345]", 12345), ("pipe:[7]", None), ("/dev/null", None), ("socket:[x]", None), ("socket:[", None)],
)
def test_socket_inode(link, inode):
    assert cg.socket_inode(link) == inode


def test_tcp_table_inodes_skip_header_and_zero():
    lines = [
        b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        b"   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0  0 1000 1 0 100 0 0 10 0\n",
        b"   1: 0100007F:9C41 0100007F:1388 06 00000000:00000000 03:00000000 00000000  0  0 0 3 0\n",
        b"\n",
    ]
    assert list(cg.tcp_table_inodes(lines, "tcp")) == [1000]


def test_filesystem_dir_inside_and_outside_the_mount():
    mount = ("/machine.slice/x", "/sys/fs/cgroup")
    assert cg.filesystem_dir(mount, "/machine.slice/x/a", "/r") == "/r/sys/fs/cgroup/a"
    assert cg.filesystem_dir(mount, "/machine.slice/x", "/") == "/sys/fs/cgroup/"
    assert cg.filesystem_dir(mount, "/machine.slice/xy", "/") is None
    assert cg.filesystem_dir(None, "/a", "/") is None


@pytest.mark.parametrize("path", ["/..", "/../..", "/../../other.slice/x", "/a/../../b", "/../system.slice"])
def test_filesystem_dir_refuses_paths_of_another_cgroup_namespace(path):
    # /proc/PID/cgroup of a process in another cgroup namespace names its cgroup relative to the reader's
    # namespace root: '/../..' climbs out of the mount, whatever the mount's root is.
    assert cg.filesystem_dir(("/", "/sys/fs/cgroup"), path, "/r") is None
    assert cg.filesystem_dir(("/machine.slice/x", "/sys/fs/cgroup"), "/machine.slice/x" + path, "/r") is None


def test_filesystem_dir_folds_harmless_dot_components():
    assert cg.filesystem_dir(("/", "/sys/fs/cgroup"), "/a/./b/../c", "/r") == "/r/sys/fs/cgroup/a/c"


def test_a_cgroup_of_another_namespace_is_not_followed_out_of_the_mount(tmp_path):
    root = materialize("v2_scope", str(tmp_path))
    with open(os.path.join(root, "proc/901/cgroup"), "w") as handle:
        handle.write("0::/../../..\n")  # from the mount /sys/fs/cgroup, three levels up is the root itself
    for name, content in (("memory.max", "1000\n"), ("memory.current", "500\n")):
        with open(os.path.join(root, name), "w") as handle:  # planted outside the cgroup mount
            handle.write(content)
    facts = cg.gather_cgroups(proc_root=os.path.join(root, "proc"), fs_root=root)
    escaped = owner(facts, "/../../..")
    assert escaped["readable"] is False
    assert "memory_max_bytes" not in escaped and escaped["socket_limit"] is None


def test_ancestors_stop_at_the_mount_root():
    assert cg.ancestors("/a/b/c", "/") == ["/a/b/c", "/a/b", "/a", "/"]
    assert cg.ancestors("/m/x/c", "/m/x") == ["/m/x/c", "/m/x"]


def test_headroom_is_the_limit_minus_the_other_memory():
    chain = [("/s", 66, {"memory.high": None, "memory.max": 100}, None), ("/", None, {"memory.max": 5}, None)]
    assert cg.socket_headroom(chain, own_sock_bytes=50) == {
        "cgroup": "/s",
        "file": "memory.max",
        "limit_bytes": 100,
        "file_bytes": None,
        "other_bytes": 16,
        "headroom_bytes": 84,
    }


def test_headroom_leaves_reclaimable_file_pages_out_of_the_other_memory():
    # 66 charged: 50 of our sockets, 10 of page cache reclaim frees before a charge fails, 6 of other memory.
    chain = [("/s", 66, {"memory.max": 100}, 10)]
    tightest = cg.socket_headroom(chain, own_sock_bytes=50)
    assert (tightest["file_bytes"], tightest["other_bytes"], tightest["headroom_bytes"]) == (10, 6, 94)


def test_headroom_takes_the_tightest_limit_on_the_way_up():
    chain = [("/a/b", 10, {"memory.max": 1000}, 0), ("/a", 900, {"memory.high": 950, "memory.max": 2000}, 0)]
    tightest = cg.socket_headroom(chain, own_sock_bytes=5)
    assert (tightest["cgroup"], tightest["file"], tightest["headroom_bytes"]) == ("/a", "memory.high", 55)


def test_headroom_none_without_a_finite_limit():
    assert cg.socket_headroom([("/a", 10, {"memory.max": None, "memory.high": None}, None)], 0) is None


# ---------------------------------------------------------------- the reader on fixture trees


def test_v2_scope_names_the_limited_cgroup_first(tmp_path):
    facts = gather_tree(tmp_path, "v2_scope")
    assert facts["memory_controller"] == "v2"
    assert [entry["path"] for entry in facts["owners"]] == ["/system.slice/run-load.scope", "/system.slice/ssh.service"]
    load = owner(facts, "/system.slice/run-load.scope")
    assert load == {
        "path": "/system.slice/run-load.scope",
        "version": 2,
        "tcp_sockets": 5,  # four in tcp, one in tcp6; socket 9999 (not TCP) and the unix socket are not counted
        "processes": 2,
        "readable": True,
        "memory_max_bytes": 67108864,
        "memory_high_bytes": None,
        "memory_current_bytes": 66000000,
        "memory_stat_sock_bytes": 55000000,
        "file_bytes": 2097152,
        "memory_events": {"low": 0, "high": 0, "max": 27, "oom": 0, "oom_kill": 0},
        "sock_throttled": 3,  # a kernel that counts it in memory.events
        "socket_limit": {
            "cgroup": "/system.slice/run-load.scope",
            "file": "memory.max",
            "limit_bytes": 67108864,
            "file_bytes": 2097152,
            "other_bytes": 66000000 - 55000000 - 2097152,  # current - sock - reclaimable file
            "headroom_bytes": 67108864 - (66000000 - 55000000 - 2097152),
        },
        "socket_headroom_bytes": 67108864 - (66000000 - 55000000 - 2097152),
    }
    ssh = owner(facts, "/system.slice/ssh.service")
    assert ssh["sock_throttled"] is None  # its memory.events has no such line (an older kernel)
    assert ssh["tcp_sockets"] == 1 and ssh["socket_limit"] is None and ssh["socket_headroom_bytes"] is None
    assert facts["scan"] == {
        "processes_listed": 6,
        "processes_other_netns": 0,
        "processes_read": 5,  # the kernel thread (FDSize 0) is not read
        "processes_unreadable": 0,
        "fds_read": 3 * 5 + 1 + 5 + 1,
        "tcp_sockets_seen": 6,
        "tcp_sockets_attributed": 6,
        "max_processes": 4096,
        "max_fds": 100000,
        "truncated": False,
    }


def test_v2_limit_on_an_ancestor_binds_and_missing_files_are_none(tmp_path):
    facts = gather_tree(tmp_path, "v2_ancestor_limit")
    container = owner(facts, "/machine.slice/libpod-abc.scope/container")
    assert container["memory_high_bytes"] is None  # no memory.high file
    assert container["memory_max_bytes"] is None  # "max"
    assert container["socket_limit"] == {
        "cgroup": "/machine.slice/libpod-abc.scope",
        "file": "memory.high",
        "limit_bytes": 201326592,
        "file_bytes": 2097152,
        "other_bytes": 189000000 - 2097152,
        "headroom_bytes": 201326592 - (189000000 - 2097152),
    }
    gone = owner(facts, "/gone.scope")
    assert gone == {
        "path": "/gone.scope",
        "version": 2,
        "tcp_sockets": 1,
        "processes": 1,
        "readable": False,
        "socket_limit": None,
        "socket_headroom_bytes": None,
    }


def test_v1_hybrid_reports_kmem_tcp_and_says_v1(tmp_path):
    facts = gather_tree(tmp_path, "v1_hybrid")
    assert facts["memory_controller"] == "v1"
    assert any("cgroup v1" in note and "memory.kmem.tcp.limit_in_bytes" in note for note in facts["notes"])
    docker = owner(facts, "/docker/abc")
    assert docker == {
        "path": "/docker/abc",
        "version": 1,
        "tcp_sockets": 3,
        "processes": 1,
        "readable": True,
        "memory_limit_bytes": 536870912,
        "memory_usage_bytes": 200000000,
        "kmem_tcp_limit_bytes": 16777216,
        "kmem_tcp_usage_bytes": 16000000,
        "kmem_tcp_max_usage_bytes": 16777216,
        "kmem_tcp_failcnt": 12,
        "kmem_tcp_present": True,
        "socket_limit": {
            "cgroup": "/docker/abc",
            "file": "memory.kmem.tcp.limit_in_bytes",
            "limit_bytes": 16777216,
            "file_bytes": None,
            "other_bytes": 0,
            "headroom_bytes": 16777216,
        },
        "socket_headroom_bytes": 16777216,
    }
    nginx = owner(facts, "/system.slice/nginx.service")
    assert nginx["kmem_tcp_present"] is False and nginx["kmem_tcp_limit_bytes"] is None
    assert nginx["memory_limit_bytes"] is None  # PAGE_COUNTER_MAX is no limit
    assert nginx["socket_limit"] is None


def test_no_cgroup_hierarchy(tmp_path):
    facts = gather_tree(tmp_path, "no_cgroups")
    assert facts["memory_controller"] is None
    assert facts["owners"] == []
    assert facts["scan"]["tcp_sockets_seen"] == 1
    assert any("no cgroup v2 or v1 memory hierarchy" in note for note in facts["notes"])


def test_fd_bound_reads_the_biggest_fd_table_first(tmp_path):
    # pid 900 has the largest FDSize: with a budget of 8 links it is read whole, pid 901 partly.
    facts = gather_tree(tmp_path, "v2_scope", max_fds=8)
    assert facts["scan"]["fds_read"] == 8 and facts["scan"]["truncated"] is True
    assert facts["owners"][0]["path"] == "/system.slice/run-load.scope"
    assert facts["owners"][0]["tcp_sockets"] == 4
    assert any("stopped at its bounds" in note for note in facts["notes"])


def test_processes_of_another_network_namespace_are_skipped(tmp_path):
    root = materialize("v2_scope", str(tmp_path))
    proc_root = os.path.join(root, "proc")
    os.makedirs(os.path.join(proc_root, "self/ns"))
    os.symlink("net:[4026531840]", os.path.join(proc_root, "self/ns/net"))
    for pid, link in (("900", "net:[4026532999]"), ("901", "net:[4026531840]")):
        os.makedirs(os.path.join(proc_root, pid, "ns"))
        os.symlink(link, os.path.join(proc_root, pid, "ns/net"))
    facts = cg.gather_cgroups(proc_root=proc_root, fs_root=root)
    assert facts["scan"]["processes_other_netns"] == 1
    assert owner(facts, "/system.slice/run-load.scope")["tcp_sockets"] == 1  # pid 901 only


def test_process_bound(tmp_path):
    facts = gather_tree(tmp_path, "v2_scope", max_processes=2)
    assert facts["scan"]["truncated"] is True
    assert facts["scan"]["processes_read"] <= 2


def test_a_fifo_in_place_of_a_cgroup_file_reads_as_missing(tmp_path):
    root = materialize("v2_scope", str(tmp_path))
    limit = os.path.join(root, "sys/fs/cgroup/system.slice/run-load.scope/memory.max")
    os.remove(limit)
    os.mkfifo(limit)
    facts = cg.gather_cgroups(proc_root=os.path.join(root, "proc"), fs_root=root)
    assert owner(facts, "/system.slice/run-load.scope")["memory_max_bytes"] is None


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_name_the_file(tmp_path, name):
    with pytest.raises(cg.CgroupParseError) as caught:
        gather_tree(tmp_path, name)
    relative = {
        "broken/memory_max_garbage": "sys/fs/cgroup/system.slice/run-load.scope/memory.max",
        "broken/memory_events_garbage": "sys/fs/cgroup/system.slice/run-load.scope/memory.events",
        "broken/tcp_table_garbage": "proc/net/tcp",
    }[name]
    assert caught.value.name.endswith(relative)
    assert str(caught.value).startswith(caught.value.name + ": ")

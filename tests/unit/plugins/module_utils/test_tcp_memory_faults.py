# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults under the proc root and nonsense facts, on fixture trees.

Each gather runs in a forked child with an address-space limit and a deadline, so the code
before the fix (which hung on a FIFO and read /dev/zero until memory ran out) fails these
tests instead of hanging or exhausting the machine.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import blocked_writers as writers
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import diag, proc
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import read as reader
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.gather import gather
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.proc_trees.trees import materialize

CHILD_MEMORY_BYTES = 1 << 30
CHILD_SECONDS = 10


def _child(connection, function, arguments):
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    signal.alarm(CHILD_SECONDS)
    try:
        connection.send(("ok", function(**arguments)))
    except proc.ProcParseError as exc:
        connection.send(("ProcParseError", (exc.name, str(exc))))
    except BaseException as exc:  # reported to the parent, which fails the test
        connection.send(("other", repr(exc)))


def bounded(function, **arguments):
    """Run function(**arguments) in a child with 1 GiB of address space and 10 s; (kind, value)."""
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(child_end, function, arguments))
    child.start()
    child.join(CHILD_SECONDS + 5)
    if child.is_alive():
        child.kill()
        child.join()
    assert parent_end.poll(), f"the child died without an answer (exit code {child.exitcode}): hung or out of memory"
    return parent_end.recv()


def tree(tmp_path, name="normal_host"):
    proc_root, sys_root = materialize(name, str(tmp_path))
    return proc_root, sys_root


def replace(path, how):
    os.unlink(path)
    how(path)


def refused(tmp_path, relative, how, **options):
    proc_root, sys_root = tree(tmp_path)
    path = os.path.join(proc_root, relative)
    replace(path, how)
    kind, value = bounded(gather, proc_root=proc_root, sys_root=sys_root, **options)
    assert kind == "ProcParseError", (kind, value)
    name, message = value
    assert name == path
    return message


# --- item 14: only regular files ----------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    ["meminfo", "sys/net/ipv4/tcp_rmem", "zoneinfo", "net/netstat", "self/mountinfo"],
)
def test_a_fifo_is_refused_with_its_path_not_waited_on(tmp_path, relative):
    message = refused(tmp_path, relative, os.mkfifo)
    assert "is a FIFO, not a regular file" in message


def test_a_link_to_dev_zero_is_refused_not_read(tmp_path):
    message = refused(tmp_path, "sys/net/ipv4/tcp_rmem", lambda path: os.symlink("/dev/zero", path))
    assert "is a character device, not a regular file" in message


def test_a_directory_where_a_file_should_be_is_refused(tmp_path):
    message = refused(tmp_path, "net/sockstat6", os.mkdir)
    assert "is a directory" in message


def test_a_fifo_as_the_socket_table_is_refused(tmp_path):
    message = refused(tmp_path, "net/tcp", os.mkfifo, states=True, connections_source="proc")
    assert "is a FIFO" in message


def test_a_fifo_as_a_cpu_list_is_refused(tmp_path):
    proc_root, sys_root = tree(tmp_path)
    path = os.path.join(sys_root, "devices/system/cpu/online")
    replace(path, os.mkfifo)
    kind, value = bounded(gather, proc_root=proc_root, sys_root=sys_root)
    assert kind == "ProcParseError" and value[0] == path, value


def test_task_files_are_read_only_when_regular(tmp_path):
    fifo = tmp_path / "stack"
    os.mkfifo(fifo)
    kind, value = bounded(writers._read, path=str(fifo))
    assert kind == "ProcParseError" and "is a FIFO" in value[1], value


# --- item 13: capped reads ----------------------------------------------------------------


def _pad(size):
    def write(path):
        with open(path, "w") as handle:
            handle.write("4096 131072 6291456" + " " * size + "\n")

    return write


def test_an_oversized_sysctl_file_is_refused_naming_it(tmp_path):
    # A valid value padded past the cap: read whole, it parsed, and the module held it all in memory.
    message = refused(tmp_path, "sys/net/ipv4/tcp_rmem", _pad(reader.SMALL_FILE_MAX_BYTES))
    assert f"larger than {reader.SMALL_FILE_MAX_BYTES} bytes" in message


def test_a_sparse_huge_meminfo_is_refused_without_reading_it_all(tmp_path):
    def sparse(path):
        with open(path, "wb") as handle:
            handle.truncate(8 << 30)  # 8 GiB of holes: reading it whole exceeds the child's 1 GiB

    message = refused(tmp_path, "meminfo", sparse)
    assert "larger than" in message


def test_zoneinfo_and_mountinfo_get_the_larger_cap(tmp_path):
    proc_root, sys_root = tree(tmp_path)
    with open(os.path.join(proc_root, "zoneinfo"), "a") as handle:
        # per-CPU pageset blocks of a big host: more than the small cap, less than the large one
        handle.write("    cpu: 1\n              count: 0\n" * (reader.SMALL_FILE_MAX_BYTES // 30))
    facts = gather(proc_root=proc_root, sys_root=sys_root)
    assert facts["memory"]["nr_free_buffer_pages_source"] == "zoneinfo"


def test_socket_table_lines_and_size_are_capped(tmp_path):
    path = tmp_path / "tcp"
    path.write_bytes(b"  sl  local_address\n" + b"0" * (reader.SOCKET_TABLE_LINE_MAX_BYTES + 10) + b"\n")
    with pytest.raises(proc.ProcParseError, match=r"line 2 is longer than 4096 bytes"):
        diag.dump_proc([(2, str(path))])
    path.write_bytes(b"  sl  local_address\n" * 3)
    with reader.open_regular(str(path)) as handle, pytest.raises(proc.ProcParseError, match="larger than 30 bytes"):
        list(reader.capped_lines(handle, str(path), max_bytes=30))


def test_read_capped_reads_a_file_exactly_at_the_cap(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert reader.read_capped(str(path), 100) == b"x" * 100
    with pytest.raises(proc.ProcParseError, match="larger than 99 bytes"):
        reader.read_capped(str(path), 99)


# --- item 12: nonsense facts --------------------------------------------------------------


def _meminfo_total(kib):
    def write(path):
        with open(path, "w") as handle:
            handle.write(f"MemTotal:       {kib} kB\nMemFree:        100 kB\nMemAvailable:   100 kB\n")

    return write


def test_an_absurd_memtotal_is_refused_naming_file_and_fact(tmp_path):
    message = refused(tmp_path, "meminfo", _meminfo_total(99999999999999999999))
    assert "MemTotal 102399999999999999998976 bytes is outside" in message


def test_a_tiny_memtotal_is_refused(tmp_path):
    message = refused(tmp_path, "meminfo", _meminfo_total(1))
    assert "MemTotal 1024 bytes is outside" in message


def _value(text):
    def write(path):
        with open(path, "w") as handle:
            handle.write(text + "\n")

    return write


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("sys/net/ipv4/tcp_mem", "1 2 9223372036854775807", "net.ipv4.tcp_mem value 9223372036854775807 is outside"),
        (
            "sys/net/ipv4/tcp_rmem",
            "4096 131072 2147483648",
            "net.ipv4.tcp_rmem value 2147483648 is outside 0..2147483647",
        ),
        ("sys/net/ipv4/tcp_wmem", "-1 16384 4194304", "net.ipv4.tcp_wmem value -1 is outside"),
        ("sys/net/core/rmem_max", "99999999999", "net.core.rmem_max value 99999999999 is outside"),
        ("sys/net/ipv4/tcp_adv_win_scale", "99", "net.ipv4.tcp_adv_win_scale value 99 is outside -31..31"),
    ],
)
def test_a_sysctl_value_no_kernel_can_hold_is_refused(tmp_path, relative, text, expected):
    assert expected in refused(tmp_path, relative, _value(text))


def test_an_unordered_tcp_mem_is_reported_not_refused(tmp_path):
    proc_root, sys_root = tree(tmp_path)
    _value("300 200 100")(os.path.join(proc_root, "sys/net/ipv4/tcp_mem"))
    facts = gather(proc_root=proc_root, sys_root=sys_root)
    assert facts["sysctl"]["net.ipv4.tcp_mem"]["value"] == [300, 200, 100]
    notes = [note for note in facts["status"]["notes"] if note.startswith("net.ipv4.tcp_mem is 300 200 100")]
    assert notes and "not min <= pressure <= max" in notes[0] and proc_root in notes[0]


def test_a_64k_page_wmem_is_not_flagged():
    assert proc.triple_order_note("net.ipv4.tcp_wmem", [65536, 16384, 4194304], "x") is None
    assert proc.triple_order_note("net.ipv4.tcp_rmem", [6291456, 87380, 4096], "x") is not None


def test_a_cpu_list_beyond_any_kernel_is_refused(tmp_path):
    proc_root, sys_root = tree(tmp_path)
    path = os.path.join(sys_root, "devices/system/cpu/online")
    _value("0-99999999")(path)
    with pytest.raises(proc.ProcParseError, match=r"names a CPU outside 0\.\.65535") as caught:
        gather(proc_root=proc_root, sys_root=sys_root)
    assert caught.value.name == path


@pytest.mark.parametrize("size", [0, 2048, 12288, 2 << 20])
def test_page_sizes_outside_the_bounds_are_refused(size):
    with pytest.raises(proc.ProcParseError, match=f"page size {size} bytes is not a power of two"):
        proc.check_page_size(size, "sysconf(SC_PAGE_SIZE)")


@pytest.mark.parametrize("size", [4096, 16384, 65536, 262144])
def test_real_page_sizes_pass(size):
    assert proc.check_page_size(size, "sysconf") == size


def test_memavailable_above_memtotal_is_refused(tmp_path):
    def write(path):
        with open(path, "w") as handle:
            handle.write("MemTotal:       2000000 kB\nMemAvailable:   3000000 kB\n")

    assert "MemAvailable 3072000000 bytes is outside 0..MemTotal" in refused(tmp_path, "meminfo", write)


def test_zoneinfo_far_above_memtotal_falls_back_to_meminfo():
    zones = [{"node": 0, "zone": "Normal", "managed_pages": 10**15, "high_pages": 100}]
    estimate = proc.estimate_nr_free_buffer_pages(zones, 2 << 30, 4096)
    assert estimate["source"] == "meminfo" and "far above MemTotal" in estimate["note"]

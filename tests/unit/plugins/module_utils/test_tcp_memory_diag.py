# Copyright: netstack.tcp_tuning contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inet_diag stream walking and /proc/net/tcp scanning, on synthetic kernel output."""

from __future__ import annotations

import os
import random
import socket
import struct

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils import tcp_memory_diag as diag
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.tcp_memory_proc import ProcParseError
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.proc_trees.trees import materialize

ESTABLISHED, TIME_WAIT, LISTEN = 1, 6, 10


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def diag_msg(state, sport, dport, rmem=None, wmem=None, rqueue=0, wqueue=0, extra_attrs=b"", family=socket.AF_INET):
    """One SOCK_DIAG_BY_FAMILY reply as the kernel lays it out (attributes optional)."""
    src = socket.inet_pton(family, "127.0.0.1" if family == socket.AF_INET else "::1").ljust(16, b"\0")
    body = struct.pack("=BBBB", family, state, 0, 0)
    body += struct.pack(">HH16s16s", sport, dport, src, src) + struct.pack("=III", 0, 0, 0)
    body += struct.pack("=IIIII", 0, rqueue, wqueue, 0, 12345)
    body += extra_attrs
    if rmem is not None:
        body += attr(diag.INET_DIAG_MEMINFO, struct.pack("=IIII", rmem, wmem, 0, 0))
    return struct.pack("=IHHII", 16 + len(body), diag.SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


def done():
    return struct.pack("=IHHIIi", 20, diag.NLMSG_DONE, 2, 1, 0, 0)


def error(errno_value):
    return struct.pack("=IHHIIi", 36, diag.NLMSG_ERROR, 0, 1, 0, -errno_value) + b"\0" * 16


class FakeNetlink:
    """Plays back datagrams through recvmsg_into, as a netlink socket would."""

    def __init__(self, datagrams, flags=0):
        self.datagrams = list(datagrams)
        self.flags = flags
        self.sent = []

    def send(self, data):
        self.sent.append(data)

    def recvmsg_into(self, buffers):
        data = self.datagrams.pop(0) if self.datagrams else b""
        buffers[0][: len(data)] = data
        return len(data), b"", self.flags, None


def run(datagrams, top_n=0):
    summary = diag.ConnectionSummary(top_n)
    diag._dump_family(FakeNetlink(datagrams), socket.AF_INET, 1, summary)
    return diag._result(summary, "netlink", with_memory=True)


def test_request_is_a_dump_of_all_tcp_states_with_meminfo():
    fake = FakeNetlink([done()])
    diag._dump_family(fake, socket.AF_INET6, 7, diag.ConnectionSummary(0))
    (request,) = fake.sent
    length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", request)
    family, protocol, ext, _pad, states = struct.unpack_from("=BBBBI", request, 16)
    assert (length, kind, flags, seq) == (len(request), 20, 0x301, 7)
    assert (family, protocol, ext, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 1, 0xFFFFFFFF)
    assert length == 16 + 56


def test_steps_by_each_messages_own_length_across_datagrams():
    shutdown = attr(8, b"\0")  # INET_DIAG_SHUTDOWN comes before MEMINFO on real kernels
    first = diag_msg(ESTABLISHED, 5000, 40000, rmem=68032, wmem=0, rqueue=65536, extra_attrs=shutdown)
    first += diag_msg(TIME_WAIT, 40001, 5000)  # time-wait sockets carry no attributes
    second = diag_msg(ESTABLISHED, 40000, 5000, rmem=0, wmem=4096, wqueue=4000) + diag_msg(
        LISTEN, 5000, 0, rmem=0, wmem=0, rqueue=3, wqueue=4096
    )
    result = run([first, second + done()], top_n=2)
    connections = result["connections"]
    assert connections["by_state"] == {"ESTABLISHED": 2, "TIME_WAIT": 1, "LISTEN": 1}
    assert connections["total"] == 4
    assert (connections["rmem_alloc_bytes_total"], connections["wmem_queued_bytes_total"]) == (68032, 4096)
    # A listener's queues count connections (accept backlog / its limit), not bytes.
    assert (connections["rx_queue_bytes_total"], connections["tx_queue_bytes_total"]) == (65536, 4000)
    assert result["top_sockets"] == [
        {
            "local": "127.0.0.1:5000",
            "remote": "127.0.0.1:40000",
            "state": "ESTABLISHED",
            "rmem_alloc_bytes": 68032,
            "wmem_queued_bytes": 0,
            "rx_queue_bytes": 65536,
            "tx_queue_bytes": 0,
            "total_bytes": 68032,
        },
        {
            "local": "127.0.0.1:40000",
            "remote": "127.0.0.1:5000",
            "state": "ESTABLISHED",
            "rmem_alloc_bytes": 0,
            "wmem_queued_bytes": 4096,
            "rx_queue_bytes": 0,
            "tx_queue_bytes": 4000,
            "total_bytes": 4096,
        },
    ]


def test_top_n_heap_stays_bounded_and_keeps_the_largest():
    rng = random.Random(7)
    sizes = [rng.randrange(0, 1 << 20) for _socket in range(5000)]
    datagrams, batch = [], b""
    for index, size in enumerate(sizes):
        batch += diag_msg(ESTABLISHED, 1000 + index % 60000, 5000, rmem=size, wmem=0)
        if len(batch) > 30000:
            datagrams.append(batch)
            batch = b""
    datagrams.append(batch + done())
    summary = diag.ConnectionSummary(5)
    diag._dump_family(FakeNetlink(datagrams), socket.AF_INET, 1, summary)
    assert len(summary.heap) == 5
    top = diag._result(summary, "netlink", True)["top_sockets"]
    assert [entry["total_bytes"] for entry in top] == sorted(sizes, reverse=True)[:5]
    assert sum(summary.by_state) == 5000 and summary.rmem_alloc == sum(sizes)


def test_ipv6_addresses():
    message = diag_msg(ESTABLISHED, 22, 50000, rmem=10, wmem=0, family=socket.AF_INET6)
    summary = diag.ConnectionSummary(1)
    diag._dump_family(FakeNetlink([message + done()]), socket.AF_INET6, 1, summary)
    (entry,) = diag._result(summary, "netlink", True)["top_sockets"]
    assert (entry["local"], entry["remote"]) == ("[::1]:22", "[::1]:50000")


def test_kernel_error_and_bad_streams_raise_diag_unavailable():
    with pytest.raises(diag.DiagUnavailable, match="refused: EPERM"):
        run([error(1)])
    with pytest.raises(diag.DiagUnavailable, match="truncated"):
        diag._dump_family(FakeNetlink([done()], flags=socket.MSG_TRUNC), socket.AF_INET, 1, diag.ConnectionSummary(0))
    with pytest.raises(diag.DiagUnavailable, match="malformed netlink message"):
        run([struct.pack("=IHHII", 4000, 20, 0, 1, 0)])
    with pytest.raises(diag.DiagUnavailable, match="closed before NLMSG_DONE"):
        run([diag_msg(ESTABLISHED, 1, 2)])


def test_live_kernel_sees_a_connection_we_open():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, _peer = listener.accept()
    try:
        client.sendall(b"x" * 1000)
        try:
            result = diag.dump_netlink(top_n=3)
        except diag.DiagUnavailable as exc:
            pytest.skip(f"netlink inet_diag unavailable here: {exc}")
        assert result["connections"]["by_state"].get("ESTABLISHED", 0) >= 2
        port = listener.getsockname()[1]
        ours = [s for s in result["top_sockets"] if s["local"] == f"127.0.0.1:{port}" and s["state"] == "ESTABLISHED"]
        assert ours and ours[0]["rmem_alloc_bytes"] >= 1000
    finally:
        for sock in (client, server, listener):
            sock.close()


# --- /proc/net/tcp -------------------------------------------------------------------------


def test_proc_tables_of_the_normal_host(tmp_path):
    proc_root, _sys_root = materialize("normal_host", str(tmp_path))
    paths = [
        (socket.AF_INET, os.path.join(proc_root, "net/tcp")),
        (socket.AF_INET6, os.path.join(proc_root, "net/tcp6")),
    ]
    result = diag.dump_proc(paths, top_n=2)
    connections = result["connections"]
    assert connections["source"] == "proc"
    assert connections["by_state"] == {"LISTEN": 2, "ESTABLISHED": 2, "TIME_WAIT": 1}
    assert connections["rmem_alloc_bytes_total"] is None
    assert (connections["rx_queue_bytes_total"], connections["tx_queue_bytes_total"]) == (65536, 4000)
    assert [(s["local"], s["remote"], s["total_bytes"]) for s in result["top_sockets"]] == [
        ("127.0.0.1:5000", "127.0.0.1:40000", 65536),
        ("127.0.0.1:40000", "127.0.0.1:5000", 4000),
    ]


def test_proc_tables_ipv6_address_and_missing_files(tmp_path):
    proc_root, _sys_root = materialize("normal_host", str(tmp_path))
    result = diag.dump_proc(
        [(socket.AF_INET6, os.path.join(proc_root, "net/tcp6")), (socket.AF_INET, "/nonexistent")], 1
    )
    assert result["top_sockets"][0]["local"] == "[::1]:22"
    with pytest.raises(FileNotFoundError):
        diag.dump_proc([(socket.AF_INET, "/nonexistent/tcp")])


@pytest.mark.parametrize(
    ("case", "problem"),
    [("tcp_table_garbage", "line 2 is not a socket line"), ("tcp_table_truncated", "line 2 is truncated")],
)
def test_proc_table_garbage_names_the_file(tmp_path, case, problem):
    proc_root, _sys_root = materialize("broken/" + case, str(tmp_path))
    path = os.path.join(proc_root, "net/tcp")
    with pytest.raises(ProcParseError) as caught:
        diag.dump_proc([(socket.AF_INET, path)], top_n=3)
    assert caught.value.name == path
    assert problem in str(caught.value)


def test_proc_table_without_header():
    with pytest.raises(ProcParseError, match=r"first line is not the 'sl local_address \.\.\.' header"):
        diag.scan_proc_tcp([b"garbage\n"], socket.AF_INET, diag.ConnectionSummary(0), "/proc/net/tcp")


def test_established_is_curr_estab_minus_close_wait_within_the_hashed_sockets():
    assert diag.established_from_counters(100, 5, 120) == 95
    assert diag.established_from_counters(100, 5, None) == 95
    with pytest.raises(ValueError, match="CurrEstab 3 minus CLOSE_WAIT 5 is -2"):
        diag.established_from_counters(3, 5, 120)
    # An underflowed CurrEstab printed unsigned (tcp_set_state bugs before 6.10) is not a count.
    with pytest.raises(ValueError, match=r"not between 0 and 1264 \(twice the 120 hashed sockets"):
        diag.established_from_counters(2**64 - 1, 0, 120)
    assert diag.established_from_counters(130, 0, 120) == 130  # opened between the reads


def test_fast_counts_on_this_namespace_agree_with_a_full_dump():
    """On the live kernel (this test's own namespace): counters + filtered dump == full dump, when quiet."""
    from ansible_collections.netstack.tcp_tuning.plugins.module_utils.tcp_memory_gather import fast_state_counts

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    clients = [socket.create_connection(listener.getsockname()) for _index in range(4)]
    servers = [listener.accept()[0] for _index in range(4)]
    clients[0].shutdown(socket.SHUT_WR)  # server end CLOSE_WAIT, client end FIN_WAIT2
    try:
        for _attempt in range(5):  # other processes of this host may open or close connections meanwhile
            fast = fast_state_counts("/proc", [])
            full = diag.dump_netlink()["connections"]
            if (
                fast is not None
                and fast["connections"]["curr_estab_drift"] == 0
                and fast["connections"]["by_state"] == full["by_state"]
            ):
                break
        assert fast["connections"]["method"] == "counters"
        assert fast["connections"]["by_state"] == full["by_state"]
        assert fast["connections"]["by_state"]["CLOSE_WAIT"] >= 1
    finally:
        for sock in clients + servers + [listener]:
            sock.close()

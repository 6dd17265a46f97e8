# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""inet_diag stream walking and /proc/net/tcp scanning, on synthetic kernel output."""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
import tracemalloc

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import diag
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import ProcParseError
from ansible_collections.netstack.tcp_tuning.tests.unit.fixtures.proc_trees.trees import materialize

ESTABLISHED, TIME_WAIT, LISTEN = 1, 6, 10


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def diag_msg(
    state,
    sport,
    dport,
    rmem=None,
    wmem=None,
    rqueue=0,
    wqueue=0,
    extra_attrs=b"",
    family=socket.AF_INET,
    kind=diag.TCPDIAG_GETSOCK,
    fwd=0,
    local=None,
    remote=None,
    inode=12345,
):
    """One socket's reply as the kernel lays it out (attributes optional); a reply has its request's type."""
    loopback = "127.0.0.1" if family == socket.AF_INET else "::1"
    src = socket.inet_pton(family, local or loopback).ljust(16, b"\0")
    dst = socket.inet_pton(family, remote or loopback).ljust(16, b"\0")
    body = struct.pack("=BBBB", family, state, 0, 0)
    body += struct.pack(">HH16s16s", sport, dport, src, dst) + struct.pack("=III", 0, 0, 0)
    body += struct.pack("=IIIII", 0, rqueue, wqueue, 0, inode)
    body += extra_attrs
    if rmem is not None:
        body += attr(diag.INET_DIAG_MEMINFO, struct.pack("=IIII", rmem, wmem, fwd, 0))
    return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body


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


def dump_into(fake, summary):
    """The full dump (byte sums, top N) of dump_netlink, read from `fake`."""
    diag.read_memory_dump(fake, diag.CONNECTION_STATES, summary)


def loop_only(datagrams, top_n):
    """The same dump read message by message only (no whole-datagram fast path)."""
    summary = diag.ConnectionSummary(top_n)
    diag._read_dump(FakeNetlink(datagrams), diag.CONNECTION_STATES, diag.MEMINFO_EXT, diag._sum_memory(summary))
    return diag._result(summary, "netlink", with_memory=True)


def run(datagrams, top_n=0):
    summary = diag.ConnectionSummary(top_n)
    dump_into(FakeNetlink(datagrams), summary)
    return diag._result(summary, "netlink", with_memory=True)


def compat_fields(request):
    """nlmsghdr and struct inet_diag_req (the TCPDIAG_GETSOCK request) of a request."""
    length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", request)
    family, _src_len, _dst_len, ext = struct.unpack_from("=BBBB", request, 16)
    (states,) = struct.unpack_from("=I", request, 16 + 4 + 48)
    return length, kind, flags, seq, family, ext, states


def v2_fields(request):
    """nlmsghdr and inet_diag_req_v2 (SOCK_DIAG_BY_FAMILY) of a request."""
    length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", request)
    family, protocol, ext, _pad, states = struct.unpack_from("=BBBBI", request, 16)
    return length, kind, flags, seq, family, protocol, ext, states


def test_one_request_dumps_both_families_in_every_connection_state_with_meminfo():
    fake = FakeNetlink([done()])
    dump_into(fake, diag.ConnectionSummary(0))
    (request,) = fake.sent
    # TCPDIAG_GETSOCK (18), NLM_F_REQUEST | NLM_F_DUMP, AF_UNSPEC: one walk for IPv4 and IPv6
    assert compat_fields(request) == (16 + 60, 18, 0x301, 1, 0, 1, 0x1FFE)
    assert len(request) == 16 + 60  # struct inet_diag_req: 4 bytes, inet_diag_sockid 48, states, dbs
    # ESTABLISHED (1) .. NEW_SYN_RECV (12); not BOUND_INACTIVE (13), which would add a walk of the bind hash
    assert sum(1 << state for state in range(1, 13)) == diag.CONNECTION_STATES


def test_a_refused_compat_request_falls_back_to_one_v2_request_per_family():
    v4 = diag_msg(ESTABLISHED, 5000, 40000, rmem=100, wmem=0, kind=diag.SOCK_DIAG_BY_FAMILY)
    v6 = diag_msg(LISTEN, 22, 0, rmem=0, wmem=0, family=socket.AF_INET6, kind=diag.SOCK_DIAG_BY_FAMILY)
    fake = FakeNetlink([error(errno.EINVAL), v4 + done(), v6 + done()])
    summary = diag.ConnectionSummary(0)
    dump_into(fake, summary)
    compat, inet, inet6 = fake.sent
    assert compat_fields(compat)[1] == 18
    assert v2_fields(inet) == (16 + 56, 20, 0x301, 2, socket.AF_INET, socket.IPPROTO_TCP, 1, 0x1FFE)
    assert v2_fields(inet6) == (16 + 56, 20, 0x301, 3, socket.AF_INET6, socket.IPPROTO_TCP, 1, 0x1FFE)
    assert diag._result(summary, "netlink", True)["connections"]["by_state"] == {"ESTABLISHED": 1, "LISTEN": 1}


def test_an_error_after_sockets_is_no_refusal_and_sends_no_other_request():
    fake = FakeNetlink([diag_msg(ESTABLISHED, 1, 2, rmem=0, wmem=0) + error(errno.EINTR)])
    with pytest.raises(diag.DiagUnavailable, match="refused: EINTR") as caught:
        dump_into(fake, diag.ConnectionSummary(0))
    assert not isinstance(caught.value, diag.DumpRefused)
    assert len(fake.sent) == 1


def test_states_only_dump_counts_without_attributes():
    by_state = [0] * 256
    fake = FakeNetlink([diag_msg(TIME_WAIT, 1, 2) + diag_msg(LISTEN, 3, 0) + diag_msg(LISTEN, 4, 0), done()])
    diag._read_dump(fake, diag.CONNECTION_STATES & ~2, 0, diag._count_states(by_state))
    assert compat_fields(fake.sent[0])[5:] == (0, 0x1FFC)  # no MEMINFO asked, no ESTABLISHED
    assert (by_state[TIME_WAIT], by_state[LISTEN], sum(by_state)) == (1, 2, 3)


def test_calibration_stops_reading_at_its_sample_and_sends_no_other_request():
    messages = b"".join(diag_msg(ESTABLISHED, 1, 2, rmem=2048, wmem=0, rqueue=1000) for _index in range(5))
    fake = FakeNetlink([error(errno.EINVAL), messages, b"never read"])  # v2 fallback: AF_INET, then AF_INET6
    calibration = diag.Calibration(3)
    diag._read_dump(fake, diag.CALIBRATE_STATES, diag.MEMINFO_EXT, diag._sample(calibration))
    assert len(fake.sent) == 2  # the compat request and the AF_INET one; stopped before AF_INET6
    assert (calibration.sampled, calibration.complete, calibration.loopback.rx) == (3, False, [3, 3000, 6144])
    ended = diag.Calibration(10)
    diag._read_dump(FakeNetlink([messages + done()]), diag.CALIBRATE_STATES, diag.MEMINFO_EXT, diag._sample(ended))
    assert (ended.sampled, ended.complete) == (5, True)


def test_calibration_reads_forward_allocation_and_rounds_each_socket_as_charged():
    # rmem + wmem + fwd of one socket is what it holds of tcp_mem, in whole charge units per socket:
    # 3000 + 0 + 1096 = 4096 (one unit), 5000 + 2000 + 0 = 7000 (two units, 8192), 0 + 0 + 100 (one unit).
    messages = (
        diag_msg(ESTABLISHED, 1, 2, rmem=3000, wmem=0, fwd=1096, rqueue=2900)
        + diag_msg(ESTABLISHED, 3, 4, rmem=5000, wmem=2000, fwd=0, rqueue=4000, wqueue=1900)
        + diag_msg(ESTABLISHED, 5, 6, rmem=0, wmem=0, fwd=100)
    )
    calibration = diag.Calibration(100, unit_bytes=4096)
    diag._read_dump(
        FakeNetlink([messages + done()]), diag.CALIBRATE_STATES, diag.MEMINFO_EXT, diag._sample(calibration)
    )
    report = calibration.loopback.report()
    assert report == {
        "sockets": 3,
        "rx": {"factor": round(8000 / 6900, 4), "sockets": 2, "payload_bytes": 6900, "charged_bytes": 8000},
        "tx": {"factor": round(2000 / 1900, 4), "sockets": 1, "payload_bytes": 1900, "charged_bytes": 2000},
        "fwd_alloc_bytes": 1196,
        "charged_total_bytes": 4096 + 8192 + 4096,
    }
    assert calibration.other.report()["sockets"] == 0


def test_calibration_reports_loopback_sockets_apart():
    v4, v6 = socket.AF_INET, socket.AF_INET6
    cases = [  # (family, local, remote, loopback?)
        (v4, "127.0.0.1", "127.0.0.1", True),
        (v4, "127.0.0.2", "127.1.2.3", True),
        (v4, "10.0.0.1", "10.0.0.1", True),  # one address at both ends: routed over lo
        (v4, "10.0.0.1", "10.0.0.2", False),
        (v4, "127.0.0.1", "10.0.0.2", False),
        (v6, "::1", "::1", True),
        (v6, "::ffff:127.0.0.1", "::ffff:127.0.0.9", True),
        (v6, "::ffff:10.0.0.1", "::ffff:127.0.0.1", False),
        (v6, "fd00::1", "fd00::2", False),
    ]
    messages = b"".join(
        diag_msg(ESTABLISHED, 1, 2, rmem=4096, wmem=0, rqueue=4000, family=family, local=local, remote=remote)
        for family, local, remote, _loopback in cases
    )
    calibration = diag.Calibration(100)
    diag._read_dump(
        FakeNetlink([messages + done()]), diag.CALIBRATE_STATES, diag.MEMINFO_EXT, diag._sample(calibration)
    )
    expected_loopback = sum(1 for case in cases if case[3])
    assert (calibration.loopback.sockets, calibration.other.sockets) == (
        expected_loopback,
        len(cases) - expected_loopback,
    )
    for family, local, remote, loopback in cases:
        pair = [socket.inet_pton(family, address).ljust(16, b"\0") for address in (local, remote)]
        assert diag.is_loopback_pair(family, *pair) is loopback, (local, remote)


@pytest.mark.parametrize(
    "consumer",
    [
        lambda: diag._sum_memory(diag.ConnectionSummary(3)),
        lambda: diag._count_states([0] * 256),
        lambda: diag._sample(diag.Calibration(100)),
    ],
    ids=["full dump", "state counts", "calibration"],
)
def test_every_dump_shares_the_receive_loop_and_its_checks(consumer):
    cases = [
        ([done()], {"flags": socket.MSG_TRUNC}, "truncated"),
        ([struct.pack("=IHHII", 4000, 20, 0, 1, 0)], {}, "malformed netlink message"),
        ([diag_msg(ESTABLISHED, 1, 2)], {}, "closed before NLMSG_DONE"),
        ([error(errno.EPERM)] * 3, {}, "refused: EPERM"),
    ]
    for datagrams, options, problem in cases:
        with pytest.raises(diag.DiagUnavailable, match=problem):
            diag._read_dump(FakeNetlink(datagrams, **options), diag.CONNECTION_STATES, 0, consumer())


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
    dump_into(FakeNetlink(datagrams), summary)
    assert len(summary.heap) == 5
    top = diag._result(summary, "netlink", True)["top_sockets"]
    assert [entry["total_bytes"] for entry in top] == sorted(sizes, reverse=True)[:5]
    assert sum(summary.by_state) == 5000 and summary.rmem_alloc == sum(sizes)


def test_ipv6_addresses():
    message = diag_msg(ESTABLISHED, 22, 50000, rmem=10, wmem=0, family=socket.AF_INET6)
    summary = diag.ConnectionSummary(1)
    dump_into(FakeNetlink([message + done()]), summary)
    (entry,) = diag._result(summary, "netlink", True)["top_sockets"]
    assert (entry["local"], entry["remote"]) == ("[::1]:22", "[::1]:50000")


def test_kernel_error_and_bad_streams_raise_diag_unavailable():
    with pytest.raises(diag.DiagUnavailable, match="refused: EPERM"):
        run([error(1)] * 3)  # the compat request, then each family's v2 request
    with pytest.raises(diag.DiagUnavailable, match="truncated"):
        dump_into(FakeNetlink([done()], flags=socket.MSG_TRUNC), diag.ConnectionSummary(0))
    with pytest.raises(diag.DiagUnavailable, match="malformed netlink message"):
        run([struct.pack("=IHHII", 4000, 20, 0, 1, 0)])
    with pytest.raises(diag.DiagUnavailable, match="closed before NLMSG_DONE"):
        run([diag_msg(ESTABLISHED, 1, 2)])


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


def uniform_datagram(count, first_port, unread_every=0, listener_at=None):
    """`count` established sockets with the same attributes (SHUTDOWN, then MEMINFO), as one datagram."""
    shutdown = attr(8, b"\0")
    out = b""
    for index in range(count):
        port = first_port + index
        if index == listener_at:
            out += diag_msg(LISTEN, port, 0, rmem=0, wmem=0, rqueue=7, wqueue=4096, extra_attrs=shutdown)
        elif unread_every and index % unread_every == 0:
            out += diag_msg(ESTABLISHED, port, 5000, rmem=20480, wmem=0, rqueue=16384, extra_attrs=shutdown)
        else:
            out += diag_msg(ESTABLISHED, port, 5000, rmem=0, wmem=1024, wqueue=100, extra_attrs=shutdown)
    return out


def test_a_datagram_of_same_length_messages_is_summed_whole_as_the_loop_would():
    datagrams = [uniform_datagram(300, 10000, unread_every=20, listener_at=5), uniform_datagram(250, 20000) + done()]
    summary = diag.ConnectionSummary(3)
    consumed = []
    bulk = diag._sum_memory_rows(summary)

    def counting(buffer, received):
        consumed.append(bulk(buffer, received))
        return consumed[-1]

    diag._read_dump(
        FakeNetlink(datagrams), diag.CONNECTION_STATES, diag.MEMINFO_EXT, diag._sum_memory(summary), counting
    )
    # every socket message went through the fast path; NLMSG_DONE was left to the loop
    assert [taken for _offset, taken in consumed] == [300, 250]
    assert consumed[1][0] == len(datagrams[1]) - len(done())
    expected = loop_only(datagrams, top_n=3)
    assert diag._result(summary, "netlink", True) == expected == run(datagrams, top_n=3)
    connections = expected["connections"]
    assert connections["by_state"] == {"ESTABLISHED": 549, "LISTEN": 1}
    assert connections["rx_queue_bytes_total"] == 15 * 16384  # the listener's backlog of 7 is no bytes
    assert [entry["local"] for entry in expected["top_sockets"]] == [
        "127.0.0.1:10000",
        "127.0.0.1:10020",
        "127.0.0.1:10040",
    ]


def test_a_datagram_with_another_message_length_inside_is_left_to_the_loop():
    mixed = uniform_datagram(10, 10000) + diag_msg(TIME_WAIT, 9, 5000) + uniform_datagram(10, 11000)
    summary = diag.ConnectionSummary(0)
    buffer = bytearray(diag.RECV_BUFFER_BYTES + diag.HEAD_BYTES)
    buffer[: len(mixed)] = mixed
    assert diag._sum_memory_rows(summary)(buffer, len(mixed)) == (0, 0)
    assert sum(summary.by_state) == 0
    result = run([mixed + done()])
    assert result == loop_only([mixed + done()], top_n=0)
    assert result["connections"]["by_state"] == {"ESTABLISHED": 20, "TIME_WAIT": 1}
    assert result["connections"]["wmem_queued_bytes_total"] == 20 * 1024


def test_bulk_dump_of_many_sockets_keeps_no_per_socket_record():
    """100,000 sockets through the fast path: the summary holds counters and the top N only."""
    datagram = uniform_datagram(300, 1000, unread_every=7)
    datagrams = [datagram] * 333 + [done()]
    summary = diag.ConnectionSummary(20)
    tracemalloc.start()
    try:
        dump_into(FakeNetlink(datagrams), summary)
        _current, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1 << 20  # the receive buffer (64 KiB) and one datagram's columns
    assert sum(summary.by_state) == 99900
    assert len(summary.heap) == 20
    assert summary.rmem_alloc == 333 * 43 * 20480


def owned(datagrams, owners):
    counts, totals = {}, [0]
    consume, bulk = diag._owned_sockets(owners, counts, totals)
    diag._read_dump(FakeNetlink(datagrams), diag.CONNECTION_STATES, 0, consume, bulk)
    return counts, totals[0]


def test_sockets_are_counted_per_owner_by_inode_from_whole_datagrams_and_single_messages():
    shutdown = attr(8, b"\0")
    uniform = b"".join(diag_msg(ESTABLISHED, 1000 + i, 80, extra_attrs=shutdown, inode=100 + i) for i in range(300))
    mixed = diag_msg(LISTEN, 80, 0, extra_attrs=shutdown, inode=7) + diag_msg(TIME_WAIT, 9, 80, inode=0)
    mixed += diag_msg(ESTABLISHED, 2000, 80, extra_attrs=shutdown, inode=99999)  # owned by no one we read
    owners = {inode: 41 for inode in range(100, 250)}
    owners.update({inode: 42 for inode in range(250, 400)})
    owners[7] = 42
    counts, with_file = owned([uniform, mixed + done()], owners)
    assert counts == {41: 150, 42: 151}
    assert with_file == 302  # every socket but the time-wait one (inode 0)

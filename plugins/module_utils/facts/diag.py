# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Count TCP sockets by state and find those holding the most buffer memory.

Two sources, both streamed so memory stays flat however many sockets exist:
- NETLINK_SOCK_DIAG / inet_diag (what `ss` uses): one dump request for IPv4 and IPv6 together,
  its replies read by one receive loop (_socket_messages) that every dump shares, message by
  message, stepping by each message's own nlmsg_len; per socket only a state counter, two sums
  and, for a socket that beats the current top N, a copy of its 72-byte header survive. The byte
  sums take a datagram of same-length messages (~300 established sockets) whole, column by column
  through strided memoryviews (_sum_memory_rows): at a million connections the per-message loop
  was most of the cost.
- /proc/net/tcp and tcp6, line by line: slower (the kernel formats text) and without
  per-socket memory, only the payload bytes queued (tx_queue/rx_queue).

What the kernel walks for a dump (inet_diag_dump_icsk(), net/ipv4/inet_diag.c): the listening hash
when idiag_states has TCPF_LISTEN or TCPF_SYN_RECV; the whole established hash (every bucket and
every socket of every network namespace, each tested for its namespace and state under the bucket
lock) when it has any other connection state; the bind hash when it has TCPF_BOUND_INACTIVE. Only a
socket whose state is asked for costs a message.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import operator
import socket
import struct
import sys

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import read as reader
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import (
    ProcParseError,
    round_up_to_unit,
)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCPDIAG_GETSOCK = 18  # the original request type: inet_diag_rcv_msg_compat() dumps both families
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_MEMINFO = 1  # struct inet_diag_meminfo {rmem_alloc, wmem_queued, fwd_alloc, wmem_alloc}
MEMINFO_EXT = 1 << (INET_DIAG_MEMINFO - 1)  # idiag_ext bit asking for it
RECV_BUFFER_BYTES = 65536  # the kernel fills ~32 KiB per recv; twice that never truncates

# Kernel TCP state numbers (include/net/tcp_states.h) -> names used in the facts.
TCP_STATES = (
    None,
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
    "BOUND_INACTIVE",
)
TCP_ESTABLISHED = 1
TCP_FIN_WAIT1 = 4
TCP_CLOSE_WAIT = 8
TCP_LISTEN = 10
TCP_BOUND_INACTIVE = 13
# Every state of a socket in the listening or established hash, ESTABLISHED (1) .. NEW_SYN_RECV (12): what
# /proc/net/tcp and tcp6 list, and `ss -tan state all` before iproute2 6.7. Not TCPF_BOUND_INACTIVE (kernel
# 6.6+): sockets bound that neither listen nor connect (reported as CLOSE); asking for them adds a walk of the
# bind hash, about as long as the established hash walk, for sockets that are no connection.
CONNECTION_STATES = (1 << TCP_BOUND_INACTIVE) - (1 << TCP_ESTABLISHED)
HASHED_SOCKETS_SLACK = 1024

_COMPAT_REQUEST = struct.Struct("=IHHII" + "BBBB48sII")  # nlmsghdr + struct inet_diag_req
_REQUEST = struct.Struct("=IHHII" + "BBBBI" + "HH16s16sIII")  # nlmsghdr + inet_diag_req_v2
# nlmsg_len, nlmsg_type, (flags, seq, pid skipped), idiag_family, idiag_state, (timer, retrans,
# sockid, expires skipped), idiag_rqueue, idiag_wqueue
_DIAG_HEAD = struct.Struct("=IH10xBB54xII")
_MEMINFO_ATTR = struct.Struct("=HHII")  # rta_len, rta_type, then rmem_alloc and wmem_queued
_QUEUES = struct.Struct("=II")  # idiag_rqueue, idiag_wqueue
_RTATTR = struct.Struct("=HH")
_SOCKID = struct.Struct(">HH16s16s")  # ports are big-endian
_ERRNO = struct.Struct("=i")
_U32 = struct.Struct("=I")
_KIND = struct.Struct("=H")
MSG_HEADER_BYTES = 16
DIAG_MSG_BYTES = 72  # struct inet_diag_msg
FIRST_ATTR_BYTES = MSG_HEADER_BYTES + DIAG_MSG_BYTES
HEAD_BYTES = _DIAG_HEAD.size
SOCKET_MESSAGE_TYPES = (SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK)  # a reply has its request's type


class DiagUnavailable(Exception):
    """The netlink source cannot be used here (no permission, no module, kernel refused)."""


class DumpRefused(DiagUnavailable):
    """The kernel answered a dump request with an error before any socket."""


class ConnectionSummary:
    """Counters by state, buffer sums and a bounded min-heap of the N biggest sockets."""

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self.by_state = [0] * 256
        self.rmem_alloc = 0
        self.wmem_queued = 0
        self.rx_queue = 0
        self.tx_queue = 0
        self.heap = []  # (total_bytes, sequence, entry) -- smallest of the kept N on top
        self.sequence = 0

    def offer(self, total_bytes: int, entry) -> None:
        """Keep `entry` if it is among the N largest seen so far (entry built lazily by caller)."""
        self.sequence += 1
        item = (total_bytes, self.sequence, entry)
        if len(self.heap) < self.top_n:
            heapq.heappush(self.heap, item)
        else:
            heapq.heappushpop(self.heap, item)

    def threshold(self) -> int:
        """Smallest total a socket must beat to enter the top N (-1 while the heap is not full)."""
        return self.heap[0][0] if self.top_n and len(self.heap) >= self.top_n else -1


def _format_address(family: int, address: bytes, port: int) -> str:
    if family == socket.AF_INET:
        return f"{socket.inet_ntop(socket.AF_INET, address[:4])}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, address[:16])}]:{port}"


def _state_name(state: int) -> str:
    return TCP_STATES[state] if 0 < state < len(TCP_STATES) else f"STATE_{state}"


def _result(summary: ConnectionSummary, source: str, with_memory: bool) -> dict:
    by_state = {_state_name(s): n for s, n in enumerate(summary.by_state) if n}
    top = []
    for total_bytes, _sequence, entry in sorted(summary.heap, key=lambda item: (-item[0], item[1])):
        top.append(dict(entry(), total_bytes=total_bytes))
    return {
        "connections": {
            "source": source,
            "total": sum(summary.by_state),
            "by_state": by_state,
            "rmem_alloc_bytes_total": summary.rmem_alloc if with_memory else None,
            "wmem_queued_bytes_total": summary.wmem_queued if with_memory else None,
            "rx_queue_bytes_total": summary.rx_queue,
            "tx_queue_bytes_total": summary.tx_queue,
            "method": "dump",
            "curr_estab_drift": None,
        },
        "top_sockets": top if summary.top_n else None,
    }


# --- netlink -------------------------------------------------------------------------------


def _compat_request(sequence: int, states_mask: int, ext: int = 0) -> bytes:
    """TCPDIAG_GETSOCK with struct inet_diag_req: IPv4 and IPv6 sockets in ONE walk of the TCP hashes.

    inet_diag_dump_compat() dumps with sdiag_family = AF_UNSPEC; an inet_diag_req_v2 names one family,
    and each of the two walks every socket of both (the tables are shared).
    """
    return _COMPAT_REQUEST.pack(
        _COMPAT_REQUEST.size,
        TCPDIAG_GETSOCK,
        NLM_F_REQUEST | NLM_F_DUMP,
        sequence,
        0,
        0,
        0,
        0,
        ext,
        b"\0" * 48,
        states_mask,
        0,
    )


def _diag_request(family: int, sequence: int, states_mask: int, ext: int = 0) -> bytes:
    """inet_diag_req_v2 for the TCP sockets of `family` whose state bit is in `states_mask`."""
    return _REQUEST.pack(
        _REQUEST.size,
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        sequence,
        0,
        family,
        socket.IPPROTO_TCP,
        ext,
        0,
        states_mask,
        0,
        0,
        b"\0" * 16,
        b"\0" * 16,
        0,
        0,
        0,
    )


def _socket_messages(sock, request: bytes, buffer: bytearray, bulk=None):
    """Send one dump request; yield (offset, length, state, rqueue, wqueue) of each socket message in `buffer`.

    `bulk(buffer, received)`, when given, is offered each datagram first: it returns (offset, sockets), the
    bytes and socket messages it consumed from the start of the datagram (0, 0 when it took none); the
    messages after that offset are yielded one by one.

    THE receive loop of every dump: `buffer` (RECV_BUFFER_BYTES + HEAD_BYTES, the slack keeps the header
    unpack of the short NLMSG_DONE inside it) is refilled by each recv, so a message's bytes are valid only
    until the next one is asked for. Ends at NLMSG_DONE; raises DumpRefused for an error before any socket,
    DiagUnavailable for a later error, a truncated or malformed reply, or a socket closed before the end.
    """
    sock.send(request)
    receive_area = memoryview(buffer)[:RECV_BUFFER_BYTES]
    unpack_head = _DIAG_HEAD.unpack_from
    sockets = 0
    while True:
        received, _ancillary, flags, _address = sock.recvmsg_into([receive_area])
        if flags & socket.MSG_TRUNC:
            raise DiagUnavailable(f"netlink reply truncated at {received} bytes")
        if received == 0:
            raise DiagUnavailable("netlink socket closed before NLMSG_DONE")
        offset = 0
        if bulk is not None:
            offset, taken = bulk(buffer, received)
            sockets += taken
        while offset + MSG_HEADER_BYTES <= received:
            length, kind, _family, state, rqueue, wqueue = unpack_head(buffer, offset)
            if length < MSG_HEADER_BYTES or offset + length > received:
                raise DiagUnavailable(f"malformed netlink message (length {length} at offset {offset})")
            if kind in SOCKET_MESSAGE_TYPES and length >= FIRST_ATTR_BYTES:
                sockets += 1
                yield offset, length, state, rqueue, wqueue
            elif kind == NLMSG_DONE:
                return
            elif kind == NLMSG_ERROR:
                error = -_ERRNO.unpack_from(buffer, offset + MSG_HEADER_BYTES)[0]
                refused = DumpRefused if sockets == 0 else DiagUnavailable
                raise refused(f"inet_diag dump refused: {errno.errorcode.get(error, error)}")
            offset += (length + 3) & ~3


def _read_dump(sock, states_mask: int, ext: int, consume, bulk=None) -> None:
    """Feed every TCP socket in `states_mask` (IPv4 and IPv6) to `consume(messages, buffer)`.

    One compat request, one walk; only where the kernel refuses it (DumpRefused), one inet_diag_req_v2 per
    family. `consume` returns False when it wants no more sockets: no further request is sent then.
    `bulk` is _socket_messages' fast path for whole datagrams (None: message by message only).
    """
    buffer = bytearray(RECV_BUFFER_BYTES + HEAD_BYTES)
    try:
        consume(_socket_messages(sock, _compat_request(1, states_mask, ext), buffer, bulk), buffer)
        return
    except DumpRefused:
        pass
    for sequence, family in enumerate((socket.AF_INET, socket.AF_INET6), 2):
        messages = _socket_messages(sock, _diag_request(family, sequence, states_mask, ext), buffer, bulk)
        if consume(messages, buffer) is False:
            return


def _netlink_socket(timeout: float):
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as exc:
        raise DiagUnavailable(f"cannot open a NETLINK_SOCK_DIAG socket: {exc}") from None
    try:
        sock.settimeout(timeout)
        sock.bind((0, 0))
    except OSError as exc:
        sock.close()
        raise DiagUnavailable(f"cannot bind a NETLINK_SOCK_DIAG socket: {exc}") from None
    return sock


def _netlink_entry(family: int, header: bytes, rmem: int, wmem: int):
    """A closure that formats one kept socket only when the report is built."""

    def build() -> dict:
        sport, dport, src, dst = _SOCKID.unpack_from(header, 4)
        rqueue, wqueue = _QUEUES.unpack_from(header, 56) if header[1] != TCP_LISTEN else (0, 0)
        return {
            "local": _format_address(family, src, sport),
            "remote": _format_address(family, dst, dport),
            "state": _state_name(header[1]),
            "rmem_alloc_bytes": rmem,
            "wmem_queued_bytes": wmem,
            "rx_queue_bytes": rqueue,
            "tx_queue_bytes": wqueue,
        }

    return build


def _find_meminfo(buffer, start: int, end: int):
    """Offset of a complete INET_DIAG_MEMINFO attribute in buffer[start:end], or None."""
    attr = start
    while attr + 4 <= end:
        attr_len, attr_type = _RTATTR.unpack_from(buffer, attr)
        if attr_len < 4:
            return None
        if attr_type == INET_DIAG_MEMINFO:
            return attr if attr_len >= 12 and attr + 12 <= end else None
        attr += (attr_len + 3) & ~3
    return None


def _sum_memory(summary: ConnectionSummary):
    """A dump consumer folding each socket's state, queues and MEMINFO into `summary`.

    Per socket: the header fields _socket_messages unpacked, and MEMINFO at the offset where the previous
    socket had it (all sockets of one kind carry the same attributes); only when that guess misses are
    the attributes walked.
    """

    def consume(messages, buffer) -> None:
        by_state = summary.by_state
        unpack_meminfo = _MEMINFO_ATTR.unpack_from
        top_n = summary.top_n
        rmem_sum = wmem_sum = rx_sum = tx_sum = 0
        meminfo_at = FIRST_ATTR_BYTES
        threshold = summary.threshold()
        try:
            for offset, length, state, rqueue, wqueue in messages:
                by_state[state] += 1
                if state != TCP_LISTEN:  # a listener's queues count connections, not bytes
                    rx_sum += rqueue
                    tx_sum += wqueue
                rmem = wmem = 0
                if meminfo_at + 12 <= length:
                    attr_len, attr_type, rmem, wmem = unpack_meminfo(buffer, offset + meminfo_at)
                if meminfo_at + 12 > length or attr_type != INET_DIAG_MEMINFO or attr_len < 12:
                    found = _find_meminfo(buffer, offset + FIRST_ATTR_BYTES, offset + length)
                    if found is None:  # time-wait and request sockets carry no memory
                        rmem = wmem = 0
                    else:
                        meminfo_at = found - offset
                        attr_len, attr_type, rmem, wmem = unpack_meminfo(buffer, found)
                rmem_sum += rmem
                wmem_sum += wmem
                if top_n and rmem + wmem > threshold:
                    body = offset + MSG_HEADER_BYTES
                    summary.offer(
                        rmem + wmem,
                        _netlink_entry(buffer[body], bytes(buffer[body : body + DIAG_MSG_BYTES]), rmem, wmem),
                    )
                    threshold = summary.threshold()
        finally:
            summary.rmem_alloc += rmem_sum
            summary.wmem_queued += wmem_sum
            summary.rx_queue += rx_sum
            summary.tx_queue += tx_sum

    return consume


def _sum_memory_rows(summary: ConnectionSummary):
    """The fast path of _sum_memory, for a datagram whose socket messages all have one length.

    A dump of established sockets is such datagrams (every full socket of a kind carries the same
    attributes). Their fields are read column by column through strided memoryviews, in C: one
    comparison per column shows every row is a socket message of that length with MEMINFO at the same
    offset, then state counts and queue and MEMINFO sums, and only rows that beat the top N's threshold
    are looked at one by one. Returns (bytes, sockets) consumed from the start of the datagram: (0, 0),
    leaving every message to _sum_memory's loop, when the first message has no MEMINFO or any row
    differs (a time-wait or request socket in between); what follows the rows (NLMSG_DONE) is always
    left to it.
    """

    def bulk(buffer, received: int) -> tuple:
        length = _U32.unpack_from(buffer, 0)[0] if received >= 4 else 0
        if length % 4 or length < FIRST_ATTR_BYTES + 12 or received < 2 * length:
            return 0, 0
        found = _find_meminfo(buffer, FIRST_ATTR_BYTES, length)
        if found is None or found % 4:
            return 0, 0
        count = received // length
        end = count * length
        octets = memoryview(buffer)[:end]
        words, step = octets.cast("I"), length // 4
        kind = _KIND.unpack_from(buffer, 4)[0]
        if (
            kind not in SOCKET_MESSAGE_TYPES
            or words[0::step].tobytes() != buffer[0:4] * count  # nlmsg_len
            or octets.cast("H")[2 :: length // 2].tobytes() != buffer[4:6] * count  # nlmsg_type
            or words[found // 4 :: step].tobytes() != buffer[found : found + 4] * count  # MEMINFO rta_len, type
        ):
            return 0, 0
        states = octets[MSG_HEADER_BYTES + 1 :: length].tobytes()
        by_state = summary.by_state
        for state in set(states):
            by_state[state] += states.count(state)
        rqueues = words[(MSG_HEADER_BYTES + 56) // 4 :: step].tolist()
        wqueues = words[(MSG_HEADER_BYTES + 60) // 4 :: step].tolist()
        rmems = words[found // 4 + 1 :: step].tolist()
        wmems = words[found // 4 + 2 :: step].tolist()
        rx_sum, tx_sum = sum(rqueues), sum(wqueues)
        if TCP_LISTEN in states:  # a listener's queues count connections, not bytes
            for state, rqueue, wqueue in zip(states, rqueues, wqueues):
                if state == TCP_LISTEN:
                    rx_sum -= rqueue
                    tx_sum -= wqueue
        summary.rx_queue += rx_sum
        summary.tx_queue += tx_sum
        summary.rmem_alloc += sum(rmems)
        summary.wmem_queued += sum(wmems)
        if summary.top_n:
            threshold = summary.threshold()
            if max(map(operator.add, rmems, wmems)) > threshold:
                for index, total in enumerate(map(operator.add, rmems, wmems)):
                    if total > threshold:
                        body = index * length + MSG_HEADER_BYTES
                        header = bytes(buffer[body : body + DIAG_MSG_BYTES])
                        summary.offer(total, _netlink_entry(header[0], header, rmems[index], wmems[index]))
                        threshold = summary.threshold()
        return end, count

    return bulk


def read_memory_dump(sock, states_mask: int, summary: ConnectionSummary) -> None:
    """Fold every TCP socket in `states_mask` with its MEMINFO into `summary`: whole datagrams where they are
    uniform (_sum_memory_rows), message by message otherwise (_sum_memory)."""
    _read_dump(sock, states_mask, MEMINFO_EXT, _sum_memory(summary), _sum_memory_rows(summary))


def _count_states(by_state: list):
    """A dump consumer counting sockets by state (the kernel sends no attributes for these dumps)."""

    def consume(messages, _buffer) -> None:
        for _offset, _length, state, _rqueue, _wqueue in messages:
            by_state[state] += 1

    return consume


def dump_netlink(
    top_n: int = 0, timeout: float = 60.0, states_mask: int = CONNECTION_STATES, with_memory: bool = True
) -> dict:
    """Dump the TCP sockets (IPv4 and IPv6) of this network namespace whose state is in `states_mask`.

    Without memory (no top_n then) sockets are only counted by state, and the kernel sends no
    attributes. Raises DiagUnavailable when netlink cannot be used, so the caller can fall back.
    """
    summary = ConnectionSummary(top_n)
    sock = _netlink_socket(timeout)
    try:
        if with_memory:
            read_memory_dump(sock, states_mask, summary)
        else:
            _read_dump(sock, states_mask, 0, _count_states(summary.by_state))
    except OSError as exc:
        raise DiagUnavailable(f"inet_diag dump failed: {exc}") from None
    finally:
        sock.close()
    result = _result(summary, "netlink", with_memory=with_memory)
    if not with_memory:
        result["connections"].update(rx_queue_bytes_total=None, tx_queue_bytes_total=None)
    return result


_INODE_AT = MSG_HEADER_BYTES + 68  # idiag_inode in struct inet_diag_msg
_INODE = struct.Struct("=I")


def _owned_sockets(owners: dict, counts: dict, totals: list):
    """A dump consumer and its whole-datagram fast path counting sockets per owner by inode.

    `owners` maps a socket inode to its owner (a pid); `counts` gets {owner: sockets}; `totals[0]` counts
    the sockets with a file (inode not 0: time-wait and request sockets have none). Per datagram of
    same-length messages (an established dump's usual one) the inodes are read as one strided column and
    looked up with map() in C; other datagrams message by message.
    """

    def add(inodes) -> None:
        totals[0] += len(inodes) - inodes.count(0)
        for owner in filter(None, map(owners.get, inodes)):
            counts[owner] = counts.get(owner, 0) + 1

    def bulk(buffer, received: int) -> tuple:
        length = _U32.unpack_from(buffer, 0)[0] if received >= 4 else 0
        if length % 4 or length < FIRST_ATTR_BYTES or received < 2 * length:
            return 0, 0
        count = received // length
        end = count * length
        octets = memoryview(buffer)[:end]
        words, step = octets.cast("I"), length // 4
        if (
            _KIND.unpack_from(buffer, 4)[0] not in SOCKET_MESSAGE_TYPES
            or words[0::step].tobytes() != buffer[0:4] * count
            or octets.cast("H")[2 :: length // 2].tobytes() != buffer[4:6] * count
        ):
            return 0, 0
        add(words[_INODE_AT // 4 :: step].tolist())
        return end, count

    def consume(messages, buffer) -> None:
        batch = []
        for offset, _length, _state, _rqueue, _wqueue in messages:
            batch.append(_INODE.unpack_from(buffer, offset + _INODE_AT)[0])
            if len(batch) >= 1024:
                add(batch)
                batch = []
        add(batch)

    return consume, bulk


def count_owned_sockets(owners: dict, timeout: float = 60.0) -> tuple:
    """({owner: TCP sockets}, TCP sockets with a file) of this network namespace, matched by inode.

    One inet_diag dump of every connection state without attributes (what /proc/net/tcp lists, without
    the kernel formatting a line per socket). Raises DiagUnavailable when netlink cannot be used.
    """
    counts, totals = {}, [0]
    consume, bulk = _owned_sockets(owners, counts, totals)
    sock = _netlink_socket(timeout)
    try:
        _read_dump(sock, CONNECTION_STATES, 0, consume, bulk)
    except OSError as exc:
        raise DiagUnavailable(f"inet_diag dump failed: {exc}") from None
    finally:
        sock.close()
    return counts, totals[0]


def established_from_counters(curr_estab: int, close_wait: int, hashed_sockets) -> int:
    """ESTABLISHED = CurrEstab (ESTABLISHED plus CLOSE_WAIT, tcp_set_state()) minus CLOSE_WAIT.

    Raises ValueError when the difference cannot be a socket count: negative, or far above the
    sockets sockstat says are hashed (`hashed_sockets`, TCP inuse + TCP6 inuse; None: unknown).
    The reads are instants apart, so connections opened meanwhile may exceed sockstat's figure:
    the ceiling is twice it plus HASHED_SOCKETS_SLACK, which still catches a CurrEstab that
    wrapped below zero (printed unsigned, ~2^64).
    """
    established = curr_estab - close_wait
    ceiling = None if hashed_sockets is None else 2 * hashed_sockets + HASHED_SOCKETS_SLACK
    if established < 0 or (ceiling is not None and established > ceiling):
        raise ValueError(
            f"CurrEstab {curr_estab} minus CLOSE_WAIT {close_wait} is {established}, not between 0 and "
            f"{ceiling} (twice the {hashed_sockets} hashed sockets of sockstat plus {HASHED_SOCKETS_SLACK})"
        )
    return established


def count_states_fast(read_curr_estab, read_hashed_sockets, attempts: int = 3, timeout: float = 60.0) -> dict:
    """Connections by state without a message per ESTABLISHED socket.

    One inet_diag dump (IPv4 and IPv6 in one request) filtered to every connection state but ESTABLISHED
    (listeners, CLOSE_WAIT, TIME_WAIT, SYN_RECV, FIN_WAIT...), read between two reads of CurrEstab
    (`read_curr_estab()`, from /proc/net/snmp of the same namespace). The kernel still walks its whole
    established hash to test each socket's state (nothing else counts CLOSE_WAIT, SYN_RECV or FIN_WAIT
    sockets apart), but builds no message for an ESTABLISHED one. When CurrEstab moved during the dump,
    the dump is repeated (up to `attempts` times); `curr_estab_drift` is the last move, the bound on how far
    ESTABLISHED can be off (each connection that came or went in between moves it by one).
    Raises ValueError when the counters are not consistent (the caller falls back to a full dump).
    """
    mask = CONNECTION_STATES & ~(1 << TCP_ESTABLISHED)
    for _attempt in range(attempts):
        before = read_curr_estab()
        result = dump_netlink(timeout=timeout, states_mask=mask, with_memory=False)
        after = read_curr_estab()
        if before == after:
            break
    connections = result["connections"]
    dumped = dict(connections["by_state"])
    # The kernel tests a socket's state under the bucket lock and fills its message after: one that
    # became ESTABLISHED in between (a SYN_SENT or SYN_RECV a moment before) is counted by CurrEstab.
    dumped.pop("ESTABLISHED", None)
    established = established_from_counters(after, dumped.get("CLOSE_WAIT", 0), read_hashed_sockets())
    # ESTABLISHED first, as a full dump lists it (states in kernel order)
    by_state = dict({"ESTABLISHED": established} if established else {}, **dumped)
    connections.update(
        by_state=by_state, total=sum(by_state.values()), method="counters", curr_estab_drift=after - before
    )
    return result


# --- /proc/net/tcp -------------------------------------------------------------------------


def _proc_address(family: int, text: bytes):
    address, _colon, port = text.partition(b":")
    raw = bytes.fromhex(address.decode("ascii"))
    if len(raw) != (4 if family == socket.AF_INET else 16):
        raise ValueError(f"address {text!r} has the wrong length")
    if sys.byteorder == "little":
        # The kernel prints each 32-bit word of the address as a host-order integer.
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return raw, int(port, 16)


def _proc_entry(family: int, local: bytes, remote: bytes, state: int, rx: int, tx: int):
    # Decoded now, inside the caller's error handling; formatted only if still kept at the end.
    src, sport = _proc_address(family, local)
    dst, dport = _proc_address(family, remote)

    def build() -> dict:
        return {
            "local": _format_address(family, src, sport),
            "remote": _format_address(family, dst, dport),
            "state": _state_name(state),
            "rmem_alloc_bytes": None,
            "wmem_queued_bytes": None,
            "rx_queue_bytes": rx,
            "tx_queue_bytes": tx,
        }

    return build


def scan_proc_tcp(lines, family: int, summary: ConnectionSummary, name: str) -> None:
    """Feed /proc/net/tcp{,6} lines (bytes, header included) into `summary`."""
    by_state = summary.by_state
    top_n = summary.top_n
    threshold = summary.threshold()
    rx_sum = tx_sum = 0
    number = 0
    try:
        for number, line in enumerate(lines, 1):
            if number == 1:
                if not line.lstrip().startswith(b"sl"):
                    raise ProcParseError(name, "first line is not the 'sl local_address ...' header")
                continue
            fields = line.split(None, 5)
            if len(fields) < 5:
                if not fields:
                    continue
                raise ProcParseError(name, f"line {number} is truncated: {line[:80]!r}")
            state = int(fields[3], 16)
            if state == TCP_LISTEN:  # rx_queue of a listener is its accept backlog
                tx = rx = 0
            else:
                tx_hex, _colon, rx_hex = fields[4].partition(b":")
                tx, rx = int(tx_hex, 16), int(rx_hex, 16)
            by_state[state] += 1
            tx_sum += tx
            rx_sum += rx
            if top_n and rx + tx > threshold:
                summary.offer(rx + tx, _proc_entry(family, fields[1], fields[2], state, rx, tx))
                threshold = summary.threshold()
    except (ValueError, IndexError) as exc:
        if isinstance(exc, ProcParseError):
            raise
        raise ProcParseError(name, f"line {number} is not a socket line: {exc}") from None
    finally:
        summary.rx_queue += rx_sum
        summary.tx_queue += tx_sum


def dump_proc(paths, top_n: int = 0) -> dict:
    """Count sockets from /proc/net/tcp-style files: `paths` is [(family, path)]; missing files skip.

    Raises ProcParseError for garbage, for a file that is not a regular file or is larger than
    reader.SOCKET_TABLE_MAX_BYTES, FileNotFoundError when no file exists at all.
    """
    summary = ConnectionSummary(top_n)
    found = 0
    for family, path in paths:
        try:
            with reader.open_regular(path) as handle:
                found += 1
                scan_proc_tcp(reader.capped_lines(handle, path), family, summary, path)
        except FileNotFoundError:
            continue
    if not found:
        raise FileNotFoundError("none of {} exists".format(", ".join(path for _family, path in paths)))
    return _result(summary, "proc", with_memory=False)


# --- calibration: kernel memory charged per queued payload byte ------------------------------------

# Sockets that can hold queued data in both directions: unread (idiag_rqueue = rcv_nxt - copied_seq) and
# unsent plus unacknowledged (idiag_wqueue = write_seq - snd_una), next to what they are charged:
# INET_DIAG_MEMINFO rmem_alloc (sk_rmem_alloc) and wmem_queued (sk_wmem_queued), net/ipv4/inet_diag.c.
CALIBRATE_STATES = (1 << TCP_ESTABLISHED) | (1 << TCP_CLOSE_WAIT) | (1 << TCP_FIN_WAIT1)


LOOPBACK_V6 = socket.inet_pton(socket.AF_INET6, "::1")
V4_MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"
_MEMINFO_FULL = struct.Struct("=HHIII")  # rta_len, rta_type, rmem_alloc, wmem_queued, fwd_alloc
MEMINFO_FWD_ALLOC_ATTR_BYTES = _MEMINFO_FULL.size


def _loopback_v4(address: bytes) -> bool:
    return address[0] == 127


def is_loopback_pair(family: int, src: bytes, dst: bytes) -> bool:
    """Whether a socket's traffic stays on lo: both ends in 127.0.0.0/8 (also v4-mapped) or ::1, or one address.

    `src` and `dst` are the 16-byte idiag_src / idiag_dst of inet_diag_sockid (IPv4 in the first 4 bytes).
    """
    if family == socket.AF_INET:
        return (_loopback_v4(src) and _loopback_v4(dst)) or src[:4] == dst[:4]
    if src == dst:
        return True
    if src == LOOPBACK_V6 and dst == LOOPBACK_V6:
        return True
    mapped = src[:12] == V4_MAPPED_PREFIX and dst[:12] == V4_MAPPED_PREFIX
    return mapped and _loopback_v4(src[12:]) and _loopback_v4(dst[12:])


class SocketClass:
    """Sums over the sampled sockets of one class (loopback or other)."""

    def __init__(self) -> None:
        self.sockets = 0
        self.rx = [0, 0, 0]  # sockets, payload bytes, charged bytes
        self.tx = [0, 0, 0]
        self.fwd_alloc = 0
        self.charged_total = 0

    def add(self, rqueue: int, wqueue: int, rmem: int, wmem: int, fwd: int, unit_bytes: int) -> None:
        self.sockets += 1
        if rqueue > 0:
            self.rx[0] += 1
            self.rx[1] += rqueue
            self.rx[2] += rmem
        if wqueue > 0:
            self.tx[0] += 1
            self.tx[1] += wqueue
            self.tx[2] += wmem
        self.fwd_alloc += fwd
        # What the socket holds of tcp_mem: everything it queued plus what it has charged but not used yet
        # (sk_forward_alloc), in whole units as __sk_mem_raise_allocated() charges them.
        self.charged_total += round_up_to_unit(rmem + wmem + fwd, unit_bytes)

    def report(self) -> dict:
        return {
            "sockets": self.sockets,
            "rx": _direction(self.rx),
            "tx": _direction(self.tx),
            "fwd_alloc_bytes": self.fwd_alloc,
            "charged_total_bytes": self.charged_total,
        }


class Calibration:
    """Per-class sums over sampled sockets; stops at max_sockets read."""

    def __init__(self, max_sockets: int, unit_bytes: int = 4096) -> None:
        self.max_sockets = max_sockets
        self.unit_bytes = unit_bytes
        self.sampled = 0
        self.complete = False  # the kernel's dump ended before max_sockets were read
        self.loopback = SocketClass()
        self.other = SocketClass()

    def full(self) -> bool:
        return self.sampled >= self.max_sockets

    def add(self, loopback: bool, rqueue: int, wqueue: int, rmem: int, wmem: int, fwd: int = 0) -> None:
        self.sampled += 1
        (self.loopback if loopback else self.other).add(rqueue, wqueue, rmem, wmem, fwd, self.unit_bytes)


def _socket_meminfo(buffer, offset: int, length: int) -> tuple:
    """(rmem_alloc, wmem_queued, fwd_alloc) of one socket message; zeros without INET_DIAG_MEMINFO."""
    found = _find_meminfo(buffer, offset + FIRST_ATTR_BYTES, offset + length)
    if found is None:
        return 0, 0, 0
    attr_len = _RTATTR.unpack_from(buffer, found)[0]
    if attr_len >= MEMINFO_FWD_ALLOC_ATTR_BYTES and found + MEMINFO_FWD_ALLOC_ATTR_BYTES <= offset + length:
        return _MEMINFO_FULL.unpack_from(buffer, found)[2:]
    rmem, wmem = _MEMINFO_ATTR.unpack_from(buffer, found)[2:]
    return rmem, wmem, 0


def _sample(calibration: Calibration):
    """A dump consumer adding each socket to `calibration`; False (stop) once it is full."""

    def consume(messages, buffer) -> bool:
        calibration.complete = False
        for offset, length, _state, rqueue, wqueue in messages:
            body = offset + MSG_HEADER_BYTES
            _sport, _dport, src, dst = _SOCKID.unpack_from(buffer, body + 4)
            loopback = is_loopback_pair(buffer[body], src, dst)
            rmem, wmem, fwd = _socket_meminfo(buffer, offset, length)
            calibration.add(loopback, rqueue, wqueue, rmem, wmem, fwd)
            if calibration.full():
                return False
        calibration.complete = True
        return True

    return consume


def _direction(sums) -> dict:
    sockets, payload, charged = sums
    return {
        "factor": round(charged / payload, 4) if payload else None,
        "sockets": sockets,
        "payload_bytes": payload,
        "charged_bytes": charged,
    }


def sample_skmeminfo(max_sockets: int, unit_bytes: int = 4096, timeout: float = 60.0) -> dict:
    """Kernel memory charged per queued payload byte, loopback sockets apart, over at most max_sockets sockets.

    One inet_diag dump (IPv4 and IPv6 in one request) with INET_DIAG_MEMINFO (rmem_alloc, wmem_queued and
    fwd_alloc), filtered to ESTABLISHED, CLOSE_WAIT and FIN_WAIT1; reading stops (and the netlink socket is
    closed, ending the kernel's walk) once max_sockets sockets were read, so the cost is bounded whatever the
    connection count. `unit_bytes` is the unit sockets are charged in (proc.charge_unit_bytes()).
    """
    calibration = Calibration(max_sockets, unit_bytes)
    sock = _netlink_socket(timeout)
    try:
        _read_dump(sock, CALIBRATE_STATES, MEMINFO_EXT, _sample(calibration))
    except OSError as exc:
        raise DiagUnavailable(f"inet_diag dump failed: {exc}") from None
    finally:
        sock.close()
    return {
        "loopback": calibration.loopback.report(),
        "other": calibration.other.report(),
        "charge_unit_bytes": unit_bytes,
        "sampled_sockets": calibration.sampled,
        "stopped_early": not calibration.complete,
        "max_sockets": max_sockets,
        "method": (
            "inet_diag INET_DIAG_MEMINFO: rx rmem_alloc / idiag_rqueue, tx wmem_queued / idiag_wqueue; "
            "charged_total: rmem_alloc + wmem_queued + fwd_alloc per socket, rounded up to charge_unit_bytes"
        ),
    }


# --- the initial send buffer: tcp_sndbuf_expand() measured on one loopback connection ---------------------

PROBE_MSS_BYTES = 1460  # Ethernet's MSS (1500 MTU - 40): per_mss for the segments a NIC carries
PROBE_TIMEOUT_S = 5.0
PROBE_ADDRESSES = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))
# struct tcp_info (include/uapi/linux/tcp.h): tcpi_snd_cwnd and tcpi_reordering, u32 at bytes 80 and 88
_TCP_INFO_CWND_REORDERING = struct.Struct("=80xI4xI")
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets, no TIME_WAIT is left
TCP_CONGESTION_NAME_BYTES = 16  # TCP_CA_NAME_MAX


def _probe_once(family: int, address: str, mss_bytes: int, timeout: float) -> dict:
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        listener.settimeout(timeout)
        listener.bind((address, 0))
        listener.listen(1)
        client = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        client.settimeout(timeout)
        # Before connect: the SYN advertises it and mss_clamp takes it, so per_mss is the one for this MSS.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss_bytes)
        client.connect(listener.getsockname()[:2])
        # connect() returns once tcp_finish_connect() -> tcp_init_transfer() -> tcp_init_buffer_space() ran.
        sndbuf = client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        if len(info) < _TCP_INFO_CWND_REORDERING.size:
            raise OSError(errno.EINVAL, f"TCP_INFO is {len(info)} bytes, too short")
        snd_cwnd, reordering = _TCP_INFO_CWND_REORDERING.unpack_from(info)
        name = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, TCP_CONGESTION_NAME_BYTES)
        return {
            "mss_bytes": mss_bytes,
            "sndbuf_bytes": sndbuf,
            "snd_cwnd": snd_cwnd,
            "reordering": reordering,
            "congestion_control": name.split(b"\0", 1)[0].decode("ascii", "replace") or None,
            "address": address,
        }


def probe_initial_sndbuf(mss_bytes: int = PROBE_MSS_BYTES, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """SO_SNDBUF, cwnd, reordering and congestion control of a new loopback connection with TCP_MAXSEG set.

    One listener and one client on 127.0.0.1 (else ::1), both closed before returning (the client with a
    reset, so no TIME_WAIT is left); nothing is sent. Raises OSError when neither loopback address works
    (no loopback up in this network namespace).
    """
    errors = []
    for family, address in PROBE_ADDRESSES:
        try:
            return _probe_once(family, address, mss_bytes, timeout)
        except OSError as exc:
            errors.append(f"{address}: {exc.strerror or exc}")
    raise OSError(errno.ENETUNREACH, "; ".join(errors))

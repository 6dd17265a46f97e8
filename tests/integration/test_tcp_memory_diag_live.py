# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""inet_diag against the running kernel: a connection this test opens is seen, and the fast state counts
(counters + filtered dump) agree with a full dump. Moved from the unit tests, which read only fixtures."""

from __future__ import annotations

import socket

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import diag


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


def test_fast_counts_on_this_namespace_agree_with_a_full_dump():
    """On the live kernel (this test's own namespace): counters + filtered dump == full dump, when quiet."""
    from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.gather import fast_state_counts

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

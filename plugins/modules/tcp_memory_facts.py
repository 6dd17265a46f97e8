#!/usr/bin/python
# Copyright: netstack.tcp_tuning contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tcp_memory_facts
short_description: Measure a Linux host's TCP memory, limits, connections and memory pressure
version_added: 0.1.0
description:
  - Reads C(/proc) and C(/sys) on the target with the Python 3 standard library only and returns
    C(ansible_facts.tcp_memory), the facts the C(recommend_tcp_memory) filter and the C(tcp_memory) role consume
    (see C(docs/data-model.md), section 1).
  - Reports memory (C(MemTotal), C(MemAvailable), page size, an estimate of the kernel's C(nr_free_buffer_pages)
    and the boot defaults this kernel computes from it), the kernel release, whether the module runs in the
    initial network namespace and how it decided, the twelve relevant sysctls with presence, writability and
    scope, socket counts and buffer pages from C(/proc/net/sockstat), C(CurrEstab) from C(/proc/net/snmp),
    memory-pressure counters from C(/proc/net/netstat), and a derived status against C(tcp_mem).
  - Also measures, with one loopback connection (127.0.0.1, else ::1) that sends nothing and is closed with a
    reset, the send buffer an established socket starts with, and from it the per-segment charge the kernel
    assumes (C(socket_memory.per_mss_bytes)).
  - "Cost: the default call reads a fixed set of small files and opens that one connection, the same time
    whatever the number of connections. The diagnostics below cost more; each option says what, and
    C(docs/benchmarks.md) has the measurements."
  - Inside a non-initial network namespace (a container) C(net.ipv4.tcp_mem) and C(udp_mem) are absent and
    C(net.core.*mem*) are read-only on recent kernels; the facts say so instead of failing, and list the
    C(sockstat) fields that are host-wide there.
  - Never writes anything. A kernel file with unexpected content fails the task with a message naming the file.
author:
  - netstack.tcp_tuning developers (@netstack)
options:
  states:
    description:
      - Count TCP sockets (IPv4 and IPv6) by state, every socket of the kernel's listening and established hash
        tables (what C(/proc/net/tcp) lists); a socket only bound, neither listening nor connecting, is not counted.
        ESTABLISHED is C(CurrEstab) of C(/proc/net/snmp) minus the CLOSE_WAIT sockets; C(connections.curr_estab_drift)
        says by how much connections opened or closed during the count can make it off.
      - "Cost: one netlink request with a message per socket that is not ESTABLISHED, but the kernel walks every
        socket of its hash tables for it, so the time grows with the connection count (milliseconds per hundred
        thousand sockets)."
    type: bool
    default: false
  top_sockets:
    description:
      - Also list the N sockets holding the most buffer memory (receive allocation plus send queue).
        V(0) lists none.
      - "Cost: a full dump with one message per socket, about ten times O(states) alone; memory stays flat
        (N entries kept)."
    type: int
    default: 0
  connection_bytes:
    description:
      - Also sum the buffer memory (C(rmem_alloc), C(wmem_queued)) and the queued payload of every socket into
        C(connections). Implies counting states. Without it those sums are V(null).
      - "Cost: the full dump of O(top_sockets), one message per socket, about ten times O(states) alone."
    type: bool
    default: false
  connections_source:
    description:
      - Where sockets are enumerated from. V(auto) uses netlink C(inet_diag) and falls back to
        C(/proc/net/tcp) and C(tcp6) when netlink is unavailable; V(netlink) fails instead of falling back;
        V(proc) always reads the text files.
      - "Cost: V(proc) has the kernel format every socket as a line of text, several times slower than netlink,
        and gives no per-socket memory, only queued payload bytes."
    type: str
    choices: [auto, netlink, proc]
    default: auto
  blocked_writers:
    description:
      - Sample the kernel stacks of all threads (C(/proc/PID/task/TID/stack), root only) and report those
        blocked in C(sk_stream_wait_memory), the function writers wait in for TCP memory.
      - A writer whose own socket send buffer is full waits there too; read the result together with
        C(ansible_facts.tcp_memory.status.level).
      - "Cost: per sample, the C(wchan) of every thread of the host and the stack of those asleep where a writer
        waits, so it grows with the thread count; the task lasts the sampling window,
        (O(blocked_writers_samples) - 1) x O(blocked_writers_interval_ms)."
    type: bool
    default: false
  blocked_writers_samples:
    description:
      - How many times to sample the stacks, between 1 and 50; each sample reads every thread again.
    type: int
    default: 5
  blocked_writers_interval_ms:
    description:
      - Milliseconds between samples, between 10 and 2000. The whole window is at most 10 seconds, and the task
        waits for it.
    type: int
    default: 100
  calibrate:
    description:
      - Measure this host's truesize factors - the kernel memory charged per queued payload byte - over TCP
        sockets holding queued data (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1), receive as C(rmem_alloc) / unread bytes
        (C(idiag_rqueue)), send as C(wmem_queued) / unsent plus unacknowledged bytes (C(idiag_wqueue)), from one
        C(inet_diag) dump with C(INET_DIAG_MEMINFO) (what C(ss -tm) shows). The filter uses a factor
        measured on enough sockets instead of its default.
      - "Sockets whose both ends are on loopback are reported apart (C(calibration.loopback)) from the others
        (C(calibration.other)): loopback coalesces segments and costs far less per byte than a network card.
        Each class also sums the forward-allocated memory and what its sockets hold of C(tcp_mem) in all."
      - "Cost: bounded, at most O(calibrate_sample) sockets read, whatever the connection count (reading stops
        there and C(calibration.stopped_early) says so). Measure under the load to size for."
    type: bool
    default: false
  calibrate_sample:
    description:
      - With O(calibrate), the most sockets read, between 100 and 1000000.
    type: int
    default: 10000
  cgroups:
    description:
      - Find the memory cgroups that own this network namespace's TCP sockets and report, for the ten owning
        the most, their limits, usage, socket memory and limit events, and the room their tightest limit
        leaves for socket buffers. On cgroup v2 the kernel charges socket buffers to the owning process's
        memory cgroup and puts its sockets under memory pressure near C(memory.high) or C(memory.max),
        however far C(tcp_mem) is; on cgroup v1 only C(memory.kmem.tcp.limit_in_bytes) does.
      - "Cost: bounded, C(/proc/PID/status) of at most O(cgroups_max_processes) processes, then at most
        O(cgroups_max_fds) fd links (largest fd tables first), matched against C(/proc/net/tcp) and C(tcp6).
        Needs root to see other users' processes."
      - Cgroup files are read at the mountpoints C(/proc/self/mountinfo) names; a cgroup path that leads out of
        the mount (a process of another cgroup namespace) is reported as not readable and never followed.
    type: bool
    default: false
  cgroups_max_processes:
    description:
      - With O(cgroups), the most processes whose C(status) is read, between 1 and 65536.
    type: int
    default: 4096
  cgroups_max_fds:
    description:
      - With O(cgroups), the most fd links read in all, between 1 and 1000000. Socket counts are lower
        bounds when the scan stops there (C(cgroups.scan.truncated)).
    type: int
    default: 100000
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: linux
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
notes:
  - Kernel stacks and other processes' C(/proc) entries need root; without it O(blocked_writers) reports
    C(threads=null) and says why.
  - Only regular files are read (procfs and sysfs files are); a FIFO, a device (a link to C(/dev/zero)), a socket
    or a directory in a file's place fails the task naming the path, without waiting on it. Every read is capped
    and a larger file fails the task naming it - 1 MiB for the small files (C(meminfo), C(sockstat), C(snmp),
    C(netstat), C(protocols), the sysctls, the CPU list), 16 MiB for C(zoneinfo) and C(mountinfo), 64 KiB for a
    thread's C(stack), C(wchan) or C(comm), 4 GiB (lines of at most 4 KiB) for C(/proc/net/tcp) and C(tcp6).
  - Facts no real host has fail the task naming the file and the value - C(MemTotal) outside 4 MiB..4 PiB
    (52-bit physical addresses), C(MemAvailable) above C(MemTotal), a page size that is not a power of two from
    4 KiB to 1 MiB, more than 65536 CPUs, a sysctl value its kernel type cannot hold (C(tcp_mem) and C(udp_mem)
    pages beyond 2^63 bytes, C(tcp_rmem), C(tcp_wmem) and C(net.core) sizes outside 0..2147483647,
    C(tcp_adv_win_scale) outside -31..31). A C(tcp_mem) or C(udp_mem) triple out of order, or a C(tcp_rmem) or
    C(tcp_wmem) maximum below its minimum or default, is reported in C(status.notes) (the kernel accepts it).
seealso:
  - name: Kernel ip-sysctl documentation
    description: tcp_mem, tcp_rmem, tcp_wmem and the other keys reported here.
    link: https://docs.kernel.org/networking/ip-sysctl.html
"""

EXAMPLES = r"""
- name: Gather TCP memory facts (constant time in the number of connections)
  netstack.tcp_tuning.tcp_memory_facts:

- name: Count connections by state (near-constant time in ESTABLISHED connections)
  netstack.tcp_tuning.tcp_memory_facts:
    states: true

- name: Count connections by state and show the five sockets holding the most buffer memory
  netstack.tcp_tuning.tcp_memory_facts:
    states: true
    top_sockets: 5

- name: Look for writers stalled waiting for TCP memory (as root)
  netstack.tcp_tuning.tcp_memory_facts:
    blocked_writers: true
    blocked_writers_samples: 5
    blocked_writers_interval_ms: 100
  become: true

- name: Find the memory cgroups owning the TCP sockets and the room their limits leave (as root)
  netstack.tcp_tuning.tcp_memory_facts:
    cgroups: true
  become: true

- name: Show the status
  ansible.builtin.debug:
    msg: "{{ ansible_facts.tcp_memory.status.level }} ({{ ansible_facts.tcp_memory.status.used_pages }} pages)"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    tcp_memory:
      description:
        - TCP memory facts, schema version 1 (C(docs/data-model.md) section 1). Absent information is
          V(null), never a guessed number; units are in the names.
      returned: always
      type: dict
      contains:
        schema_version:
          description: Version of this structure; consumers reject versions they do not know.
          type: int
          returned: always
          sample: 1
        kernel:
          description: C(release) string and C(version), its first three numbers.
          type: dict
          returned: always
          sample: {release: 6.1.0-31-cloud-amd64, version: [6, 1, 0]}
        tcp_max_orphans:
          description:
            - C(net.ipv4.tcp_max_orphans), how many sockets closed with data still queued the kernel keeps (their
              buffers stay in C(tcp_mem)); half the established-hash size by default. A global key, null outside
              the initial network namespace.
          type: int
          returned: always
          sample: 131072
        tcp_congestion_control:
          description:
            - C(net.ipv4.tcp_congestion_control) of this network namespace (per namespace from kernel 4.15), null
              when not readable. The filter sizes C(tcp_wmem[2]) for a link as C(tcp_sndbuf_expand) does, 3x the
              per-MSS truesize per segment under C(bbr), 2x otherwise.
          type: str
          returned: always
          sample: cubic
        root:
          description:
            - Whether the module ran as root (effective UID 0). Without root every key reads as not
              C(writable), because writing C(/proc/sys) needs root; the values themselves are readable.
          type: bool
          returned: always
          sample: true
        page_size_bytes:
          description: Page size from C(os.sysconf).
          type: int
          returned: always
          sample: 4096
        cpu_count:
          description:
            - Online CPUs (from kernel 6.0 C(sockstat) mem lags the truth by up to C(net.core.mem_pcpu_rsv), 1 MiB by
              default, per CPU, either way).
          type: int
          returned: always
          sample: 2
        memory:
          description:
            - C(mem_total_bytes), C(mem_available_bytes), C(nr_free_buffer_pages_estimate) (pages) and
              C(nr_free_buffer_pages_source) (V(zoneinfo) or V(meminfo)).
          type: dict
          returned: always
          sample: {mem_total_bytes: 2071543808, mem_available_bytes: 1800000000,
                   nr_free_buffer_pages_estimate: 480000, nr_free_buffer_pages_source: zoneinfo}
        boot_defaults:
          description: C(tcp_mem_pages), C(tcp_rmem_bytes), C(tcp_wmem_bytes) this kernel computes at boot here.
          type: dict
          returned: always
          sample: {tcp_mem_pages: [22500, 30000, 45000], tcp_rmem_bytes: [4096, 131072, 6291456],
                   tcp_wmem_bytes: [4096, 16384, 4194304]}
        namespace:
          description: C(initial) (V(true), V(false) or V(null)) and C(method), how it was decided.
          type: dict
          returned: always
          sample: {initial: true, method: compared /proc/self/ns/net with /proc/1/ns/net}
        sysctl:
          description:
            - One entry per key, always all twelve keys, with C(present), C(writable), C(scope)
              (V(global) or V(netns)), C(unit), C(value) (list for triples, int for scalars) and C(raw).
          type: dict
          returned: always
          sample:
            net.ipv4.tcp_mem: {present: true, writable: true, scope: global, unit: pages,
                               value: [22500, 30000, 45000], raw: "22500\t30000\t45000"}
        sockstat:
          description:
            - C(sockets_used), C(tcp), C(tcp6), C(udp), C(udp6) counters and C(host_wide_fields), the
              fields that are host-wide because the module runs outside the initial network namespace.
            - C(inuse), C(orphan), C(tw), C(alloc) count sockets. C(mem_units) is sockstat's C(mem) as printed, in
              units of C(mem_unit_bytes) - 4096 bytes (C(SK_MEM_QUANTUM)) on kernels 5.5 to 5.19, the page size
              before and from 6.0 - and C(mem_bytes) is their product.
          type: dict
          returned: always
          sample: {sockets_used: 123, tcp: {inuse: 10, orphan: 0, tw: 2, alloc: 12, mem_units: 3, mem_unit_bytes: 4096,
                   mem_bytes: 12288}, tcp6: {inuse: 1}, udp: {inuse: 2, mem_units: 1, mem_unit_bytes: 4096,
                   mem_bytes: 4096}, udp6: {inuse: 0}, host_wide_fields: []}
        socket_memory:
          description:
            - C(mem_pcpu_rsv_pages) (C(net.core.mem_pcpu_rsv), pages each CPU batches before sockstat sees them;
              V(null) where the kernel has no such file, also inside a network namespace), C(bypass_prot_mem)
              (C(net.core.bypass_prot_mem) of this namespace, V(true) when new sockets are charged only to their memory
              cgroup, not to C(tcp_mem); V(null) where absent).
            - C(per_mss_bytes), the bytes C(tcp_sndbuf_expand) reserves per segment of C(probe_mss_bytes) payload,
              derived from C(initial_sndbuf_bytes), the send buffer of the loopback probe once established; V(null)
              when there was no loopback, or the buffer was capped by C(tcp_wmem[2]) (see C(status.notes)).
          type: dict
          returned: always
          sample: {mem_pcpu_rsv_pages: 256, bypass_prot_mem: null, per_mss_bytes: 4352, initial_sndbuf_bytes: 87040,
                   probe_mss_bytes: 1460}
        snmp:
          description: C(tcp_curr_estab) (ESTABLISHED plus CLOSE_WAIT), C(tcp_active_opens), C(tcp_passive_opens).
          type: dict
          returned: always
          sample: {tcp_curr_estab: 10, tcp_active_opens: 100, tcp_passive_opens: 90}
        pressure:
          description:
            - C(counters) from TcpExt (V(null) for one this kernel lacks) and C(tcp_under_pressure_now)
              from C(/proc/net/protocols).
          type: dict
          returned: always
          sample: {counters: {TCPMemoryPressures: 0, TCPMemoryPressuresChrono: 0, TCPAbortOnMemory: 0,
                   PruneCalled: 0, RcvPruned: 0, OfoPruned: 0, TCPRcvCollapsed: 0, TCPRcvQDrop: 0},
                   tcp_under_pressure_now: false}
        status:
          description:
            - C(level) (V(ok), V(above_min), V(pressure), V(at_max), V(unknown)), C(used_pages) (sockstat's TCP
              memory in whole pages, the unit of C(tcp_mem)), fractions of the C(tcp_mem) thresholds,
              C(buffer_bytes_per_connection) and C(notes).
          type: dict
          returned: always
          sample: {level: ok, used_pages: 3, fraction_of_min: 0.000133, fraction_of_pressure: 0.0001,
                   fraction_of_max: 0.000067, buffer_bytes_per_connection: 1228.8, notes: []}
        connections:
          description:
            - With O(states), O(top_sockets) or O(connection_bytes) only. C(source) (V(netlink) or V(proc)),
              C(method) (V(counters) or V(dump), see O(states)), C(curr_estab_drift) (V(counters) only), C(total),
              C(by_state), C(rmem_alloc_bytes_total) and C(wmem_queued_bytes_total) (V(null) from C(proc) and
              with V(counters)), C(rx_queue_bytes_total) and C(tx_queue_bytes_total) (payload queued, V(null)
              with V(counters)), C(fallback_reason).
          type: dict
          returned: when requested
          sample: {source: netlink, method: dump, curr_estab_drift: null, total: 12,
                   by_state: {ESTABLISHED: 10, TIME_WAIT: 2}, rmem_alloc_bytes_total: 0,
                   wmem_queued_bytes_total: 0, rx_queue_bytes_total: 0, tx_queue_bytes_total: 0,
                   fallback_reason: null}
        top_sockets:
          description: With O(top_sockets) > 0 only. The sockets holding the most buffer memory, largest first.
          type: list
          elements: dict
          returned: when requested
          sample: [{local: "127.0.0.1:5000", remote: "127.0.0.1:40000", state: ESTABLISHED, rmem_alloc_bytes: 0,
                    wmem_queued_bytes: 65536, rx_queue_bytes: 0, tx_queue_bytes: 65000, total_bytes: 65536}]
        blocked_writers:
          description:
            - With O(blocked_writers) only. C(samples), C(window_ms), C(threads) (pid, tid, comm,
              seen_in_samples; V(null) when kernel stacks are not readable) and C(note).
          type: dict
          returned: when requested
          sample: {samples: 5, window_ms: 402, threads: [{pid: 1234, tid: 1234, comm: load, seen_in_samples: 5}],
                   note: a full per-socket send buffer also waits in sk_stream_wait_memory}
        elapsed_ms:
          description:
            - Wall time of each step of this call, in milliseconds, so a report can say what each option cost on
              this host. C(base) is the default call's reading of the fixed small files; C(connections) the
              O(states), O(top_sockets) or O(connection_bytes) walk; C(blocked_writers), C(socket_memory) (the
              loopback probe), C(calibration) (O(calibrate)) and C(cgroups) (O(cgroups)) the other steps.
              A step that did not run is V(null).
          type: dict
          returned: always
          sample: {base: 3.1, connections: 412.7, blocked_writers: null, socket_memory: 2.4, calibration: null,
                   cgroups: null}
        calibration:
          description:
            - "With O(calibrate) only (else V(null), also when netlink is not usable, with a note). C(loopback)
              (both ends on 127.0.0.0/8 or ::1, or one address) and C(other) each have C(sockets) sampled, C(rx) and
              C(tx) (C(factor) = charged / payload bytes, V(null) without a socket holding data that way; C(sockets)
              holding data that way, C(payload_bytes), C(charged_bytes)), C(fwd_alloc_bytes) (forward-allocated
              memory) and C(charged_total_bytes) (receive + send + forward-allocated memory, each socket rounded up to
              C(charge_unit_bytes)). Also C(sampled_sockets) read, C(max_sockets), C(stopped_early) and C(method)."
          type: dict
          returned: always
          sample:
            loopback: {sockets: 400, rx: {factor: 1.0623, sockets: 200, payload_bytes: 13107200,
                       charged_bytes: 13924352}, tx: {factor: null, sockets: 0, payload_bytes: 0, charged_bytes: 0},
                       fwd_alloc_bytes: 81920, charged_total_bytes: 14008320}
            other: {sockets: 0, rx: {factor: null, sockets: 0, payload_bytes: 0, charged_bytes: 0},
                    tx: {factor: null, sockets: 0, payload_bytes: 0, charged_bytes: 0}, fwd_alloc_bytes: 0,
                    charged_total_bytes: 0}
            charge_unit_bytes: 4096
            sampled_sockets: 400
            max_sockets: 10000
            stopped_early: false
            method: inet_diag INET_DIAG_MEMINFO
        cgroups:
          description:
            - "With O(cgroups) only (else V(null)). C(memory_controller) (V(v2), V(v1) or V(null)), C(scan)
              (what the bounded scan read, C(truncated)), C(notes), and C(owners), the cgroups owning the most
              TCP sockets, most first. Each owner has C(path), C(version), C(tcp_sockets), C(processes),
              C(readable), C(socket_limit) (the tightest limit over the cgroup and its ancestors: C(cgroup),
              C(file), C(limit_bytes), C(other_bytes) charged there besides this cgroup's sockets,
              C(headroom_bytes); V(null) without a finite limit) and C(socket_headroom_bytes)."
            - "On v2 also: C(memory_max_bytes), C(memory_high_bytes) (V(null) for C(max) or a missing file),
              C(memory_current_bytes), C(memory_stat_sock_bytes), C(file_bytes) (C(memory.stat) C(file), page cache
              reclaimed before a charge fails), C(memory_events) (C(low), C(high), C(max), C(oom), C(oom_kill)
              counts) and C(sock_throttled) (C(memory.events) count of socket pressure episodes, V(null) where the
              kernel does not count them). C(socket_limit.other_bytes) leaves out the limit cgroup's C(file) pages
              (C(socket_limit.file_bytes)). On v1: C(memory_limit_bytes), C(memory_usage_bytes),
              C(kmem_tcp_limit_bytes), C(kmem_tcp_usage_bytes), C(kmem_tcp_max_usage_bytes), C(kmem_tcp_failcnt)
              and C(kmem_tcp_present)."
          type: dict
          returned: always
          sample:
            memory_controller: v2
            owners:
              - path: /system.slice/run-load.scope
                version: 2
                tcp_sockets: 1000
                processes: 4
                readable: true
                memory_max_bytes: 67108864
                memory_high_bytes: null
                memory_current_bytes: 66000000
                memory_stat_sock_bytes: 55000000
                file_bytes: 0
                memory_events: {low: 0, high: 0, max: 27, oom: 0, oom_kill: 0}
                sock_throttled: 0
                socket_limit: {cgroup: /system.slice/run-load.scope, file: memory.max, limit_bytes: 67108864,
                               file_bytes: 0, other_bytes: 11000000, headroom_bytes: 56108864}
                socket_headroom_bytes: 56108864
            scan: {processes_listed: 90, processes_other_netns: 0, processes_read: 60, processes_unreadable: 0,
                   fds_read: 2300, tcp_sockets_seen: 1003, tcp_sockets_attributed: 1003, max_processes: 4096,
                   max_fds: 100000, truncated: false}
            notes: [sockets are attributed to the cgroup of the process holding them]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.diag import DiagUnavailable
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.gather import gather, timed
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import ProcParseError

MAX_TOP_SOCKETS = 1000
MAX_WINDOW_MS = 10000


def argument_spec() -> dict:
    return {
        "states": {"type": "bool", "default": False},
        "top_sockets": {"type": "int", "default": 0},
        "connection_bytes": {"type": "bool", "default": False},
        "connections_source": {"type": "str", "choices": ["auto", "netlink", "proc"], "default": "auto"},
        "blocked_writers": {"type": "bool", "default": False},
        "blocked_writers_samples": {"type": "int", "default": 5},
        "blocked_writers_interval_ms": {"type": "int", "default": 100},
        "calibrate": {"type": "bool", "default": False},
        "calibrate_sample": {"type": "int", "default": 10000},
        "cgroups": {"type": "bool", "default": False},
        "cgroups_max_processes": {"type": "int", "default": 4096},
        "cgroups_max_fds": {"type": "int", "default": 100000},
    }


def check_bounds(params: dict):
    """Return an error message for out-of-range options, or None."""
    if not 0 <= params["top_sockets"] <= MAX_TOP_SOCKETS:
        return f"top_sockets must be between 0 and {MAX_TOP_SOCKETS}, got {params['top_sockets']}"
    if not 1 <= params["blocked_writers_samples"] <= 50:
        return f"blocked_writers_samples must be between 1 and 50, got {params['blocked_writers_samples']}"
    if not 10 <= params["blocked_writers_interval_ms"] <= 2000:
        return f"blocked_writers_interval_ms must be between 10 and 2000, got {params['blocked_writers_interval_ms']}"
    if not 100 <= params["calibrate_sample"] <= 1000000:
        return f"calibrate_sample must be between 100 and 1000000, got {params['calibrate_sample']}"
    if not 1 <= params["cgroups_max_processes"] <= 65536:
        return f"cgroups_max_processes must be between 1 and 65536, got {params['cgroups_max_processes']}"
    if not 1 <= params["cgroups_max_fds"] <= 1000000:
        return f"cgroups_max_fds must be between 1 and 1000000, got {params['cgroups_max_fds']}"
    window = (params["blocked_writers_samples"] - 1) * params["blocked_writers_interval_ms"]
    if window > MAX_WINDOW_MS:
        return f"the blocked_writers window (samples - 1) * interval_ms is {window} ms, above {MAX_WINDOW_MS}"
    return None


def cgroup_facts(module, max_processes: int, max_fds: int) -> dict:
    """The cgroups facts; a file with unexpected content fails the task naming it.

    Imported here, not at the top: a module run compiles its module_utils from source, and only a call
    with cgroups=true needs this one (the default and states calls do not pay for it).
    """
    from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts import cgroups as tcp_memory_cgroups

    try:
        return tcp_memory_cgroups.gather_cgroups(max_processes=max_processes, max_fds=max_fds)
    except tcp_memory_cgroups.CgroupParseError as exc:
        module.fail_json(msg=str(exc), file=exc.name)


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    error = check_bounds(module.params)
    if error:
        module.fail_json(msg=error)
    params = dict(module.params)
    cgroup_options = {name: params.pop(name) for name in ("cgroups", "cgroups_max_processes", "cgroups_max_fds")}
    try:
        facts = gather(**params)
        facts["cgroups"] = (
            timed(
                facts["elapsed_ms"],
                "cgroups",
                cgroup_facts,
                module,
                cgroup_options["cgroups_max_processes"],
                cgroup_options["cgroups_max_fds"],
            )
            if cgroup_options["cgroups"]
            else None
        )
    except ProcParseError as exc:
        module.fail_json(msg=str(exc), file=exc.name)
    except DiagUnavailable as exc:
        module.fail_json(msg=f"connections_source=netlink: {exc}")
    # Whether the sysctl writability above means anything: without root no key is writable.
    facts["root"] = os.geteuid() == 0
    module.exit_json(changed=False, ansible_facts={"tcp_memory": facts})


if __name__ == "__main__":
    main()

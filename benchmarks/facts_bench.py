#!/usr/bin/env python
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark tcp_memory_facts and the report playbook at 10k/100k/1M established loopback connections against ss.

For each scenario (10,000, 100,000 and 1,000,000 idle connections, then 1,000,000 of which 5 % hold
16 KiB unread): check that it fits (fds, memory, tcp_mem[0]; stop with a message naming the figure
otherwise), create a network namespace, set somaxconn and ip_local_port_range inside it only, hold the
connections in it with tests/tools/conn_holder.py --unaccepted (the server ends stay in the listeners'
backlogs: 2N established sockets with N fds, <= 15000 fds per process, listeners on 127.0.0.1-8), then,
inside the namespace, time every case side by side, round after round (interleaved, so background noise
hits all cases alike), and report the best (minimum) and the median of the rounds, wall and CPU time
and peak RSS; then run the report playbook once against the namespace with per-task times. Targets are
judged on the best of both sides (other load only ever adds time) and printed as met / not met.

  in-process OPTION    main() of the module with that option, in a long-lived child (no start-up)
  process OPTION       the module file run by the target Python as Ansible runs it (python MODULE ARGS.json)
                       OPTION: default, states=true, top_sockets=20, connection_bytes=true (with states),
                       calibrate=true, blocked_writers=true
  ss -s, ss -tan state all | wc -l, ss -tmn | wc -l   the anchors

Peak memory of an in-process case is its child's ru_maxrss from wait4(); of a process case, one extra
run under GNU time. At the end the benchmark checks that it left no namespace, no process and no
socket (host-wide TCP sockets back near the count before it). Every namespace and process is cleaned
up, also on failure or Ctrl-C.

Usage (as root; `make bench` runs benchmarks/run.sh .venv/bin, which calls this):
  facts_bench.py [--sizes 10000,100000,1000000] [--unread-sizes largest|none|N,...] [--runs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_FILE = os.path.join(ROOT, "plugins", "modules", "tcp_memory_facts.py")
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import conn_holder  # noqa: E402 -- the load generator's client: start_in_netns()

FDS_PER_WORKER = 15000
RUN_TIMEOUT = 300  # seconds, any single measured run
HOLD_SECONDS = 3600  # conn_holder stops by itself after this, whatever happens here
SETUP_TIMEOUT = 1200  # seconds to build the largest size
# Listeners on several loopback addresses: each (address, port) is one more destination for the ephemeral ports.
LOOPBACK_HOSTS = ",".join(f"127.0.0.{i}" for i in range(1, 9))
# Per-namespace sysctls set in the benchmark's namespace only (never the host's).
NETNS_PORT_RANGE = "10000 65535"
# Shapes: idle (no unread data) and "unread" (5 % of the connections hold 16 KiB unread at the server end).
SHAPES = {"idle": {"unread_every": 0, "unread_bytes": 0}, "unread": {"unread_every": 20, "unread_bytes": 16384}}
# Preflight estimates, measured here (kernel 6.18): MemAvailable fell by ~3.1 KiB per connection held
# (two tcp_sock, the client's file and socket inode), doubled for safety; unread data is charged at its skb
# truesize, 1.21x the payload for 16 KiB sends on loopback (24,690 pages for 5,000 x 16 KiB).
BYTES_PER_CONNECTION = 6 * 1024
UNREAD_TRUESIZE_FACTOR = 1.25
MEMORY_SHARE = 0.5  # the benchmark takes at most this share of MemAvailable
FILE_MAX_SHARE = 0.6  # allocated fds after building stay under this share of fs.file-max
# Unread data plus what the host already charges stays under this share of tcp_mem[0] (tcp_mem is host-wide:
# above tcp_mem[1] every socket of the machine would be under pressure; below tcp_mem[0] none can be).
TCP_MEM_SHARE = 0.95

TARGET_DEFAULT_FLAT = 1.25  # default call, largest size over smallest
TARGET_STATES_PROCESS_OVER_SS = 0.1  # states=true as a process vs `ss -tan state all | wc -l`, largest size
TARGET_DUMP_OVER_SS_TMN = 0.5  # top_sockets / connection_bytes / calibrate as a process vs `ss -tmn | wc -l`
TARGET_PEAK_MB = 64  # every module process, every size

MODULE_CASES = {
    "default": {},
    "states=true": {"states": True},
    "top_sockets=20": {"top_sockets": 20},
    "connection_bytes=true": {"states": True, "connection_bytes": True},
    "calibrate=true": {"calibrate": True},
    "blocked_writers=true": {"blocked_writers": True},
}
ANCHORS = {
    "ss -s": ["ss", "-s"],
    "ss -tan state all | wc -l": ["sh", "-c", "ss -tan state all | wc -l"],
    "ss -tmn | wc -l": ["sh", "-c", "ss -tmn | wc -l"],
}
CASE_ORDER = (
    [f"in-process {name}" for name in MODULE_CASES] + [f"process {name}" for name in MODULE_CASES] + list(ANCHORS)
)


# --- children: one run per request line, elapsed seconds per reply line -----------------------


def _import_root() -> str:
    """A directory to put on sys.path: this checkout as ansible_collections.netstack.tcp_tuning,
    and ansible-core's `ansible` package (what AnsiballZ ships to a target with the module)."""
    import ansible

    base = tempfile.mkdtemp(prefix="facts-bench-")
    link = os.path.join(base, "ansible_collections", "netstack", "tcp_tuning")
    os.makedirs(os.path.dirname(link))
    os.symlink(ROOT, link)
    os.symlink(os.path.dirname(ansible.__file__), os.path.join(base, "ansible"))
    return base


def module_worker(args: dict) -> None:
    """Run the module's main() in-process once per request; reply elapsed seconds and a count."""
    sys.path.insert(0, _import_root())
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.netstack.tcp_tuning.plugins.modules import tcp_memory_facts

    reply = sys.stdout
    for line in sys.stdin:
        if line.strip() != "run":
            break
        captured = io.StringIO()
        with patch_module_args(args), contextlib.redirect_stdout(captured):
            start, cpu_start = time.perf_counter(), time.process_time()
            with contextlib.suppress(SystemExit):  # exit_json() ends with sys.exit(0)
                tcp_memory_facts.main()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        result = json.loads(captured.getvalue())
        connections = result["ansible_facts"]["tcp_memory"]["connections"]
        sockets = connections and connections["total"]
        reply.write(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "sockets": sockets}) + "\n")
        reply.flush()


# ru_maxrss survives exec: a child forked from this (Python) process reports at least this
# process's RSS. GNU time forks the measured command from its own small process and reports
# that child's ru_maxrss (wait4), which is the command's own peak.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


class Peak:
    """Wrap a command so its own peak RSS can be read after it exits."""

    def __init__(self, command) -> None:
        handle, self.path = tempfile.mkstemp(prefix="peak-")
        os.close(handle)
        self.command = [GNU_TIME, "-f", "%M", "-o", self.path, *command] if GNU_TIME else list(command)

    def kib(self, wait4_kib: int) -> int:
        """The command's peak RSS in KiB (wait4's figure, an upper bound, without GNU time)."""
        try:
            with open(self.path) as handle:
                lines = [line for line in handle.read().split() if line.isdigit()]
            return int(lines[-1]) if GNU_TIME and lines else wait4_kib
        finally:
            os.unlink(self.path)


class Worker:
    """A long-lived measuring child: one run per request; its peak RSS when it is closed."""

    def __init__(self, command) -> None:
        self.peak = Peak(command)
        self.process = subprocess.Popen(self.peak.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self) -> dict:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.process.args} died")
        return json.loads(line)

    def close(self) -> int:
        """Stop the child; return its peak RSS in KiB."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            pid, _status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self.process.returncode = 0
                return self.peak.kib(usage.ru_maxrss)
            if time.monotonic() > deadline:
                self.process.kill()
            time.sleep(0.01)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(command) -> dict:
    """Run a command to completion: wall seconds, and CPU seconds (user + system) of it and its children.

    The CPU figure is the growth of RUSAGE_CHILDREN over the run: the long-lived workers are reaped only
    at the end, so the command's tree is the only one waited for meanwhile.
    """
    cpu_start = _children_cpu_seconds()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RuntimeError(f"{command} took longer than {RUN_TIMEOUT} s") from None
    elapsed = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"{command} exited {process.returncode}: {stderr.decode()[-500:]}")
    return {"seconds": elapsed, "cpu_seconds": _children_cpu_seconds() - cpu_start}


def peak_of(command) -> int:
    """One extra run of `command` under GNU time: its own peak RSS in KiB."""
    peak = Peak(command)
    process = subprocess.Popen(peak.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return peak.kib(usage.ru_maxrss)


# --- inside the namespace: all cases, interleaved -------------------------------------------------


def _args_file(args: dict) -> str:
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115 -- removed by measure()
    json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    handle.close()
    return handle.name


def _summary(samples: list, cpu_samples: list, peak_kib: int) -> dict:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "min_ms": round(min(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
        # CPU time (user + system, the kernel's walk included): less moved by other load than wall time
        "cpu_min_ms": round(min(cpu_samples) * 1000, 2),
        "cpu_median_ms": round(statistics.median(cpu_samples) * 1000, 2),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "runs": len(samples),
    }


def measure(runs: int, target_python: str) -> dict:
    """Every case once per round, `runs` rounds; in-process cases in one long-lived child each."""
    me = [sys.executable, os.path.abspath(__file__)]
    workers = {
        f"in-process {name}": Worker([*me, "module-worker", json.dumps(args)]) for name, args in MODULE_CASES.items()
    }
    files = {name: _args_file(args) for name, args in MODULE_CASES.items()}
    commands = dict(ANCHORS)
    # the module file run by the target Python as Ansible runs it (python MODULE ARGS.json): start-up included
    commands.update({f"process {name}": [target_python, MODULE_FILE, path] for name, path in files.items()})
    collections = _import_root()
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = collections + (os.pathsep + env_before if env_before else "")
    samples = {name: [] for name in CASE_ORDER}
    cpu_samples = {name: [] for name in CASE_ORDER}
    peaks = {}
    counted = {}
    try:
        for name, worker in workers.items():  # warm-up: imports and first-call caches out of the timings
            counted[name] = worker.run()["sockets"]
        for _round in range(runs):
            for name in CASE_ORDER:
                result = workers[name].run() if name in workers else run_process(commands[name])
                samples[name].append(result["seconds"])
                cpu_samples[name].append(result["cpu_seconds"])
        for name in CASE_ORDER:
            if name not in workers:
                peaks[name] = peak_of(commands[name])
    finally:
        for name, worker in workers.items():
            peaks[name] = worker.close()
        for path in files.values():
            os.unlink(path)
        shutil.rmtree(collections, ignore_errors=True)
    return {
        "cases": {name: _summary(samples[name], cpu_samples[name], peaks[name]) for name in CASE_ORDER},
        "sockets_counted": counted,
    }


# --- the orchestrator ------------------------------------------------------------------------------


def read_int(path: str) -> int:
    with open(path) as handle:
        return int(handle.read().split()[0])


def meminfo_bytes(field: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def sockstat_tcp() -> dict:
    """Host-wide TCP socket figures of /proc/net/sockstat read from the initial namespace (alloc, mem)."""
    with open("/proc/net/sockstat") as handle:
        for line in handle:
            if line.startswith("TCP:"):
                fields = line.split()[1:]
                return {fields[i]: int(fields[i + 1]) for i in range(0, len(fields), 2)}
    return {}


def unread_pages(size: int, shape: str) -> int:
    """Pages the unread data of a shape is charged in tcp_mem (skb truesize, rounded up)."""
    every, unread = SHAPES[shape]["unread_every"], SHAPES[shape]["unread_bytes"]
    if not every or not unread:
        return 0
    return -(-int(size // every * unread * UNREAD_TRUESIZE_FACTOR) // 4096)


def fit(size: int, shape: str) -> str:
    """Why `size` connections of `shape` would not fit on this host now ('' when they do)."""
    file_max = read_int("/proc/sys/fs/file-max")
    allocated = read_int("/proc/sys/fs/file-nr")
    fds = size + 100 * (size // (FDS_PER_WORKER - 16) + 1)  # client ends only (--unaccepted), slack per worker
    if allocated + fds > FILE_MAX_SHARE * file_max:
        return (
            f"{size} connections need {fds} fds; with {allocated} allocated that is above "
            f"{FILE_MAX_SHARE:.0%} of fs.file-max {file_max}"
        )
    memory = size * BYTES_PER_CONNECTION + unread_pages(size, shape) * 4096
    available = meminfo_bytes("MemAvailable")
    if memory > MEMORY_SHARE * available:
        return (
            f"{size} connections ({shape}) need about {memory >> 20} MiB; MemAvailable is {available >> 20} MiB "
            f"(at most {MEMORY_SHARE:.0%} may be used)"
        )
    pages = unread_pages(size, shape)
    if pages:
        with open("/proc/sys/net/ipv4/tcp_mem") as handle:
            low = int(handle.read().split()[0])
        used = sockstat_tcp().get("mem", 0)
        if used + pages > TCP_MEM_SHARE * low:
            return (
                f"{size} connections ({shape}) would charge about {pages} pages of unread data; with {used} in use "
                f"that is above {TCP_MEM_SHARE:.0%} of tcp_mem[0] {low} (host-wide: the whole machine would "
                f"approach TCP memory pressure)"
            )
    return ""


def preflight(scenarios) -> dict:
    """Check (read-only) that the host can hold the largest scenario; return what was checked."""
    if os.geteuid() != 0:
        raise SystemExit("facts_bench.py must run as root (it creates network namespaces)")
    for tool in ("ip", "ss"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} (iproute2) is needed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < FDS_PER_WORKER:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is below {FDS_PER_WORKER} fds per worker")
    for size, shape in scenarios:
        why = fit(size, shape)
        if why:
            raise SystemExit(f"facts_bench.py: not building anything: {why}")
    return {
        "rlimit_nofile": [soft, hard],
        "fs.file-max": read_int("/proc/sys/fs/file-max"),
        "fds_allocated_before": read_int("/proc/sys/fs/file-nr"),
        "mem_available_mib_before": meminfo_bytes("MemAvailable") >> 20,
        "tcp_alloc_before": sockstat_tcp().get("alloc"),
    }


def _proc_cpu_seconds(pids) -> float:
    """User + system seconds of the given processes so far (0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def report_playbook(netns: str, venv_bin: str, workdir: str) -> dict:
    """One run of playbooks/report.yml (tcp_memory_diagnose: true) against localhost inside the namespace, with
    per-task times and what the report itself says each facts step took."""
    extra = {"tcp_memory_connections": 1000000, "tcp_memory_report_dir": workdir, "tcp_memory_diagnose": True}
    collections = _import_root()
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
    )
    env.pop("PYTHONPATH", None)
    command = ["ip", "netns", "exec", netns, os.path.join(venv_bin, "ansible-playbook")]
    command += [os.path.join(ROOT, "playbooks", "report.yml"), "-i", "localhost,", "-c", "local"]
    command += ["-e", "ansible_python_interpreter=" + sys.executable, "-e", json.dumps(extra)]
    peak = Peak(command)
    cpu_start = _children_cpu_seconds()
    start = time.perf_counter()
    try:
        out = subprocess.run(
            peak.command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT * 4, check=False
        )
    finally:
        shutil.rmtree(collections, ignore_errors=True)
    seconds = time.perf_counter() - start
    tasks = []
    for line in out.stdout.splitlines():  # profile_tasks' recap: "Task name --- 1.23s"
        name, sep, rest = line.rpartition(" -")
        if sep and rest.strip().endswith("s") and "---" in line:
            with contextlib.suppress(ValueError):
                tasks.append([name.strip(" -"), float(rest.strip(" -s"))])
    report_file = os.path.join(workdir, "tcp-memory-report.json")
    facts_elapsed_ms = None
    if os.path.exists(report_file):
        with open(report_file, encoding="utf-8") as handle:
            hosts = json.load(handle)["hosts"]
        if hosts:
            facts_elapsed_ms = {
                "measurement": hosts[0].get("facts_elapsed_ms"),
                "diagnosis": (hosts[0].get("diagnosis") or {}).get("elapsed_ms"),
            }
    return {
        "ok": out.returncode == 0 and os.path.exists(report_file) and facts_elapsed_ms is not None,
        "facts_elapsed_ms": facts_elapsed_ms,
        "rc": out.returncode,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(_children_cpu_seconds() - cpu_start, 2),
        "peak_rss_mb": round(peak.kib(0) / 1024, 1),
        "slowest_tasks": sorted(tasks, key=lambda t: -t[1])[:6],
        "tail": "" if out.returncode == 0 else (out.stdout[-1500:] + out.stderr[-1500:]),
    }


def run_scenario(size: int, shape: str, runs: int, target_python: str, venv_bin: str) -> dict:
    why = fit(size, shape)
    if why:
        raise RuntimeError(f"not building {size} ({shape}): {why}")
    netns = f"ns-bench-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    holder = None
    pids = []
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        backlog = max(4096, FDS_PER_WORKER)
        sysctls = [f"net.core.somaxconn={backlog}", f"net.ipv4.ip_local_port_range={NETNS_PORT_RANGE}"]
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *sysctls], check=True)
        arguments = ["--connections", str(size), "--unaccepted", "--host", LOOPBACK_HOSTS]
        arguments += ["--max-fds-per-worker", str(FDS_PER_WORKER), "--hold-seconds", str(HOLD_SECONDS)]
        # two workers connect at a time (2 CPUs): the machine stays usable while a million are built
        arguments += ["--setup-timeout", str(SETUP_TIMEOUT), "--parallel", "2"]
        arguments += ["--unread-every", str(SHAPES[shape]["unread_every"])]
        arguments += ["--unread-bytes", str(SHAPES[shape]["unread_bytes"])]
        mem_before = meminfo_bytes("MemAvailable")
        tcp_before = sockstat_tcp().get("mem", 0)
        start = time.monotonic()
        holder = conn_holder.start_in_netns(netns, arguments, timeout=SETUP_TIMEOUT + 60)
        setup_seconds = time.monotonic() - start
        pids = [holder.process.pid, *holder.pids]
        setup_cpu = _proc_cpu_seconds(holder.pids)
        built = {
            "setup_seconds": round(setup_seconds, 1),
            "setup_cpu_seconds_workers": round(setup_cpu, 1),
            "workers": len(holder.pids),
            "mem_used_mib": (mem_before - meminfo_bytes("MemAvailable")) >> 20,
            "tcp_mem_pages_charged": sockstat_tcp().get("mem", 0) - tcp_before,
        }
        print(f"  built in {built['setup_seconds']} s: {json.dumps(built)}", flush=True)
        load_before = [round(load, 2) for load in os.getloadavg()]
        command = ["ip", "netns", "exec", netns, sys.executable, os.path.abspath(__file__), "measure"]
        command += ["--runs", str(runs), "--target-python", target_python]
        out = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT * runs * 20, check=False)
        if out.returncode:
            raise RuntimeError(f"measuring {size} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout)
        with tempfile.TemporaryDirectory(prefix="facts-bench-report-") as workdir:
            result["report"] = report_playbook(netns, venv_bin, workdir)
        result.update(
            built,
            connections=holder.connections,
            unread_connections=holder.unread,
            shape=shape,
            load_average_before=load_before,
            load_average_after=[round(load, 2) for load in os.getloadavg()],
        )
        return result
    finally:
        if holder is not None:
            holder.stop(timeout=600)
        left = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False).stdout
        for pid in left.split():  # anything left in our namespace is ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "delete", netns], check=False)
        LEFTOVERS.append((netns, pids))


LEFTOVERS = []  # (namespace, pids) of every scenario, checked at the end


def leftovers(tcp_alloc_before: int, settle_seconds: float = 120) -> list:
    """What the benchmark left behind: namespaces, live processes, sockets (host-wide TCP alloc back near the start).

    Sockets of a deleted namespace are freed asynchronously; wait up to `settle_seconds` for them.
    """
    deadline = time.monotonic() + settle_seconds
    while True:
        problems = []
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        present = {line.split()[0] for line in names.splitlines() if line.strip()}
        for netns, pids in LEFTOVERS:
            if netns in present:
                problems.append(f"namespace {netns} still exists")
            problems += [f"process {pid} still runs" for pid in pids if os.path.exists(f"/proc/{pid}")]
        alloc = sockstat_tcp().get("alloc", 0)
        # other jobs on the host open sockets too: allow them a few thousand
        if alloc > tcp_alloc_before + 5000:
            problems.append(f"host-wide TCP sockets allocated: {alloc}, {tcp_alloc_before} before the benchmark")
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(2)


JUDGED_ON = "min_ms"  # best of the interleaved rounds, both sides of every comparison


def verdicts(results: dict) -> list:
    """(what, met, detail) per target, on the idle shape."""
    idle = {int(key.split(":")[0]): value for key, value in results.items() if key.endswith(":idle")}
    sizes = sorted(idle)
    if not sizes:
        return []
    small, large = idle[sizes[0]]["cases"], idle[sizes[-1]]["cases"]

    def best(cases, name):
        return cases[name][JUDGED_ON]

    out = []
    defaults = [best(idle[s]["cases"], "in-process default") for s in sizes]
    out.append(
        (
            f"default call flat from {sizes[0]:,} to {sizes[-1]:,} (at most {TARGET_DEFAULT_FLAT}x, in-process)",
            defaults[-1] <= TARGET_DEFAULT_FLAT * defaults[0],
            " / ".join(f"{d} ms" for d in defaults)
            + f" ({defaults[-1] / defaults[0]:.2f}x); as a process "
            + " / ".join(f"{best(idle[s]['cases'], 'process default')} ms" for s in sizes),
        )
    )
    states, pipeline = best(large, "process states=true"), best(large, "ss -tan state all | wc -l")
    out.append(
        (
            f"states=true as a process at most {TARGET_STATES_PROCESS_OVER_SS}x `ss -tan state all | wc -l` "
            f"at {sizes[-1]:,}",
            states <= TARGET_STATES_PROCESS_OVER_SS * pipeline,
            f"{states} ms vs {pipeline} ms ({states / pipeline:.3f}x)",
        )
    )
    tmn = best(large, "ss -tmn | wc -l")
    for name in ("top_sockets=20", "connection_bytes=true", "calibrate=true"):
        value = best(large, f"process {name}")
        out.append(
            (
                f"{name} as a process at most {TARGET_DUMP_OVER_SS_TMN}x `ss -tmn | wc -l` at {sizes[-1]:,}",
                value <= TARGET_DUMP_OVER_SS_TMN * tmn,
                f"{value} ms vs {tmn} ms ({value / tmn:.3f}x)",
            )
        )
    peaks = {
        key: max(results[key]["cases"][f"process {name}"]["peak_rss_mb"] for name in MODULE_CASES) for key in results
    }
    out.append(
        (
            f"peak RSS of every module process at most {TARGET_PEAK_MB} MB at every size",
            all(peak <= TARGET_PEAK_MB for peak in peaks.values()),
            ", ".join(f"{key} {peak} MB" for key, peak in peaks.items()),
        )
    )
    reports = {key: results[key]["report"] for key in results}
    out.append(
        (
            "the read-only report on each namespace completes and says what each facts step took",
            all(report["ok"] for report in reports.values()),
            ", ".join(f"{key} {report['seconds']} s (rc {report['rc']})" for key, report in reports.items()),
        )
    )
    del small
    return out


def markdown(results: dict, checked: dict, command: str) -> str:
    keys = list(results)
    lines = [f"Command: `{command}`", ""]
    lines.append("| case | " + " | ".join(f"{k} best / median ms (peak MB)" for k in keys) + " |")
    lines.append("|---|" + "---:|" * len(keys))
    for name in CASE_ORDER:
        cells = ["{min_ms} / {median_ms} ({peak_rss_mb})".format(**results[k]["cases"][name]) for k in keys]
        lines.append(f"| {name.replace('|', '&#124;')} | " + " | ".join(cells) + " |")
    cells = ["{seconds} s, CPU {cpu_seconds} s ({peak_rss_mb})".format(**results[k]["report"]) for k in keys]
    lines.append("| report playbook (one run) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| case | " + " | ".join(f"{k} CPU ms best / median" for k in keys) + " |")
    lines.append("|---|" + "---:|" * len(keys))
    for name in CASE_ORDER:
        cells = ["{cpu_min_ms} / {cpu_median_ms}".format(**results[k]["cases"][name]) for k in keys]
        lines.append(f"| {name.replace('|', '&#124;')} | " + " | ".join(cells) + " |")
    lines.append("")
    for k in keys:
        r = results[k]
        lines.append(
            f"- {k}: {r['connections']:,} connections ({r['unread_connections']:,} with unread data), "
            f"{r['workers']} holder processes, built in {r['setup_seconds']} s "
            f"(workers' CPU {r['setup_cpu_seconds_workers']} s), MemAvailable -{r['mem_used_mib']} MiB, "
            f"tcp_mem +{r['tcp_mem_pages_charged']} pages; sockets counted by states=true "
            f"{r['sockets_counted'].get('in-process states=true')}; load average {r['load_average_before']} "
            f"before, {r['load_average_after']} after; report (tcp_memory_diagnose: true): slowest tasks "
            f"{r['report']['slowest_tasks'][:3]}; facts steps as the report gives them (ms) "
            f"{json.dumps(r['report']['facts_elapsed_ms'])}"
        )
    lines.append(f"- host checks (read only): {json.dumps(checked)}")
    lines.append(f"- peak RSS measured with {'GNU time (the command alone)' if GNU_TIME else 'wait4 (upper bound)'}")
    lines.append("")
    for what, ok, detail in verdicts(results):
        lines.append(f"- {'met' if ok else 'NOT MET'}: {what}: {detail}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command")
    inside = sub.add_parser("measure")
    inside.add_argument("--runs", type=int, required=True)
    inside.add_argument("--target-python", required=True)
    module = sub.add_parser("module-worker")
    module.add_argument("args")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--unread-sizes", default="largest", help="sizes also measured with 5%% holding 16 KiB unread (or none)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target-python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "")
    parser.add_argument("--venv-bin", default=os.path.dirname(sys.executable))
    parser.add_argument("--json", default=os.path.join(ROOT, ".cache", "bench", "facts.json"))
    args = parser.parse_args(argv)

    if args.command == "module-worker":
        module_worker(json.loads(args.args))
        return 0
    if args.command == "measure":
        print(json.dumps(measure(args.runs, args.target_python)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    if args.unread_sizes == "largest":
        unread_sizes = [max(sizes)]
    elif args.unread_sizes in ("", "none"):
        unread_sizes = []
    else:
        unread_sizes = [int(s) for s in args.unread_sizes.split(",")]
    scenarios = [(size, "idle") for size in sizes] + [(size, "unread") for size in unread_sizes]
    target_python = args.target_python or sys.executable
    checked = preflight(scenarios)
    command = "benchmarks/facts_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"host: {os.uname().release}, {os.cpu_count()} CPUs; checks: {json.dumps(checked)}", flush=True)
    results = {}
    status = 0
    try:
        for size, shape in scenarios:
            key = f"{size}:{shape}"
            print(f"{key}: holding, then {args.runs} interleaved rounds ...", flush=True)
            results[key] = run_scenario(size, shape, args.runs, target_python, args.venv_bin)
            for name, case in results[key]["cases"].items():
                print(
                    f"  {name:34} best {case['min_ms']:9.2f} ms  median {case['median_ms']:9.2f} ms"
                    f"  cpu {case['cpu_min_ms']:9.2f} ms  peak {case['peak_rss_mb']:6.1f} MB",
                    flush=True,
                )
            print(f"  report playbook: {json.dumps(results[key]['report'])}", flush=True)
    finally:
        problems = leftovers(checked["tcp_alloc_before"])
        for problem in problems:
            print(f"LEFT BEHIND: {problem}", file=sys.stderr, flush=True)
        if not problems:
            print("clean-up checked: no namespace, process or socket of the benchmark left", flush=True)
    if results:
        report = markdown(results, checked, command)
        print("\n" + report)
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump({"kernel": os.uname().release, "checks": checked, "results": results}, handle, indent=2)
        print(f"\nraw figures: {args.json}")
    ok = results and all(met for _what, met, _detail in verdicts(results))
    return status if ok and not problems else 1


if __name__ == "__main__":
    sys.exit(main())

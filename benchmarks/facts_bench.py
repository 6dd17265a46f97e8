#!/usr/bin/env python
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark tcp_memory_facts at 10k/50k/100k established loopback connections against ss.

For each size: create a network namespace, hold N connections in it with
tests/tools/conn_holder.py (2N sockets, <= 15000 fds per process), then, inside the
namespace, time every case side by side, round after round (interleaved, so background
noise hits all cases alike), and report the median and the best (minimum) of the rounds. The
targets are judged on the best of both sides: on a shared host other load only ever adds time,
so the minimum is the figure least disturbed by it (what Python's timeit advises); the median
is printed next to it.

  module default            main() of the module, in-process (no interpreter start-up)
  module states=true        idem, with states: true
  module top_sockets=20     idem, with top_sockets: 20
  module connection_bytes=true  idem, states with byte sums (the full dump states used before issue 14)
  module calibrate=true     idem, with calibrate: true (reads at most calibrate_sample = 10000 sockets)
  module process default    the module file run as a process with no options: start-up and imports
  module process states     the module file run by the target Python as Ansible would run it
                            (python tcp_memory_facts.py ARGS.json): start-up included
  module AnsiballZ states   the AnsiballZ file Ansible sends a target (kept by ANSIBLE_KEEP_REMOTE_FILES),
                            run by the target Python: also unzips its payload and compiles ansible-core's
                            module_utils from source (not judged; the issue's target is the case above)
  ss -s                     the ss binary
  ss -tan state all | wc -l the pipeline the issue compares with
  naive /proc/net/tcp       readlines + split + count states of /proc/net/tcp{,6}, in-process

In-process cases run in one long-lived child per case that executes one run per request;
peak memory is each child's ru_maxrss from wait4() (getrusage(RUSAGE_CHILDREN) of that child
alone). The namespace and every process are cleaned up, also on failure or Ctrl-C.

Usage (as root; `make bench` runs benchmarks/run.sh .venv/bin, which calls this):
  facts_bench.py [--sizes 10000,50000,100000] [--runs 15] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
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
RUN_TIMEOUT = 120  # seconds, any single measured run
HOLD_SECONDS = 1800  # conn_holder stops by itself after this, whatever happens here
TARGET_DEFAULT_MS = 20
TARGET_PEAK_MB = 60
TARGET_STATES_PROCESS_OVER_SS = 0.25  # issue 14: states=true as a process vs the ss pipeline
TARGET_STATES_FLAT = 1.25  # issue 14: states=true as a process, largest size over smallest
# issue 17: calibrate=true reads at most calibrate_sample (10000) sockets: past that its cost stays flat
TARGET_CALIBRATE_FLAT = 1.25

MODULE_CASES = {
    "module default": {},
    "module states=true": {"states": True},
    "module top_sockets=20": {"top_sockets": 20},
    "module connection_bytes=true": {"states": True, "connection_bytes": True},
    "module calibrate=true": {"calibrate": True},
}
PROCESS_CASES = {
    "ss -s": ["ss", "-s"],
    "ss -tan state all | wc -l": ["sh", "-c", "ss -tan state all | wc -l"],
}
CASE_ORDER = [
    "module default",
    "module states=true",
    "module top_sockets=20",
    "module connection_bytes=true",
    "module calibrate=true",
    "module process default",
    "module process states=true",
    "module AnsiballZ states=true",
    "ss -s",
    "ss -tan state all | wc -l",
    "naive /proc/net/tcp parse",
]


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


def ansiballz_payload(collections: str, target_python: str, args: dict, workdir: str) -> str:
    """The AnsiballZ file Ansible sends a target to run the module with `args`.

    `ansible localhost -c local` runs the module once (read only) with ANSIBLE_KEEP_REMOTE_FILES=1, which
    keeps the file in ANSIBLE_REMOTE_TMP (`workdir`).
    """
    env = dict(os.environ, ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=workdir)
    env.update(ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_PIPELINING="0")
    env.pop("PYTHONPATH", None)
    command = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local"]
    command += ["-m", "netstack.tcp_tuning.tcp_memory_facts", "-a", json.dumps(args)]
    command += ["-e", f"ansible_python_interpreter={target_python}"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    found = glob.glob(os.path.join(workdir, "*", "AnsiballZ_tcp_memory_facts.py"))
    if out.returncode or len(found) != 1:
        raise RuntimeError(f"no AnsiballZ file from {command} (exit {out.returncode}): {out.stdout[-500:]}")
    return found[0]


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


def naive_worker() -> None:
    """What a quick script would do: read /proc/net/tcp{,6} whole, split lines, count states."""
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start, cpu_start = time.perf_counter(), time.process_time()
        states = {}
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(path) as handle:
                for row in handle.readlines()[1:]:
                    state = row.split()[3]
                    states[state] = states.get(state, 0) + 1
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        result = {"seconds": elapsed, "cpu_seconds": cpu, "sockets": sum(states.values())}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


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


def measure(runs: int, target_python: str) -> dict:
    me = [sys.executable, os.path.abspath(__file__)]
    workers = {name: Worker([*me, "module-worker", json.dumps(args)]) for name, args in MODULE_CASES.items()}
    workers["naive /proc/net/tcp parse"] = Worker([*me, "naive-worker"])
    args_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115 -- removed below
    json.dump({"ANSIBLE_MODULE_ARGS": {"states": True}}, args_file)
    args_file.close()
    default_args_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115 -- idem
    json.dump({"ANSIBLE_MODULE_ARGS": {}}, default_args_file)
    default_args_file.close()
    collections = _import_root()
    module_process = [target_python, MODULE_FILE, args_file.name]
    # start-up, imports and the default call: the floor of any module run as a process
    commands = dict(PROCESS_CASES, **{"module process default": [target_python, MODULE_FILE, default_args_file.name]})
    ansiballz_dir = tempfile.mkdtemp(prefix="facts-bench-ansiballz-")
    payload = ansiballz_payload(collections, target_python, {"states": True}, ansiballz_dir)
    # as on a target: the payload brings its own ansible and collection code, nothing on PYTHONPATH
    commands["module AnsiballZ states=true"] = ["env", "-u", "PYTHONPATH", target_python, payload]
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
                result = workers[name].run() if name in workers else run_process(commands.get(name, module_process))
                samples[name].append(result["seconds"])
                cpu_samples[name].append(result["cpu_seconds"])
        for name in CASE_ORDER:
            if name not in workers:
                peaks[name] = peak_of(commands.get(name, module_process))
    finally:
        for name, worker in workers.items():
            peaks[name] = worker.close()
        os.unlink(args_file.name)
        os.unlink(default_args_file.name)
        shutil.rmtree(collections, ignore_errors=True)
        shutil.rmtree(ansiballz_dir, ignore_errors=True)
    return {
        "cases": {
            name: {
                "median_ms": round(statistics.median(samples[name]) * 1000, 2),
                "min_ms": round(min(samples[name]) * 1000, 2),
                "max_ms": round(max(samples[name]) * 1000, 2),
                # CPU time (user + system, the kernel's walk included): less moved by other load than wall time
                "cpu_min_ms": round(min(cpu_samples[name]) * 1000, 2),
                "cpu_median_ms": round(statistics.median(cpu_samples[name]) * 1000, 2),
                "peak_rss_mb": round(peaks[name] / 1024, 1),
                "runs": len(samples[name]),
            }
            for name in CASE_ORDER
        },
        "sockets_counted": counted,
    }


# --- the orchestrator ------------------------------------------------------------------------------


def read_int(path: str) -> int:
    with open(path) as handle:
        return int(handle.read().split()[0])


def preflight(sizes) -> dict:
    """Check (read-only) that the host can hold the largest size; return what was checked."""
    if os.geteuid() != 0:
        raise SystemExit("facts_bench.py must run as root (it creates network namespaces)")
    for tool in ("ip", "ss"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} (iproute2) is needed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nr_open = read_int("/proc/sys/fs/nr_open")
    file_max = read_int("/proc/sys/fs/file-max")
    allocated = read_int("/proc/sys/fs/file-nr")
    needed = 2 * max(sizes) + 1000
    if hard < FDS_PER_WORKER:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is below {FDS_PER_WORKER} fds per worker")
    if needed > file_max - allocated:
        raise SystemExit(f"fs.file-max {file_max} (allocated {allocated}) cannot hold {needed} more fds")
    return {
        "rlimit_nofile": [soft, hard],
        "fs.nr_open": nr_open,
        "fs.file-max": file_max,
        "fds_allocated_before": allocated,
        "fds_needed": needed,
    }


def run_size(size: int, runs: int, target_python: str) -> dict:
    netns = f"ns-bench-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    holder = None
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        start = time.monotonic()
        holder = conn_holder.start_in_netns(
            netns,
            [
                "--connections",
                str(size),
                "--max-fds-per-worker",
                str(FDS_PER_WORKER),
                "--unread-every",
                "100",
                "--unread-bytes",
                "4096",
                "--hold-seconds",
                str(HOLD_SECONDS),
            ],
            timeout=600,
        )
        setup_seconds = time.monotonic() - start
        load_before = [round(load, 2) for load in os.getloadavg()]
        command = ["ip", "netns", "exec", netns, sys.executable, os.path.abspath(__file__), "measure"]
        command += ["--runs", str(runs), "--target-python", target_python]
        out = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT * runs * 10, check=False)
        if out.returncode:
            raise RuntimeError(f"measuring {size} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout)
        result.update(
            connections=holder.connections,
            setup_seconds=round(setup_seconds, 1),
            load_average_before=load_before,
            load_average_after=[round(load, 2) for load in os.getloadavg()],
        )
        return result
    finally:
        if holder is not None:
            holder.stop(timeout=300)
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False).stdout
        for pid in pids.split():  # anything left in our namespace is ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "delete", netns], check=False)


JUDGED_ON = "min_ms"  # best of the interleaved rounds, both sides of every comparison


def verdicts(results: dict) -> list:
    sizes = sorted(results, key=int)
    largest = {name: case[JUDGED_ON] for name, case in results[sizes[-1]]["cases"].items()}
    largest_peaks = {name: case["peak_rss_mb"] for name, case in results[sizes[-1]]["cases"].items()}
    defaults = [results[s]["cases"]["module default"][JUDGED_ON] for s in sizes]
    processes = [results[s]["cases"]["module process states=true"][JUDGED_ON] for s in sizes]
    calibrations = [results[s]["cases"]["module calibrate=true"][JUDGED_ON] for s in sizes]
    pipeline_ms = largest["ss -tan state all | wc -l"]
    process_peak = largest_peaks["module process states=true"]
    in_process_peak = max(largest_peaks[name] for name in MODULE_CASES)
    return [
        (
            f"default call under {TARGET_DEFAULT_MS} ms at {sizes[-1]} connections",
            defaults[-1] < TARGET_DEFAULT_MS,
            f"{defaults[-1]} ms",
        ),
        (
            "default call flat in N (largest / smallest < 1.5)",
            max(defaults) / min(defaults) < 1.5,
            " / ".join(f"{d} ms" for d in defaults),
        ),
        (
            "states=true no slower than `ss -tan state all | wc -l`",
            largest["module states=true"] <= pipeline_ms,
            f"{largest['module states=true']} ms vs {pipeline_ms} ms",
        ),
        (
            f"states=true as a process at most {TARGET_STATES_PROCESS_OVER_SS}x `ss -tan state all | wc -l`",
            processes[-1] <= TARGET_STATES_PROCESS_OVER_SS * pipeline_ms,
            f"{processes[-1]} ms vs {pipeline_ms} ms ({processes[-1] / pipeline_ms:.2f}x)",
        ),
        (
            f"states=true as a process flat in N (largest / smallest <= {TARGET_STATES_FLAT})",
            processes[-1] <= TARGET_STATES_FLAT * processes[0],
            " / ".join(f"{p} ms" for p in processes) + f" ({processes[-1] / processes[0]:.2f}x)",
        ),
        (
            "calibrate=true costs no more than states=true at the largest size",
            largest["module calibrate=true"] <= largest["module states=true"],
            f"{largest['module calibrate=true']} ms vs {largest['module states=true']} ms",
        ),
        (
            f"calibrate=true flat past calibrate_sample (largest / smallest <= {TARGET_CALIBRATE_FLAT})",
            calibrations[-1] <= TARGET_CALIBRATE_FLAT * calibrations[0],
            " / ".join(f"{c} ms" for c in calibrations),
        ),
        (
            f"peak memory of the module process under {TARGET_PEAK_MB} MB",
            process_peak < TARGET_PEAK_MB and in_process_peak < TARGET_PEAK_MB,
            f"{process_peak} MB as a process, {in_process_peak} MB in-process with ansible-core loaded",
        ),
    ]


def markdown(results: dict, checked: dict) -> str:
    sizes = sorted(results, key=int)
    lines = ["| case | " + " | ".join(f"{int(s):,} conn. best / median ms (peak MB)" for s in sizes) + " |"]
    lines.append("|---|" + "---:|" * len(sizes))
    for name in CASE_ORDER:
        cells = ["{min_ms} / {median_ms} ({peak_rss_mb})".format(**results[s]["cases"][name]) for s in sizes]
        lines.append(f"| {name.replace('|', '&#124;')} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| case | " + " | ".join(f"{int(s):,} conn. CPU ms best / median" for s in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    for name in CASE_ORDER:
        cells = ["{cpu_min_ms} / {cpu_median_ms}".format(**results[s]["cases"][name]) for s in sizes]
        lines.append(f"| {name.replace('|', '&#124;')} | " + " | ".join(cells) + " |")
    lines.append("")
    for s in sizes:
        counted = results[s]["sockets_counted"]
        lines.append(
            f"- {int(s):,} connections: setup {results[s]['setup_seconds']} s; sockets counted by "
            f"states=true {counted['module states=true']}, by the naive parse {counted['naive /proc/net/tcp parse']}; "
            f"load average {results[s]['load_average_before']} before, {results[s]['load_average_after']} after"
        )
    lines.append(f"- host checks (read only): {json.dumps(checked)}")
    lines.append(f"- peak RSS measured with {'GNU time (the command alone)' if GNU_TIME else 'wait4 (upper bound)'}")
    lines.append(f"- targets judged on the best of {results[sizes[0]]['cases']['module default']['runs']} rounds")
    lines.append("")
    for what, ok, detail in verdicts(results):
        lines.append(f"- {'PASS' if ok else 'FAIL'}: {what}: {detail}")
    ansiballz = [results[s]["cases"]["module AnsiballZ states=true"]["min_ms"] for s in sizes]
    pipeline = results[sizes[-1]]["cases"]["ss -tan state all | wc -l"]["min_ms"]
    lines.append(
        f"- info, AnsiballZ (not judged): states=true as Ansible runs it on a target {ansiballz[-1]} ms vs the "
        f"ss pipeline {pipeline} ms ({ansiballz[-1] / pipeline:.2f}x); "
        f"largest / smallest {ansiballz[-1] / ansiballz[0]:.2f}x"
    )
    cpu = [results[s]["cases"]["module process states=true"]["cpu_min_ms"] for s in sizes]
    pipeline_cpu = results[sizes[-1]]["cases"]["ss -tan state all | wc -l"]["cpu_min_ms"]
    lines.append(
        f"- info, CPU time (not judged): states=true as a process {cpu[-1]} ms vs the ss pipeline {pipeline_cpu} ms "
        f"({cpu[-1] / pipeline_cpu:.2f}x); largest / smallest {cpu[-1] / cpu[0]:.2f}x"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command")
    inside = sub.add_parser("measure")
    inside.add_argument("--runs", type=int, required=True)
    inside.add_argument("--target-python", required=True)
    module = sub.add_parser("module-worker")
    module.add_argument("args")
    sub.add_parser("naive-worker")
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--target-python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "")
    parser.add_argument("--json", default=os.path.join(ROOT, ".cache", "bench", "facts.json"))
    args = parser.parse_args(argv)

    if args.command == "module-worker":
        module_worker(json.loads(args.args))
        return 0
    if args.command == "naive-worker":
        naive_worker()
        return 0
    if args.command == "measure":
        print(json.dumps(measure(args.runs, args.target_python)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    target_python = args.target_python or sys.executable
    checked = preflight(sizes)
    print(f"host: {os.uname().release}, {os.cpu_count()} CPUs; checks: {json.dumps(checked)}", flush=True)
    results = {}
    for size in sizes:
        print(f"{size} connections: holding, then {args.runs} interleaved rounds ...", flush=True)
        results[str(size)] = run_size(size, args.runs, target_python)
        for name, case in results[str(size)]["cases"].items():
            print(
                f"  {name:28} best {case['min_ms']:9.2f} ms  median {case['median_ms']:9.2f} ms"
                f"  peak {case['peak_rss_mb']:6.1f} MB",
                flush=True,
            )
    report = markdown(results, checked)
    print("\n" + report)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump({"kernel": os.uname().release, "checks": checked, "results": results}, handle, indent=2)
    print(f"\nraw figures: {args.json}")
    return 0 if all(ok for _what, ok, _detail in verdicts(results)) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet: playbooks/report.yml against 20 podman container hosts with forks 10, seconds per host.

Starts N containers with tests/hosts/container.sh (privileged, --network none: never podman's
bridge network), then round after round runs the report playbook against all N hosts and, side by
side, against one of them (the fixed cost of a run), and reports medians: wall seconds for the
fleet, seconds per host (fleet wall / N) and the marginal seconds per extra host
((fleet - single) / (N - 1)). Every run must report every host (no failed or unreachable host, the
JSON report lists all N). The containers are removed at the end, also on failure, Ctrl-C or SIGTERM.

Usage (root, podman installed, `make devlink` done):
  fleet_report.py --venv-bin .venv/bin [--hosts 20] [--forks 10] [--runs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "role_cost"))
import bench_hosts as bh  # sibling helper, not an installed package

REPORT_PLAYBOOK = bh.ROOT / "playbooks" / "report.yml"
START_PARALLEL = 4  # podman run in parallel, kept low: the machine has 2 cores shared with others


def start_fleet(names: list[str], env: dict[str, str], started: list[str]) -> list[bh.TestHost]:
    """Start every container; `started` lists each name as soon as podman may have created it."""

    def start(name: str) -> bh.TestHost:
        started.append(name)
        return bh.start_container(name, env)

    with ThreadPoolExecutor(max_workers=START_PARALLEL) as pool:
        return list(pool.map(start, names))


def report_run(inventory: Path, report_dir: Path, args: argparse.Namespace, env: dict, expect_hosts: int) -> float:
    """One timed run of the report playbook; checks that every host was reported."""
    shutil.rmtree(report_dir, ignore_errors=True)
    extra = {"tcp_memory_connections": args.connections, "tcp_memory_report_dir": str(report_dir)}
    run = bh.run_playbook(REPORT_PLAYBOOK, inventory, extra, env, forks=args.forks)
    bh.require_ok(run, f"report.yml on {expect_hosts} hosts")
    report = json.loads((report_dir / "tcp-memory-report.json").read_text(encoding="utf-8"))
    reported = report["summary"]["hosts"]
    if len(reported) != expect_hosts or report["summary"]["without_data"]:
        raise bh.BenchError(f"report.yml reported {len(reported)} of {expect_hosts} hosts: {report['summary']}")
    return run.wall_s


def summarize(fleet_s: list[float], single_s: list[float], hosts: int) -> dict[str, Any]:
    per_round_marginal = [(f - s) / (hosts - 1) for f, s in zip(fleet_s, single_s)] if hosts > 1 else []
    return {
        "fleet_median_s": round(statistics.median(fleet_s), 2),
        "single_median_s": round(statistics.median(single_s), 2),
        "seconds_per_host_median": round(statistics.median(f / hosts for f in fleet_s), 3),
        "marginal_seconds_per_extra_host_median": round(statistics.median(per_round_marginal), 3)
        if per_round_marginal
        else None,
        "fleet_s": [round(x, 2) for x in fleet_s],
        "single_s": [round(x, 2) for x in single_s],
    }


def run_benchmark(args: argparse.Namespace, workdir: Path, base_env: dict, started: list[str]) -> dict[str, Any]:
    env = bh.ansible_env(base_env, workdir / "cp")
    env["BENCH_VENV_BIN"] = args.venv_bin
    names = [f"netstack-fleet-{os.getpid()}-{i:02d}" for i in range(args.hosts)]
    t0 = time.monotonic()
    hosts = start_fleet(names, base_env, started)
    print(f"started {len(hosts)} containers in {time.monotonic() - t0:.1f} s", flush=True)
    fleet_inventory = bh.write_inventory(workdir / "fleet.ini", hosts)
    single_inventory = bh.write_inventory(workdir / "single.ini", hosts[:1])
    # Untimed warm-up: controller-side caches (bytecode, collection loading) hit the first run only.
    report_run(single_inventory, workdir / "report", args, env, 1)
    fleet_s: list[float] = []
    single_s: list[float] = []
    for index in range(args.runs):
        fleet_s.append(report_run(fleet_inventory, workdir / "report", args, env, len(hosts)))
        single_s.append(report_run(single_inventory, workdir / "report", args, env, 1))
        print(f"round {index + 1}/{args.runs}: {len(hosts)} hosts {fleet_s[-1]:.2f} s, 1 host {single_s[-1]:.2f} s")
    return summarize(fleet_s, single_s, len(hosts))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--venv-bin", default=str(bh.ROOT / ".venv" / "bin"), help="where ansible-playbook is")
    parser.add_argument("--hosts", type=int, default=20, help="containers in the fleet")
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="rounds (fleet run + single-host run each)")
    parser.add_argument("--connections", type=int, default=100000, help="tcp_memory_connections")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.runs < 1 or args.forks < 1:
        parser.error("--hosts, --runs and --forks must be >= 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bh.raise_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="netstack-fleet-"))
    base_env = bh.host_env()
    started: list[str] = []
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        summary = run_benchmark(args, workdir, base_env, started)
    finally:
        # Exactly the containers this run started, never every labelled one (others' runs use the label).
        bh.remove_containers(started, base_env)
        shutil.rmtree(workdir, ignore_errors=True)
    document = {
        "started": started_at,
        "hosts": args.hosts,
        "forks": args.forks,
        "connections": args.connections,
        **summary,
    }
    print(
        f"report.yml, {args.hosts} container hosts, forks {args.forks}, median of {args.runs}: "
        f"{summary['fleet_median_s']:.2f} s = {summary['seconds_per_host_median']:.3f} s per host; "
        f"1 host {summary['single_median_s']:.2f} s; marginal {summary['marginal_seconds_per_extra_host_median']} s "
        "per extra host"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except bh.BenchError as exc:
        print(f"fleet_report.py: {exc}", file=sys.stderr)
        sys.exit(1)

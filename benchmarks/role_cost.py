#!/usr/bin/env python
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role cost per host: the tcp_memory role against one ansible.posix.sysctl task per key.

Against the same test host, a podman container and a QEMU VM, round after round:

  role      benchmarks/role_cost/role_apply.yml: the role measures, recommends and applies
            (first run), then the same play again (idempotent re-run);
  baseline  benchmarks/role_cost/baseline_posix_sysctl.yml: ansible.posix.sysctl per key with
            sysctl_file = the role's drop-in and reload: true, for exactly the keys and values the
            role writes on that host (first run, then re-run).

Before every first run the host is reset to the state recorded when it started (drop-in and its
backups removed, changed live values written back) and that state is checked, so both sides start
equal; after every first run the live values are checked against the settings, so both did the same
work. The two sides alternate order from round to round. Wall time is the ansible-playbook process
(start-up included); invocations are counted from the ansible.posix.json output (see bench_hosts).

Usage (root, podman and qemu installed, `make devlink` done):
  role_cost.py --venv-bin .venv/bin [--hosts container,vm] [--runs-container 5] [--runs-vm 3]
               [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "role_cost"))
import bench_hosts as bh  # sibling helper, not an installed package

# The working tree as ansible_collections.netstack.tcp_tuning (make devlink), as the role runs it.
sys.path.insert(0, str(bh.ROOT / ".cache" / "dev"))
# The twelve keys tcp_memory_facts reads: the reset restores any of them a run changed.
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.facts.proc import SYSCTL_KEYS

PLAYBOOKS = Path(__file__).resolve().parent / "role_cost"
ROLE_PLAYBOOK = PLAYBOOKS / "role_apply.yml"
BASELINE_PLAYBOOK = PLAYBOOKS / "baseline_posix_sysctl.yml"
PING_PLAYBOOK = PLAYBOOKS / "ping.yml"
DROPIN = "/etc/sysctl.d/99-netstack-tcp-memory.conf"
SIDES = ("role", "baseline")
PHASES = ("first", "rerun")
TARGET_RATIO = 0.5


def workload_vars(args: argparse.Namespace) -> dict[str, Any]:
    # A link (bandwidth x RTT) raises the tcp_rmem/tcp_wmem maxima above every kernel default, so the
    # first run changes live values on both kinds of host, not only the file.
    return {
        "tcp_memory_connections": args.connections,
        "tcp_memory_bandwidth_bps": args.bandwidth_bps,
        "tcp_memory_rtt_ms": args.rtt_ms,
    }


def normalize(value: str) -> str:
    return " ".join(value.split())


def read_state(host: bh.TestHost, env: dict[str, str]) -> dict[str, Any]:
    """Live values of the keys present on the host, and which drop-in files exist."""
    keys = " ".join(SYSCTL_KEYS)
    script = (
        f'for k in {keys}; do v=$(sysctl -n "$k" 2>/dev/null) && printf "%s=%s\\n" "$k" "$v"; done; '
        f'for f in {DROPIN} {DROPIN}.*~; do [ -e "$f" ] && printf \'file=%s\\n\' "$f"; done; true'
    )
    live: dict[str, str] = {}
    files: list[str] = []
    for line in bh.run_script(host, script, env).splitlines():
        name, _sep, value = line.partition("=")
        if name == "file":
            files.append(value)
        elif name:
            live[name] = normalize(value)
    return {"live": live, "files": sorted(files)}


def reset_host(host: bh.TestHost, original: dict[str, Any], env: dict[str, str]) -> None:
    """Remove the drop-in (and backups), write back live values that differ, check the result."""
    current = read_state(host, env)
    writes = [
        shlex.quote(f"{key}={value}") for key, value in original["live"].items() if current["live"].get(key) != value
    ]
    script = f"rm -f {DROPIN} {DROPIN}.*~"
    if writes:
        script += " && sysctl -q -w " + " ".join(writes)
    bh.run_script(host, script, env)
    after = read_state(host, env)
    if after != original:
        raise bh.BenchError(f"{host.name}: reset left {after}, expected {original}")


def settings_the_role_writes(host: bh.TestHost, inventory: Path, args: argparse.Namespace, env: dict) -> dict:
    """Dry-run the role (tcp_memory_apply: false) and keep the keys it would write: the baseline's input."""
    run = bh.run_playbook(ROLE_PLAYBOOK, inventory, {**workload_vars(args), "tcp_memory_apply": False}, env)
    bh.require_ok(run, f"{host.name}: role dry run")
    result = bh.find_fact(run.output, "tcp_memory_result")
    if result is None:
        raise bh.BenchError(f"{host.name}: the role set no tcp_memory_result")
    keys = result["apply"]["keys"]
    return {key: result["recommendation"]["sysctl"][key] for key, row in keys.items() if row["action"] != "skipped"}


def side_run(side: str, inventory: Path, settings: dict, args: argparse.Namespace, env: dict) -> bh.PlaybookRun:
    if side == "role":
        return bh.run_playbook(ROLE_PLAYBOOK, inventory, workload_vars(args), env)
    extra = {"bench_sysctl": settings, "bench_sysctl_file": DROPIN}
    return bh.run_playbook(BASELINE_PLAYBOOK, inventory, extra, env)


def check_applied(host: bh.TestHost, settings: dict[str, str], env: dict[str, str], what: str) -> None:
    state = read_state(host, env)
    live = state["live"]
    wrong = {k: (live.get(k), normalize(v)) for k, v in settings.items() if live.get(k) != normalize(v)}
    if wrong or DROPIN not in state["files"]:
        raise bh.BenchError(f"{what}: live (got, wanted) {wrong}, files {state['files']}")


def measure(run: bh.PlaybookRun, host: bh.TestHost) -> dict[str, Any]:
    stats = bh.play_stats(run.output).get(host.name, {})
    return {"wall_s": round(run.wall_s, 3), "changed": stats.get("changed", 0), **bh.count_invocations(run.output)}


def one_round(
    host: bh.TestHost, inventory: Path, original: dict, settings: dict, order: tuple[str, ...], args, env: dict
) -> dict[str, dict[str, Any]]:
    """Both sides, first run from the reset state then the re-run, in the given order; the ping reference."""
    ping = bh.run_playbook(PING_PLAYBOOK, inventory, {}, env)
    bh.require_ok(ping, f"{host.name}: ping")
    measured: dict[str, dict[str, Any]] = {"ping": measure(ping, host)}
    for side in order:
        reset_host(host, original, env)
        first = side_run(side, inventory, settings, args, env)
        bh.require_ok(first, f"{host.name}: {side} first run")
        check_applied(host, settings, env, f"{host.name}: after the {side} first run")
        rerun = side_run(side, inventory, settings, args, env)
        bh.require_ok(rerun, f"{host.name}: {side} re-run")
        measured[side] = {"first": measure(first, host), "rerun": measure(rerun, host)}
        if measured[side]["rerun"]["changed"]:
            raise bh.BenchError(f"{host.name}: the {side} re-run changed something: not idempotent")
    return measured


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for phase in PHASES:
        row: dict[str, Any] = {}
        for side in SIDES:
            walls = [r[side][phase]["wall_s"] for r in rounds]
            row[side] = {
                "median_s": round(statistics.median(walls), 2),
                "min_s": min(walls),
                "max_s": max(walls),
                "remote_modules": sorted({r[side][phase]["remote_modules"] for r in rounds}),
                "task_results": sorted({r[side][phase]["task_results"] for r in rounds}),
                "changed": sorted({r[side][phase]["changed"] for r in rounds}),
            }
        # Ratio per round (both sides measured back to back), then the median of those.
        ratios = [r["role"][phase]["wall_s"] / r["baseline"][phase]["wall_s"] for r in rounds]
        row["ratio_median"] = round(statistics.median(ratios), 3)
        row["ratios"] = [round(x, 3) for x in ratios]
        row["target_met"] = row["ratio_median"] <= TARGET_RATIO
        # The same ratio above the fixed cost of any run (a one-module ping play in the same round).
        net = [
            (r["role"][phase]["wall_s"] - r["ping"]["wall_s"]) / (r["baseline"][phase]["wall_s"] - r["ping"]["wall_s"])
            for r in rounds
        ]
        row["ratio_above_ping_median"] = round(statistics.median(net), 3)
        summary[phase] = row
    summary["ping_median_s"] = round(statistics.median(r["ping"]["wall_s"] for r in rounds), 2)
    return summary


def bench_host(host: bh.TestHost, runs: int, workdir: Path, args: argparse.Namespace, env: dict) -> dict[str, Any]:
    inventory = bh.write_inventory(workdir / f"{host.name}.ini", [host])
    original = read_state(host, env)
    if original["files"]:
        raise bh.BenchError(f"{host.name}: not a fresh host, found {original['files']}")
    # Untimed warm-up that also yields the baseline's input: controller caches, ssh master.
    settings = settings_the_role_writes(host, inventory, args, env)
    if read_state(host, env) != original:
        raise bh.BenchError(f"{host.name}: the role's dry run changed the host")
    live_changes = sorted(k for k, v in settings.items() if original["live"].get(k) != normalize(v))
    print(f"{host.name}: {len(settings)} keys written, {len(live_changes)} live changes: {live_changes}", flush=True)
    rounds = []
    for index in range(runs):
        order = SIDES if index % 2 == 0 else SIDES[::-1]
        rounds.append(one_round(host, inventory, original, settings, order, args, env))
        print(f"{host.name}: round {index + 1}/{runs} {json.dumps(rounds[-1])}", flush=True)
    reset_host(host, original, env)
    return {
        "host": host.kind,
        "settings": settings,
        "live_changes": live_changes,
        "rounds": rounds,
        "summary": summarize(rounds),
    }


def start_host(kind: str, name: str, args: argparse.Namespace, env: dict) -> bh.TestHost:
    if kind == "container":
        return bh.start_container(name, env)
    return bh.start_vm(name, args.vm_memory_mb, env)


def stop_host(kind: str, name: str, env: dict) -> None:
    if kind == "container":
        bh.remove_containers([name], env)
    else:
        bh.stop_vm(name, env)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| host | phase | role median s | baseline median s | role / baseline (median of rounds) "
        "| target <= 0.5 | ratio above ping | ping median s | module runs role / baseline "
        "| task results role / baseline |",
        "|---|---|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for kind, result in results.items():
        for phase in PHASES:
            row = result["summary"][phase]
            role, base = row["role"], row["baseline"]
            lines.append(
                f"| {kind} | {phase} | {role['median_s']:.2f} | {base['median_s']:.2f} | {row['ratio_median']:.2f} "
                f"| {'met' if row['target_met'] else 'NOT met'} | {row['ratio_above_ping_median']:.2f} "
                f"| {result['summary']['ping_median_s']:.2f} "
                f"| {'/'.join(map(str, role['remote_modules']))} / {'/'.join(map(str, base['remote_modules']))} "
                f"| {'/'.join(map(str, role['task_results']))} / {'/'.join(map(str, base['task_results']))} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--venv-bin", default=str(bh.ROOT / ".venv" / "bin"), help="where ansible-playbook is")
    parser.add_argument("--hosts", default="container,vm", help="comma list of container, vm")
    parser.add_argument("--runs-container", type=int, default=5, help="rounds against the container")
    parser.add_argument("--runs-vm", type=int, default=3, help="rounds against the VM (TCG: slow)")
    parser.add_argument("--vm-memory-mb", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=10000, help="tcp_memory_connections")
    parser.add_argument("--bandwidth-bps", type=int, default=10_000_000_000, help="tcp_memory_bandwidth_bps")
    parser.add_argument("--rtt-ms", type=float, default=50.0, help="tcp_memory_rtt_ms")
    parser.add_argument("--json", help="write every run's figures here")
    args = parser.parse_args(argv)
    args.kinds = [k for k in args.hosts.split(",") if k]
    if not set(args.kinds) <= {"container", "vm"} or min(args.runs_container, args.runs_vm) < 1:
        parser.error("--hosts takes container and/or vm; runs must be >= 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bh.raise_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="netstack-role-cost-"))
    base_env = bh.host_env(vms_dir=workdir / "vms")
    env = bh.ansible_env(base_env, workdir / "cp")
    env["BENCH_VENV_BIN"] = args.venv_bin
    results: dict[str, dict[str, Any]] = {}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        run_all(args, workdir, base_env, env, results)
    finally:
        # Only our own files: the ssh control sockets and inventories of this run.
        shutil.rmtree(workdir, ignore_errors=True)
    print(format_table(results))
    if args.json:
        document = {"started": started, "workload": workload_vars(args), "results": results}
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


def run_all(args: argparse.Namespace, workdir: Path, base_env: dict, env: dict, results: dict) -> None:
    """One host of each kind in turn, each removed again whatever happens."""
    for kind in args.kinds:
        # vm.sh names the QEMU process netstack-NAME itself.
        name = f"netstack-rc-container-{os.getpid()}" if kind == "container" else f"rc-vm-{os.getpid()}"
        runs = args.runs_container if kind == "container" else args.runs_vm

        def body(kind: str = kind, name: str = name, runs: int = runs) -> int:
            host = start_host(kind, name, args, base_env)
            results[kind] = bench_host(host, runs, workdir, args, env)
            return 0

        bh.with_cleanup(body, lambda kind=kind, name=name: stop_host(kind, name, base_env))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except bh.BenchError as exc:
        print(f"role_cost.py: {exc}", file=sys.stderr)
        sys.exit(1)

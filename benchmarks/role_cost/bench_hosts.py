# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by benchmarks/role_cost.py and benchmarks/fleet_report.py: test hosts and timed playbook runs.

Test hosts come from tests/hosts/ (container.sh: podman, --network none, never a bridge; vm.sh: QEMU
under TCG). Playbooks run with the ansible.posix.json stdout callback, so a run's task results can
be counted exactly (see count_invocations).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent.parent
HOSTS_DIR = ROOT / "tests" / "hosts"
CONTAINER_SH = HOSTS_DIR / "container.sh"
VM_SH = HOSTS_DIR / "vm.sh"
CONTAINERS_CONF = HOSTS_DIR / "containers.conf"
DEV_COLLECTIONS = ROOT / ".cache" / "dev"

# Actions that run on the controller only (action plugins without a remote module): they are task
# results but not module invocations on the host.
CONTROLLER_ACTIONS = frozenset(
    {
        "assert",
        "debug",
        "fail",
        "set_fact",
        "set_stats",
        "meta",
        "validate_argument_spec",
        "include_tasks",
        "include_role",
        "import_tasks",
        "import_role",
        "include_vars",
        "add_host",
        "group_by",
        "pause",
    }
)


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and why."""


@dataclass(frozen=True)
class TestHost:
    """One test host: how Ansible reaches it and how to run a shell script on it directly."""

    kind: str  # "container" or "vm"
    name: str
    inventory_vars: str  # the rest of the INI inventory line after the name
    shell_prefix: tuple[str, ...]  # argv prefix; the script is appended (see run_script)


@dataclass(frozen=True)
class PlaybookRun:
    """One timed ansible-playbook process and what its JSON output says."""

    wall_s: float
    returncode: int
    output: dict[str, Any]
    stderr: str


def raise_on_sigterm() -> None:
    """Turn SIGTERM (e.g. timeout(1)) into SystemExit so that `finally` blocks remove the hosts."""

    def _handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)


def host_env(vms_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Without the project's containers.conf podman fails on this kind of machine (runc, cgroupfs, ulimits).
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    if vms_dir is not None:
        # Our own VM directory: stopping our VMs can never stop another run's.
        env["NETSTACK_VMS_DIR"] = str(vms_dir)
    return env


def run_checked(argv: Sequence[str], env: dict[str, str], timeout_s: float) -> str:
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def start_container(name: str, env: dict[str, str]) -> TestHost:
    run_checked([str(CONTAINER_SH), "start", name], env, timeout_s=300)
    return TestHost(
        kind="container",
        name=name,
        inventory_vars="ansible_connection=containers.podman.podman ansible_python_interpreter=/usr/bin/python3",
        shell_prefix=(str(CONTAINER_SH), "exec", name, "sh", "-c"),
    )


def remove_containers(names: Iterable[str], env: dict[str, str]) -> None:
    """Remove exactly these containers (never stop-all: other runs' containers carry the same label)."""
    names = list(names)
    if names:
        subprocess.run(
            [str(CONTAINER_SH), "podman", "rm", "--force", "--time", "0", "--ignore", *names],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )


def start_vm(name: str, memory_mb: int, env: dict[str, str]) -> TestHost:
    # Boot under TCG takes ~25 s idle and minutes on a busy machine; vm.sh bounds its own wait.
    run_checked([str(VM_SH), "start", name, "--memory", str(memory_mb)], env, timeout_s=1500)
    info = json.loads(run_checked([str(VM_SH), "info", name], env, timeout_s=60))
    ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
    inventory_vars = (
        f"ansible_host={info['address']} ansible_port={info['port']} ansible_user={info['user']} "
        f"ansible_ssh_private_key_file={info['identity_file']} ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_ssh_common_args='{ssh_args}'"
    )
    # vm.sh ssh hands its arguments to ssh, which runs them through the guest's shell: one string.
    return TestHost(kind="vm", name=name, inventory_vars=inventory_vars, shell_prefix=(str(VM_SH), "ssh", name))


def stop_vm(name: str, env: dict[str, str]) -> None:
    subprocess.run([str(VM_SH), "stop", name], env=env, capture_output=True, timeout=120, check=False)


def run_script(host: TestHost, script: str, env: dict[str, str], timeout_s: float = 120) -> str:
    """Run a POSIX shell script on the host as root, outside Ansible (resets and state reads are not timed)."""
    return run_checked([*host.shell_prefix, script], env, timeout_s)


def write_inventory(path: Path, hosts: Iterable[TestHost], group: str = "bench") -> Path:
    lines = [f"[{group}]"] + [f"{h.name} {h.inventory_vars}" for h in hosts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ansible_env(base: dict[str, str], control_dir: Path) -> dict[str, str]:
    """The same Ansible settings for every side of a comparison."""
    if not (DEV_COLLECTIONS / "ansible_collections" / "netstack" / "tcp_tuning").exists():
        raise BenchError(f"{DEV_COLLECTIONS} does not hold the collection: run `make devlink` first")
    env = dict(base)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(DEV_COLLECTIONS),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            # Fewer ssh round trips per task (what the Molecule VM scenarios use too).
            "ANSIBLE_PIPELINING": "1",
            # One ssh master per VM for the whole benchmark: no run pays the ssh handshake and
            # another reuses it depending on how long the reset took. It exits with the VM.
            "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=900s",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        }
    )
    return env


def run_playbook(
    playbook: Path,
    inventory: Path,
    extra_vars: dict[str, Any],
    env: dict[str, str],
    forks: int | None = None,
    timeout_s: float = 1800,
) -> PlaybookRun:
    """Time one ansible-playbook process, start-up included (what an operator waits for)."""
    argv = [str(Path(env["BENCH_VENV_BIN"]) / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    argv += ["-e", json.dumps(extra_vars)]
    if forks is not None:
        argv += ["--forks", str(forks)]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    wall_s = time.monotonic() - start
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{shlex.join(argv)}: no JSON on stdout ({exc}); stderr: {proc.stderr[-2000:]}") from exc
    return PlaybookRun(wall_s=wall_s, returncode=proc.returncode, output=output, stderr=proc.stderr)


def host_results(output: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(task name, host, result) for every task result in an ansible.posix.json output."""
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                yield task["task"]["name"], host, result


def short_action(action: str) -> str:
    return action.rsplit(".", 1)[-1] if action.startswith("ansible.builtin.") or "." not in action else action


def executed_items(result: dict[str, Any]) -> int:
    """How many times a task result ran its action: loop items not skipped, or 1 unless skipped."""
    if "results" in result and isinstance(result["results"], list):
        return sum(1 for item in result["results"] if not item.get("skipped"))
    return 0 if result.get("skipped") else 1


def count_invocations(output: dict[str, Any], host: str | None = None) -> dict[str, int]:
    """Task results and module invocations on the hosts (controller-only actions excluded), per run."""
    task_results = 0
    remote_modules = 0
    for _task, result_host, result in host_results(output):
        if host is not None and result_host != host:
            continue
        runs = executed_items(result)
        task_results += runs
        if short_action(result.get("action", "")) not in CONTROLLER_ACTIONS:
            remote_modules += runs
    return {"task_results": task_results, "remote_modules": remote_modules}


def find_fact(output: dict[str, Any], fact: str) -> dict[str, Any] | None:
    for _task, _host, result in host_results(output):
        facts = result.get("ansible_facts") or {}
        if fact in facts:
            return facts[fact]
    return None


def play_stats(output: dict[str, Any]) -> dict[str, dict[str, int]]:
    return output.get("stats", {})


def require_ok(run: PlaybookRun, what: str) -> None:
    stats = play_stats(run.output)
    bad = {h: s for h, s in stats.items() if s.get("failures") or s.get("unreachable")}
    if run.returncode != 0 or bad or not stats:
        failed = [
            f"{task} on {host}: {result.get('msg', '')}"
            for task, host, result in host_results(run.output)
            if result.get("failed") or result.get("unreachable")
        ]
        raise BenchError(f"{what}: rc {run.returncode}, stats {stats}; {failed[:3]}; stderr: {run.stderr[-1500:]}")


def with_cleanup(body: Callable[[], int], cleanup: Callable[[], None]) -> int:
    """Run body, then cleanup whatever happened (exception, Ctrl-C, SIGTERM via raise_on_sigterm)."""
    try:
        return body()
    finally:
        cleanup()

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures for real-kernel tests: network namespaces, held connections, ad-hoc runs.

Everything a fixture starts it also stops, on success and on failure: namespaces are deleted
and the processes started in them are terminated (then killed) by their own PIDs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import conn_holder  # noqa: E402 -- the load generator's own client (start_in_netns, Holder)

# The target interpreter: the system Python, as on a managed host (modules are stdlib only).
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def real_kernel_ready() -> str:
    """Empty when this process can create namespaces, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None or shutil.which("ss") is None:
        return "needs iproute2 (ip, ss)"
    if not (VENV_BIN / "ansible").exists():
        return "needs ansible in the interpreter's bin directory"
    return ""


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> str:
    """A collections path where this checkout is netstack.tcp_tuning (no `make devlink` needed)."""
    base = tmp_path_factory.mktemp("collections")
    link = base / "ansible_collections" / "netstack" / "tcp_tuning"
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT)
    return str(base)


def _delete_netns(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout.split()
    for pid in pids:  # only processes started inside this fresh namespace, i.e. by this test
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


@pytest.fixture
def netns():
    """A fresh network namespace with loopback up, deleted afterwards whatever happens."""
    reason = real_kernel_ready()
    if reason:
        pytest.skip(reason)
    name = f"ns-facts-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        _delete_netns(name)


@pytest.fixture
def held_connections(netns):
    """Factory: hold connections in `netns`; every holder started is stopped at teardown."""
    holders = []

    def start(*arguments: str, timeout: float = 120) -> conn_holder.Holder:
        holder = conn_holder.start_in_netns(netns, arguments, timeout=timeout)
        holders.append(holder)
        return holder

    try:
        yield start
    finally:
        for holder in holders:
            holder.stop()


def ansible_env(collections: str, json_output: bool = False, **extra: str) -> Dict[str, str]:
    """The environment of an `ansible`/`ansible-playbook` run of this checkout: no colour, no warnings about
    localhost or the inventory, the target's Python; `json_output` for one JSON document on stdout."""
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_PYTHON_INTERPRETER=TARGET_PYTHON,
    )
    if json_output:
        env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    env.update(extra)
    return env


def in_netns(netns_name: Optional[str]) -> List[str]:
    """The command prefix that runs a command inside the namespace (none without one)."""
    return ["ip", "netns", "exec", netns_name] if netns_name else []


def localhost_result(completed: subprocess.CompletedProcess) -> dict:
    """The first task's result for localhost from a json stdout callback run."""
    try:
        report = json.loads(completed.stdout)
        return report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(
            f"ansible failed (rc {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        ) from None


def ansible_adhoc(
    module: str,
    args: dict,
    collections: str,
    netns_name=None,
    timeout: float = 300,
    wrapper: Sequence[str] = (),
    extra_vars: Optional[dict] = None,
    options: Sequence[str] = (),
) -> dict:
    """Run `ansible localhost -m module` as Ansible would (optionally inside a namespace, under `wrapper`,
    for example prlimit; `extra_vars` as one JSON -e; `options` such as --check). Returns the module's result
    for localhost from the json stdout callback."""
    command = in_netns(netns_name) + list(wrapper)
    command += [
        str(VENV_BIN / "ansible"),
        "localhost",
        "-c",
        "local",
        "-i",
        "localhost,",
        "-m",
        module,
        "-e",
        f"ansible_python_interpreter={TARGET_PYTHON}",
    ]
    if args:  # an empty '{}' would be taken for raw parameters
        command += ["-a", json.dumps(args)]
    if extra_vars is not None:
        command += ["-e", json.dumps(extra_vars)]
    command += list(options)
    env = ansible_env(collections, json_output=True)
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{module} did not finish in {timeout} s") from None
    return localhost_result(out)


def ansible_playbook(
    playbook: str,
    collections: str,
    extra_vars: Optional[dict] = None,
    netns_name: Optional[str] = None,
    options: Sequence[str] = (),
    timeout: float = 300,
    inventory: str = "localhost,",
) -> subprocess.CompletedProcess:
    """`ansible-playbook PLAYBOOK -i localhost, -c local` (a path or an FQCN such as netstack.tcp_tuning.tune),
    optionally inside a namespace; `extra_vars` as one JSON -e; `inventory` instead of localhost (cases_inventory)."""
    command = [*in_netns(netns_name), str(VENV_BIN / "ansible-playbook"), playbook, "-i", inventory, "-c", "local"]
    if extra_vars is not None:
        command += ["-e", json.dumps(extra_vars)]
    command += list(options)
    env = ansible_env(collections)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def ns_value(netns_name: str, key: str) -> str:
    """A sysctl's value as the namespace sees it, white space folded ("4096 131072 6291456")."""
    path = "/proc/sys/" + key.replace(".", "/")
    out = subprocess.run([*in_netns(netns_name), "cat", path], check=True, capture_output=True, text=True)
    return " ".join(out.stdout.split())


def ss_count(netns_name: str, state: str) -> int:
    """Sockets `ss -tanH state STATE` lists in the namespace."""
    out = subprocess.run(
        ["ip", "netns", "exec", netns_name, "ss", "-tanH", "state", state],
        capture_output=True,
        text=True,
        check=True,
    )
    return len([line for line in out.stdout.splitlines() if line.strip()])


@pytest.fixture
def run_ansible_module(collections_path):
    """Fixture form of ansible_adhoc with this checkout as the collection."""

    def run(module: str, args: dict, netns_name=None, timeout: float = 300) -> dict:
        return ansible_adhoc(module, args, collections_path, netns_name, timeout)

    return run


@pytest.fixture
def ss_state_count():
    """Fixture form of ss_count."""
    return ss_count


def dropin_root(base: Path) -> Path:
    """A host root for sysctl_dropin's `root` option: `proc` links to the real /proc (so proc/sys is the
    namespace's own for a module run inside one), etc/sysctl.d and usr/lib/sysctl.d are empty, and
    nothing else is there (no sysctl.conf, no tuned; the lock file goes under run/netstack-tcp-tuning)."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "proc").symlink_to("/proc")
    for directory in ("etc/sysctl.d", "usr/lib/sysctl.d"):
        (base / directory).mkdir(parents=True)
    return base


def render_report_template(template: Path, fleet: dict, tmp_path: Path, name: str, suffix: str = ".out") -> Path:
    """A report template rendered for __fleet = fleet (the report's JSON data) through ansible, as the report
    playbook renders it (a template lookup); the file written."""
    data = tmp_path / f"{name}.json"
    data.write_text(json.dumps(fleet))
    out = tmp_path / f"{name}{suffix}"
    playbook = tmp_path / f"render-{name}.yml"
    playbook.write_text(
        "- name: Render a report template\n"
        "  hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Render it\n"
        "      ansible.builtin.copy:\n"
        f"        content: \"{{{{ lookup('ansible.builtin.template', '{template}') }}}}\"\n"
        f"        dest: {out}\n"
        '        mode: "0644"\n'
        "      vars:\n"
        f"        __fleet: \"{{{{ lookup('ansible.builtin.file', '{data}') | from_json }}}}\"\n"
    )
    command = [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local"]
    command += ["-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


# A writer on a loopback connection whose peer never reads: run it in a namespace, it prints "writing" and then
# waits in sk_stream_wait_memory once both buffers are full.
BLOCKED_WRITER = r"""
import socket
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()  # never read: the writer fills both buffers, then waits for memory
print("writing", flush=True)
client.sendall(b"x" * (256 << 20))
"""


# One play of the role on every host of an inventory whose hosts are cases (cases_inventory): one ansible-playbook
# run shows several refusals, each host failing on its own (no any_errors_fatal, unlike the tune playbook).
ROLE_ON_EVERY_CASE = (
    "- name: The role, once per case (each host is a case)\n"
    "  hosts: all\n"
    "  gather_facts: false\n"
    "  roles:\n"
    "    - role: netstack.tcp_tuning.tcp_memory\n"
)


def cases_inventory(directory: Path, cases: Dict[str, dict], common: Optional[dict] = None) -> Dict[str, Path]:
    """An inventory (JSON, a YAML inventory) in `directory` where each case is a host, on the local connection, with
    `common` and its own variables as host variables (they override the role's defaults as -e would), and a playbook
    running the role on all of them. Returns {"inventory": path, "playbook": path}."""
    hosts = {name: {**(common or {}), **variables} for name, variables in cases.items()}
    inventory = directory / "cases.json"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": TARGET_PYTHON},
                    "hosts": hosts,
                }
            }
        )
    )
    playbook = directory / "role-on-every-case.yml"
    playbook.write_text(ROLE_ON_EVERY_CASE)
    return {"inventory": inventory, "playbook": playbook}


def case_failures(output: str, cases) -> Dict[str, str]:
    """What each case (host) failed with: its `fatal: [HOST]` lines joined. Every case must have failed exactly one
    task and changed nothing, by the play recap."""
    failures = {}
    for name in cases:
        recap = re.search(
            rf"^{re.escape(name)}\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", output, re.M
        )
        assert recap and recap.groups() == ("0", "1"), f"{name} did not fail once, changing nothing:\n{output}"
        fatal = [line for line in output.splitlines() if line.startswith(f"fatal: [{name}]")]
        assert fatal, f"no failure shown for {name}:\n{output}"
        failures[name] = "\n".join(fatal)
    return failures

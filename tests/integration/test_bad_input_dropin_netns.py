# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad-input matrix: the sysctl_dropin module (run by ansible as a module) and the
tcp_memory role, in a fresh network namespace with a private sysctl.d directory.

Every case must fail with an error that names the problem, and afterwards every readable file
under the namespace's /proc/sys/net and every entry of the private sysctl.d directory (type, mode,
owner, bytes) must be exactly as before.

The role runs with the private directory bind-mounted over /etc/sysctl.d in a mount namespace of
its own (unshare --mount), so the default roots apply and the host's /etc/sysctl.d is never seen.

NETSTACK_TEST_COLLECTIONS overrides the collections path, to run the matrix against another tree
(e.g. an older commit unpacked under .../ansible_collections/netstack/tcp_tuning).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import pytest
from conftest import ansible_adhoc, ansible_env, case_failures, cases_inventory, dropin_root

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # the ansible-core under test (make compat runs each release)
COLLECTIONS = os.environ.get("NETSTACK_TEST_COLLECTIONS", str(ROOT / ".cache/dev"))
MANAGED_LINE = "# Managed by netstack.tcp_tuning: do not edit, the next run overwrites this file."
# What `ansible localhost -m` costs around the module on this loaded 2-core machine: a bound, not a measurement.
ANSIBLE_OVERHEAD_SECONDS = 30
GOOD = {"net.ipv4.tcp_rmem": "4096 131072 7340032", "net.ipv4.tcp_wmem": "4096 32768 5242880"}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None,
    reason="needs root, iproute2 and util-linux unshare",
)

# Every readable sysctl of the namespace's network stack, as the kernel prints it.
READ_NET_SYSCTLS = r"""
import json, os
values = {}
for directory, _subdirs, names in os.walk("/proc/sys/net"):
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path) as handle:
                values[path] = handle.read()
        except OSError:
            pass
print(json.dumps(values))
"""


@pytest.fixture
def sysctl_d(tmp_path: Path) -> Path:
    """The private etc/sysctl.d of a host root (the module's option root; its proc is the real /proc), holding a
    file of another package as a real one would."""
    directory = dropin_root(tmp_path / "root") / "etc/sysctl.d"
    (directory / "10-vendor.conf").write_text("net.ipv4.tcp_syncookies = 1\n")
    return directory


def ns_sysctls(netns: str) -> Dict[str, str]:
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "/usr/bin/python3", "-c", READ_NET_SYSCTLS],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def tree(directory: Path) -> Dict[str, Any]:
    """Every entry below `directory`: mode (type and permissions), owner, and bytes or link target."""
    state = {}
    for entry in sorted(directory.rglob("*")):
        info = entry.lstat()
        content = os.readlink(entry) if entry.is_symlink() else entry.read_bytes() if entry.is_file() else None
        state[str(entry.relative_to(directory))] = (info.st_mode, info.st_uid, info.st_gid, content)
    return state


def env() -> Dict[str, str]:
    return ansible_env(COLLECTIONS)


def run_module(netns: str, args: Dict[str, Any], options: Sequence[str] = ()) -> Dict[str, Any]:
    """The module through `ansible -m` inside the namespace; its result as a dict, `failed` set. A run may
    take its lock_timeout plus the time ansible needs to start and stop, never more (a FIFO planted where
    a file is read must not hang it)."""
    bound_s = args.get("lock_timeout", 60) + ANSIBLE_OVERHEAD_SECONDS
    result = ansible_adhoc(
        "netstack.tcp_tuning.sysctl_dropin", args, COLLECTIONS, netns, timeout=bound_s, options=options
    )
    result["failed"] = bool(result.get("failed"))
    return result


def run_role(
    netns: str,
    sysctl_d: Path,
    extra_vars: Dict[str, Any],
    playbook: str = "netstack.tcp_tuning.tune",
    inventory: str = "localhost,",
) -> subprocess.CompletedProcess:
    """The tune playbook (or `playbook` on `inventory`) in the namespace, with `sysctl_d` mounted over /etc/sysctl.d
    for this process only."""
    command = ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "sh", "-c"]
    command += ['mount --bind "$0" /etc/sysctl.d && exec "$@"', str(sysctl_d)]
    command += [str(VENV_BIN / "ansible-playbook"), playbook, "-i", inventory, "-c", "local"]
    command += ["-e", json.dumps({"tcp_memory_connections": 1000, **extra_vars})]
    return subprocess.run(command, capture_output=True, text=True, env=env(), timeout=300, check=False)


def module_args(sysctl_d: Path, **args: Any) -> Dict[str, Any]:
    return {
        "path": str(sysctl_d / "99-netstack-tcp-memory.conf"),
        "settings": GOOD,
        "root": str(sysctl_d.parent.parent),
        "lock_timeout": 5,
        **args,
    }


def prepare(sysctl_d: Path, setup: Optional[str], foreign_name: str = "99-netstack-tcp-memory.conf") -> None:
    """Put what a case needs in place before the snapshot (the foreign file at the default path or `foreign_name`)."""
    if setup == "symlink":
        (sysctl_d / "real.conf").write_text(f"{MANAGED_LINE}\nnet.ipv4.tcp_rmem = 4096 131072 6291456\n")
        (sysctl_d / "99-netstack-tcp-memory.conf").symlink_to("real.conf")
    elif setup == "foreign":
        (sysctl_d / foreign_name).write_text("# the admin's own file\nvm.swappiness = 10\n")
    elif setup == "outside":
        (sysctl_d.parent / "other").mkdir()
        (sysctl_d.parent / "other/passwd2.conf").write_text("root:x:0:0:root:/root:/bin/sh\n")


# (case id, setup, module arguments given the private directory D, fragments the message must hold)
# Through ansible, in a namespace: a refused value (the JSON arguments as ansible passes them) and a key the
# namespace's kernel holds read-only. Every other refusal (values, keys, paths, links, roots, comments, later
# files) needs no kernel: tests/unit/plugins/modules/test_sysctl_dropin.py runs the module on a private root
# and checks the same messages and that nothing changed.
MODULE_CASES = [
    (
        "1-triple-out-of-order",
        None,
        lambda d: module_args(d, settings={"net.ipv4.tcp_rmem": "6291456 87380 4096"}),
        ["settings['net.ipv4.tcp_rmem'] = '6291456 87380 4096'", "ordered min <= default"],
    ),
    (
        "ok-global-key-read-only-here",
        None,
        lambda d: module_args(d, settings={**GOOD, "net.core.rmem_max": "7340032"}),
        ["net.core.rmem_max is read-only here"],
    ),
]


@pytest.mark.parametrize("setup, make_args, fragments", [c[1:] for c in MODULE_CASES], ids=[c[0] for c in MODULE_CASES])
def test_the_module_refuses_bad_input_and_changes_nothing(netns, sysctl_d, setup, make_args, fragments):
    prepare(sysctl_d, setup)
    sysctls_before, files_before = ns_sysctls(netns), tree(sysctl_d.parent)
    result = run_module(netns, make_args(sysctl_d))
    assert result["failed"], result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert tree(sysctl_d.parent) == files_before
    assert ns_sysctls(netns) == sysctls_before


def test_a_rolled_back_run_leaves_the_directory_and_the_namespace_as_they_were(netns, sysctl_d):
    """The backup of a failed run goes too. udp_rmem_min 0 passes the module's checks
    (one integer) but the kernel refuses it (minimum 1); the tcp_ keys sort first and are written."""
    dropin = sysctl_d / "99-netstack-tcp-memory.conf"
    dropin.write_text(f"{MANAGED_LINE}\nnet.ipv4.tcp_rmem = 4096 131072 6291456\n")
    dropin.chmod(0o640)
    sysctls_before, files_before = ns_sysctls(netns), tree(sysctl_d.parent)
    settings = {**GOOD, "net.ipv4.udp_rmem_min": "0"}
    result = run_module(netns, module_args(sysctl_d, settings=settings, backup=True))
    assert result["failed"] and "net.ipv4.udp_rmem_min: wrote '0', the kernel refused it" in result["msg"], result
    assert set(result["rollback"]["live"]) == {"net.ipv4.udp_rmem_min", *GOOD}
    assert tree(sysctl_d.parent) == files_before
    assert ns_sysctls(netns) == sysctls_before


def test_a_second_run_waits_for_the_lock_and_names_its_holder(netns, sysctl_d, tmp_path):
    """The message: the test holds the lock (under the host root, run/netstack-tcp-tuning) as another run would."""
    lock_directory = sysctl_d.parent.parent / "run/netstack-tcp-tuning"
    lock_directory.mkdir(mode=0o700, parents=True)
    fd = os.open(lock_directory / "sysctl_dropin.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"pid {os.getpid()} (this test)\n".encode())
        sysctls_before, files_before = ns_sysctls(netns), tree(sysctl_d)
        result = run_module(netns, module_args(sysctl_d, lock_timeout=2))
        assert result["failed"], result
        assert f"is still held after 2 s by pid {os.getpid()} (this test)" in result["msg"], result["msg"]
        assert tree(sysctl_d) == files_before and ns_sysctls(netns) == sysctls_before
    finally:
        os.close(fd)
    assert run_module(netns, module_args(sysctl_d, lock_timeout=2))["changed"]


# The role with its default roots: the module's refusal reaches the user naming the role's variable, and the
# default drop-in path planted as a link is refused before anything changes. The module's other path checks
# (not .conf, a directory, relative) are unit tests (tests/unit/plugins/modules/test_sysctl_dropin.py); an
# out-of-order override is refused by the filter (test_sysctl_dropin_netns.py, the role's bad-input test).
# All cases in one run of the role, one host each (conftest's cases_inventory), in one private sysctl.d: the
# foreign file is at a name of its own (the link is at the default path).
FOREIGN_FILE = "90-admin.conf"
ROLE_CASES = [
    (
        "8-outside-roots",
        "outside",
        lambda d: {"tcp_memory_sysctl_file": f"{d.parent}/other/passwd2.conf"},
        ["is not in the sysctl.d search roots", "tcp_memory_sysctl_file_force"],
    ),
    (
        "8-foreign-file",
        "foreign",
        lambda d: {"tcp_memory_sysctl_file": f"/etc/sysctl.d/{FOREIGN_FILE}"},
        ["was not written by this collection", "tcp_memory_sysctl_file_force"],
    ),
    ("6-symlink", "symlink", lambda d: {}, ["is a symbolic link (to real.conf)"]),
]


def test_the_role_refuses_bad_paths_and_changes_nothing(netns, sysctl_d, tmp_path):
    for _case, setup, _make_vars, _fragments in ROLE_CASES:
        prepare(sysctl_d, setup, foreign_name=FOREIGN_FILE)
    sysctls_before, files_before = ns_sysctls(netns), tree(sysctl_d.parent)
    cases = {case: make_vars(sysctl_d) for case, _setup, make_vars, _fragments in ROLE_CASES}
    run = cases_inventory(tmp_path, cases)
    out = run_role(netns, sysctl_d, {}, playbook=str(run["playbook"]), inventory=str(run["inventory"]))
    output = out.stdout + out.stderr
    assert out.returncode != 0, output
    failures = case_failures(output, cases)
    for case, _setup, _make_vars, fragments in ROLE_CASES:
        for fragment in fragments:
            assert fragment in failures[case], (case, output)
    assert tree(sysctl_d.parent) == files_before
    assert ns_sysctls(netns) == sysctls_before


def test_the_role_replaces_a_foreign_file_when_forced(netns, sysctl_d):
    prepare(sysctl_d, "foreign")
    out = run_role(netns, sysctl_d, {"tcp_memory_sysctl_file_force": True, "tcp_memory_backup": False})
    assert out.returncode == 0, out.stdout + out.stderr
    assert (sysctl_d / "99-netstack-tcp-memory.conf").read_text().startswith(MANAGED_LINE)


def planted(tmp_path: Path, kind: str) -> Path:
    """A file outside the host root that a key read from a file must never reach: regular or a FIFO."""
    target = tmp_path / f"planted-{kind}"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.write_text("secret of another file\n")
    return target


def files_and_fifos(paths) -> Dict[str, Any]:
    return {str(path): path.read_bytes() if path.is_file() else path.lstat().st_mode for path in paths}


# (case id, planted kind, drop-in text given the planted target, state, fragments the message must hold)
UNDO_CASES = [
    # A drop-in line net/../<absolute path> became the path //<absolute path>: read (in check mode too), then
    # overwritten with a value from another file; a FIFO there hung the run.
    (
        "1-undo-key-traversal",
        "file",
        lambda target: f"{MANAGED_LINE}\nnet/..{target} = 1\n{GOOD_LINE}",
        "absent",
        ["refusing to remove the drop-in, nothing was changed", "line 2: key 'net.//", "is not a dotted sysctl name"],
    ),
    (
        "1-undo-key-traversal-fifo",
        "fifo",
        lambda target: f"{MANAGED_LINE}\nnet/..{target} = 1\n{GOOD_LINE}",
        "absent",
        ["line 2: key 'net.//", "is not a dotted sysctl name"],
    ),
    (
        "1-present-record-traversal",
        "file",
        lambda target: f"{MANAGED_LINE}\n{RECORD}net/..{target} = 1\n{GOOD_LINE}",
        "present",
        ["refusing the drop-in, nothing was changed", "line 2 (# before netstack.tcp_tuning: net.//"],
    ),
    # A reversed triple recorded as the previous value was written to the kernel, which stores it.
    (
        "2-undo-record-reversed-triple",
        "file",
        lambda target: f"{MANAGED_LINE}\n{RECORD}net.ipv4.tcp_rmem = 6291456 87380 4096\n{GOOD_LINE}",
        "absent",
        ["line 2 (# before netstack.tcp_tuning: net.ipv4.tcp_rmem = 6291456 87380 4096)", "ordered min <= default"],
    ),
    (
        "2-undo-duplicate-records",
        "file",
        lambda target: (
            f"{MANAGED_LINE}\n{RECORD}net.ipv4.tcp_rmem = 4096 87380 6291456\n"
            f"{RECORD}net.ipv4.tcp_rmem = 4096 131072 6291456\n{GOOD_LINE}"
        ),
        "absent",
        ["line 3", "a second record for net.ipv4.tcp_rmem (the first is line 2)"],
    ),
]
RECORD = "# before netstack.tcp_tuning: "
GOOD_LINE = "net.ipv4.tcp_rmem = 4096 131072 7340032\n"


# The module once per case and mode, in one playbook run: each host is a case with its own host root (the module's
# option root) and planted target; its task's arguments are the case's, as JSON values.
MODULE_ON_EVERY_CASE = """- name: sysctl_dropin, once per case (each host is a case)
  hosts: all
  gather_facts: false
  tasks:
    - name: The case's arguments
      netstack.tcp_tuning.sysctl_dropin:
        path: "{{ case_args.path }}"
        state: "{{ case_args.state }}"
        settings: "{{ case_args.settings }}"
        root: "{{ case_args.root }}"
        lock_timeout: "{{ case_args.lock_timeout }}"
      check_mode: "{{ case_check }}"
"""


def test_keys_and_records_read_from_the_dropin_are_checked_as_settings(netns, tmp_path):
    """Every case of UNDO_CASES, run and in check mode, one host each of one playbook run (the 10 ran one
    ansible each): each fails naming the line, shows no byte of the planted file, and leaves it, its host root's
    files and the namespace's sysctls as they were."""
    cases, snapshots = {}, {}
    for case, kind, make_text, state, _fragments in UNDO_CASES:
        for check_mode in (False, True):
            name = f"{case}-{'check' if check_mode else 'run'}"
            sysctl_d = dropin_root(tmp_path / name / "root") / "etc/sysctl.d"
            (sysctl_d / "10-vendor.conf").write_text("net.ipv4.tcp_syncookies = 1\n")
            target = planted(tmp_path / name, kind)
            (sysctl_d / "99-netstack-tcp-memory.conf").write_text(make_text(target))
            # Another package's file that sets the same traversal key: its value must not be taken either.
            host_root = sysctl_d.parent.parent
            (host_root / "usr/lib/sysctl.d/50-other.conf").write_text(f"net/..{target} = 2\n")
            snapshots[name] = (tree(host_root / "etc"), tree(host_root / "usr"), files_and_fifos([target]))
            args = module_args(sysctl_d, state=state)
            if state == "absent":
                args["settings"] = None
            cases[name] = {"case_args": args, "case_check": check_mode}
    sysctls_before = ns_sysctls(netns)
    run = cases_inventory(tmp_path, cases)
    playbook = tmp_path / "module-on-every-case.yml"
    playbook.write_text(MODULE_ON_EVERY_CASE)
    command = ["ip", "netns", "exec", netns, str(VENV_BIN / "ansible-playbook"), str(playbook)]
    command += ["-i", str(run["inventory"]), "-f", str(len(cases))]
    # Every case at once: the bound of one run (a FIFO planted where a file is read must not hang it).
    bound_s = 5 + 3 * ANSIBLE_OVERHEAD_SECONDS
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=ansible_env(COLLECTIONS, json_output=True),
        timeout=bound_s,
        check=False,
    )
    try:
        results = json.loads(completed.stdout)["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(
            f"ansible failed (rc {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        ) from None
    for case, kind, _make_text, _state, fragments in UNDO_CASES:
        for mode in ("run", "check"):
            name = f"{case}-{mode}"
            result = results[name]
            assert result.get("failed"), (name, result)
            for fragment in fragments:
                assert fragment in result["msg"], (name, result["msg"])
            assert "secret" not in json.dumps(result), name
            host_root = tmp_path / name / "root"
            target = tmp_path / name / f"planted-{kind}"
            after = (tree(host_root / "etc"), tree(host_root / "usr"), files_and_fifos([target]))
            assert after == snapshots[name], name
    assert ns_sysctls(netns) == sysctls_before


# Run as `nobody` in the test's mount namespace, on a private tmpfs over /run with /run/lock 1777 as Debian has it:
# everything an unprivileged user can plant where the lock lived or lives. The host's fs.protected_* settings stay
# as they are (read, never changed): with protected_hardlinks=1 the hard link fails, which is fine.
ATTACKER_PLANTS = r"""
cd /run/lock
echo "pid 1 (the attacker's text)" > netstack-tcp-memory.lock
ln -s /etc/sysctl.d/99-netstack-tcp-memory.conf netstack-tcp-memory.lock.link
ln /etc/sysctl.d/10-vendor.conf netstack-tcp-memory.lock.hard
mkfifo netstack-tcp-memory.fifo
mkdir /run/netstack-tcp-tuning
ln -s /etc/sysctl.d /run/netstack-tcp-tuning
"""


def attacker_wrapper(sysctl_d: Path) -> list:
    """unshare -m: tmpfs over /run, the private sysctl.d over /etc/sysctl.d, `nobody` plants and holds a flock on
    the old lock path for the whole run, then the command ("$@") runs as root with the default root /."""
    nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    # The holder is one process (sh execs sleep with the locked descriptor 9), killed by its pid after the run.
    hold = "exec 9>>/run/lock/netstack-tcp-memory.lock && flock 9 && exec sleep 300"
    script = f"""
mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 1777 /run/lock
mount --bind {shlex.quote(str(sysctl_d))} /etc/sysctl.d
{nobody} sh -c {shlex.quote(ATTACKER_PLANTS)} >/dev/null 2>&1
{nobody} sh -c {shlex.quote(hold)} </dev/null >/dev/null 2>&1 &
holder=$!
sleep 1
"$@"; status=$?
kill "$holder"
exit "$status"
"""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_an_unprivileged_user_cannot_hold_or_redirect_the_lock(netns, sysctl_d, check_mode):
    """The lock was /run/lock/netstack-tcp-memory.lock, in a world-writable directory: any user could hold it
    (every run waited lock_timeout, then failed quoting the user's text) or plant a link root truncated."""
    vendor_before = (sysctl_d / "10-vendor.conf").read_bytes()
    args = {"path": "/etc/sysctl.d/99-netstack-tcp-memory.conf", "settings": GOOD, "lock_timeout": 5}
    result = ansible_adhoc(
        "netstack.tcp_tuning.sysctl_dropin",
        args,
        COLLECTIONS,
        netns,
        timeout=args["lock_timeout"] + ANSIBLE_OVERHEAD_SECONDS,
        wrapper=attacker_wrapper(sysctl_d),
        options=["--check"] if check_mode else [],
    )
    assert not result.get("failed"), result.get("msg", result)
    assert result["changed"] and result["file_changed"] is not check_mode, result
    assert (sysctl_d / "10-vendor.conf").read_bytes() == vendor_before
    dropin = sysctl_d / "99-netstack-tcp-memory.conf"
    assert dropin.exists() is not check_mode
    if not check_mode:
        assert "net.ipv4.tcp_rmem = 4096 131072 7340032" in dropin.read_text()


# A script dumping a directory (type, mode, owner, bytes) as JSON, run inside the mount namespace where the
# directory is a tmpfs the test cannot see from outside.
DUMP_DIRECTORY = r"""
import json, os, sys
state = {}
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    info = os.lstat(path)
    data = open(path, "rb").read().hex() if os.path.isfile(path) and not os.path.islink(path) else None
    state[name] = [info.st_mode, info.st_uid, info.st_gid, data]
print(json.dumps(state))
"""


def full_or_read_only_wrapper(sysctl_d: Path, kind: str, dumps: Path) -> list:
    """unshare -m: the sysctl.d directory becomes a full tmpfs holding copies of its files, or a read-only bind
    mount of itself; its state is dumped before and after the command."""
    directory = shlex.quote(str(sysctl_d))
    if kind == "full":
        setup = f"""mkdir -p {shlex.quote(str(dumps))}/copy
cp -a {directory}/. {shlex.quote(str(dumps))}/copy/
mount -t tmpfs -o size=64k,mode=0755 tmpfs {directory} && cp -a {shlex.quote(str(dumps))}/copy/. {directory}/
dd if=/dev/zero of={directory}/.fill bs=1k >/dev/null 2>&1 || true"""
    else:
        setup = f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory}"
    dump = f"/usr/bin/python3 -c {shlex.quote(DUMP_DIRECTORY)} {directory}"
    script = f"""{setup}
{dump} > {shlex.quote(str(dumps))}/before.json
"$@"; status=$?
{dump} > {shlex.quote(str(dumps))}/after.json
exit "$status"
"""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


@pytest.mark.parametrize("kind, reason", [("full", "no space left on the file system"), ("ro", "read-only")])
@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_full_or_read_only_sysctl_d_says_so_and_reports_nothing_changed(
    netns, sysctl_d, tmp_path, kind, reason, state
):
    """It said "RESTORE FAILED" with file_changed and changed true, the old file being byte-identical."""
    if kind == "full" and state == "absent":
        pytest.skip("removing a file needs no space")
    dropin = sysctl_d / "99-netstack-tcp-memory.conf"
    dropin.write_text(f"{MANAGED_LINE}\nnet.ipv4.tcp_rmem = 4096 131072 6291456\n")
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    sysctls_before = ns_sysctls(netns)
    args = module_args(sysctl_d, backup=True)
    if state == "absent":
        args.update(state="absent", settings={"net.ipv4.tcp_wmem": "4096 32768 5242880"})
    result = ansible_adhoc(
        "netstack.tcp_tuning.sysctl_dropin",
        args,
        COLLECTIONS,
        netns,
        timeout=args["lock_timeout"] + ANSIBLE_OVERHEAD_SECONDS,
        wrapper=full_or_read_only_wrapper(sysctl_d, kind, dumps),
    )
    assert result.get("failed"), result
    assert reason in result["msg"] and result["msg"].endswith("nothing was changed"), result["msg"]
    assert "RESTORE FAILED" not in result["msg"] and not result["changed"] and not result["file_changed"]
    assert json.loads((dumps / "after.json").read_text()) == json.loads((dumps / "before.json").read_text())
    assert ns_sysctls(netns) == sysctls_before

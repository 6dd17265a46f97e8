# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's node_exporter textfile (tcp_memory_textfile_dir), written by a real run of the role
inside a network namespace this test creates (what a container sees: tcp_mem absent, net.core.*
read-only), checked with promtool and read back against the facts and recommendation the role used.

Only per-namespace keys are written, and only inside the namespace (see conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import pytest
from conftest import VENV_BIN, ansible_env, ansible_playbook, case_failures, cases_inventory, in_netns, ns_value

ROOT = Path(__file__).resolve().parents[2]
TEXTFILE = "netstack_tcp_memory.prom"
PROM_TEMPLATE = ROOT / "roles" / "tcp_memory" / "templates" / "tcp_memory.prom.j2"
WANTED_RMEM = "4096 131072 9437184"
CHANGED_RMEM = "4096 131072 10485760"
# A run that hangs (on a FIFO, say) fails the test instead of blocking it.
RUN_TIMEOUT_SECONDS = 240
NOBODY_UID = 65534


def promtool() -> str:
    binary = shutil.which("promtool")
    # Not a skip: `make test` installs it (tests/hosts/install-deps.sh, Debian package prometheus).
    assert binary, "promtool is not installed: run tests/hosts/install-deps.sh (Debian package prometheus)"
    return binary


def promtool_check(path: Path) -> None:
    """`promtool check metrics` reads the exposition format on stdin and lints names, HELP and TYPE."""
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=path.read_text(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def samples(path: Path) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """(metric name, sorted labels) -> value, from a text-format file without timestamps."""
    values = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        assert match, f"not a sample line: {line!r}"
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")))
        values[(match.group(1), labels)] = float(match.group(3))
    return values


def tcp_mem(series: str, threshold: str) -> Tuple[str, Tuple[Tuple[str, str], ...]]:
    """The key of a tcp_mem threshold sample; `series` is at_last_apply or recommended."""
    return (f"netstack_tcp_memory_tcp_mem_{series}_bytes", (("threshold", threshold),))


def metric_names(path: Path) -> set:
    return {name for name, _labels in samples(path)}


def galaxy_version() -> str:
    return re.search(r"^version: *(\S+)", (ROOT / "galaxy.yml").read_text(), re.M).group(1)


def run_role(
    netns: str,
    collections: str,
    tmp_path: Path,
    extra: Dict[str, Any],
    check: bool = False,
    options: Sequence[str] = (),
    read_only_dir: Optional[str] = None,
):
    """The role in the namespace; returns (rc, output, tcp_memory_result or None). `read_only_dir`: a read-only
    tmpfs is mounted over that directory for this run only (in the run's own mount namespace, which
    `ip netns exec` makes a slave of the host's, so the host never sees it)."""
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    playbook = tmp_path / "role.yml"
    playbook.write_text(
        "- name: Apply the role\n"
        "  hosts: localhost\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: netstack.tcp_tuning.tcp_memory\n"
        "  post_tasks:\n"
        "    - name: Keep the role's result\n"
        "      ansible.builtin.copy:\n"
        "        content: '{{ tcp_memory_result | to_json }}'\n"
        f"        dest: {result_file}\n"
        '        mode: "0600"\n'
        "      check_mode: false\n"
        "      changed_when: false\n"
    )
    options = [*options, *(["--check"] if check else [])]
    try:
        out = run_playbook(netns, collections, playbook, extra, options, read_only_dir)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the role did not finish in {RUN_TIMEOUT_SECONDS} s: it hangs") from None
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return out.returncode, out.stdout + out.stderr, result


def run_playbook(
    netns: str,
    collections: str,
    playbook: Path,
    extra: Dict[str, Any],
    options: Sequence[str],
    read_only_dir: Optional[str],
) -> subprocess.CompletedProcess:
    if read_only_dir is None:
        return ansible_playbook(str(playbook), collections, extra, netns, options=options, timeout=RUN_TIMEOUT_SECONDS)
    mount_then_run = 'mount -t tmpfs -o ro,mode=0755 netstack-ro "$0" && exec "$@"'
    command = [*in_netns(netns), "sh", "-c", mount_then_run, read_only_dir, str(VENV_BIN / "ansible-playbook")]
    command += [str(playbook), "-i", "localhost,", "-c", "local", "-e", json.dumps(extra), *options]
    env = ansible_env(collections)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_SECONDS, check=False)


def recap_changed(output: str) -> int:
    return int(re.search(r"localhost\s+:.*changed=(\d+)", output).group(1))


@pytest.fixture
def role_vars(tmp_path) -> Dict[str, Any]:
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    return {
        "tcp_memory_connections": 1000,
        "tcp_memory_sysctl_file": str(tmp_path / "99-netstack-tcp-memory.conf"),
        # A private directory outside the sysctl.d roots: refused unless forced.
        "tcp_memory_sysctl_file_force": True,
        "tcp_memory_overrides": {"net.ipv4.tcp_rmem": WANTED_RMEM},
        "tcp_memory_textfile_dir": str(textfile_dir),
    }


BAD_TEXTFILE_DIRS = {
    "relative": ("relative/dir", "tcp_memory_textfile_dir must be an absolute path, got relative/dir"),
    "missing": (
        "/nonexistent/netstack-textfile",
        "tcp_memory_textfile_dir=/nonexistent/netstack-textfile is not a directory",
    ),
}


def test_bad_textfile_dir_fails_naming_it_before_anything_changes(netns, collections_path, tmp_path, role_vars):
    """Both cases in one run of the role, one host each (conftest's cases_inventory)."""
    before = ns_value(netns, "net.ipv4.tcp_rmem")
    cases = {
        case: {**role_vars, "tcp_memory_textfile_dir": directory}
        for case, (directory, _message) in BAD_TEXTFILE_DIRS.items()
    }
    run = cases_inventory(tmp_path, cases)
    out = ansible_playbook(
        str(run["playbook"]),
        collections_path,
        netns_name=netns,
        timeout=RUN_TIMEOUT_SECONDS,
        inventory=str(run["inventory"]),
    )
    output = out.stdout + out.stderr
    assert out.returncode != 0, output
    failures = case_failures(output, cases)
    for case, (_directory, message) in BAD_TEXTFILE_DIRS.items():
        assert message in failures[case], (case, output)
    assert ns_value(netns, "net.ipv4.tcp_rmem") == before
    assert not Path(role_vars["tcp_memory_sysctl_file"]).exists()


@pytest.fixture
def others_dir() -> Iterator[Path]:
    """A textfile directory as Debian ships node_exporter's: owned by another user (here `nobody`), not sticky, on
    a path that user can reach (pytest's tmp_path is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="netstack-textfile-", dir="/tmp"))
    try:
        base.chmod(0o755)
        directory = base / "node-exporter"
        directory.mkdir()
        directory.chmod(0o755)
        os.chown(directory, NOBODY_UID, NOBODY_UID)
        yield directory
    finally:
        shutil.rmtree(base)


def as_nobody(*command: str) -> None:
    """The planting step, as the unprivileged user that owns the directory."""
    ids = [f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups"]
    subprocess.run(["setpriv", *ids, "--", *command], check=True, capture_output=True)


def test_textfile_after_apply_matches_the_facts_and_a_refused_run_changes_nothing(
    netns, collections_path, tmp_path, role_vars, others_dir
):
    """One namespace, one textfile directory as Debian ships node_exporter's (owned by `nobody`), runs in turn:
    check mode and tcp_memory_apply=false write nothing; an apply writes a file promtool accepts that matches the
    facts and the recommendation; an unchanged rerun keeps it, apply time included; a changed run records a new
    apply time. Then three runs that must fail before the drop-in or the kernel is touched: the directory
    read-only, then the owner's link to a root-only file and then a FIFO planted at the textfile."""
    role_vars = {**role_vars, "tcp_memory_textfile_dir": str(others_dir)}
    textfile = others_dir / TEXTFILE

    # Check mode and report-only runs write nothing.
    rc, output, _result = run_role(netns, collections_path, tmp_path, role_vars, check=True)
    assert rc == 0, output
    rc, output, _result = run_role(netns, collections_path, tmp_path, {**role_vars, "tcp_memory_apply": False})
    assert rc == 0, output
    assert not textfile.exists() and not list(textfile.parent.iterdir())

    started = int(time.time())
    rc, output, result = run_role(netns, collections_path, tmp_path, role_vars)
    assert rc == 0, output
    assert ns_value(netns, "net.ipv4.tcp_rmem") == WANTED_RMEM
    assert textfile.is_file() and not textfile.is_symlink()
    promtool_check(textfile)
    values = samples(textfile)
    # Only the file itself in the directory: the temporary file was renamed, not left behind.
    assert [p.name for p in textfile.parent.iterdir()] == [TEXTFILE]
    assert oct(textfile.stat().st_mode & 0o777) == "0o644"

    facts, recommendation = result["facts"], result["recommendation"]
    page_bytes = facts["page_size_bytes"]
    # One prefix, every size in bytes.
    assert all(name.startswith("netstack_tcp_memory_") for name in metric_names(textfile))
    info = {
        "collection_version": galaxy_version(),
        "profile": "balanced",
        "dropin_path": role_vars["tcp_memory_sysctl_file"],
    }
    assert values[("netstack_tcp_memory_info", tuple(sorted(info.items())))] == 1
    recommended = [int(n) for n in recommendation["sysctl"]["net.ipv4.tcp_mem"].split()]
    for threshold, pages in zip(("min", "pressure", "max"), recommended):
        assert values[tcp_mem("recommended", threshold)] == pages * page_bytes
    # In a network namespace (a container) tcp_mem is not visible: no at-last-apply series rather than a guess; the
    # recommended thresholds are there, for the README's alert.
    assert facts["sysctl"]["net.ipv4.tcp_mem"]["present"] is False
    assert "netstack_tcp_memory_tcp_mem_at_last_apply_bytes" not in metric_names(textfile)
    assert values[("netstack_tcp_memory_target_connections", ())] == 1000
    assert values[("netstack_tcp_memory_page_size_bytes", ())] == page_bytes
    expected_peak = recommendation["estimate"]["steady_state_pages"] * page_bytes
    assert values[("netstack_tcp_memory_expected_peak_bytes", ())] == expected_peak
    applied_at = values[("netstack_tcp_memory_last_apply_timestamp_seconds", ())]
    assert started <= applied_at <= time.time()

    # A rerun that changes nothing leaves the file alone, its apply time included.
    before = textfile.read_text()
    rc, output, _result = run_role(netns, collections_path, tmp_path, role_vars)
    assert rc == 0 and recap_changed(output) == 0, output
    assert textfile.read_text() == before

    # A run that changes a value records a new apply time.
    time.sleep(1.1)
    changed_vars = {**role_vars, "tcp_memory_overrides": {"net.ipv4.tcp_rmem": CHANGED_RMEM}}
    rc, output, _result = run_role(netns, collections_path, tmp_path, changed_vars)
    assert rc == 0, output
    assert ns_value(netns, "net.ipv4.tcp_rmem") == CHANGED_RMEM
    promtool_check(textfile)
    assert samples(textfile)[("netstack_tcp_memory_last_apply_timestamp_seconds", ())] > applied_at
    # From here on every run must fail and leave the drop-in and the namespace at CHANGED_RMEM.
    dropin = Path(role_vars["tcp_memory_sysctl_file"])
    dropin_before = dropin.read_bytes()

    # A real write test before the apply: a read-only directory (root may write anywhere else, so the mode bits
    # would not show it) fails a run that would change a value, naming the variable and the reason.
    rc, output, _result = run_role(netns, collections_path, tmp_path, role_vars, read_only_dir=str(others_dir))
    assert rc != 0, output
    assert f"tcp_memory_textfile_dir={others_dir}" in output and "read-only file system" in output, output
    assert "Nothing was changed" in output, output
    assert ns_value(netns, "net.ipv4.tcp_rmem") == CHANGED_RMEM
    assert dropin.read_bytes() == dropin_before

    # The directory's owner replaces root's textfile by a link to a root-only file (then the next run changes
    # nothing), then by a FIFO (then it would change a value). Each run (verbose, as an operator would rerun it)
    # neither shows the file's content nor hangs: it refuses, naming what it found; the planted entry is left.
    secret_text = f"netstack-secret-{secrets.token_hex(8)}\n"
    secret = tmp_path / "secret"
    secret.write_text(secret_text)
    secret.chmod(0o600)
    leaked = (secret_text.strip(), base64.b64encode(secret_text.encode()).decode())
    for planted, run_vars in (("symlink", changed_vars), ("fifo", role_vars)):
        if planted == "symlink":
            as_nobody("ln", "-sfn", str(secret), str(textfile))
            found = f"{textfile} is a symbolic link to '{secret}'"
        else:
            as_nobody("sh", "-c", 'rm -f "$0" && mkfifo -m 0666 "$0"', str(textfile))
            found = f"{textfile} is a fifo (owner uid {NOBODY_UID})"
        planted_inode = textfile.lstat().st_ino
        rc, output, _result = run_role(netns, collections_path, tmp_path, run_vars, options=["-v"])
        assert rc != 0 and found in output and "Nothing was changed" in output, (planted, output)
        assert not [text for text in leaked if text in output], (planted, output)
        assert ns_value(netns, "net.ipv4.tcp_rmem") == CHANGED_RMEM, planted
        assert dropin.read_bytes() == dropin_before, planted
        assert secret.read_text() == secret_text, planted
        assert textfile.lstat().st_ino == planted_inode, planted
        assert [p.name for p in others_dir.iterdir()] == [TEXTFILE], planted


def test_live_thresholds_where_tcp_mem_is_visible(collections_path, tmp_path):
    """Where the role can see and set tcp_mem (a host, not a namespace), the at-last-apply series follows the
    apply result: the value read back after `set`, the value found when unchanged. Rendered with the
    role's template through ansible, from an apply result shaped as sysctl_dropin returns it; label values
    escaped as the exposition format wants."""
    cases = {
        "set": {"before": "1000 2000 3000", "after": "4000 5000 6000", "action": "set"},
        "unchanged": {"before": "4000 5000 6000", "after": "4000 5000 6000", "action": "unchanged"},
    }
    for name, entry in cases.items():
        variables = {
            "__tcp_memory_applied": {"keys": {"net.ipv4.tcp_mem": entry}, "path": '/etc/sysctl.d/a "b"\\c.conf'},
            "__tcp_memory_recommendation": {
                "sysctl": {"net.ipv4.tcp_mem": "4000 5000 6000"},
                "estimate": {"steady_state_pages": 3750},
                "inputs": {"profile": "many_idle"},
            },
            "__tcp_memory_facts": {"page_size_bytes": 4096},
            "__tcp_memory_collection_version": "1.2.3",
            "tcp_memory_connections": 2500,
            "__tcp_memory_last_apply_seconds": 1700000000,
        }
        out = tmp_path / f"{name}.prom"
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        playbook = tmp_path / "render.yml"
        playbook.write_text(
            "- name: Render the textfile template\n"
            "  hosts: localhost\n"
            "  gather_facts: false\n"
            "  tasks:\n"
            "    - name: Render\n"
            "      ansible.builtin.template:\n"
            f"        src: {PROM_TEMPLATE}\n"
            f"        dest: {out}\n"
            '        mode: "0644"\n'
        )
        options = ["-e", f"@{tmp_path / 'vars.json'}", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]
        run = ansible_playbook(str(playbook), collections_path, options=options, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        promtool_check(out)
        values = samples(out)
        applied = [values[tcp_mem("at_last_apply", threshold)] for threshold in ("min", "pressure", "max")]
        assert applied == [4000 * 4096, 5000 * 4096, 6000 * 4096], (name, applied)
        assert values[tcp_mem("recommended", "pressure")] == 5000 * 4096
        assert values[("netstack_tcp_memory_expected_peak_bytes", ())] == 3750 * 4096
        info_line = next(line for line in out.read_text().splitlines() if line.startswith("netstack_tcp_memory_info{"))
        assert 'dropin_path="/etc/sysctl.d/a \\"b\\"\\\\c.conf"' in info_line, info_line
        assert 'collection_version="1.2.3"' in info_line and 'profile="many_idle"' in info_line
        assert values[("netstack_tcp_memory_last_apply_timestamp_seconds", ())] == 1700000000


RULES = ROOT / "tests" / "prometheus" / "tcp_memory_rules.yml"
RULES_TEST = ROOT / "tests" / "prometheus" / "tcp_memory_rules_test.yml"


@pytest.mark.parametrize("readme", ["README.md", "roles/tcp_memory/README.md"])
def test_readme_alert_rule_is_the_tested_rule_file(readme):
    """Both READMEs show exactly the rule file that promtool tests below."""
    text = (ROOT / readme).read_text()
    rules = re.findall(r"```yaml\n(groups:\n.*?)```", text, re.S)
    assert rules == [RULES.read_text()], f"the alert rule in {readme} differs from {RULES.relative_to(ROOT)}"


def test_alert_rule_fires_for_a_host_and_a_container_host(tmp_path):
    """promtool check rules, then promtool test rules: the alert fires past 80% of the pressure threshold the kernel
    held after the last apply (a host) or, where tcp_mem is not visible, of the recommended one (a container host),
    and a host's own threshold wins over the recommendation."""
    check = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    shutil.copy(RULES, tmp_path)
    shutil.copy(RULES_TEST, tmp_path)
    run = subprocess.run(
        [promtool(), "test", "rules", RULES_TEST.name], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr

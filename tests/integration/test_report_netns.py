# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report playbook's files and what they say: how they are written (no link followed, as the
controller's user), what the Markdown lets through from a host, and what every format carries.

The playbook runs for real on this machine (read-only) or inside a namespace this test creates; the
templates alone are rendered through ansible-playbook with recorded data
(fixtures/report-three-hosts.json) where only the rendering is under test.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from html import escape as html_escape
from html import unescape as html_unescape
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import BLOCKED_WRITER, ansible_env, ansible_playbook, real_kernel_ready, render_report_template

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "report-three-hosts.json"
TEMPLATES = ROOT / "playbooks" / "templates"
REPORT = "netstack.tcp_tuning.report"
FILES = ("tcp-memory-report.json", "tcp-memory-report.md", "tcp-memory-report.html")

needs_kernel = pytest.mark.skipif(bool(real_kernel_ready()), reason=real_kernel_ready() or "ready")


def output(run: subprocess.CompletedProcess) -> str:
    return run.stdout + run.stderr


def report(collections: str, report_dir: Path, *options: str, netns=None, **extra: Any):
    extra_vars = {"tcp_memory_connections": 1000, "tcp_memory_report_dir": str(report_dir), **extra}
    return ansible_playbook(REPORT, collections, extra_vars, netns_name=netns, options=options, timeout=240)


def render_template(template: str, fleet: Dict[str, Any], tmp_path: Path, name: str) -> str:
    """TEMPLATE (a file of playbooks/templates) rendered for __fleet = FLEET, as the report renders it."""
    return render_report_template(TEMPLATES / template, fleet, tmp_path, name).read_text(encoding="utf-8")


@pytest.fixture
def fleet() -> Dict[str, Any]:
    return json.loads(FIXTURE.read_text())


@pytest.fixture
def shared_dir():
    """A directory like /tmp (mode 1777, root's) where another user can plant things; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="netstack-report-shared-", dir="/tmp"))
    os.chmod(base, 0o1777)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(*command: str) -> None:
    subprocess.run(["runuser", "-u", "nobody", "--", *command], check=True, capture_output=True, timeout=30)


def tree_snapshot(path: Path) -> Dict[str, Any]:
    """Mode, owner and bytes of every entry under PATH (links not followed)."""
    snapshot = {}
    for entry in [path, *sorted(path.rglob("*"))]:
        info = entry.lstat()
        snapshot[str(entry)] = (info.st_mode, info.st_uid, entry.read_bytes() if entry.is_file() else None)
    return snapshot


# ---------------------------------------------------------------- writing the files


@needs_kernel
def test_a_link_planted_at_the_report_directory_is_refused(collections_path, shared_dir, tmp_path):
    """Another user links the README's /tmp/report to a 0700 directory of root's: nothing is written there,
    its mode stays, and the run says why (the old report resolved the link, wrote in and chmod'ed it 0755)."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    (private / "secret").write_text("root's own\n")
    before = tree_snapshot(private)
    planted = shared_dir / "report"
    as_nobody("ln", "-s", str(private), str(planted))

    run = report(collections_path, planted)
    assert run.returncode != 0, output(run)
    assert f"tcp_memory_report_dir {planted} is a symbolic link" in output(run), output(run)
    assert tree_snapshot(private) == before
    assert planted.is_symlink()


@needs_kernel
def test_a_link_of_another_user_on_the_way_to_the_report_directory_is_refused(collections_path, shared_dir, tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    before = tree_snapshot(private)
    planted = shared_dir / "reports"
    as_nobody("ln", "-s", str(private), str(planted))

    run = report(collections_path, planted / "fleet")
    assert run.returncode != 0, output(run)
    assert f"{planted} is a symbolic link (to {private}) owned by uid" in output(run), output(run)
    assert tree_snapshot(private) == before


@needs_kernel
def test_links_planted_at_the_report_files_are_replaced_not_followed(collections_path, tmp_path):
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("do not touch\n")
    os.chmod(victim, 0o600)
    for name in FILES:
        (report_dir / name).symlink_to(victim)

    run = report(collections_path, report_dir)
    assert run.returncode == 0, output(run)
    assert victim.read_text() == "do not touch\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    for name in FILES:
        path = report_dir / name
        assert not path.is_symlink() and path.is_file(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert json.loads((report_dir / "tcp-memory-report.json").read_text())["summary"]["hosts"] == ["localhost"]
    assert not [p for p in report_dir.iterdir() if p.name.startswith(".")], "a temporary file left behind"


@needs_kernel
def test_a_fifo_at_a_report_file_is_refused_without_waiting(collections_path, tmp_path):
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    fifo = report_dir / "tcp-memory-report.md"
    os.mkfifo(fifo)

    run = report(collections_path, report_dir)  # the old report hung here until the timeout
    assert run.returncode != 0, output(run)
    assert f"{fifo} is a FIFO, not a regular file: refused" in output(run), output(run)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@needs_kernel
def test_a_report_directory_of_another_user_is_refused(collections_path, shared_dir):
    foreign = shared_dir / "report"
    as_nobody("mkdir", "-m", "0777", str(foreign))
    run = report(collections_path, foreign)
    assert run.returncode != 0, output(run)
    assert f"tcp_memory_report_dir {foreign} belongs to uid" in output(run), output(run)
    assert list(foreign.iterdir()) == []


# ---------------------------------------------------------------- what the Markdown lets through

HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "pipe|in|name",
    "line\nbreak\r\n## injected heading",
    "[link](javascript:alert(3))",
]


def hostile_fleet(fleet: Dict[str, Any]) -> Dict[str, Any]:
    hostile = copy.deepcopy(fleet)
    template = next(h for h in hostile["hosts"] if h["host"] == "core-1")
    hostile["hosts"] = []
    for name in HOSTILE_NAMES:
        host = copy.deepcopy(template)
        host["host"] = name
        host["warnings"] = [f"warning about {name}"]
        hostile["hosts"].append(host)
    hostile["summary"]["hosts"] = list(HOSTILE_NAMES)
    hostile["summary"]["unknown_capacity"] = list(HOSTILE_NAMES)
    hostile["summary"]["without_data"] = ["down|<b>host</b>\nx"]
    return hostile


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_escapes_host_names_in_tables_and_headings(fleet, tmp_path):
    text = render_template("tcp_memory_report.md.j2", hostile_fleet(fleet), tmp_path, "hostile-md")
    assert "<" not in text and ">" not in text.replace("&gt;", ""), "raw HTML from a host in the Markdown"
    # Every table row has as many cells as its header; no line starts a heading a host wrote.
    table_width = None
    for line in text.splitlines():
        if line.startswith("|"):
            if re.match(r"^\|(---\|)+$", line):
                continue
            width = unescaped_pipes(line)
            if line.startswith("| |") or line.startswith("| key"):
                table_width = width
            assert width == table_width, line
        else:
            table_width = None if not line.strip() else table_width
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ") and line != "## Fleet summary"]
    assert len(headings) == len(HOSTILE_NAMES), headings
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in headings[0]
    assert "pipe\\|in\\|name" in text
    assert "\\[link\\](javascript:alert(3))" in text


def test_markdown_renders_host_names_as_text(fleet, tmp_path):
    markdown_it = pytest.importorskip("markdown_it")
    text = render_template("tcp_memory_report.md.j2", hostile_fleet(fleet), tmp_path, "hostile-md-render")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert not re.search(r"<\s*(script|img|a)\b", html, re.I), html
    rendered_headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert len(rendered_headings) == 1 + len(HOSTILE_NAMES), rendered_headings
    for name in HOSTILE_NAMES:
        assert f"<h2>{html_escape(' '.join(name.split()))}</h2>" in html


# ---------------------------------------------------------------- what every report carries


def galaxy_version() -> str:
    return re.search(r"^version:\s*(\S+)", (ROOT / "galaxy.yml").read_text(), re.M).group(1)


@needs_kernel
def test_reports_carry_time_version_profile_workload_and_check_diff_is_one_line_per_file(
    collections_path, netns, tmp_path
):
    report_dir = tmp_path / "report"
    run = report(collections_path, report_dir, "--check", "--diff", netns=netns, tcp_memory_profile="many_idle")
    assert run.returncode == 0, output(run)
    data = json.loads((report_dir / "tcp-memory-report.json").read_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["generated_at"]), data["generated_at"]
    assert data["collection_version"] == galaxy_version()
    (host,) = data["hosts"]
    assert host["profile"] == "many_idle"
    assert host["workload"]["connections"] == 1000 and host["workload"]["profile"] == "many_idle"
    assert isinstance(host["workload"]["rx_buffered_bytes"], int)
    assert host["page_size_bytes"] == os.sysconf("SC_PAGE_SIZE")

    markdown = (report_dir / "tcp-memory-report.md").read_text()
    made = data["generated_at"].replace("T", " ").replace("Z", " UTC")
    assert f"Made {made} by netstack.tcp_tuning {galaxy_version()}." in markdown
    assert "1 host with data" in markdown and "1 hosts" not in markdown
    assert "Workload: profile **many_idle**, active fraction" in markdown
    assert re.search(r"In use now: \d+ pages? \((\d+ B|\d+\.\d+ [KMG]iB)\)", markdown), markdown
    html = (report_dir / "tcp-memory-report.html").read_text()
    assert f'datetime="{data["generated_at"]}"' in html and f"netstack.tcp_tuning {galaxy_version()}" in html
    assert "TCP memory report: 1 host, target" in html

    # --diff: one line per report file, not the files' text (the HTML's CSS was 126 lines of the diff)
    text = output(run)
    for name in FILES:
        assert re.search(
            rf"^{re.escape(str(report_dir))}/{re.escape(name)}: (created|rewritten|unchanged), [\d,]+ bytes", text, re.M
        ), text
    assert "font:" not in text and "<style>" not in text and "+++ after" not in text


@needs_kernel
def test_a_host_without_data_gets_its_reason(collections_path, tmp_path):
    from ansible.release import __version__ as core_version

    # A real Python 3.6, which ansible-core runs modules on up to 2.16 and not from 2.17 on.
    old_python = Path("/root/.pyenv/versions/3.6.15/bin/python")
    if tuple(int(part) for part in core_version.split(".")[:2]) < (2, 17):
        old_python = Path("/nonexistent/python3.6")
    inventory = tmp_path / "inventory.ini"
    lines = [
        "localhost ansible_connection=local",
        "nopython ansible_connection=local ansible_python_interpreter=/nonexistent/python3",
        "down ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh ansible_ssh_common_args='-o BatchMode=yes'",
    ]
    if old_python.exists():
        lines.append(f"oldpython ansible_connection=local ansible_python_interpreter={old_python}")
    inventory.write_text("\n".join(lines) + "\n")
    report_dir = tmp_path / "report"
    command = [str(Path(sys.executable).parent / "ansible-playbook"), REPORT, "-i", str(inventory)]
    command += ["-e", json.dumps({"tcp_memory_connections": 1000, "tcp_memory_report_dir": str(report_dir)})]
    run = subprocess.run(
        command, capture_output=True, text=True, env=ansible_env(collections_path), timeout=300, check=False
    )
    assert run.returncode == 0, output(run)

    summary = json.loads((report_dir / "tcp-memory-report.json").read_text())["summary"]
    reasons = summary["without_data_reasons"]
    assert summary["hosts"] == ["localhost"]
    assert (
        sorted(summary["without_data"])
        == sorted(reasons)
        == sorted(["nopython", "down"] + (["oldpython"] if old_python.exists() else []))
    )
    assert "/nonexistent/python3" in reasons["nopython"] and "not found" in reasons["nopython"]
    assert reasons["down"].startswith("unreachable: ") and "Connection refused" in reasons["down"]
    if old_python.exists():
        assert reasons["oldpython"].startswith("Python too old for ansible-core"), reasons["oldpython"]
        assert str(old_python) in reasons["oldpython"] and "SyntaxError" in reasons["oldpython"]
    markdown = (report_dir / "tcp-memory-report.md").read_text()
    html = (report_dir / "tcp-memory-report.html").read_text()
    for name, reason in reasons.items():
        assert f"{name} ({reason.replace('|', chr(92) + '|')})" in markdown.replace("&lt;", "<").replace("&gt;", ">")
        assert reason in html_unescape(html)
    assert "no data: " in output(run) and "Connection refused" in output(run)

    # every host without data: the report is still written, with the reasons
    env = ansible_env(collections_path)
    limited = [*command, "--limit", "nopython,down"]
    every_down = subprocess.run(limited, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert every_down.returncode == 0, output(every_down)
    summary = json.loads((report_dir / "tcp-memory-report.json").read_text())["summary"]
    assert summary["hosts"] == [] and sorted(summary["without_data_reasons"]) == ["down", "nopython"]


def test_markdown_lists_hosts_riskiest_first_with_sizes_and_unknown_capacity(fleet, tmp_path):
    shown = copy.deepcopy(fleet)
    container = copy.deepcopy(next(h for h in fleet["hosts"] if h["host"] == "core-1"))
    container.update(host="ct-1", tcp_mem_live_pages=None, level="unknown", can_hold_target=None)
    container.update(current_connections_before_pressure=None)
    container["rows"] = [dict(r, live=None) if r["key"] == "net.ipv4.tcp_mem" else r for r in container["rows"]]
    shown["hosts"].insert(0, container)
    shown["summary"]["unknown_capacity"] = ["ct-1"]
    shown["summary"]["without_data"] = ["edge-down"]
    shown["summary"]["without_data_reasons"] = {"edge-down": "unreachable: Connection refused"}
    text = render_template("tcp_memory_report.md.j2", shown, tmp_path, "order-md")

    headings = [line[3:] for line in text.splitlines() if line.startswith("## ") and line != "## Fleet summary"]
    # the same order as the HTML page: under pressure, can't hold the target, capacity unknown, healthy
    assert headings == ["edge-pressure", "edge-small", "ct-1", "core-1"]
    assert "Made 2026-11-30 09:41:07 UTC by netstack.tcp_tuning 0.1.0." in text
    assert "4 hosts with data" in text
    assert "| no data (failed or unreachable) | edge-down (unreachable: Connection refused) |" in text
    section = text.split("## ct-1")[1].split("\n## ")[0]
    assert "Capacity unknown: tcp_mem is not visible here" in section
    assert not re.search(r"hold (unknown|an unknown number of) connections", text)
    core = text.split("## core-1")[1]
    assert "| `net.ipv4.tcp_mem` | 287898 (1.10 GiB) 383867 (1.46 GiB) 575796 (2.20 GiB) |" in core
    assert "Workload: profile **balanced**, active fraction 0.1, connections 8000" in core


# ---------------------------------------------------------------- Kubernetes

# Kubernetes' sysctl name format (k8s.io/component-helpers/node/util/sysctl, SysctlContainSlashFmt)
K8S_SYSCTL_NAME = re.compile(r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")
K8S_SAFE_FROM_1_32 = {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def check_pod_sysctls(security_context: Dict[str, Any]) -> None:
    """A pod spec's securityContext holding sysctls, checked as the API server would: field by field, and
    against the Kubernetes 1.32 pod schema when kubernetes-validate (requirements.txt) is installed."""
    assert set(security_context) == {"sysctls"}, security_context
    for sysctl in security_context["sysctls"]:
        assert set(sysctl) == {"name", "value"}, sysctl
        assert isinstance(sysctl["name"], str) and isinstance(sysctl["value"], str), sysctl
        assert len(sysctl["name"]) <= 253 and K8S_SYSCTL_NAME.match(sysctl["name"]), sysctl
        assert sysctl["name"] in K8S_SAFE_FROM_1_32, sysctl
    try:
        import kubernetes_validate
    except ImportError:  # the older ansible-core venvs of `make compat` do not install it
        return
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "service"},
        "spec": {"containers": [{"name": "service", "image": "service:1"}], "securityContext": security_context},
    }
    kubernetes_validate.validate(pod, "1.32.0", strict=True)


def snippet_from_markdown(section: str) -> Dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, section
    return yaml.safe_load(block.group(1))["securityContext"]


@needs_kernel
def test_a_namespace_report_has_unknown_capacity_in_every_format_and_a_pod_securitycontext(
    collections_path, netns, tmp_path
):
    """Inside a network namespace (a container) tcp_mem is the host's and not visible: capacity unknown, not an
    estimate from a boot default. The same report gives a pod securityContext with the per-namespace keys, and the
    node-level keys apart."""
    report_dir = tmp_path / "report"
    run = report(collections_path, report_dir, netns=netns)
    assert run.returncode == 0, output(run)
    data = json.loads((report_dir / "tcp-memory-report.json").read_text())
    (host,) = data["hosts"]
    assert host["tcp_mem_live_pages"] is None
    assert host["can_hold_target"] is None and host["current_connections_before_pressure"] is None, host
    assert data["summary"]["unknown_capacity"] == ["localhost"]
    markdown = (report_dir / "tcp-memory-report.md").read_text()
    assert "Capacity unknown: tcp_mem is not visible here" in markdown
    assert "| capacity unknown | localhost |" in markdown
    html = (report_dir / "tcp-memory-report.html").read_text()
    assert "capacity unknown: tcp_mem is not visible here" in html
    for text in (markdown, html):
        assert not re.search(r"hold (unknown|an unknown number of) connections", text)

    recommended = {row["key"]: row["recommended"] for row in host["rows"]}
    kubernetes = host["kubernetes"]
    check_pod_sysctls(kubernetes["pod_security_context"])
    assert kubernetes["pod_security_context"]["sysctls"] == [
        {"name": key, "value": recommended[key]} for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")
    ]
    assert kubernetes["node_level"]["net.ipv4.tcp_mem"] == recommended["net.ipv4.tcp_mem"]
    assert not set(kubernetes["node_level"]) & K8S_SAFE_FROM_1_32
    every = set(kubernetes["node_level"]) | set(kubernetes["namespaced_unsafe"]) | K8S_SAFE_FROM_1_32
    assert every == set(recommended)

    assert snippet_from_markdown(markdown) == kubernetes["pod_security_context"]
    assert f"`net.ipv4.tcp_mem = {recommended['net.ipv4.tcp_mem']}`" in markdown.split("Node-level")[1]
    assert 'securityContext:\n  sysctls:\n    - name: "net.ipv4.tcp_rmem"' in html_unescape(html)


# ---------------------------------------------------------------- diagnosis (tcp_memory_diagnose)


@pytest.fixture
def blocked_writer(netns):
    """A writer in NETNS blocked on a peer that never reads (its send buffer full): (namespace, writer pid)."""
    writer = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", BLOCKED_WRITER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        yield netns, writer.pid
    finally:
        writer.kill()
        writer.wait(timeout=10)


def wait_until_blocked(pid: int) -> None:
    """Until the writer's thread sits in sk_stream_wait_memory (its kernel stack says so), at most 30 s."""
    stack = Path(f"/proc/{pid}/stack")
    for _attempt in range(300):
        if "sk_stream_wait_memory" in stack.read_text():
            return
        subprocess.run(["sleep", "0.1"], check=True)
    raise AssertionError(f"writer {pid} never blocked: {stack.read_text()}")


@needs_kernel
def test_diagnose_shows_blocked_writers_states_and_top_sockets(collections_path, blocked_writer, tmp_path):
    from test_report_html import by_id, chromium, parse

    netns, writer_pid = blocked_writer
    wait_until_blocked(writer_pid)
    report_dir = tmp_path / "report"
    run = report(collections_path, report_dir, netns=netns, tcp_memory_diagnose=True)
    assert run.returncode == 0, output(run)
    (host,) = json.loads((report_dir / "tcp-memory-report.json").read_text())["hosts"]
    diagnosis = host["diagnosis"]
    assert host["transport_stalled"] is False and host["level"] in ("ok", "unknown", "above_min", "pressure", "at_max")
    ours = [t for t in diagnosis["blocked_writers"]["threads"] if t["pid"] == writer_pid]
    assert ours and ours[0]["comm"].startswith("python"), diagnosis["blocked_writers"]
    assert diagnosis["connections"]["by_state"]["ESTABLISHED"] == 2
    assert diagnosis["connections"]["by_state"]["LISTEN"] == 1
    top = diagnosis["top_sockets"][0]
    assert top["state"] == "ESTABLISHED" and top["wmem_queued_bytes"] > 0 and top["total_bytes"] > 0
    assert diagnosis["connections"]["wmem_queued_bytes_total"] >= top["wmem_queued_bytes"]
    # What each facts option took on this host: the measurement's cgroups scan and the diagnosis's steps.
    assert host["facts_elapsed_ms"]["cgroups"] >= 0 and host["facts_elapsed_ms"]["connections"] is None
    timing = diagnosis["elapsed_ms"]
    assert timing["connections"] >= 0 and timing["blocked_writers"] >= 400 and timing["cgroups"] is None

    dom = parse(chromium(report_dir / "tcp-memory-report.html", "--dump-dom")["stdout"])
    facts_time = by_id(dom, "host-0-facts-time").text
    assert f"cgroups {host['facts_elapsed_ms']['cgroups']} ms" in facts_time
    assert f"diagnosis the default call {timing['base']} ms" in facts_time
    assert f"states/top_sockets/connection_bytes {timing['connections']} ms" in facts_time
    blocked_text = by_id(dom, "host-0-blocked-writers").text
    assert f"pid {writer_pid}," in blocked_text and "sk_stream_wait_memory" in blocked_text
    states = {row.iter("th").__next__().text: row.text for row in by_id(dom, "host-0-states").iter("tr")}
    assert states["ESTABLISHED"].endswith(" 2") and states["LISTEN"].endswith(" 1")
    top_rows = list(by_id(dom, "host-0-top-sockets").iter("tr"))[1:]
    assert len(top_rows) == len(diagnosis["top_sockets"])
    assert top["local"] in top_rows[0].text and f"{top['total_bytes']:,} B" in top_rows[0].text
    markdown = (report_dir / "tcp-memory-report.md").read_text()
    assert f"(pid {writer_pid}, tid " in markdown and "Connections by state: ESTABLISHED 2, LISTEN 1" in markdown
    assert f"blocked_writers {timing['blocked_writers']} ms" in markdown


def stop_second_facts_module(netns: str, stopped: List[int], done: threading.Event) -> None:
    """SIGSTOP the second tcp_memory_facts module process started in NETNS (the report's diagnosis; the first
    is its measurement): a host whose transport makes no progress, as one at tcp_mem[2] behaves."""
    netns_inode = os.stat(f"/run/netns/{netns}").st_ino
    seen: List[int] = []
    while not done.is_set():
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in seen:
                continue
            try:
                argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
                in_netns = os.readlink(f"/proc/{name}/ns/net") == f"net:[{netns_inode}]"
            except OSError:
                continue
            if (
                in_netns
                and os.path.basename(argv[0]).startswith(b"python")
                and b"AnsiballZ_tcp_memory_facts" in b" ".join(argv)
            ):
                seen.append(int(name))
                if len(seen) == 2:
                    os.kill(int(name), signal.SIGSTOP)
                    stopped.append(int(name))
                    return
        done.wait(0.02)


@needs_kernel
def test_a_diagnosis_without_answer_in_time_is_cut_and_marked_transport_stalled(collections_path, netns, tmp_path):
    """The diagnosis's module process is stopped (no progress, like a transport stalled at tcp_mem[2]); the report
    bounds each task at tcp_memory_report_timeout, keeps the host's measurement and marks it transport stalled."""
    report_dir = tmp_path / "report"
    stopped: List[int] = []
    done = threading.Event()
    watcher = threading.Thread(target=stop_second_facts_module, args=(netns, stopped, done), daemon=True)
    watcher.start()
    try:
        run = report(collections_path, report_dir, netns=netns, tcp_memory_diagnose=True, tcp_memory_report_timeout=30)
    finally:
        done.set()
        watcher.join(timeout=10)
        for pid in stopped:  # the module process this test stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert stopped, "the diagnosis's module process was never seen"
    assert run.returncode == 0, output(run)
    data = json.loads((report_dir / "tcp-memory-report.json").read_text())
    (host,) = data["hosts"]
    assert host["transport_stalled"] is True and data["summary"]["transport_stalled"] == ["localhost"]
    assert host["rows"] and host["level"]  # the measurement is kept
    assert data["summary"]["without_data"] == []
    html = html_unescape((report_dir / "tcp-memory-report.html").read_text())
    assert "Transport stalled: the diagnosis got no answer in time" in html
    assert "**Transport stalled**" in (report_dir / "tcp-memory-report.md").read_text()

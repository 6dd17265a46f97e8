# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report's HTML fleet page, rendered with the real template and read back by headless Chromium.

The fixture `fixtures/report-three-hosts.json` is a tcp-memory-report.json the report playbook wrote
(`-e tcp_memory_connections=8000`) for three real hosts: `core-1` (this machine, healthy),
`edge-pressure` (a 1 GiB Debian 12 VM of tests/hosts/vm.sh holding ~2000 loopback connections with
64 KiB unread each, past its tcp_mem[1]: TCP under memory pressure) and `edge-small` (a 512 MiB VM
whose default tcp_mem holds ~5240 such connections, fewer than the target).

Chromium (Debian's `chromium`, installed by tests/hosts/install-deps.sh) loads the page from a
file:// URL with every host name resolving to nothing, writes the DOM it built (`--dump-dom`) and a
NetLog of every request; a screenshot (colour and grey) is kept in .cache/report-html/ for review.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from conftest import render_report_template

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "report-three-hosts.json"
TEMPLATE = ROOT / "playbooks" / "templates" / "tcp_memory_report.html.j2"
SCREENSHOT_DIR = ROOT / ".cache" / "report-html"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # A trap: whatever the page (or the browser) asks for resolves to nothing, so no request leaves.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def chromium_binary() -> str:
    binary = shutil.which("chromium")
    # Not a skip: `make test` installs it (tests/hosts/install-deps.sh); a missing browser is a failure.
    assert binary, "chromium is not installed: run tests/hosts/install-deps.sh (Debian package chromium)"
    return binary


# ---------------------------------------------------------------- rendering and loading


def render(fleet: Dict[str, Any], tmp_path: Path, name: str = "tcp-memory-report") -> Path:
    """Render the report's HTML template for `fleet` (tcp-memory-report.json's data) through ansible."""
    return render_report_template(TEMPLATE, fleet, tmp_path, name, suffix=".html")


def chromium(page: Path, *extra: str) -> Dict[str, Any]:
    """Load `page` in headless Chromium: returns stdout (the DOM with --dump-dom) and the NetLog events."""
    with tempfile.TemporaryDirectory(prefix="netstack-chromium-") as profile:
        netlog = Path(profile) / "netlog.json"
        command = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}/data", f"--log-net-log={netlog}"]
        command += [*extra, page.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        log = json.loads(netlog.read_text())
    return {"stdout": result.stdout, "netlog": log}


def page_requests(log: Dict[str, Any]) -> List[str]:
    """URLs the PAGE asked for: requests started on behalf of the file:// document.

    Chromium's own background requests (component updates, accounts) carry another network
    isolation key and are left out; the trap above keeps them from leaving the machine anyway.
    """
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job and "file://" in str(event.get("params", {}).get("network_isolation_key", ""))
    ]


# ---------------------------------------------------------------- a small DOM


class Element:
    def __init__(self, tag: str, attrs: Dict[str, Optional[str]], parent: Optional[Element]) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: List[Element] = []
        self.text_parts: List[str] = []

    @property
    def text(self) -> str:
        """All text inside, whitespace collapsed."""
        parts: List[str] = []

        def walk(element: Element) -> None:
            parts.extend(element.text_parts)
            for child in element.children:
                walk(child)

        walk(self)
        return " ".join(" ".join(parts).split())

    def text_raw(self) -> str:
        """All text inside as it is, white space kept (a <pre>)."""
        parts: List[str] = []

        def walk(element: Element) -> None:
            parts.extend(element.text_parts)
            for child in element.children:
                walk(child)

        walk(self)
        return "".join(parts)

    def iter(self, tag: Optional[str] = None):
        for child in self.children:
            if tag is None or child.tag == tag:
                yield child
            yield from child.iter(tag)

    def classes(self) -> List[str]:
        return (self.attrs.get("class") or "").split()


class DomBuilder(HTMLParser):
    """Enough of a tree for these checks: elements, attributes, text, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        if tag not in VOID_ELEMENTS:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text_parts.append(data)


def parse(html: str) -> Element:
    builder = DomBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def by_id(root: Element, element_id: str) -> Element:
    found = [element for element in root.iter() if element.attrs.get("id") == element_id]
    assert len(found) == 1, f"{len(found)} elements with id {element_id}"
    return found[0]


def host_sections(root: Element) -> List[Element]:
    return [element for element in root.iter("section") if "host" in element.classes() and element.attrs.get("id")]


def relative_luminance(hex_colour: str) -> float:
    """WCAG relative luminance of #rrggbb: what is left of a colour in grey print."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


# ---------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def fleet() -> Dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_fixture_is_the_three_cases(fleet):
    """The recording holds what the page must show: pressure, a target not held, a healthy host."""
    assert fleet["summary"]["under_pressure"] == ["edge-pressure"]
    assert fleet["summary"]["cannot_hold_target"] == ["edge-small"]
    healthy = [h["host"] for h in fleet["hosts"] if not h["under_pressure"] and h["can_hold_target"]]
    assert healthy == ["core-1"]


def test_page_shows_every_host_bar_and_summary_entry_and_fetches_nothing(fleet, tmp_path):
    page = render(fleet, tmp_path)
    source = page.read_text()

    # Self-contained by construction: nothing in the file could reach the network.
    assert not re.search(r"https?://", source), "an absolute URL in the page"
    assert not re.search(r"<\s*(script|link|iframe|object|embed|img)\b", source, re.I)
    assert "@import" not in source
    assert not re.search(r"url\(\s*['\"]?(?!#)", source), "url() pointing outside the document"

    loaded = chromium(page, "--dump-dom")
    assert page_requests(loaded["netlog"]) == []
    dom = parse(loaded["stdout"])
    assert not list(dom.iter("script"))

    # Fleet summary: every entry, with its count and links to the host sections.
    expected = {
        "summary-under-pressure": ["edge-pressure"],
        "summary-cannot-hold-target": ["edge-small"],
        "summary-unknown-capacity": [],
        "summary-without-data": [],
        "summary-not-root": [],
    }
    sections = {section.attrs["id"]: section for section in host_sections(dom)}
    anchors = {by_id(dom, f"{sid}-name").text: sid for sid in sections}
    for row_id, hosts in expected.items():
        row = by_id(dom, row_id)
        cells = list(row.iter("td"))
        assert cells[0].text == str(len(hosts)), (row_id, row.text)
        links = {a.text: a.attrs["href"] for a in row.iter("a")}
        assert links == {host: f"#{anchors[host]}" for host in hosts}, (row_id, row.text)
        if not hosts:
            assert cells[1].text == "none"
    # No cgroup data in this recording: the entry says so instead of claiming none are bound.
    assert "not measured" in by_id(dom, "summary-cgroup-bound").text

    # Per host, sorted by risk: under pressure, then can't hold the target, then healthy.
    names = [by_id(dom, f"{section.attrs['id']}-name").text for section in host_sections(dom)]
    assert names == ["edge-pressure", "edge-small", "core-1"]
    badges = dict(zip(names, host_sections(dom)))
    assert "under TCP memory pressure now" in badges["edge-pressure"].text
    assert "current settings can't hold the target" in badges["edge-small"].text
    assert "healthy" in badges["core-1"].text

    for host in fleet["hosts"]:
        section = badges[host["host"]]
        sid = section.attrs["id"]
        svg_bar = by_id(dom, f"{sid}-bar")
        assert svg_bar.tag == "svg" and svg_bar.attrs.get("role") == "img"
        live, used, peak = host["tcp_mem_live_pages"], host["used_pages"], host["expected_peak_pages"]
        recommended = next(row["recommended"] for row in host["rows"] if row["key"] == "net.ipv4.tcp_mem").split()
        # The text alternative says everything the bar shows, in numbers.
        title = next(svg_bar.iter("title")).text
        assert title == svg_bar.attrs["aria-label"]
        assert title.startswith(f"{host['host']}: {used:,} TCP buffer pages in use now")
        assert f"live tcp_mem min {live[0]:,}, pressure {live[1]:,}, max {live[2]:,}" in title
        assert "recommended min {:,}, pressure {:,}, max {:,}".format(*map(int, recommended)) in title
        assert f"expected peak at the target {peak:,} pages" in title
        # And draws it: the in-use bar, three live and three recommended thresholds, the peak marker.
        drawn = [cls for element in svg_bar.iter() for cls in element.classes()]
        assert drawn.count("used") == 1 and drawn.count("peak") == 1
        assert drawn.count("live-tick") == 3 and drawn.count("rec-tick") == 3
        # The used-pages bar ends where the used pages sit on the same scale as the ticks.
        ticks = [float(line.attrs["x1"]) for line in svg_bar.iter("line") if "live-tick" in line.classes()]
        used_rect = next(rect for rect in svg_bar.iter("rect") if "used" in rect.classes())
        used_end = float(used_rect.attrs["x"]) + float(used_rect.attrs["width"])
        scale = (ticks[1] - 8) / live[1]  # x0 = 8 px
        assert abs(used_end - (8 + used * scale)) <= 1.6, (host["host"], used_end, ticks)
        assert (used > live[1]) == (used_end > ticks[1])
        # The per-key table is there, folded.
        details = by_id(dom, f"{sid}-keys")
        assert details.tag == "details" and "open" not in details.attrs
        keys = [row.text for row in details.iter("code")]
        assert keys == [row["key"] for row in host["rows"]]
        for row in host["rows"]:
            assert row["why"][:60] in " ".join(details.text.split())

    # Zones of a bar differ in lightness, not only in hue, and carry patterns: they survive grey print.
    zone_fills = [
        rect.attrs["fill"]
        for rect in by_id(dom, f"{anchors['core-1']}-bar").iter("rect")
        if rect.attrs.get("height") == "32" and rect.attrs.get("fill", "").startswith("#")
    ]
    assert len(zone_fills) == 4
    luminances = sorted(relative_luminance(fill) for fill in zone_fills)
    assert all(b - a >= 0.1 for a, b in zip(luminances, luminances[1:])), zone_fills
    patterns = {rect.attrs["fill"] for rect in dom.iter("rect") if rect.attrs.get("fill", "").startswith("url(#")}
    assert patterns == {"url(#nt-dots)", "url(#nt-stripes)", "url(#nt-cross)"}

    # For review: the page as it renders, and as it prints in grey.
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for name, html in (("tcp-memory-report", source), ("tcp-memory-report-grey", grey(source))):
        copy_path = tmp_path / f"{name}.html"
        copy_path.write_text(html)
        shot = SCREENSHOT_DIR / f"{name}.png"
        shot.unlink(missing_ok=True)
        chromium(copy_path, "--window-size=1100,2300", f"--screenshot={shot}")
        assert shot.stat().st_size > 10000
    shutil.copyfile(page, SCREENSHOT_DIR / "tcp-memory-report.html")


def grey(html: str) -> str:
    return html.replace("</style>", "html { filter: grayscale(1); }\n</style>", 1)


def test_request_detector_sees_a_page_that_fetches(tmp_path):
    """The NetLog check is not vacuous: a page with one remote image is caught."""
    page = tmp_path / "fetches.html"
    page.write_text('<!DOCTYPE html><p>probe</p><img src="http://netstack-probe.invalid/x.png" alt="">')
    assert page_requests(chromium(page, "--dump-dom")["netlog"]) == ["http://netstack-probe.invalid/x.png"]


def test_host_supplied_text_is_escaped_and_absent_data_is_tolerated(fleet, tmp_path):
    hostile = copy.deepcopy(fleet)
    small = next(h for h in hostile["hosts"] if h["host"] == "edge-small")
    small["warnings"] = ["<script>alert(1)</script> & more"]
    small["rows"][0]["why"] = '"><img src=x onerror=alert(2)>'
    small["cgroup"] = {"path": "/system.slice/app.service</details><script>alert(3)</script>", "bound": True}
    hostile["summary"]["cgroup_bound"] = ["edge-small"]
    # A host entry from before the live/peak fields (falls back on rows), one whose recommendation
    # failed (no rows), and one that answered nothing.
    older = copy.deepcopy(next(h for h in hostile["hosts"] if h["host"] == "core-1"))
    older.update(host="core-2")
    del older["tcp_mem_live_pages"], older["expected_peak_pages"]
    failed = copy.deepcopy(small)
    failed.update(host="edge-nofit", rows=[], expected_peak_pages=None, can_hold_target=False, warnings=[])
    failed.update(recommendation_error="recommend_tcp_memory: connections=8000 does not fit")
    del failed["cgroup"]
    # Read inside a container's network namespace: tcp_mem not visible at all.
    container = copy.deepcopy(older)
    container.update(host="ct-1", tcp_mem_live_pages=None, initial_netns=False)
    container["rows"] = [dict(row, live=None) if row["key"] == "net.ipv4.tcp_mem" else row for row in container["rows"]]
    hostile["hosts"] += [older, failed, container]
    hostile["summary"]["without_data"] = ["edge-down"]
    hostile["summary"]["cannot_hold_target"].append("edge-nofit")
    del hostile["summary"]["not_root"]

    page = render(hostile, tmp_path, "hostile")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page.read_text()
    loaded = chromium(page, "--dump-dom")
    assert page_requests(loaded["netlog"]) == []
    dom = parse(loaded["stdout"])
    assert not list(dom.iter("script")) and not list(dom.iter("img"))

    sections = host_sections(dom)
    names = [by_id(dom, f"{section.attrs['id']}-name").text for section in sections]
    assert names == ["edge-pressure", "edge-small", "edge-nofit", "core-1", "core-2", "ct-1"]
    small_section = sections[1]
    assert "<script>alert(1)</script> & more" in small_section.text
    assert "alert(3)" in small_section.text and "bound by a memory cgroup" in small_section.text
    cgroup_row = by_id(dom, "summary-cgroup-bound")
    assert next(cgroup_row.iter("td")).text == "1" and "edge-small" in cgroup_row.text
    assert "edge-down" in by_id(dom, "summary-without-data").text
    assert not [element for element in dom.iter() if element.attrs.get("id") == "summary-not-root"]

    # Live thresholds read from the rows when the entry lacks them; no peak, no marker.
    core2_bar = by_id(dom, f"{sections[4].attrs['id']}-bar")
    assert sum("live-tick" in line.classes() for line in core2_bar.iter("line")) == 3
    assert "expected peak at the target unknown" in core2_bar.attrs["aria-label"]
    assert not [path for path in core2_bar.iter("path") if "peak" in path.classes()]
    # tcp_mem not visible: no live thresholds drawn, and the text says so; the recommendation still shows.
    container_bar = by_id(dom, f"{sections[5].attrs['id']}-bar")
    assert sum("live-tick" in line.classes() for line in container_bar.iter("line")) == 0
    assert sum("rec-tick" in line.classes() for line in container_bar.iter("line")) == 3
    assert "live tcp_mem unknown" in container_bar.attrs["aria-label"]
    assert "network namespace" in sections[5].text
    # A failed recommendation: the reason, live thresholds from the facts, no recommended ticks.
    nofit = sections[2]
    assert "No recommendation: recommend_tcp_memory: connections=8000 does not fit" in nofit.text
    nofit_bar = by_id(dom, f"{nofit.attrs['id']}-bar")
    assert sum("rec-tick" in line.classes() for line in nofit_bar.iter("line")) == 0
    assert sum("live-tick" in line.classes() for line in nofit_bar.iter("line")) == 3


def container_host(fleet: Dict[str, Any]) -> Dict[str, Any]:
    """A host read inside a container's network namespace: tcp_mem not visible, so no capacity."""
    host = copy.deepcopy(next(h for h in fleet["hosts"] if h["host"] == "core-1"))
    host.update(host="ct-1", tcp_mem_live_pages=None, initial_netns=False, level="unknown")
    host.update(can_hold_target=None, current_connections_before_pressure=None)
    host["rows"] = [dict(row, live=None) if row["key"] == "net.ipv4.tcp_mem" else row for row in host["rows"]]
    return host


def test_page_shows_when_by_which_version_profile_sizes_capacity_unknown_and_why_no_data(fleet, tmp_path):
    shown = copy.deepcopy(fleet)
    shown["hosts"].append(container_host(fleet))
    shown["summary"]["unknown_capacity"] = ["ct-1"]
    shown["summary"]["without_data"] = ["edge-down", "edge-old"]
    shown["summary"]["without_data_reasons"] = {
        "edge-down": "unreachable: Failed to connect to the host via ssh: Connection refused",
        "edge-old": "Python too old for ansible-core 2.19.14 (/usr/bin/python3.6): SyntaxError: <bad>",
    }
    dom = parse(chromium(render(shown, tmp_path, "shown"), "--dump-dom")["stdout"])

    title = next(dom.iter("title")).text
    assert title == "TCP memory report: 4 hosts, target 8,000 connections"
    made = by_id(dom, "report-generated-at")
    assert made.tag == "time" and made.attrs["datetime"] == "2026-11-30T09:41:07Z"
    assert made.text == "2026-11-30 09:41:07 UTC"
    assert by_id(dom, "report-version").text == "netstack.tcp_tuning 0.1.0"

    sections = {by_id(dom, f"{s.attrs['id']}-name").text: s for s in host_sections(dom)}
    for name, section in sections.items():
        workload = by_id(dom, f"{section.attrs['id']}-workload").text
        assert workload.startswith("Workload: profile balanced"), (name, workload)
        assert "rx buffered 16,384 B (16.0 KiB)" in workload and "connections 8,000" in workload
    core = sections["core-1"]
    # 287,898 pages of 4 KiB = 1.10 GiB; the bar's numbers show pages and bytes
    numbers = next(t for t in core.iter("table") if "numbers" in t.classes()).text
    assert "287,898 1.10 GiB" in numbers and "575,796 2.20 GiB" in numbers
    used = fleet["hosts"][0]["used_pages"]
    assert f"{used:,} pages in use now (" in core.text
    assert "current settings hold 294,880 connections before pressure" in core.text

    container = sections["ct-1"]
    assert "capacity unknown" in next(s for s in container.iter("span") if "badge" in s.classes()).text
    assert "capacity unknown: tcp_mem is not visible here" in container.text
    assert "hold unknown" not in container.text and "hold an unknown" not in container.text
    assert "ct-1" in by_id(dom, "summary-unknown-capacity").text

    reasons = {next(item.iter("strong")).text: item.text for item in by_id(dom, "no-data").iter("li")}
    for name, reason in shown["summary"]["without_data_reasons"].items():
        assert reason in reasons[name], reasons

    # Kubernetes: per host a pod securityContext ready to paste, and the node-level keys apart
    yaml = pytest.importorskip("yaml")
    from test_report_netns import check_pod_sysctls

    for host in fleet["hosts"]:
        sid = sections[host["host"]].attrs["id"]
        snippet = yaml.safe_load(by_id(dom, f"{sid}-k8s-snippet").text_raw())["securityContext"]
        assert snippet == host["kubernetes"]["pod_security_context"]
        check_pod_sysctls(snippet)
        node = by_id(dom, f"{sid}-k8s-node").text
        tcp_mem = next(row["recommended"] for row in host["rows"] if row["key"] == "net.ipv4.tcp_mem")
        assert f"net.ipv4.tcp_mem = {tcp_mem}" in node and "tcp_rmem" not in node

    one = copy.deepcopy(fleet)
    one["hosts"] = one["hosts"][:1]
    one_dom = parse(chromium(render(one, tmp_path, "one"), "--dump-dom")["stdout"])
    assert next(one_dom.iter("title")).text.startswith("TCP memory report: 1 host, target")
    assert "1 host with data" in one_dom.text

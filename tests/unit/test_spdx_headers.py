# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every Python and shell file git tracks names its licence near the top: `SPDX-License-Identifier:
GPL-3.0-or-later` (the licence galaxy.yml declares and LICENSE holds), in the first five lines.

NOT_YET_CONVERTED lists the files that still carried the older 'GNU General Public License v3.0+ (see ...)'
line when this check was added (issue 13 item 7 converts them); a file converted may leave the list, a new
file may not join it. Run from a git checkout: a tarball has no history of what is tracked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IDENTIFIER = "SPDX-License-Identifier: GPL-3.0-or-later"
HEAD_LINES = 5
NOT_YET_CONVERTED = frozenset(
    (
        "benchmarks/facts_bench.py",
        "benchmarks/fleet_report.py",
        "benchmarks/role_cost.py",
        "benchmarks/role_cost/bench_hosts.py",
        "benchmarks/run.sh",
        "molecule/_shared/files/sysctl_state.py",
        "molecule/memcg/files/memcg_push.py",
        "molecule/undo/files/hold_unread.py",
        "plugins/module_utils/sysctl_dropin_lock.py",
        "plugins/module_utils/sysctl_dropin_paths.py",
        "plugins/module_utils/sysctl_dropin_plan.py",
        "plugins/module_utils/sysctl_dropin_precedence.py",
        "plugins/module_utils/sysctl_dropin_render.py",
        "plugins/module_utils/sysctl_dropin_tuned.py",
        "plugins/module_utils/sysctl_dropin_undo.py",
        "plugins/module_utils/sysctl_dropin_values.py",
        "plugins/module_utils/tcp_memory_blocked_writers.py",
        "plugins/module_utils/tcp_memory_cgroups.py",
        "plugins/module_utils/tcp_memory_diag.py",
        "plugins/module_utils/tcp_memory_gather.py",
        "plugins/module_utils/tcp_memory_proc.py",
        "plugins/module_utils/tcp_memory_read.py",
        "plugins/modules/sysctl_dropin.py",
        "plugins/modules/tcp_memory_facts.py",
        "tests/check-docs.sh",
        "tests/hosts/build-container-image.sh",
        "tests/hosts/build-vm-image.sh",
        "tests/hosts/container.sh",
        "tests/hosts/install-deps.sh",
        "tests/hosts/vm-image-customize.sh",
        "tests/hosts/vm.sh",
        "tests/integration/test_bad_input_dropin_netns.py",
        "tests/integration/test_dropin_concurrency_netns.py",
        "tests/integration/test_playbooks_netns.py",
        "tests/integration/test_report_html.py",
        "tests/integration/test_sysctl_dropin_netns.py",
        "tests/integration/test_tcp_memory_calibrate_netns.py",
        "tests/integration/test_tcp_memory_facts_states_netns.py",
        "tests/integration/test_undo_netns.py",
        "tests/run-compat.sh",
        "tests/run-molecule.sh",
        "tests/run-sanity.sh",
        "tests/run-stages.sh",
        "tests/sanity_get_pip.py",
        "tests/tools/conn_holder.py",
        "tests/tools/tcp_pressure_load.py",
        "tests/integration/test_report_equivalence_netns.py",  # likewise
        "tests/unit/plugins/module_utils/test_sysctl_dropin_lock.py",
        "tests/unit/plugins/module_utils/test_sysctl_dropin_paths.py",
        "tests/unit/plugins/module_utils/test_sysctl_dropin_plan.py",
        "tests/unit/plugins/module_utils/test_sysctl_dropin_precedence.py",
        "tests/unit/plugins/module_utils/test_sysctl_dropin_render.py",
        "tests/unit/plugins/module_utils/test_sysctl_dropin_tuned.py",
        "tests/unit/plugins/module_utils/test_sysctl_dropin_undo.py",
        "tests/unit/plugins/module_utils/test_sysctl_dropin_values.py",
        "tests/unit/plugins/module_utils/test_tcp_memory_blocked_writers.py",
        "tests/unit/plugins/module_utils/test_tcp_memory_diag.py",
        "tests/unit/plugins/module_utils/test_tcp_memory_proc.py",
        "tests/unit/plugins/modules/test_sysctl_dropin.py",
        "tests/unit/plugins/modules/test_sysctl_dropin_absent.py",
    )
)


def tracked_sources() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--", "*.py", "*.sh"], capture_output=True, check=True
    )
    return [name for name in listing.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def has_identifier(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        head = [handle.readline() for _ in range(HEAD_LINES)]
    return any(IDENTIFIER in line for line in head)


def test_every_source_file_names_its_licence():
    missing = [name for name in tracked_sources() if name not in NOT_YET_CONVERTED and not has_identifier(ROOT / name)]
    assert missing == [], f"add '# {IDENTIFIER}' within the first {HEAD_LINES} lines of: {', '.join(missing)}"


def test_the_check_sees_a_file_without_the_identifier(tmp_path):
    old = tmp_path / "old.py"
    old.write_text("# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)\n")
    new = tmp_path / "new.py"
    new.write_text("#!/usr/bin/env python3\n# Copyright: netstack.tcp_tuning contributors\n# " + IDENTIFIER + "\n")
    late = tmp_path / "late.sh"
    late.write_text("\n" * HEAD_LINES + "# " + IDENTIFIER + "\n")
    assert (has_identifier(old), has_identifier(new), has_identifier(late)) == (False, True, False)

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every Python and shell file git tracks names its licence near the top: `SPDX-License-Identifier:
GPL-3.0-or-later` (the licence galaxy.yml declares and LICENSE holds), in the first five lines.

Run from a git checkout: a tarball has no list of what is tracked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IDENTIFIER = "SPDX-License-Identifier: GPL-3.0-or-later"
HEAD_LINES = 5


def tracked_sources() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--", "*.py", "*.sh"], capture_output=True, check=True
    )
    return [name for name in listing.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def has_identifier(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        head = [handle.readline() for _line in range(HEAD_LINES)]
    return any(IDENTIFIER in line for line in head)


def test_every_source_file_names_its_licence():
    # An empty package __init__.py has nothing to license (ansible-test's empty-init wants them empty).
    missing = [name for name in tracked_sources() if (ROOT / name).stat().st_size and not has_identifier(ROOT / name)]
    assert missing == [], f"add '# {IDENTIFIER}' within the first {HEAD_LINES} lines of: {', '.join(missing)}"


def test_the_check_sees_a_file_without_the_identifier(tmp_path):
    old = tmp_path / "old.py"
    old.write_text("# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)\n")
    new = tmp_path / "new.py"
    new.write_text("#!/usr/bin/env python3\n# Copyright: netstack.tcp_tuning contributors\n# " + IDENTIFIER + "\n")
    late = tmp_path / "late.sh"
    late.write_text("\n" * HEAD_LINES + "# " + IDENTIFIER + "\n")
    assert (has_identifier(old), has_identifier(new), has_identifier(late)) == (False, True, False)

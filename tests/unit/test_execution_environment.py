# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/execution-environment.yml says the collection needs nothing beyond ansible-core: check the claim
against the code (every import in plugins/ is the standard library, ansible-core or this collection) and
that the file ships in the built collection."""

from __future__ import annotations

import ast
import fnmatch
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OWN_PACKAGE = "ansible_collections.netstack.tcp_tuning"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def is_allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top == "ansible" or module.startswith(OWN_PACKAGE)


def test_declares_no_python_or_system_dependencies():
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    # No python or system entry: ansible-builder then installs nothing for this collection (and, the file
    # being present, does not fall back on the repository's requirements.txt of development tools).
    assert meta == {"version": 1, "dependencies": {}}


def test_plugins_import_only_the_standard_library_ansible_and_this_collection():
    sources = sorted((ROOT / "plugins").rglob("*.py"))
    assert sources
    foreign = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sources
        for module in imported_modules(path)
        if not is_allowed(module)
    }
    assert not foreign, sorted(foreign)


def test_the_file_ships_in_the_built_collection():
    build_ignore = yaml.safe_load((ROOT / "galaxy.yml").read_text()).get("build_ignore", [])
    for candidate in ("meta", "meta/execution-environment.yml"):
        assert not [pattern for pattern in build_ignore if fnmatch.fnmatch(candidate, pattern)], candidate

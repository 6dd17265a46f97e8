# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Name the ansible-core release in every test id and in the header.

`make compat` runs the unit and integration tests once per ansible-core release, each in its own
venv; a failure line then reads `test_x[core2.16.19]`, so it says which release failed.
"""

from __future__ import annotations

import platform
import sys

from ansible.release import __version__ as ANSIBLE_CORE_VERSION

RELEASE_ID = f"core{ANSIBLE_CORE_VERSION}"


def _import_collections_through_ansible() -> None:
    """Tests import ansible_collections.netstack.tcp_tuning: pytest-ansible sets that up in the dev venv;
    the per-release venvs of `make compat` get ansible's own collection finder on ANSIBLE_COLLECTIONS_PATH."""
    try:
        import ansible_collections.netstack.tcp_tuning  # noqa: F401
    except ImportError:
        from ansible.plugins.loader import init_plugin_loader

        # the failed import left the community package's plain ansible_collections namespace behind
        for name in [name for name in sys.modules if name.split(".")[0] == "ansible_collections"]:
            del sys.modules[name]
        init_plugin_loader()


_import_collections_through_ansible()


def pytest_report_header(config):
    return f"ansible-core {ANSIBLE_CORE_VERSION} on Python {platform.python_version()} (test ids end in [{RELEASE_ID}])"


def pytest_generate_tests(metafunc):
    # A parameter no test reads: it only puts the release into each test's id (as pytest-repeat does).
    metafunc.fixturenames.append("ansible_core_release")
    metafunc.parametrize("ansible_core_release", [ANSIBLE_CORE_VERSION], ids=[RELEASE_ID], scope="session")

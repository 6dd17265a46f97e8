# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import stat

import pytest
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.paths import (
    SYSCTL_D_ROOTS,
    file_type_problem,
    host_paths,
    in_roots,
    is_managed,
    ownership_problem,
    path_syntax_problem,
    root_problem,
)
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import MANAGED_LINE


@pytest.mark.parametrize(
    "path",
    [
        "/etc/sysctl.d/99-netstack-tcp-memory.conf",
        "/run/sysctl.d/50-x.conf",
        "/tmp/private/a.conf",  # syntax only: the roots are checked separately
    ],
)
def test_usable_paths(path):
    assert path_syntax_problem(path) is None


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("", "path is empty"),
        ("50-t.conf", "path '50-t.conf' is relative"),
        ("sysctl.d/50-t.conf", "is relative"),
        ("/etc/sysctl.d/50-dir.conf/", "ends with '/', which names a directory"),  # item 5
        ("/etc/sysctl.d/", "names a directory"),
        ("/etc/sysctl.d/50-u.txt", "must end in .conf"),  # item 7
        ("/etc/sysctl.d/50-u.conf~", "must end in .conf"),
        ("/etc/sysctl.d/.conf", "must end in .conf and not start with '.'"),
        ("/etc/sysctl.d/.hidden.conf", "not start with '.'"),
        ("/etc/sysctl.d/50-u.conf\n", "control character"),  # item 7: a trailing newline
        ("/etc/sysctl.d/50-a\tb.conf", "control character"),
        ("/etc/sysctl.d\n/50-u.conf", "control character"),
    ],
)
def test_refused_paths_name_the_option_and_say_why(path, fragment):
    problem = path_syntax_problem(path)
    assert problem and fragment in problem and problem.startswith("path ")


def test_in_roots_compares_resolved_directories(tmp_path):
    real = tmp_path / "usr/lib/sysctl.d"
    real.mkdir(parents=True)
    (tmp_path / "lib").symlink_to(tmp_path / "usr/lib")
    assert in_roots(str(tmp_path / "lib/sysctl.d/x.conf"), [str(real)])
    assert in_roots(str(real / "x.conf"), [str(tmp_path / "lib/sysctl.d")])
    assert not in_roots(str(tmp_path / "usr/lib/x.conf"), [str(real)])
    assert not in_roots(str(real / "sub/x.conf"), [str(real)])
    assert in_roots("/etc/sysctl.d/x.conf", SYSCTL_D_ROOTS, realpath=lambda p: p)


@pytest.mark.parametrize(
    "mode, fragment",
    [
        (stat.S_IFLNK | 0o777, "is a symbolic link (to ../x.conf): refused"),
        (stat.S_IFDIR | 0o755, "is a directory"),
        (stat.S_IFIFO | 0o644, "not a regular file"),
        (stat.S_IFCHR | 0o666, "not a regular file"),
    ],
)
def test_only_regular_files_are_replaced(mode, fragment):
    assert fragment in file_type_problem("/etc/sysctl.d/x.conf", mode, "../x.conf")


def test_a_regular_file_is_fine():
    assert file_type_problem("/etc/sysctl.d/x.conf", stat.S_IFREG | 0o644) is None


def test_managed_means_the_first_line_is_the_managed_line():
    assert is_managed(f"{MANAGED_LINE}\n# header\nnet.ipv4.tcp_rmem = 1 2 3\n")
    assert is_managed(MANAGED_LINE)
    assert not is_managed(f"# admin\n{MANAGED_LINE}\n")
    assert not is_managed("")
    assert not is_managed(None)


def test_ownership_refuses_outside_the_roots_and_foreign_files_naming_force():
    same = dict(realpath=lambda p: p)
    roots = ["/etc/sysctl.d", "/run/sysctl.d"]
    outside = ownership_problem("/some/dir/passwd2.conf", roots, None, **same)
    assert "not in the sysctl.d search roots (/etc/sysctl.d, /run/sysctl.d)" in outside and "force=true" in outside
    foreign = ownership_problem("/etc/sysctl.d/10-admin.conf", roots, "vm.swappiness = 10\n", **same)
    assert "was not written by this collection" in foreign and "tcp_memory_sysctl_file_force" in foreign
    assert ownership_problem("/etc/sysctl.d/99-n.conf", roots, None, **same) is None
    assert ownership_problem("/etc/sysctl.d/99-n.conf", roots, MANAGED_LINE + "\n", **same) is None


def test_host_paths_are_the_host_s_own_under_slash_and_all_moved_under_another_root():
    host = host_paths("/")
    assert host.proc_sys == "/proc/sys" and host.sysctl_conf == "/etc/sysctl.conf"
    assert host.search_roots[0] == "/etc/sysctl.d" and host.lock_directory == "/run/netstack-tcp-tuning"
    image = host_paths("/srv/img/")
    for field, value in image._asdict().items():
        for path in value if isinstance(value, tuple) else (value,):
            assert path.startswith("/srv/img"), (field, path)
    assert image.tuned_in_use_paths[1] == "/srv/img/etc/systemd/system/*.wants/tuned.service"


def test_root_problem_names_root_and_path(tmp_path):
    assert root_problem(str(tmp_path), str(tmp_path / "etc/sysctl.d/x.conf")) is None
    assert root_problem("/", "/etc/sysctl.d/x.conf") is None
    assert "root 'etc' must be an absolute path" in root_problem("etc", "/etc/sysctl.d/x.conf")
    assert f"root {str(tmp_path / 'none')!r} is not a directory" in root_problem(str(tmp_path / "none"), "/x.conf")
    sibling = f"{tmp_path}-other/x.conf"  # shares the prefix as a string, not as a directory
    assert f"path {sibling} is not under root {tmp_path}" in root_problem(str(tmp_path), sibling)

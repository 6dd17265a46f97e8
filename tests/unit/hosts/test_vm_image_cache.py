# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/hosts/vm.sh image: one cached image per Debian release, and a new recipe for one
release removes only that release's older images (another release's image stays usable).

Runs the real vm.sh against a copy of tests/hosts whose build-vm-image.sh is a stub that only
writes the files vm.sh expects, so no mmdebstrap and no network are involved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HOSTS_DIR = Path(__file__).resolve().parents[2] / "hosts"

STUB_BUILD = """#!/usr/bin/env bash
# Stub of build-vm-image.sh: records the release it was asked for, writes what vm.sh reads.
set -euo pipefail
out=$1 release=$2
mkdir -p "$out"
for f in rootfs.img vmlinuz initrd.img id_ed25519 id_ed25519.pub; do : >"$out/$f"; done
echo "debian=$release suite=stub kernel=0.0 python=0.0" >"$out/release"
echo "$release" >>"$(dirname "$out")/builds.log"
"""


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    """A copy of tests/hosts with the stub builder; the image cache is tmp_path/cache."""
    scripts = tmp_path / "hosts"
    scripts.mkdir()
    shutil.copy2(HOSTS_DIR / "vm.sh", scripts / "vm.sh")
    shutil.copy2(HOSTS_DIR / "cache-dir.sh", scripts / "cache-dir.sh")
    shutil.copy2(HOSTS_DIR / "vm-image-customize.sh", scripts / "vm-image-customize.sh")
    (scripts / "build-vm-image.sh").write_text(STUB_BUILD)
    (scripts / "build-vm-image.sh").chmod(0o755)
    (tmp_path / "cache").mkdir()
    return tmp_path


def vm_sh(root: Path, *args: str, release_env: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, NETSTACK_HOSTS_CACHE=str(root / "cache"))
    env.pop("NETSTACK_VM_RELEASE", None)
    if release_env is not None:
        env["NETSTACK_VM_RELEASE"] = release_env
    return subprocess.run(
        ["bash", str(root / "hosts" / "vm.sh"), *args], env=env, capture_output=True, text=True, check=False
    )


def image_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "cache").iterdir() if p.is_dir())


def test_each_release_gets_its_own_image_and_is_built_once(hosts: Path) -> None:
    paths = {}
    for release in ("11", "12", "13", "12"):
        result = vm_sh(hosts, "image", "--release", release)
        assert result.returncode == 0, result.stderr
        paths.setdefault(release, result.stdout.strip())
        assert result.stdout.strip() == paths[release]
    assert (hosts / "cache" / "builds.log").read_text().split() == ["11", "12", "13"]
    assert [Path(p).parent.name.split("-")[1] for p in paths.values()] == ["debian11", "debian12", "debian13"]
    for path in paths.values():
        assert (Path(path).parent / "release").is_file()


def test_default_release_is_12_and_the_environment_overrides_it(hosts: Path) -> None:
    default = vm_sh(hosts, "image")
    from_env = vm_sh(hosts, "image", release_env="13")
    assert default.returncode == 0 and from_env.returncode == 0, default.stderr + from_env.stderr
    assert Path(default.stdout.strip()).parent.name.startswith("image-debian12-")
    assert Path(from_env.stdout.strip()).parent.name.startswith("image-debian13-")


def test_new_recipe_removes_only_that_releases_older_images(hosts: Path) -> None:
    cache = hosts / "cache"
    old_11 = cache / "image-debian11-0123456789abcdef"
    other_12 = cache / "image-debian12-0123456789abcdef"
    legacy = cache / "image-fedcba9876543210"  # a recipe from before releases existed
    for directory in (old_11, other_12, legacy):
        directory.mkdir()
        (directory / "rootfs.img").write_text("")

    result = vm_sh(hosts, "image", "--release", "11")

    assert result.returncode == 0, result.stderr
    new_11 = Path(result.stdout.strip()).parent
    assert image_dirs(hosts) == sorted([new_11.name, other_12.name])
    assert new_11.name != old_11.name


@pytest.mark.parametrize("args", [["image", "--release", "14"], ["start", "vm1", "--release", "bookworm"]])
def test_unknown_release_is_refused_naming_the_value(hosts: Path, args: list[str]) -> None:
    result = vm_sh(hosts, *args)
    assert result.returncode != 0
    assert f"bad release '{args[-1]}'" in result.stderr
    assert image_dirs(hosts) == []

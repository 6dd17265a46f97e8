# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print, as JSON, what the scenarios compare before and after a run on a test host.

- ``sysctl_d``: every entry of the sysctl.d directories and /etc/sysctl.conf with type, mode,
  size, mtime and a sha256 of its content, and one hash over all of it. A dry run that rewrote
  a file, even with the same content, changes the mtime and so the hash. ``conf_files`` keeps
  only what systemd-sysctl reads (``*.conf``), by content and mode: what a rollback restores.
- ``values``: the live value of each key the collection manages, blanks normalised to one
  space (the kernel prints vectors with tabs), null when the key does not exist here. The keys
  are the first argument, a JSON list: the caller takes them from the facts
  (``tcp_memory_facts``' ``sysctl`` keys), so the collection's key table is the only list.
- ``writable``: whether this process may write the key (read-only keys in a container).
- ``dropin`` (with a second, non-empty path argument): that file parsed as sysctl.d does it - ``key = value``
  lines, values normalised - its first line, and the keys with no comment line right above them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

CONFIG_PATHS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/etc/sysctl.conf",
)


def file_entry(path: str) -> dict:
    st = os.lstat(path)
    entry = {"path": path, "mode": oct(st.st_mode), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if os.path.islink(path):
        entry["target"] = os.readlink(path)
    elif os.path.isfile(path):
        with open(path, "rb") as handle:
            entry["sha256"] = hashlib.sha256(handle.read()).hexdigest()
    return entry


def config_entries(paths: tuple) -> list:
    entries = []
    for top in paths:
        if not os.path.lexists(top):
            continue
        entries.append(file_entry(top))
        if os.path.isdir(top) and not os.path.islink(top):
            for name in sorted(os.listdir(top)):
                entries.append(file_entry(os.path.join(top, name)))
    return entries


def conf_files(entries: list) -> dict:
    return {
        entry["path"]: {key: entry.get(key) for key in ("mode", "sha256", "target")}
        for entry in entries
        if entry["path"].endswith(".conf")
    }


def live_value(key: str) -> str | None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, encoding="ascii") as handle:
            return " ".join(handle.read().split())
    except FileNotFoundError:
        return None


def writable(key: str) -> bool:
    return os.access("/proc/sys/" + key.replace(".", "/"), os.W_OK)


def parse_dropin(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return {"path": path, "exists": False, "settings": {}, "first_line": None, "uncommented_keys": []}
    settings = {}
    uncommented = []
    previous = ""
    for line in lines:
        text = line.strip()
        if text and not text.startswith(("#", ";")) and "=" in text:
            key, value = text.split("=", 1)
            key = key.strip().lstrip("-")
            settings[key] = " ".join(value.split())
            if not previous.startswith("#"):
                uncommented.append(key)
        previous = text
    return {
        "path": path,
        "exists": True,
        "settings": settings,
        "first_line": lines[0] if lines else "",
        "uncommented_keys": uncommented,
    }


def managed_keys(argument: str) -> list:
    """The key names of the first argument, a JSON list of dotted sysctl names."""
    keys = json.loads(argument)
    if not isinstance(keys, list) or not keys or not all(isinstance(key, str) and key for key in keys):
        raise SystemExit(f"sysctl_state.py: the first argument must be a JSON list of sysctl names, got {argument!r}")
    return keys


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: sysctl_state.py KEYS_JSON [DROPIN_PATH]")
    keys = managed_keys(sys.argv[1])
    entries = config_entries(CONFIG_PATHS)
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    state = {
        "sysctl_d": {"sha256": digest, "entries": entries, "conf_files": conf_files(entries)},
        "values": {key: live_value(key) for key in keys},
        "writable": {key: writable(key) for key in keys},
    }
    if len(sys.argv) > 2 and sys.argv[2]:
        state["dropin"] = parse_dropin(sys.argv[2])
    json.dump(state, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()

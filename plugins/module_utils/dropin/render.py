# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render a whole sysctl.d drop-in deterministically (pure function of its inputs)."""

from __future__ import annotations

import textwrap
from typing import List, Mapping, Optional

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.values import normalise_value

MANAGED_LINE = "# Managed by netstack.tcp_tuning: do not edit, the next run overwrites this file."
COMMENT_WIDTH = 100
# One line per key: the live value before this collection first set it (state=absent restores it
# when no sysctl.d file sets the key). Comments to systemd-sysctl.
RECORD_PREFIX = "# before netstack.tcp_tuning: "
RECORD_INTRO = "# The values below are the ones these keys had before this collection first set them."


def comment_lines(text: Optional[str]) -> List[str]:
    """Turn free text into '# ' lines; every line is prefixed so no text can become a setting."""
    if not text:
        return []
    lines: List[str] = []
    for paragraph in str(text).splitlines():
        wrapped = textwrap.wrap(paragraph, COMMENT_WIDTH - 2) or [""]
        lines.extend(("# " + line).rstrip() for line in wrapped)
    return lines


def record_lines(records: Optional[Mapping[str, str]]) -> List[str]:
    """'# before netstack.tcp_tuning: key = value' lines, sorted, under one explaining line."""
    if not records:
        return []
    lines = ["", RECORD_INTRO]
    lines.extend(f"{RECORD_PREFIX}{key} = {normalise_value(str(records[key]))}" for key in sorted(records))
    return lines


def render_dropin(
    settings: Mapping[str, str],
    comments: Optional[Mapping[str, str]] = None,
    header: Optional[str] = None,
    records: Optional[Mapping[str, str]] = None,
) -> str:
    """The drop-in text: managed-by line, header, recorded previous values, then each key (sorted)
    under its comment."""
    comments = comments or {}
    lines = [MANAGED_LINE, *comment_lines(header), *record_lines(records)]
    for key in sorted(settings):
        lines.append("")
        lines.extend(comment_lines(comments.get(key)))
        lines.append(f"{key} = {normalise_value(str(settings[key]))}")
    return "\n".join(lines) + "\n"

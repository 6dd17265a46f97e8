# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.precedence import parse_sysctl_conf
from ansible_collections.netstack.tcp_tuning.plugins.module_utils.dropin.render import (
    MANAGED_LINE,
    render_dropin,
)
from hypothesis import given
from hypothesis import strategies as st

SETTINGS = {"net.ipv4.tcp_wmem": "4096\t16384 4194304", "net.core.rmem_max": "6291456"}


def test_rendered_file_is_sorted_commented_and_normalised():
    text = render_dropin(SETTINGS, {"net.core.rmem_max": "Cap for SO_RCVBUF."}, "Target: 100000 connections.")
    assert text == (
        f"{MANAGED_LINE}\n"
        "# Target: 100000 connections.\n"
        "\n"
        "# Cap for SO_RCVBUF.\n"
        "net.core.rmem_max = 6291456\n"
        "\n"
        "net.ipv4.tcp_wmem = 4096 16384 4194304\n"
    )


def test_rendering_does_not_depend_on_input_order():
    reordered = dict(reversed(list(SETTINGS.items())))
    assert render_dropin(SETTINGS) == render_dropin(reordered)


def test_long_comments_are_wrapped_and_every_line_is_a_comment():
    text = render_dropin({"net.core.rmem_max": "1"}, {"net.core.rmem_max": "word " * 60})
    comment_lines = [line for line in text.splitlines() if line.startswith("#")]
    assert len(comment_lines) >= 3
    assert all(len(line) <= 100 for line in text.splitlines())


# Whatever text arrives as comment or header (explanations come from the model), the file sets
# exactly the managed keys: a newline in a comment must not smuggle in an assignment.
free_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(comment=free_text, header=free_text)
def test_comments_and_header_never_become_settings(comment, header):
    text = render_dropin(SETTINGS, {key: comment for key in SETTINGS}, header)
    parsed = {a.key: a.value for a in parse_sysctl_conf(text)}
    assert parsed == {"net.ipv4.tcp_wmem": "4096 16384 4194304", "net.core.rmem_max": "6291456"}

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write the files Ansible needs as YAML (and the role README's table) from the one workload schema.

The workload inputs are defined once, in plugins/plugin_utils/tcp_memory_workload.py. This script rewrites,
between `BEGIN GENERATED: <block>` and `END GENERATED: <block>` comment lines, the parts derived from it:

- plugins/filter/recommend_tcp_memory.yml: the filter's options;
- roles/tcp_memory/meta/argument_specs.yml: the role's workload variables (entry points main and measure);
- roles/tcp_memory/defaults/main.yml: their defaults;
- roles/tcp_memory/vars/main.yml: the list of their names, which tasks/measure.yml passes to the filter;
- roles/tcp_memory/README.md: the table of the workload variables.

`make generate` runs it; tests/unit/plugins/plugin_utils/test_tcp_memory_workload.py fails when a committed
file differs from what this script writes.
  PYTHONPATH=.cache/dev .venv/bin/python -m ansible_collections.netstack.tcp_tuning.tests.tools.generate_workload
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils import tcp_memory_workload as schema
from ansible_collections.netstack.tcp_tuning.plugins.plugin_utils.tcp_memory_workload import (
    PROFILE_NAMES,
    ROLE_PREFIX,
    Input,
)

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 116
SOURCE = "plugins/plugin_utils/tcp_memory_workload.py"


# ---------------------------------------------------------------- text


def role_text(text: str) -> str:
    """O(name) and O(name=value) of a workload input become the role variable's."""
    return re.sub(
        r"O\((" + "|".join(schema.NAMES) + r")(?=[)=])",
        lambda match: f"O({ROLE_PREFIX}{match.group(1)}",
        text,
    )


def markdown_text(text: str) -> str:
    """Ansible doc markup as Markdown: O()/C()/V() as code, M() as code."""
    return re.sub(r"\b[OCVMR]\(([^)]*)\)", lambda match: f"`{match.group(1)}`", text)


def number(value: Any) -> Any:
    """Fractions as the float a user writes (0.25, 2.0)."""
    return float(value) if isinstance(value, Fraction) else value


def yaml_scalar(value: Any) -> str:
    value = number(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", value):
        return value
    return json.dumps(value)


def _plain_safe(text: str) -> bool:
    return not (
        ": " in text
        or " #" in text
        or text.endswith(":")
        or text[0] in "-?:,[]{}#&*!|>'\"%@`"
        or text.lower() in ("yes", "no", "true", "false", "null", "on", "off")
    )


def yaml_text(text: str, indent: int, first_prefix: str) -> list[str]:
    """A long string as a YAML scalar wrapped at WIDTH: plain where safe, else double-quoted."""
    if _plain_safe(text):
        lines = textwrap.wrap(text, WIDTH - indent - len(first_prefix), break_on_hyphens=False)
    else:
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        lines = textwrap.wrap(f'"{quoted}"', WIDTH - indent - len(first_prefix), break_on_hyphens=False)
    pad = " " * (indent + len(first_prefix))
    return [" " * indent + first_prefix + lines[0]] + [pad + line for line in lines[1:]]


# ---------------------------------------------------------------- per input


def paragraphs(spec: Input) -> list[str]:
    """The documentation of one input: its line, what the profiles give, further paragraphs."""
    text = [spec.doc]
    if spec.unit:
        text[0] += f" In {spec.unit}."
    if spec.profile_values:
        per_profile = ", ".join(f"C({profile}) {number(spec.profile_values[profile]):g}" for profile in PROFILE_NAMES)
        text.append(f"V(null) takes the profile's ({per_profile}).")
    return text + list(spec.more)


def option_lines(spec: Input, indent: int, name: str, texts: Sequence[str], role: bool) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}{name}", f"{pad}  description:"]
    for text in texts:
        lines += yaml_text(text, indent + 4, "- ")
    lines.append(f"{pad}  type: {spec.ansible_type}")
    if spec.choices:
        lines.append(f"{pad}  choices: [{', '.join(spec.choices)}]")
    if spec.default is not None and not spec.measured:
        lines.append(f"{pad}  default: {yaml_scalar(spec.default)}")
    if spec.required and not role:
        lines.append(f"{pad}  required: true")
    return lines


def role_paragraphs(spec: Input) -> list[str]:
    texts = [role_text(text) for text in paragraphs(spec)]
    if spec.required:
        texts.append("Required to tune or to report; an undo (C(tcp_memory_state=absent)) needs none.")
    return texts


# ---------------------------------------------------------------- blocks


def filter_options() -> list[str]:
    lines: list[str] = []
    for spec in schema.INPUTS:
        lines += option_lines(spec, 4, f"{spec.name}:", paragraphs(spec), role=False)
    return lines


def argument_spec_main() -> list[str]:
    lines: list[str] = []
    for spec in schema.INPUTS:
        name = spec.role_variable
        lines += option_lines(spec, 6, f"{name}: &{name}", role_paragraphs(spec), role=True)
    return lines


def argument_spec_measure() -> list[str]:
    return [f"      {spec.role_variable}: *{spec.role_variable}" for spec in schema.INPUTS]


def defaults() -> list[str]:
    lines: list[str] = []
    for spec in schema.INPUTS:
        comment = markdown_text(spec.doc).replace("`", "")
        if spec.required:
            lines += [f"# {comment} Required to tune or report, no default:", f"# {spec.role_variable}: 100000"]
            continue
        if spec.profile_values:
            comment += " null: the profile's."
        if spec.measured:
            comment += f" null: measured with tcp_memory_calibrate, else {yaml_scalar(spec.default)}."
        lines += [f"# {line}" for line in textwrap.wrap(comment, WIDTH - 2)]
        lines.append(f"{spec.role_variable}: {yaml_scalar(None if spec.measured else spec.default)}")
    return lines


def variable_names() -> list[str]:
    return ["__tcp_memory_workload_variables:"] + [f"  - {spec.role_variable}" for spec in schema.INPUTS]


def _cell(text: str) -> str:
    return markdown_text(text).replace("|", "\\|")


def readme_table() -> list[str]:
    header = "| variable | type | default | " + " | ".join(f"`{profile}`" for profile in PROFILE_NAMES) + " | what |"
    lines = [header, "|" + " --- |" * (4 + len(PROFILE_NAMES))]
    for spec in schema.INPUTS:
        if spec.required:
            default = "required"
        elif spec.measured:
            default = f"null (measured, else `{yaml_scalar(spec.default)}`)"
        elif spec.default is None and not spec.profile_values:
            default = "null (not set)"
        else:
            default = f"`{yaml_scalar(spec.default)}`" if not spec.profile_values else "null (the profile's)"
        per_profile = [
            f"`{number(spec.profile_values[profile]):g}`" if spec.profile_values else "" for profile in PROFILE_NAMES
        ]
        what = " ".join(_cell(role_text(text)) for text in [spec.doc, *spec.more])
        if spec.unit:
            what = f"{_cell(role_text(spec.doc))} In {spec.unit}. " + " ".join(_cell(role_text(t)) for t in spec.more)
        lines.append(
            f"| `{spec.role_variable}` | {spec.ansible_type} | {default} | "
            + " | ".join(per_profile)
            + f" | {what.strip()} |"
        )
    return lines


# ---------------------------------------------------------------- files

Block = Callable[[], list[str]]
# path -> (comment leader, {block name: renderer})
FILES: dict[str, tuple[str, dict[str, Block]]] = {
    "plugins/filter/recommend_tcp_memory.yml": ("#", {"workload options": filter_options}),
    "roles/tcp_memory/meta/argument_specs.yml": (
        "#",
        {"main workload options": argument_spec_main, "measure workload options": argument_spec_measure},
    ),
    "roles/tcp_memory/defaults/main.yml": ("#", {"workload variables": defaults}),
    "roles/tcp_memory/vars/main.yml": ("#", {"workload variable names": variable_names}),
    "roles/tcp_memory/README.md": ("<!--", {"workload variables": readme_table}),
}


def render(path: str, current: str) -> str:
    """current with every generated block of path rewritten from the schema."""
    leader, blocks = FILES[path]
    html = leader == "<!--"
    text = current
    for block, renderer in blocks.items():
        begin, end = f"{leader} BEGIN GENERATED: {block}", f"{leader} END GENERATED: {block}"
        pattern = re.compile(
            r"^([ \t]*)" + re.escape(begin) + r"[^\n]*\n.*?^[ \t]*" + re.escape(end) + r"[^\n]*$", re.M | re.S
        )
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"{path}: no block between '{begin}' and '{end}'")
        indent = match.group(1)
        note = f" (from {SOURCE}: make generate)"
        body = "\n".join(renderer())
        if html:  # Markdown: the note inside the comment, blank lines around the table
            replacement = f"{indent}{begin}{note} -->\n\n{body}\n\n{indent}{end} -->"
        else:
            replacement = f"{indent}{begin}{note}\n{body}\n{indent}{end}"
        text = text[: match.start()] + replacement + text[match.end() :]
    return text


def rendered(root: Path = ROOT) -> dict[str, tuple[str, str]]:
    """path -> (committed text, generated text)."""
    result = {}
    for path in FILES:
        current = (root / path).read_text(encoding="utf-8")
        result[path] = (current, render(path, current))
    return result


def main(argv: Sequence[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, (current, generated) in rendered().items():
        if current != generated:
            stale.append(path)
            if not check:
                (ROOT / path).write_text(generated, encoding="utf-8")
    verb = "differ from the schema" if check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "generated files match the schema")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running a module's main() in-process, for every supported ansible-core.

patch_module_args: 2.19's own helper, or the classic basic._ANSIBLE_ARGS patch that ansible-core 2.16 to
2.18 modules read their arguments from. run_module: main() with arguments, its exit_json or fail_json
caught and returned."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Type
from unittest import mock

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19

    @contextlib.contextmanager
    def patch_module_args(args: Optional[dict[str, Any]] = None) -> Iterator[None]:
        serialized = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode("utf-8")
        with mock.patch.object(basic, "_ANSIBLE_ARGS", serialized):
            yield


class ExitJson(Exception):
    """main() called exit_json; args[0] holds its keyword arguments."""


class FailJson(Exception):
    """main() called fail_json; args[0] holds its keyword arguments."""


def _exit_json(_module: basic.AnsibleModule, **kwargs: Any) -> None:
    raise ExitJson(kwargs)


def _fail_json(_module: basic.AnsibleModule, **kwargs: Any) -> None:
    raise FailJson(kwargs)


def run_module(main: Callable[[], None], args: Dict[str, Any]) -> Tuple[Type[Exception], Dict[str, Any]]:
    """Run a module's main() with `args`; returns (ExitJson or FailJson, the keyword arguments it passed)."""
    exits = mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json)
    fails = mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json)
    with patch_module_args(args), exits, fails:
        try:
            main()
        except (ExitJson, FailJson) as caught:
            return type(caught), caught.args[0]
    raise AssertionError("main() returned without calling exit_json or fail_json")


__all__ = ["ExitJson", "FailJson", "patch_module_args", "run_module"]

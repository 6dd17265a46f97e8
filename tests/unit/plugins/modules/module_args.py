# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""patch_module_args for every supported ansible-core: 2.19's own helper, or the classic
basic._ANSIBLE_ARGS patch that ansible-core 2.16 to 2.18 modules read their arguments from."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Optional
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


__all__ = ["patch_module_args"]

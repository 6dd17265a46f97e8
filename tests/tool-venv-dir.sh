#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Print where the venv of a test tool (docs tools, an older ansible-core) lives. Such venvs are tools, not the
# code under test: like the guest images (tests/hosts/cache-dir.sh) they are kept machine-wide, outside any
# clone, in /var/cache/netstack-tcp-tuning/venvs/NAME-HASH, HASH of the requirement files and of the Python
# that builds them, so a fresh clone on a machine that built them once reuses them. NETSTACK_VENVS_CACHE
# overrides the directory; where the machine-wide one cannot be created (not root), .cache/venvs in the clone.
#   usage: tool-venv-dir.sh NAME REQUIREMENT_FILE...   (PYTHON: the interpreter, default python3)
set -euo pipefail
name=${1:?usage: tool-venv-dir.sh NAME REQUIREMENT_FILE...}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
machine_cache=/var/cache/netstack-tcp-tuning/venvs
if [ -n "${NETSTACK_VENVS_CACHE:-}" ]; then
  cache=$NETSTACK_VENVS_CACHE
elif mkdir -p "$machine_cache" 2>/dev/null && [ -w "$machine_cache" ]; then
  cache=$machine_cache
else
  cache=$root/.cache/venvs
fi
key=$({ cat "$@"; "${PYTHON:-python3}" -VV; } | sha256sum | cut -c1-16)
echo "$cache/$name-$key"

#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Run `ansible-test sanity` on a copy of the working tree placed where ansible-test wants it:
# .../ansible_collections/netstack/tcp_tuning. Copies what git tracks plus untracked files that
# are not ignored, so the result matches what a commit would contain.
set -euo pipefail
bin=$(cd "${1:?usage: run-sanity.sh VENV_BIN}" && pwd)
shift
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/netstack/tcp_tuning"
mkdir -p "$dest"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$dest")
if [ -n "$(find "$root/tests/sanity" -name 'ignore-*.txt' -size +0 2>/dev/null)" ]; then
  echo "tests/sanity/ignore-*.txt must be empty: fix the code instead" >&2
  exit 1
fi
# ansible-test --venv downloads a pip bootstrap script from a host outside this network; give it
# the offline equivalent under the cache name it looks for (derived from its pinned pip version).
pip_version=$("$bin/python" -c 'import re, ansible_test, pathlib; p = pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py"; print(re.search(r"pip=.([0-9.]+).", p.read_text()).group(1))')
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cp "$root/tests/sanity_get_pip.py" "$cache"
cd "$dest"
git init -q . && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm sanity
PATH="$bin:$PATH" "$bin/ansible-test" sanity --python 3.11 --venv --color no --truncate 0 "$@"

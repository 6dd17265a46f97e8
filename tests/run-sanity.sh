#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the working tree placed where ansible-test wants it:
# .../ansible_collections/netstack/tcp_tuning. Copies what git tracks plus untracked files that
# are not ignored, so the result matches what a commit would contain.
set -euo pipefail
bin=${1:?usage: run-sanity.sh VENV_BIN}
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
cd "$dest"
git init -q . && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm sanity
PATH="$bin:$PATH" "$bin/ansible-test" sanity --python 3.11 --venv --color no --truncate 0 "$@"

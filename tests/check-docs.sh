#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Prove the built collection is clean and its documentation renders: every module, filter
# and role must render with ansible-doc from the collection installed from the tarball.
set -euo pipefail
bin=$(cd "${1:?usage: check-docs.sh VENV_BIN INSTALLED_PATH TARBALL}" && pwd)
installed=${2:?}
tarball=${3:?}
root=$(cd "$(dirname "$0")/.." && pwd)

if tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.cache|\.git|__pycache__|\.pytest_cache|\.hypothesis)(/|$)|\.(qcow2|img|raw|tar\.gz)$'; then
  echo "the tarball contains files that must not ship (above)" >&2
  exit 1
fi

export ANSIBLE_COLLECTIONS_PATH="$installed"
count=0
render() {
  local kind=$1 name=$2 out
  out=$("$bin/ansible-doc" -t "$kind" "netstack.tcp_tuning.$name" 2>&1) || {
    echo "$out" >&2; echo "ansible-doc -t $kind netstack.tcp_tuning.$name failed" >&2; exit 1; }
  if grep -qiE '^\[(WARNING|ERROR)\]' <<<"$out"; then
    echo "$out" >&2; echo "ansible-doc -t $kind $name printed a warning" >&2; exit 1
  fi
  count=$((count + 1))
  echo "ok: ansible-doc -t $kind netstack.tcp_tuning.$name ($(wc -l <<<"$out") lines)"
}
for f in "$root"/plugins/modules/*.py; do
  [ -e "$f" ] && render module "$(basename "$f" .py)"
done
for f in "$root"/plugins/filter/*.yml; do
  [ -e "$f" ] && render filter "$(basename "$f" .yml)"
done
for d in "$root"/roles/*/; do
  [ -d "$d" ] && render role "$(basename "$d")"
done
# The list views must work too: one undocumented plugin breaks them for the whole collection.
"$bin/ansible-doc" -t module -l netstack.tcp_tuning >/dev/null
"$bin/ansible-doc" -t filter -l netstack.tcp_tuning >/dev/null
echo "documentation renders for $count plugins and roles"

#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Prove the built collection is clean and its documentation renders: every module, filter
# and role must render with ansible-doc from the collection installed from the tarball;
# antsibull-docs lint-collection-docs --plugin-docs and galaxy-importer (ansible-test, ansible-lint and containers
# off: tests/galaxy-importer.cfg) find no error and no warning; nothing dev-only ships.
set -euo pipefail
usage="usage: check-docs.sh VENV_BIN INSTALLED_PATH TARBALL DOCS_TOOLS_BIN"
bin=$(cd "${1:?$usage}" && pwd)
installed=$(cd "${2:?$usage}" && pwd)
tarball=$(cd "$(dirname "${3:?$usage}")" && pwd)/$(basename "$3")
tools=$(cd "${4:?$usage}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)

if tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.cache|\.git|__pycache__|\.pytest_cache|\.hypothesis)(/|$)|\.(qcow2|img|raw|tar\.gz)$'; then
  echo "the tarball contains files that must not ship (above)" >&2
  exit 1
fi
# Tests, scenarios, benchmarks and development tooling stay out (galaxy.yml build_ignore); docs/ ships.
if tar -tzf "$tarball" | grep -E '^(\./)?(tests|molecule|benchmarks|\.ci|requirements)(/|$)|^(\./)?(Makefile|requirements\.txt|constraints\.txt|pyproject\.toml|\.ansible-lint)$'; then
  echo "the tarball contains development files (above): add them to build_ignore in galaxy.yml" >&2
  exit 1
fi
echo "ok: the tarball holds no tests/, molecule/, benchmarks/ or development tooling"

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

# antsibull-docs: markup (O(), C(), M() references to options that exist) in every plugin and role doc.
out=$(cd "$installed/ansible_collections/netstack/tcp_tuning" &&
      PATH="$tools:$PATH" ANSIBLE_COLLECTIONS_PATH="$installed" \
      "$tools/antsibull-docs" lint-collection-docs --plugin-docs . 2>&1) || {
  echo "$out" >&2; echo "antsibull-docs lint-collection-docs --plugin-docs found errors (above)" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "$out" >&2; echo "antsibull-docs lint-collection-docs --plugin-docs printed something (above)" >&2; exit 1
fi
echo "ok: antsibull-docs lint-collection-docs --plugin-docs"

# galaxy-importer: what Galaxy checks on upload (metadata, ansible-doc), on the tarball; its ansible-lint is make lint's.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifact=$tarball
if ! grep -qE '^repository: *[^ ]' "$root/galaxy.yml"; then
  # Galaxy requires a repository address; this collection has none published yet, and galaxy.yml carries no
  # placeholder. Check everything else on a copy whose MANIFEST.json names a stand-in, and say so.
  echo "NOTE: galaxy.yml has no repository: Galaxy refuses the upload until one is set; checking the rest"
  mkdir "$work/unpacked"
  tar -xzf "$tarball" -C "$work/unpacked"
  "$tools/python" - "$work/unpacked/MANIFEST.json" <<'PY'
import json, sys
path = sys.argv[1]
manifest = json.load(open(path))
manifest["collection_info"]["repository"] = "https://repository.invalid/not-published-yet"
json.dump(manifest, open(path, "w"), indent=4)
PY
  artifact=$work/$(basename "$tarball")
  tar -czf "$artifact" -C "$work/unpacked" .
fi
log=$work/galaxy-importer.log
(cd "$work" && PATH="$tools:$PATH" GALAXY_IMPORTER_CONFIG="$root/tests/galaxy-importer.cfg" \
  "$tools/python" -m galaxy_importer.main "$artifact") >"$log" 2>&1 || {
  cat "$log" >&2; echo "galaxy-importer failed (above)" >&2; exit 1; }
if grep -E '^(WARNING|ERROR)' "$log" >&2 || ! grep -q '^Importer processing completed successfully' "$log"; then
  echo "galaxy-importer reported the warnings or errors above" >&2
  exit 1
fi
echo "ok: galaxy-importer (ansible-test, ansible-lint and containers off), no warning"

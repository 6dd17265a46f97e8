#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# The unit tests and the network-namespace integration tests under each older ansible-core release
# (which tests: see below), each in its own venv (.cache/compat/coreX.Y, from requirements/coreX.Y.txt and its constraints).
# The newest release (the dev venv, requirements.txt) runs the same tests in `make unit integration`
# and sanity in `make sanity`. Every test id ends in [coreX.Y.Z] (tests/conftest.py), so a failure
# line names its release; the summary at the end lists each release, its Python and its time.
#   usage: run-compat.sh RELEASE... (e.g. 2.16 2.17 2.18); COMPAT_TESTS overrides the test paths.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
: "${ANSIBLE_COLLECTIONS_PATH:=$root/.cache/dev}"
export ANSIBLE_COLLECTIONS_PATH
# The oldest release given (the first argument) runs the unit tests and every network-namespace test
# (tests/integration/test_*_netns.py: the modules, the role, the tune, untune and report playbooks);
# the releases after it run the unit tests and the tests that go through the role and the playbooks,
# where the controller's ansible-core matters (templating, argument specs, include_role, the modules'
# arguments): tune, report, untune, the drop-in module with and without the role. The module-internal
# tests (facts faults, states, calibration, the lock under concurrency, the textfile metrics) and the
# report-equivalence check run under the newest release (make integration). COMPAT_TESTS overrides both.
full_tests=(tests/unit)
for test_file in tests/integration/test_*_netns.py; do
  [ "$test_file" = tests/integration/test_report_equivalence_netns.py ] || full_tests+=("$test_file")
done
role_tests=(tests/unit tests/integration/test_playbooks_netns.py tests/integration/test_sysctl_dropin_netns.py
  tests/integration/test_undo_netns.py)
[ "$#" -gt 0 ] || { echo "usage: run-compat.sh RELEASE..." >&2; exit 2; }

venv_for() {  # RELEASE -> venv dir, (re)built when its requirements change
  local release=$1 venv=.cache/compat/core$1
  local requirements=requirements/core$release.txt constraints=requirements/core$release-constraints.txt
  local stamp
  stamp="$venv/.stamp-$(cat "$requirements" "$constraints" | sha256sum | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    echo "building $venv from $requirements" >&2
    # stdout is this function's answer: pip's output goes to stderr
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" -c "$constraints" >&2
    touch "$stamp"
  fi
  echo "$venv"
}

summary=()
failed=0
first=$1
for release in "$@"; do
  start=$SECONDS
  if [ -n "${COMPAT_TESTS:-}" ]; then
    read -r -a tests <<<"$COMPAT_TESTS"
  elif [ "$release" = "$first" ]; then
    tests=("${full_tests[@]}")
  else
    tests=("${role_tests[@]}")
  fi
  venv=$(venv_for "$release")
  core=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
  py=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
  echo "== compat: ansible-core $core on Python $py ($venv): ${tests[*]}"
  # this release's ansible, ansible-playbook and pytest first on PATH, whatever the caller's PATH holds
  if PATH="$root/$venv/bin:$PATH" "$venv/bin/python" -m pytest -p no:cacheprovider \
    -o junit_suite_name="ansible-core-$core" "${tests[@]}"; then
    result=passed
  else
    result=FAILED
    failed=1
  fi
  summary+=("ansible-core $core, Python $py: $result ($((SECONDS - start)) s)")
done
echo "== compat summary"
printf '  %s\n' "${summary[@]}"
exit "$failed"

#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# The tests that touch the controller's ansible-core, under each older ansible-core release
# (which tests: see below), each in its own venv (kept machine-wide: tests/tool-venv-dir.sh), from requirements/coreX.Y.txt and its constraints.
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
# Only what touches the controller's ansible-core runs here: templating the filter (Templar, an ad-hoc
# `ansible` run), the modules' entry points (AnsibleModule argument parsing), the role (argument specs,
# include_role, templates) and the playbooks. The pure-Python parts (model, parsers, hypothesis
# properties, tools, image cache) do not import the controller and run once, under the newest release
# (make unit integration); so do the role's behaviours past the controller (refusals, rollback, textfile,
# locks), which run on the target whatever the controller. The oldest release given (the first argument)
# runs the filter and module entry-point unit tests, the filter on live facts, and each way a user enters
# the role: tune (check mode, apply, idempotent rerun), report, untune, and the role's argument checking.
# The releases between it and the newest (tested whole by make unit integration) run the filter and the
# tune and report playbooks, which reach the role, its templates and every module through AnsiballZ;
# ansible-core changes between releases are caught at the two ends that bound them. COMPAT_TESTS
# overrides the sets. The releases run side by side (their logs are printed one after the other at the end).
entry_point_tests=(tests/unit/plugins/filter tests/integration/test_recommend_tcp_memory_live.py
  tests/integration/test_playbooks_netns.py::test_tune_applies_in_a_namespace_idempotently_skips_global_keys_and_report_reads_it_back
  tests/integration/test_playbooks_netns.py::test_report_is_read_only_holds_or_not_keeps_its_json_shape_and_writes_to_the_working_directory)
oldest_tests=("${entry_point_tests[@]}" tests/unit/plugins/modules
  tests/integration/test_undo_netns.py::test_untune_playbook_restores_the_recorded_per_namespace_values_and_a_second_run_changes_nothing
  tests/integration/test_sysctl_dropin_netns.py::test_role_rejects_bad_input_naming_the_variable_before_writing)
[ "$#" -gt 0 ] || { echo "usage: run-compat.sh RELEASE..." >&2; exit 2; }

venv_for() {  # RELEASE -> venv dir, built once per requirements (under a lock: runs may share the cache)
  local release=$1 requirements=requirements/core$1.txt constraints=requirements/core$1-constraints.txt
  local venv
  # kept machine-wide like the guest images: a fresh clone reuses what an earlier run built
  venv=$(PYTHON=$python tests/tool-venv-dir.sh "core$release" "$requirements" "$constraints")
  mkdir -p "$(dirname "$venv")"
  exec 8>"$venv.lock"
  flock 8
  if [ ! -e "$venv/.complete" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    echo "building $venv from $requirements" >&2
    # stdout is this function's answer: pip's output goes to stderr
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" -c "$constraints" >&2
    touch "$venv/.complete"
  fi
  flock -u 8
  echo "$venv"
}

# The releases side by side, first their venvs (pip, unpacking the community package), then their tests, each
# writing its own log: much of a run is waiting (pip's downloads, ansible's start, the tests' timeouts), so two
# cores hold three releases. The logs are printed in the order of the releases once all have finished.
logs=.cache/compat/logs
rm -rf "$logs"
mkdir -p "$logs"
pids=()
for release in "$@"; do
  venv_for "$release" >"$logs/$release.venv" 2>"$logs/$release.pip" &
  pids+=($!)
done
venvs=()
for index in "${!pids[@]}"; do
  release=${*:index+1:1}
  if ! wait "${pids[index]}"; then
    echo "building the venv of ansible-core $release failed:" >&2
    cat "$logs/$release.pip" >&2
    exit 1
  fi
  venvs+=("$(cat "$logs/$release.venv")")
done

run_release() {  # RELEASE VENV: this release's tests; its output goes to $logs/RELEASE.log, its result to .result
  local release=$1 venv=$2 start=$SECONDS core py result
  local -a tests
  if [ -n "${COMPAT_TESTS:-}" ]; then
    read -r -a tests <<<"$COMPAT_TESTS"
  elif [ "$release" = "$first" ]; then
    tests=("${oldest_tests[@]}")
  else
    tests=("${entry_point_tests[@]}")
  fi
  core=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
  py=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
  echo "== compat: ansible-core $core on Python $py ($venv): ${tests[*]}"
  # this release's ansible, ansible-playbook and pytest first on PATH, whatever the caller's PATH holds
  if PATH="$root/$venv/bin:$PATH" "$venv/bin/python" -m pytest -p no:cacheprovider \
    -o junit_suite_name="ansible-core-$core" "${tests[@]}"; then
    result=passed
  else
    result=FAILED
  fi
  echo "ansible-core $core, Python $py: $result ($((SECONDS - start)) s)" >"$logs/$release.result"
}

first=$1
pids=()
for index in "${!venvs[@]}"; do
  release=${*:index+1:1}
  echo "== compat: ansible-core $release started ($(date -u +%H:%M:%S) UTC), log $logs/$release.log"
  run_release "$release" "${venvs[index]}" >"$logs/$release.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

failed=0
summary=()
for release in "$@"; do
  cat "$logs/$release.log"
  line=$(cat "$logs/$release.result" 2>/dev/null || echo "ansible-core $release: no result (see $logs/$release.log)")
  case $line in *": passed ("*) ;; *) failed=1 ;; esac
  summary+=("$line")
done
echo "== compat summary"
printf '  %s\n' "${summary[@]}"
exit "$failed"

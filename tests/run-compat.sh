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
# (make unit integration). The oldest release given (the first argument) runs all of that: the filter and
# module entry points, the role and playbook tests (tune, report, untune, the drop-in module with and
# without the role), the role's bad-input and node_exporter textfile tests. The releases between it and
# the newest (tested whole by make unit integration) run the entry points a user meets: the filter
# through Templar and on live facts, and the playbooks (tune in check mode and for real, report), which
# reach the role, its templates and every module through AnsiballZ; ansible-core changes between releases
# are caught at the two ends that bound them. COMPAT_TESTS overrides the sets. The releases run side
# by side (their logs are printed one after the other at the end).
controller_units=(tests/unit/plugins/filter tests/unit/plugins/modules)
role_tests=("${controller_units[@]}" tests/integration/test_recommend_tcp_memory_live.py
  tests/integration/test_playbooks_netns.py tests/integration/test_sysctl_dropin_netns.py
  tests/integration/test_undo_netns.py)
full_tests=("${role_tests[@]}" tests/integration/test_bad_input_dropin_netns.py
  tests/integration/test_textfile_netns.py)
entry_point_tests=(tests/unit/plugins/filter tests/integration/test_recommend_tcp_memory_live.py
  tests/integration/test_playbooks_netns.py)
# Tests in those files of a module on its own (its checks, lock, rollback, undo: code that runs on the
# target, whatever the controller) run under the newest release only; the role runs reach every module
# through the controller's packaging (AnsiballZ) and argument checking.
module_only=(
  tests/integration/test_bad_input_dropin_netns.py::test_the_module_refuses_bad_input_and_changes_nothing
  tests/integration/test_bad_input_dropin_netns.py::test_a_rolled_back_run_leaves_the_directory_and_the_namespace_as_they_were
  tests/integration/test_bad_input_dropin_netns.py::test_a_second_run_waits_for_the_lock_and_names_its_holder
  tests/integration/test_bad_input_dropin_netns.py::test_keys_and_records_read_from_the_dropin_are_checked_as_settings
  tests/integration/test_bad_input_dropin_netns.py::test_an_unprivileged_user_cannot_hold_or_redirect_the_lock
  tests/integration/test_bad_input_dropin_netns.py::test_a_full_or_read_only_sysctl_d_says_so_and_reports_nothing_changed
  tests/integration/test_sysctl_dropin_netns.py::test_applies_in_the_namespace_only_is_idempotent_and_rolls_back_a_refused_value
  tests/integration/test_undo_netns.py::test_module_undo_restores_the_later_file_or_the_boot_value_and_is_idempotent
)
deselect=()
for test_id in "${module_only[@]}"; do deselect+=(--deselect "$test_id"); done
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
  local -a tests selection=("${deselect[@]}")
  if [ -n "${COMPAT_TESTS:-}" ]; then
    read -r -a tests <<<"$COMPAT_TESTS"
    selection=()
  elif [ "$release" = "$first" ]; then
    tests=("${full_tests[@]}")
  else
    tests=("${entry_point_tests[@]}")
  fi
  core=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
  py=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
  echo "== compat: ansible-core $core on Python $py ($venv): ${tests[*]}"
  # this release's ansible, ansible-playbook and pytest first on PATH, whatever the caller's PATH holds
  if PATH="$root/$venv/bin:$PATH" "$venv/bin/python" -m pytest -p no:cacheprovider \
    -o junit_suite_name="ansible-core-$core" "${selection[@]}" "${tests[@]}"; then
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

#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Run the stages of `make test`, each as its own `make STAGE`, and print how long each took at the
# end, also when one failed, followed by the molecule stage's time per scenario. Every stage runs even
# after a failure, so one run of CI shows everything that is wrong; the exit status is non-zero if any
# stage failed.
#
# `--alongside STAGE` runs that stage at the same time as the others (which run one after the other):
# the Molecule stage spends much of its time waiting for its guests (boots, emulated links, held load),
# time the controller-side stages can use. Its output goes to .cache/stage-logs/STAGE.log and is
# printed when it ends.
#
# usage: tests/run-stages.sh [--alongside STAGE] STAGE...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

declare -A seconds status
failed=0
total_start=$SECONDS
# The molecule stage's time per scenario (tests/run-molecule.sh writes it, also on failure).
molecule_summary=.cache/molecule-logs/summary.txt
rm -f "$molecule_summary"
alongside=
if [ "${1:-}" = --alongside ]; then
  alongside=${2:?usage: run-stages.sh [--alongside STAGE] STAGE...}
  shift 2
fi
stages=("$@")
if [ -n "$alongside" ]; then
  mkdir -p .cache/stage-logs
  alongside_log=.cache/stage-logs/$alongside.log
  echo "===== make $alongside alongside the other stages ($(date -u +%H:%M:%S) UTC; output in $alongside_log)"
  alongside_start=$SECONDS
  make --no-print-directory "$alongside" >"$alongside_log" 2>&1 &
  alongside_pid=$!
  # An interrupted run stops the stage running alongside too (its own traps clean up its hosts).
  trap 'kill -INT "$alongside_pid" 2>/dev/null; wait "$alongside_pid"; exit 130' INT TERM
fi
for stage in "${stages[@]}"; do
  echo "===== make $stage ($(date -u +%H:%M:%S) UTC)"
  start=$SECONDS
  if make --no-print-directory "$stage"; then
    status[$stage]=passed
  else
    status[$stage]=FAILED
    failed=1
  fi
  seconds[$stage]=$((SECONDS - start))
done

if [ -n "$alongside" ]; then
  echo "===== waiting for make $alongside ($(date -u +%H:%M:%S) UTC)"
  if wait "$alongside_pid"; then
    status[$alongside]=passed
  else
    status[$alongside]=FAILED
    failed=1
  fi
  seconds[$alongside]=$((SECONDS - alongside_start))
  trap - INT TERM
  echo "===== make $alongside (ran alongside): its output"
  cat "$alongside_log"
  stages+=("$alongside")
fi

echo "===== make test: time per stage${alongside:+ ($alongside ran alongside the others)}"
for stage in "${stages[@]}"; do
  printf '  %-12s %-7s %5ss  (%dm%02ds)\n' "$stage" "${status[$stage]}" "${seconds[$stage]}" \
    $((seconds[$stage] / 60)) $((seconds[$stage] % 60))
done
total=$((SECONDS - total_start))
printf '  %-12s %-7s %5ss  (%dm%02ds)\n' total "" "$total" $((total / 60)) $((total % 60))
if [ -f "$molecule_summary" ]; then
  echo "===== make molecule: time per scenario"
  sed 's/^/  /' "$molecule_summary"
fi
exit "$failed"

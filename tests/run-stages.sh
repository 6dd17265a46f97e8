#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Run the stages of `make test` one after the other, each as its own `make STAGE`, and print how
# long each took at the end, also when one failed, followed by the molecule stage's time per
# scenario. Every stage runs even after a failure, so one run of CI shows everything that is wrong;
# the exit status is non-zero if any stage failed.
#
# usage: tests/run-stages.sh STAGE...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

declare -A seconds status
failed=0
total_start=$SECONDS
# The molecule stage's time per scenario (tests/run-molecule.sh writes it, also on failure).
molecule_summary=.cache/molecule-logs/summary.txt
rm -f "$molecule_summary"
for stage in "$@"; do
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

echo "===== make test: time per stage"
for stage in "$@"; do
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

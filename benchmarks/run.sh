#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# `make bench`: every figure of docs/benchmarks.md, in one go.
#   facts - tcp_memory_facts and the report playbook at 10k/100k/1M (C1M) connections held in a network
#           namespace, against ss (benchmarks/facts_bench.py); ~25 minutes, ~3.5 GiB of memory at 1M
#   role  - the tcp_memory role against one ansible.posix.sysctl task per key, container and VM
#           (benchmarks/role_cost.py)
#   fleet - playbooks/report.yml against 20 containers with forks 10 (benchmarks/fleet_report.py)
# Usage: benchmarks/run.sh VENV_BIN [facts_bench.py options, e.g. --sizes 10000,100000 --runs 3]
#   (make bench passes BENCH_ARGS as those options: BENCH=facts make bench BENCH_ARGS="--runs 21")
# BENCH=facts,role,fleet (the default) picks which run; BENCH_OUT (default .cache/bench) keeps the JSON.
set -euo pipefail
bin=${1:?usage: benchmarks/run.sh VENV_BIN [facts_bench.py options]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_OUT:-$root/.cache/bench}
benches=${BENCH:-facts,role,fleet}
if [ "$(id -u)" -ne 0 ]; then
  echo "benchmarks/run.sh: run as root (it creates network namespaces, containers and VMs)" >&2
  exit 1
fi
for bench in ${benches//,/ }; do
  case $bench in
    facts | role | fleet) ;;
    *)
      echo "benchmarks/run.sh: unknown benchmark '$bench' in BENCH (facts, role, fleet)" >&2
      exit 2
      ;;
  esac
done
mkdir -p "$out"
# A missed target or a failed run is reported at the end; the other benchmarks still run.
status=0
for bench in ${benches//,/ }; do
  echo "== benchmark: $bench (figures in $out/$bench.json)"
  # Every script bounds and cleans up its own runs; these timeouts are the backstop for the whole run.
  case $bench in
    facts)
      timeout --signal=INT --kill-after=60 3600 \
        "$bin/python" "$root/benchmarks/facts_bench.py" --venv-bin "$bin" --json "$out/facts.json" "$@" || status=1
      ;;
    role)
      timeout --signal=TERM --kill-after=120 2400 \
        "$bin/python" "$root/benchmarks/role_cost.py" --venv-bin "$bin" --json "$out/role.json" || status=1
      ;;
    fleet)
      timeout --signal=TERM --kill-after=60 900 \
        "$bin/python" "$root/benchmarks/fleet_report.py" --venv-bin "$bin" --json "$out/fleet.json" || status=1
      ;;
  esac
done
[ "$status" -eq 0 ] || echo "benchmarks/run.sh: a target was missed or a run failed (see above)" >&2
exit "$status"

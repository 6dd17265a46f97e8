#!/usr/bin/env bash
# `make bench`: tcp_memory_facts at 10k/50k/100k connections against ss (docs/benchmarks.md).
# Usage: benchmarks/run.sh VENV_BIN [facts_bench.py options, e.g. --sizes 10000 --runs 5]
set -euo pipefail
bin=${1:?usage: benchmarks/run.sh VENV_BIN [options]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "benchmarks/run.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi
# Each size is bounded inside facts_bench.py; this is the backstop for the whole run.
exec timeout --signal=INT --kill-after=60 3600 "$bin/python" "$root/benchmarks/facts_bench.py" "$@"

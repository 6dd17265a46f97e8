#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Run Molecule scenarios (molecule/*/molecule.yml) with `molecule test` and exit non-zero if any
# failed. Whatever happens, leave no VM or container behind. Prints the time of each stage (image
# builds, each scenario) and, per scenario, the guests' Debian release, kernel and Python; the
# summary comes at the end also when a scenario failed or the run was interrupted.
#
# Scenarios run side by side where the machine allows: up to NETSTACK_MOLECULE_JOBS at once
# (default 2), as long as the vCPUs of their VMs stay within NETSTACK_MOLECULE_VCPUS (default 4,
# the VM limit of vm.sh: TCG on two cores, where a guest waiting on a reboot, a sleep or ssh
# leaves its core to another). A scenario that needs more than that runs alone. They start
# largest first (most vCPUs, then name): the 3-VM `default` beside the 1-vCPU `tuned`, then the
# two 2-vCPU scenarios together; the podman `container` fits beside anything.
# Each scenario's output goes to .cache/molecule-logs/SCENARIO.log and is printed when it ends
# (with one job at a time it streams as it runs).
#
# The default set is every scenario but the proof ones (kernel evidence, not tests of the
# collection: `make proof`, see PROOF_SCENARIOS below); named scenarios run whatever they are.
#
# usage: tests/run-molecule.sh VENV_BIN [SCENARIO...]   (default: all scenarios but the proof ones)
set -euo pipefail

bin=$(cd "${1:?usage: run-molecule.sh VENV_BIN [SCENARIO...]}" && pwd)
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export PATH="$bin:$PATH"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
export CONTAINERS_CONF="$root/tests/hosts/containers.conf"
# The working tree importable as ansible_collections.netstack.tcp_tuning (what `make devlink` does).
devlink="$root/.cache/dev/ansible_collections/netstack/tcp_tuning"
if [ ! -e "$devlink" ]; then
  mkdir -p "$(dirname "$devlink")"
  ln -sfn "$root" "$devlink"
fi
export ANSIBLE_COLLECTIONS_PATH="$root/.cache/dev"
# This run's own VM directories (one per scenario, vms-SCENARIO): the cleanup below stops exactly
# the VMs this run started.
mkdir -p "$root/.cache"
run_dir=$(mktemp -d "$root/.cache/hosts-run.XXXXXX")
# Base config for every scenario (molecule -c): test the working tree through .cache/dev instead
# of letting Molecule's prerun install a copy of the collection into ~/.ansible/collections, where
# it can shadow the code under test.
base_config="$run_dir/molecule-base.yml"
printf -- '---\nprerun: false\n' >"$base_config"

# Experiments on the kernel itself (docs/recommendation-model.md quotes their results): run by
# `make proof`, never by `make molecule` or `make test`.
PROOF_SCENARIOS=(thresholds)
jobs=${NETSTACK_MOLECULE_JOBS:-2}
vcpu_budget=${NETSTACK_MOLECULE_VCPUS:-4}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "NETSTACK_MOLECULE_JOBS must be a positive number, got '$jobs'" >&2; exit 2; }
[[ $vcpu_budget =~ ^[1-9][0-9]*$ ]] || { echo "NETSTACK_MOLECULE_VCPUS must be a positive number, got '$vcpu_budget'" >&2; exit 2; }
log_dir=$root/.cache/molecule-logs
mkdir -p "$log_dir"

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=()
  for f in molecule/*/molecule.yml; do
    name=$(basename "$(dirname "$f")")
    [[ " ${PROOF_SCENARIOS[*]} " == *" $name "* ]] && continue
    scenarios+=("$name")
  done
fi

# Container names are machine-wide: this run's podman platforms carry its own suffix (molecule
# expands ${NETSTACK_RUN_ID:-local} in their names), so its cleanup never removes another run's containers.
# Lower case: the podman driver names an image after each container, and image names must be.
NETSTACK_RUN_ID=$(basename "$run_dir" | cut -d. -f2 | tr '[:upper:]' '[:lower:]')
export NETSTACK_RUN_ID

# Container names of the podman scenarios (platforms of a scenario whose driver is podman), with
# ${VAR} and ${VAR:-default} expanded as molecule does.
podman_platforms() {
  "$bin/python" - "$@" <<'EOF'
import os
import re
import sys
import yaml


def expand(text):
    return re.sub(
        r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text
    )


for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    if (config.get("driver") or {}).get("name") == "podman":
        for platform in config.get("platforms") or []:
            print(expand(platform["name"]))
EOF
}

# Per platform of each scenario: "NAME vm RELEASE" or "NAME podman -". Platforms without a
# release boot the default guest (Debian 12, as vm.sh).
scenario_platforms() {
  "$bin/python" - "$@" <<'EOF'
import os
import re
import sys
import yaml

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    podman = (config.get("driver") or {}).get("name") == "podman"
    for platform in config.get("platforms") or []:
        name = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), platform["name"])
        print(name, "podman" if podman else "vm", "-" if podman else platform.get("release", 12))
EOF
}

# The vCPUs of a scenario's VMs (0 for a podman scenario).
scenario_vcpus() {
  "$bin/python" - "$1" <<'EOF'
import sys
import yaml

with open(sys.argv[1], encoding="utf-8") as handle:
    config = yaml.safe_load(handle) or {}
podman = (config.get("driver") or {}).get("name") == "podman"
print(0 if podman else sum(int(p.get("cpus", 1)) for p in config.get("platforms") or []))
EOF
}

# "Debian 12 (bookworm), kernel 6.1.0-..., Python 3.11.2" from a VM image's release file.
describe_release() {
  local file
  file=$(dirname "$("$root/tests/hosts/vm.sh" image --release "$1")")/release
  "$bin/python" - "$file" <<'EOF'
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    fields = dict(item.split("=", 1) for item in handle.read().split())
print(f"Debian {fields['debian']} ({fields['suite']}), kernel {fields['kernel']}, Python {fields['python']}")
EOF
}

# What a scenario runs on, one line per platform.
describe_scenario() {
  local name kind release
  while read -r name kind release; do
    if [ "$kind" = podman ]; then
      echo "  $name: podman container, Debian 12 userland (Python $container_python), this machine's kernel $(uname -r)"
    else
      echo "  $name: QEMU VM, $(describe_release "$release")"
    fi
  done < <(scenario_platforms "molecule/$1/molecule.yml")
}

declare -A seconds=() status=() vcpus=() started=() pid_of=()
images_seconds=
container_python=
run_start=$SECONDS

# Printed at the end, and kept in .cache/molecule-logs/summary.txt (tests/run-stages.sh repeats it
# under its table of stages).
summary() {
  summary_lines "$@" | tee "$log_dir/summary.txt"
}

summary_lines() {
  local scenario
  echo "=== molecule summary (seconds per scenario; scenarios ran side by side; wall time ${1}s)"
  [ -z "$images_seconds" ] || printf '%-14s %-11s %5ss\n' images ready "$images_seconds"
  for scenario in "${scenarios[@]}"; do
    if [ -n "${seconds[$scenario]:-}" ]; then
      printf '%-14s %-11s %5ss\n' "$scenario" "${status[$scenario]}" "${seconds[$scenario]}"
    elif [ -n "${started[$scenario]:-}" ]; then
      printf '%-14s %-11s %5ss\n' "$scenario" interrupted $((SECONDS - started[$scenario]))
    else
      printf '%-14s %-11s %5s\n' "$scenario" "not run" -
    fi
    [ ! -f "molecule/$scenario/molecule.yml" ] || [ -z "$container_python" ] || describe_scenario "$scenario"
  done
  echo "logs: $log_dir/SCENARIO.log"
}

cleanup() {
  local rc=$? name dir
  summary $((SECONDS - run_start))
  for dir in "$run_dir"/vms-*/; do
    [ -d "$dir" ] || continue
    # No trailing slash: vm.sh finds a VM by the overlay path on its QEMU command line.
    NETSTACK_VMS_DIR=${dir%/} "$root/tests/hosts/vm.sh" stop-all || rc=1
  done
  for name in $(podman_platforms molecule/*/molecule.yml); do
    podman rm --force --time 0 --ignore "$name" >/dev/null 2>&1 || true
  done
  rm -rf "$run_dir"
  exit "$rc"
}
# Each molecule runs in its own process group, in the background: a signal to this script then
# interrupts `wait` at once, and the trap stops every molecule with everything it started
# (ansible-playbook, ssh) before the cleanup above runs.
interrupted() {
  local pid
  for pid in "${pid_of[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${pid_of[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

# Every guest image the scenarios use, built side by side (one mmdebstrap per release), and the
# container image; each is cached, so this stage takes seconds once built.
stage_start=$SECONDS
scenario_files=()
for scenario in "${scenarios[@]}"; do
  [ ! -f "molecule/$scenario/molecule.yml" ] || scenario_files+=("molecule/$scenario/molecule.yml")
done
mapfile -t releases < <(scenario_platforms "${scenario_files[@]}" | awk '$2 == "vm" { print $3 }' | sort -u)
image_pids=()
for release in "${releases[@]}"; do
  "$root/tests/hosts/vm.sh" image --release "$release" >/dev/null &
  image_pids+=($!)
done
container_image=$("$root/tests/hosts/container.sh" image)
for pid in "${image_pids[@]}"; do
  wait "$pid" || { echo "a guest image failed to build (see image-build-debianN.log in vm.sh's image cache)" >&2; exit 1; }
done
container_python=$(podman run --rm --network none "$container_image" python3 -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)
images_seconds=$((SECONDS - stage_start))
echo "=== images: Debian ${releases[*]} guests and the container image ready in ${images_seconds}s"

# Start a scenario in the background, in its own process group, with its own VM directory (its
# cleanup then stops only its own VMs).
start_scenario() {
  local scenario=$1 log=$log_dir/$1.log
  echo "=== molecule test -s $scenario ($(date -u +%H:%M:%S), ${vcpus[$scenario]} vCPUs) on:"
  describe_scenario "$scenario"
  started[$scenario]=$SECONDS
  if [ "$jobs" -eq 1 ]; then
    # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
    NETSTACK_VMS_DIR="$run_dir/vms-$scenario" setsid bash -c 'molecule -c "$1" test -s "$2" 2>&1 | tee "$3"; exit "${PIPESTATUS[0]}"' \
      _ "$base_config" "$scenario" "$log" &
  else
    NETSTACK_VMS_DIR="$run_dir/vms-$scenario" setsid molecule -c "$base_config" test -s "$scenario" >"$log" 2>&1 &
  fi
  pid_of[$scenario]=$!
}

# Record how a finished scenario went, print its log (side by side runs), stop what it left.
finish_scenario() {
  local scenario=$1 rc=$2
  seconds[$scenario]=$((SECONDS - started[$scenario]))
  if [ "$rc" -eq 0 ]; then
    status[$scenario]=passed
  else
    status[$scenario]=FAILED
    failed+=("$scenario")
  fi
  unset "pid_of[$scenario]"
  if [ "$jobs" -gt 1 ]; then
    echo "=== molecule test -s $scenario: its output"
    cat "$log_dir/$scenario.log"
  fi
  echo "=== molecule test -s $scenario ${status[$scenario]} after ${seconds[$scenario]}s ($(date -u +%H:%M:%S))"
  # Belt and braces: molecule destroys on failure, but a crash in between must not leak hosts.
  NETSTACK_VMS_DIR="$run_dir/vms-$scenario" "$root/tests/hosts/vm.sh" stop-all || true
}

failed=()
pending=()
for scenario in "${scenarios[@]}"; do
  if [ -f "molecule/$scenario/molecule.yml" ]; then
    vcpus[$scenario]=$(scenario_vcpus "molecule/$scenario/molecule.yml")
    pending+=("$scenario")
  else
    echo "no scenario molecule/$scenario" >&2
    seconds[$scenario]=0
    status[$scenario]=FAILED
    failed+=("$scenario")
  fi
done
# Largest first (most vCPUs; ties keep their order): the big ones are not left to run alone at the end.
if [ ${#pending[@]} -gt 0 ]; then
  mapfile -t pending < <(for scenario in "${pending[@]}"; do echo "${vcpus[$scenario]} $scenario"; done | sort -s -k1,1nr | cut -d' ' -f2)
fi

# Greedy, in order: start every pending scenario that fits beside the running ones (one that needs
# more than the budget starts only when nothing else runs); then wait for one to end.
while [ ${#pending[@]} -gt 0 ] || [ ${#pid_of[@]} -gt 0 ]; do
  used=0
  for scenario in "${!pid_of[@]}"; do used=$((used + vcpus[$scenario])); done
  still=()
  for scenario in "${pending[@]}"; do
    if [ ${#pid_of[@]} -lt "$jobs" ] &&
      { [ ${#pid_of[@]} -eq 0 ] || [ $((used + vcpus[$scenario])) -le "$vcpu_budget" ]; }; then
      start_scenario "$scenario"
      used=$((used + vcpus[$scenario]))
    else
      still+=("$scenario")
    fi
  done
  pending=("${still[@]}")
  done_pid=
  rc=0
  wait -n -p done_pid "${pid_of[@]}" || rc=$?
  for scenario in "${!pid_of[@]}"; do
    if [ "${pid_of[$scenario]}" = "$done_pid" ]; then
      finish_scenario "$scenario" "$rc"
      break
    fi
  done
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed scenarios: ${failed[*]}" >&2
  exit 1
fi

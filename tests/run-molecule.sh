#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Run every Molecule scenario (molecule/*/molecule.yml) with `molecule test`, one after the
# other, and exit non-zero if any failed. Whatever happens, leave no VM or container behind.
# Prints the time of each stage (image builds, each scenario) and, per scenario, the guests'
# Debian release, kernel and Python.
#
# usage: tests/run-molecule.sh VENV_BIN [SCENARIO...]   (default: all scenarios)
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
# This run's own VM directory: the cleanup below stops exactly the VMs this run started.
run_dir=$(mktemp -d "$root/.cache/hosts-run.XXXXXX")
export NETSTACK_VMS_DIR="$run_dir/vms"
# Base config for every scenario (molecule -c): test the working tree through .cache/dev instead
# of letting Molecule's prerun install a copy of the collection into ~/.ansible/collections, where
# it can shadow the code under test.
base_config="$run_dir/molecule-base.yml"
printf -- '---\nprerun: false\n' >"$base_config"

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=()
  # `default` first (the broadest check), the others in name order.
  for f in molecule/*/molecule.yml; do
    name=$(basename "$(dirname "$f")")
    [ "$name" = default ] && scenarios=("$name" "${scenarios[@]}") || scenarios+=("$name")
  done
fi

# Container names of the podman scenarios (platforms of a scenario whose driver is podman).
podman_platforms() {
  "$bin/python" - "$@" <<'EOF'
import sys
import yaml

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    if (config.get("driver") or {}).get("name") == "podman":
        for platform in config.get("platforms") or []:
            print(platform["name"])
EOF
}

# Per platform of each scenario: "NAME vm RELEASE" or "NAME podman -". Platforms without a
# release boot the default guest (Debian 12, as vm.sh).
scenario_platforms() {
  "$bin/python" - "$@" <<'EOF'
import sys
import yaml

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    podman = (config.get("driver") or {}).get("name") == "podman"
    for platform in config.get("platforms") or []:
        print(platform["name"], "podman" if podman else "vm", "-" if podman else platform.get("release", 12))
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

cleanup() {
  local rc=$? name
  "$root/tests/hosts/vm.sh" stop-all || rc=1
  for name in $(podman_platforms molecule/*/molecule.yml); do
    podman rm --force --time 0 --ignore "$name" >/dev/null 2>&1 || true
  done
  rm -rf "$run_dir"
  exit "$rc"
}
# molecule runs in its own process group, in the background: a signal to this script then
# interrupts `wait` at once, and the trap stops molecule with everything it started
# (ansible-playbook, ssh) before the cleanup above runs.
molecule_pid=
interrupted() {
  if [ -n "$molecule_pid" ]; then
    kill -TERM -- "-$molecule_pid" 2>/dev/null || true
    wait "$molecule_pid" 2>/dev/null || true
  fi
  exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

# Every guest image the scenarios use, built side by side (one mmdebstrap per release), and the
# container image; each is cached, so this stage takes seconds once built.
stage_start=$SECONDS
mapfile -t releases < <(scenario_platforms molecule/*/molecule.yml | awk '$2 == "vm" { print $3 }' | sort -u)
image_pids=()
for release in "${releases[@]}"; do
  "$root/tests/hosts/vm.sh" image --release "$release" >/dev/null &
  image_pids+=($!)
done
container_image=$("$root/tests/hosts/container.sh" image)
for pid in "${image_pids[@]}"; do
  wait "$pid" || { echo "a guest image failed to build (see .cache/hosts/image-build-*.log)" >&2; exit 1; }
done
container_python=$(podman run --rm --network none "$container_image" python3 -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)
images_seconds=$((SECONDS - stage_start))
echo "=== images: Debian ${releases[*]} guests and the container image ready in ${images_seconds}s"

failed=()
declare -A seconds
for scenario in "${scenarios[@]}"; do
  [ -f "molecule/$scenario/molecule.yml" ] || { echo "no scenario molecule/$scenario" >&2; failed+=("$scenario"); continue; }
  echo "=== molecule test -s $scenario ($(date -u +%H:%M:%S)) on:"
  describe_scenario "$scenario"
  start=$SECONDS
  setsid molecule -c "$base_config" test -s "$scenario" &
  molecule_pid=$!
  if ! wait "$molecule_pid"; then
    failed+=("$scenario")
  fi
  molecule_pid=
  seconds[$scenario]=$((SECONDS - start))
  # Belt and braces: molecule destroys on failure, but a crash in between must not leak hosts.
  "$root/tests/hosts/vm.sh" stop-all
done

echo "=== molecule summary"
printf '%-14s %-7s %5ss\n' images ready "$images_seconds"
for scenario in "${scenarios[@]}"; do
  status=passed
  for f in "${failed[@]}"; do [ "$f" = "$scenario" ] && status=FAILED; done
  printf '%-14s %-7s %5ss\n' "$scenario" "$status" "${seconds[$scenario]:-0}"
  [ ! -f "molecule/$scenario/molecule.yml" ] || describe_scenario "$scenario"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed scenarios: ${failed[*]}" >&2
  exit 1
fi

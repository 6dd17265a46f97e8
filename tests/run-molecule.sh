#!/usr/bin/env bash
# Run every Molecule scenario (molecule/*/molecule.yml) with `molecule test`, one after the
# other, and exit non-zero if any failed. Whatever happens, leave no VM or container behind.
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

"$root/tests/hosts/vm.sh" image >/dev/null
"$root/tests/hosts/container.sh" image >/dev/null

failed=()
declare -A seconds
for scenario in "${scenarios[@]}"; do
  [ -f "molecule/$scenario/molecule.yml" ] || { echo "no scenario molecule/$scenario" >&2; failed+=("$scenario"); continue; }
  echo "=== molecule test -s $scenario ($(date -u +%H:%M:%S))"
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
for scenario in "${scenarios[@]}"; do
  status=passed
  for f in "${failed[@]}"; do [ "$f" = "$scenario" ] && status=FAILED; done
  printf '%-12s %-7s %4ss\n' "$scenario" "$status" "${seconds[$scenario]:-0}"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed scenarios: ${failed[*]}" >&2
  exit 1
fi

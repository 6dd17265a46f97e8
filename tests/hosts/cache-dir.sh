# shellcheck shell=bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Sourced by vm.sh and container.sh: where test-host images are cached.
# Images are cached machine-wide, outside any clone, so a fresh clone on a machine that built them
# once reuses them (keyed by the hash of the build scripts, so a changed recipe builds anew); where
# that directory cannot be created (not root), in the clone. NETSTACK_HOSTS_CACHE overrides both.
#   hosts_cache_dir REPO   prints the directory
hosts_cache_dir() {
  local machine_cache=/var/cache/netstack-tcp-tuning/hosts
  if [ -n "${NETSTACK_HOSTS_CACHE:-}" ]; then
    echo "$NETSTACK_HOSTS_CACHE"
  elif mkdir -p "$machine_cache" 2>/dev/null && [ -w "$machine_cache" ]; then
    echo "$machine_cache"
  else
    echo "$1/.cache/hosts"
  fi
}

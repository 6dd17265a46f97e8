#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Podman container test hosts (rootful podman + runc, network none). See README.md.
#
#   container.sh image                 import the Debian 12 image if needed, print its name
#   container.sh start NAME            run a privileged container with no network, print NAME
#   container.sh exec NAME CMD...      run CMD in the container
#   container.sh stop NAME             remove the container (no-op if absent)
#   container.sh stop-all              remove every container labelled netstack.test-host
#   container.sh podman ARGS...        run podman with the project's containers.conf
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/hosts/cache-dir.sh
. "$here/cache-dir.sh"
cache=$(hosts_cache_dir "$repo")
image_repo=localhost/netstack-debian12
label=netstack.test-host
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

die() {
  echo "container.sh: $*" >&2
  exit 1
}

cmd_image() {
  local tag tarball
  # Keyed by the build script, like the VM image: editing the recipe imports a new image.
  tag=$(sha256sum "$here/build-container-image.sh" | cut -c1-16)
  mkdir -p "$cache"
  exec 8>"$cache/.container-image.lock"
  flock 8
  if ! podman image exists "$image_repo:$tag"; then
    # mmdebstrap picks the output format from the extension: keep .tar last.
    tarball=$cache/container-rootfs-$tag.tmp.tar
    rm -rf "$tarball"
    echo "container.sh: building $image_repo:$tag" >&2
    "$here/build-container-image.sh" "$tarball" >"$cache/container-build.log" 2>&1 ||
      die "image build failed, see $cache/container-build.log"
    podman import --quiet --change 'CMD ["sleep", "infinity"]' "$tarball" "$image_repo:$tag" >/dev/null
    rm -f "$tarball"
    # Images of older recipes are never used again; one still used by a container stays.
    local old
    for old in $(podman images --format '{{.Tag}}' "$image_repo"); do
      case $old in "$tag" | latest) ;; *) podman rmi "$image_repo:$old" >/dev/null 2>&1 || true ;; esac
    done
  fi
  podman tag "$image_repo:$tag" "$image_repo:latest"
  exec 8>&-
  echo "$image_repo:latest"
}

cmd_start() {
  local name=${1:?usage: container.sh start NAME} image
  image=$(cmd_image)
  # Never podman's bridge network: it turns on ip_forward on the host. --network none still
  # gives the container its own network namespace, which is what the tests need.
  podman run --detach --name "$name" --hostname "$name" --label "$label=1" \
    --privileged --network none "$image" sleep infinity >/dev/null
  echo "$name"
}

cmd_stop() {
  local name=${1:?usage: container.sh stop NAME}
  podman rm --force --time 0 --ignore "$name" >/dev/null
}

cmd_stop_all() {
  local ids
  mapfile -t ids < <(podman ps --all --quiet --filter "label=$label")
  [ ${#ids[@]} -eq 0 ] || podman rm --force --time 0 "${ids[@]}" >/dev/null
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
  image) cmd_image ;;
  start) cmd_start "$@" ;;
  exec) podman exec "${1:?usage: container.sh exec NAME CMD...}" "${@:2}" ;;
  stop) cmd_stop "$@" ;;
  stop-all) cmd_stop_all ;;
  podman) podman "$@" ;;
  *) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"

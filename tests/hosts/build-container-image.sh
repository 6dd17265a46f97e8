#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Build the Debian 12 root filesystem tarball for the container test hosts: what ansible needs
# (python3) and what the tests read or run (procps for sysctl, iproute2 for ss). No init:
# the container runs a sleep loop and ansible execs into it.
#
# usage: build-container-image.sh OUT.tar
# container.sh imports the tarball with `podman import`, keyed by a hash of this file.
set -euo pipefail

out=${1:?usage: build-container-image.sh OUT.tar}
mirror=${NETSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# mmdebstrap already empties the apt lists and cache of the result.
mmdebstrap --variant=minbase --include=python3,procps,iproute2 bookworm "$out" "$mirror"

#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Install the Debian packages the real-kernel tests need (test hosts: QEMU VMs and podman
# containers). Idempotent: does nothing when everything is present.
set -euo pipefail
packages=(podman runc qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client
          iproute2 procps util-linux shellcheck
          # the HTML report test (headless Chromium) and the textfile test (promtool)
          chromium prometheus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null

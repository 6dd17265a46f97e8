#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Build a Debian guest used as a VM test host: an ext4 root image, the kernel and initrd taken
# from that rootfs, and the ssh key that logs in as root and as the unprivileged user netops.
#
# usage: build-vm-image.sh OUTDIR RELEASE     (RELEASE: 11 bullseye, 12 bookworm, 13 trixie)
# Writes OUTDIR/{rootfs.img,vmlinuz,initrd.img,id_ed25519,id_ed25519.pub,release}. vm.sh calls
# this and caches OUTDIR per release, keyed by a hash of this file and vm-image-customize.sh:
# edit either to rebuild.
set -euo pipefail

out=${1:?usage: build-vm-image.sh OUTDIR RELEASE}
release=${2:?usage: build-vm-image.sh OUTDIR RELEASE}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# Each release's main suite only, as Debian ships it: kernel 5.10/Python 3.9 (11), 6.1/3.11 (12),
# 6.12/3.13 (13). No -security or -updates suite: the guests never reach a network, and an old
# release's security suite may no longer be served.
case $release in
11) suite=bullseye ;;
12) suite=bookworm ;;
13) suite=trixie ;;
*) echo "build-vm-image.sh: unknown release '$release' (11, 12 or 13)" >&2; exit 2 ;;
esac
mirror=${NETSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Sparse file: only the used blocks take disk space. Room for what tests install in the guest.
image_size=${NETSTACK_VM_IMAGE_SIZE:-2G}

# Everything the guest needs: the kernel, an init, sshd for ansible, python3 for its modules,
# procps (sysctl) and iproute2 (ss) for the tests. dbus because `shutdown -r` (what
# ansible.builtin.reboot runs) fails without a system bus. No python3-apt: the role needs no apt.
# tuned for the tuned scenario (its hard dependencies only, no Recommends: mmdebstrap installs
# none); vm-image-customize.sh disables its service, so it runs only where a scenario starts it.
# sudo for the unprivileged login (user netops, become: true) of molecule/become.
packages=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,python3,procps,iproute2,kmod,tuned,sudo

mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

ssh-keygen -q -t ed25519 -N '' -C netstack-test-vm -f "$work/id_ed25519"

# vm-image-customize.sh configures the guest (network, hostname, sshd, masked timers, the user
# netops); the upload hooks then install the key that logs in as root and as netops.
mmdebstrap --variant=minbase --include="$packages" \
  --customize-hook="$here/vm-image-customize.sh" \
  --customize-hook="upload $work/id_ed25519.pub /root/.ssh/authorized_keys" \
  --customize-hook="upload $work/id_ed25519.pub /home/netops/.ssh/authorized_keys" \
  --customize-hook="chroot \"\$1\" chown netops:netops /home/netops/.ssh/authorized_keys" \
  "$suite" "$work/rootfs" "$mirror"

# QEMU boots the kernel directly (-kernel/-initrd): no bootloader in the image.
cp -L "$work"/rootfs/boot/vmlinuz-* "$work/vmlinuz"
cp -L "$work"/rootfs/boot/initrd.img-* "$work/initrd.img"

# mkfs.ext4 -d copies the tree into the image without mounting anything.
mkfs.ext4 -q -F -L netstack-root -d "$work/rootfs" "$work/rootfs.img" "$image_size"

# What the guest runs, for run-molecule.sh's summary and the tests' ids.
kernel=$(basename "$(readlink -f "$work"/rootfs/boot/vmlinuz-*)")
python=$(chroot "$work/rootfs" python3 -c 'import platform; print(platform.python_version())')
printf 'debian=%s suite=%s kernel=%s python=%s\n' "$release" "$suite" "${kernel#vmlinuz-}" "$python" >"$work/release"

mv "$work/rootfs.img" "$work/vmlinuz" "$work/initrd.img" "$work/id_ed25519" "$work/id_ed25519.pub" "$work/release" "$out/"

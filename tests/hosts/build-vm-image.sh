#!/usr/bin/env bash
# Build the Debian 12 guest used as a VM test host: an ext4 root image, the kernel and initrd
# taken from that rootfs, and the ssh key that logs in as root.
#
# usage: build-vm-image.sh OUTDIR
# Writes OUTDIR/{rootfs.img,vmlinuz,initrd.img,id_ed25519,id_ed25519.pub}. vm.sh calls this and
# caches OUTDIR keyed by a hash of this file and vm-image-customize.sh: edit either to rebuild.
set -euo pipefail

out=${1:?usage: build-vm-image.sh OUTDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
suite=bookworm
mirror=${NETSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Sparse file: only the used blocks take disk space. Room for what tests install in the guest.
image_size=${NETSTACK_VM_IMAGE_SIZE:-2G}

# Everything the guest needs: the kernel, an init, sshd for ansible, python3 for its modules,
# procps (sysctl) and iproute2 (ss) for the tests. dbus because `shutdown -r` (what
# ansible.builtin.reboot runs) fails without a system bus. No python3-apt: the role needs no apt.
# tuned for the tuned scenario (its hard dependencies only, no Recommends: mmdebstrap installs
# none); vm-image-customize.sh disables its service, so it runs only where a scenario starts it.
packages=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,python3,procps,iproute2,kmod,tuned

mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

ssh-keygen -q -t ed25519 -N '' -C netstack-test-vm -f "$work/id_ed25519"

# vm-image-customize.sh configures the guest (network, hostname, sshd, masked timers); the
# upload hook then installs the key that logs in as root.
mmdebstrap --variant=minbase --include="$packages" \
  --customize-hook="$here/vm-image-customize.sh" \
  --customize-hook="upload $work/id_ed25519.pub /root/.ssh/authorized_keys" \
  "$suite" "$work/rootfs" "$mirror"

# QEMU boots the kernel directly (-kernel/-initrd): no bootloader in the image.
cp -L "$work"/rootfs/boot/vmlinuz-* "$work/vmlinuz"
cp -L "$work"/rootfs/boot/initrd.img-* "$work/initrd.img"

# mkfs.ext4 -d copies the tree into the image without mounting anything.
mkfs.ext4 -q -F -L netstack-root -d "$work/rootfs" "$work/rootfs.img" "$image_size"

mv "$work/rootfs.img" "$work/vmlinuz" "$work/initrd.img" "$work/id_ed25519" "$work/id_ed25519.pub" "$out/"

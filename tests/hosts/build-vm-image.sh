#!/usr/bin/env bash
# Build the Debian 12 guest used as a VM test host: an ext4 root image, the kernel and initrd
# taken from that rootfs, and the ssh key that logs in as root.
#
# usage: build-vm-image.sh OUTDIR
# Writes OUTDIR/{rootfs.img,vmlinuz,initrd.img,id_ed25519,id_ed25519.pub}. vm.sh calls this and
# caches OUTDIR keyed by a hash of this file, so edit this file to force a rebuild.
set -euo pipefail

out=${1:?usage: build-vm-image.sh OUTDIR}
suite=bookworm
mirror=${NETSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Sparse file: only the used blocks take disk space. Room for what tests install in the guest.
image_size=${NETSTACK_VM_IMAGE_SIZE:-2G}

# Everything the guest needs: the kernel, an init, sshd for ansible, python3 for its modules,
# procps (sysctl) and iproute2 (ss) for the tests. dbus because `shutdown -r` (what
# ansible.builtin.reboot runs) fails without a system bus. No python3-apt: the role needs no apt.
packages=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,python3,procps,iproute2,kmod

mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

ssh-keygen -q -t ed25519 -N '' -C netstack-test-vm -f "$work/id_ed25519"

# Hooks run on the host with the rootfs as $1. Each one explains a choice that keeps boot fast
# and the guest quiet, so timing-sensitive scenarios (pressure) see little background noise.
mmdebstrap --variant=minbase --include="$packages" \
  --customize-hook='mkdir -p -m 0700 "$1/root/.ssh"' \
  --customize-hook="cp '$work/id_ed25519.pub' \"\$1/root/.ssh/authorized_keys\"" \
  --customize-hook='chmod 0600 "$1/root/.ssh/authorized_keys"' \
  --customize-hook='printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/20-dhcp.network"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
  --customize-hook='printf "netstack-vm\n" > "$1/etc/hostname"' \
  --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 netstack-vm\n" > "$1/etc/hosts"' \
  --customize-hook='printf "/dev/vda / ext4 rw,relatime 0 1\n" > "$1/etc/fstab"' \
  --customize-hook='printf "UseDNS no\nPermitRootLogin prohibit-password\n" > "$1/etc/ssh/sshd_config.d/10-netstack.conf"' \
  --customize-hook='for u in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
      e2scrub_all.timer fstrim.timer man-db.timer dpkg-db-backup.timer systemd-timesyncd.service; do \
      ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
  "$suite" "$work/rootfs" "$mirror"

# QEMU boots the kernel directly (-kernel/-initrd): no bootloader in the image.
cp -L "$work"/rootfs/boot/vmlinuz-* "$work/vmlinuz"
cp -L "$work"/rootfs/boot/initrd.img-* "$work/initrd.img"

# mkfs.ext4 -d copies the tree into the image without mounting anything.
mkfs.ext4 -q -F -L netstack-root -d "$work/rootfs" "$work/rootfs.img" "$image_size"

mv "$work/rootfs.img" "$work/vmlinuz" "$work/initrd.img" "$work/id_ed25519" "$work/id_ed25519.pub" "$out/"

#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# mmdebstrap customize hook for the VM guest image: runs on the host with the guest's root
# filesystem as $1, before build-vm-image.sh uploads root's authorized_keys. Each setting keeps
# boot fast or the guest quiet, so timing-sensitive scenarios (pressure) see little noise.
set -euo pipefail
root=${1:?usage: vm-image-customize.sh ROOTFS}

install -d -m 0700 "$root/root/.ssh"

# DHCP on the virtio NIC through systemd-networkd (no ifupdown in minbase).
cat >"$root/etc/systemd/network/20-dhcp.network" <<'NETWORK'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NETWORK
chroot "$root" systemctl enable systemd-networkd.service

# vm.sh start sets the real hostname per VM on the kernel command line (systemd.hostname=).
echo netstack-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 netstack-vm\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,relatime 0 1' >"$root/etc/fstab"

# Key-only root login; no reverse DNS lookups (the guest has no resolver to ask).
printf 'UseDNS no\nPermitRootLogin prohibit-password\n' >"$root/etc/ssh/sshd_config.d/10-netstack.conf"

# Nothing waits for a network that is never "online", and no periodic jobs wake up in a test.
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer man-db.timer dpkg-db-backup.timer systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# tuned (for molecule/tuned) would apply a profile at every boot: its package enables the
# service. Disabled rather than masked: nothing else starts it (the package ships no D-Bus
# activation file for com.redhat.tuned, only a bus policy), so the other scenarios boot as
# before, and the tuned scenario needs only `systemctl enable --now`, the step an operator takes.
# active_profile stays empty until that scenario picks a profile.
chroot "$root" systemctl disable tuned.service

# The unprivileged login of molecule/become, as operators log in: their own user, key-only ssh,
# sudo without a password (ansible's become: true). build-vm-image.sh installs the key. Not named
# "operator": Debian's base-passwd already has a group of that name.
chroot "$root" useradd --create-home --shell /bin/bash netops
install -d -m 0700 "$root/home/netops/.ssh"
chroot "$root" chown netops:netops /home/netops/.ssh
echo 'netops ALL=(ALL:ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/netops"
chmod 0440 "$root/etc/sudoers.d/netops"

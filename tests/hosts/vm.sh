#!/usr/bin/env bash
# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Start, reach and stop QEMU test VMs (Debian 11, 12 or 13 guests). Interface in README.md.
#
#   vm.sh image [--release N]                    build the guest image if needed, print its rootfs path
#   vm.sh start NAME [--memory MB] [--cpus N] [--release N]
#                                                boot, wait for ssh, print the forwarded ssh port
#   vm.sh ssh NAME [CMD...]                      run a command (or a shell) in the guest as root
#   vm.sh wait NAME                              wait until sshd answers (e.g. after a reboot)
#   vm.sh reboot NAME                            reboot the guest, return once it is back on ssh
#   vm.sh info NAME                              print address, port, user, identity file as JSON
#   vm.sh stop NAME                              kill the VM, delete its overlay and state
#   vm.sh stop-all                               stop every VM in the VM directory (see below)
#   vm.sh list                                   print the names of running VMs
#
# --release picks the Debian release of the guest: 11 (bullseye), 12 (bookworm, the default) or
# 13 (trixie); $NETSTACK_VM_RELEASE sets the default.
# State lives in $NETSTACK_HOSTS_CACHE (default /var/cache/netstack-tcp-tuning/hosts, or
# <repo>/.cache/hosts where that cannot be created): each release's image in
# image-debianN-<hash>/, each VM in $NETSTACK_VMS_DIR (default vms/) NAME/{pid,port,key,...}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/hosts/cache-dir.sh
. "$here/cache-dir.sh"
cache=$(hosts_cache_dir "$repo")
# A test run may use its own VM directory (run-molecule.sh does) so that its cleanup stops only
# its own VMs; the image cache and the VM limit stay shared by everyone on the machine.
vms_dir=${NETSTACK_VMS_DIR:-$cache/vms}
max_vms=${NETSTACK_MAX_VMS:-4}
# TCG on a loaded 2-core machine: boot takes ~25 s idle, several times that when busy.
ssh_timeout_s=${NETSTACK_VM_SSH_TIMEOUT:-420}
slot_timeout_s=${NETSTACK_VM_SLOT_TIMEOUT:-900}
default_release=${NETSTACK_VM_RELEASE:-12}

die() {
  echo "vm.sh: $*" >&2
  exit 1
}
log() { echo "vm.sh: $*" >&2; }

validate_release() {
  [[ $1 =~ ^(11|12|13)$ ]] || die "bad release '$1' (11 bullseye, 12 bookworm or 13 trixie)"
}

image_dir() {
  # Keyed by release and build scripts: changing the recipe builds a new image per release.
  local release=$1 hash
  hash=$(cat "$here/build-vm-image.sh" "$here/vm-image-customize.sh" | sha256sum | cut -c1-16)
  echo "$cache/image-debian$release-$hash"
}

cmd_image() {
  local release=$default_release dir
  while [ $# -gt 0 ]; do
    case $1 in
    --release) release=${2:?--release needs 11, 12 or 13}; shift 2 ;;
    *) die "unknown option $1" ;;
    esac
  done
  validate_release "$release"
  dir=$(image_dir "$release")
  mkdir -p "$cache"
  # One builder per release at a time; scenarios started in parallel wait and then reuse the
  # result. Different releases build side by side.
  exec 8>"$cache/.image-debian$release.lock"
  flock 8
  if [ ! -f "$dir/rootfs.img" ]; then
    log "building Debian $release guest image in $dir (about a minute)"
    rm -rf "$dir.tmp"
    "$here/build-vm-image.sh" "$dir.tmp" "$release" >"$cache/image-build-debian$release.log" 2>&1 ||
      die "image build failed, see $cache/image-build-debian$release.log"
    mv "$dir.tmp" "$dir"
    # Images of this release's older recipes are never used again; other releases' images are
    # and stay. The unversioned image-<hash> dirs of the recipes before releases go too. A VM
    # still running on a removed image keeps its files open, so removing them does not disturb it.
    find "$cache" -maxdepth 1 -type d \( -name "image-debian$release-????????????????" \
      -o -name 'image-????????????????' \) ! -path "$dir" -exec rm -rf {} +
  fi
  exec 8>&-
  echo "$dir/rootfs.img"
}

validate_name() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad VM name '$1' (letters, digits, _ . -)"
}

# The pid in vms/NAME/pid, if that process is still the QEMU started for NAME. Checking the
# command line guards against killing an unrelated process that reused the pid.
live_pid() {
  local dir=$vms_dir/$1 pid
  [ -f "$dir/pid" ] || return 1
  pid=$(cat "$dir/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/overlay.qcow2" || return 1
  echo "$pid"
}

running_names() {
  local d name
  [ -d "$vms_dir" ] || return 0
  for d in "$vms_dir"/*/; do
    [ -d "$d" ] || continue
    name=$(basename "$d")
    live_pid "$name" >/dev/null && echo "$name"
  done
  return 0
}

# Every test VM on this machine, whichever checkout or run started it: QEMU is named netstack-*.
count_all_vms() {
  pgrep -c -f -- '^qemu-system-x86_64 -name netstack-' || true
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True once the guest's sshd sent its banner: with user networking the forwarded port accepts
# connections as soon as QEMU runs, long before anything listens in the guest.
ssh_banner_seen() {
  local port=$1 line=""
  {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    IFS= read -r -t 5 line <&3 || true
    exec 3<&-
  } 2>/dev/null || return 1
  [[ $line == SSH-2.0* ]]
}

guest_ssh() {
  local name=$1
  shift
  ssh -F "$vms_dir/$name/ssh_config" -o BatchMode=yes -o ConnectTimeout=20 "$name" "$@"
}

wait_for_ssh() {
  local name=$1 dir=$vms_dir/$1 port deadline
  port=$(cat "$dir/port")
  deadline=$((SECONDS + ssh_timeout_s))
  while ((SECONDS < deadline)); do
    live_pid "$name" >/dev/null || die "$name: QEMU exited; last console lines:$(echo; tail -n 20 "$dir/serial.log" 2>/dev/null)"
    if ssh_banner_seen "$port" && guest_ssh "$name" true 2>/dev/null; then
      return 0
    fi
    sleep 2
  done
  die "$name: no ssh after ${ssh_timeout_s}s; console log: $dir/serial.log"
}

write_ssh_config() {
  local name=$1 dir=$vms_dir/$1 port=$2
  # Every VM boots from the same image and so has the same host key: do not record it.
  cat >"$dir/ssh_config" <<EOF
Host $name
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $dir/key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ServerAliveInterval 15
EOF
}

launch_qemu() {
  local name=$1 memory_mb=$2 cpus=$3 image=$4 dir=$vms_dir/$1 port
  local img_dir
  img_dir=$(dirname "$image")
  port=$(free_port)
  echo "$port" >"$dir/port"
  write_ssh_config "$name" "$port"
  # TCG, not KVM: KVM here is PVM and cannot boot a stock kernel. restrict=on keeps the guest
  # off every network but the forwarded ssh port, bound to loopback only.
  # e2scrub_reap (a scan for LVM snapshots, none here) costs ~9 s of CPU per boot under TCG: masked.
  qemu-system-x86_64 \
    -name "netstack-$name" \
    -accel tcg,thread=multi,tb-size=128 -cpu max -smp "$cpus" -m "$memory_mb" \
    -kernel "$img_dir/vmlinuz" -initrd "$img_dir/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 systemd.mask=e2scrub_reap.service systemd.hostname=$name" \
    -drive "file=$dir/overlay.qcow2,format=qcow2,if=virtio,cache=unsafe" \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device virtio-net-pci,netdev=n0 \
    -device virtio-rng-pci \
    -display none -monitor none -serial "file:$dir/serial.log" \
    -daemonize -pidfile "$dir/pid" 2>"$dir/qemu.err"
}

cmd_start() {
  local name=${1:?usage: vm.sh start NAME [--memory MB] [--cpus N] [--release N]} memory_mb=512 cpus=1
  local release=$default_release
  shift
  validate_name "$name"
  while [ $# -gt 0 ]; do
    case $1 in
    --memory) memory_mb=${2:?--memory needs MB}; shift 2 ;;
    --cpus) cpus=${2:?--cpus needs a count}; shift 2 ;;
    --release) release=${2:?--release needs 11, 12 or 13}; shift 2 ;;
    *) die "unknown option $1" ;;
    esac
  done
  [[ $memory_mb =~ ^[0-9]+$ ]] || die "--memory must be a number of MB, got '$memory_mb'"
  [[ $cpus =~ ^[0-9]+$ ]] || die "--cpus must be a number, got '$cpus'"
  validate_release "$release"

  local image dir=$vms_dir/$name deadline
  image=$(cmd_image --release "$release")
  mkdir -p "$vms_dir"
  live_pid "$name" >/dev/null && die "$name is already running (vm.sh stop $name first)"

  # Counting and starting under one lock keeps concurrent starts within the VM limit.
  exec 9>"$cache/.vms.lock"
  deadline=$((SECONDS + slot_timeout_s))
  local wait_start=$SECONDS
  while true; do
    flock 9
    if [ "$(count_all_vms)" -lt "$max_vms" ]; then
      break
    fi
    flock -u 9
    ((SECONDS < deadline)) || die "still $max_vms VMs running after ${slot_timeout_s}s"
    ((SECONDS > wait_start)) || log "$name: $max_vms VMs running on this machine, waiting for a free slot (at most ${slot_timeout_s}s)"
    sleep 5
  done
  ((SECONDS == wait_start)) || log "$name: got a slot after $((SECONDS - wait_start))s of waiting"
  rm -rf "$dir"
  mkdir -p "$dir"
  install -m 0600 "$(dirname "$image")/id_ed25519" "$dir/key"
  cp "$(dirname "$image")/release" "$dir/release"
  qemu-img create -q -f qcow2 -F raw -b "$image" "$dir/overlay.qcow2"
  local tries=0
  # A free port can be taken between picking and binding it: retry with another one.
  until launch_qemu "$name" "$memory_mb" "$cpus" "$image"; do
    tries=$((tries + 1))
    ((tries < 3)) || { flock -u 9; die "$name: QEMU did not start: $(cat "$dir/qemu.err")"; }
  done
  flock -u 9
  exec 9>&-
  # Interrupted while waiting for the guest: take the VM down with us rather than leak it.
  trap 'cmd_stop "$name"; exit 143' TERM
  trap 'cmd_stop "$name"; exit 130' INT

  log "$name: booting Debian $release (memory ${memory_mb} MB, port $(cat "$dir/port")) at $(date -u +%H:%M:%S), waiting for ssh"
  local boot_start=$SECONDS
  if ! (wait_for_ssh "$name"); then
    cmd_stop "$name" --keep-log
    die "$name: did not come up"
  fi
  log "$name: up on ssh after $((SECONDS - boot_start))s"
  trap - TERM INT
  cat "$dir/port"
}

cmd_wait() {
  local name=${1:?usage: vm.sh wait NAME}
  [ -d "$vms_dir/$name" ] || die "no VM named $name"
  wait_for_ssh "$name"
}

cmd_reboot() {
  local name=${1:?usage: vm.sh reboot NAME} boot_id_before boot_id deadline
  live_pid "$name" >/dev/null || die "$name is not running"
  boot_id_before=$(guest_ssh "$name" cat /proc/sys/kernel/random/boot_id)
  # No D-Bus in the minimal guest: systemctl says so on stderr and reboots through systemd anyway.
  guest_ssh "$name" systemctl reboot 2>/dev/null || true
  # sshd keeps answering for a moment after the reboot request: wait for a new boot id.
  deadline=$((SECONDS + ssh_timeout_s))
  while ((SECONDS < deadline)); do
    sleep 3
    wait_for_ssh "$name"
    boot_id=$(guest_ssh "$name" cat /proc/sys/kernel/random/boot_id 2>/dev/null) || continue
    [ "$boot_id" != "$boot_id_before" ] && return 0
  done
  die "$name: did not reboot within ${ssh_timeout_s}s"
}

# One field of the image's release file (debian=12 suite=bookworm kernel=6.1.0-... python=3.11.2).
release_field() {
  tr ' ' '\n' <"$1/release" | sed -n "s/^$2=//p"
}

cmd_info() {
  local name=${1:?usage: vm.sh info NAME} dir pid
  dir=$vms_dir/$name
  pid=$(live_pid "$name") || die "$name is not running"
  printf '{"name": "%s", "address": "127.0.0.1", "port": %s, "user": "root", "identity_file": "%s", "ssh_config": "%s", "pid": %s, "debian": "%s", "suite": "%s", "kernel": "%s", "python": "%s"}\n' \
    "$name" "$(cat "$dir/port")" "$dir/key" "$dir/ssh_config" "$pid" \
    "$(release_field "$dir" debian)" "$(release_field "$dir" suite)" \
    "$(release_field "$dir" kernel)" "$(release_field "$dir" python)"
}

cmd_ssh() {
  local name=${1:?usage: vm.sh ssh NAME [CMD...]}
  shift
  live_pid "$name" >/dev/null || die "$name is not running"
  guest_ssh "$name" "$@"
}

cmd_stop() {
  local name=${1:?usage: vm.sh stop NAME} keep_log=${2:-} dir pid
  validate_name "$name"
  dir=$vms_dir/$name
  [ -d "$dir" ] || return 0
  if pid=$(live_pid "$name"); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -d "/proc/$pid" ] || break
      sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  if [ "$keep_log" = --keep-log ] && [ -f "$dir/serial.log" ]; then
    # Keep the console of a VM that failed to boot for the person debugging it.
    cp "$dir/serial.log" "$cache/$name.failed-serial.log"
    log "$name: console log kept in $cache/$name.failed-serial.log"
  fi
  rm -rf "$dir"
}

cmd_stop_all() {
  local d
  [ -d "$vms_dir" ] || return 0
  for d in "$vms_dir"/*/; do
    [ -d "$d" ] || continue
    cmd_stop "$(basename "$d")"
  done
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
  image) cmd_image "$@" ;;
  start) cmd_start "$@" ;;
  ssh) cmd_ssh "$@" ;;
  wait) cmd_wait "$@" ;;
  reboot) cmd_reboot "$@" ;;
  info) cmd_info "$@" ;;
  stop) cmd_stop "${1:?usage: vm.sh stop NAME}" ;;
  stop-all) cmd_stop_all ;;
  list) running_names ;;
  *) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"

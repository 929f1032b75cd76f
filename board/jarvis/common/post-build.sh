#!/usr/bin/env bash
# Buildroot post-build script for the Jarvis appliance (all boards): prepares the target tree for a read-only root
# with a writable data partition on /var/lib/jarvis, and refuses a tree that would not boot that way.
# Called by Buildroot as: post-build.sh TARGET_DIR BOARD (BOARD from BR2_ROOTFS_POST_SCRIPT_ARGS: pc or rpi5).
set -eu

TARGET_DIR=${1:?usage: post-build.sh TARGET_DIR BOARD}
BOARD=${2:?usage: post-build.sh TARGET_DIR BOARD}

fail() {
	echo "post-build.sh ($BOARD): $*" >&2
	exit 1
}

[ -d "$TARGET_DIR/etc" ] || fail "$TARGET_DIR is not a target tree (no etc/)"

# Mount points on the read-only root: the data partition (LABEL=jarvis-data) and the boot partition
# (LABEL=JARVIS-BOOT), both mounted by the overlay's /etc/fstab.
mkdir -p "$TARGET_DIR/var/lib/jarvis" "$TARGET_DIR/boot"

# Secrets live on the data partition (the first-boot step creates them there); the image carries none.
secrets="$TARGET_DIR/etc/jarvis/secrets"
if [ -d "$secrets" ] && [ ! -L "$secrets" ]; then
	rmdir "$secrets" 2>/dev/null || fail "etc/jarvis/secrets holds files: secrets must not be built into the image"
fi
mkdir -p "$TARGET_DIR/etc/jarvis"
ln -sfn /var/lib/jarvis/secrets "$secrets"

# Jarvis's own known_hosts (jarvis.toml [ssh] known_hosts) must be writable for trust_on_first_use: keep it on the
# data partition unless the overlay ships a fixed one.
known_hosts="$TARGET_DIR/etc/jarvis/known_hosts"
if [ ! -e "$known_hosts" ] || [ -L "$known_hosts" ]; then
	ln -sfn /var/lib/jarvis/known_hosts "$known_hosts"
fi

# The root stays read-only: BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW must be unset, which leaves BusyBox's
# "mount -o remount,rw /" line commented out.
inittab="$TARGET_DIR/etc/inittab"
if [ -f "$inittab" ] && grep -Eq '^[^#]*remount,rw[[:space:]]+/[[:space:]]*$' "$inittab"; then
	fail "etc/inittab remounts / read-write: unset BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW"
fi

# Everything Jarvis writes goes to the data partition, so fstab must mount it there.
fstab="$TARGET_DIR/etc/fstab"
[ -f "$fstab" ] || fail "no etc/fstab (the overlay provides it)"
grep -Eq '^[[:space:]]*LABEL=jarvis-data[[:space:]]+/var/lib/jarvis[[:space:]]' "$fstab" ||
	fail "etc/fstab does not mount LABEL=jarvis-data on /var/lib/jarvis"

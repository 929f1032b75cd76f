#!/usr/bin/env bash
# Buildroot post-image script for the Jarvis appliance (all boards): fills the board's templates with this build's
# root partition id and assembles the disk image with genimage: a boot partition (vfat, label JARVIS-BOOT), the root
# filesystem (ext4, mounted read-only) and an empty data partition (ext4, label jarvis-data).
# Called by Buildroot as: post-image.sh BINARIES_DIR BOARD (BOARD from BR2_ROOTFS_POST_SCRIPT_ARGS: pc or rpi5), with
# BUILD_DIR in the environment; genimage, dumpe2fs, mke2fs, mkdosfs and mcopy on PATH (Buildroot's host tools).
set -eu

BINARIES_DIR=${1:?usage: post-image.sh BINARIES_DIR BOARD}
BOARD=${2:?usage: post-image.sh BINARIES_DIR BOARD}

fail() {
	echo "post-image.sh ($BOARD): $*" >&2
	exit 1
}

: "${BUILD_DIR:?post-image.sh: BUILD_DIR is not set (Buildroot exports it)}"
BOARD_DIR=$(cd "$(dirname "$0")/../$BOARD" 2>/dev/null && pwd) || fail "no board directory board/jarvis/$BOARD"

# The root partition is found by id, not by device name (an SD card, USB disk or NVMe drive): take the id from
# the root filesystem's UUID, so each build has its own.
ROOTFS="$BINARIES_DIR/rootfs.ext4"
[ -e "$ROOTFS" ] || fail "no rootfs.ext4 in $BINARIES_DIR (BR2_TARGET_ROOTFS_EXT2_4)"
ROOT_UUID=$(dumpe2fs -h "$ROOTFS" 2>/dev/null | sed -n 's/^Filesystem UUID:[[:space:]]*//p')
[[ "$ROOT_UUID" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] ||
	fail "cannot read the UUID of $ROOTFS (got '$ROOT_UUID')"
[ "$ROOT_UUID" != 00000000-0000-0000-0000-000000000000 ] || fail "$ROOTFS has a nil UUID"

GENIMAGE_CFG="$BINARIES_DIR/genimage.cfg"

case "$BOARD" in
pc)
	# GPT: the root partition's PARTUUID is the filesystem UUID. GRUB (x86_64-efi, installed by the grub2 package
	# as efi-part/EFI/BOOT/bootx64.efi) reads grub.cfg next to itself.
	[ -f "$BINARIES_DIR/efi-part/EFI/BOOT/bootx64.efi" ] ||
		fail "no efi-part/EFI/BOOT/bootx64.efi (BR2_TARGET_GRUB2_X86_64_EFI)"
	[ -f "$BINARIES_DIR/bzImage" ] || fail "no bzImage"
	sed "s/@ROOT_PARTUUID@/$ROOT_UUID/g" "$BOARD_DIR/grub.cfg.in" >"$BINARIES_DIR/efi-part/EFI/BOOT/grub.cfg"
	sed "s/@ROOT_PARTUUID@/$ROOT_UUID/g" "$BOARD_DIR/genimage.cfg.in" >"$GENIMAGE_CFG"
	;;
rpi5)
	# MBR (the Pi's boot ROM reads it): a partition's PARTUUID is <disk signature>-<number>, so the disk signature
	# comes from the filesystem UUID and the root is partition 2.
	SIGNATURE=${ROOT_UUID:0:8}
	[ "$SIGNATURE" != 00000000 ] || fail "the root filesystem UUID starts with 00000000; rebuild the rootfs"
	[ -d "$BINARIES_DIR/rpi-firmware" ] || fail "no rpi-firmware/ (BR2_PACKAGE_RPI_FIRMWARE)"
	sed "s/@ROOT_PARTUUID@/$SIGNATURE-02/g" "$BOARD_DIR/cmdline.txt" >"$BINARIES_DIR/rpi-firmware/cmdline.txt"
	KERNEL=$(sed -n 's/^kernel=//p' "$BINARIES_DIR/rpi-firmware/config.txt")
	if [ -z "$KERNEL" ] || [ ! -f "$BINARIES_DIR/$KERNEL" ]; then
		fail "rpi-firmware/config.txt names no kernel= that exists in $BINARIES_DIR"
	fi
	# Everything the firmware reads from the boot partition, as upstream's board/raspberrypi/post-image.sh lists it.
	FILES=()
	for f in "$BINARIES_DIR"/*.dtb "$BINARIES_DIR"/rpi-firmware/*; do
		[ -e "$f" ] && FILES+=("${f#"$BINARIES_DIR"/}")
	done
	FILES+=("$KERNEL")
	printf '\t\t\t"%s",\n' "${FILES[@]}" >"$BINARIES_DIR/genimage-boot-files.tmp"
	sed -e "s/@DISK_SIGNATURE@/0x$SIGNATURE/g" \
		-e "/^[[:space:]]*#BOOT_FILES#[[:space:]]*$/{r $BINARIES_DIR/genimage-boot-files.tmp" -e 'd}' \
		"$BOARD_DIR/genimage.cfg.in" >"$GENIMAGE_CFG"
	rm -f "$BINARIES_DIR/genimage-boot-files.tmp"
	;;
*)
	fail "unknown board '$BOARD' (pc or rpi5)"
	;;
esac

# genimage copies --rootpath into its temporary directory and builds any filesystem image without its own content
# from it: give it an empty directory (as board/raspberrypi/post-image.sh does), so the data partition is empty and
# the target tree is not copied for nothing. The root filesystem is Buildroot's rootfs.ext4, inserted as it is.
ROOTPATH_TMP=$(mktemp -d)
trap 'rm -rf "$ROOTPATH_TMP"' EXIT
GENIMAGE_TMP="$BUILD_DIR/genimage.tmp"
rm -rf "$GENIMAGE_TMP"

genimage \
	--rootpath "$ROOTPATH_TMP" \
	--tmppath "$GENIMAGE_TMP" \
	--inputpath "$BINARIES_DIR" \
	--outputpath "$BINARIES_DIR" \
	--config "$GENIMAGE_CFG"

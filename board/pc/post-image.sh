#!/bin/sh
# Assemble a bootable disk image from the root filesystem (Buildroot passes BINARIES_DIR as $1).
set -e
BOARD_DIR="$(dirname "$0")"
GENIMAGE_TMP="${BUILD_DIR}/genimage.tmp"
rm -rf "${GENIMAGE_TMP}"
genimage --rootpath "${TARGET_DIR}" --tmppath "${GENIMAGE_TMP}" --inputpath "${BINARIES_DIR}" \
	--outputpath "${BINARIES_DIR}" --config "${BOARD_DIR}/genimage.cfg"

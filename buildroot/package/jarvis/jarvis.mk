################################################################################
#
# jarvis
#
################################################################################

# Built from the checkout this external tree lives in.
JARVIS_VERSION = 0.1.0
JARVIS_SITE = $(BR2_EXTERNAL_JARVIS_PATH)/..
JARVIS_SITE_METHOD = local
JARVIS_LICENSE = MIT or Apache-2.0
# The build tree, the fetched models (installed from their own directory
# below) and a Buildroot output directory someone put inside the checkout are
# not sources: don't rsync hundreds of MB into the build directory.
JARVIS_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target \
	--exclude=/models/cache \
	--exclude=/output

JARVIS_DEPENDENCIES = \
	host-clang \
	host-pkgconf \
	alsa-lib \
	espeak-ng \
	ffmpeg \
	fontconfig \
	libegl \
	libgbm \
	libgles \
	libinput \
	libxkbcommon \
	opus \
	udev

# The appliance flavour with a GPU: LinuxKMS + libinput + femtovg (gbm, EGL),
# the software renderer as fallback; no X11 (the `desktop` default feature).
JARVIS_CARGO_FEATURES = --no-default-features --features kiosk-gpu
JARVIS_CARGO_BUILD_OPTS = --bin jarvis $(JARVIS_CARGO_FEATURES)
JARVIS_CARGO_INSTALL_OPTS = $(JARVIS_CARGO_FEATURES)

# Vendoring. The cargo infrastructure vendors the crates as a post-process of
# the download (support/download/cargo-post-process), and builds with
# --offline. A SITE_METHOD=local package is rsynced, never downloaded, so it is
# never vendored and --offline would fail. Do here what cargo-post-process
# does, on the rsynced tree: `cargo vendor --locked VENDOR`, its stdout (the
# source replacement) written to .cargo/config.toml, under the same lock on
# the shared CARGO_HOME. This needs the network at build time, as any
# download does. It is a pre-configure hook, not a post-rsync one: for an
# overridden/local package the rsync step runs before the dependencies
# (host-rustc, hence cargo) are built; configure runs after them.
define JARVIS_CARGO_VENDOR
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	cd $(@D) && \
	$(HOST_MAKE_ENV) $(PKG_CARGO_ENV) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor \
			--manifest-path Cargo.toml \
			--locked VENDOR \
			> $(@D)/.cargo/config.toml
endef
JARVIS_PRE_CONFIGURE_HOOKS += JARVIS_CARGO_VENDOR

# FFmpeg. ffmpeg-sys-next compiles and *runs* a feature probe (check.c) with
# the host compiler, with -I <include dir of FFmpeg>, then runs bindgen.
# Pointing FFMPEG_DIR at $(STAGING_DIR)/usr would put the target's libc
# headers first on the host compiler's include path; pkg-config (Buildroot's
# wrapper strips the sysroot's /usr/include) would give it no include path at
# all. So FFMPEG_DIR is a directory holding only FFmpeg's headers and the
# staging lib directory.
define JARVIS_FFMPEG_LAYOUT
	rm -rf $(@D)/br-ffmpeg
	mkdir -p $(@D)/br-ffmpeg/include
	for d in $(STAGING_DIR)/usr/include/libav* \
		$(STAGING_DIR)/usr/include/libsw* \
		$(STAGING_DIR)/usr/include/libpostproc; do \
		if [ -d "$$d" ]; then ln -s "$$d" $(@D)/br-ffmpeg/include/ || exit 1; fi; \
	done
	test -e $(@D)/br-ffmpeg/include/libavformat
	ln -s $(STAGING_DIR)/usr/lib $(@D)/br-ffmpeg/lib
endef
JARVIS_PRE_CONFIGURE_HOOKS += JARVIS_FFMPEG_LAYOUT

# bindgen (ffmpeg-sys-next) loads libclang from host-clang and parses the
# target's headers; it passes --target itself. The other -sys crates (alsa,
# libudev, fontconfig) use pkg-config, which TARGET_CONFIGURE_OPTS points at
# Buildroot's cross-aware wrapper (PKG_CONFIG), so the pkg-config crate
# accepts the cross build.
JARVIS_CARGO_ENV = \
	FFMPEG_DIR=$(@D)/br-ffmpeg \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	CLANG_PATH=$(HOST_DIR)/bin/clang \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR)"

# When the target triple differs from the host's (the Pi 5 from an x86-64
# host), cc-rs compiles code for the host (ffmpeg-sys-next's check.c is built
# with .target(HOST)) with HOST_CC, else with CC, which TARGET_CONFIGURE_OPTS
# sets to the cross compiler. When they are the same triple (a PC from an
# x86-64 host) cc-rs cannot tell host from target: leave it on CC, or target
# C code (ring, sqlite) would be built by the host compiler.
ifneq ($(RUSTC_TARGET_NAME),$(RUSTC_HOST_NAME))
JARVIS_CARGO_ENV += \
	HOST_CC="$(HOSTCC)" \
	HOST_CFLAGS="$(HOST_CFLAGS)"
endif

# The on-device models, from the directory scripts/fetch-models fills. Only
# what the appliance runs: the *.onnx graphs and their *.json settings at the
# top level. Not the test-only files MODELS.toml marks `purpose = "test"` (the
# chat test model *.gguf, test speech *.wav, test-faces/) nor the demo's video
# clips (clips/).
JARVIS_MODELS_DIR = $(call qstrip,$(BR2_PACKAGE_JARVIS_MODELS_DIR))
ifeq ($(JARVIS_MODELS_DIR),)
JARVIS_MODELS_DIR = $(BR2_EXTERNAL_JARVIS_PATH)/../models/cache
endif

define JARVIS_INSTALL_MODELS
	@if ! ls $(JARVIS_MODELS_DIR)/*.onnx >/dev/null 2>&1; then \
		echo "jarvis: no models (*.onnx) in $(JARVIS_MODELS_DIR): run" \
			"scripts/fetch-models, or set BR2_PACKAGE_JARVIS_MODELS_DIR" >&2; \
		exit 1; \
	fi
	rm -rf $(TARGET_DIR)/usr/share/jarvis/models
	mkdir -p $(TARGET_DIR)/usr/share/jarvis/models
	find $(JARVIS_MODELS_DIR)/ -maxdepth 1 \( -type f -o -type l \) \
		\( -name '*.onnx' -o -name '*.json' \) \
		-exec $(INSTALL) -m 0644 -t $(TARGET_DIR)/usr/share/jarvis/models {} +
endef
JARVIS_POST_INSTALL_TARGET_HOOKS += JARVIS_INSTALL_MODELS

$(eval $(cargo-package))

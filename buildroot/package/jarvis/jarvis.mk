################################################################################
#
# jarvis
#
################################################################################

JARVIS_VERSION = 0.1.0
JARVIS_SITE = $(BR2_EXTERNAL_JARVIS_PATH)/..
JARVIS_SITE_METHOD = local
JARVIS_LICENSE = MIT or Apache-2.0
JARVIS_CARGO_BUILD_OPTS = --bin jarvis

define JARVIS_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(JARVIS_PKGDIR)/../../../overlay/etc/jarvis/jarvis.toml \
		$(TARGET_DIR)/etc/jarvis/jarvis.toml
endef
JARVIS_POST_INSTALL_TARGET_HOOKS += JARVIS_INSTALL_CONFIG

$(eval $(cargo-package))

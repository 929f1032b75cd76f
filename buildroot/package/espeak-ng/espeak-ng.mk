################################################################################
#
# espeak-ng
#
################################################################################

# 1.51 is what Jarvis is developed against (Debian 12's libespeak-ng1). The
# GitHub archive of the tag, not the release asset: see espeak-ng.hash.
ESPEAK_NG_VERSION = 1.51
ESPEAK_NG_SITE = $(call github,espeak-ng,espeak-ng,$(ESPEAK_NG_VERSION))
ESPEAK_NG_LICENSE = GPL-3.0+, Apache-2.0 (ucd-tools), BSD-2-Clause (getopt), Unicode-DFS-2015 (UCD data)
ESPEAK_NG_LICENSE_FILES = COPYING COPYING.APACHE COPYING.BSD2 COPYING.UCD
ESPEAK_NG_INSTALL_STAGING = YES
# The tag has no configure script: autoreconf, as upstream's autogen.sh does.
ESPEAK_NG_AUTORECONF = YES
# The data (phoneme tables, dictionaries) is compiled by running espeak-ng
# itself, which a cross build cannot do: host-espeak-ng compiles it and the
# target gets a copy.
ESPEAK_NG_DEPENDENCIES = host-espeak-ng

# No audio output (Jarvis plays through ALSA itself), no sonic speed-up, no
# async thread; no speechPlayer (C++), no MBROLA voices, no extended ru/cmn/yue
# dictionaries (tens of MB).
ESPEAK_NG_COMMON_CONF_OPTS = \
	--without-pcaudiolib \
	--without-sonic \
	--without-async \
	--without-speechplayer \
	--without-mbrola \
	--without-extdict-ru \
	--without-extdict-cmn \
	--without-extdict-yue \
	--without-gradle
ESPEAK_NG_CONF_OPTS = $(ESPEAK_NG_COMMON_CONF_OPTS)
HOST_ESPEAK_NG_CONF_OPTS = $(ESPEAK_NG_COMMON_CONF_OPTS)

# automake runs in GNU strictness and wants these files; upstream's
# autogen.sh makes them the same way. Runs before autoreconf (the autotools
# infrastructure appends its hook after this one).
define ESPEAK_NG_AUTOGEN_FILES
	mkdir -p $(@D)/m4
	touch $(@D)/AUTHORS $(@D)/ChangeLog
	ln -sf CHANGELOG.md $(@D)/NEWS
	ln -sf README.md $(@D)/README
endef
ESPEAK_NG_PRE_CONFIGURE_HOOKS += ESPEAK_NG_AUTOGEN_FILES
HOST_ESPEAK_NG_PRE_CONFIGURE_HOOKS += ESPEAK_NG_AUTOGEN_FILES

# Target: the library and the two programs only (the default target would
# compile the data with the target binary).
ESPEAK_NG_MAKE_OPTS = src/libespeak-ng.la src/espeak-ng src/speak-ng
ESPEAK_NG_INSTALL_STAGING_OPTS = \
	DESTDIR=$(STAGING_DIR) \
	install-exec \
	install-espeak_includeHEADERS \
	install-espeak_ng_includeHEADERS \
	install-pkgconfigDATA
ESPEAK_NG_INSTALL_TARGET_OPTS = DESTDIR=$(TARGET_DIR) install-exec

# The library looks for its data in $(prefix)/share/espeak-ng-data.
define ESPEAK_NG_INSTALL_DATA
	rm -rf $(TARGET_DIR)/usr/share/espeak-ng-data
	mkdir -p $(TARGET_DIR)/usr/share
	cp -a $(HOST_DIR)/share/espeak-ng-data $(TARGET_DIR)/usr/share/
endef
ESPEAK_NG_POST_INSTALL_TARGET_HOOKS += ESPEAK_NG_INSTALL_DATA

# Host: everything, data included, with one job as LibreELEC's and CoreELEC's
# espeak-ng 1.51 packages do (parallel builds of the data are reported to fail).
HOST_ESPEAK_NG_MAKE = $(MAKE1)

$(eval $(autotools-package))
$(eval $(host-autotools-package))

//! Fonts for a root that has none. Slint builds its font collection from fontconfig's system fonts before any
//! font of ours is registered, and the font library under it (fontique 0.11) panics when fontconfig lists no
//! font at all — as in a minimal appliance root with no `fonts-*` package and no `fonts.conf`. So before any
//! UI exists, [`ensure_system_font`] asks fontconfig how many fonts it sees; if none, it writes the HUD's own
//! embedded JetBrains Mono to a private folder and points `FONTCONFIG_FILE` at a configuration that includes
//! the system's (when there is one) plus that folder. On a root with fonts it changes nothing.
//!
//! The static flavour (feature `kiosk-static`) loads fontconfig at run time, as fontique does there: on the
//! appliance's root there is none, fontique then offers no system font, and the HUD draws with the fonts embedded
//! in it ([`FontSetup::NoFontconfig`]).

use std::path::{Path, PathBuf};

const REGULAR: &[u8] = include_bytes!("../../ui/fonts/JetBrainsMono-Regular.ttf");
const BOLD: &[u8] = include_bytes!("../../ui/fonts/JetBrainsMono-Bold.ttf");

/// What [`ensure_system_font`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FontSetup {
    /// fontconfig lists this many fonts; nothing to do.
    System(usize),
    /// fontconfig listed none: the embedded fonts were written here and `FONTCONFIG_FILE` points at them.
    Embedded(PathBuf),
    /// fontconfig listed none and the fallback could not be written (the reason); the UI will not start.
    Failed(String),
    /// No fontconfig library to load (the static flavour on a root without one): the HUD's embedded fonts only.
    NoFontconfig,
}

static SETUP: std::sync::OnceLock<FontSetup> = std::sync::OnceLock::new();

/// [`ensure_system_font`], once per process; its outcome is kept for [`setup`].
pub fn ensure() -> &'static FontSetup {
    SETUP.get_or_init(ensure_system_font)
}

/// What [`ensure`] found, if it ran.
pub fn setup() -> Option<&'static FontSetup> {
    SETUP.get()
}

/// Logs what [`ensure`] did (call once logging is set up).
pub fn log_setup() {
    match setup() {
        Some(FontSetup::Embedded(dir)) => tracing::warn!(
            "this system has no fonts (fontconfig lists none); the HUD uses its own, from {}. \
             Installing a font package (fonts-dejavu-core) gives it fallback glyphs",
            dir.display()
        ),
        Some(FontSetup::Failed(why)) => {
            tracing::error!(
                "this system has no fonts and the HUD's own could not be offered: {why}"
            )
        }
        Some(FontSetup::System(n)) => tracing::debug!(fonts = n, "system fonts"),
        Some(FontSetup::NoFontconfig) => {
            tracing::info!("no fontconfig on this system: the HUD draws with its embedded fonts")
        }
        None => {}
    }
}

/// How many fonts fontconfig's current configuration (`FONTCONFIG_FILE` included) lists.
pub fn system_font_count() -> usize {
    if !fontconfig_present() {
        return 0;
    }
    #[cfg(feature = "kiosk-static")]
    use fontconfig_sys::statics::LIB;
    use fontconfig_sys::{ffi_dispatch, FcSetSystem};
    #[cfg(not(feature = "kiosk-static"))]
    use fontconfig_sys::{FcConfigDestroy, FcConfigGetFonts, FcInitLoadConfigAndFonts};
    // SAFETY: plain fontconfig calls on a configuration of our own, destroyed before returning; the font set
    // pointer is read only while the configuration lives. With `kiosk-static` the library was loaded above.
    unsafe {
        let config = ffi_dispatch!(feature = "kiosk-static", LIB, FcInitLoadConfigAndFonts,);
        if config.is_null() {
            return 0;
        }
        let set = ffi_dispatch!(
            feature = "kiosk-static",
            LIB,
            FcConfigGetFonts,
            config,
            FcSetSystem
        );
        let n = if set.is_null() {
            0
        } else {
            (*set).nfont.max(0) as usize
        };
        ffi_dispatch!(feature = "kiosk-static", LIB, FcConfigDestroy, config);
        n
    }
}

/// Whether fontconfig can be used: always when linked; in the static flavour, when its library loads.
pub fn fontconfig_present() -> bool {
    #[cfg(feature = "kiosk-static")]
    return fontconfig_sys::statics::LIB_RESULT.is_ok();
    #[cfg(not(feature = "kiosk-static"))]
    true
}

/// Makes sure fontconfig lists at least the HUD's own fonts. Call at the very start of `main`, while the process
/// has one thread (it may set an environment variable).
pub fn ensure_system_font() -> FontSetup {
    if !fontconfig_present() {
        return FontSetup::NoFontconfig;
    }
    let n = system_font_count();
    if n > 0 {
        return FontSetup::System(n);
    }
    let dir = private_dir();
    match write_fallback(&dir) {
        Ok(conf) => {
            // One thread yet (see above), so changing the environment is sound.
            std::env::set_var("FONTCONFIG_FILE", &conf);
            if system_font_count() > 0 {
                FontSetup::Embedded(dir)
            } else {
                FontSetup::Failed(format!(
                    "fontconfig still lists no font with {}",
                    conf.display()
                ))
            }
        }
        Err(e) => FontSetup::Failed(format!("cannot write {}: {e}", dir.display())),
    }
}

/// A folder only this user can write: the runtime folder when there is one, else one in the temp folder named
/// after the user id.
fn private_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("jarvis-fonts"),
        None => std::env::temp_dir().join(format!(
            "jarvis-fonts-{}",
            own_uid().map_or("user".to_string(), |u| u.to_string())
        )),
    }
}

/// This process's user id: the owner of `/proc/self`.
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Writes the fonts and a `fonts.conf` into `dir` (created 0700; refused if someone else owns it) and returns
/// the configuration's path.
fn write_fallback(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder.create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || Some(meta.uid()) != own_uid() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the folder exists and is not ours",
        ));
    }
    let fonts = dir.join("fonts");
    builder.create(&fonts)?;
    std::fs::write(fonts.join("JetBrainsMono-Regular.ttf"), REGULAR)?;
    std::fs::write(fonts.join("JetBrainsMono-Bold.ttf"), BOLD)?;
    let conf = dir.join("fonts.conf");
    std::fs::write(&conf, fonts_conf(&fonts, &dir.join("cache")))?;
    Ok(conf)
}

/// A configuration that keeps the system's (if any) and adds `fonts`.
fn fonts_conf(fonts: &Path, cache: &Path) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"urn:fontconfig:fonts.dtd\">\n<fontconfig>\n  \
         <include ignore_missing=\"yes\">/etc/fonts/fonts.conf</include>\n  <dir>{}</dir>\n  \
         <cachedir>{}</cachedir>\n</fontconfig>\n",
        xml_text(&fonts.to_string_lossy()),
        xml_text(&cache.to_string_lossy())
    )
}

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_names_the_folder_escaped() {
        let c = fonts_conf(Path::new("/run/a&b/fonts"), Path::new("/run/a&b/cache"));
        assert!(c.contains("<dir>/run/a&amp;b/fonts</dir>"), "{c}");
        assert!(c.contains("/etc/fonts/fonts.conf"));
    }

    #[test]
    fn the_fallback_folder_gets_both_fonts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = write_fallback(&dir.path().join("f")).expect("written");
        assert!(conf.exists());
        assert_eq!(
            std::fs::read(dir.path().join("f/fonts/JetBrainsMono-Bold.ttf")).expect("bold"),
            BOLD
        );
    }
}

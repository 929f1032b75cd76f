//! The vision sections of the config: `[presence]` and the `[[cameras]]` list (each camera's source and what
//! arriving and leaving mean on it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::reader::{Reader, Section};
use super::{remember, resolve};
use std::time::Duration;

use crate::secret::Secret;
use crate::tls::{Fingerprint, Trust};
use crate::vision::cameras::{CameraSettings, CameraSource, PresenceSettings};
use crate::vision::frigate::client::FrigateSettings;
use crate::vision::frigate::mqtt::MqttSettings;
use crate::vision::presence::{CameraMode, CameraRules};

/// `[frigate]`, when present: `url` (http://host:5000, the internal port, or https://host:8971 with `user`,
/// `password_file` and the certificate's `fingerprint` or a `ca_file`), `timeout_secs`, `poll_secs`.
pub fn read_frigate(
    s: &mut Section<'_, '_>,
    base: &Path,
    secrets: &mut Vec<PathBuf>,
    needed: bool,
) -> Option<FrigateSettings> {
    if !s.present() {
        if needed {
            s.fail(
                "url",
                None,
                "cameras with source = \"frigate\" need a [frigate] section with its url".into(),
            );
        }
        return None;
    }
    let url = s.required_string("url");
    let https = match &url {
        Some((u, _)) if u.starts_with("https://") => true,
        Some((u, _)) if u.starts_with("http://") => false,
        Some((_, span)) => {
            s.fail(
                "url",
                Some(span.clone()),
                "must start with http:// (port 5000) or https:// (port 8971)".into(),
            );
            false
        }
        None => false,
    };
    let login = read_login(s, base, secrets);
    let trust = read_trust(s, base);
    if https && trust.is_none() {
        s.fail(
            "fingerprint",
            None,
            "an https Frigate needs its certificate pinned (fingerprint) or a ca_file".into(),
        );
    }
    let timeout = Duration::from_secs(s.int_or("timeout_secs", 10, 1, 120));
    let poll_every = Duration::from_secs(s.int_or("poll_secs", 3, 1, 600));
    Some(FrigateSettings {
        url: url?.0,
        login,
        trust,
        timeout,
        poll_every,
    })
}

/// `[mqtt]`, when present: `host`, `port`, `user` + `password_file`, `tls` (with `fingerprint` or `ca_file`),
/// `topic_prefix`, `client_id`.
pub fn read_mqtt(
    s: &mut Section<'_, '_>,
    base: &Path,
    secrets: &mut Vec<PathBuf>,
) -> Option<MqttSettings> {
    if !s.present() {
        return None;
    }
    let host = s.required_string("host");
    let tls = s.bool_or("tls", false);
    let port = s.int_or("port", if tls { 8883 } else { 1883 }, 1, 65_535) as u16;
    let login = read_login(s, base, secrets);
    let trust = read_trust(s, base);
    if tls && trust.is_none() {
        s.fail(
            "tls",
            None,
            "TLS to the broker needs its certificate pinned (fingerprint) or a ca_file".into(),
        );
    }
    if !tls && trust.is_some() {
        s.fail(
            "tls",
            None,
            "a fingerprint or ca_file is given but tls = false".into(),
        );
    }
    let topic_prefix = match s.string("topic_prefix") {
        None => "frigate".to_string(),
        Some((p, span)) => {
            if p.is_empty() || p.contains(['#', '+']) || p.len() > 64 {
                s.fail(
                    "topic_prefix",
                    Some(span),
                    "a topic without wildcards (Frigate's mqtt.topic_prefix)".into(),
                );
            }
            p
        }
    };
    let client_id = s
        .string("client_id")
        .map_or_else(|| "jarvis".to_string(), |(c, _)| c);
    Some(MqttSettings {
        host: host?.0,
        port,
        client_id,
        login,
        tls: if tls { trust } else { None },
        topic_prefix,
    })
}

/// `user` and `password_file`, both or neither.
fn read_login(
    s: &mut Section<'_, '_>,
    base: &Path,
    secrets: &mut Vec<PathBuf>,
) -> Option<(String, Secret)> {
    let user = s.string("user");
    let password = s.string("password_file");
    match (user, password) {
        (Some((u, _)), Some((file, span))) => {
            match Secret::from_file(&remember(secrets, resolve(base, &file))) {
                Ok(p) => Some((u, p)),
                Err(e) => {
                    s.fail("password_file", Some(span), e.to_string());
                    None
                }
            }
        }
        (Some((_, span)), None) => {
            s.fail(
                "password_file",
                Some(span),
                "a user needs its password_file".into(),
            );
            None
        }
        (None, Some((_, span))) => {
            s.fail("user", Some(span), "a password_file needs its user".into());
            None
        }
        (None, None) => None,
    }
}

/// `fingerprint` or `ca_file` (not both); none is fine here (the caller says when one is needed).
fn read_trust(s: &mut Section<'_, '_>, base: &Path) -> Option<Trust> {
    match (s.string("fingerprint"), s.string("ca_file")) {
        (Some((fp, span)), None) => match Fingerprint::parse(&fp) {
            Ok(f) => Some(Trust::Pinned(f)),
            Err(e) => {
                s.fail("fingerprint", Some(span), e.to_string());
                None
            }
        },
        (None, Some((ca, _))) => Some(Trust::CaFile(resolve(base, &ca))),
        (Some(_), Some((_, span))) => {
            s.fail(
                "ca_file",
                Some(span),
                "set either fingerprint or ca_file, not both".into(),
            );
            None
        }
        (None, None) => None,
    }
}

pub fn read_presence(s: &mut Section<'_, '_>) -> PresenceSettings {
    let d = PresenceSettings::default();
    PresenceSettings {
        keep_days: s.int_or("keep_days", u64::from(d.keep_days), 1, 36_500) as u32,
    }
}

/// Every `[[cameras]]` entry; names must be unique and made of letters, digits, `_` and `-` (as Frigate's are).
pub fn read_cameras(
    r: &mut Reader<'_>,
    base: &Path,
    secrets: &mut Vec<PathBuf>,
) -> Vec<CameraSettings> {
    let mut seen = HashSet::new();
    let cameras = r.tables("cameras", |s, _| read_camera(s, base, secrets, &mut seen));
    cameras.into_iter().flatten().collect()
}

fn read_camera(
    s: &mut Section<'_, '_>,
    base: &Path,
    secrets: &mut Vec<PathBuf>,
    seen: &mut HashSet<String>,
) -> Option<CameraSettings> {
    let name = s.required_string("name");
    if let Some((n, span)) = &name {
        if n.is_empty()
            || n.len() > 64
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            s.fail(
                "name",
                Some(span.clone()),
                "use letters, digits, '_' and '-' (at most 64), as Frigate does".into(),
            );
        } else if !seen.insert(n.clone()) {
            s.fail(
                "name",
                Some(span.clone()),
                format!("a second camera named {n}"),
            );
        }
    }
    let source = match s.string("source") {
        None => Some("frigate".to_string()),
        Some((v, span)) if v == "frigate" || v == "rtsp" || v == "file" => {
            let _ = span;
            Some(v)
        }
        Some((v, span)) => {
            s.fail(
                "source",
                Some(span),
                format!("\"{v}\" is not a source: use \"frigate\", \"rtsp\" or \"file\""),
            );
            None
        }
    };
    let url = s.string("url");
    let password_file = s.string("password_file");
    let file = s.string("path");
    let frigate_name = s.string("frigate_name");
    let source = match source.as_deref() {
        Some("rtsp") => {
            let Some((url, span)) = url else {
                s.fail(
                    "url",
                    None,
                    "an RTSP camera needs its url (rtsp://host:554/path)".into(),
                );
                return None;
            };
            if !(url.starts_with("rtsp://") || url.starts_with("rtsps://")) {
                s.fail(
                    "url",
                    Some(span),
                    "must start with rtsp:// or rtsps://".into(),
                );
                return None;
            }
            let authority = url
                .split("://")
                .nth(1)
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("");
            if authority
                .rsplit_once('@')
                .is_some_and(|(user, _)| user.contains(':'))
            {
                s.fail(
                    "url",
                    Some(span),
                    "has a password in it: keep rtsp://user@host/... here and put the password in password_file".into(),
                );
                return None;
            }
            if password_file.is_some() && !authority.contains('@') {
                s.fail(
                    "url",
                    Some(span),
                    "a password_file needs the user it belongs to in the url (rtsp://user@host/...)".into(),
                );
                return None;
            }
            let password = match password_file {
                Some((file, span)) => {
                    match Secret::from_file(&remember(secrets, resolve(base, &file))) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            s.fail("password_file", Some(span), e.to_string());
                            return None;
                        }
                    }
                }
                None => None,
            };
            CameraSource::Rtsp { url, password }
        }
        Some("file") => {
            let Some((path, _)) = file else {
                s.fail(
                    "path",
                    None,
                    "a file camera needs the video's path (played in a loop)".into(),
                );
                return None;
            };
            CameraSource::File {
                path: resolve(base, &path),
            }
        }
        Some(_) => {
            if let Some((_, span)) = url {
                s.fail(
                    "url",
                    Some(span),
                    "only for source = \"rtsp\" (Frigate cameras come from [frigate])".into(),
                );
            }
            let n = name.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
            CameraSource::Frigate {
                frigate_name: frigate_name.map(|(f, _)| f).unwrap_or(n),
            }
        }
        None => return None,
    };
    let decoded = !matches!(source, CameraSource::Frigate { .. });
    let mode = match s.string("mode") {
        // Only Frigate knows zones; a stream Jarvis decodes itself says who, not where in the picture.
        None if decoded => CameraMode::Passing,
        None => CameraMode::Zones,
        Some((m, span)) if decoded && m == "zones" => {
            s.fail(
                "mode",
                Some(span),
                "zones come from Frigate: a camera Jarvis decodes itself is \"arrivals\" or \"passing\"".into(),
            );
            return None;
        }
        Some((m, span)) => match CameraMode::parse(&m) {
            Some(m) => m,
            None => {
                s.fail(
                    "mode",
                    Some(span),
                    format!("\"{m}\" is not a mode: use \"zones\", \"arrivals\" or \"passing\""),
                );
                return None;
            }
        },
    };
    let inside_zones = s.string_list("inside_zones").unwrap_or_default();
    let outside_zones = s.string_list("outside_zones").unwrap_or_default();
    if mode == CameraMode::Zones && inside_zones.is_empty() {
        s.fail(
            "inside_zones",
            None,
            "a camera in mode \"zones\" needs the zones that mean inside (mode = \"arrivals\" or \"passing\" needs none)"
                .into(),
        );
    }
    if let Some(z) = inside_zones.iter().find(|z| outside_zones.contains(z)) {
        s.fail(
            "outside_zones",
            None,
            format!("zone {z} is both inside and outside"),
        );
    }
    let timeout_min = s.int_or("departure_timeout_minutes", 0, 0, 7 * 24 * 60);
    let sample_fps = s.number_or("sample_fps", 2.0, 0.1, 15.0) as f32;
    Some(CameraSettings {
        name: name?.0,
        source,
        rules: CameraRules {
            name: String::new(),
            mode,
            inside_zones,
            outside_zones,
            departure_timeout_ms: timeout_min * 60_000,
        },
        sample_fps,
    })
    .map(|mut c| {
        c.rules.name = c.name.clone();
        c
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError};
    use crate::vision::cameras::CameraSource;
    use crate::vision::presence::CameraMode;
    use std::path::Path;

    const HEAD: &str = "[pve]\nurl = \"https://10.0.0.2:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\"\n";

    fn env(k: &str) -> Option<String> {
        match k {
            "JARVIS_PVE_TOKEN_SECRET" => Some("pve-secret".into()),
            "JARVIS_WEB_TOKEN" => Some("0123456789abcdef0123".into()),
            "JARVIS_OPERATOR_TOKEN" => Some("operator-0123456789abcdef".into()),
            _ => None,
        }
    }

    fn parse(tail: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("{HEAD}{tail}"),
            "j.toml",
            Path::new("/etc/jarvis"),
            &env,
        )
    }

    fn problems(tail: &str) -> Vec<String> {
        problems_of(parse(tail))
    }

    fn problems_of(r: Result<Config, ConfigError>) -> Vec<String> {
        match r {
            Err(ConfigError::Invalid { problems, .. }) => problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect(),
            Err(e) => panic!("{e}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn cameras_are_read_in_order_with_their_rules() {
        let c = parse(
            "[presence]\nkeep_days = 90\n\n[frigate]\nurl = \"http://agent1.lan:5000\"\n\n[[cameras]]\nname = \"front_door\"\ninside_zones = [\"porch\"]\noutside_zones = [\"street\"]\n\n[[cameras]]\nname = \"hall\"\nsource = \"rtsp\"\nurl = \"rtsp://viewer@10.0.0.9:554/h264\"\nmode = \"arrivals\"\ndeparture_timeout_minutes = 45\nsample_fps = 4\n",
        )
        .expect("valid");
        assert_eq!(c.presence.keep_days, 90);
        assert_eq!(c.cameras.len(), 2);
        let front = &c.cameras[0];
        assert_eq!(
            front.source,
            CameraSource::Frigate {
                frigate_name: "front_door".into()
            }
        );
        assert_eq!(front.rules.name, "front_door");
        assert_eq!(
            (front.rules.mode, front.rules.inside_zones.clone()),
            (CameraMode::Zones, vec!["porch".to_string()])
        );
        let hall = &c.cameras[1];
        assert!(
            matches!(&hall.source, CameraSource::Rtsp { url, password: None } if url == "rtsp://viewer@10.0.0.9:554/h264")
        );
        assert_eq!(
            (
                hall.rules.mode,
                hall.rules.departure_timeout_ms,
                hall.sample_fps
            ),
            (CameraMode::Arrivals, 45 * 60_000, 4.0)
        );
    }

    #[test]
    fn camera_mistakes_are_each_named() {
        let p = problems(
            "[[cameras]]\nname = \"front door\"\n\n[[cameras]]\nname = \"x\"\nsource = \"rtsp\"\nurl = \"rtsp://admin:hunter2@10.0.0.9/s\"\n\n[[cameras]]\nname = \"y\"\nmode = \"sometimes\"\n\n[[cameras]]\nname = \"z\"\nmode = \"zones\"\ninside_zones = [\"a\"]\noutside_zones = [\"a\"]\n\n[[cameras]]\nname = \"z\"\nmode = \"passing\"\nurl = \"rtsp://h/s\"\n",
        );
        let joined = p.join("\n");
        for want in [
            "cameras[0].name: use letters",
            "cameras[0].inside_zones: a camera in mode \"zones\"",
            "cameras[1].url: has a password in it",
            "cameras[2].mode: \"sometimes\" is not a mode",
            "cameras[3].outside_zones: zone a is both inside and outside",
            "cameras[4].name: a second camera named z",
            "cameras[4].url: only for source = \"rtsp\"",
        ] {
            assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
        }
        assert!(
            !joined.contains("hunter2"),
            "a password never shows in a problem"
        );
        // A list written as a plain key is refused, not ignored.
        let top = |pre: &str| {
            let src = format!("{pre}{HEAD}");
            problems_of(Config::parse(
                &src,
                "j.toml",
                Path::new("/etc/jarvis"),
                &env,
            ))
            .join("\n")
        };
        assert!(top("cameras = [\"front\"]\n").contains("cameras[0]: expected a table"));
        assert!(top("cameras = 1\n").contains("[[cameras]]"));
    }

    #[test]
    fn cameras_jarvis_decodes_have_no_zones_and_a_password_needs_its_user() {
        let p = problems(
            "[[cameras]]\nname = \"hall\"\nsource = \"rtsp\"\nurl = \"rtsp://10.0.0.9/s\"\nmode = \"zones\"\ninside_zones = [\"a\"]\n\n[[cameras]]\nname = \"gate\"\nsource = \"rtsp\"\nurl = \"rtsp://10.0.0.9/s\"\npassword_file = \"/nonexistent\"\n\n[[cameras]]\nname = \"clip\"\nsource = \"file\"\n",
        )
        .join("\n");
        for want in [
            "cameras[0].mode: zones come from Frigate",
            "cameras[1].url: a password_file needs the user",
            "cameras[2].path: a file camera needs the video's path",
        ] {
            assert!(p.contains(want), "missing {want:?} in:\n{p}");
        }
        let c = parse(
            "[[cameras]]\nname = \"garden\"\nsource = \"file\"\npath = \"clips/garden.mp4\"\n",
        )
        .expect("valid");
        assert_eq!(
            c.cameras[0].source,
            CameraSource::File {
                path: "/etc/jarvis/clips/garden.mp4".into()
            }
        );
        assert_eq!(
            c.cameras[0].rules.mode,
            CameraMode::Passing,
            "the default for a decoded camera"
        );
    }
}

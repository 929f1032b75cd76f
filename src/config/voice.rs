//! The voice sections of the config: `[voice]` (the models, the wake word, the end of an utterance, the sound
//! devices), and the optional cloud speech, `[cloud_stt]` and `[cloud_tts]`, read only when present.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::reader::Section;
use super::{read_secret, resolve};
use crate::voice::cloud::{CloudSttSettings, CloudTtsSettings, TtsProvider};

pub const ENV_OPENAI_KEY: &str = "OPENAI_API_KEY";
pub const ENV_ELEVENLABS_KEY: &str = "ELEVENLABS_API_KEY";

/// `[voice]`: on unless turned off; the models, the wake word, the end of an utterance, the sound devices.
pub fn read_voice(
    s: &mut Section<'_, '_>,
    base: &Path,
    store_path: &Path,
) -> crate::voice::service::VoiceSettings {
    let mut v = crate::voice::service::VoiceSettings {
        enabled: s.bool_or("enabled", true),
        ..Default::default()
    };
    v.models = match s.string("models") {
        Some((m, _)) => resolve(base, &m),
        None => crate::vision::service::FaceSettings::default().models,
    };
    let w = &mut v.wake;
    w.threshold = s.number_or("wake_threshold", w.threshold as f64, 0.05, 0.99) as f32;
    w.refractory_ms = s.int_or("wake_refractory_ms", w.refractory_ms, 0, 60_000);
    w.vad_gate = s.number_or("wake_vad_gate", w.vad_gate as f64, 0.0, 1.0) as f32;
    let u = &mut v.utterance;
    u.silence_ms = s.int_or("end_silence_ms", u.silence_ms, 200, 5_000);
    u.max_ms = s.int_or("max_utterance_ms", u.max_ms, 2_000, 30_000);
    u.start_timeout_ms = s.int_or("start_timeout_ms", u.start_timeout_ms, 1_000, 30_000);
    if let Some((d, _)) = s.string("capture_device") {
        v.capture_device = d;
    }
    if let Some((d, _)) = s.string("playback_device") {
        v.playback_device = d;
    }
    v.spoken_confirmation = s.bool_or("spoken_confirmation", false);
    v.cache_bytes = s.int_or("cache_mb", 64, 0, 10_000) << 20;
    v.cache_dir = store_path.parent().map(|d| d.join("speech-cache"));
    v.tts_parallel = s.int_or("tts_parallel", 2, 1, 8) as usize;
    v.piper_deadline = Duration::from_millis(s.int_or("piper_deadline_ms", 2500, 100, 60_000));
    v
}

/// The section's `url` (or `default`), which must be http:// or https://.
fn read_url(s: &mut Section<'_, '_>, default: &str) -> Option<String> {
    let (url, span) = s
        .string("url")
        .map(|(u, span)| (u, Some(span)))
        .unwrap_or_else(|| (default.to_string(), None));
    if url.starts_with("http://") || url.starts_with("https://") {
        Some(url)
    } else {
        s.fail(
            "url",
            span,
            format!("`{url}` is not an http:// or https:// URL"),
        );
        None
    }
}

/// `[cloud_stt]`, when present: an OpenAI-compatible transcription service (`url`, `model`, `language`,
/// `api_key_file` or OPENAI_API_KEY, none for a local server that takes no key, `timeout_ms`).
pub fn read_cloud_stt(
    s: &mut Section<'_, '_>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<PathBuf>,
) -> Option<CloudSttSettings> {
    if !s.present() {
        return None;
    }
    let url = read_url(s, "https://api.openai.com/v1");
    let model = s
        .string("model")
        .map(|(m, _)| m)
        .unwrap_or_else(|| "whisper-1".into());
    let language = s
        .string("language")
        .map(|(l, _)| l)
        .unwrap_or_else(|| "en".into());
    let has_key =
        s.string("api_key_file").is_some() || env(ENV_OPENAI_KEY).is_some_and(|k| !k.is_empty());
    let api_key = if has_key {
        Some(read_secret(
            s,
            "api_key_file",
            ENV_OPENAI_KEY,
            base,
            env,
            secrets,
        )?)
    } else {
        None
    };
    let timeout = Duration::from_millis(s.int_or("timeout_ms", 10_000, 500, 120_000));
    Some(CloudSttSettings {
        url: url?,
        model,
        language,
        api_key,
        timeout,
    })
}

/// `[cloud_tts]`, when present: `provider` ("openai" or "elevenlabs"), `voice` (OpenAI's voice name or
/// ElevenLabs' voice id), `model`, `url`, `api_key_file` (else OPENAI_API_KEY / ELEVENLABS_API_KEY), `timeout_ms`.
pub fn read_cloud_tts(
    s: &mut Section<'_, '_>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<PathBuf>,
) -> Option<CloudTtsSettings> {
    if !s.present() {
        return None;
    }
    let provider = match s.required_string("provider") {
        Some((p, _)) if p == "openai" => TtsProvider::OpenAi,
        Some((p, _)) if p == "elevenlabs" => TtsProvider::ElevenLabs,
        Some((p, span)) => {
            s.fail(
                "provider",
                Some(span),
                format!("`{p}` is not a cloud voice: \"openai\" or \"elevenlabs\""),
            );
            return None;
        }
        None => return None,
    };
    let (default_url, default_model, env_key) = match provider {
        TtsProvider::OpenAi => ("https://api.openai.com/v1", "tts-1", ENV_OPENAI_KEY),
        TtsProvider::ElevenLabs => (
            "https://api.elevenlabs.io",
            "eleven_flash_v2_5",
            ENV_ELEVENLABS_KEY,
        ),
    };
    let url = read_url(s, default_url);
    let model = s
        .string("model")
        .map(|(m, _)| m)
        .unwrap_or_else(|| default_model.into());
    let voice = match (provider, s.string("voice")) {
        (_, Some((v, _))) => Some(v),
        (TtsProvider::OpenAi, None) => Some("onyx".into()),
        (TtsProvider::ElevenLabs, None) => {
            s.fail("voice", None, "missing: the ElevenLabs voice id".into());
            None
        }
    };
    if let Some(v) = &voice {
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            s.fail(
                "voice",
                None,
                format!("`{v}` is not a voice name or id (letters, digits, - and _)"),
            );
        }
    }
    let api_key = read_secret(s, "api_key_file", env_key, base, env, secrets);
    let timeout = Duration::from_millis(s.int_or("timeout_ms", 10_000, 500, 120_000));
    Some(CloudTtsSettings {
        provider,
        url: url?,
        model,
        voice: voice?,
        api_key: api_key?,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError, ENV_OPERATOR_TOKEN, ENV_PVE_SECRET, ENV_WEB_TOKEN};
    use super::*;

    const PVE: &str = "[pve]\nurl = \"https://10.0.0.2:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\"\n";

    fn parse(extra: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let src = format!("{PVE}{extra}");
        Config::parse(&src, "j.toml", Path::new("/etc/jarvis"), &|k| match k {
            ENV_PVE_SECRET => Some("pve-secret".into()),
            ENV_WEB_TOKEN => Some("0123456789abcdef0123".into()),
            ENV_OPERATOR_TOKEN => Some("operator-0123456789abcdef".into()),
            other => env(other),
        })
    }

    fn problems(extra: &str) -> Vec<String> {
        match parse(extra, &|_| None) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(|p| p.field.clone()).collect()
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn cloud_speech_is_off_unless_its_section_is_there() {
        let c = parse("", &|_| None).unwrap();
        assert!(c.voice.cloud_stt.is_none() && c.voice.cloud_tts.is_none());
        // Even with the keys in the environment: a key alone sends nothing anywhere.
        let c = parse("", &|k| (k == ENV_OPENAI_KEY).then(|| "sk-x".into())).unwrap();
        assert!(c.voice.cloud_stt.is_none() && c.voice.cloud_tts.is_none());
    }

    #[test]
    fn cloud_speech_reads_its_defaults_keys_and_mistakes() {
        // A local OpenAI-compatible server without a key.
        let c = parse(
            "[cloud_stt]\nurl = \"http://10.0.0.9:8000/v1\"\nmodel = \"small.en\"\n",
            &|_| None,
        )
        .unwrap();
        let stt = c.voice.cloud_stt.unwrap();
        assert_eq!(
            (stt.model.as_str(), stt.language.as_str()),
            ("small.en", "en")
        );
        assert!(stt.api_key.is_none());
        // OpenAI's voice with the key from the environment, the defaults filled in.
        let c = parse("[cloud_tts]\nprovider = \"openai\"\n", &|k| {
            (k == ENV_OPENAI_KEY).then(|| "sk-x".into())
        })
        .unwrap();
        let tts = c.voice.cloud_tts.unwrap();
        assert_eq!(tts.provider, TtsProvider::OpenAi);
        assert_eq!(
            (tts.url.as_str(), tts.model.as_str(), tts.voice.as_str()),
            ("https://api.openai.com/v1", "tts-1", "onyx")
        );
        assert_eq!(tts.api_key.expose(), "sk-x");
        // Mistakes, each named.
        assert_eq!(
            problems("[cloud_tts]\nprovider = \"openai\"\n"),
            ["cloud_tts.api_key_file"]
        );
        assert_eq!(
            problems(
                "[cloud_tts]\nprovider = \"elevenlabs\"\napi_key_file = \"/nonexistent/key\"\n"
            ),
            ["cloud_tts.voice", "cloud_tts.api_key_file"]
        );
        assert_eq!(
            problems("[cloud_tts]\nprovider = \"bark\"\n"),
            ["cloud_tts.provider"]
        );
        assert_eq!(
            problems("[cloud_tts]\nprovider = \"openai\"\nvoice = \"../../admin\"\napi_key_file = \"/nonexistent\"\n"),
            ["cloud_tts.voice", "cloud_tts.api_key_file"]
        );
        assert_eq!(
            problems("[cloud_stt]\nurl = \"ftp://x\"\n"),
            ["cloud_stt.url"]
        );
        assert_eq!(
            problems("[cloud_stt]\nmodle = \"x\"\n"),
            ["cloud_stt.modle"]
        );
    }
}

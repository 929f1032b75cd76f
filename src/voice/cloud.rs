//! Cloud speech, used only when configured (`[cloud_stt]`, `[cloud_tts]`): an OpenAI-compatible transcription
//! service (`POST {url}/audio/transcriptions`, multipart, the question as a 16 kHz WAV) and a cloud voice (OpenAI's
//! `POST {url}/audio/speech` or ElevenLabs' `POST {url}/v1/text-to-speech/{voice}`, both asked for raw 16-bit PCM).
//!
//! Neither is ever the only way: the service falls back to Whisper or Piper on the device when the cloud fails,
//! is slow (the timeout), or answers something that is not what was asked for. Answers are read up to a cap, so a
//! peer that streams forever cannot fill memory. Keys are sent only to the configured URL and never logged.

use std::time::Duration;

use crate::secret::Secret;

/// The largest transcription answer read (JSON with the text).
const MAX_TRANSCRIPT_BYTES: usize = 256 * 1024;
/// The largest spoken sentence read: two minutes of 24 kHz 16-bit PCM.
const MAX_SPEECH_BYTES: usize = 120 * 24_000 * 2;

/// `[cloud_stt]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudSttSettings {
    /// The API's base, e.g. `https://api.openai.com/v1` (the path `/audio/transcriptions` is added).
    pub url: String,
    pub model: String,
    /// `en` unless configured: the on-device model is English-only too, and the hint makes answers faster.
    pub language: String,
    /// None for a local server that takes no key.
    pub api_key: Option<Secret>,
    pub timeout: Duration,
}

/// Which cloud voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtsProvider {
    OpenAi,
    ElevenLabs,
}

impl TtsProvider {
    pub fn name(self) -> &'static str {
        match self {
            TtsProvider::OpenAi => "openai",
            TtsProvider::ElevenLabs => "elevenlabs",
        }
    }

    /// The rate of the PCM asked for.
    fn rate(self) -> u32 {
        match self {
            TtsProvider::OpenAi => 24_000,
            TtsProvider::ElevenLabs => 22_050,
        }
    }
}

/// `[cloud_tts]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudTtsSettings {
    pub provider: TtsProvider,
    /// The API's base: `https://api.openai.com/v1` or `https://api.elevenlabs.io`.
    pub url: String,
    pub model: String,
    /// OpenAI's voice name, or ElevenLabs' voice id.
    pub voice: String,
    pub api_key: Secret,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{service} is unreachable: {message}")]
    Unreachable { service: String, message: String },
    #[error("{service} did not answer within {after_ms} ms")]
    Timeout { service: String, after_ms: u64 },
    #[error("{service} answered {status}: {message}")]
    Http {
        service: String,
        status: u16,
        message: String,
    },
    #[error("{service} answered something else than asked: {message}")]
    Answer { service: String, message: String },
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// Sends a request and reads a 200's body up to `cap` bytes; everything else is a [`CloudError`].
async fn fetch(
    service: &str,
    req: reqwest::RequestBuilder,
    timeout: Duration,
    cap: usize,
) -> Result<Vec<u8>, CloudError> {
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            CloudError::Timeout {
                service: service.to_string(),
                after_ms: timeout.as_millis() as u64,
            }
        } else {
            CloudError::Unreachable {
                service: service.to_string(),
                message: e.to_string(),
            }
        }
    };
    let mut resp = req.send().await.map_err(failed)?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > cap {
            return Err(CloudError::Answer {
                service: service.to_string(),
                message: format!("more than {cap} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    if status != 200 {
        let text = String::from_utf8_lossy(&body);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v["error"]["message"]
                    .as_str()
                    .or(v["detail"]["message"].as_str())
                    .or(v["error"].as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| text.chars().take(200).collect());
        return Err(CloudError::Http {
            service: service.to_string(),
            status,
            message,
        });
    }
    Ok(body)
}

/// An OpenAI-compatible transcription service.
pub struct CloudStt {
    settings: CloudSttSettings,
    http: reqwest::Client,
    name: String,
}

impl CloudStt {
    pub fn new(settings: CloudSttSettings) -> Result<CloudStt, CloudError> {
        let name = format!("transcription at {}", settings.url);
        let http = client(settings.timeout).map_err(|message| CloudError::Unreachable {
            service: name.clone(),
            message,
        })?;
        Ok(CloudStt {
            settings,
            http,
            name,
        })
    }

    /// What was said in `audio` (16 kHz mono); an empty string when the service heard nothing.
    pub async fn transcribe(&self, audio: &[f32]) -> Result<String, CloudError> {
        let wav = super::wav::to_bytes(audio, super::wav::RATE);
        let file = reqwest::multipart::Part::bytes(wav)
            .file_name("question.wav")
            .mime_str("audio/wav")
            .map_err(|e| CloudError::Answer {
                service: self.name.clone(),
                message: e.to_string(),
            })?;
        let form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.settings.model.clone())
            .text("language", self.settings.language.clone())
            .text("response_format", "json");
        let url = format!(
            "{}/audio/transcriptions",
            self.settings.url.trim_end_matches('/')
        );
        let mut req = self.http.post(url).multipart(form);
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key.expose());
        }
        let body = fetch(&self.name, req, self.settings.timeout, MAX_TRANSCRIPT_BYTES).await?;
        let answer: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| CloudError::Answer {
                service: self.name.clone(),
                message: format!("not JSON: {e}"),
            })?;
        answer["text"]
            .as_str()
            .map(|t| t.trim().to_string())
            .ok_or_else(|| CloudError::Answer {
                service: self.name.clone(),
                message: "no `text` in the answer".into(),
            })
    }
}

/// A cloud voice.
pub struct CloudTts {
    settings: CloudTtsSettings,
    http: reqwest::Client,
    name: String,
}

impl CloudTts {
    pub fn new(settings: CloudTtsSettings) -> Result<CloudTts, CloudError> {
        let name = format!("{} voice at {}", settings.provider.name(), settings.url);
        let http = client(settings.timeout).map_err(|message| CloudError::Unreachable {
            service: name.clone(),
            message,
        })?;
        Ok(CloudTts {
            settings,
            http,
            name,
        })
    }

    /// The cache key's voice part: a different provider, model or voice says it differently.
    pub fn cache_voice(&self) -> String {
        let s = &self.settings;
        format!("{}:{}:{}", s.provider.name(), s.model, s.voice)
    }

    /// One sentence, as mono samples and their rate.
    pub async fn speak(&self, sentence: &str) -> Result<(Vec<f32>, u32), CloudError> {
        let s = &self.settings;
        let base = s.url.trim_end_matches('/');
        let req = match s.provider {
            TtsProvider::OpenAi => self
                .http
                .post(format!("{base}/audio/speech"))
                .bearer_auth(s.api_key.expose())
                .json(&serde_json::json!({
                    "model": s.model,
                    "voice": s.voice,
                    "input": sentence,
                    "response_format": "pcm",
                })),
            TtsProvider::ElevenLabs => self
                .http
                .post(format!("{base}/v1/text-to-speech/{}", s.voice))
                .query(&[("output_format", "pcm_22050")])
                .header("xi-api-key", s.api_key.expose())
                .json(&serde_json::json!({
                    "text": sentence,
                    "model_id": s.model,
                })),
        };
        let pcm = fetch(&self.name, req, s.timeout, MAX_SPEECH_BYTES).await?;
        let bad = |message: &str| CloudError::Answer {
            service: self.name.clone(),
            message: message.to_string(),
        };
        if pcm.is_empty() {
            return Err(bad("no audio"));
        }
        if pcm.len() % 2 != 0 {
            return Err(bad("an odd number of bytes is not 16-bit PCM"));
        }
        let samples = pcm
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect();
        Ok((samples, s.provider.rate()))
    }
}

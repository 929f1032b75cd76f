//! libespeak-ng, linked directly: IPA phonemes for the Piper voice, and espeak-ng's own voice as the fallback that
//! is always there. The library keeps global state and is not thread-safe, so every call goes through one lock;
//! both uses are short (a sentence at a time).
//!
//! Six functions of a stable C API are declared here by hand rather than through a `-sys` crate: the bindings
//! would need bindgen at build time for what is a few lines.

use std::ffi::{c_char, c_int, c_short, c_uint, c_void, CStr, CString};
use std::sync::Mutex;

use super::TtsError;

#[repr(C)]
struct EspeakEvent {
    _private: [u8; 0],
}

type SynthCallback = extern "C" fn(*mut c_short, c_int, *mut EspeakEvent) -> c_int;

#[link(name = "espeak-ng")]
extern "C" {
    fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
    fn espeak_SetSynthCallback(callback: SynthCallback);
    #[allow(clippy::too_many_arguments)]
    fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
    fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
}

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
const CHARS_UTF8: c_int = 1;
const PHONEMES_IPA: c_int = 0x02;
const POS_CHARACTER: c_int = 1;
const PARAM_RATE: c_int = 1;
const EE_OK: c_int = 0;

/// The library's state: initialised once, with the voice last set.
struct Engine {
    rate: u32,
    voice: String,
}

static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);
/// What the synthesis callback collects (only ever touched while `ENGINE` is held).
static SAMPLES: Mutex<Vec<i16>> = Mutex::new(Vec::new());

extern "C" fn collect(wav: *mut c_short, count: c_int, _events: *mut EspeakEvent) -> c_int {
    if !wav.is_null() && count > 0 {
        // SAFETY: espeak-ng hands `count` samples at `wav`, valid for the duration of the call.
        let chunk = unsafe { std::slice::from_raw_parts(wav, count as usize) };
        if let Ok(mut s) = SAMPLES.lock() {
            s.extend_from_slice(chunk);
        }
    }
    0 // go on
}

fn with_engine<T>(
    voice: &str,
    f: impl FnOnce(&Engine) -> Result<T, TtsError>,
) -> Result<T, TtsError> {
    let mut guard = ENGINE
        .lock()
        .map_err(|_| TtsError::Espeak("a previous call panicked".into()))?;
    if guard.is_none() {
        // SAFETY: called once, under the lock, with no data path (the system's) and synchronous output.
        let rate = unsafe {
            espeak_Initialize(
                AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                std::ptr::null(),
                INITIALIZE_DONT_EXIT,
            )
        };
        if rate <= 0 {
            return Err(TtsError::Espeak(
                "espeak-ng did not start (is espeak-ng-data installed?)".into(),
            ));
        }
        // SAFETY: `collect` is a plain function that lives for the whole program.
        unsafe { espeak_SetSynthCallback(collect) };
        *guard = Some(Engine {
            rate: rate as u32,
            voice: String::new(),
        });
    }
    let engine = guard
        .as_mut()
        .ok_or_else(|| TtsError::Espeak("not started".into()))?;
    if engine.voice != voice {
        let name =
            CString::new(voice).map_err(|_| TtsError::Espeak("a voice name with NUL".into()))?;
        // SAFETY: a valid C string, under the lock.
        if unsafe { espeak_SetVoiceByName(name.as_ptr()) } != EE_OK {
            return Err(TtsError::Espeak(format!(
                "espeak-ng has no voice `{voice}`"
            )));
        }
        engine.voice = voice.to_string();
    }
    f(engine)
}

/// The IPA phonemes of each clause of `text`, in order (espeak-ng splits at clause punctuation and drops it).
pub fn phonemes(text: &str, voice: &str) -> Result<Vec<String>, TtsError> {
    let c_text =
        CString::new(text.replace('\0', " ")).map_err(|_| TtsError::Espeak("NUL".into()))?;
    with_engine(voice, |_| {
        let mut clauses = Vec::new();
        let mut ptr: *const c_void = c_text.as_ptr().cast();
        // Each call phonemises one clause and moves `ptr` on; it is set to null after the last.
        for _ in 0..10_000 {
            if ptr.is_null() {
                break;
            }
            // SAFETY: `ptr` points into `c_text` (NUL-terminated, alive for this scope) or is null; the returned
            // string is espeak-ng's own buffer, copied before the next call.
            let out = unsafe { espeak_TextToPhonemes(&mut ptr, CHARS_UTF8, PHONEMES_IPA) };
            if out.is_null() {
                break;
            }
            // SAFETY: a NUL-terminated string from espeak-ng.
            let clause = unsafe { CStr::from_ptr(out) }
                .to_string_lossy()
                .trim()
                .to_string();
            if !clause.is_empty() {
                clauses.push(clause);
            }
        }
        Ok(clauses)
    })
}

/// espeak-ng's own voice: `text` spoken at `words_per_minute`, as samples (-1..1) at the returned rate.
pub fn speak(text: &str, voice: &str, words_per_minute: u32) -> Result<(Vec<f32>, u32), TtsError> {
    let c_text =
        CString::new(text.replace('\0', " ")).map_err(|_| TtsError::Espeak("NUL".into()))?;
    with_engine(voice, |engine| {
        if let Ok(mut s) = SAMPLES.lock() {
            s.clear();
        }
        // SAFETY: under the lock; the text is NUL-terminated and outlives the synchronous call, which delivers
        // every sample to `collect` before it returns.
        let status = unsafe {
            espeak_SetParameter(PARAM_RATE, words_per_minute.clamp(80, 450) as c_int, 0);
            espeak_Synth(
                c_text.as_ptr().cast(),
                c_text.as_bytes_with_nul().len(),
                0,
                POS_CHARACTER,
                0,
                CHARS_UTF8 as c_uint,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if status != EE_OK {
            return Err(TtsError::Espeak(format!("espeak_Synth failed ({status})")));
        }
        let samples = SAMPLES
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        Ok((
            samples.iter().map(|&s| f32::from(s) / 32768.0).collect(),
            engine.rate,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phonemes_come_per_clause_in_ipa() {
        let clauses = phonemes("Good evening, sir. All three nodes are online.", "en-us").unwrap();
        assert_eq!(clauses.len(), 3, "{clauses:?}");
        assert!(
            clauses[0].contains("ɡ") && clauses[0].contains("ˈ"),
            "{clauses:?}"
        );
        // Numbers and non-ASCII names are read, not dropped.
        let n = phonemes("42 Zoë", "en-us").unwrap().join(" ");
        assert!(n.chars().count() > 12, "{n}");
        assert!(phonemes("", "en-us").unwrap().is_empty());
        assert!(phonemes("x", "no-such-voice").is_err());
    }

    #[test]
    fn espeak_speaks_a_sentence() {
        let (samples, rate) = speak("Good evening, sir.", "en-us", 170).unwrap();
        assert_eq!(rate, 22_050);
        let seconds = samples.len() as f32 / rate as f32;
        assert!((0.5..3.0).contains(&seconds), "{seconds}");
        assert!(samples.iter().any(|s| s.abs() > 0.1));
    }
}

//! Spoken sentences kept on disk, keyed by voice and text (sha256), so the phrases Jarvis says every day ("Good
//! evening, sir.") cost nothing the second time. Each entry is a 16-bit WAV; when the folder grows past its cap the
//! least recently used entries go. A damaged entry is a miss (and is removed), never an error.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub struct SpeechCache {
    dir: PathBuf,
    cap_bytes: u64,
}

/// The cache key of `text` in `voice`.
pub fn key(voice: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(voice.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

impl SpeechCache {
    pub fn open(dir: &Path, cap_bytes: u64) -> std::io::Result<SpeechCache> {
        std::fs::create_dir_all(dir)?;
        Ok(SpeechCache {
            dir: dir.to_path_buf(),
            cap_bytes,
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.wav"))
    }

    /// The samples and their rate, if cached.
    pub fn get(&self, key: &str) -> Option<(Vec<f32>, u32)> {
        let path = self.path(key);
        if !path.exists() {
            return None;
        }
        let Ok(reader) = hound::WavReader::open(&path) else {
            let _ = std::fs::remove_file(&path);
            return None;
        };
        let rate = reader.spec().sample_rate;
        let samples: Result<Vec<i16>, _> = reader.into_samples::<i16>().collect();
        match samples {
            Ok(s) if !s.is_empty() => {
                // Touch it: recently used entries are kept.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Some((s.iter().map(|&v| f32::from(v) / 32768.0).collect(), rate))
            }
            _ => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores samples (written to a temporary file and renamed, so a reader never sees half an entry).
    pub fn put(&self, key: &str, samples: &[f32], rate: u32) {
        let tmp = self.dir.join(format!(".{key}.tmp"));
        if crate::voice::wav::write(&tmp, samples, rate).is_ok() {
            let _ = std::fs::rename(&tmp, self.path(key));
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
        self.trim();
    }

    /// Removes the least recently used entries until the folder is under its cap.
    fn trim(&self) {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = read
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.cap_bytes {
            return;
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.cap_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_stay_under_the_cap_and_damage_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about two entries of 0.5 s at 22.05 kHz (22 KB each).
        let cache = SpeechCache::open(dir.path(), 50_000).unwrap();
        let tone: Vec<f32> = (0..11_025).map(|i| (i as f32 / 20.0).sin() * 0.5).collect();
        let k = |t: &str| key("piper:joe", t);
        cache.put(&k("a"), &tone, 22_050);
        let (got, rate) = cache.get(&k("a")).unwrap();
        assert_eq!((got.len(), rate), (tone.len(), 22_050));
        assert!((got[100] - tone[100]).abs() < 1e-3);
        assert_ne!(k("a"), key("espeak", "a"), "the voice is part of the key");
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&k("b"), &tone, 22_050);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.get(&k("a")); // "a" is now the more recently used
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&k("c"), &tone, 22_050);
        assert!(cache.get(&k("b")).is_none(), "the least recently used went");
        assert!(cache.get(&k("a")).is_some() && cache.get(&k("c")).is_some());
        // A damaged entry is a miss and is removed.
        std::fs::write(dir.path().join(format!("{}.wav", k("a"))), b"RIFF....junk").unwrap();
        assert!(cache.get(&k("a")).is_none());
        assert!(!dir.path().join(format!("{}.wav", k("a"))).exists());
    }
}

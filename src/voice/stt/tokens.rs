//! Whisper's tokens back to text: the byte-level BPE vocabulary of `tokenizer.json` (GPT-2's), where each byte is
//! written as a printable character; decoding maps the characters back to bytes and the bytes to UTF-8. Special
//! tokens (the end of text, timestamps, the prompt) never reach the text.

use std::collections::HashMap;
use std::path::Path;

use super::super::VoiceError;

/// `<|endoftext|>`: decoding stops here; ids from here up are special.
pub const END: u32 = 50256;
pub const START: u32 = 50257;
pub const NO_SPEECH: u32 = 50361;
pub const NO_TIMESTAMPS: u32 = 50362;

pub struct Vocabulary {
    /// Token id → its bytes.
    tokens: Vec<Vec<u8>>,
}

impl Vocabulary {
    pub fn load(path: &Path) -> Result<Vocabulary, VoiceError> {
        let err = |m: String| VoiceError::Load {
            path: path.display().to_string(),
            message: m,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let vocab = json
            .pointer("/model/vocab")
            .and_then(|v| v.as_object())
            .ok_or_else(|| err("no model.vocab".into()))?;
        let unicode_to_byte: HashMap<char, u8> = byte_to_unicode()
            .into_iter()
            .enumerate()
            .map(|(b, c)| (c, b as u8))
            .collect();
        let mut tokens = vec![Vec::new(); END as usize];
        for (piece, id) in vocab {
            let Some(id) = id.as_u64().filter(|&i| i < u64::from(END)) else {
                continue;
            };
            tokens[id as usize] = piece
                .chars()
                .filter_map(|c| unicode_to_byte.get(&c).copied())
                .collect();
        }
        Ok(Vocabulary { tokens })
    }

    /// The text of `ids` (special ids skipped), with invalid UTF-8 replaced.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter_map(|&id| self.tokens.get(id as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// GPT-2's table: bytes that print stand for themselves, the rest are shifted above U+0100.
fn byte_to_unicode() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                let c = char::from_u32(next).unwrap_or('?');
                next += 1;
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_is_gpt2s() {
        let t = byte_to_unicode();
        assert_eq!(t[b'a' as usize], 'a');
        // A space is the first non-printable byte after the controls: Ġ.
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        let mut all: Vec<char> = t.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
    }
}

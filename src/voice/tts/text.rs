//! What a voice can say: reply text made speakable (markdown, links, code, units and symbols), and cut into
//! sentences as it streams in, so the first sentence is spoken while the model is still writing the rest.

/// Text as it should be read aloud: markdown marks dropped, a link read as its words (a bare URL as its host),
/// code blocks left out, units and symbols in words. Numbers and names are left to the phonemiser, which reads
/// them ("42" as forty-two, "Zoë" as written).
pub fn speakable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code_block = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            if !in_code_block {
                out.push_str(" I've put the code on the screen. ");
            }
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block {
            continue;
        }
        // Headings, bullets and quotes: the mark goes, the line ends as a sentence.
        let body = trimmed
            .trim_start_matches('#')
            .trim_start_matches(['-', '*', '+', '>'])
            .trim_start();
        let body = strip_numbering(body);
        let spoken = words_for_symbols(&links_as_words(body));
        let spoken = spoken.trim();
        if spoken.is_empty() {
            continue;
        }
        out.push_str(spoken);
        if !spoken.ends_with(['.', '!', '?', ':', ';', ',']) {
            out.push('.');
        }
        out.push(' ');
    }
    let collapsed: Vec<&str> = out.split_whitespace().collect();
    collapsed.join(" ")
}

fn strip_numbering(s: &str) -> &str {
    let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits < 3 && s[digits..].starts_with(". ") {
        &s[digits + 2..]
    } else {
        s
    }
}

/// `[words](url)` → words; a bare `http(s)://host/...` → "a link to host".
fn links_as_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(end)) if close < end => {
                out.push_str(&rest[..open]);
                out.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| "()<>,.;".contains(c));
            if let Some(rest) = bare
                .strip_prefix("https://")
                .or_else(|| bare.strip_prefix("http://"))
            {
                let host = rest.split(['/', '?', '#', ':']).next().unwrap_or(rest);
                word.replace(bare, &format!("a link to {host}"))
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn words_for_symbols(s: &str) -> String {
    let mut out = s.replace(['*', '`', '_', '|', '~'], " ");
    for (from, to) in [
        ("°C", " degrees"),
        ("°F", " degrees Fahrenheit"),
        ("%", " percent"),
        (" TiB", " terabytes"),
        (" GiB", " gigabytes"),
        (" MiB", " megabytes"),
        (" KiB", " kilobytes"),
        (" TB", " terabytes"),
        (" GB", " gigabytes"),
        (" MB", " megabytes"),
        (" ms", " milliseconds"),
        (" GHz", " gigahertz"),
        (" Mbps", " megabits a second"),
        (" Gbps", " gigabits a second"),
        (" · ", ", "),
        (" / ", " of "),
        (" → ", " to "),
        ("&", " and "),
        (" vs ", " versus "),
        ("CT ", "container "),
        ("VM ", "virtual machine "),
    ] {
        out = out.replace(from, to);
    }
    // Emoji and other pictographs are not read.
    out.chars()
        .filter(|c| !matches!(*c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F))
        .collect()
}

/// Abbreviations after which a full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "st", "no", "approx",
];

/// Cuts streamed text into sentences: a sentence ends at `.`, `!` or `?` followed by a space (not in a number, not
/// after an abbreviation), or at a line break; one that runs on is cut at a comma or space past [`LONGEST`].
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    pending: String,
}

/// Characters after which a sentence that has not ended is cut anyway.
pub const LONGEST: usize = 220;

impl SentenceSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds streamed text; returns the sentences it completed.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.pending.push_str(delta);
        let mut out = Vec::new();
        while let Some(cut) = self.next_cut() {
            let rest = self.pending.split_off(cut);
            let sentence = std::mem::replace(&mut self.pending, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
        }
        out
    }

    /// The rest, when the text is complete.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    fn next_cut(&self) -> Option<usize> {
        let text = &self.pending;
        let bytes = text.as_bytes();
        for (i, c) in text.char_indices() {
            if c == '\n' {
                return Some(i + 1);
            }
            if matches!(c, '.' | '!' | '?') {
                let next = bytes.get(i + 1).copied();
                if next.is_some_and(|b| b == b' ') && !self.is_abbreviation(i) {
                    return Some(i + 1);
                }
            }
        }
        if text.len() > LONGEST {
            // Cut at the last comma, else the last space, before the limit.
            let head = &text[..floor_char_boundary(text, LONGEST)];
            return head
                .rfind(", ")
                .map(|i| i + 1)
                .or_else(|| head.rfind(' '))
                .or(Some(head.len()))
                .filter(|&i| i > 0);
        }
        None
    }

    fn is_abbreviation(&self, dot: usize) -> bool {
        let before = &self.pending[..dot];
        let word = before
            .rsplit(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("")
            .to_lowercase();
        ABBREVIATIONS.contains(&word.as_str())
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_links_code_and_units_become_words() {
        let reply = "## Status\n- **pve1** is at 51°C, CPU 39%.\n- See [the docs](https://pve.proxmox.com/wiki) \
                     or https://example.org/a?b=c\n```bash\nrm -rf /\n```\n1. Reboot VM 101 & CT 200 🙂";
        let s = speakable(reply);
        assert_eq!(
            s,
            "Status. pve1 is at 51 degrees, CPU 39 percent. See the docs or a link to example.org. I've put the code \
             on the screen. Reboot virtual machine 101 and container 200."
        );
        assert!(!s.contains("rm -rf"));
        assert_eq!(
            speakable("Zoë has 12.8 / 31 GiB"),
            "Zoë has 12.8 of 31 gigabytes."
        );
        assert_eq!(speakable(""), "");
        assert_eq!(
            speakable("```\nonly code\n```"),
            "I've put the code on the screen."
        );
    }

    #[test]
    fn streamed_text_splits_into_sentences_as_it_comes() {
        let mut s = SentenceSplitter::new();
        let mut got = Vec::new();
        for delta in [
            "Good eve",
            "ning, sir. All thr",
            "ee nodes are up; pve2 is at 3.5 ",
            "GHz. Dr. Who, e.g. ",
            "him? Yes!",
        ] {
            got.extend(s.push(delta));
        }
        assert_eq!(
            got,
            vec![
                "Good evening, sir.",
                "All three nodes are up; pve2 is at 3.5 GHz.",
                "Dr. Who, e.g. him?"
            ]
        );
        assert_eq!(s.finish(), Some("Yes!".into()));
        assert_eq!(s.finish(), None);
        // A sentence that never ends is cut at a comma past the limit, never mid-character.
        let mut s = SentenceSplitter::new();
        let long = format!("{}, and {}", "ä".repeat(150), "ö".repeat(200));
        let parts = s.push(&long);
        assert!(!parts.is_empty());
        assert!(parts.iter().all(|p| p.len() <= LONGEST + 4), "{parts:?}");
    }
}

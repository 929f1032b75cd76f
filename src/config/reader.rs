//! A TOML reader that keeps going after a problem: every wrong type, out-of-range value, missing key and unknown
//! key is collected with its line, column and dotted field name, so `jarvis check-config` can list them all.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Dotted name (`pve.url`), or the section name, or empty for syntax errors.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.field, self.message
            )
        }
    }
}

pub struct Reader<'a> {
    src: &'a str,
    root: Option<Spanned<DeTable<'a>>>,
    pub problems: Vec<Problem>,
    sections_used: HashSet<String>,
}

impl<'a> Reader<'a> {
    /// Parses `src`; a syntax error becomes the only problem (nothing after it can be trusted): section readers
    /// then see empty sections, and what they would report — "missing" keys that are in fact present — is dropped.
    pub fn parse(src: &'a str) -> Reader<'a> {
        let mut r = Reader {
            src,
            root: None,
            problems: Vec::new(),
            sections_used: HashSet::new(),
        };
        match DeTable::parse(src) {
            Ok(t) => r.root = Some(t),
            Err(e) => {
                let at = e.span().map(|s| s.start).unwrap_or(0);
                let (line, column) = r.line_col(at);
                r.problems.push(Problem {
                    line,
                    column,
                    field: String::new(),
                    message: format!("TOML syntax: {}", e.message()),
                });
            }
        }
        r
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.src[..offset.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        (line, column)
    }

    /// True when the file is not valid TOML; its one problem is the syntax error.
    pub fn has_syntax_error(&self) -> bool {
        self.root.is_none()
    }

    fn problem(&mut self, span: Range<usize>, field: &str, message: String) {
        if self.has_syntax_error() {
            return;
        }
        let (line, column) = self.line_col(span.start);
        self.problems.push(Problem {
            line,
            column,
            field: field.to_string(),
            message,
        });
    }

    /// Reads one `[name]` section with `f`. A missing section reads as empty (so defaults and "missing" apply).
    pub fn section<T>(&mut self, name: &str, f: impl FnOnce(&mut Section<'_, 'a>) -> T) -> T {
        self.sections_used.insert(name.to_string());
        let found = self.root.as_ref().and_then(|root| {
            root.get_ref()
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == name)
                .map(|(k, v)| (k.span(), v.clone()))
        });
        let mut section = Section {
            reader: self,
            name: name.to_string(),
            table: None,
            span: 0..0,
            used: HashSet::new(),
        };
        match found {
            Some((_, value)) => {
                let span = value.span();
                match value.into_inner() {
                    DeValue::Table(t) => {
                        section.table = Some(t);
                        section.span = span;
                    }
                    other => {
                        let msg =
                            format!("expected a table ([{name}]), found {}", other.type_str());
                        section.reader.problem(span, name, msg);
                    }
                }
            }
            None => section.span = 0..0,
        }
        let out = f(&mut section);
        section.finish();
        out
    }

    /// Reads every `[[name]]` entry (an array of tables) with `f`, each as a section named `name[i]`, so its
    /// problems say which entry (`cameras[1].url`). A missing key reads as no entries.
    pub fn tables<T>(
        &mut self,
        name: &str,
        mut f: impl FnMut(&mut Section<'_, 'a>, usize) -> T,
    ) -> Vec<T> {
        self.sections_used.insert(name.to_string());
        let found = self.root.as_ref().and_then(|root| {
            root.get_ref()
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == name)
                .map(|(_, v)| v.clone())
        });
        let Some(value) = found else {
            return Vec::new();
        };
        let span = value.span();
        let items = match value.into_inner() {
            DeValue::Array(items) => items,
            other => {
                let msg = format!(
                    "expected entries written [[{name}]], found {}",
                    other.type_str()
                );
                self.problem(span, name, msg);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let span = item.span();
            let mut section = Section {
                reader: self,
                name: format!("{name}[{i}]"),
                table: None,
                span: span.clone(),
                used: HashSet::new(),
            };
            match item.into_inner() {
                DeValue::Table(t) => {
                    section.table = Some(t);
                    out.push(f(&mut section, i));
                    section.finish();
                }
                other => {
                    let msg = format!("expected a table, found {}", other.type_str());
                    section.reader.problem(span, &format!("{name}[{i}]"), msg);
                }
            }
        }
        out
    }

    /// Reports top-level keys no section reader asked for.
    pub fn finish(mut self) -> Vec<Problem> {
        let unknown: Vec<(Range<usize>, String)> = match &self.root {
            Some(root) => root
                .get_ref()
                .iter()
                .filter(|(k, _)| !self.sections_used.contains(k.get_ref().as_ref()))
                .map(|(k, _)| (k.span(), k.get_ref().to_string()))
                .collect(),
            None => Vec::new(),
        };
        let known: Vec<String> = self.sections_used.iter().cloned().collect();
        for (span, key) in unknown {
            let msg = unknown_message(&key, known.iter().map(String::as_str), "section");
            self.problem(span, &key, msg);
        }
        self.problems.sort_by_key(|p| (p.line, p.column));
        self.problems
    }
}

pub struct Section<'r, 'a> {
    reader: &'r mut Reader<'a>,
    name: String,
    table: Option<DeTable<'a>>,
    span: Range<usize>,
    used: HashSet<String>,
}

impl<'a> Section<'_, 'a> {
    /// Whether the section is in the file at all (optional sections configure something only when present).
    pub fn present(&self) -> bool {
        self.table.is_some()
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    fn raw(&mut self, key: &str) -> Option<Spanned<DeValue<'a>>> {
        self.used.insert(key.to_string());
        self.table
            .as_ref()?
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v.clone())
    }

    /// Reports a problem on `key` (at its value if present, else at the section).
    pub fn fail(&mut self, key: &str, span: Option<Range<usize>>, message: String) {
        let field = self.field(key);
        let span = span.unwrap_or_else(|| self.span.clone());
        self.reader.problem(span, &field, message);
    }

    pub fn string(&mut self, key: &str) -> Option<(String, Range<usize>)> {
        let v = self.raw(key)?;
        let span = v.span();
        match v.get_ref().as_str() {
            Some(s) => Some((s.to_string(), span)),
            None => {
                let msg = format!("expected a string, found {}", v.get_ref().type_str());
                self.fail(key, Some(span), msg);
                None
            }
        }
    }

    pub fn required_string(&mut self, key: &str) -> Option<(String, Range<usize>)> {
        let present = self
            .table
            .as_ref()
            .is_some_and(|t| t.iter().any(|(k, _)| k.get_ref().as_ref() == key));
        let v = self.string(key);
        if !present {
            self.fail(key, None, "missing (required)".into());
        }
        v
    }

    pub fn bool_or(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.raw(key) else {
            return default;
        };
        match v.get_ref().as_bool() {
            Some(b) => b,
            None => {
                let msg = format!("expected true or false, found {}", v.get_ref().type_str());
                self.fail(key, Some(v.span()), msg);
                default
            }
        }
    }

    /// An integer in `min..=max`, or `default` when absent. A bad value is reported (and `default` returned so
    /// reading can go on; the caller never uses a config with problems).
    pub fn int_or(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(v) = self.raw(key) else {
            return default;
        };
        let span = v.span();
        let parsed = v.get_ref().as_integer().and_then(|i| {
            let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
            let digits = digits
                .trim_start_matches("0x")
                .trim_start_matches("0o")
                .trim_start_matches("0b");
            i64::from_str_radix(digits, i.radix()).ok()
        });
        match parsed {
            Some(n) if n >= min as i64 && n <= max as i64 => n as u64,
            Some(n) => {
                self.fail(
                    key,
                    Some(span),
                    format!("{n} is out of range ({min}..={max})"),
                );
                default
            }
            None => {
                let msg = format!("expected an integer, found {}", v.get_ref().type_str());
                self.fail(key, Some(span), msg);
                default
            }
        }
    }

    /// A number (integer or float) in `min..=max`.
    pub fn number_or(&mut self, key: &str, default: f64, min: f64, max: f64) -> f64 {
        let Some(v) = self.raw(key) else {
            return default;
        };
        let span = v.span();
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                self.fail(
                    key,
                    Some(span),
                    format!("{n} is out of range ({min}..={max})"),
                );
                default
            }
            None => {
                let msg = format!("expected a number, found {}", v.get_ref().type_str());
                self.fail(key, Some(span), msg);
                default
            }
        }
    }

    /// A list of strings, or `None` when absent.
    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        let v = self.raw(key)?;
        let span = v.span();
        let items = v.get_ref().as_array().map(|a| {
            a.iter()
                .map(|i| i.get_ref().as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        match items {
            Some(Some(list)) => Some(list),
            _ => {
                self.fail(
                    key,
                    Some(span),
                    "expected a list of strings, e.g. [\"jarvis.lan\"]".into(),
                );
                None
            }
        }
    }

    /// Every key of the section whose value is a string (for free-form sections like `[wol]`), marked used.
    pub fn string_entries(&mut self) -> Vec<(String, String, Range<usize>)> {
        let Some(table) = &self.table else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for (k, v) in table.iter() {
            let key = k.get_ref().to_string();
            match v.get_ref().as_str() {
                Some(text) => out.push((key.clone(), text.to_string(), v.span())),
                None => bad.push((key.clone(), v.span(), v.get_ref().type_str())),
            }
            self.used.insert(key);
        }
        for (key, span, ty) in bad {
            self.fail(&key, Some(span), format!("expected a string, found {ty}"));
        }
        out
    }

    fn finish(self) {
        let Some(table) = &self.table else { return };
        let unknown: Vec<(Range<usize>, String)> = table
            .iter()
            .filter(|(k, _)| !self.used.contains(k.get_ref().as_ref()))
            .map(|(k, _)| (k.span(), k.get_ref().to_string()))
            .collect();
        for (span, key) in unknown {
            let msg = unknown_message(&key, self.used.iter().map(String::as_str), "field");
            let field = format!("{}.{key}", self.name);
            self.reader.problem(span, &field, msg);
        }
    }
}

/// "unknown field `x`" with a suggestion when a known name is one or two edits away.
fn unknown_message<'k>(key: &str, known: impl Iterator<Item = &'k str>, what: &str) -> String {
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = edit_distance(key, k);
        if d <= 2 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    match best {
        Some((_, k)) => format!("unknown {what} `{key}` (did you mean `{k}`?)"),
        None => format!("unknown {what} `{key}`"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_problem_with_lines() {
        let src = "[poll]\nresources_ms = \"fast\"\nnode_status_ms = 5\nresorces_ms = 1\n\n[extra]\nx = 1\n";
        let mut r = Reader::parse(src);
        r.section("poll", |s| {
            s.int_or("resources_ms", 1, 100, 1000);
            s.int_or("node_status_ms", 1, 100, 1000);
        });
        let problems = r.finish();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "2:16: poll.resources_ms: expected an integer, found string",
                "3:18: poll.node_status_ms: 5 is out of range (100..=1000)",
                "4:1: poll.resorces_ms: unknown field `resorces_ms` (did you mean `resources_ms`?)",
                "6:2: extra: unknown section `extra`",
            ]
        );
    }

    #[test]
    fn lists_of_tables_name_the_entry() {
        let src = "[[cameras]]\nname = \"front\"\n\n[[cameras]]\nname = 3\nnmae = \"x\"\n";
        let mut r = Reader::parse(src);
        let names = r.tables("cameras", |s, i| {
            (i, s.required_string("name").map(|(n, _)| n))
        });
        assert_eq!(names, [(0, Some("front".to_string())), (1, None)]);
        let problems: Vec<String> = r.finish().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("5:8: cameras[1].name: expected a string"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("cameras[1].nmae: unknown field"),
            "{problems:?}"
        );
        let mut r = Reader::parse("cameras = 3\n");
        assert!(r.tables("cameras", |_, i| i).is_empty());
        assert!(r.finish()[0].message.contains("[[cameras]]"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let r = Reader::parse("[pve]\nurl = \"unterminated\n");
        let p = r.finish();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, 2);
        assert!(p[0].message.starts_with("TOML syntax"));
    }

    #[test]
    fn after_a_syntax_error_nothing_else_is_reported() {
        // `url` and `token_id` are present above the error; they must not be reported missing, nor anything else.
        let mut r =
            Reader::parse("[pve]\nurl = \"https://x:8006\"\ntoken_id = \"a@pve!b\"\n[poll\n");
        r.section("pve", |s| {
            s.required_string("url");
            s.required_string("token_id");
            s.required_string("fingerprint");
            s.fail("token_secret_file", None, "missing".into());
        });
        r.section("web", |s| s.int_or("max_body_bytes", 1, 1, 10));
        let p = r.finish();
        let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        assert_eq!((p[0].line, p[0].field.as_str()), (4, ""));
        assert!(p[0].message.starts_with("TOML syntax"), "{text:?}");
    }

    #[test]
    fn required_fields_are_reported_at_their_section() {
        let mut r = Reader::parse("[pve]\ntimeout_ms = 100\n");
        r.section("pve", |s| {
            s.int_or("timeout_ms", 1, 1, 1000);
            s.required_string("url");
        });
        let p = r.finish();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].field.as_str(), p[0].message.as_str()),
            ("pve.url", "missing (required)")
        );
    }
}

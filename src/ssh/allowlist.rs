//! Which shell commands are harmless reads that may run without confirmation (tier 0). Anything else — including
//! any shell metacharacter, so nothing can be chained onto an allowed command, and any character outside printable
//! ASCII (tabs, no-break and other Unicode spaces, zero-width characters, homoglyph letters), so words are split
//! only at a plain space — needs the operator (tier 2).

/// Characters that would let a command do more than it says.
const META: &[char] = &[
    ';', '|', '&', '$', '`', '>', '<', '\n', '\r', '\\', '\'', '"', '(', ')', '{', '}', '*', '?',
    '[', ']', '~', '!', '#',
];

/// A systemd unit or container name: letters, digits, `@`, `.`, `_`, `-`, `:`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._-:".contains(c))
}

fn is_small_number(s: &str) -> bool {
    s.parse::<u32>().is_ok_and(|n| (1..=5000).contains(&n))
}

/// Printable ASCII, the plain space included: the only characters a tier-0 line may hold.
fn is_plain(c: char) -> bool {
    matches!(c, ' '..='~')
}

/// True when `command` is one of the read-only commands that run at once.
pub fn is_read_only(command: &str) -> bool {
    if !command.chars().all(is_plain) || command.contains(META) {
        return false;
    }
    // Only plain spaces are left to separate words: the shell on the node must split exactly as this does.
    let words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    match words.as_slice() {
        ["uptime"]
        | ["uptime", "-p"]
        | ["df", "-h"]
        | ["df", "-h", "/"]
        | ["free", "-m"]
        | ["free", "-h"] => true,
        ["sensors", "-j"]
        | ["sensors"]
        | ["zpool", "status"]
        | ["zpool", "list"]
        | ["pvecm", "status"] => true,
        ["pvecm", "nodes"]
        | ["pveversion"]
        | ["pveversion", "-v"]
        | ["uname", "-a"]
        | ["lsblk"]
        | ["ip", "-br", "addr"] => true,
        ["qm", "list"]
        | ["pct", "list"]
        | ["systemctl", "--failed"]
        | ["hostname"]
        | ["cat", "/proc/loadavg"] => true,
        ["systemctl", "status", unit] | ["systemctl", "is-active", unit] => is_name(unit),
        ["journalctl", "-u", unit, "-n", n] | ["journalctl", "-u", unit, "-n", n, "--no-pager"] => {
            is_name(unit) && is_small_number(n)
        }
        ["docker", "ps"] | ["docker", "ps", "-a"] | ["docker", "stats", "--no-stream"] => true,
        ["docker", "logs", "--tail", n, name] => is_small_number(n) && is_name(name),
        _ => false,
    }
}

/// A safe container name (used by the Docker tools before building a command).
pub fn is_container_name(s: &str) -> bool {
    is_name(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_allowed() {
        for c in [
            "uptime",
            "df -h",
            "free -m",
            "sensors -j",
            "zpool status",
            "pvecm status",
            "systemctl status pveproxy",
            "systemctl status frigate@cam1.service",
            "journalctl -u pve-cluster -n 50",
            "journalctl -u pve-cluster -n 50 --no-pager",
            "docker logs --tail 100 grafana",
        ] {
            assert!(is_read_only(c), "{c} should be read-only");
        }
    }

    #[test]
    fn anything_else_needs_confirmation() {
        for c in [
            "reboot",
            "rm -rf /",
            "uptime; reboot",
            "uptime && reboot",
            "df -h | sh",
            "systemctl restart pveproxy",
            "systemctl status $(reboot)",
            "systemctl status `reboot`",
            "journalctl -u x -n 999999",
            "journalctl -u -x -n 5",
            "sensors -j > /etc/passwd",
            "docker logs --tail 10 ../etc",
            "cat /etc/shadow",
            "uptime\nreboot",
            "",
        ] {
            assert!(!is_read_only(c), "{c:?} must not be read-only");
        }
    }

    #[test]
    fn any_separator_but_a_plain_space_or_any_non_ascii_character_needs_confirmation() {
        // Each of these splits like a space under `split_whitespace`, or looks like a letter it is not.
        for (what, sep) in [
            ("no-break space U+00A0", "\u{a0}"),
            ("en quad U+2000", "\u{2000}"),
            ("em quad U+2001", "\u{2001}"),
            ("en space U+2002", "\u{2002}"),
            ("em space U+2003", "\u{2003}"),
            ("three-per-em space U+2004", "\u{2004}"),
            ("four-per-em space U+2005", "\u{2005}"),
            ("six-per-em space U+2006", "\u{2006}"),
            ("figure space U+2007", "\u{2007}"),
            ("punctuation space U+2008", "\u{2008}"),
            ("thin space U+2009", "\u{2009}"),
            ("hair space U+200A", "\u{200a}"),
            ("ideographic space U+3000", "\u{3000}"),
            ("tab", "\t"),
            ("vertical tab", "\u{b}"),
            ("form feed", "\u{c}"),
            ("zero-width space U+200B", " \u{200b}"),
            ("two plain spaces and a next line U+0085", " \u{85} "),
        ] {
            let line = format!("cat{sep}/proc/loadavg");
            assert!(
                !is_read_only(&line),
                "{what}: {line:?} must not be read-only"
            );
        }
        for (what, line) in [
            ("Cyrillic а in cat", "c\u{430}t /proc/loadavg"),
            ("Cyrillic е in uptime", "uptim\u{435}"),
            ("zero-width space inside a word", "upt\u{200b}ime"),
            ("trailing no-break space", "uptime\u{a0}"),
            ("leading tab", "\tuptime"),
            ("NUL", "uptime\0"),
            ("DEL", "uptime\u{7f}"),
            ("ESC", "uptime \u{1b}[2J"),
        ] {
            assert!(
                !is_read_only(line),
                "{what}: {line:?} must not be read-only"
            );
        }
        // A plain space, even repeated, still separates.
        assert!(is_read_only("cat  /proc/loadavg"));
    }
}

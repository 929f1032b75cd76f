//! Which shell commands are harmless reads that may run without confirmation (tier 0). Anything else — including
//! any shell metacharacter, so nothing can be chained onto an allowed command — needs the operator (tier 2).

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

/// True when `command` is one of the read-only commands that run at once.
pub fn is_read_only(command: &str) -> bool {
    if command.contains(META) {
        return false;
    }
    let words: Vec<&str> = command.split_whitespace().collect();
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
}

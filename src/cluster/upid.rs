//! Proxmox task ids (UPIDs): `UPID:node:PID:PSTART:STARTTIME:type:id:user@realm[!token]:`, the first three
//! numbers in hexadecimal.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub task_type: String,
    pub id: String,
    pub user: String,
    raw: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Proxmox task id ({reason}): {text:?}")]
pub struct UpidError {
    pub reason: &'static str,
    pub text: String,
}

impl Upid {
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Builds a UPID the way PVE formats it (used by the simulator).
    pub fn format(
        node: &str,
        pid: u32,
        pstart: u64,
        starttime: u64,
        task_type: &str,
        id: &str,
        user: &str,
    ) -> String {
        format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{task_type}:{id}:{user}:")
    }
}

impl FromStr for Upid {
    type Err = UpidError;

    fn from_str(s: &str) -> Result<Upid, UpidError> {
        let err = |reason| UpidError {
            reason,
            text: s.to_string(),
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 9 || parts[0] != "UPID" || !parts[8].is_empty() {
            return Err(err("expected 8 colon-terminated fields after UPID"));
        }
        let hex = |t: &str| {
            u64::from_str_radix(t, 16).map_err(|_| err("PID, PSTART and STARTTIME must be hex"))
        };
        let pid = u32::try_from(hex(parts[2])?).map_err(|_| err("PID out of range"))?;
        if parts[1].is_empty() || parts[5].is_empty() || !parts[7].contains('@') {
            return Err(err("node, type and user@realm are required"));
        }
        Ok(Upid {
            node: parts[1].to_string(),
            pid,
            pstart: hex(parts[3])?,
            starttime: hex(parts[4])?,
            task_type: parts[5].to_string(),
            id: parts[6].to_string(),
            user: parts[7].to_string(),
            raw: s.to_string(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_upid_with_token_user() {
        let s = "UPID:pve:000A1B2C:0123ABCD:6560F00D:qmstart:101:jarvis@pve!kiosk:";
        let u: Upid = s.parse().expect("valid upid");
        assert_eq!(u.node, "pve");
        assert_eq!(u.pid, 0x000A1B2C);
        assert_eq!(u.pstart, 0x0123ABCD);
        assert_eq!(u.starttime, 0x6560F00D);
        assert_eq!(u.task_type, "qmstart");
        assert_eq!(u.id, "101");
        assert_eq!(u.user, "jarvis@pve!kiosk");
        assert_eq!(u.to_string(), s);
        assert_eq!(
            Upid::format(
                "pve",
                0xA1B2C,
                0x123ABCD,
                0x6560F00D,
                "qmstart",
                "101",
                "jarvis@pve!kiosk"
            ),
            s
        );
    }

    #[test]
    fn rejects_malformed_upids() {
        for bad in [
            "",
            "UPID:pve:zz:0:0:qmstart:101:root@pam:",
            "UPID:pve:1:2:3:qmstart:101:root@pam",
            "TASK:pve:1:2:3:qmstart:101:root@pam:",
            "UPID::1:2:3:qmstart:101:root@pam:",
            "UPID:pve:1:2:3:qmstart:101:root:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad:?} should be refused");
        }
    }
}

//! Where a download may go: public addresses only, unless the operator allowlisted the host or address. Applied to
//! every address a name resolves to (a DNS resolver plugged into the HTTP client, so it holds on every connection,
//! redirects included) and to IP literals in URLs (checked before the first request and on every redirect).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Loopback, private, link-local (cloud metadata 169.254.169.254 included), carrier-grade NAT, unique-local,
/// multicast, unspecified, broadcast and documentation addresses; IPv4 inside IPv6 is judged as IPv4.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64_or_compat(v6)) {
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (18..20).contains(&o[1]))
        || o[0] >= 240
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
}

/// `::a.b.c.d` (deprecated compatible) and `64:ff9b::a.b.c.d` (NAT64) carry an IPv4 address too.
fn nat64_or_compat(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]).then_some(tail)
}

/// The operator's exceptions: host names or addresses that may be internal.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow: Vec<String>,
}

impl Policy {
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allow
            .iter()
            .any(|a| a.trim_matches(['[', ']']).eq_ignore_ascii_case(&host))
    }

    /// Whether connecting to `ip` (reached through `host`) is allowed.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allows_host(host) || self.allows_host(&ip.to_string())
    }
}

/// A resolver that drops every address the policy refuses, and fails when none is left.
pub struct GuardedResolver {
    pub policy: Arc<Policy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows(&host, a.ip()))
                .collect();
            if allowed.is_empty() {
                let ips: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "refusing {host}: it resolves to internal addresses only ({})",
                    ips.join(", ")
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.10",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "224.0.0.1",
        ] {
            assert!(is_internal(ip.parse().expect("ip")), "{ip} is internal");
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().expect("ip")), "{ip} is public");
        }
    }

    #[test]
    fn the_allowlist_names_exceptions() {
        let p = Policy {
            allow: vec!["nas.lan".into(), "192.168.1.5".into()],
        };
        assert!(p.allows("nas.lan", "192.168.1.77".parse().expect("ip")));
        assert!(p.allows("other", "192.168.1.5".parse().expect("ip")));
        assert!(!p.allows("other", "192.168.1.6".parse().expect("ip")));
        assert!(p.allows("example.org", "93.184.216.34".parse().expect("ip")));
    }
}

//! The client's address: `X-Forwarded-For` is honoured only when the direct peer is a
//! configured trusted proxy, and then read from the right, skipping further trusted proxies.

use std::net::IpAddr;

pub fn resolve(peer: Option<IpAddr>, xff: Option<&str>, trusted: &[ipnet::IpNet]) -> String {
    let Some(peer) = peer else {
        return String::new();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    let Some(xff) = xff else {
        return peer.to_string();
    };
    let hops: Vec<IpAddr> = xff
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .unwrap_or(&peer)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            resolve(Some(stranger), Some("1.2.3.4"), &trusted),
            "203.0.113.9"
        );
        assert_eq!(
            resolve(Some(proxy), Some("1.2.3.4, 10.0.0.7"), &trusted),
            "1.2.3.4"
        );
        assert_eq!(
            resolve(Some(proxy), Some("6.6.6.6, 1.2.3.4"), &trusted),
            "1.2.3.4"
        );
        assert_eq!(resolve(Some(proxy), None, &trusted), "10.1.2.3");
    }
}

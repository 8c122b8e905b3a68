//! Which address a request comes from, for the per-address limits.
//!
//! By default the TCP peer: an `X-Forwarded-For` header is whatever the sender
//! wants it to be, and trusting it would let an attacker pick a new address
//! for every guess. Behind a load balancer every request has the balancer's
//! address, so operators name their proxies (`limits.trusted_proxies`): when
//! the peer is one of them, `X-Forwarded-For` is read from the right, past
//! the trusted proxies, and the first address they did not vouch for is the
//! client (entries to its left were written by the client and are ignored).

use std::fmt;
use std::net::IpAddr;

/// An address and prefix length, e.g. `10.0.0.0/8` or `2001:db8::/32`; a bare
/// address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Option<Self> {
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let address: IpAddr = address.parse().ok()?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => bits,
        };
        (prefix <= bits).then_some(Self { address, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let whole = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket
/// reports) as the IPv4 address they are.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed; empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// A comma- or space-separated list of addresses and networks.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| Network::parse(s).ok_or_else(|| format!("{s:?} is not an address or network")))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(address))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy;
    /// then the rightmost `X-Forwarded-For` entry not itself a trusted proxy.
    /// `forwarded_for` holds the header's values in the order received. An
    /// entry that is not an address stops the walk: the last trusted hop is
    /// then taken as the client, which only limits the proxy harder.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let values: Vec<&str> = forwarded_for.into_iter().collect();
        for value in values.into_iter().rev() {
            for entry in value.rsplit(',') {
                let Ok(address) = entry.trim().parse::<IpAddr>() else {
                    return client;
                };
                client = canonical(address);
                if !self.trusts(client) {
                    return client;
                }
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let net = Network::parse("2001:db8::/33").unwrap();
        assert!(net.contains(ip("2001:db8:7fff::1")));
        assert!(!net.contains(ip("2001:db8:8000::1")));
        assert!(!net.contains(ip("10.1.0.1")));
        assert!(
            Network::parse("192.0.2.7")
                .unwrap()
                .contains(ip("192.0.2.7"))
        );
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.1"))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
            "10.0.0/8",
        ] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let peer = ip("192.0.2.1");
        assert_eq!(none.client_address(peer, ["203.0.113.9"]), peer);
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let proxy = ip("10.0.0.2");
        let client = |values: &[&str]| trusted.client_address(proxy, values.iter().copied());
        assert_eq!(client(&["203.0.113.9"]), ip("203.0.113.9"));
        // The client wrote the left entries; the proxies appended the rest.
        assert_eq!(
            client(&["198.51.100.1, 203.0.113.9, 10.0.0.7"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&["198.51.100.1", "203.0.113.9,10.0.0.7"]),
            ip("203.0.113.9")
        );
        // Nothing but proxies: the leftmost of them.
        assert_eq!(client(&["10.0.0.5, 10.0.0.7"]), ip("10.0.0.5"));
        // No header, or garbage where the proxy's entry should be: the proxy.
        assert_eq!(client(&[]), proxy);
        assert_eq!(client(&["203.0.113.9, not-an-ip"]), proxy);
        assert_eq!(client(&["::ffff:203.0.113.9"]), ip("203.0.113.9"));
        // An untrusted peer's header means nothing.
        assert_eq!(
            trusted.client_address(ip("192.0.2.1"), ["203.0.113.9"]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn lists_are_checked() {
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
        assert!(TrustedProxies::parse("10.0.0.0/8,,::1").is_ok());
        assert!(TrustedProxies::parse("10.0.0.0/8,lb.internal").is_err());
    }

    proptest! {
        /// Whatever an untrusted sender puts in the header, it cannot choose
        /// its address; behind a proxy it cannot be anything the proxy did not
        /// append or vouch for.
        #[test]
        fn the_sender_never_picks_its_address(header in ".{0,200}", last in any::<[u8; 4]>()) {
            let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
            let attacker = ip("192.0.2.1");
            prop_assert_eq!(trusted.client_address(attacker, [header.as_str()]), attacker);
            let real = IpAddr::from(last);
            let appended = format!("{header}, {real}");
            let seen = trusted.client_address(ip("10.0.0.2"), [appended.as_str()]);
            if trusted.trusts(real) {
                prop_assert!(trusted.trusts(seen) || header.contains(&seen.to_string()));
            } else {
                prop_assert_eq!(seen, real);
            }
        }
    }
}

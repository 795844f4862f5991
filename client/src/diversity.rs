//! Choosing relays spread over networks (W21, W22): home relays, and the hops a send puts
//! before the recipient's home (two, or up to four on a mix path). Pure functions over a candidate list the caller has already
//! shuffled, so tests need no directory and no randomness.
//!
//! Two relays share a network when their IPv4 addresses share a /16 (IPv6: a /32) or the
//! directory mapped both to the same ASN. An unknown ASN matches nothing.

use std::net::IpAddr;

use ournet_proto::circuit::PathHop;
use ournet_proto::keys::IdentityPublicKey;
use ournet_proto::privacy::fit_hops;

use crate::config::Diversity;
use crate::directory::RelayInfo;

/// The network prefix two relays must not share: an IPv4 /16 or an IPv6 /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NetPrefix([u8; 4]);

impl NetPrefix {
    /// The prefix of `ip`.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Self([4, o[0], o[1], 0])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let [a, b] = s[0].to_be_bytes();
                let [c, d] = s[1].to_be_bytes();
                // Tag bit keeps a v6 prefix from ever equalling a v4 one.
                Self([6 ^ (a & 0xf0), a ^ b, c, d])
            }
        }
    }
}

/// What a chosen set already occupies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Occupied {
    prefixes: Vec<NetPrefix>,
    asns: Vec<u32>,
    identities: Vec<IdentityPublicKey>,
}

impl Occupied {
    /// Marks `hop` (and its ASN, if known) as taken.
    pub(crate) fn take(&mut self, hop: &PathHop, asn: Option<u32>) {
        self.prefixes.push(NetPrefix::of(hop.addr.ip()));
        self.asns.extend(asn);
        self.identities.push(hop.identity);
    }

    fn is_same_relay(&self, r: &RelayInfo) -> bool {
        self.identities.contains(&r.hop.identity)
    }

    fn clashes(&self, r: &RelayInfo) -> bool {
        self.prefixes.contains(&NetPrefix::of(r.hop.addr.ip()))
            || r.asn.is_some_and(|a| self.asns.contains(&a))
    }
}

/// Picks up to `want` relays from `candidates` (in order), none the same relay as one in
/// `occupied` and, with [`Diversity::Strict`], none sharing a network with another chosen one
/// or with `occupied`. [`Diversity::Prefer`] first takes diverse ones, then fills up.
pub(crate) fn pick_diverse(
    candidates: &[RelayInfo],
    want: usize,
    occupied: &mut Occupied,
    policy: Diversity,
) -> Vec<RelayInfo> {
    let mut out: Vec<RelayInfo> = Vec::new();
    for r in candidates {
        if out.len() >= want {
            return out;
        }
        if !occupied.is_same_relay(r) && !occupied.clashes(r) {
            occupied.take(&r.hop, r.asn);
            out.push(r.clone());
        }
    }
    if policy == Diversity::Prefer {
        for r in candidates {
            if out.len() >= want {
                break;
            }
            if !occupied.is_same_relay(r) {
                occupied.take(&r.hop, r.asn);
                out.push(r.clone());
            }
        }
    }
    out
}

/// A path of `hops` relays ending at `home` (a recipient's home relay): relays from
/// `candidates` that are not `home` and never repeat, in networks distinct from each other and
/// from `home` under `policy`, then `home`. When the candidates cannot fill `hops`, the
/// longest path of at least
/// [`MIN_PATH_HOPS`](ournet_proto::privacy::MIN_PATH_HOPS) they can (`proto`'s [`fit_hops`]); `None` when
/// not even that.
pub(crate) fn path_to(
    candidates: &[RelayInfo],
    home: &PathHop,
    policy: Diversity,
    hops: usize,
) -> Option<Vec<PathHop>> {
    let mut occupied = Occupied::default();
    occupied.take(home, None);
    let picked = pick_diverse(candidates, hops.saturating_sub(1), &mut occupied, policy);
    let len = fit_hops(hops, picked.len())?;
    let mut path: Vec<PathHop> = picked.into_iter().take(len - 1).map(|r| r.hop).collect();
    path.push(home.clone());
    Some(path)
}

#[cfg(test)]
mod tests {
    use ournet_proto::keys::{EncryptionPublicKey, IdentityKeypair};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn relay(seed: u64, addr: &str, asn: Option<u32>) -> RelayInfo {
        let id = IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed)).public();
        RelayInfo {
            router_id: id.to_hex(),
            hop: PathHop {
                identity: id,
                onion_key: EncryptionPublicKey([1; 32]),
                link_key: EncryptionPublicKey([2; 32]),
                addr: addr.parse().unwrap(),
            },
            region: None,
            asn,
            load: None,
        }
    }

    #[test]
    fn strict_homes_never_share_a_slash16_or_an_asn() {
        let c = vec![
            relay(1, "10.1.0.1:1", Some(100)),
            relay(2, "10.1.9.9:1", Some(200)), // same /16 as 1
            relay(3, "10.2.0.1:1", Some(100)), // same ASN as 1
            relay(4, "10.3.0.1:1", None),
            relay(5, "[2001:db8::1]:1", Some(300)),
            relay(6, "[2001:db8:ffff::1]:1", Some(301)), // same /32 as 5
        ];
        let got = pick_diverse(&c, 5, &mut Occupied::default(), Diversity::Strict);
        let ids: Vec<_> = got.iter().map(|r| r.router_id.clone()).collect();
        assert_eq!(
            ids,
            vec![
                c[0].router_id.clone(),
                c[3].router_id.clone(),
                c[4].router_id.clone()
            ]
        );
    }

    #[test]
    fn prefer_fills_up_from_the_same_networks_but_never_repeats_a_relay() {
        let c = vec![
            relay(1, "127.0.0.1:1", None),
            relay(2, "127.0.0.1:2", None),
            relay(3, "127.0.0.1:3", None),
        ];
        let got = pick_diverse(&c, 5, &mut Occupied::default(), Diversity::Prefer);
        assert_eq!(got.len(), 3);
        assert_eq!(
            pick_diverse(&c, 5, &mut Occupied::default(), Diversity::Strict).len(),
            1
        );
    }

    #[test]
    fn a_path_ends_at_the_home_and_never_visits_it_twice() {
        let home = relay(9, "10.9.0.1:1", None);
        let c = vec![
            home.clone(),
            relay(1, "10.9.0.2:1", None), // the home's /16
            relay(2, "10.1.0.1:1", None),
            relay(3, "10.1.0.2:1", None), // same /16 as 2
            relay(4, "10.4.0.1:1", None),
        ];
        let path = path_to(&c, &home.hop, Diversity::Strict, 3).unwrap();
        assert_eq!(
            path,
            vec![c[2].hop.clone(), c[4].hop.clone(), home.hop.clone()]
        );
        assert!(path_to(&c[..3], &home.hop, Diversity::Strict, 3).is_none());
        let loose = path_to(&c[..2], &home.hop, Diversity::Prefer, 3);
        assert!(loose.is_none(), "the home itself is never a middle hop");
    }

    #[test]
    fn mix_paths_keep_the_rules_and_fall_back_to_the_longest_possible() {
        let home = relay(9, "10.9.0.1:1", None);
        let c: Vec<RelayInfo> = (1..=6u8)
            .map(|i| relay(u64::from(i), &format!("10.{i}.0.1:1"), None))
            .chain([relay(7, "10.1.0.2:1", None), home.clone()])
            .collect();
        for hops in 3..=5 {
            let path = path_to(&c, &home.hop, Diversity::Strict, hops).unwrap();
            assert_eq!(path.len(), hops);
            assert_eq!(path.last(), Some(&home.hop));
            let mut prefixes: Vec<NetPrefix> =
                path.iter().map(|h| NetPrefix::of(h.addr.ip())).collect();
            prefixes.sort_by_key(|p| p.0);
            prefixes.dedup();
            assert_eq!(prefixes.len(), hops, "one relay per /16, none twice");
        }
        // Three usable relays besides the home: a 5-hop draw gets 4 hops, and 2 relays 3 hops.
        assert_eq!(
            path_to(&c[..3], &home.hop, Diversity::Strict, 5)
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            path_to(&c[..2], &home.hop, Diversity::Strict, 5)
                .unwrap()
                .len(),
            3
        );
        assert!(path_to(&c[..1], &home.hop, Diversity::Strict, 5).is_none());
    }

    #[test]
    fn v4_and_v6_prefixes_differ() {
        let a = NetPrefix::of("10.1.2.3".parse().unwrap());
        let b = NetPrefix::of("10.1.200.1".parse().unwrap());
        let c = NetPrefix::of("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

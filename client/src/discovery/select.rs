//! Choosing relays from a verified list (spec §5.10, fixing W21, W22, W34): diversity by
//! network prefix and autonomous system, preferences, and exclusions.
//!
//! Pure functions over [`RelayInfo`], so the node client's home selection and failover use
//! the same rules as discovery.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::directory::{Preferences, RelayInfo};

/// The network prefix relays are spread over: the /16 of an IPv4 address, the /48 of an IPv6
/// one (as the reference client does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subnet {
    /// First two octets of an IPv4 address.
    V4([u8; 2]),
    /// First three 16-bit groups of an IPv6 address.
    V6([u16; 3]),
}

impl Subnet {
    /// The prefix `ip` falls in.
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, _, _] = v4.octets();
                Self::V4([a, b])
            }
            IpAddr::V6(v6) => {
                let [a, b, c, ..] = v6.segments();
                Self::V6([a, b, c])
            }
        }
    }
}

/// Picks up to `count` relays from `relays` (in their order of preference), each in a new
/// subnet and a new ASN where possible (W21: a relay with a known ASN never shares it with
/// an earlier pick in the first pass, however few ASNs are chosen so far).
///
/// Three passes, as the reference: (1) new subnet and new ASN, (2) new subnet, (3) fill.
/// `exclude_subnets` and `exclude_asns` seed the "already taken" sets, so a caller holding
/// connections passes theirs.
#[must_use]
pub fn select_diverse_routers(
    relays: &[RelayInfo],
    count: usize,
    exclude_subnets: &[Subnet],
    exclude_asns: &[u32],
) -> Vec<RelayInfo> {
    let mut subnets: HashSet<Subnet> = exclude_subnets.iter().copied().collect();
    let mut asns: HashSet<u32> = exclude_asns.iter().copied().collect();
    let mut chosen: Vec<usize> = Vec::with_capacity(count.min(relays.len()));
    for pass in 0..3 {
        for (i, r) in relays.iter().enumerate() {
            if chosen.len() >= count {
                break;
            }
            if chosen.contains(&i) {
                continue;
            }
            let subnet = Subnet::of(r.hop.addr.ip());
            let new_subnet = !subnets.contains(&subnet);
            let new_asn = r.asn.is_none_or(|a| !asns.contains(&a));
            let take = match pass {
                0 => new_subnet && new_asn,
                1 => new_subnet,
                _ => true,
            };
            if take {
                chosen.push(i);
                subnets.insert(subnet);
                if let Some(a) = r.asn {
                    asns.insert(a);
                }
            }
        }
    }
    chosen
        .into_iter()
        .filter_map(|i| relays.get(i).cloned())
        .collect()
}

/// The relays a caller may be given: excluded ids dropped (W22: a failed relay is excluded
/// here, on the client, not only asked of a seed), the preferred region first, then the
/// lightest load (unknown load last).
#[must_use]
pub fn eligible(relays: &[RelayInfo], prefs: &Preferences) -> Vec<RelayInfo> {
    let mut out: Vec<RelayInfo> = relays
        .iter()
        .filter(|r| !prefs.exclude.contains(&r.router_id))
        .cloned()
        .collect();
    let region_miss = |r: &RelayInfo| match (&prefs.region, &r.region) {
        (Some(want), Some(have)) => !want.eq_ignore_ascii_case(have),
        (Some(_), None) => true,
        (None, _) => false,
    };
    out.sort_by(|a, b| {
        region_miss(a)
            .cmp(&region_miss(b))
            .then(a.load.unwrap_or(1.0).total_cmp(&b.load.unwrap_or(1.0)))
    });
    out
}

#[cfg(test)]
mod tests {
    use ournet_proto::circuit::PathHop;
    use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn relay(rng: &mut ChaCha20Rng, addr: &str, asn: Option<u32>) -> RelayInfo {
        let id = IdentityKeypair::generate(rng).public();
        RelayInfo {
            router_id: id.to_hex(),
            hop: PathHop {
                identity: id,
                onion_key: EncryptionKeypair::generate(rng).public(),
                link_key: EncryptionKeypair::generate(rng).public(),
                addr: addr.parse().unwrap(),
            },
            region: None,
            asn,
            load: None,
        }
    }

    #[test]
    fn diversity_prefers_new_subnet_and_new_asn_then_fills() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let rs = vec![
            relay(&mut rng, "10.1.0.1:1", Some(1)),
            relay(&mut rng, "10.1.9.9:1", Some(2)), // same /16 as the first
            relay(&mut rng, "10.2.0.1:1", Some(1)), // same ASN as the first (W21)
            relay(&mut rng, "10.3.0.1:1", Some(3)),
        ];
        let ids = |v: Vec<RelayInfo>| v.into_iter().map(|r| r.router_id).collect::<Vec<_>>();
        assert_eq!(
            ids(select_diverse_routers(&rs, 2, &[], &[])),
            ids(vec![rs[0].clone(), rs[3].clone()])
        );
        assert_eq!(
            ids(select_diverse_routers(&rs, 3, &[], &[])),
            ids(vec![rs[0].clone(), rs[3].clone(), rs[2].clone()]),
            "pass 2: a new subnet with a repeated ASN before a repeated subnet"
        );
        assert_eq!(select_diverse_routers(&rs, 9, &[], &[]).len(), 4);
        let held = [Subnet::of("10.1.0.0".parse().unwrap())];
        assert_eq!(
            ids(select_diverse_routers(&rs, 1, &held, &[3])),
            ids(vec![rs[2].clone()])
        );
    }

    #[test]
    fn excluded_ids_are_never_eligible_and_region_sorts_first() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let mut rs = vec![
            relay(&mut rng, "10.1.0.1:1", None),
            relay(&mut rng, "10.2.0.1:1", None),
        ];
        rs[1].region = Some("DE".into());
        let prefs = Preferences {
            region: Some("de".into()),
            exclude: vec![rs[0].router_id.clone()],
        };
        assert_eq!(eligible(&rs, &prefs), vec![rs[1].clone()]);
        let prefs = Preferences {
            region: Some("DE".into()),
            exclude: vec![],
        };
        assert_eq!(eligible(&rs, &prefs)[0], rs[1]);
    }
}

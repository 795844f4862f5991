//! What both examples share: relays from the command line, fresh keys.

use std::sync::Arc;

use ournet_client::NodeConfig;
use ournet_client::directory::{RelayInfo, StaticDirectory};
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{
    EncryptionKeypair, EncryptionPublicKey, IdentityKeypair, IdentityPublicKey,
};

/// Parses `IDENTITY_HEX,ONION_KEY_HEX,LINK_KEY_HEX,HOST:PORT` (the fields of a relay's ready
/// line) into a directory entry.
pub(crate) fn parse_relay(s: &str) -> Result<RelayInfo, String> {
    let f: Vec<&str> = s.split(',').collect();
    let [id, onion, link, addr] = f[..] else {
        return Err(format!(
            "want IDENTITY,ONION_KEY,LINK_KEY,HOST:PORT, got {s}"
        ));
    };
    let identity = IdentityPublicKey::from_hex(id).map_err(|e| e.to_string())?;
    Ok(RelayInfo {
        router_id: identity.to_hex(),
        hop: PathHop {
            identity,
            onion_key: EncryptionPublicKey::from_hex(onion).map_err(|e| e.to_string())?,
            link_key: EncryptionPublicKey::from_hex(link).map_err(|e| e.to_string())?,
            addr: addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        },
        region: None,
        asn: None,
        load: None,
    })
}

/// A node config with fresh keys over the relays given (a real app keeps its keys, and sets
/// `state_path`, so its address and its pending sends survive restarts).
pub(crate) fn config(relays: &[String]) -> Result<NodeConfig, String> {
    let list = relays
        .iter()
        .map(|r| parse_relay(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = rand_core::OsRng;
    let mut c = NodeConfig::new(
        IdentityKeypair::generate(&mut rng),
        EncryptionKeypair::generate(&mut rng),
        Arc::new(StaticDirectory(list)),
    );
    c.target_connections = relays.len().clamp(1, 3);
    c.min_connections = 1;
    // Relays on one machine share a /16; a real deployment keeps the default (strict).
    c.diversity = ournet_client::Diversity::Prefer;
    Ok(c)
}

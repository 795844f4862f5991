//! The relays a node starts with: the seed's signed `/discover` answer, verified against the
//! pinned seed key and each descriptor's own signatures, as a fixed list.
//!
//! This is the stand-in until the discovery client (`ournet_client::discovery`, being built
//! on its own branch) is merged: it asks once, caches nothing and has no fallback seed. It
//! makes no protocol decision of its own: the checks are `proto::descriptor`'s.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use ournet_client::directory::{RelayInfo, StaticDirectory};
use ournet_proto::circuit::PathHop;
use ournet_proto::descriptor::{DescriptorBody, SignedDescriptor, verify_router_list};
use ournet_proto::keys::IdentityPublicKey;
use serde_json::{Value, json};

use crate::localnet::http;

/// `POST /discover` for up to `count` routers, checked: the list signature against `pinned`
/// (or, when `None`, against the key the answer names, which is what `localnet` pins for the
/// seed it started itself) and each descriptor's router and descriptor signatures. Returns
/// the key the list verified against and the descriptors.
///
/// # Errors
/// The request failed, a signature did not verify, or the seed is not the pinned one.
pub fn discover(
    api: SocketAddr,
    count: usize,
    pinned: Option<&IdentityPublicKey>,
) -> anyhow::Result<(IdentityPublicKey, Vec<DescriptorBody>)> {
    let body = http::post_json(api, "/discover", &json!({ "requested_count": count }))?;
    let answer: Value = serde_json::from_str(&body)?;
    let named = IdentityPublicKey::from_hex(
        answer["seed_key"]
            .as_str()
            .context("no seed_key in /discover")?,
    )
    .context("seed_key")?;
    let key = match pinned {
        Some(p) if *p != named => bail!("/discover names a seed key other than the pinned one"),
        Some(p) => *p,
        None => named,
    };
    let list = answer.as_object().context("/discover is not an object")?;
    let _verified = verify_router_list(list, &key).context("/discover list signature")?;
    let mut out = Vec::new();
    for entry in answer["routers"].as_array().into_iter().flatten() {
        let verified = SignedDescriptor::from_json(entry)
            .and_then(SignedDescriptor::verify)
            .context("a router descriptor in /discover")?;
        out.push(verified.body().clone());
    }
    Ok((key, out))
}

/// The relays of the seed at `seed_url` (`http://host:port`) whose list verifies against
/// `seed_key_hex`, as a fixed directory.
///
/// # Errors
/// As [`discover`], a malformed URL or key, or no usable relay.
pub fn from_seed(seed_url: &str, seed_key_hex: &str) -> anyhow::Result<StaticDirectory> {
    let api: SocketAddr = seed_url
        .strip_prefix("http://")
        .context("the seed URL must be http://host:port")?
        .trim_end_matches('/')
        .parse()
        .context("the seed URL's host:port")?;
    let key = IdentityPublicKey::from_hex(seed_key_hex).context("--seed-key")?;
    let (_, bodies) = discover(api, 64, Some(&key))?;
    let relays: Vec<RelayInfo> = bodies.iter().filter_map(relay_info).collect();
    if relays.is_empty() {
        bail!("the seed lists no usable relay");
    }
    Ok(StaticDirectory(relays))
}

fn relay_info(body: &DescriptorBody) -> Option<RelayInfo> {
    Some(RelayInfo {
        router_id: body.router_id.to_hex(),
        hop: PathHop {
            identity: body.router_id,
            onion_key: body.onion_key,
            link_key: body.link_key,
            addr: body.endpoints.first()?.parse().ok()?,
        },
        region: body.regions.first().cloned(),
        asn: None,
        load: None,
    })
}

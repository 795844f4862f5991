//! Publishing and looking up recipient addresses at seeds (`POST /address`,
//! `GET /address/{identity_hex}`).
//!
//! A seed is only a mailbox here: the address is signed by its node, so the client verifies
//! what it gets (signature, expiry, and that it is the identity asked for). A seed can hide
//! an address or serve an older one that is still valid, never a forged one.

use std::time::Instant;

use ournet_proto::address::NodeAddress;
use ournet_proto::keys::IdentityPublicKey;
use serde_json::Value;

use super::{DiscoveryClient, DiscoveryError, SeedRequest, unix_now};

impl DiscoveryClient {
    /// Publishes `addr` to every seed that is not revoked; returns how many accepted it.
    ///
    /// # Errors
    /// [`DiscoveryError::Address`] if `addr` has expired, [`DiscoveryError::NoSeeds`], or
    /// [`DiscoveryError::AllSeedsFailed`] when no seed accepted it.
    pub async fn publish_address(&self, addr: &NodeAddress) -> Result<usize, DiscoveryError> {
        addr.check_time(now_secs())?;
        let order = self.seed_order();
        if order.is_empty() {
            return Err(DiscoveryError::NoSeeds);
        }
        let text = addr.to_string();
        let mut accepted = 0;
        let mut last_error = String::from("no answer");
        for (url, _) in order {
            let req = SeedRequest::post("/address", text.clone().into_bytes(), "text/plain");
            match self.ask(&url, req).await {
                Ok(a) if a.status == 200 => accepted += 1,
                Ok(a) => last_error = format!("{url}: status {} {}", a.status, reason(&a.body)),
                Err(e) => last_error = format!("{url}: {e}"),
            }
        }
        if accepted == 0 {
            return Err(DiscoveryError::AllSeedsFailed(last_error));
        }
        Ok(accepted)
    }

    /// Looks up `identity`'s address at the seeds in order. `Ok(None)` when every seed that
    /// answered says it does not know it; an answer that does not verify, is expired or is
    /// another identity's counts as that seed failing.
    ///
    /// # Errors
    /// [`DiscoveryError::NoSeeds`], or [`DiscoveryError::AllSeedsFailed`] when no seed gave a
    /// usable answer (found or not found).
    pub async fn lookup_address(
        &self,
        identity: &IdentityPublicKey,
    ) -> Result<Option<NodeAddress>, DiscoveryError> {
        let order = self.seed_order();
        if order.is_empty() {
            return Err(DiscoveryError::NoSeeds);
        }
        let mut not_found = false;
        let mut last_error = String::from("no answer");
        for (url, _) in order {
            let req = SeedRequest::get(format!("/address/{}", identity.to_hex()));
            let started = Instant::now();
            let result = self.ask(&url, req).await;
            let verdict = match result {
                Ok(a) if a.status == 404 => {
                    not_found = true;
                    continue;
                }
                Ok(a) if a.status == 200 => verified_address(&a.body, identity),
                Ok(a) => Err(format!("status {}", a.status)),
                Err(e) => Err(e.to_string()),
            };
            self.note_seed(&url, verdict.as_ref().err(), started);
            match verdict {
                Ok(addr) => return Ok(Some(addr)),
                Err(e) => last_error = format!("{url}: {e}"),
            }
        }
        if not_found {
            Ok(None)
        } else {
            Err(DiscoveryError::AllSeedsFailed(last_error))
        }
    }

    fn note_seed(&self, url: &str, error: Option<&String>, started: Instant) {
        let now = unix_now();
        let mut st = self.lock();
        if let Some(e) = st.seeds.get_mut(url) {
            match error {
                Some(err) => e.health.failure(now, err.clone()),
                None => e
                    .health
                    .success(now, started.elapsed().as_secs_f64() * 1000.0),
            }
        }
    }
}

/// The `address` of a `GET /address` answer, verified and checked to be `identity`'s.
fn verified_address(body: &[u8], identity: &IdentityPublicKey) -> Result<NodeAddress, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "answer is not JSON".to_owned())?;
    let text = v
        .get("address")
        .and_then(Value::as_str)
        .ok_or("answer has no address")?;
    let addr = NodeAddress::parse(text, now_secs()).map_err(|e| e.to_string())?;
    if addr.identity != *identity {
        return Err("seed served another identity's address".into());
    }
    Ok(addr)
}

fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "unix seconds are positive and far below u64::MAX"
)]
fn now_secs() -> u64 {
    unix_now() as u64
}

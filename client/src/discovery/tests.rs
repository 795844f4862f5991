//! Discovery on canned, really signed seed answers: no socket, every rule.

use std::collections::HashMap;
use std::sync::Mutex;

use ournet_proto::address::NodeAddress;
use ournet_proto::canonical_json;
use ournet_proto::descriptor::{DescriptorBody, sign_router_list};
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::revocation::revocation_signable;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Map;

use super::*;

/// Answers by `url + path`; anything else is a connection error. Records every call.
#[derive(Debug, Default)]
struct Canned {
    answers: Mutex<HashMap<String, SeedAnswer>>,
    calls: Mutex<Vec<String>>,
}

impl Canned {
    fn set(&self, url: &str, path: &str, status: u16, body: &Value) {
        self.answers.lock().unwrap().insert(
            format!("{url}{path}"),
            SeedAnswer {
                status,
                body: body.to_string().into_bytes(),
            },
        );
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl SeedTransport for Canned {
    async fn call(
        &self,
        url: &str,
        req: SeedRequest,
        _timeout: Duration,
    ) -> Result<SeedAnswer, TransportError> {
        let key = format!("{url}{}", req.path);
        self.calls.lock().unwrap().push(key.clone());
        self.answers
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .ok_or_else(|| TransportError::Network("connection refused".into()))
    }
}

struct World {
    rng: ChaCha20Rng,
    seeds: Vec<IdentityKeypair>,
}

const A: &str = "http://127.0.0.1:1";
const B: &str = "http://127.0.0.1:2";

impl World {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let seeds = (0..3)
            .map(|_| IdentityKeypair::generate(&mut rng))
            .collect();
        Self { rng, seeds }
    }

    /// A router entry as the seed serves it: the signed descriptor plus unsigned health.
    fn router(&mut self, endpoint: &str) -> Value {
        let id = IdentityKeypair::generate(&mut self.rng);
        let body = DescriptorBody {
            router_id: id.public(),
            endpoints: vec![endpoint.into()],
            capacity: Map::new(),
            regions: vec![],
            features: vec![],
            registered_at: 1000.0,
            region: None,
            coordinates: None,
            onion_key: EncryptionKeypair::generate(&mut self.rng).public(),
            link_key: EncryptionKeypair::generate(&mut self.rng).public(),
            published_at: 1000.0,
        };
        let mut m = body.sign(&id).unwrap().to_json().unwrap();
        m.insert("health".into(), json!({"load_pct": 10.0}));
        Value::Object(m)
    }

    fn routers(&mut self, n: u8) -> Vec<Value> {
        (1..=n)
            .map(|i| self.router(&format!("10.{i}.0.1:9001")))
            .collect()
    }

    /// A `/discover` answer signed by seed `i`.
    fn answer(&self, i: usize, routers: &[Value]) -> Value {
        let key = &self.seeds[i];
        let mut m = json!({
            "seed_id": key.public().to_hex(),
            "seed_key": key.public().to_hex(),
            "timestamp": unix_now(),
            "routers": routers,
            "other_seeds": [],
        })
        .as_object()
        .cloned()
        .unwrap();
        sign_router_list(key, &mut m).unwrap();
        Value::Object(m)
    }

    fn config(&self, ttl: Duration) -> DiscoveryConfig {
        DiscoveryConfig {
            seeds: vec![
                PinnedSeed {
                    url: A.into(),
                    key: self.seeds[0].public(),
                },
                PinnedSeed {
                    url: B.into(),
                    key: self.seeds[1].public(),
                },
            ],
            cache_ttl: ttl,
            revocation_refresh: None,
            ..DiscoveryConfig::default()
        }
    }

    /// A revocation of seed `i`, signed by itself.
    fn self_revocation(&self, i: usize) -> Value {
        let k = &self.seeds[i];
        let id = k.public().to_hex();
        let mut o = json!({"revocation_id": "r-1", "seed_id": id, "reason": "key_compromise",
            "timestamp": unix_now() - 10.0, "issuer_id": id})
        .as_object()
        .cloned()
        .unwrap();
        let msg = canonical_json::to_compact(&revocation_signable(&o)).unwrap();
        o.insert("signature".into(), json!(k.sign(msg.as_bytes()).to_hex()));
        Value::Object(o)
    }
}

fn client(cfg: DiscoveryConfig, t: &Arc<Canned>) -> DiscoveryClient {
    DiscoveryClient::with_transport(cfg, t.clone()).unwrap()
}

fn none() -> Preferences {
    Preferences::default()
}

#[tokio::test]
async fn a_verified_answer_gives_relays_usable_as_path_hops() {
    let mut w = World::new();
    let mut routers = w.routers(3);
    routers[0]["asn"] = json!(64_500);
    let t = Arc::new(Canned::default());
    t.set(A, "/discover", 200, &w.answer(0, &routers));
    let c = client(w.config(Duration::from_secs(600)), &t);
    let got = c.discover_routers(3, &none(), false).await.unwrap();
    assert_eq!(got.len(), 3);
    for (r, entry) in got.iter().zip(&routers) {
        assert_eq!(r.router_id, entry["router_id"].as_str().unwrap());
        assert_eq!(r.hop.identity.to_hex(), r.router_id);
        assert_eq!(r.hop.link_key.to_hex(), entry["link_key"].as_str().unwrap());
        assert_eq!(r.load, Some(0.1));
    }
    assert_eq!((got[0].asn, got[1].asn), (Some(64_500), None));
    let s = c.get_stats();
    assert_eq!(
        (s.queries, s.seed_successes, s.signature_failures),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn a_tampered_list_is_never_trusted_and_the_next_seed_is_asked() {
    let mut w = World::new();
    let routers = w.routers(3);
    let mut tampered = w.answer(0, &routers);
    tampered["routers"][0]["health"]["load_pct"] = json!(0.0);
    let t = Arc::new(Canned::default());
    t.set(A, "/discover", 200, &tampered);
    let c = client(w.config(Duration::from_secs(600)), &t);
    assert!(matches!(
        c.discover_routers(3, &none(), false).await,
        Err(DiscoveryError::AllSeedsFailed(_))
    ));
    assert_eq!(c.get_stats().signature_failures, 1);
    assert!(c.cached_routers().is_empty(), "nothing from a bad list");
    t.set(B, "/discover", 200, &w.answer(1, &routers));
    assert_eq!(
        c.discover_routers(3, &none(), false).await.unwrap().len(),
        3
    );
}

#[tokio::test]
async fn a_replayed_old_answer_is_refused() {
    let mut w = World::new();
    let routers = w.routers(2);
    let mut old = w.answer(0, &routers);
    old.as_object_mut().unwrap().remove("seed_signature");
    old["timestamp"] = json!(unix_now() - 3600.0);
    let mut m = old.as_object().cloned().unwrap();
    sign_router_list(&w.seeds[0], &mut m).unwrap();
    let t = Arc::new(Canned::default());
    t.set(A, "/discover", 200, &Value::Object(m));
    let c = client(w.config(Duration::from_secs(600)), &t);
    assert!(c.discover_routers(2, &none(), false).await.is_err());
    let a = &c.get_seed_health_report()[0];
    let error = a.health.last_error.as_deref().unwrap();
    assert!(error.contains("stale"), "{error}");
    assert_eq!(c.get_stats().seed_failures, 2, "A refused, B down");
}

#[tokio::test]
async fn a_tampered_descriptor_is_dropped_and_counted() {
    let mut w = World::new();
    let mut routers = w.routers(3);
    // The seed signs the list, but a router's endpoint was swapped before it did (a seed
    // cannot redirect a router's traffic).
    routers[1]["endpoints"] = json!(["10.9.0.1:9001"]);
    let t = Arc::new(Canned::default());
    t.set(A, "/discover", 200, &w.answer(0, &routers));
    let c = client(w.config(Duration::from_secs(600)), &t);
    let got = c.discover_routers(3, &none(), false).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|r| r.hop.addr.to_string() != "10.9.0.1:9001")
    );
    assert_eq!(c.get_stats().signature_failures, 1);
}

#[tokio::test]
async fn an_answer_under_another_seed_key_is_refused() {
    let mut w = World::new();
    let routers = w.routers(2);
    let t = Arc::new(Canned::default());
    // Signed correctly, but by a key not pinned at all, then by seed B's key at A's URL.
    t.set(A, "/discover", 200, &w.answer(2, &routers));
    let c = client(w.config(Duration::from_secs(600)), &t);
    assert!(c.discover_routers(2, &none(), false).await.is_err());
    t.set(A, "/discover", 200, &w.answer(1, &routers));
    assert!(c.discover_routers(2, &none(), false).await.is_err());
    assert_eq!(c.get_stats().signature_failures, 2);
    let report = c.get_seed_health_report();
    assert_eq!(report[0].health.failure_count, 2);
}

#[tokio::test]
async fn the_cache_serves_until_it_expires_or_runs_short() {
    let mut w = World::new();
    let routers = w.routers(3);
    let t = Arc::new(Canned::default());
    t.set(A, "/discover", 200, &w.answer(0, &routers));
    let c = client(w.config(Duration::from_secs(600)), &t);
    c.discover_routers(2, &none(), false).await.unwrap();
    c.discover_routers(2, &none(), false).await.unwrap();
    assert_eq!((t.calls().len(), c.get_stats().cache_hits), (1, 1));
    // W34: the cache holds 3, a caller excluding one of them wants 3: ask a seed.
    let prefs = Preferences {
        exclude: vec![routers[0]["router_id"].as_str().unwrap().into()],
        ..none()
    };
    let got = c.discover_routers(3, &prefs, false).await.unwrap();
    // A answers with only 2 eligible, so B is asked too (down), and A's answer is used.
    assert_eq!(t.calls().len(), 3);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|r| !prefs.exclude.contains(&r.router_id)),
        "W22"
    );
    c.discover_routers(1, &none(), true).await.unwrap();
    assert_eq!(t.calls().len(), 4, "force_refresh");
    // An expired cache (TTL 0) is never used.
    let t2 = Arc::new(Canned::default());
    t2.set(A, "/discover", 200, &w.answer(0, &routers));
    let c2 = client(w.config(Duration::ZERO), &t2);
    c2.discover_routers(1, &none(), false).await.unwrap();
    c2.discover_routers(1, &none(), false).await.unwrap();
    assert_eq!((t2.calls().len(), c2.get_stats().cache_hits), (2, 0));
    c2.clear_cache();
    assert!(c2.cached_routers().is_empty());
}

#[tokio::test]
async fn the_second_seed_answers_when_the_first_is_down() {
    let mut w = World::new();
    let routers = w.routers(3);
    let t = Arc::new(Canned::default());
    t.set(B, "/discover", 200, &w.answer(1, &routers));
    let c = client(w.config(Duration::ZERO), &t);
    assert_eq!(
        c.discover_routers(3, &none(), false).await.unwrap().len(),
        3
    );
    assert_eq!(
        t.calls(),
        vec![format!("{A}/discover"), format!("{B}/discover")]
    );
    let s = c.get_stats();
    assert_eq!((s.seed_failures, s.seed_successes), (1, 1));
    // Next time the healthy seed goes first.
    c.discover_routers(3, &none(), false).await.unwrap();
    assert_eq!(t.calls().last().unwrap(), &format!("{B}/discover"));
    assert_eq!(t.calls().len(), 3);
    let report = c.get_seed_health_report();
    assert!(report[1].score > report[0].score);
}

#[tokio::test]
async fn a_revoked_seed_is_never_asked() {
    let mut w = World::new();
    let routers = w.routers(2);
    let t = Arc::new(Canned::default());
    t.set(A, "/discover", 200, &w.answer(0, &routers));
    t.set(B, "/discover", 200, &w.answer(1, &routers));
    let c = client(w.config(Duration::ZERO), &t);
    let dir = std::env::temp_dir().join(format!("ournet-revo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("revocations.json");
    // One self-signed revocation of seed A, and one of seed B that A's key signed (untrusted).
    let mut forged = w.self_revocation(1);
    forged["issuer_id"] = json!(w.seeds[0].public().to_hex());
    let list = json!({"version": 1, "revocations": [w.self_revocation(0), forged]});
    std::fs::write(&file, list.to_string()).unwrap();
    let (n, errors) = c.load_revocation_list(&file);
    assert_eq!(n, 1, "{errors:?}");
    assert!(errors[0].contains("untrusted_issuer"), "{errors:?}");
    assert!(c.is_seed_revoked(&w.seeds[0].public().to_hex()));
    assert!(c.is_seed_revoked(A));
    c.discover_routers(2, &none(), false).await.unwrap();
    assert_eq!(t.calls(), vec![format!("{B}/discover")]);
    assert_eq!(c.get_stats().revoked_seeds_skipped, 1);
    // The same revocations from a seed's GET /revocations: verified the same way.
    let t2 = Arc::new(Canned::default());
    t2.set(
        B,
        "/revocations",
        200,
        &json!({"revocations": [w.self_revocation(0)]}),
    );
    let c2 = client(w.config(Duration::ZERO), &t2);
    assert_eq!(c2.fetch_revocations_from_seed(B).await.0, 1);
    assert!(c2.is_seed_revoked(A));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_looked_up_address_must_be_the_identity_asked_for() {
    let mut w = World::new();
    let node = IdentityKeypair::generate(&mut w.rng);
    let other = IdentityKeypair::generate(&mut w.rng);
    let enc = EncryptionKeypair::generate(&mut w.rng).public();
    let hop = verify::relay_info(&w.router("10.1.0.1:9001")).unwrap().hop;
    let now = unix_now() as u64;
    let sign = |k: &IdentityKeypair| {
        NodeAddress::sign(k, enc, vec![hop.clone()], now, now + 3600).unwrap()
    };
    let (mine, theirs) = (sign(&node), sign(&other));
    let t = Arc::new(Canned::default());
    let path = format!("/address/{}", node.public().to_hex());
    t.set(A, &path, 200, &json!({"address": theirs.to_string()}));
    t.set(B, &path, 200, &json!({"address": mine.to_string()}));
    t.set(A, "/address", 200, &json!({"status": "accepted"}));
    let c = client(w.config(Duration::ZERO), &t);
    assert_eq!(c.publish_address(&mine).await.unwrap(), 1);
    let found = c.lookup_address(&node.public()).await.unwrap();
    assert_eq!(found, Some(mine), "A's swapped address refused, B's used");
    assert_eq!(c.get_seed_health_report()[0].health.failure_count, 1);
    let unknown = other.public();
    t.set(
        A,
        &format!("/address/{}", unknown.to_hex()),
        404,
        &json!({}),
    );
    assert_eq!(c.lookup_address(&unknown).await.unwrap(), None);
}

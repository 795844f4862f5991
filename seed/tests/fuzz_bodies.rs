#![allow(clippy::unwrap_used, reason = "test code")]
//! Property test over the request parsers: any bytes and any JSON value, sent to any POST
//! endpoint, get an answer below 500 (W25). Mutated valid registrations are included so the
//! deeper checks (descriptor, PoW, signatures) are reached too.

#[path = "support/harness.rs"]
mod harness;

use proptest::prelude::*;
use serde_json::Value;

const PATHS: [&str; 6] = [
    "/discover",
    "/register",
    "/heartbeat",
    "/report_misbehavior",
    "/revoke_seed",
    "/gossip/exchange",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9_:.]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "router_id",
            "endpoints",
            "timestamp",
            "signature",
            "proof_of_work",
            "seed_id",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "router_id",
                    "endpoints",
                    "capacity",
                    "timestamp",
                    "signature",
                    "proof_of_work",
                    "requested_count",
                    "preferences",
                    "severity",
                    "reporter_id",
                    "seed_id",
                    "revocation_id",
                    "issuer_id",
                    "routers",
                    "load_pct",
                    "descriptor",
                ])
                .prop_map(str::to_owned),
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check(path: &str, body: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = harness::harness().await;
        let (st, _) = h.raw("POST", path, body, "10.0.0.1").await;
        assert!(st.as_u16() < 500, "{path} answered {st}");
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_json_never_500(v in json_value(), p in 0..PATHS.len()) {
        check(PATHS[p], serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn arbitrary_bytes_never_500(b in prop::collection::vec(any::<u8>(), 0..256), p in 0..PATHS.len()) {
        check(PATHS[p], b);
    }

    #[test]
    fn mutated_registration_never_500(field in 0usize..16, v in json_value()) {
        let r = harness::router(7, "10.1.0.1:8471");
        let mut body = r.register_body("c1", 0, harness::T0, 1).unwrap();
        let keys: Vec<String> = body.keys().cloned().collect();
        let k = keys[field % keys.len()].clone();
        body.insert(k, v);
        check("/register", serde_json::to_vec(&r.signed(body)).unwrap());
    }
}

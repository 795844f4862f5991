use serde_json::json;

use super::*;
use crate::keys::EncryptionKeypair;

fn identity() -> IdentityKeypair {
    IdentityKeypair::from_secret_bytes(&[7u8; 32])
}

fn body() -> DescriptorBody {
    let mut capacity = Map::new();
    capacity.insert("max_connections".into(), json!(100));
    capacity.insert("bandwidth_mbps".into(), json!(100.0));
    DescriptorBody {
        router_id: identity().public(),
        endpoints: vec!["192.0.2.10:8471".into()],
        capacity,
        regions: vec!["north-america".into()],
        features: vec!["circuits".into()],
        registered_at: 1_706_789_012.345,
        region: Some("US".into()),
        coordinates: Some([40.7, -74.0]),
        onion_key: EncryptionKeypair::from_secret_bytes(&[1u8; 32]).public(),
        link_key: EncryptionKeypair::from_secret_bytes(&[2u8; 32]).public(),
        published_at: 1_706_789_100.0,
    }
}

#[test]
fn reference_message_is_pythons_spaced_json() {
    let b = body();
    // json.dumps({...}, sort_keys=True) in Python 3.11 for the same six fields.
    let want = format!(
        "{{\"capacity\": {{\"bandwidth_mbps\": 100.0, \"max_connections\": 100}}, \
         \"endpoints\": [\"192.0.2.10:8471\"], \"features\": [\"circuits\"], \
         \"regions\": [\"north-america\"], \"registered_at\": 1706789012.345, \
         \"router_id\": \"{}\"}}",
        b.router_id.to_hex()
    );
    assert_eq!(b.reference_message().unwrap(), want);
    assert!(b.full_message().unwrap().starts_with(DESCRIPTOR_LABEL));
}

#[test]
fn sign_serialize_parse_verify_round_trip() {
    let signed = body().sign(&identity()).unwrap();
    let v = Value::Object(signed.to_json().unwrap());
    let text = serde_json::to_string(&v).unwrap();
    let parsed = SignedDescriptor::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(parsed, signed);
    let verified = parsed.verify().unwrap();
    assert_eq!(verified.body(), &body());
}

#[test]
fn unset_region_and_coordinates_are_omitted_and_still_verify() {
    let mut b = body();
    b.region = None;
    b.coordinates = None;
    let signed = b.sign(&identity()).unwrap();
    let m = signed.to_json().unwrap();
    assert!(!m.contains_key("region") && !m.contains_key("coordinates"));
    SignedDescriptor::from_json(&Value::Object(m))
        .unwrap()
        .verify()
        .unwrap();
}

#[test]
fn tampering_breaks_the_right_signature() {
    let signed = body().sign(&identity()).unwrap();
    let mut a = signed.clone();
    a.body.onion_key = EncryptionKeypair::from_secret_bytes(&[9u8; 32]).public();
    assert_eq!(
        a.verify().unwrap_err(),
        DescriptorError::BadDescriptorSignature
    );
    let mut b = signed.clone();
    b.body
        .capacity
        .insert("max_connections".into(), json!(5000));
    assert_eq!(b.verify().unwrap_err(), DescriptorError::BadRouterSignature);
    let mut c = signed;
    c.body.registered_at += 1.0;
    assert_eq!(c.verify().unwrap_err(), DescriptorError::BadRouterSignature);
}

#[test]
fn malformed_fields_get_named_errors() {
    let good = Value::Object(body().sign(&identity()).unwrap().to_json().unwrap());
    let with = |k: &str, v: Value| {
        let mut o = good.as_object().unwrap().clone();
        o.insert(k.into(), v);
        SignedDescriptor::from_json(&Value::Object(o)).unwrap_err()
    };
    assert_eq!(
        with("endpoints", json!([])),
        DescriptorError::OutOfRange("endpoints")
    );
    assert_eq!(
        with("endpoints", json!(["nohost"])),
        DescriptorError::OutOfRange("endpoints")
    );
    assert_eq!(
        with("endpoints", json!("a:1")),
        DescriptorError::BadField("endpoints")
    );
    let many: Vec<String> = (0..9).map(|i| format!("h:{}", i + 1)).collect();
    assert_eq!(
        with("endpoints", json!(many)),
        DescriptorError::OutOfRange("endpoints")
    );
    assert_eq!(
        with("region", json!("USA")),
        DescriptorError::OutOfRange("region")
    );
    assert_eq!(
        with("coordinates", json!([91, 0])),
        DescriptorError::OutOfRange("coordinates")
    );
    assert_eq!(
        with("registered_at", json!("x")),
        DescriptorError::BadField("registered_at")
    );
    assert_eq!(
        with("published_at", json!(-1)),
        DescriptorError::OutOfRange("published_at")
    );
    assert_eq!(
        with("capacity", json!({"a": [1]})),
        DescriptorError::OutOfRange("capacity")
    );
    assert!(matches!(
        with("onion_key", json!("zz")),
        DescriptorError::BadKey {
            field: "onion_key",
            ..
        }
    ));
    assert!(matches!(
        with("router_id", json!("00")),
        DescriptorError::BadKey {
            field: "router_id",
            ..
        }
    ));
    assert_eq!(
        SignedDescriptor::from_json(&json!([1])).unwrap_err(),
        DescriptorError::BadField("descriptor")
    );
}

#[test]
fn router_list_signature_pins_the_seed() {
    let seed = IdentityKeypair::from_secret_bytes(&[3u8; 32]);
    let entry = Value::Object(body().sign(&identity()).unwrap().to_json().unwrap());
    let mut answer = Map::new();
    answer.insert("seed_id".into(), json!("s"));
    answer.insert("timestamp".into(), json!(1.5));
    answer.insert("routers".into(), json!([entry]));
    sign_router_list(&seed, &mut answer).unwrap();
    let _ok: RouterListOk = verify_router_list(&answer, &seed.public()).unwrap();
    let other = IdentityKeypair::from_secret_bytes(&[4u8; 32]).public();
    assert!(verify_router_list(&answer, &other).is_err());
    answer.insert("timestamp".into(), json!(2.5));
    assert!(verify_router_list(&answer, &seed.public()).is_err());
}

#[test]
fn full_message_is_the_label_and_compact_json_of_every_field() {
    let b = body();
    // Pinned from the code before the reference fields were shared with `reference_message`.
    let want = format!(
        "{DESCRIPTOR_LABEL}{{\"capacity\":{{\"bandwidth_mbps\":100.0,\"max_connections\":100}},\
         \"coordinates\":[40.7,-74.0],\"endpoints\":[\"192.0.2.10:8471\"],\
         \"features\":[\"circuits\"],\"link_key\":\"{}\",\"onion_key\":\"{}\",\
         \"published_at\":1706789100.0,\"region\":\"US\",\"regions\":[\"north-america\"],\
         \"registered_at\":1706789012.345,\"router_id\":\"{}\"}}",
        b.link_key.to_hex(),
        b.onion_key.to_hex(),
        b.router_id.to_hex()
    );
    assert_eq!(b.full_message().unwrap(), want);
}

//! Tests of the privacy levels, presets, latency estimate, recommendation and dict form.

use super::*;

fn overhead(config: &TrafficAnalysisMitigationConfig) -> (u64, u64, u64) {
    let o = config.estimate_latency_overhead();
    (o.min_delay_ms, o.max_delay_ms, o.avg_delay_ms)
}

#[test]
fn level_names_and_order() {
    let names: Vec<String> = PrivacyLevel::ALL
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect();
    assert_eq!(names, ["\"low\"", "\"medium\"", "\"high\"", "\"paranoid\""]);
    for level in PrivacyLevel::ALL {
        assert_eq!(
            format!("\"{level}\""),
            serde_json::to_string(&level).unwrap()
        );
    }
    assert!(PrivacyLevel::Low < PrivacyLevel::Medium);
    assert!(PrivacyLevel::High < PrivacyLevel::Paranoid);
    assert_eq!(PrivacyLevel::default(), PrivacyLevel::Low);
    assert!(serde_json::from_str::<PrivacyLevel>("\"extreme\"").is_err());
}

#[test]
fn min_send_interval_is_one_millisecond() {
    assert_eq!(MIN_SEND_INTERVAL, Duration::from_millis(1));
}

#[test]
fn mix_network_defaults() {
    let m = MixNetworkConfig::default();
    assert!(!m.enabled);
    assert_eq!(m.provider_url, None);
    assert_eq!(m.min_hops, 3);
    assert_eq!(m.max_hops, 5);
    assert!(m.loop_cover_traffic);
}

#[test]
fn low_preset_is_the_default_config() {
    assert_eq!(PRIVACY_LOW, TrafficAnalysisMitigationConfig::default());
    let low = PRIVACY_LOW;
    assert_eq!(low.privacy_level, PrivacyLevel::Low);
    assert_eq!(low.batching, BatchingConfig::default());
    assert_eq!(low.jitter, TimingJitterConfig::default());
    assert_eq!(low.constant_rate, ConstantRateConfig::default());
    assert_eq!(low.mix_network, MixNetworkConfig::default());
    assert!(!low.adaptive);
    assert!(low.metrics_enabled);
}

#[test]
fn medium_preset() {
    let c = PRIVACY_MEDIUM;
    assert_eq!(c.privacy_level, PrivacyLevel::Medium);
    assert_eq!(
        c.batching,
        BatchingConfig {
            enabled: true,
            min_batch_size: 2,
            max_batch_size: 4,
            batch_interval_ms: 2000,
            randomize_order: true,
        }
    );
    assert_eq!(
        c.jitter,
        TimingJitterConfig {
            enabled: true,
            min_delay_ms: 0,
            max_delay_ms: 500,
            distribution: JitterDistribution::Uniform,
        }
    );
    assert_eq!(c.constant_rate, ConstantRateConfig::default());
    assert_eq!(c.mix_network, MixNetworkConfig::default());
}

#[test]
fn high_preset() {
    let c = PRIVACY_HIGH;
    assert_eq!(c.privacy_level, PrivacyLevel::High);
    assert_eq!(
        c.batching,
        BatchingConfig {
            enabled: true,
            min_batch_size: 4,
            max_batch_size: 8,
            batch_interval_ms: 5000,
            randomize_order: true,
        }
    );
    assert_eq!(
        c.jitter,
        TimingJitterConfig {
            enabled: true,
            min_delay_ms: 100,
            max_delay_ms: 2000,
            distribution: JitterDistribution::Exponential,
        }
    );
    assert_eq!(
        c.constant_rate,
        ConstantRateConfig {
            messages_per_minute: 6.0,
            ..ConstantRateConfig::default()
        }
    );
    assert!(!c.constant_rate.enabled);
    assert!(!c.mix_network.enabled);
}

#[test]
fn paranoid_preset() {
    let c = PRIVACY_PARANOID;
    assert_eq!(c.privacy_level, PrivacyLevel::Paranoid);
    assert_eq!(
        c.batching,
        BatchingConfig {
            enabled: true,
            min_batch_size: 8,
            max_batch_size: 16,
            batch_interval_ms: 15_000,
            randomize_order: true,
        }
    );
    assert_eq!(
        c.jitter,
        TimingJitterConfig {
            enabled: true,
            min_delay_ms: 500,
            max_delay_ms: 5000,
            distribution: JitterDistribution::Exponential,
        }
    );
    assert_eq!(
        c.constant_rate,
        ConstantRateConfig {
            enabled: true,
            messages_per_minute: 4.0,
            pad_to_size: 4096,
            allow_burst: false,
            max_burst_size: 5,
        }
    );
    assert_eq!(c.mix_network, MixNetworkConfig::default());
}

#[test]
fn from_privacy_level_matches_the_constants() {
    let presets = [PRIVACY_LOW, PRIVACY_MEDIUM, PRIVACY_HIGH, PRIVACY_PARANOID];
    for (level, preset) in PrivacyLevel::ALL.into_iter().zip(presets) {
        assert_eq!(
            TrafficAnalysisMitigationConfig::from_privacy_level(level),
            preset
        );
        assert_eq!(preset.privacy_level, level);
        assert_eq!(preset.validate(), Ok(()));
    }
}

#[test]
fn latency_overhead_spec_values() {
    assert_eq!(overhead(&PRIVACY_LOW), (0, 0, 0));
    assert_eq!(overhead(&PRIVACY_MEDIUM), (0, 2500, 1250));
    assert_eq!(overhead(&PRIVACY_HIGH), (100, 7000, 3450));
    assert_eq!(overhead(&PRIVACY_PARANOID), (500, 35_000, 17_250));
}

#[test]
fn latency_overhead_dict_form() {
    let value = serde_json::to_value(PRIVACY_PARANOID.estimate_latency_overhead()).unwrap();
    let expected = serde_json::json!({
        "privacy_level": "paranoid",
        "min_delay_ms": 500,
        "max_delay_ms": 35_000,
        "avg_delay_ms": 17_250,
    });
    assert_eq!(value, expected);
}

#[test]
fn latency_overhead_of_each_mitigation_alone() {
    let mut c = PRIVACY_LOW;
    c.jitter = TimingJitterConfig {
        enabled: true,
        min_delay_ms: 100,
        max_delay_ms: 301,
        distribution: JitterDistribution::Uniform,
    };
    // uniform average: (100 + 301) // 2
    assert_eq!(overhead(&c), (100, 301, 200));
    c.jitter.distribution = JitterDistribution::Exponential;
    // exponential average: (301 - 100) // 2
    assert_eq!(overhead(&c), (100, 301, 100));

    let mut c = PRIVACY_LOW;
    c.batching.enabled = true;
    c.batching.batch_interval_ms = 2001;
    assert_eq!(overhead(&c), (0, 2001, 1000));

    let mut c = PRIVACY_LOW;
    c.constant_rate.enabled = true;
    c.constant_rate.messages_per_minute = 7.0;
    // int(60 / 7 · 1000) = 8571
    assert_eq!(overhead(&c), (0, 8571, 4285));
    c.constant_rate.messages_per_minute = 0.0;
    assert_eq!(overhead(&c), (0, 60_000, 30_000));
}

#[test]
fn latency_overhead_never_underflows_or_overflows() {
    let mut c = PRIVACY_LOW;
    c.jitter = TimingJitterConfig {
        enabled: true,
        min_delay_ms: 900,
        max_delay_ms: 100,
        distribution: JitterDistribution::Exponential,
    };
    assert_eq!(overhead(&c), (900, 100, 0));
    c.jitter.min_delay_ms = u64::MAX;
    c.jitter.max_delay_ms = u64::MAX;
    c.batching.enabled = true;
    assert_eq!(overhead(&c), (u64::MAX, u64::MAX, 1000));
}

#[test]
fn recommended_config_matrix() {
    let mut high_no_rate = PRIVACY_HIGH;
    high_no_rate.constant_rate.enabled = false;
    let mut fast_medium = PRIVACY_MEDIUM;
    fast_medium.jitter.max_delay_ms = 200;
    fast_medium.batching.batch_interval_ms = 1000;
    for bandwidth_limited in [false, true] {
        assert_eq!(
            get_recommended_config(true, bandwidth_limited, true),
            fast_medium
        );
        assert_eq!(
            get_recommended_config(true, bandwidth_limited, false),
            PRIVACY_LOW
        );
        assert_eq!(
            get_recommended_config(false, bandwidth_limited, false),
            PRIVACY_MEDIUM
        );
    }
    assert_eq!(get_recommended_config(false, true, true), high_no_rate);
    assert_eq!(get_recommended_config(false, false, true), PRIVACY_PARANOID);
}

#[test]
fn recommended_latency_sensitive_secure_config_costs() {
    let c = get_recommended_config(true, false, true);
    assert_eq!(c.privacy_level, PrivacyLevel::Medium);
    // batching 1000 → max 1000, avg 500; jitter 0..200 uniform → max +200, avg +100
    assert_eq!(overhead(&c), (0, 1200, 600));
}

#[test]
fn recommended_configs_are_fresh_values() {
    // W35: in the reference, this mutation would change every later PARANOID result.
    let mut first = get_recommended_config(false, false, true);
    first.constant_rate.enabled = false;
    first.jitter.max_delay_ms = 1;
    assert_eq!(get_recommended_config(false, false, true), PRIVACY_PARANOID);
    let mut low = get_recommended_config(true, false, false);
    low.batching.enabled = true;
    assert_eq!(get_recommended_config(true, false, false), PRIVACY_LOW);
    assert_eq!(TrafficAnalysisMitigationConfig::default(), PRIVACY_LOW);
}

#[test]
fn dict_form_has_the_reference_keys() {
    let value = serde_json::to_value(PRIVACY_MEDIUM).unwrap();
    let expected = serde_json::json!({
        "privacy_level": "medium",
        "batching": {
            "enabled": true,
            "min_batch_size": 2,
            "max_batch_size": 4,
            "batch_interval_ms": 2000,
            "randomize_order": true,
        },
        "jitter": {
            "enabled": true,
            "min_delay_ms": 0,
            "max_delay_ms": 500,
            "distribution": "uniform",
        },
        "constant_rate": {
            "enabled": false,
            "messages_per_minute": 10.0,
            "pad_to_size": 4096,
            "allow_burst": true,
            "max_burst_size": 5,
        },
        "mix_network": {
            "enabled": false,
            "provider_url": null,
            "min_hops": 3,
            "max_hops": 5,
            "loop_cover_traffic": true,
        },
        "adaptive": false,
        "metrics_enabled": true,
    });
    assert_eq!(value, expected);
}

#[test]
fn reads_the_reference_to_dict_output() {
    // What the reference's `to_dict` writes for PARANOID (no `loop_cover_traffic`).
    let reference = r#"{
        "privacy_level": "paranoid",
        "batching": {"enabled": true, "min_batch_size": 8, "max_batch_size": 16,
                     "batch_interval_ms": 15000, "randomize_order": true},
        "jitter": {"enabled": true, "min_delay_ms": 500, "max_delay_ms": 5000,
                   "distribution": "exponential"},
        "constant_rate": {"enabled": true, "messages_per_minute": 4.0, "pad_to_size": 4096,
                          "allow_burst": false, "max_burst_size": 5},
        "mix_network": {"enabled": false, "provider_url": null, "min_hops": 3, "max_hops": 5},
        "adaptive": false,
        "metrics_enabled": true
    }"#;
    let config: TrafficAnalysisMitigationConfig = serde_json::from_str(reference).unwrap();
    assert_eq!(config, PRIVACY_PARANOID);
}

#[test]
fn round_trips_every_preset() {
    for level in PrivacyLevel::ALL {
        let mut config = TrafficAnalysisMitigationConfig::from_privacy_level(level);
        config.mix_network.provider_url = Some("https://mix.example".to_owned());
        config.mix_network.loop_cover_traffic = false;
        let json = serde_json::to_string(&config).unwrap();
        let back: TrafficAnalysisMitigationConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }
}

#[test]
fn missing_keys_take_the_defaults() {
    let empty: TrafficAnalysisMitigationConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, PRIVACY_LOW);
    let partial: TrafficAnalysisMitigationConfig = serde_json::from_str(
        r#"{"privacy_level": "high", "jitter": {"enabled": true}, "constant_rate": {"messages_per_minute": 3}}"#,
    )
    .unwrap();
    assert_eq!(partial.privacy_level, PrivacyLevel::High);
    assert_eq!(
        partial.jitter,
        TimingJitterConfig {
            enabled: true,
            ..TimingJitterConfig::default()
        }
    );
    assert_eq!(partial.constant_rate.messages_per_minute, 3.0);
    assert_eq!(partial.batching, BatchingConfig::default());
}

#[test]
fn unknown_names_are_errors() {
    assert!(
        serde_json::from_str::<TrafficAnalysisMitigationConfig>(r#"{"privacy_level": "max"}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<TrafficAnalysisMitigationConfig>(
            r#"{"jitter": {"distribution": "gaussian"}}"#
        )
        .is_err()
    );
}

#[test]
fn validate_reports_each_problem() {
    let mut c = PRIVACY_MEDIUM;
    c.batching.min_batch_size = 5;
    assert_eq!(
        c.validate(),
        Err(PrivacyConfigError::BatchSize {
            min_batch_size: 5,
            max_batch_size: 4
        })
    );
    let mut c = PRIVACY_MEDIUM;
    c.batching.min_batch_size = 0;
    c.batching.max_batch_size = 0;
    assert!(matches!(
        c.validate(),
        Err(PrivacyConfigError::BatchSize { .. })
    ));
    let mut c = PRIVACY_MEDIUM;
    c.jitter.min_delay_ms = 600;
    assert_eq!(
        c.validate(),
        Err(PrivacyConfigError::JitterRange {
            min_delay_ms: 600,
            max_delay_ms: 500
        })
    );
    let mut c = PRIVACY_MEDIUM;
    c.constant_rate.messages_per_minute = 0.0;
    assert!(matches!(
        c.validate(),
        Err(PrivacyConfigError::SendRate { .. })
    ));
    let mut c = PRIVACY_MEDIUM;
    c.mix_network.min_hops = 6;
    assert_eq!(
        c.validate(),
        Err(PrivacyConfigError::MixHops {
            min_hops: 6,
            max_hops: 5
        })
    );
}

#[test]
fn validate_accepts_equal_bounds() {
    let mut c = PRIVACY_HIGH;
    c.jitter.min_delay_ms = 700;
    c.jitter.max_delay_ms = 700;
    c.batching.min_batch_size = 8;
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn config_errors_explain_themselves() {
    let err = PrivacyConfigError::JitterRange {
        min_delay_ms: 600,
        max_delay_ms: 500,
    };
    assert_eq!(err.to_string(), "jitter range 600..=500 ms is inverted");
    let err = PrivacyConfigError::SendRate {
        messages_per_minute: -1.0,
    };
    assert_eq!(
        err.to_string(),
        "constant rate of -1 messages a minute is not a positive number"
    );
}

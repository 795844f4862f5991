//! The content sizes a node sends: a comma-separated list (`1,1k,64k,1m`; `k` = 1024,
//! `m` = 1048576), from which each message takes one at random.

use anyhow::{Context, bail};

/// The largest content a node sends (what the tests ask for: 1 MiB).
pub const MAX_SIZE: usize = 1 << 20;

/// Parses a size list.
///
/// # Errors
/// An empty list, a malformed size, or one over [`MAX_SIZE`].
pub fn parse_sizes(text: &str) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        let (digits, unit) = match lower.strip_suffix('k') {
            Some(d) => (d, 1024),
            None => match lower.strip_suffix('m') {
                Some(d) => (d, 1 << 20),
                None => (lower.as_str(), 1),
            },
        };
        let n: usize = digits.parse().with_context(|| format!("size {part:?}"))?;
        let size = n.checked_mul(unit).context("size overflows")?;
        if size > MAX_SIZE {
            bail!("size {part} is over the {MAX_SIZE}-byte maximum");
        }
        out.push(size);
    }
    if out.is_empty() {
        bail!("no sizes in {text:?}");
    }
    Ok(out)
}

/// Parses a privacy level by its reference name (`low`, `medium`, `high`, `paranoid`).
///
/// # Errors
/// An unknown name.
pub fn parse_privacy(text: &str) -> anyhow::Result<ournet_proto::privacy::PrivacyLevel> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase()))
        .with_context(|| format!("privacy level {text:?} (low, medium, high or paranoid)"))
}

/// Parses a mix hop range `MIN-MAX` (`4-5`, or `5` for `5-5`) into the privacy config of
/// `level` with mixing on over it, validated (3 to 5 hops).
///
/// # Errors
/// A malformed range, or one the privacy config refuses.
pub fn mix_config(
    level: ournet_proto::privacy::PrivacyLevel,
    hops: &str,
) -> anyhow::Result<ournet_proto::privacy::TrafficAnalysisMitigationConfig> {
    let (lo, hi) = hops.split_once('-').unwrap_or((hops, hops));
    let parse = |h: &str| {
        h.trim()
            .parse::<u32>()
            .with_context(|| format!("mix hops {hops:?}"))
    };
    let mut config =
        ournet_proto::privacy::TrafficAnalysisMitigationConfig::from_privacy_level(level);
    config.mix_network.enabled = true;
    config.mix_network.min_hops = parse(lo)?;
    config.mix_network.max_hops = parse(hi)?;
    config
        .validate()
        .with_context(|| format!("mix hops {hops:?}"))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(
            parse_sizes("1, 1k,64K,1m").unwrap(),
            vec![1, 1024, 65_536, 1 << 20]
        );
        assert!(parse_sizes("").is_err());
        assert!(parse_sizes("2m").is_err());
        assert!(parse_sizes("12x").is_err());
        assert_eq!(parse_privacy("PARANOID").unwrap().as_str(), "paranoid");
        assert!(parse_privacy("max").is_err());
        let low = ournet_proto::privacy::PrivacyLevel::Low;
        let m = mix_config(low, "4-5").unwrap().mix_network;
        assert!(m.enabled && m.min_hops == 4 && m.max_hops == 5);
        assert_eq!(mix_config(low, "5").unwrap().mix_network.min_hops, 5);
        assert!(mix_config(low, "3-6").is_err(), "above the onion's 5 hops");
        assert!(mix_config(low, "5-4").is_err());
        assert!(mix_config(low, "x").is_err());
    }
}

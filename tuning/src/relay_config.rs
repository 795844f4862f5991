//! The few relay settings the checker judges, read from the relay's TOML file.
//!
//! This crate depends on no crate of ours (STYLE.md §1), so it reads the keys it needs and
//! ignores the rest; a missing key takes the relay's default (`relay/src/config.rs`: one worker
//! per core, pinned, backend `auto`, 20,000 connections). Whether the relay accepts the whole
//! file is the relay's business (and `deploy/`'s test checks the example with the relay's own
//! type).

use std::path::Path;

use serde::Deserialize;

use crate::snapshot::RelaySettings;

/// Why the relay config could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not TOML, or a key has the wrong type.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The TOML error.
        source: toml::de::Error,
    },
}

/// Reads `path`.
///
/// # Errors
/// [`RelayConfigError`] when the file is unreadable or not valid TOML for these keys.
pub fn read(path: &Path) -> Result<RelaySettings, RelayConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RelayConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text).map_err(|source| RelayConfigError::Parse {
        path: shown,
        source,
    })
}

/// Parses the TOML text of a relay config named `path`.
///
/// # Errors
/// The TOML error.
pub fn parse(path: &str, text: &str) -> Result<RelaySettings, toml::de::Error> {
    let file: File = toml::from_str(text)?;
    Ok(RelaySettings {
        path: path.to_owned(),
        workers: file.workers,
        pin_cores: file.pin_cores,
        backend: file.backend,
        max_connections: file.limits.max_connections,
    })
}

/// The keys read; the defaults are the relay's.
#[derive(Deserialize)]
#[serde(default)]
struct File {
    workers: usize,
    pin_cores: bool,
    backend: String,
    limits: FileLimits,
}

impl Default for File {
    fn default() -> Self {
        Self {
            workers: 0,
            pin_cores: true,
            backend: "auto".to_owned(),
            limits: FileLimits::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct FileLimits {
    max_connections: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_the_relay_defaults_and_other_keys_are_ignored() {
        let s = parse(
            "r.toml",
            "listen = \"0.0.0.0:9001\"\n[offline]\nmax_nodes = 5\n",
        )
        .unwrap();
        assert_eq!(
            (s.workers, s.pin_cores, s.backend.as_str()),
            (0, true, "auto")
        );
        assert_eq!(s.max_connections, 20_000);
        let s = parse(
            "r.toml",
            "workers = 6\npin_cores = false\n[limits]\nmax_connections = 9\n",
        )
        .unwrap();
        assert_eq!((s.workers, s.pin_cores, s.max_connections), (6, false, 9));
        assert!(parse("r.toml", "workers = \"many\"").is_err());
    }
}

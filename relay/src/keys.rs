//! The relay's long-term keys (PROTOCOL.md §2): Ed25519 identity, X25519 onion key (circuit
//! handshake) and X25519 link key (Noise static key), generated on first start.
//!
//! Each secret is 32 raw bytes in its own file in the data directory: `identity.key`,
//! `onion.key`, `link.key`. The directory is created mode 0700 and the files 0600, written
//! with `O_EXCL` so two relays started on one directory cannot both generate; a key file with
//! wider permissions is refused, as ssh does. Onion key rotation is not done yet (the
//! handshake already accepts a list of onion keys).

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::link::LinkIdentity;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// The relay's keys, loaded or generated.
pub struct RelayKeys {
    /// The Ed25519 identity (its public key in hex is the router id).
    pub identity: IdentityKeypair,
    /// The X25519 onion key of the circuit handshake.
    pub onion: EncryptionKeypair,
    /// The link identity: identity, X25519 link key and the certificate binding them.
    pub link: LinkIdentity,
}

impl std::fmt::Debug for RelayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelayKeys({})", self.identity.public())
    }
}

/// Why keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading, creating or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A key file is not 32 bytes.
    #[error("{0}: not a 32-byte key")]
    BadLength(PathBuf),
    /// A key file is readable or writable by others.
    #[error("{0}: permissions too open (want 0600)")]
    Permissions(PathBuf),
}

impl RelayKeys {
    /// Loads the keys from `dir`, generating any that are missing with `rng`.
    ///
    /// # Errors
    /// [`KeyFileError`] on IO failure, a malformed key or loose permissions.
    pub fn load_or_generate(
        dir: &Path,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self, KeyFileError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| io_err(dir, source))?;
        let identity_secret = secret(dir, "identity.key", rng)?;
        let onion_secret = secret(dir, "onion.key", rng)?;
        let link_secret = secret(dir, "link.key", rng)?;
        Ok(Self::new(
            IdentityKeypair::from_secret_bytes(&identity_secret),
            EncryptionKeypair::from_secret_bytes(&onion_secret),
            EncryptionKeypair::from_secret_bytes(&link_secret),
        ))
    }

    /// The keys from their three keypairs; the link identity certifies `link_key` under
    /// `identity`.
    pub fn new(
        identity: IdentityKeypair,
        onion: EncryptionKeypair,
        link_key: EncryptionKeypair,
    ) -> Self {
        let link = LinkIdentity::new(
            IdentityKeypair::from_secret_bytes(&identity.secret_bytes()),
            link_key,
        );
        Self {
            identity,
            onion,
            link,
        }
    }
}

fn secret(
    dir: &Path,
    name: &str,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let path = dir.join(name);
    let mut key = Zeroizing::new([0u8; 32]);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            rng.fill_bytes(&mut *key);
            file.write_all(&*key)
                .and_then(|()| file.sync_all())
                .map_err(|source| io_err(&path, source))?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(io_err(&path, source)),
    }
    let mut file = OpenOptions::new()
        .read(true)
        .open(&path)
        .map_err(|source| io_err(&path, source))?;
    let meta = file.metadata().map_err(|source| io_err(&path, source))?;
    if meta.mode() & 0o077 != 0 {
        return Err(KeyFileError::Permissions(path));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(33));
    Read::take(&mut file, 33)
        .read_to_end(&mut bytes)
        .map_err(|source| io_err(&path, source))?;
    if bytes.len() != 32 {
        return Err(KeyFileError::BadLength(path));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

fn io_err(path: &Path, source: std::io::Error) -> KeyFileError {
    KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ournet-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_are_generated_once_with_private_modes_and_reloaded() {
        let dir = tempdir("gen");
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = RelayKeys::load_or_generate(&dir, &mut rng).unwrap();
        let b = RelayKeys::load_or_generate(&dir, &mut rng).unwrap();
        assert_eq!(a.identity.public(), b.identity.public());
        assert_eq!(a.link.link_public(), b.link.link_public());
        assert_eq!(a.onion.public(), b.onion.public());
        for name in ["identity.key", "onion.key", "link.key"] {
            let mode = std::fs::metadata(dir.join(name)).unwrap().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loose_permissions_and_bad_lengths_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("bad");
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        RelayKeys::load_or_generate(&dir, &mut rng).unwrap();
        let id = dir.join("identity.key");
        std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            RelayKeys::load_or_generate(&dir, &mut rng),
            Err(KeyFileError::Permissions(_))
        ));
        std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&id, [1u8; 31]).unwrap();
        assert!(matches!(
            RelayKeys::load_or_generate(&dir, &mut rng),
            Err(KeyFileError::BadLength(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

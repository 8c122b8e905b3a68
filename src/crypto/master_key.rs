use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::{CryptoError, b64url, random_bytes};

/// The environment variable that carries the master key instead of the file.
pub const MASTER_KEY_ENV: &str = "WARRANT_MASTER_KEY";

/// The AES-256-GCM key under which every private key is sealed at rest.
pub struct MasterKey {
    key: RandomizedNonceKey,
    id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "the master key file {0} does not exist, but the database holds keys sealed under a master key; restore the file or set {MASTER_KEY_ENV}"
    )]
    Missing(PathBuf),
    #[error("the master key in {0} is not 32 bytes of base64")]
    Malformed(String),
    #[error("the master key file {0} can be read by other users (mode {1:o}); run `chmod 600 {0}`")]
    TooOpen(PathBuf, u32),
    #[error("cannot use the master key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| CryptoError("cannot build the AES-256-GCM key"))?;
        // A short public fingerprint, so an error can say "sealed under key X,
        // you gave key Y" without revealing anything about the key.
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"warrant master key id\0");
        ctx.update(bytes);
        let id = b64url(&ctx.finish().as_ref()[..9]);
        Ok(Self { key, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads the key from `WARRANT_MASTER_KEY` if set, else from `path`.
    /// A missing file is created (mode 0600) only when `may_create` is true:
    /// the caller says false when sealed keys already exist, because a fresh
    /// master key could never open them.
    pub fn load(path: &Path, may_create: bool) -> Result<(Self, bool), MasterKeyError> {
        if let Ok(value) = std::env::var(MASTER_KEY_ENV) {
            return Ok((Self::decode(&value, MASTER_KEY_ENV)?, false));
        }
        Self::load_file(path, may_create)
    }

    /// [`load`](Self::load) from the file only, whatever the environment says.
    pub fn load_file(path: &Path, may_create: bool) -> Result<(Self, bool), MasterKeyError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                Ok((Self::decode(&text, &path.display().to_string())?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !may_create {
                    return Err(MasterKeyError::Missing(path.to_owned()));
                }
                Ok((Self::create(path)?, true))
            }
            Err(source) => Err(MasterKeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn decode(text: &str, origin: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| MasterKeyError::Malformed(origin.to_owned()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| MasterKeyError::Malformed(origin.to_owned()))?;
        Ok(Self::from_bytes(&bytes)?)
    }

    fn create(path: &Path) -> Result<Self, MasterKeyError> {
        let io_err = |source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = random_bytes::<32>()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io_err)?;
        }
        let mut file = open_new_private(path).map_err(io_err)?;
        file.write_all(format!("{}\n", b64url(&bytes)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_err)?;
        Ok(Self::from_bytes(&bytes)?)
    }

    /// Seals `plaintext`; the result is `nonce || ciphertext || tag`. `aad`
    /// binds the ciphertext to its row, so sealed values cannot be swapped.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| CryptoError("sealing failed"))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError("sealed value is too short"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CryptoError("sealed value has a bad nonce"))?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| CryptoError("cannot open a sealed value with this master key"))?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), MasterKeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path)
        .map_err(|source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::TooOpen(path.to_owned(), mode & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), MasterKeyError> {
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

fn open_new_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_aad() {
        let key = MasterKey::from_bytes(&[7; 32]).unwrap();
        let sealed = key.seal(b"kid-1", b"private").unwrap();
        assert_eq!(key.open(b"kid-1", &sealed).unwrap(), b"private");
        assert!(key.open(b"kid-2", &sealed).is_err());
        let other = MasterKey::from_bytes(&[8; 32]).unwrap();
        assert!(other.open(b"kid-1", &sealed).is_err());
        assert_ne!(key.id(), other.id());
    }

    #[test]
    fn a_created_key_file_is_private_and_loads_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let (created, was_created) = MasterKey::load(&path, true).unwrap();
        assert!(was_created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (loaded, was_created) = MasterKey::load(&path, false).unwrap();
        assert!(!was_created);
        assert_eq!(created.id(), loaded.id());
    }

    #[test]
    fn a_missing_file_is_an_error_when_creation_is_not_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let err = MasterKey::load(&dir.path().join("master.key"), false).unwrap_err();
        assert!(matches!(err, MasterKeyError::Missing(_)));
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load(&path, true).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load(&path, false).unwrap_err();
        assert!(matches!(err, MasterKeyError::TooOpen(..)), "{err}");
    }
}

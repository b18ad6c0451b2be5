//! The encryption hook.
//!
//! spec: encryption.hook — applied per chunk to the whole encoded SDS message after SDS, removed
//! before SDS on ingress. The library imposes no scheme; with no hook, messages go as plaintext.

/// Why the hook refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CryptoError(pub String);

/// A pluggable encrypt/decrypt pair (the spec's `IEncryption`). Called on the runtime thread.
pub trait Encryption: Send + Sync {
    /// Encrypts one encoded SDS message of `channel_id`.
    fn encrypt(&self, channel_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Decrypts one received payload of `channel_id`.
    fn decrypt(&self, channel_id: &str, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

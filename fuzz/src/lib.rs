//! Shared pieces of the fuzz targets in `fuzz_targets/`: the structure-aware operations fed to a
//! [`Channel`](reliable_channel::channel::Channel), the builders that turn them into WakuMessages,
//! the event ledger that checks the channel's promises after every step, and the golden vectors
//! of `tests/vectors/` (embedded, so that targets and the `seed` bin need no files at run time).
//!
//! | module      | concern                                                                      |
//! |-------------|------------------------------------------------------------------------------|
//! | `ops`       | the fuzzer's vocabulary (`arbitrary` derive): messages, chains, sends, time    |
//! | `forge`     | ops → SDS messages → (encrypted) WakuMessages                                 |
//! | `ledger`    | events seen so far and the invariants they must keep                          |
//! | `node`      | a channel and its driver's bookkeeping (dispatches, retrievals, timers)      |
//! | `victim`    | one channel under attack (target `channel_ingest`)                             |
//! | `pair`      | two honest channels, a lossy network and an adversary (target `channel_pair`)  |
//! | `vectors`   | the golden SDS messages and WakuMessages                                       |

pub mod forge;
pub mod ledger;
pub mod node;
pub mod ops;
pub mod pair;
pub mod vectors;
pub mod victim;

use std::sync::atomic::{AtomicU32, Ordering};

use reliable_channel::channel::{ChannelConfig, CryptoError, Encryption};
use sha2::{Digest as _, Sha256};

/// Start of virtual time (Unix ms).
pub const T0: u64 = 1_700_000_000_000;
/// The channel every target uses.
pub const CHANNEL: &str = "fuzz-channel";
/// Its content topic.
pub const TOPIC: &str = "/fuzz/1/chat/proto";
/// The pubsub topic message hashes are computed on.
pub const PUBSUB: &str = "/waku/2/rs/0/0";
/// Chunk size of the channels under test: 16 chunks per 1 MiB message, so that the SDS incoming
/// bound derived from it (two maximal messages = 32 messages) is reachable within one input.
pub const CHUNK_SIZE: usize = 65_536;
/// Operations executed per input. Each creates at most [`ops::MAX_CHAIN_CHUNKS`] incoming message
/// keys, below the reassembler's memory of finished keys (1,024), so the at-most-once checks of
/// [`ledger::Ledger`] are exact within one input.
pub const MAX_OPS: usize = 96;

/// Knobs of one run, chosen by the fuzzer before its operations.
#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
pub struct Profile {
    /// RLN budget of 5 messages per 1 s epoch (else unlimited).
    pub rate_limit: bool,
    /// Bloom filter in every content message.
    pub always_send_bloom: bool,
    /// `causalHistorySize` = this % 5.
    pub causal_history_size: u8,
    /// `maxRetransmissions` = this % 4.
    pub max_retransmissions: u8,
    /// Encryption hook ([`ToyCipher`]) on the channels; injected messages are sealed with it.
    pub encryption: bool,
    /// Make the hook refuse every n-th encryption (n = this % 8; 0 = never).
    pub encrypt_failure_every: u8,
    /// Seed of the channels' randomness (chunk ids, jitter).
    pub seed: u64,
}

/// Local log of the channels under test: more entries than one input can deliver (at most
/// [`MAX_OPS`] operations of at most 9 messages), so that SDS dedup spans the whole input and the
/// at-most-once checks are exact. (Past the log, a replayed message is new to SDS by design.)
pub const MAX_LOCAL_HISTORY: usize = 1_024;
/// Acknowledgement timeout of the channels under test (ms).
pub const ACK_TIMEOUT_MS: u64 = 2_000;
/// Dependency timeout of the channels under test (ms).
pub const DEPENDENCY_TIMEOUT_MS: u64 = 30_000;
/// RLN epoch of the channels under test when rate limiting is on (ms).
pub const EPOCH_MS: u64 = 1_000;

impl Profile {
    /// The channel configuration of this run: tight bounds (4 partial messages, 32 waiting SDS
    /// messages, 128 missing dependencies, 64 pending chunks) so that inputs of a few kilobytes
    /// reach every limit.
    pub fn config(&self) -> ChannelConfig {
        let json = format!(
            r#"{{
            "segmentationConfig": {{"chunkSizeBytes": {CHUNK_SIZE}, "reassemblyMaxBytes": 1048576, "reassemblyMaxMessages": 4, "reassemblyExpiryMs": 60000}},
            "sdsConfig": {{"maxLocalHistory": {MAX_LOCAL_HISTORY}, "dependencyTimeoutMs": {DEPENDENCY_TIMEOUT_MS}, "acknowledgementTimeoutMs": {ACK_TIMEOUT_MS},
                          "maxRetransmissions": {}, "causalHistorySize": {}, "syncIntervalMs": 5000}},
            "sendQueue": {{"maxPendingChunks": 64, "maxPendingBytes": 2097152}},
            "rateLimitConfig": {{"enabled": {}, "epochSizeMs": {EPOCH_MS}, "messagesPerEpoch": 5, "accounting": "allMessages"}}
        }}"#,
            self.max_retransmissions % 4,
            self.causal_history_size % 5,
            self.rate_limit,
        );
        let mut c = ChannelConfig::default().with_json(Some(&json)).expect("the fuzz profile's config is valid");
        c.sds.always_send_bloom = self.always_send_bloom;
        c.sds.max_incoming_messages = 32;
        c.sds.max_incoming_bytes = 3 * 1024 * 1024;
        c.sds.max_missing = 128;
        c
    }

    /// The encryption hook of this run, if any.
    pub fn cipher(&self) -> Option<ToyCipher> {
        self.encryption.then(|| ToyCipher::new(self.encrypt_failure_every % 8))
    }
}

/// An authenticated toy "cipher": a magic byte, the plaintext, and an 8-byte SHA-256 tag of it.
/// Mutated ciphertexts fail to decrypt (as with a real AEAD), so garbage exercises the
/// decryption-failure path; the fuzzer's own messages are sealed with [`ToyCipher::seal`]. No
/// byte-wise loops: harness code is instrumented too, and per-byte work would dominate.
#[derive(Debug)]
pub struct ToyCipher {
    fail_every: u32,
    calls: AtomicU32,
}

const TOY_MAGIC: u8 = 0xe7;
const TOY_TAG: usize = 8;

fn tag(plain: &[u8]) -> [u8; TOY_TAG] {
    let digest = Sha256::digest(plain);
    digest[..TOY_TAG].try_into().expect("8 of 32 bytes")
}

impl ToyCipher {
    /// A cipher that refuses every `fail_every`-th encryption (0 = never).
    pub fn new(fail_every: u8) -> Self {
        ToyCipher { fail_every: fail_every as u32, calls: AtomicU32::new(0) }
    }

    /// Encrypts without counting towards refusals (the fuzzer's own messages).
    pub fn seal(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + plain.len() + TOY_TAG);
        out.push(TOY_MAGIC);
        out.extend_from_slice(plain);
        out.extend_from_slice(&tag(plain));
        out
    }

    /// Decrypts, checking the magic byte and the tag.
    pub fn open(cipher: &[u8]) -> Result<&[u8], CryptoError> {
        let (Some((&TOY_MAGIC, rest)), true) = (cipher.split_first(), cipher.len() > TOY_TAG) else {
            return Err(CryptoError("not sealed".into()));
        };
        let (plain, t) = rest.split_at(rest.len() - TOY_TAG);
        if tag(plain) != t {
            return Err(CryptoError("bad tag".into()));
        }
        Ok(plain)
    }
}

impl Encryption for ToyCipher {
    fn encrypt(&self, _channel_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_every != 0 && n.is_multiple_of(self.fail_every) {
            return Err(CryptoError("refused by the fuzz profile".into()));
        }
        Ok(Self::seal(plaintext))
    }

    fn decrypt(&self, _channel_id: &str, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Self::open(ciphertext).map(<[u8]>::to_vec)
    }
}

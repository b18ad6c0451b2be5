//! Message ids: content and ephemeral ids derived from sender, wrap time and content; sync ids drawn
//! at random.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use sha2::{Digest as _, Sha256};

use super::{MessageId, MessageIdScheme};
use crate::wire::keccak::keccak256;

/// Random base-36 characters of a sync message id (after `sync-`), as @waku/sds draws them.
const SYNC_ID_CHARS: usize = 11;

/// Strictly increasing wrap times (ns) of one sender on one channel, shared by the threads that
/// prepare its sends: equal payloads sent within one clock tick still get distinct ids.
#[derive(Debug, Default)]
pub struct WrapClock {
    last_ns: AtomicU64,
}

impl WrapClock {
    /// `now_ns`, or one more than the previous stamp if that is not later.
    pub fn stamp(&self, now_ns: u64) -> u64 {
        let mut last = self.last_ns.load(Ordering::Relaxed);
        loop {
            let next = now_ns.max(last.saturating_add(1));
            match self.last_ns.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The latest stamp handed out (0 before the first).
    pub fn last(&self) -> u64 {
        self.last_ns.load(Ordering::Relaxed)
    }

    /// Restore: every later stamp is above `ns` (a stored bound; never lowers the clock).
    pub fn raise_to(&self, ns: u64) {
        self.last_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

/// spec: sds.message-id — the id of a content or ephemeral message: keccak256 of the sender id,
/// the wrap time in nanoseconds (decimal ASCII; callers keep it strictly increasing per sender,
/// so two equal payloads get distinct ids) and the content, as 64 hex digits; or the reference
/// implementation's sha256(content). A pure function: the manager computes it on the thread that
/// calls `send`, where the pass over the payload costs the runtime thread nothing.
pub fn message_id(scheme: MessageIdScheme, sender_id: &str, wrap_ns: u64, content: &[u8]) -> MessageId {
    match scheme {
        MessageIdScheme::Keccak => hex_id(&keccak256(&[sender_id.as_bytes(), decimal(wrap_ns, &mut [0; 20]), content])),
        MessageIdScheme::ReferenceSha256 => hex_id(&Sha256::digest(content)),
    }
}

/// The id of a sync message: `sync-` and random base-36 characters. Syncs are never stored or
/// referenced, so the id only has to differ from the sender's other syncs.
pub(super) fn sync_id(rng: &mut impl Rng) -> MessageId {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(5 + SYNC_ID_CHARS);
    id.push_str("sync-");
    id.extend((0..SYNC_ID_CHARS).map(|_| ALPHABET[rng.gen_range(0..36)] as char));
    id.into()
}

/// `n` in decimal ASCII, written into `buf` (no allocation: this runs once per message).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn hex_id(digest: &[u8]) -> MessageId {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(digest, &mut buf).expect("32-byte digest");
    std::str::from_utf8(&buf).expect("hex is ASCII").into()
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn decimal_matches_to_string() {
        for n in [0u64, 7, 10, 1_700_000_000_000_000_000, 10_000_000_000_000_000_000, 10_000_000_000_000_000_007, u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }

    #[test]
    fn stamps_strictly_increase_even_when_the_clock_does_not() {
        let c = WrapClock::default();
        assert_eq!(c.stamp(100), 100);
        assert_eq!(c.stamp(100), 101);
        assert_eq!(c.stamp(50), 102);
        assert_eq!(c.stamp(500), 500);
    }

    #[test]
    fn sync_ids_are_prefixed_base36() {
        let mut rng = SmallRng::seed_from_u64(7);
        let (a, b) = (sync_id(&mut rng), sync_id(&mut rng));
        assert_ne!(a, b);
        for id in [a, b] {
            let rest = id.strip_prefix("sync-").expect("prefix");
            assert_eq!(rest.len(), SYNC_ID_CHARS);
            assert!(rest.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()), "{id}");
        }
    }
}

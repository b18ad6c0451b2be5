//! The sending side of a channel, shared with the threads that call `send`: the one check of a
//! send, the pending counts it reserves, and the part of a send that needs no channel state
//! (segmentation and the SDS message id of every chunk).
//!
//! A send goes [`Outbox::reserve`] → [`Reservation::prepare`] → [`super::Channel::send_prepared`].
//! The manager runs the first two on the thread that calls `send`, so that the runtime thread
//! (which every message of every channel of a manager goes through) only wraps, encrypts and
//! dispatches: the Keccak-256 pass over the payload, the largest per-message cost of the
//! pipeline, runs in parallel with the runtime instead of in front of it. [`super::Channel::send`]
//! runs the same three steps on one thread.
//!
//! The pending counts have one owner: the [`Reservation`]s. A send holds its reservation until it
//! is final (its state in the channel drops it), or until it is abandoned before reaching the
//! channel; dropping it gives the room back.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::RngCore;

use super::config::ChannelConfig;
use super::SendError;
use crate::sds::{message_id, MessageId, WrapClock};
use crate::segmentation::{chunk_count, segment, SegmentError, MAX_PAYLOAD_BYTES};

/// The sending side of one channel. Shared (`Arc`) between the channel and the threads that
/// call `send`; every method may be called from any thread.
#[derive(Debug)]
pub struct Outbox {
    config: ChannelConfig,
    sender_id: Arc<str>,
    /// The channel's SDS engine's clock: ids prepared here never collide with the engine's own.
    clock: Arc<WrapClock>,
    /// Chunks and payload bytes of the live reservations.
    pending: Mutex<(usize, usize)>,
}

impl Outbox {
    pub(super) fn new(config: ChannelConfig, sender_id: &str, clock: Arc<WrapClock>) -> Arc<Self> {
        Arc::new(Outbox { config, sender_id: sender_id.into(), clock, pending: Mutex::new((0, 0)) })
    }

    /// The channel's configuration.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// Our sender id on this channel.
    pub fn sender_id(&self) -> &Arc<str> {
        &self.sender_id
    }

    /// Chunks and payload bytes of the sends accepted and not yet final (including those still
    /// on their way to the channel).
    pub fn pending(&self) -> (usize, usize) {
        *self.pending.lock()
    }

    /// spec: send + send.backpressure — the one check of a send of `len` bytes, in the order a
    /// user expects: empty, too large, queue full. On success the room stays reserved until the
    /// returned [`Reservation`] is dropped.
    pub fn reserve(self: &Arc<Self>, len: usize) -> Result<Reservation, SendError> {
        if len == 0 {
            return Err(SendError::Empty);
        }
        if len > MAX_PAYLOAD_BYTES {
            return Err(SendError::TooLarge { len, max: MAX_PAYLOAD_BYTES });
        }
        let chunks = chunk_count(len, self.config.chunk_size_bytes);
        let mut pending = self.pending.lock();
        let (pending_chunks, pending_bytes) = *pending;
        if pending_chunks + chunks > self.config.max_pending_chunks || pending_bytes + len > self.config.max_pending_bytes {
            return Err(SendError::QueueFull {
                pending_chunks,
                pending_bytes,
                max_chunks: self.config.max_pending_chunks,
                max_bytes: self.config.max_pending_bytes,
            });
        }
        *pending = (pending_chunks + chunks, pending_bytes + len);
        Ok(Reservation { outbox: self.clone(), chunks, bytes: len })
    }

    /// The room of a send accepted before a restart (a durable channel's restore): taken even
    /// beyond the bounds, which only refuse new sends.
    pub(super) fn reserve_restored(self: &Arc<Self>, chunks: usize, bytes: usize) -> Reservation {
        let mut pending = self.pending.lock();
        *pending = (pending.0 + chunks, pending.1 + bytes);
        Reservation { outbox: self.clone(), chunks, bytes }
    }
}

/// Room for one send in its channel's pending bounds, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    outbox: Arc<Outbox>,
    chunks: usize,
    bytes: usize,
}

impl Reservation {
    /// Chunks of the send.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Payload bytes of the send.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Was this reserved on `outbox`?
    pub(super) fn is_for(&self, outbox: &Arc<Outbox>) -> bool {
        Arc::ptr_eq(&self.outbox, outbox)
    }

    /// spec: send — segments `payload` (of the reserved length) and computes each chunk's SDS
    /// message id, stamping every chunk with its own wrap time from the channel's clock.
    pub fn prepare(self, now_ns: u64, request_id: &str, payload: &[u8], ephemeral: bool, rng: &mut impl RngCore) -> Result<PreparedSend, SendError> {
        if payload.len() != self.bytes {
            return Err(SendError::NotReserved { len: payload.len(), reserved: self.bytes });
        }
        let outbox = &self.outbox;
        let frames = segment(payload, outbox.config.chunk_size_bytes, request_id, rng).map_err(|e| match e {
            SegmentError::Empty => SendError::Empty,
            SegmentError::TooLarge { len, max } => SendError::TooLarge { len, max },
            other => SendError::Segmentation(other.to_string()),
        })?;
        let scheme = outbox.config.sds.message_id_scheme;
        let chunks: Vec<PreparedChunk> = frames
            .into_iter()
            .map(|frame| {
                let id = message_id(scheme, &outbox.sender_id, outbox.clock.stamp(now_ns), &frame);
                PreparedChunk { frame: Bytes::from(frame), id }
            })
            .collect();
        debug_assert_eq!(chunks.len(), self.chunks, "segment and chunk_count agree");
        Ok(PreparedSend { request_id: request_id.into(), ephemeral, chunks, reservation: self })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut pending = self.outbox.pending.lock();
        pending.0 -= self.chunks;
        pending.1 -= self.bytes;
    }
}

/// One chunk of a prepared send: its `MessageChunk` frame and the SDS id it will carry.
#[derive(Debug, Clone)]
pub struct PreparedChunk {
    pub frame: Bytes,
    pub id: MessageId,
}

/// A payload segmented and identified, holding its reservation, ready for
/// [`super::Channel::send_prepared`].
#[derive(Debug)]
pub struct PreparedSend {
    /// Shared: the channel keys its send state by it, the driver names it in a SEND_ERROR.
    pub(super) request_id: Arc<str>,
    pub(super) ephemeral: bool,
    pub(super) chunks: Vec<PreparedChunk>,
    pub(super) reservation: Reservation,
}

impl PreparedSend {
    /// The send's RequestId.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn outbox(cfg: ChannelConfig) -> Arc<Outbox> {
        Outbox::new(cfg, "alice", Arc::default())
    }

    fn prepare(o: &Arc<Outbox>, now_ns: u64, rid: &str, payload: &[u8], rng: &mut SmallRng) -> Result<PreparedSend, SendError> {
        o.reserve(payload.len())?.prepare(now_ns, rid, payload, false, rng)
    }

    #[test]
    fn equal_payloads_get_distinct_ids_and_ids_match_the_engine_formula() {
        let o = outbox(ChannelConfig { chunk_size_bytes: 4, ..ChannelConfig::default() });
        let mut rng = SmallRng::seed_from_u64(1);
        let a = prepare(&o, 7, "r1", b"0123456789", &mut rng).unwrap();
        let b = prepare(&o, 7, "r2", b"0123456789", &mut rng).unwrap();
        assert_eq!(a.chunks.len(), 3);
        assert_eq!(a.reservation.bytes(), 10);
        let mut ids: Vec<&str> = a.chunks.iter().chain(&b.chunks).map(|c| &*c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6);
        // The first chunk was stamped 7 ns: the engine's formula over the same inputs.
        let first = &a.chunks[0];
        assert_eq!(first.id, message_id(o.config.sds.message_id_scheme, "alice", 7, &first.frame));
    }

    /// A prepared send is checked against the channel it is handed to: one prepared on another
    /// channel's outbox, or with a request id in use, is refused.
    #[test]
    fn channel_checks_what_it_is_handed() {
        let other = outbox(ChannelConfig { chunk_size_bytes: 4, ..ChannelConfig::default() });
        let mut rng = SmallRng::seed_from_u64(1);
        let mut ch = super::super::Channel::new("c", "/t/1/c/proto", "alice", ChannelConfig::default(), 1_000, 7);
        let p = prepare(&other, 1, "r1", b"0123456789", &mut rng).unwrap();
        assert_eq!(ch.send_prepared(1_000, p), Err(SendError::OtherChannel));
        let ours = ch.outbox().clone();
        let p = prepare(&ours, 2, "r2", b"hello", &mut rng).unwrap();
        ch.send_prepared(1_000, p).unwrap();
        let p = prepare(&ours, 3, "r2", b"hello", &mut rng).unwrap();
        assert_eq!(ch.send_prepared(1_000, p), Err(SendError::DuplicateRequestId("r2".into())));
        // The refused send gave its room back; the accepted one holds its own.
        assert_eq!(ch.pending(), (1, 5));
    }

    #[test]
    fn refuses_empty_oversized_and_over_the_pending_bounds_in_that_order() {
        let o = outbox(ChannelConfig { max_pending_chunks: 2, ..ChannelConfig::default() });
        assert_eq!(o.reserve(0).unwrap_err(), SendError::Empty);
        let too_big = MAX_PAYLOAD_BYTES + 1;
        assert_eq!(o.reserve(too_big).unwrap_err(), SendError::TooLarge { len: too_big, max: MAX_PAYLOAD_BYTES });
        let a = o.reserve(1).unwrap();
        let b = o.reserve(1).unwrap();
        assert!(matches!(o.reserve(1), Err(SendError::QueueFull { pending_chunks: 2, pending_bytes: 2, .. })));
        assert_eq!(o.reserve(too_big).unwrap_err(), SendError::TooLarge { len: too_big, max: MAX_PAYLOAD_BYTES });
        drop(a);
        assert_eq!(o.pending(), (1, 1));
        let c = o.reserve(1).unwrap();
        drop((b, c));
        assert_eq!(o.pending(), (0, 0));
    }

    /// One wrap clock per channel: the outbox stamps with the SDS engine's own clock.
    #[test]
    fn the_outbox_and_the_engine_share_one_wrap_clock() {
        let ch = super::super::Channel::new("c", "/t/1/c/proto", "alice", ChannelConfig::default(), 1_000, 7);
        let mut rng = SmallRng::seed_from_u64(1);
        prepare(ch.outbox(), 5_000, "r", b"hello", &mut rng).unwrap();
        // The engine's clock has seen that stamp: the next one is later.
        assert_eq!(ch.sds().wrap_clock().stamp(0), 5_001);
    }

    #[test]
    fn a_payload_must_match_its_reservation() {
        let o = outbox(ChannelConfig::default());
        let mut rng = SmallRng::seed_from_u64(1);
        let r = o.reserve(3).unwrap();
        assert_eq!(r.prepare(1, "r", b"four", false, &mut rng).unwrap_err(), SendError::NotReserved { len: 4, reserved: 3 });
        assert_eq!(o.pending(), (0, 0));
    }
}

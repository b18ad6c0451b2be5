//! The part of a send that needs no channel state: segmentation and the SDS message id of every
//! chunk.
//!
//! The manager runs it on the thread that calls `send`, so that the runtime thread (which every
//! message of every channel of a manager goes through) only wraps, encrypts and dispatches. The
//! Keccak-256 pass over the payload is the largest per-message cost of the pipeline; done here, it
//! runs in parallel with the runtime instead of in front of it.

use std::sync::Arc;

use bytes::Bytes;
use rand::RngCore;

use super::config::ChannelConfig;
use super::SendError;
use crate::sds::{message_id, MessageId, WrapClock};
use crate::segmentation::{segment, SegmentError};

/// One chunk of a prepared send: its `MessageChunk` frame and the SDS id it will carry.
#[derive(Debug, Clone)]
pub struct PreparedChunk {
    pub frame: Bytes,
    pub id: MessageId,
}

/// A payload segmented and identified, ready for [`super::Channel::send_prepared`].
#[derive(Debug, Clone)]
pub struct PreparedSend {
    /// Shared: the channel keys its send state by it, the driver names it in a SEND_ERROR.
    pub request_id: Arc<str>,
    pub payload_len: usize,
    pub ephemeral: bool,
    pub chunks: Vec<PreparedChunk>,
}

/// spec: send — segments `payload` (refusing empty and oversized ones) and computes each chunk's
/// SDS message id, stamping every chunk with its own wrap time from `clock`.
#[allow(clippy::too_many_arguments)]
pub fn prepare_send(
    config: &ChannelConfig,
    sender_id: &str,
    clock: &WrapClock,
    now_ns: u64,
    request_id: &str,
    payload: &[u8],
    ephemeral: bool,
    rng: &mut impl RngCore,
) -> Result<PreparedSend, SendError> {
    let frames = segment(payload, config.chunk_size_bytes, request_id, rng).map_err(|e| match e {
        SegmentError::Empty => SendError::Empty,
        SegmentError::TooLarge { len, max } => SendError::TooLarge { len, max },
        other => SendError::Segmentation(other.to_string()),
    })?;
    let scheme = config.sds.message_id_scheme;
    let chunks = frames
        .into_iter()
        .map(|frame| {
            let id = message_id(scheme, sender_id, clock.stamp(now_ns), &frame);
            PreparedChunk { frame: Bytes::from(frame), id }
        })
        .collect();
    Ok(PreparedSend { request_id: request_id.into(), payload_len: payload.len(), ephemeral, chunks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn equal_payloads_get_distinct_ids_and_ids_match_the_engine_formula() {
        let cfg = ChannelConfig { chunk_size_bytes: 4, ..ChannelConfig::default() };
        let clock = WrapClock::default();
        let mut rng = SmallRng::seed_from_u64(1);
        let a = prepare_send(&cfg, "alice", &clock, 7, "r1", b"0123456789", false, &mut rng).unwrap();
        let b = prepare_send(&cfg, "alice", &clock, 7, "r2", b"0123456789", false, &mut rng).unwrap();
        assert_eq!(a.chunks.len(), 3);
        assert_eq!(a.payload_len, 10);
        let mut ids: Vec<&str> = a.chunks.iter().chain(&b.chunks).map(|c| &*c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6);
        // The first chunk was stamped 7 ns: the engine's formula over the same inputs.
        let first = &a.chunks[0];
        assert_eq!(first.id, message_id(cfg.sds.message_id_scheme, "alice", 7, &first.frame));
    }

    /// A prepared send is checked against the channel it is handed to: a chunk count that does
    /// not match the channel's segmentation, or a request id in use, is refused.
    #[test]
    fn channel_checks_what_it_is_handed() {
        let small = ChannelConfig { chunk_size_bytes: 4, ..ChannelConfig::default() };
        let clock = WrapClock::default();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut ch = super::super::Channel::new("c", "/t/1/c/proto", "alice", ChannelConfig::default(), 1_000, 7);
        let p = prepare_send(&small, "alice", &clock, 1, "r1", b"0123456789", false, &mut rng).unwrap();
        assert!(matches!(ch.send_prepared(1_000, p), Err(SendError::Segmentation(_))));
        let cfg = ChannelConfig::default();
        let p = prepare_send(&cfg, "alice", &clock, 2, "r2", b"hello", false, &mut rng).unwrap();
        ch.send_prepared(1_000, p.clone()).unwrap();
        assert_eq!(ch.send_prepared(1_000, p), Err(SendError::DuplicateRequestId("r2".into())));
    }

    #[test]
    fn refuses_empty_and_oversized_payloads() {
        let cfg = ChannelConfig::default();
        let clock = WrapClock::default();
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(prepare_send(&cfg, "a", &clock, 1, "r", b"", false, &mut rng).unwrap_err(), SendError::Empty);
        let big = vec![0u8; crate::segmentation::MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(prepare_send(&cfg, "a", &clock, 1, "r", &big, false, &mut rng), Err(SendError::TooLarge { .. })));
    }
}

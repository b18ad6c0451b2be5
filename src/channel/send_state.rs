//! The per-send state machine (the seed's `PendingMessagingRequest`, completed).
//!
//! One RequestId per send and one entry per chunk. A chunk is awaiting the rate limiter, then in
//! flight, then confirmed by the messaging layer, then (content only) acknowledged. The send is
//! final exactly once: DELIVERED when every chunk is acknowledged, SEND_ERROR when any chunk fails
//! dispatch, encryption or acknowledgement; an ephemeral send ends with SENT.

use crate::sds::MessageId;

/// One send in progress.
#[derive(Debug)]
pub(super) struct SendState {
    pub request_id: std::sync::Arc<str>,
    /// SDS message id of each chunk wrapped so far, by chunk index (content chunks are wrapped
    /// when the rate limiter releases them, so this fills up as the send is dispatched).
    pub chunks: Vec<MessageId>,
    /// Number of chunks of the send.
    pub total: usize,
    /// Payload bytes (for backpressure accounting).
    pub bytes: usize,
    /// Chunks whose first dispatch the messaging layer confirmed.
    pub confirmed: usize,
    /// Chunks acknowledged end to end.
    pub acked: usize,
    pub sent_emitted: bool,
}

impl SendState {
    pub fn all_confirmed(&self) -> bool {
        self.confirmed == self.total
    }
    pub fn all_acked(&self) -> bool {
        self.acked == self.total
    }
}

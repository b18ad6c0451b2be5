//! The per-send state machine (the seed's `PendingMessagingRequest`, completed).
//!
//! One RequestId per send and one entry per chunk. A chunk is awaiting the rate limiter, then in
//! flight, then confirmed by the messaging layer, then (content only) acknowledged. The send is
//! final exactly once: DELIVERED when every chunk is acknowledged, SEND_ERROR when any chunk fails
//! dispatch, encryption or acknowledgement; an ephemeral send ends with SENT.

use std::sync::Arc;

use super::outbox::Reservation;
use crate::sds::MessageId;

/// One send in progress.
#[derive(Debug)]
pub(super) struct SendState {
    pub request_id: Arc<str>,
    /// SDS message id of each chunk wrapped so far, by chunk index (content chunks are wrapped
    /// when the rate limiter releases them, so this fills up as the send is dispatched).
    pub chunks: Vec<MessageId>,
    /// The send's room in the pending bounds, held until the state is dropped (the send is final).
    reservation: Reservation,
    /// Chunks whose first dispatch the messaging layer confirmed.
    pub confirmed: usize,
    /// Chunks acknowledged end to end.
    pub acked: usize,
    pub sent_emitted: bool,
}

impl SendState {
    pub fn new(request_id: Arc<str>, reservation: Reservation) -> Self {
        let chunks = Vec::with_capacity(reservation.chunks());
        SendState { request_id, chunks, reservation, confirmed: 0, acked: 0, sent_emitted: false }
    }
    /// Number of chunks of the send.
    pub fn total(&self) -> usize {
        self.reservation.chunks()
    }
    pub fn all_confirmed(&self) -> bool {
        self.confirmed == self.total()
    }
    pub fn all_acked(&self) -> bool {
        self.acked == self.total()
    }
}

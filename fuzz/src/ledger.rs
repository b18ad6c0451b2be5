//! What a channel has told its application so far, and the promises those events must keep.
//! Every violation panics with a message naming the promise, which libFuzzer reports as a crash.
//!
//! * incoming: each (sender, request id) ends at most once, as one RECEIVED or one LOST (the
//!   reassembler's at-most-once memory, exact for inputs of [`crate::MAX_OPS`] operations); never
//!   a RECEIVED from our own sender id;
//! * outgoing: events only for requests we sent; at most one SENT; DELIVERED only for a
//!   non-ephemeral send; after the final event (DELIVERED, SEND_ERROR, or SENT of an ephemeral
//!   send) nothing more; `send` refuses a request id exactly while it is in use;
//! * backpressure: `pending()` equals the chunks and bytes of the sends not yet final;
//! * every bound of `Channel::bounds()` holds.
//!
//! The single-chunk message this target once found RECEIVED twice is replayed from
//! `fuzz/regressions/channel_ingest/` on every run.

use std::collections::HashMap;

use reliable_channel::channel::{Channel, ChannelEvent, SendError};
use reliable_channel::segmentation::chunk_count;

/// An own send as the ledger knows it.
#[derive(Debug, Clone)]
pub struct SendRecord {
    pub ephemeral: bool,
    pub chunks: usize,
    pub payload: Vec<u8>,
    pub sent: bool,
    /// DELIVERED, SEND_ERROR, or SENT of an ephemeral send was seen.
    pub done: bool,
    pub delivered: bool,
}

/// How an incoming message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Received(Vec<u8>),
    Lost,
}

/// The events of one channel.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The channel's own sender id.
    pub me: String,
    pub sends: HashMap<String, SendRecord>,
    /// Incoming (sender, request id) → how it ended.
    pub incoming: HashMap<(String, String), Ending>,
    pub received: u64,
    pub delivered: u64,
    pub send_errors: u64,
    pub lost: u64,
}

impl Ledger {
    pub fn new(me: &str) -> Self {
        Ledger { me: me.to_owned(), ..Default::default() }
    }

    /// Records the result of `send(request, payload, ephemeral)` and checks that a request id is
    /// refused exactly while it is in use.
    pub fn on_send(&mut self, request: &str, payload: &[u8], ephemeral: bool, chunk_size: usize, result: &Result<(), SendError>) {
        let in_use = self.sends.get(request).is_some_and(|s| !s.done);
        match result {
            Ok(()) => {
                assert!(!in_use, "send accepted request id {request:?} while a send with it is still in progress");
                let chunks = chunk_count(payload.len(), chunk_size);
                let record = SendRecord { ephemeral, chunks, payload: payload.to_vec(), sent: false, done: false, delivered: false };
                self.sends.insert(request.to_owned(), record);
            }
            Err(SendError::DuplicateRequestId(r)) => {
                assert!(in_use, "send refused request id {r:?} as a duplicate although no send with it is in progress");
            }
            Err(_) => {}
        }
    }

    /// Records one event and checks it against everything seen before.
    pub fn on_event(&mut self, ev: &ChannelEvent) {
        match ev {
            ChannelEvent::Received { request_id, sender_id, payload } => {
                assert_ne!(sender_id, &self.me, "RECEIVED a message under our own sender id (request {request_id:?}): a spoofed echo got through");
                let key = (sender_id.clone(), request_id.clone());
                self.check_first_ending(&key, "RECEIVED");
                self.incoming.insert(key, Ending::Received(payload.clone()));
                self.received += 1;
            }
            ChannelEvent::Lost { request_id: Some(request_id), sender_id: Some(sender_id), .. } => {
                let key = (sender_id.clone(), request_id.clone());
                self.check_first_ending(&key, "LOST");
                self.incoming.insert(key, Ending::Lost);
                self.lost += 1;
            }
            ChannelEvent::Lost { .. } => self.lost += 1,
            ChannelEvent::Sent { request_id } => {
                let s = self.active(request_id, "SENT");
                assert!(!s.sent, "SENT twice for request {request_id:?}");
                s.sent = true;
                s.done |= s.ephemeral;
            }
            ChannelEvent::Delivered { request_id } => {
                let s = self.active(request_id, "DELIVERED");
                assert!(!s.ephemeral, "DELIVERED for ephemeral request {request_id:?}");
                s.done = true;
                s.delivered = true;
                self.delivered += 1;
            }
            ChannelEvent::SendError { request_id, .. } => {
                self.active(request_id, "SEND_ERROR").done = true;
                self.send_errors += 1;
            }
        }
    }

    /// An incoming key ends at most once.
    fn check_first_ending(&mut self, key: &(String, String), what: &str) {
        let Some(before) = self.incoming.get(key) else { return };
        panic!("{what} {key:?} although it already ended as {}", before_name(before));
    }

    /// The record of a send that must still be in progress for `what` to be emitted.
    fn active(&mut self, request: &str, what: &str) -> &mut SendRecord {
        let Some(s) = self.sends.get_mut(request) else { panic!("{what} for request {request:?}, which we never sent") };
        assert!(!s.done, "{what} for request {request:?} after its final event");
        s
    }

    /// Checks the channel's bounds and its backpressure accounting.
    pub fn check_channel(&self, ch: &Channel) {
        for (what, value, bound) in ch.bounds() {
            assert!(value <= bound, "bound violated: {what} is {value}, its bound is {bound}");
        }
        let (chunks, bytes) = self.sends.values().filter(|s| !s.done).fold((0, 0), |(c, b), s| (c + s.chunks, b + s.payload.len()));
        assert_eq!(ch.pending(), (chunks, bytes), "pending() differs from the sends not yet final (chunks, bytes)");
    }
}

fn before_name(e: &Ending) -> &'static str {
    match e {
        Ending::Received(_) => "RECEIVED",
        Ending::Lost => "LOST",
    }
}

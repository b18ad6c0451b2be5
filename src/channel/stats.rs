//! Per-channel counters, rendered as JSON by `rc_channel_stats_json`.

use serde::Serialize;

/// Counters of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStats {
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub send_errors: u64,
    pub messages_received: u64,
    pub messages_lost: u64,
    pub chunks_sent: u64,
    pub retransmissions: u64,
    pub rebroadcasts: u64,
    pub syncs_sent: u64,
    pub acks: u64,
    pub duplicates: u64,
    /// Of those, copies older than the local log (recognised by their sender's lamport order).
    pub stale_duplicates: u64,
    pub echoes: u64,
    /// Content messages under our sender id that we never sent (recorded as seen, not delivered).
    pub echo_spoofs: u64,
    /// Received lamport timestamps beyond now + `maxClockSkewMs` (counted as that bound).
    pub lamport_clamped: u64,
    /// Received bloom filters with more bits set than an honest one can have, ignored where they
    /// would have acknowledged one of our messages.
    pub bloom_rejected: u64,
    pub dropped_foreign: u64,
    pub dropped_invalid: u64,
    pub dropped_undecryptable: u64,
    pub dropped_buffer_full: u64,
    pub dispatch_failures: u64,
    pub retrievals_requested: u64,
    pub dependencies_lost: u64,
    pub rate_limit_queued: u64,
    pub rate_limit_dropped: u64,
    pub rate_limit_used_in_epoch: u64,
    pub reassembly_bytes: u64,
    pub reassembly_messages: u64,
    pub chunks_discarded: u64,
    pub incoming_buffered: u64,
    pub outgoing_unacknowledged: u64,
    pub pending_chunks: u64,
    pub pending_bytes: u64,
}

//! What a caller can watch of a channel: its bounded buffers and its counters.

use super::Channel;
use crate::channel::stats::ChannelStats;

impl Channel {
    /// Every bounded buffer of the channel as (name, current size, bound) against the effective
    /// configuration: what a caller can watch to push back before a bound is reached.
    pub fn bounds(&self) -> [(&'static str, usize, usize); 11] {
        let c = self.config();
        let (pending_chunks, pending_bytes) = self.pending();
        let (in_msgs, in_bytes, missing) = self.sds.incoming_len();
        let (out_msgs, out_bytes) = self.sds.outgoing_len();
        [
            ("reassembly bytes", self.reassembler.bytes(), c.reassembly.max_bytes),
            ("reassembly messages", self.reassembler.len(), c.reassembly.max_messages),
            ("SDS incoming messages", in_msgs, c.sds.max_incoming_messages),
            ("SDS incoming bytes", in_bytes, c.sds.max_incoming_bytes),
            ("SDS missing dependencies", missing, c.sds.max_missing),
            ("SDS outgoing messages", out_msgs, c.sds.max_outgoing_messages),
            ("SDS outgoing bytes", out_bytes, c.sds.max_outgoing_bytes),
            ("SDS local history", crate::sds::HistoryStore::len(self.sds.history()), c.sds.max_local_history),
            ("pending chunks", pending_chunks, c.max_pending_chunks),
            ("pending bytes", pending_bytes, c.max_pending_bytes),
            ("rate-limit queue", self.limiter.queue_len() + self.held_len(), c.rate_limit.max_queued_items),
        ]
    }

    /// Current counters.
    pub fn stats(&self) -> ChannelStats {
        let mut s = self.stats.clone();
        let sds = self.sds.stats();
        s.duplicates = sds.duplicates;
        s.stale_duplicates = sds.stale_duplicates;
        s.echo_spoofs = sds.echo_spoofs;
        s.lamport_clamped = sds.lamport_clamped;
        s.bloom_rejected = sds.bloom_rejected;
        s.rate_limit_queued = (self.limiter.queue_len() + self.held_len()) as u64;
        s.rate_limit_used_in_epoch = self.limiter.used(self.now) as u64;
        s.reassembly_bytes = self.reassembler.bytes() as u64;
        s.reassembly_messages = self.reassembler.len() as u64;
        s.incoming_buffered = self.sds.incoming_len().0 as u64;
        s.outgoing_unacknowledged = self.sds.outgoing_len().0 as u64;
        let (pending_chunks, pending_bytes) = self.pending();
        s.pending_chunks = pending_chunks as u64;
        s.pending_bytes = pending_bytes as u64;
        s
    }
}

//! Segmentation: splitting a send into [`MessageChunk`](crate::wire::MessageChunk) frames and
//! reassembling received frames into application messages, sans-I/O.
//!
//! Every send is framed, a single-chunk one too (docs/wire-format.md §3). The sender splits the payload
//! into chunks of at most `chunkSizeBytes` and chains them: each chunk carries a fresh random
//! UUID and the UUID of its predecessor. The receiver accepts a chunk only when it extends, link
//! by link, a message whose first chunk it accepted; anything else is discarded alone and counted
//! (spec: segmentation.gap): it never finishes, evicts or changes a partial message, because
//! nothing authenticates a chunk and anyone able to encrypt for the channel could have forged it.
//!
//! The reassembler relies on SDS for ordering: SDS delivers a sender's chunks in causal order, so
//! an honest chunk `k` always arrives after chunk `k - 1`, and a chunk arriving early means its
//! predecessor was declared lost by SDS and never will arrive. That is why partial messages are
//! plain appended buffers (no reordering, no per-index slots). Such a partial ends by expiry, not
//! at the early chunk: that chunk may as well be a forgery aimed at the real message.
//!
//! Everything a peer can make us hold is bounded: open partial messages (count and bytes), the
//! memory of already finished messages and the queue of unpolled loss reports. Time is a `u64` of
//! Unix milliseconds passed in by the caller; nothing here reads a clock.
//!
//! | file            | concern                                                      |
//! |-----------------|--------------------------------------------------------------|
//! | `segment.rs`    | payload → chained chunk frames, request ids                   |
//! | `reassembly.rs` | chunks → messages, with bounds, expiry and loss reports       |

mod reassembly;
mod segment;

pub use reassembly::{
    ChunkOutcome, Completed, DiscardCounts, DiscardReason, Lost, LostCounts, LostReason, Reassembler, ReassemblyConfig, ReassemblyStats,
};
pub use segment::{chunk_count, new_request_id, segment, SegmentError};

/// Largest application payload a send may carry, in bytes (1 MiB). spec: segmentation.max-size
pub const MAX_PAYLOAD_BYTES: usize = 1_048_576;
/// Default chunk size, in bytes (100 KiB). spec: segmentation.chunk-size
pub const DEFAULT_CHUNK_SIZE_BYTES: usize = 102_400;
/// Default cap on the payload bytes buffered in open partial messages of one channel (32 MiB:
/// 32 maximal messages in flight at once).
pub const DEFAULT_REASSEMBLY_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Default cap on the open partial messages of one channel.
pub const DEFAULT_REASSEMBLY_MAX_MESSAGES: usize = 64;
/// Default time a partial message may stay open, from its first chunk, in milliseconds (5 min).
pub const DEFAULT_REASSEMBLY_EXPIRY_MS: u64 = 300_000;
/// How many finished (sender, request_id) keys are remembered, oldest forgotten first: messages
/// completed (single-chunk ones too) or already reported lost. Later chunks and copies of such a
/// message are discarded without a second delivery or report. Bounded so that garbage keys cannot
/// grow memory: a key is a 64-bit fingerprint, so this costs about as much as 1,024 string keys.
pub const FINISHED_KEYS_MEMORY: usize = 4096;
/// Most loss reports queued for [`Reassembler::poll_lost`]; beyond it the oldest is dropped and
/// counted in [`ReassemblyStats::lost_reports_dropped`] (only a caller that never polls hits it).
pub const MAX_QUEUED_LOST: usize = 4096;
/// Length of a request id in random bytes (rendered as twice as many lowercase hex characters).
pub const REQUEST_ID_BYTES: usize = 10;

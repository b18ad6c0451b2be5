//! The fuzzer's vocabulary. Every type derives `Arbitrary`, so libFuzzer's byte mutations become
//! mutations of well-typed operations: most inputs are *plausible* SDS traffic (ids from small
//! pools so that histories, chunk chains and acknowledgements refer to each other), with the
//! hostile extremes (empty and over-limit ids, lamport 0 and `u64::MAX`, deep histories, bloom
//! filters empty / random / all-ones / of the wrong size, forged chunk chains) one choice away.

use arbitrary::Arbitrary;

/// Chunks of one [`Chain`] at most.
pub const MAX_CHAIN_CHUNKS: usize = 8;
/// Entries of a [`History::Deep`] at most (over the wire limit of 1,024).
pub const MAX_DEEP_HISTORY: usize = 1_100;

/// Who claims to have sent an SDS message.
#[derive(Debug, Clone, Arbitrary)]
pub enum Sender {
    /// `peer{i % 4}`.
    Peer(u8),
    /// The channel under test's own sender id (a spoofed echo).
    Me,
    Empty,
    /// A sender id at or over the wire limit of 256 bytes (256 + this % 3).
    Long(u8),
    Text(String),
}

/// An SDS message id (also used in causal histories and repair requests).
#[derive(Debug, Clone, Arbitrary)]
pub enum Id {
    /// `m{i % 16}`: ids that collide across messages and histories.
    Pool(u8),
    /// A new id, unique within the input.
    Fresh,
    /// The id of the i-th SDS message the channel under test dispatched (mod their number).
    Own(u16),
    /// The id of the i-th message injected so far (mod their number).
    Injected(u16),
    /// A 64-hex-digit id.
    Hex(u8),
    Empty,
    /// 255 + this % 4 bytes: around the wire limit.
    Long(u8),
    Text(String),
}

/// The lamport timestamp field.
#[derive(Debug, Clone, Arbitrary)]
pub enum Lamport {
    /// Absent: an ephemeral message (or unclassifiable without content).
    Absent,
    Zero,
    Max,
    MaxMinus(u8),
    Small(u8),
    /// The receiver's clock plus this.
    AheadOfClock(u16),
    Any(u64),
}

/// A retrieval hint.
#[derive(Debug, Clone, Arbitrary)]
pub enum Hint {
    None,
    /// The Waku hash of the i-th message injected so far (the store can answer it).
    Injected(u16),
    /// The Waku hash of one of our own dispatches.
    Own(u16),
    Bytes32([u8; 32]),
    /// 100 + this bytes: around the wire limit of 128.
    Long(u8),
}

/// One causal-history or repair-request entry.
#[derive(Debug, Clone, Arbitrary)]
pub struct Entry {
    pub id: Id,
    pub hint: Hint,
    pub sender: Option<Sender>,
}

/// The causal history of a message.
#[derive(Debug, Clone, Arbitrary)]
pub enum History {
    Entries(Vec<Entry>),
    /// `count % MAX_DEEP_HISTORY` unique bogus ids: missing dependencies in bulk.
    Deep {
        count: u16,
        hinted: bool,
    },
    /// Our own latest dispatched ids (an acknowledgement).
    OwnLatest(u8),
}

/// The bloom filter field.
#[derive(Debug, Clone, Arbitrary)]
pub enum Bloom {
    Absent,
    /// Full size, all zeros.
    Empty,
    /// Full size, every bit set: claims every message.
    AllOnes,
    /// Full size, pseudo-random bytes from this seed.
    Random(u64),
    /// A filter of the wrong size (this many bytes).
    WrongSize(u16),
    /// A real filter holding these ids.
    With(Vec<Id>),
}

/// Position fields of a chunk frame.
#[derive(Debug, Clone, Arbitrary)]
pub enum Index {
    /// this % 8.
    Small(u8),
    Max,
    MaxMinus1,
    Any(u32),
}

/// A chunk's `previous_chunk_id`.
#[derive(Debug, Clone, Arbitrary)]
pub enum Prev {
    None,
    /// `c{i % 8}`.
    Pool(u8),
    Text(String),
}

/// A chunk's `request_id`.
#[derive(Debug, Clone, Arbitrary)]
pub enum Request {
    /// `r{i % 4}`.
    Pool(u8),
    Text(String),
}

/// A payload size.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Size {
    /// this % 64 bytes (0 included).
    Tiny(u8),
    /// this % 4096 bytes.
    Small(u16),
    /// Exactly one chunk of the channels' chunk size.
    Chunk,
    /// The chunk size - 2 + this % 4.
    AroundChunk(u8),
    /// 200,000 bytes: over the chunk size.
    Large,
}

impl Size {
    /// The size in bytes.
    pub fn bytes(self) -> usize {
        match self {
            Size::Tiny(n) => n as usize % 64,
            Size::Small(n) => n as usize % 4096,
            Size::Chunk => crate::CHUNK_SIZE,
            Size::AroundChunk(n) => crate::CHUNK_SIZE - 2 + n as usize % 4,
            Size::Large => 200_000,
        }
    }
}

/// A `MessageChunk` frame built field by field.
#[derive(Debug, Clone, Arbitrary)]
pub struct Chunk {
    /// `c{i % 8}`.
    pub chunk_id: u8,
    pub previous: Prev,
    pub index: Index,
    pub last: Index,
    pub request: Request,
    pub size: Size,
    pub fill: u8,
}

/// The SDS `content` field.
#[derive(Debug, Clone, Arbitrary)]
pub enum Content {
    Absent,
    Empty,
    Chunk(Chunk),
    /// Not a chunk frame at all.
    Raw(Vec<u8>),
}

/// The SDS `channel_id` field.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum ChannelSel {
    Ours,
    Other,
    Empty,
}

/// How the SDS bytes travel.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Envelope {
    /// Marker, topic and (when the profile has one) encryption as an honest peer sends.
    Normal,
    NoMarker,
    WrongMarker,
    WrongTopic,
    /// Not encrypted although the channel expects it.
    Plaintext,
    /// Sealed, then byte `i % len` flipped.
    Corrupt(u16),
}

/// Which message hash accompanies a delivery.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum HashSel {
    None,
    /// The real Waku hash.
    Real,
    /// One of our own dispatch hashes (a forged echo).
    Own(u16),
    Fixed([u8; 32]),
}

/// An SDS message from another participant, every field chosen.
#[derive(Debug, Clone, Arbitrary)]
pub struct Injected {
    pub sender: Sender,
    pub id: Id,
    pub channel: ChannelSel,
    pub lamport: Lamport,
    pub history: History,
    pub bloom: Bloom,
    pub repair: Vec<Entry>,
    pub content: Content,
    pub envelope: Envelope,
    pub hash: HashSel,
}

/// How a [`Chain`] is broken, if at all.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Forgery {
    None,
    /// `previous_chunk_id` of chunk k is not chunk k-1's id.
    Chain(u8),
    /// `last_chunk_index` of chunk k differs.
    LastIndex(u8),
    /// Chunk k's payload size is inconsistent with the chunk size.
    Size(u8),
    /// Chunk k is never sent.
    Skip(u8),
    /// Chunk k is sent twice.
    Duplicate(u8),
    /// Every chunk claims `u32::MAX` as its last index.
    HugeLast,
    /// Chunk k carries another request id.
    Request(u8),
}

/// The order in which a chain's messages are delivered.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Order {
    InOrder,
    Reverse,
    Rotate(u8),
    /// Swap chunk k and k+1.
    Swap(u8),
}

/// A whole multi-chunk message from a peer, SDS-chained as an honest sender does it (each
/// chunk's causal history names the previous chunk), possibly forged and reordered.
#[derive(Debug, Clone, Arbitrary)]
pub struct Chain {
    pub sender: Sender,
    pub request: Request,
    /// 1 + this % MAX_CHAIN_CHUNKS chunks.
    pub chunks: u8,
    pub chunk_size: Size,
    pub forgery: Forgery,
    pub order: Order,
    pub first_lamport: Lamport,
    pub fill: u8,
}

/// How a captured message is changed before it is replayed.
#[derive(Debug, Clone, Arbitrary)]
pub enum Mutation {
    None,
    /// Flip bit `bit % 8` of byte `at % len` of the WakuMessage payload.
    FlipBit {
        at: u32,
        bit: u8,
    },
    /// Keep the first `len % payload length` bytes of the payload.
    Truncate(u32),
    /// Decode the SDS message, replace its sender, re-encode (and re-seal).
    Sender(Sender),
    /// Decode, replace the lamport timestamp, re-encode.
    Lamport(Lamport),
    /// Decode, replace the content with a chunk frame, re-encode.
    Content(Chunk),
}

/// A step of time.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Step {
    /// this % 1000 ms.
    Ms(u16),
    /// One acknowledgement timeout.
    AckTimeout,
    /// One RLN epoch.
    Epoch,
    /// One dependency timeout.
    DependencyTimeout,
    /// this hours: far beyond every timer.
    Hours(u8),
    /// To the channel's next deadline.
    NextDeadline,
}

/// One operation on the channel under test (target `channel_ingest`).
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    Inject(Box<Injected>),
    Chain(Box<Chain>),
    /// A golden SDS message (`i` mod their number), retargeted at our channel, with its sender
    /// replaced and its content replaced by a chunk frame when given.
    Vector {
        index: u8,
        sender: Option<Sender>,
        reframe: Option<Chunk>,
    },
    /// A WakuMessage with these bytes as payload, marker and topic right.
    Garbage(Vec<u8>),
    /// A WakuMessage decoded from these bytes (when they decode).
    RawWaku(Vec<u8>),
    /// Re-deliver the i-th captured message (ours: an echo; or one injected earlier), changed.
    Replay {
        pick: u16,
        own: bool,
        mutation: Mutation,
        hash: HashSel,
    },
    /// A peer acknowledges our latest `n` dispatched messages (causal history, bloom or both).
    Ack {
        sender: u8,
        n: u8,
        history: bool,
        bloom: bool,
        sync: bool,
    },
    /// Our own send; `reuse` re-sends with an earlier request id (pick % sends).
    Send {
        size: Size,
        ephemeral: bool,
        reuse: Option<u16>,
    },
    /// Report the outcome of the i-th dispatch (or of an unknown token).
    DispatchResult {
        pick: u16,
        ok: bool,
        hash: bool,
        unknown: bool,
    },
    /// Answer the oldest store retrieval the channel asked for (when the message is known).
    StoreAnswer,
    Advance(Step),
}

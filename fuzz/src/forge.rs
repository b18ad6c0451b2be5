//! Ops → SDS messages → WakuMessages, as a peer (honest or not) would put them on the wire.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message as _;
use reliable_channel::wire::{BloomFilter, HistoryEntry, MessageChunk, MessageHash, SdsMessage, WakuMessage, BLOOM_BYTES, MAX_ID_BYTES};

use crate::ops::{
    Bloom, Chain, ChannelSel, Chunk, Content, Entry, Envelope, Forgery, HashSel, Hint, History, Id, Index, Injected, Lamport, Mutation, Order, Prev,
    Request, Sender, MAX_CHAIN_CHUNKS, MAX_DEEP_HISTORY,
};
use crate::{ToyCipher, CHANNEL, PUBSUB, TOPIC};

/// Most messages kept for store answers and replays (older ones are simply not retrievable).
pub const MAX_STORED: usize = 512;

/// A WakuMessage and the hash it is delivered with.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: WakuMessage,
    pub hash: Option<MessageHash>,
}

/// What a peer knows when it builds messages: the ids and hashes it has seen on the wire.
#[derive(Debug)]
pub struct Forge {
    /// The sender id of the channel under test ([`Sender::Me`]).
    pub me: String,
    /// Seal messages with [`ToyCipher`].
    pub encrypted: bool,
    /// SDS ids and Waku hashes of the channel under test's dispatches, oldest first.
    pub own_ids: Vec<String>,
    pub own_hashes: Vec<MessageHash>,
    /// SDS ids and Waku hashes of the messages injected so far.
    pub injected_ids: Vec<String>,
    pub injected: Vec<Delivery>,
    /// Every message by its Waku hash: what a store node answers.
    pub store: HashMap<MessageHash, WakuMessage>,
    /// The receiver's lamport clock, for [`Lamport::AheadOfClock`].
    pub clock: u64,
    fresh: u64,
}

fn pick<T: Clone>(items: &[T], i: u16) -> Option<T> {
    (!items.is_empty()).then(|| items[i as usize % items.len()].clone())
}

/// Deterministic filler bytes: byte i is `31 i + seed` (mod 256), copied a 256-byte period at a
/// time (per-byte loops in instrumented harness code would dominate the run time).
pub fn fill(len: usize, seed: u8) -> Bytes {
    let period: [u8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(seed));
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let n = (len - v.len()).min(period.len());
        v.extend_from_slice(&period[..n]);
    }
    Bytes::from(v)
}

impl Forge {
    pub fn new(me: &str, encrypted: bool) -> Self {
        Forge {
            me: me.to_owned(),
            encrypted,
            own_ids: Vec::new(),
            own_hashes: Vec::new(),
            injected_ids: Vec::new(),
            injected: Vec::new(),
            store: HashMap::new(),
            clock: 0,
            fresh: 0,
        }
    }

    fn fresh(&mut self) -> u64 {
        self.fresh += 1;
        self.fresh
    }

    /// Records one of the channel under test's dispatches (its SDS id when it has one).
    pub fn on_own_dispatch(&mut self, message: &WakuMessage) {
        let hash = message.hash(PUBSUB);
        self.own_hashes.push(hash);
        if let Some(sds) = self.open(&message.payload) {
            self.own_ids.push(sds.message_id);
        }
        self.remember(hash, message);
    }

    fn remember(&mut self, hash: MessageHash, message: &WakuMessage) {
        if self.store.len() < MAX_STORED {
            self.store.insert(hash, message.clone());
        }
    }

    /// Decrypts (when encrypted) and decodes a payload, without validation.
    pub fn open(&self, payload: &[u8]) -> Option<SdsMessage> {
        let plain = if self.encrypted { ToyCipher::open(payload).ok()? } else { payload };
        SdsMessage::decode(plain).ok()
    }

    fn seal(&self, plain: Vec<u8>) -> Bytes {
        Bytes::from(if self.encrypted { ToyCipher::seal(&plain) } else { plain })
    }

    pub fn sender(&self, s: &Sender) -> String {
        match s {
            Sender::Peer(i) => format!("peer{}", i % 4),
            Sender::Me => self.me.clone(),
            Sender::Empty => String::new(),
            Sender::Long(n) => "s".repeat(MAX_ID_BYTES + (*n as usize % 3)),
            Sender::Text(t) => t.clone(),
        }
    }

    pub fn id(&mut self, id: &Id) -> String {
        match id {
            Id::Pool(i) => format!("m{}", i % 16),
            Id::Fresh => format!("fresh-{}", self.fresh()),
            Id::Own(i) => pick(&self.own_ids, *i).unwrap_or_else(|| "m0".into()),
            Id::Injected(i) => pick(&self.injected_ids, *i).unwrap_or_else(|| "m1".into()),
            Id::Hex(b) => hex::encode([*b; 32]),
            Id::Empty => String::new(),
            Id::Long(n) => "x".repeat(MAX_ID_BYTES - 1 + (*n as usize % 4)),
            Id::Text(t) => t.clone(),
        }
    }

    fn lamport(&self, l: &Lamport) -> Option<u64> {
        match l {
            Lamport::Absent => None,
            Lamport::Zero => Some(0),
            Lamport::Max => Some(u64::MAX),
            Lamport::MaxMinus(n) => Some(u64::MAX - *n as u64),
            Lamport::Small(n) => Some(*n as u64),
            Lamport::AheadOfClock(n) => Some(self.clock.saturating_add(*n as u64)),
            Lamport::Any(n) => Some(*n),
        }
    }

    fn hint(&self, h: &Hint) -> Option<Bytes> {
        match h {
            Hint::None => None,
            Hint::Injected(i) => pick(&self.injected, *i).and_then(|d| d.hash).map(|h| Bytes::copy_from_slice(&h)),
            Hint::Own(i) => pick(&self.own_hashes, *i).map(|h| Bytes::copy_from_slice(&h)),
            Hint::Bytes32(b) => Some(Bytes::copy_from_slice(b)),
            Hint::Long(n) => Some(fill(100 + *n as usize, *n)),
        }
    }

    fn entry(&mut self, e: &Entry) -> HistoryEntry {
        HistoryEntry { message_id: self.id(&e.id), retrieval_hint: self.hint(&e.hint), sender_id: e.sender.as_ref().map(|s| self.sender(s)) }
    }

    fn history(&mut self, h: &History) -> Vec<HistoryEntry> {
        match h {
            History::Entries(es) => es.iter().map(|e| self.entry(e)).collect(),
            History::Deep { count, hinted } => {
                let salt = self.fresh();
                (0..*count as usize % MAX_DEEP_HISTORY)
                    .map(|i| HistoryEntry {
                        message_id: format!("deep-{salt}-{i}"),
                        retrieval_hint: hinted.then(|| Bytes::copy_from_slice(&[i as u8; 32])),
                        sender_id: Some("peer0".into()),
                    })
                    .collect()
            }
            History::OwnLatest(n) => self.own_acks(*n as usize % 16 + 1),
        }
    }

    /// History entries naming our latest `n` dispatched ids, with their hashes.
    fn own_acks(&self, n: usize) -> Vec<HistoryEntry> {
        let ids = &self.own_ids[self.own_ids.len().saturating_sub(n)..];
        ids.iter().map(|id| HistoryEntry { message_id: id.clone(), retrieval_hint: None, sender_id: Some(self.me.clone()) }).collect()
    }

    fn bloom(&mut self, b: &Bloom) -> Option<Bytes> {
        match b {
            Bloom::Absent => None,
            Bloom::Empty => Some(Bytes::from(vec![0u8; BLOOM_BYTES])),
            Bloom::AllOnes => Some(Bytes::from(vec![0xffu8; BLOOM_BYTES])),
            Bloom::Random(seed) => {
                let mut x = seed | 1;
                let mut v = Vec::with_capacity(BLOOM_BYTES);
                while v.len() < BLOOM_BYTES {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.extend_from_slice(&x.to_le_bytes());
                }
                v.truncate(BLOOM_BYTES);
                Some(Bytes::from(v))
            }
            Bloom::WrongSize(n) => Some(fill(*n as usize, 1)),
            Bloom::With(ids) => {
                let mut f = BloomFilter::new();
                for id in ids {
                    let id = self.id(id);
                    f.insert(&id);
                }
                Some(Bytes::copy_from_slice(f.as_bytes()))
            }
        }
    }

    fn index(i: &Index) -> u32 {
        match i {
            Index::Small(n) => (n % 8) as u32,
            Index::Max => u32::MAX,
            Index::MaxMinus1 => u32::MAX - 1,
            Index::Any(n) => *n,
        }
    }

    fn request(r: &Request) -> String {
        match r {
            Request::Pool(i) => format!("r{}", i % 4),
            Request::Text(t) => t.clone(),
        }
    }

    /// An encoded `MessageChunk` built field by field.
    pub fn chunk(c: &Chunk) -> Vec<u8> {
        MessageChunk {
            chunk_id: format!("c{}", c.chunk_id % 8),
            previous_chunk_id: match &c.previous {
                Prev::None => String::new(),
                Prev::Pool(i) => format!("c{}", i % 8),
                Prev::Text(t) => t.clone(),
            },
            chunk_index: Self::index(&c.index),
            last_chunk_index: Self::index(&c.last),
            request_id: Self::request(&c.request),
            payload: fill(c.size.bytes(), c.fill),
        }
        .encode_to_vec()
    }

    /// The SDS message of an [`Injected`].
    pub fn sds(&mut self, m: &Injected) -> SdsMessage {
        SdsMessage {
            sender_id: self.sender(&m.sender),
            message_id: self.id(&m.id),
            channel_id: match m.channel {
                ChannelSel::Ours => CHANNEL.into(),
                ChannelSel::Other => "other-channel".into(),
                ChannelSel::Empty => String::new(),
            },
            lamport_timestamp: self.lamport(&m.lamport),
            causal_history: self.history(&m.history),
            bloom_filter: self.bloom(&m.bloom),
            repair_request: m.repair.iter().map(|e| self.entry(e)).collect(),
            content: match &m.content {
                Content::Absent => None,
                Content::Empty => Some(Bytes::new()),
                Content::Chunk(c) => Some(Bytes::from(Self::chunk(c))),
                Content::Raw(r) => Some(Bytes::copy_from_slice(r)),
            },
        }
    }

    /// A WakuMessage carrying `payload` as an honest peer sends it.
    pub fn waku(payload: Bytes) -> WakuMessage {
        WakuMessage::reliable(TOPIC, payload, 1_700_000_000_000)
    }

    /// Wraps encoded SDS bytes as `envelope` says.
    pub fn envelope(&self, sds: Vec<u8>, envelope: Envelope) -> WakuMessage {
        let mut m = Self::waku(self.seal(sds.clone()));
        match envelope {
            Envelope::Normal => {}
            Envelope::NoMarker => m.meta = None,
            Envelope::WrongMarker => m.meta = Some(Bytes::from_static(b"RELIABLE-CHANNEL-API/2")),
            Envelope::WrongTopic => m.content_topic = "/other/1/topic/proto".into(),
            Envelope::Plaintext => m.payload = Bytes::from(sds),
            Envelope::Corrupt(i) => {
                let mut p = m.payload.to_vec();
                if !p.is_empty() {
                    let at = i as usize % p.len();
                    p[at] ^= 0x40;
                }
                m.payload = Bytes::from(p);
            }
        }
        m
    }

    /// The hash a message is delivered with.
    pub fn hash(&self, sel: HashSel, m: &WakuMessage) -> Option<MessageHash> {
        match sel {
            HashSel::None => None,
            HashSel::Real => Some(m.hash(PUBSUB)),
            HashSel::Own(i) => pick(&self.own_hashes, i),
            HashSel::Fixed(h) => Some(h),
        }
    }

    /// Records a message about to be delivered: its id becomes referable, the store can answer it.
    pub fn register(&mut self, d: &Delivery) {
        if let Some(sds) = self.open(&d.message.payload) {
            self.injected_ids.push(sds.message_id);
        }
        if let Some(h) = d.hash {
            self.remember(h, &d.message);
        }
        if self.injected.len() < MAX_STORED {
            self.injected.push(d.clone());
        }
    }

    /// An [`Injected`] as a delivery.
    pub fn injected(&mut self, m: &Injected) -> Delivery {
        let sds = self.sds(m).encode_to_vec();
        let message = self.envelope(sds, m.envelope);
        let hash = self.hash(m.hash, &message);
        Delivery { message, hash }
    }

    /// The deliveries of a [`Chain`], in delivery order.
    pub fn chain(&mut self, c: &Chain) -> Vec<Delivery> {
        let sender = self.sender(&c.sender);
        let request = Self::request(&c.request);
        let salt = self.fresh();
        let n = 1 + c.chunks as usize % MAX_CHAIN_CHUNKS;
        let size = c.chunk_size.bytes().max(1);
        let last = (n - 1) as u32;
        let base = self.lamport(&c.first_lamport).unwrap_or(1);
        let chunk_id = |k: usize| format!("{salt}-c{k}");
        let mut out: Vec<Delivery> = Vec::new();
        let mut prev: Option<(String, MessageHash)> = None;
        for k in 0..n {
            let f = c.forgery;
            let at = |j: u8| j as usize % n == k;
            if matches!(f, Forgery::Skip(j) if at(j)) && k > 0 {
                continue;
            }
            let mut len = if k as u32 == last { (size / 2).max(1) } else { size };
            if matches!(f, Forgery::Size(j) if at(j)) {
                len = len * 2 + 1;
            }
            let frame = MessageChunk {
                chunk_id: chunk_id(k),
                previous_chunk_id: match (k, f) {
                    (0, _) => String::new(),
                    (_, Forgery::Chain(j)) if at(j) => chunk_id(k + 7),
                    _ => chunk_id(k - 1),
                },
                chunk_index: k as u32,
                last_chunk_index: match f {
                    Forgery::HugeLast => u32::MAX,
                    Forgery::LastIndex(j) if at(j) => last + 1,
                    _ => last,
                },
                request_id: match f {
                    Forgery::Request(j) if at(j) => format!("{request}-other"),
                    _ => request.clone(),
                },
                payload: fill(len, c.fill.wrapping_add(k as u8)),
            };
            let sds = SdsMessage {
                sender_id: sender.clone(),
                message_id: format!("{salt}-s{k}"),
                channel_id: CHANNEL.into(),
                lamport_timestamp: Some(base.saturating_add(k as u64)),
                causal_history: prev
                    .iter()
                    .map(|(id, h)| HistoryEntry {
                        message_id: id.clone(),
                        retrieval_hint: Some(Bytes::copy_from_slice(h)),
                        sender_id: Some(sender.clone()),
                    })
                    .collect(),
                bloom_filter: None,
                repair_request: Vec::new(),
                content: Some(Bytes::from(frame.encode_to_vec())),
            };
            let message = self.envelope(sds.encode_to_vec(), Envelope::Normal);
            let hash = message.hash(PUBSUB);
            prev = Some((sds.message_id, hash));
            let d = Delivery { message, hash: Some(hash) };
            if matches!(f, Forgery::Duplicate(j) if at(j)) {
                out.push(d.clone());
            }
            out.push(d);
        }
        let len = out.len();
        match c.order {
            Order::InOrder => {}
            Order::Reverse => out.reverse(),
            Order::Rotate(r) => out.rotate_left(r as usize % len),
            Order::Swap(k) => out.swap(k as usize % len, (k as usize + 1) % len),
        }
        out
    }

    /// A golden SDS message retargeted at our channel.
    pub fn vector(&mut self, index: u8, sender: Option<&Sender>, reframe: Option<&Chunk>) -> Delivery {
        let vectors = crate::vectors::sds_messages();
        let (_, bytes) = &vectors[index as usize % vectors.len()];
        let mut sds = SdsMessage::decode(bytes.as_slice()).expect("golden SDS messages decode");
        sds.channel_id = CHANNEL.into();
        if let Some(s) = sender {
            sds.sender_id = self.sender(s);
        }
        if let Some(c) = reframe {
            sds.content = Some(Bytes::from(Self::chunk(c)));
        }
        let message = self.envelope(sds.encode_to_vec(), Envelope::Normal);
        let hash = Some(message.hash(PUBSUB));
        Delivery { message, hash }
    }

    /// A peer acknowledging our latest `n` dispatches by causal history and/or bloom filter, in a
    /// sync or in a one-chunk content message.
    pub fn ack(&mut self, sender: u8, n: u8, history: bool, bloom: bool, sync: bool) -> Delivery {
        let acks = self.own_acks(n as usize % 16 + 1);
        let filter = bloom.then(|| {
            let mut f = BloomFilter::new();
            for e in &acks {
                f.insert(&e.message_id);
            }
            Bytes::copy_from_slice(f.as_bytes())
        });
        let salt = self.fresh();
        let content = (!sync).then(|| {
            let frame = MessageChunk {
                chunk_id: format!("ack-{salt}"),
                previous_chunk_id: String::new(),
                chunk_index: 0,
                last_chunk_index: 0,
                request_id: format!("ack-{salt}"),
                payload: fill(8, salt as u8),
            };
            Bytes::from(frame.encode_to_vec())
        });
        let sds = SdsMessage {
            sender_id: format!("peer{}", sender % 4),
            message_id: format!("ack-{salt}"),
            channel_id: CHANNEL.into(),
            lamport_timestamp: Some(self.clock.saturating_add(1)),
            causal_history: if history { acks } else { Vec::new() },
            bloom_filter: filter,
            repair_request: Vec::new(),
            content,
        };
        let message = self.envelope(sds.encode_to_vec(), Envelope::Normal);
        let hash = Some(message.hash(PUBSUB));
        Delivery { message, hash }
    }

    /// A captured message, changed.
    pub fn mutate(&mut self, mut m: WakuMessage, mutation: &Mutation) -> WakuMessage {
        let mut field = |f: &mut Self, edit: &mut dyn FnMut(&mut Self, &mut SdsMessage)| {
            if let Some(mut sds) = f.open(&m.payload) {
                edit(f, &mut sds);
                m.payload = f.seal(sds.encode_to_vec());
            }
        };
        match mutation {
            Mutation::None => {}
            Mutation::FlipBit { at, bit } => {
                let mut p = m.payload.to_vec();
                if !p.is_empty() {
                    let i = *at as usize % p.len();
                    p[i] ^= 1 << (bit % 8);
                }
                m.payload = Bytes::from(p);
            }
            Mutation::Truncate(n) => {
                let len = m.payload.len();
                if len > 0 {
                    m.payload = m.payload.slice(..*n as usize % len);
                }
            }
            Mutation::Sender(s) => field(self, &mut |f, sds| sds.sender_id = f.sender(s)),
            Mutation::Lamport(l) => field(self, &mut |f, sds| sds.lamport_timestamp = f.lamport(l)),
            Mutation::Content(c) => field(self, &mut |_, sds| sds.content = Some(Bytes::from(Self::chunk(c)))),
        }
        m
    }
}

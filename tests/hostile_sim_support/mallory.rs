//! Mallory: the hostile participant of tests/hostile_sim.rs, her crafted messages and reactions.

use crate::*;

/// A random 64-hex-digit id, like a content message id.
fn phantom_id(rng: &mut SmallRng) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

fn chunk_frame(rng: &mut SmallRng, prev: &str, index: u32, last: u32, request_id: &str, payload: Vec<u8>) -> Bytes {
    let chunk = MessageChunk {
        chunk_id: format!("m-{}", &phantom_id(rng)[..20]),
        previous_chunk_id: prev.to_owned(),
        chunk_index: index,
        last_chunk_index: last,
        request_id: request_id.to_owned(),
        payload: Bytes::from(payload),
    };
    Bytes::from(chunk.encode_to_vec())
}

impl Sim<'_> {
    /// Publishes an SDS message of mallory's. `spoofed` when it carries an honest sender id.
    fn inject(&mut self, a: Attack, sds: SdsMessage) {
        if HONEST.contains(&sds.sender_id.as_str()) {
            self.mallory.spoofed.insert(sds.message_id.clone());
        }
        *self.mallory.sent.entry(a).or_default() += 1;
        let msg = WakuMessage::reliable(TOPIC, Bytes::from(sds.encode_to_vec()), self.now);
        let p = Arc::new(Pub::new(msg, None, self.now, self.next_serial()));
        self.tr(|| format!("mallory {a:?} {} ({} B)", p.describe(), p.msg.payload.len()));
        self.broadcast(&p);
    }

    fn sds(&self, sender: &str, message_id: String, lamport: Option<u64>, history: Vec<HistoryEntry>, content: Option<Bytes>) -> SdsMessage {
        SdsMessage {
            sender_id: sender.to_owned(),
            message_id,
            channel_id: CHANNEL.into(),
            lamport_timestamp: lamport,
            causal_history: history,
            bloom_filter: None,
            repair_request: Vec::new(),
            content,
        }
    }

    /// A message only mallory knows about: a made-up request id under `sender`.
    fn made_up(&mut self, what: &str, sender: &str, lamport: Option<u64>, history: Vec<HistoryEntry>, len: usize) -> SdsMessage {
        self.mallory.names += 1;
        let rid = format!("{what}-{}", self.mallory.names);
        self.mallory.made_up.insert((sender.to_owned(), rid.clone()));
        let mut payload = vec![0u8; len];
        self.mallory.rng.fill_bytes(&mut payload);
        let frame = chunk_frame(&mut self.mallory.rng, "", 0, 0, &rid, payload);
        let id = phantom_id(&mut self.mallory.rng);
        self.sds(sender, id, lamport, history, Some(frame))
    }

    /// Mallory's own id, or (sometimes) an honest participant's.
    fn some_sender(&mut self, spoof: f64) -> String {
        if self.mallory.rng.gen_bool(spoof) {
            HONEST[self.mallory.rng.gen_range(0..self.sc.n)].to_owned()
        } else {
            MALLORY.to_owned()
        }
    }

    /// True when an honest participant other than the sender has `id` (so naming it in a causal
    /// history acknowledges nothing that no honest peer received).
    fn honest_peer_has(&self, sender: Option<usize>, id: &str) -> bool {
        (0..self.sc.n).any(|q| Some(q) != sender && self.arrivals[q].contains_key(id))
    }

    pub(crate) fn attack(&mut self, a: Attack, target: Option<Arc<Pub>>) {
        let now = self.now;
        match a {
            Attack::ForgedChunk => {
                let target = target.or_else(|| {
                    let seen = &self.mallory.seen;
                    (!seen.is_empty()).then(|| seen[self.mallory.rng.gen_range(0..seen.len())].clone())
                });
                let Some(t) = target else { return };
                let (Some(c), Some((m, _))) = (&t.chunk, &t.sds) else { return };
                let sender = m.sender_id.clone();
                let roll: f64 = self.mallory.rng.gen();
                let first_id = self.chunk_ids.get(&(t.from.unwrap_or(0), c.request_id.clone())).and_then(|ids| ids.get(&0)).cloned();
                if roll < 0.2 {
                    // An exact copy of the chunk in a new SDS message: same content, so no harm
                    // done if it comes first; a copy of a finished message is not delivered again.
                    // It keeps the original's causal history: stripped of it, a copy could be
                    // delivered before the messages the original follows, and no receiver could
                    // tell (causal order rests on unauthenticated histories: excluded).
                    let id = phantom_id(&mut self.mallory.rng);
                    let msg = self.sds(&sender, id, m.lamport_timestamp, m.causal_history.clone(), m.content.clone());
                    self.inject(a, msg);
                } else if let Some(first) = first_id.filter(|f| roll < 0.4 && self.honest_peer_has(t.from, f)) {
                    // A duplicate first chunk with other content, causally after the real one.
                    let mut payload = vec![0u8; c.payload.len().max(1)];
                    self.mallory.rng.fill_bytes(&mut payload);
                    let last = if self.mallory.rng.gen_bool(0.3) { 0 } else { c.last_chunk_index };
                    let frame = chunk_frame(&mut self.mallory.rng, "", 0, last, &c.request_id, payload);
                    let history = vec![HistoryEntry { message_id: first, retrieval_hint: None, sender_id: Some(sender.clone()) }];
                    let id = phantom_id(&mut self.mallory.rng);
                    let msg = self.sds(&sender, id, Some(now), history, Some(frame));
                    self.inject(a, msg);
                } else {
                    // Issue #10 item 7: a later chunk with a garbage link, at any index.
                    let last = c.last_chunk_index.max(1);
                    let index = if self.mallory.rng.gen_bool(0.5) { (c.chunk_index + 2).min(last) } else { self.mallory.rng.gen_range(1..=last) };
                    let len = if self.mallory.rng.gen_bool(0.7) { c.payload.len().max(1) } else { self.mallory.rng.gen_range(1..=64) };
                    let garbage = phantom_id(&mut self.mallory.rng);
                    let frame = chunk_frame(&mut self.mallory.rng, &garbage[..36], index, last, &c.request_id, vec![0xee; len]);
                    let id = phantom_id(&mut self.mallory.rng);
                    let msg = self.sds(&sender, id, Some(now), Vec::new(), Some(frame));
                    self.inject(a, msg);
                }
            }
            Attack::Replay => {
                let old: Vec<Arc<Pub>> = self.store.values().filter(|p| p.from.is_some() && p.at + 20_000 <= now).cloned().collect();
                if old.is_empty() {
                    return;
                }
                // Deterministic pick: the store is a hash map, so order by hash first.
                let mut old = old;
                old.sort_by_key(|p| p.hash);
                let p = old[self.mallory.rng.gen_range(0..old.len())].clone();
                *self.mallory.sent.entry(a).or_default() += 1;
                self.tr(|| format!("mallory replays {}", p.describe()));
                self.broadcast(&p);
            }
            Attack::SpoofSender => {
                let victim = HONEST[self.mallory.rng.gen_range(0..self.sc.n)];
                let msg = self.made_up("spoof", victim, Some(now), Vec::new(), 32);
                self.inject(a, msg);
            }
            Attack::Lamport => {
                let sender = self.some_sender(0.3);
                let lamport = if self.mallory.rng.gen_bool(0.7) { u64::MAX } else { 0 };
                let msg = self.made_up("lamport", &sender, Some(lamport), Vec::new(), 16);
                self.inject(a, msg);
            }
            Attack::Bloom => {
                let all_ones = self.mallory.rng.gen_bool(0.5);
                let fill = self.mallory.rng.gen_range(0.75..0.95);
                let sender = self.some_sender(0.3);
                for _ in 0..2 {
                    let bloom: Vec<u8> = if all_ones {
                        vec![0xff; BLOOM_BYTES]
                    } else {
                        (0..BLOOM_BYTES).map(|_| (0..8).fold(0u8, |b, i| b | (u8::from(self.mallory.rng.gen_bool(fill)) << i))).collect()
                    };
                    let id = format!("sync-{}", &phantom_id(&mut self.mallory.rng)[..11]);
                    let mut msg = self.sds(&sender, id, Some(now), Vec::new(), None);
                    msg.bloom_filter = Some(Bytes::from(bloom));
                    self.inject(a, msg);
                }
            }
            Attack::Phantom => {
                let msg = self.phantom_message(0.3);
                self.inject(a, msg);
            }
            Attack::Invalid => {
                if self.mallory.rng.gen_bool(0.5) {
                    let msg = self.made_up("empty", "", Some(now), Vec::new(), 24);
                    self.mallory.invalid.insert((String::new(), format!("empty-{}", self.mallory.names)));
                    self.inject(a, msg);
                } else {
                    // A single chunk that makes the WakuMessage larger than the network allows.
                    let msg = self.made_up("oversized", MALLORY, Some(now), Vec::new(), MAX_WAKU_MESSAGE_BYTES + 1_024);
                    self.mallory.invalid.insert((MALLORY.to_owned(), format!("oversized-{}", self.mallory.names)));
                    self.inject(a, msg);
                }
            }
        }
    }

    /// Content (waits for its dependencies) or a sync naming 64–1,024 unknown ids.
    fn phantom_message(&mut self, spoof: f64) -> SdsMessage {
        // Mostly short lists: the long ones cost the simulation (not the victim) most.
        let count = [64, 64, 64, 128, 128, 256, 256, 1_024][self.mallory.rng.gen_range(0..8)];
        let hinted = self.mallory.rng.gen_bool(0.5);
        let mut history = Vec::with_capacity(count);
        for _ in 0..count {
            let message_id = phantom_id(&mut self.mallory.rng);
            let retrieval_hint = hinted.then(|| {
                let mut h = [0u8; 32];
                self.mallory.rng.fill_bytes(&mut h);
                Bytes::copy_from_slice(&h)
            });
            history.push(HistoryEntry { message_id, retrieval_hint, sender_id: None });
        }
        let sender = self.some_sender(spoof);
        let content = self.mallory.rng.gen_bool(0.7);
        if self.phase > 0 {
            self.probes.push(ProbeLoad { waiting: content, hinted_ids: if hinted { count as u64 } else { 0 } });
        }
        if content {
            self.made_up("phantom", &sender, Some(self.now), history, 16)
        } else {
            let id = format!("sync-{}", &phantom_id(&mut self.mallory.rng)[..11]);
            let repair = history.iter().take(64).map(|h| HistoryEntry { retrieval_hint: None, ..h.clone() }).collect();
            SdsMessage { repair_request: repair, ..self.sds(&sender, id, Some(self.now), history, None) }
        }
    }

    pub(crate) fn probe_message(&mut self) {
        let msg = self.phantom_message(0.0);
        self.inject(Attack::Phantom, msg);
    }
}

pub(crate) fn short_event(ev: &ChannelEvent) -> String {
    match ev {
        ChannelEvent::Received { request_id, sender_id, payload } => format!("RECEIVED {sender_id}/{request_id} ({} B)", payload.len()),
        other => format!("{other:?}"),
    }
}

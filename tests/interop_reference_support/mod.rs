//! The reference peer process and small helpers of tests/interop_reference.rs.

use crate::*;

// ---------------------------------------------------------------------------------------------
// The reference peer process
// ---------------------------------------------------------------------------------------------

/// One event emitted by the reference channel while a command ran.
#[derive(Debug, Clone)]
pub(crate) struct RefEvent {
    pub(crate) kind: String,
    pub(crate) detail: Value,
}

/// The reference peer: `node tests/interop/ref_peer.mjs`.
pub(crate) static REF_PEER: PeerScript = PeerScript {
    test: "interop_reference",
    dir: "tests/interop",
    script: "tests/interop/ref_peer.mjs",
    installed: &["node_modules/@waku/sds/package.json"],
    against: "@waku/sds",
    reply_timeout: REPLY_TIMEOUT,
};

pub(crate) struct RefPeer {
    pub(crate) node: NodePeer,
}

impl RefPeer {
    /// Spawns the reference peer, or returns `None` (after a loud notice) when Node or the npm
    /// packages are missing and `CI` is not set.
    pub(crate) fn start() -> Option<RefPeer> {
        let mut peer = RefPeer { node: NodePeer::start(&REF_PEER)? };
        let pong = peer.call(json!({"cmd": "ping"}));
        assert_eq!(pong["sds"], "0.0.8", "ref_peer loaded the wrong @waku/sds: {pong}");
        Some(peer)
    }

    /// Sends one command and returns its response. Panics on `{error}`, on a reference task
    /// error event, or when the peer does not answer.
    pub(crate) fn call(&mut self, cmd: Value) -> Value {
        let v = self.node.call(&cmd);
        for ev in events_of(&v) {
            assert!(ev.kind != "sds:error-task", "reference task error on {}: {}", cmd.to_string().chars().take(160).collect::<String>(), ev.detail);
        }
        v
    }

    pub(crate) fn new_channel(&mut self, sender: &str, causal_history_size: Option<usize>) {
        let mut cmd = json!({"cmd": "new", "channel": CHANNEL, "sender": sender, "enableRepair": false});
        if let Some(n) = causal_history_size {
            cmd["causalHistorySize"] = json!(n);
        }
        self.call(cmd);
    }

    /// The reference wraps and "dispatches" `content`; the send callback reports `hint`.
    pub(crate) fn send(&mut self, content: &[u8], hint: &[u8]) -> (String, Bytes, Vec<RefEvent>) {
        let r = self.call(json!({"cmd": "send", "hex": hex::encode(content), "hint": hex::encode(hint)}));
        (str_of(&r["messageId"]), unhex(&r["wire"]), events_of(&r))
    }

    pub(crate) fn send_ephemeral(&mut self, content: &[u8]) -> (String, Bytes) {
        let r = self.call(json!({"cmd": "sendEphemeral", "hex": hex::encode(content)}));
        (str_of(&r["messageId"]), unhex(&r["wire"]))
    }

    pub(crate) fn send_sync(&mut self) -> Option<(String, Bytes)> {
        let r = self.call(json!({"cmd": "sendSync"}));
        if r["wire"].is_null() {
            assert_eq!(r["sent"], false);
            return None;
        }
        assert_eq!(r["sent"], true);
        Some((str_of(&r["messageId"]), unhex(&r["wire"])))
    }

    pub(crate) fn receive(&mut self, bytes: &[u8], hint: Option<&[u8]>) -> Vec<RefEvent> {
        let mut cmd = json!({"cmd": "receive", "hex": hex::encode(bytes)});
        if let Some(h) = hint {
            cmd["hint"] = json!(hex::encode(h));
        }
        let r = self.call(cmd);
        assert_eq!(r["accepted"], true, "the reference could not decode our message: {r}");
        events_of(&r)
    }

    pub(crate) fn sweep(&mut self) -> Vec<RefEvent> {
        events_of(&self.call(json!({"cmd": "sweep"})))
    }

    pub(crate) fn decode(&mut self, bytes: &[u8]) -> Value {
        self.call(json!({"cmd": "decode", "hex": hex::encode(bytes)}))
    }

    pub(crate) fn bloom_lookup_in_message(&mut self, message: &[u8], ids: &[String]) -> Vec<bool> {
        let r = self.call(json!({"cmd": "bloomLookup", "hex": hex::encode(message), "ids": ids}));
        bools(&r["results"])
    }

    pub(crate) fn bloom_lookup(&mut self, bloom: &[u8], ids: &[String]) -> (Value, Vec<bool>) {
        let r = self.call(json!({"cmd": "bloomLookup", "bloom": hex::encode(bloom), "ids": ids}));
        let results = bools(&r["results"]);
        (r, results)
    }

    pub(crate) fn bloom_build(&mut self, ids: &[String]) -> Vec<u8> {
        unhex(&self.call(json!({"cmd": "bloomBuild", "ids": ids}))["bloom"]).to_vec()
    }

    pub(crate) fn state(&mut self) -> Value {
        self.call(json!({"cmd": "state"}))
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

pub(crate) fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}")).to_owned()
}

pub(crate) fn unhex(v: &Value) -> Bytes {
    Bytes::from(hex::decode(v.as_str().unwrap_or_else(|| panic!("expected hex, got {v}"))).expect("hex"))
}

pub(crate) fn bools(v: &Value) -> Vec<bool> {
    v.as_array().expect("array").iter().map(|b| b.as_bool().expect("bool")).collect()
}

pub(crate) fn events_of(v: &Value) -> Vec<RefEvent> {
    v["events"].as_array().map(|a| a.iter().map(|e| RefEvent { kind: str_of(&e["type"]), detail: e["detail"].clone() }).collect()).unwrap_or_default()
}

/// Message ids carried by reference events of one type whose detail is a bare id.
pub(crate) fn ref_ids(events: &[RefEvent], kind: &str) -> Vec<String> {
    events.iter().filter(|e| e.kind == kind).map(|e| str_of(&e.detail)).collect()
}

pub(crate) fn ref_possibly(events: &[RefEvent]) -> BTreeMap<String, u32> {
    events
        .iter()
        .filter(|e| e.kind == "sds:out:message-possibly-acknowledged")
        .map(|e| (str_of(&e.detail["messageId"]), e.detail["count"].as_u64().unwrap() as u32))
        .collect()
}

/// History entries of the non-empty "missing" events.
pub(crate) fn ref_missing(events: &[RefEvent]) -> Vec<Value> {
    events.iter().filter(|e| e.kind == "sds:in:message-missing").flat_map(|e| e.detail.as_array().cloned().unwrap_or_default()).collect()
}

pub(crate) fn hint_for(tag: &str) -> Vec<u8> {
    Sha256::digest(format!("retrieval-hint:{tag}").as_bytes()).to_vec()
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub(crate) fn drain(e: &mut SdsEngine) -> Vec<SdsEvent> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

pub(crate) fn delivered_ids(ev: &[SdsEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            SdsEvent::Delivered(d) => Some(d.message_id.to_string()),
            _ => None,
        })
        .collect()
}

/// Wraps and dispatches one content message of ours, recording `hint` as its retrieval hint.
pub(crate) fn send_ours(e: &mut SdsEngine, now: u64, content: &[u8], hint: &[u8]) -> Wrapped {
    let w = e.wrap_content(now, content, None).expect("wrap_content");
    assert!(e.on_dispatched(now, &w.message_id, Some(Bytes::copy_from_slice(hint))));
    w
}

/// Fires our engine's timers (virtual time) until it emits a sync message.
/// Returns the new time, the sync (id, bytes) and every other event seen on the way.
pub(crate) fn fire_until_sync(e: &mut SdsEngine, mut now: u64) -> (u64, String, Bytes, Vec<SdsEvent>) {
    let mut other = Vec::new();
    for _ in 0..64 {
        let deadline = e.next_deadline().expect("a sync is due but no timer is armed");
        now = now.max(deadline);
        e.handle_timeout(now);
        for ev in drain(e) {
            match ev {
                SdsEvent::SendSync { message_id, bytes } => {
                    other.extend(drain(e));
                    return (now, message_id.to_string(), bytes, other);
                }
                SdsEvent::Retransmit { ref message_id, .. } => {
                    let id = message_id.clone();
                    other.push(ev);
                    e.on_dispatched(now, &id, None);
                }
                ev => other.push(ev),
            }
        }
    }
    panic!("no sync message after 64 timer rounds; events: {other:?}");
}

pub(crate) fn kind_name(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Content => "content",
        MessageKind::Sync => "sync",
        MessageKind::Ephemeral => "ephemeral",
    }
}

pub(crate) type Entry = (String, Option<String>, Option<String>);

pub(crate) fn our_entries(v: &[HistoryEntry]) -> Vec<Entry> {
    v.iter().map(|e| (e.message_id.clone(), e.retrieval_hint.as_ref().map(hex::encode), e.sender_id.clone())).collect()
}

pub(crate) fn ref_entry(e: &Value) -> Entry {
    (str_of(&e["messageId"]), e["retrievalHint"].as_str().map(str::to_owned), e["senderId"].as_str().map(str::to_owned))
}

pub(crate) fn ref_entries(v: &Value) -> Vec<Entry> {
    v.as_array().expect("history array").iter().map(ref_entry).collect()
}

pub(crate) fn entry(id: &str, hint: &[u8], sender: &str) -> Entry {
    (id.to_owned(), Some(hex::encode(hint)), Some(sender.to_owned()))
}

/// Decodes with our codec and checks that the reference decoded exactly the same fields, and
/// that both re-encode the message to the identical bytes.
pub(crate) fn decode_both(peer: &mut RefPeer, bytes: &Bytes, what: &str) -> (SdsMessage, MessageKind) {
    let (m, kind) = SdsMessage::decode_bytes(bytes.clone()).unwrap_or_else(|e| panic!("{what}: our decoder refused it: {e}"));
    assert!(m.encode_to_vec() == bytes[..], "{what}: our re-encoding differs from the wire bytes");
    let r = peer.decode(bytes);
    assert_eq!(r["kind"], kind_name(kind), "{what}: message class");
    assert_eq!(str_of(&r["senderId"]), m.sender_id, "{what}: sender_id");
    assert_eq!(str_of(&r["messageId"]), m.message_id, "{what}: message_id");
    assert_eq!(str_of(&r["channelId"]), m.channel_id, "{what}: channel_id");
    assert_eq!(r["lamport"].as_str().map(str::to_owned), m.lamport_timestamp.map(|l| l.to_string()), "{what}: lamport_timestamp");
    assert_eq!(ref_entries(&r["causalHistory"]), our_entries(&m.causal_history), "{what}: causal_history");
    assert_eq!(ref_entries(&r["repairRequest"]), our_entries(&m.repair_request), "{what}: repair_request");
    assert_eq!(r["bloomLen"].as_u64().map(|n| n as usize), m.bloom_filter.as_ref().map(|b| b.len()), "{what}: bloom length");
    assert_eq!(r["bloomSha256"].as_str().map(str::to_owned), m.bloom_filter.as_deref().map(sha256_hex), "{what}: bloom bytes");
    assert_eq!(r["content"].as_str().map(str::to_owned), m.content.as_ref().map(hex::encode), "{what}: content");
    assert_eq!(r["reencodedSame"], true, "{what}: the reference re-encodes it to different bytes");
    (m, kind)
}

/// Random 64-hex-char ids plus a few odd ones (empty, sync-like, non-ASCII).
pub(crate) fn probe_ids(rng: &mut SmallRng, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|_| hex::encode(rng.gen::<[u8; 32]>())).collect();
    v.extend(["", "sync-4fzyo82mvyr", "é", "日本語のメッセージ", "😀 emoji id", "a b"].map(str::to_owned));
    v
}

/// Checks the reference's lookups in the bloom filter of `message` against ours.
pub(crate) fn assert_bloom_agrees(peer: &mut RefPeer, message: &Bytes, must_contain: &[&str], rng: &mut SmallRng, what: &str) {
    let (m, _) = SdsMessage::decode_bytes(message.clone()).unwrap();
    let ours = BloomFilter::from_bytes(m.bloom_filter.as_deref().expect("bloom filter present")).expect("bloom of the right size");
    let mut ids: Vec<String> = must_contain.iter().map(|s| s.to_string()).collect();
    ids.extend(probe_ids(rng, 50));
    let theirs = peer.bloom_lookup_in_message(message, &ids);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(theirs[i], ours.contains(id), "{what}: lookup of {id:?} differs (reference vs ours)");
    }
    for id in must_contain {
        assert!(ours.contains(id), "{what}: {id} missing from the filter");
    }
}

pub(crate) fn our_config() -> SdsConfig {
    SdsConfig::default()
}

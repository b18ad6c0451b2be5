//! Retrieval of missed messages by their Waku message hash (spec: relay.store): the Waku Store
//! query protocol `/vac/waku/store-query/3.0.0`, both sides, restricted to lookups by message
//! hash, over a bounded cache of the recent messages this node relayed or published.
//!
//! Why: SDS names a missing dependency by its retrieval hint (the Waku message hash) and asks the
//! transport to fetch it ([`Transport::retrieve`](crate::messaging::Transport::retrieve)). Over
//! relay nothing else would bring back a message a peer missed once its sender stopped
//! retransmitting it (it was acknowledged by the others): a participant that joined late, came
//! back after a partition or was behind a lossy link. Every node answers from its cache, so any
//! neighbour that relayed the message can serve it; nwaku nodes with a store answer too.
//!
//! Wire (nwaku's `waku_store/rpc.nim`): one varint-length-prefixed `StoreQueryRequest`, one
//! varint-length-prefixed `StoreQueryResponse` on the same stream. A response's messages are
//! checked against the hashes asked for (recomputed over our pubsub topic): a forged or unasked
//! message is dropped and counted.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::StreamProtocol;

use super::lp::LpCodec;
use crate::collections::FastMap;
use crate::messaging::MessageHash;
use crate::wire::{WakuMessage, MAX_WAKU_MESSAGE_BYTES};

/// The store query protocol id.
pub const STORE_PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/store-query/3.0.0");

/// Messages kept in the cache (the oldest go first).
pub const STORE_CACHE_MESSAGES: usize = 4096;
/// Bytes of messages kept in the cache.
pub const STORE_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Hashes asked in one query, and answered of one request (the rest of a request is ignored).
pub const MAX_HASHES_PER_QUERY: usize = 32;
/// The largest request read (32 hashes and topics fit easily).
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The largest response read or written: [`MAX_HASHES_PER_QUERY`] largest WakuMessages and framing.
pub const MAX_RESPONSE_BYTES: usize = MAX_HASHES_PER_QUERY * (MAX_WAKU_MESSAGE_BYTES + 256);
/// Peers one retrieval asks at once.
pub const MAX_QUERY_PEERS: usize = 6;
/// A hash is asked for again (SDS repeats its retrievals) at most this often.
pub const REQUERY_INTERVAL_MS: u64 = 2_000;
/// Hashes whose last query time is remembered (beyond it the oldest are forgotten).
const MAX_REMEMBERED_QUERIES: usize = 4096;
/// Status codes of a response (HTTP-like, as nwaku's).
const STATUS_OK: u32 = 200;
const STATUS_BAD_REQUEST: u32 = 400;
/// Store query timeout.
pub const STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `WakuMessageKeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WakuMessageKeyValue {
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub message_hash: Option<Bytes>,
    #[prost(message, optional, tag = "2")]
    pub message: Option<WakuMessage>,
    #[prost(string, optional, tag = "3")]
    pub pubsub_topic: Option<String>,
}

/// `StoreQueryRequest` (the fields this node reads or writes; others are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoreQueryRequest {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(bool, tag = "2")]
    pub include_data: bool,
    #[prost(string, optional, tag = "10")]
    pub pubsub_topic: Option<String>,
    #[prost(string, repeated, tag = "11")]
    pub content_topics: Vec<String>,
    #[prost(bytes = "bytes", repeated, tag = "20")]
    pub message_hashes: Vec<Bytes>,
}

/// `StoreQueryResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoreQueryResponse {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
    #[prost(message, repeated, tag = "20")]
    pub messages: Vec<WakuMessageKeyValue>,
}

/// The request-response codec of the store query protocol: a length-prefixed request of at most
/// `MAX_REQUEST_BYTES`, a response of at most [`MAX_RESPONSE_BYTES`] whose shape is checked
/// before it is decoded (`check_response_shape`).
pub type StoreCodec = LpCodec<StoreQueryRequest, StoreQueryResponse>;

impl Default for StoreCodec {
    fn default() -> Self {
        LpCodec::new(MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, check_response_shape)
    }
}

/// The store behaviour (both sides).
pub type StoreBehaviour = request_response::Behaviour<StoreCodec>;

/// A store behaviour answering and asking on [`STORE_PROTOCOL`].
pub fn behaviour() -> StoreBehaviour {
    request_response::Behaviour::new(
        [(STORE_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(STORE_TIMEOUT),
    )
}

/// Field number of `StoreQueryResponse.messages`.
const RESPONSE_MESSAGES_FIELD: u64 = 20;

/// Refuses a response with more than [`MAX_HASHES_PER_QUERY`] message entries, or that is not
/// protobuf at all, before it is decoded: decoding allocates some 200 bytes per entry, so the
/// 3-byte empty entries of a hostile response of [`MAX_RESPONSE_BYTES`] would take ~70 times its
/// size in memory. A top-level scan of the fields, no allocation.
pub(crate) fn check_response_shape(mut buf: &[u8]) -> io::Result<()> {
    use prost::encoding::decode_varint;
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("store response: {why}"));
    let mut entries = 0usize;
    while !buf.is_empty() {
        let key = decode_varint(&mut buf).map_err(|_| bad("malformed field key"))?;
        let skip = match key & 7 {
            0 => {
                decode_varint(&mut buf).map_err(|_| bad("malformed varint"))?;
                0
            }
            1 => 8,
            2 => usize::try_from(decode_varint(&mut buf).map_err(|_| bad("malformed length"))?).map_err(|_| bad("length overflow"))?,
            5 => 4,
            _ => return Err(bad("unsupported wire type")),
        };
        if skip > buf.len() {
            return Err(bad("truncated field"));
        }
        buf = &buf[skip..];
        if key >> 3 == RESPONSE_MESSAGES_FIELD {
            entries += 1;
            if entries > MAX_HASHES_PER_QUERY {
                return Err(bad(&format!("more than {MAX_HASHES_PER_QUERY} messages")));
            }
        }
    }
    Ok(())
}

/// What to do with one message of a store response (spec: relay.store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retrieved {
    /// Asked for and now found: keep it and deliver it.
    Accept,
    /// Already held (a replay, or a second peer answering the same query): dropped, counted apart
    /// from rejections since honest peers cause it too.
    Duplicate,
    /// Not what we asked for (forged, wrong hash, another topic), over the WakuMessage limit or
    /// invalid: dropped and counted.
    Reject(&'static str),
}

/// The verdict on `message` (of `size` encoded bytes, whose hash over our pubsub topic is `hash`)
/// from a peer's store response. The hash is recomputed by the caller, never taken from the
/// response: only a message asked for by that very hash is accepted. Fields the hash does not cover
/// (`rate_limit_proof`, `version`, `ephemeral`) can still be forged, so the size is checked too.
pub(crate) fn judge(cache: &MessageCache, hash: &MessageHash, message: &WakuMessage, size: usize) -> Retrieved {
    if size > MAX_WAKU_MESSAGE_BYTES {
        Retrieved::Reject("over the WakuMessage size limit")
    } else if message.payload.is_empty() || message.content_topic.is_empty() {
        Retrieved::Reject("empty payload or content topic")
    } else if cache.get(hash).is_some() {
        Retrieved::Duplicate
    } else if !cache.was_asked(hash) {
        Retrieved::Reject("not asked for (forged, wrong hash or another topic)")
    } else {
        Retrieved::Accept
    }
}

/// The node's bounded cache of recent messages by hash, and when each missing hash was last
/// asked for. Owned by the node thread.
#[derive(Default)]
pub(crate) struct MessageCache {
    messages: FastMap<MessageHash, WakuMessage>,
    order: VecDeque<(MessageHash, usize)>,
    bytes: usize,
    asked: FastMap<MessageHash, u64>,
    asked_order: VecDeque<MessageHash>,
}

impl MessageCache {
    /// Keeps `message` (of `size` encoded bytes) under `hash`, evicting the oldest beyond the bounds.
    pub fn insert(&mut self, hash: MessageHash, message: WakuMessage, size: usize) {
        if self.messages.contains_key(&hash) || size > MAX_WAKU_MESSAGE_BYTES {
            return;
        }
        while !self.order.is_empty() && (self.order.len() >= STORE_CACHE_MESSAGES || self.bytes + size > STORE_CACHE_BYTES) {
            if let Some((old, n)) = self.order.pop_front() {
                self.messages.remove(&old);
                self.bytes -= n;
            }
        }
        self.messages.insert(hash, message);
        self.order.push_back((hash, size));
        self.bytes += size;
        self.asked.remove(&hash);
    }

    pub fn get(&self, hash: &MessageHash) -> Option<&WakuMessage> {
        self.messages.get(hash)
    }

    /// The hashes of `wanted` to ask peers for now: not cached, not asked within
    /// [`REQUERY_INTERVAL_MS`]; marks them asked at `now_ms`.
    pub fn due_queries(&mut self, wanted: &[MessageHash], now_ms: u64) -> Vec<MessageHash> {
        let mut out = Vec::new();
        for h in wanted {
            if self.messages.contains_key(h) || self.asked.get(h).is_some_and(|t| now_ms < t + REQUERY_INTERVAL_MS) {
                continue;
            }
            if self.asked.insert(*h, now_ms).is_none() {
                self.asked_order.push_back(*h);
                if self.asked_order.len() > MAX_REMEMBERED_QUERIES {
                    if let Some(old) = self.asked_order.pop_front() {
                        self.asked.remove(&old);
                    }
                }
            }
            out.push(*h);
        }
        out
    }

    /// Whether `hash` was asked for and not found yet (a response may only bring those).
    pub fn was_asked(&self, hash: &MessageHash) -> bool {
        self.asked.contains_key(hash)
    }

    /// Marks `hash` found (a response brought it).
    pub fn found(&mut self, hash: &MessageHash) {
        self.asked.remove(hash);
    }
}

/// The answer to `req`: the cached messages among its first [`MAX_HASHES_PER_QUERY`] hashes, up to
/// [`MAX_RESPONSE_BYTES`]. Only lookups by hash are served.
pub(crate) fn answer(cache: &MessageCache, req: &StoreQueryRequest, pubsub_topic: &str) -> StoreQueryResponse {
    let mut res = StoreQueryResponse { request_id: req.request_id.clone(), ..Default::default() };
    if req.message_hashes.is_empty() || req.pubsub_topic.as_deref().is_some_and(|t| t != pubsub_topic) {
        res.status_code = Some(STATUS_BAD_REQUEST);
        res.status_desc = Some("only lookups by message hash on this node's pubsub topic are served".to_owned());
        return res;
    }
    let mut size = 0;
    for h in req.message_hashes.iter().take(MAX_HASHES_PER_QUERY) {
        let Ok(hash) = <MessageHash>::try_from(&h[..]) else { continue };
        let Some(m) = cache.get(&hash) else { continue };
        size += prost::Message::encoded_len(m) + 128;
        if size > MAX_RESPONSE_BYTES {
            break;
        }
        res.messages.push(WakuMessageKeyValue {
            message_hash: Some(h.clone()),
            message: req.include_data.then(|| m.clone()),
            pubsub_topic: Some(pubsub_topic.to_owned()),
        });
    }
    res.status_code = Some(STATUS_OK);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn msg(i: u8) -> WakuMessage {
        WakuMessage { payload: Bytes::from(vec![i; 10]), content_topic: "/t/1/x/proto".into(), ..Default::default() }
    }

    #[test]
    fn cache_bounds_and_answers() {
        let topic = "/waku/2/rs/42/0";
        let mut c = MessageCache::default();
        for i in 0..=255u8 {
            let m = msg(i);
            c.insert(m.hash(topic), m, 20);
        }
        let h = msg(7).hash(topic);
        assert!(c.get(&h).is_some());
        let req = StoreQueryRequest {
            request_id: "r".into(),
            include_data: true,
            pubsub_topic: Some(topic.into()),
            message_hashes: vec![Bytes::copy_from_slice(&h), Bytes::from_static(b"short"), Bytes::copy_from_slice(&[9u8; 32])],
            ..Default::default()
        };
        let res = answer(&c, &req, topic);
        assert_eq!(res.status_code, Some(STATUS_OK));
        assert_eq!(res.messages.len(), 1);
        assert_eq!(res.messages[0].message.as_ref().unwrap().hash(topic), h);
        let back = StoreQueryResponse::decode(res.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, res);
        let bad = answer(&c, &StoreQueryRequest { pubsub_topic: Some("/other".into()), ..req }, topic);
        assert_eq!(bad.status_code, Some(STATUS_BAD_REQUEST));
    }

    #[test]
    fn asks_again_only_after_the_interval() {
        let mut c = MessageCache::default();
        let h = [1u8; 32];
        assert_eq!(c.due_queries(&[h], 0), vec![h]);
        assert!(c.due_queries(&[h], REQUERY_INTERVAL_MS - 1).is_empty());
        assert_eq!(c.due_queries(&[h], REQUERY_INTERVAL_MS), vec![h]);
        assert!(c.was_asked(&h));
        c.found(&h);
        assert!(!c.was_asked(&h));
    }

    #[test]
    fn responses_with_too_many_entries_or_not_protobuf_are_refused_before_decoding() {
        let kv = |i: u8| WakuMessageKeyValue { message: Some(msg(i)), ..Default::default() };
        let ok = StoreQueryResponse { request_id: "r".into(), status_code: Some(200), messages: (0..32).map(kv).collect(), ..Default::default() };
        assert!(check_response_shape(&ok.encode_to_vec()).is_ok());
        let many = StoreQueryResponse { messages: (0..33).map(kv).collect(), ..ok };
        assert!(check_response_shape(&many.encode_to_vec()).is_err());
        // 10 000 empty entries, 3 bytes each.
        let empties: Vec<u8> = (0..10_000).flat_map(|_| [0xa2, 0x01, 0x00]).collect();
        assert!(check_response_shape(&empties).is_err());
        assert!(check_response_shape(&[0xa2, 0x01, 0x05, 1]).is_err(), "truncated");
        assert!(check_response_shape(&[0x0f]).is_err(), "wire type 7");
        assert!(check_response_shape(&[]).is_ok());
    }

    #[test]
    fn judge_accepts_only_what_was_asked_by_its_hash() {
        let topic = "/waku/2/rs/42/0";
        let mut c = MessageCache::default();
        let (asked, other) = (msg(1), msg(2));
        let (h, h_other) = (asked.hash(topic), other.hash(topic));
        c.due_queries(&[h], 0);
        assert_eq!(judge(&c, &h_other, &other, 20), Retrieved::Reject("not asked for (forged, wrong hash or another topic)"));
        assert!(matches!(judge(&c, &h, &asked, MAX_WAKU_MESSAGE_BYTES + 1), Retrieved::Reject(_)));
        let empty = WakuMessage { payload: Bytes::new(), ..asked.clone() };
        assert!(matches!(judge(&c, &empty.hash(topic), &empty, 20), Retrieved::Reject(_)));
        assert_eq!(judge(&c, &h, &asked, 20), Retrieved::Accept);
        c.found(&h);
        c.insert(h, asked.clone(), 20);
        assert_eq!(judge(&c, &h, &asked, 20), Retrieved::Duplicate);
    }

    #[test]
    fn eviction_keeps_the_byte_bound() {
        let mut c = MessageCache::default();
        let big = MAX_WAKU_MESSAGE_BYTES;
        for i in 0..(STORE_CACHE_BYTES / big + 10) {
            let m = WakuMessage { payload: Bytes::from((i as u32).to_le_bytes().to_vec()), content_topic: "/t".into(), ..Default::default() };
            c.insert(m.hash("/x"), m, big);
        }
        assert!(c.bytes <= STORE_CACHE_BYTES);
        assert_eq!(c.messages.len(), c.order.len());
    }
}

//! The SDS `Message` and `HistoryEntry`, byte-compatible with @waku/sds 0.0.8 / @waku/proto 0.0.15.
//!
//! Field order and presence follow docs/wire-format.md §2: prost emits fields in ascending tag order,
//! omits empty implicit-presence strings and emits every `optional` field that is `Some`, which is
//! exactly what the reference (protons) does. The send path encodes [`SdsMessageRef`], whose
//! fields are borrowed from the sender's state, by hand into the same bytes (tested against prost).

use bytes::Bytes;
use prost::Message as _;

use super::{check_len, WireError, MAX_CAUSAL_HISTORY_ENTRIES, MAX_ID_BYTES, MAX_REPAIR_ENTRIES, MAX_RETRIEVAL_HINT_BYTES};

/// One entry of a causal history (or repair request).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct HistoryEntry {
    #[prost(string, tag = "1")]
    pub message_id: String,
    /// Where the message can be fetched from, e.g. its Waku message hash.
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub retrieval_hint: Option<Bytes>,
    /// The original sender (used by SDS-R).
    #[prost(string, optional, tag = "3")]
    pub sender_id: Option<String>,
}

/// An SDS message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SdsMessage {
    #[prost(string, tag = "1")]
    pub sender_id: String,
    #[prost(string, tag = "2")]
    pub message_id: String,
    #[prost(string, tag = "3")]
    pub channel_id: String,
    #[prost(uint64, optional, tag = "10")]
    pub lamport_timestamp: Option<u64>,
    #[prost(message, repeated, tag = "11")]
    pub causal_history: Vec<HistoryEntry>,
    #[prost(bytes = "bytes", optional, tag = "12")]
    pub bloom_filter: Option<Bytes>,
    #[prost(message, repeated, tag = "13")]
    pub repair_request: Vec<HistoryEntry>,
    #[prost(bytes = "bytes", optional, tag = "20")]
    pub content: Option<Bytes>,
}

/// The three message classes, decided by field presence as the reference decoder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// lamport present, content non-empty.
    Content,
    /// lamport present, content absent or empty.
    Sync,
    /// lamport absent, content non-empty.
    Ephemeral,
}

impl SdsMessage {
    /// spec: sds.classes — classifies by presence; anything else is invalid.
    pub fn kind(&self) -> Result<MessageKind, WireError> {
        let has_content = self.content.as_ref().is_some_and(|c| !c.is_empty());
        match (self.lamport_timestamp.is_some(), has_content) {
            (true, true) => Ok(MessageKind::Content),
            (true, false) => Ok(MessageKind::Sync),
            (false, true) => Ok(MessageKind::Ephemeral),
            (false, false) => Err(WireError::Unclassifiable),
        }
    }

    /// Decodes and validates a message from the wire: every id within [`MAX_ID_BYTES`], history and
    /// repair lists within their caps, a classifiable kind and a non-empty message id.
    /// Zero-copy: `content` and `bloom_filter` are slices of `buf`.
    pub fn decode_bytes(buf: Bytes) -> Result<(Self, MessageKind), WireError> {
        let m = SdsMessage::decode(buf)?;
        let kind = m.validate()?;
        Ok((m, kind))
    }

    fn validate(&self) -> Result<MessageKind, WireError> {
        check_len("sender_id", self.sender_id.len(), MAX_ID_BYTES)?;
        check_len("message_id", self.message_id.len(), MAX_ID_BYTES)?;
        check_len("channel_id", self.channel_id.len(), MAX_ID_BYTES)?;
        check_len("causal_history", self.causal_history.len(), MAX_CAUSAL_HISTORY_ENTRIES)?;
        check_len("repair_request", self.repair_request.len(), MAX_REPAIR_ENTRIES)?;
        for e in self.causal_history.iter().chain(&self.repair_request) {
            e.validate()?;
        }
        if self.message_id.is_empty() {
            return Err(WireError::Invalid("message_id (empty)"));
        }
        self.kind()
    }
}

impl HistoryEntry {
    fn validate(&self) -> Result<(), WireError> {
        check_len("history message_id", self.message_id.len(), MAX_ID_BYTES)?;
        if self.message_id.is_empty() {
            return Err(WireError::Invalid("history message_id (empty)"));
        }
        if let Some(s) = &self.sender_id {
            check_len("history sender_id", s.len(), MAX_ID_BYTES)?;
        }
        if let Some(h) = &self.retrieval_hint {
            check_len("retrieval_hint", h.len(), MAX_RETRIEVAL_HINT_BYTES)?;
        }
        Ok(())
    }
}

/// A causal-history entry borrowed from wherever its owner keeps it (the local log, our previous
/// message), so that encoding copies each id and hint once, into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntryRef<'a> {
    pub message_id: &'a str,
    pub retrieval_hint: Option<&'a [u8]>,
    pub sender_id: Option<&'a str>,
}

impl<'a> From<&'a HistoryEntry> for HistoryEntryRef<'a> {
    fn from(e: &'a HistoryEntry) -> Self {
        HistoryEntryRef { message_id: &e.message_id, retrieval_hint: e.retrieval_hint.as_deref(), sender_id: e.sender_id.as_deref() }
    }
}

/// Encoded bytes of `e` as one entry of a causal history or repair request (key, length, body).
pub fn entry_field_len(e: &HistoryEntry) -> usize {
    opt_field_len(Some(e.encoded_len()))
}

/// spec: wire.published-size — fits a causal history into `room` encoded bytes: the last entries
/// of `history` (the newest: it is in lamport order), then those of `extra` not already in it,
/// each while it fits; `room` is reduced by what was kept. Returns how many entries were left out.
pub fn fit_entries(history: &mut Vec<HistoryEntry>, extra: Vec<HistoryEntry>, room: &mut usize) -> usize {
    let mut keep = history.len();
    while keep > 0 && entry_field_len(&history[keep - 1]) <= *room {
        *room -= entry_field_len(&history[keep - 1]);
        keep -= 1;
    }
    let mut left_out = keep;
    history.drain(..keep);
    for e in extra {
        if history.iter().any(|h| h.message_id == e.message_id) {
            continue;
        }
        let len = entry_field_len(&e);
        if len > *room {
            left_out += 1;
            continue;
        }
        *room -= len;
        history.push(e);
    }
    left_out
}

impl HistoryEntryRef<'_> {
    /// Encoded bytes of this entry in a causal history (key, length, body).
    pub fn field_len(&self) -> usize {
        opt_field_len(Some(self.body_len()))
    }

    /// Encoded length of the `HistoryEntry` body.
    fn body_len(&self) -> usize {
        opt_field_len((!self.message_id.is_empty()).then_some(self.message_id.len()))
            + opt_field_len(self.retrieval_hint.map(<[u8]>::len))
            + opt_field_len(self.sender_id.map(str::len))
    }
}

/// An SDS message whose fields are borrowed from the sender's state: [`Self::encode`] writes the
/// exact bytes prost writes for the equal [`SdsMessage`], without building one first. This is the
/// send hot path (every wrap and sync): one exact-size allocation and one copy of each id, history
/// entry, the bloom filter and the content; no `String` or `Bytes` copies of the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct SdsMessageRef<'a> {
    pub sender_id: &'a str,
    pub message_id: &'a str,
    pub channel_id: &'a str,
    pub lamport_timestamp: Option<u64>,
    pub causal_history: &'a [HistoryEntryRef<'a>],
    pub bloom_filter: Option<&'a [u8]>,
    /// Repair requests are rare and short (at most [`MAX_REPAIR_ENTRIES`]): owned entries.
    pub repair_request: &'a [HistoryEntry],
    pub content: Option<&'a [u8]>,
}

impl SdsMessageRef<'_> {
    /// Length of [`Self::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let s = |x: &str| (!x.is_empty()).then_some(x.len());
        let mut len = opt_field_len(s(self.sender_id)) + opt_field_len(s(self.message_id)) + opt_field_len(s(self.channel_id));
        len += self.lamport_timestamp.map_or(0, |l| 1 + prost::encoding::encoded_len_varint(l));
        len += self.causal_history.iter().map(|e| opt_field_len(Some(e.body_len()))).sum::<usize>();
        len += opt_field_len(self.bloom_filter.map(<[u8]>::len));
        len += self.repair_request.iter().map(|e| opt_field_len(Some(e.encoded_len()))).sum::<usize>();
        len += self.content.map_or(0, |c| 2 + prost::length_delimiter_len(c.len()) + c.len());
        len
    }

    /// Writes the message by hand, byte-identical to prost (and so to protons): fields in tag
    /// order, empty implicit-presence strings omitted, optional fields emitted when set.
    pub fn encode(&self) -> Bytes {
        let len = self.encoded_len();
        let mut buf = Vec::with_capacity(len);
        if !self.sender_id.is_empty() {
            put_field(&mut buf, &[0x0a], self.sender_id.as_bytes());
        }
        if !self.message_id.is_empty() {
            put_field(&mut buf, &[0x12], self.message_id.as_bytes());
        }
        if !self.channel_id.is_empty() {
            put_field(&mut buf, &[0x1a], self.channel_id.as_bytes());
        }
        if let Some(l) = self.lamport_timestamp {
            buf.push(0x50);
            prost::encoding::encode_varint(l, &mut buf);
        }
        for e in self.causal_history {
            buf.push(0x5a);
            prost::encoding::encode_varint(e.body_len() as u64, &mut buf);
            if !e.message_id.is_empty() {
                put_field(&mut buf, &[0x0a], e.message_id.as_bytes());
            }
            if let Some(h) = e.retrieval_hint {
                put_field(&mut buf, &[0x12], h);
            }
            if let Some(snd) = e.sender_id {
                put_field(&mut buf, &[0x1a], snd.as_bytes());
            }
        }
        if let Some(b) = self.bloom_filter {
            put_field(&mut buf, &[0x62], b);
        }
        for e in self.repair_request {
            prost::encoding::message::encode(13, e, &mut buf);
        }
        if let Some(c) = self.content {
            put_field(&mut buf, &[0xa2, 0x01], c);
        }
        debug_assert_eq!(buf.len(), len);
        Bytes::from(buf)
    }
}

/// Length of a length-delimited field with a one-byte key (tags 1–15) and `len` bytes of value.
fn opt_field_len(len: Option<usize>) -> usize {
    len.map_or(0, |l| 1 + prost::length_delimiter_len(l) + l)
}

fn put_field(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    buf.extend_from_slice(key);
    prost::encoding::encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written encoder produces exactly prost's bytes for every combination of presence.
    #[test]
    fn hand_encoder_matches_prost() {
        let hints = [None, Some(Bytes::new()), Some(Bytes::from_static(&[7; 32]))];
        let senders = [None, Some(String::new()), Some("alice".to_owned())];
        let ids = ["", "m", &"f".repeat(200)];
        let mut cases = 0;
        for sender in ["", "bob"] {
            for channel in ["", "chan"] {
                for lamport in [None, Some(0), Some(1_700_000_000_000)] {
                    for (bloom, content) in [(None, None), (Some(vec![1u8; 300]), Some(vec![9u8; 200])), (None, Some(vec![1u8]))] {
                        for id in ids {
                            let history: Vec<HistoryEntry> = hints
                                .iter()
                                .zip(senders.iter())
                                .map(|(h, s)| HistoryEntry { message_id: id.to_owned(), retrieval_hint: h.clone(), sender_id: s.clone() })
                                .collect();
                            let repair = vec![HistoryEntry { message_id: "r".into(), retrieval_hint: None, sender_id: Some("x".into()) }];
                            let refs: Vec<HistoryEntryRef<'_>> = history.iter().map(HistoryEntryRef::from).collect();
                            let msg = SdsMessageRef {
                                sender_id: sender,
                                message_id: id,
                                channel_id: channel,
                                lamport_timestamp: lamport,
                                causal_history: &refs,
                                bloom_filter: bloom.as_deref(),
                                repair_request: &repair,
                                content: content.as_deref(),
                            };
                            let (ours_len, ours) = (msg.encoded_len(), msg.encode());
                            let want = SdsMessage {
                                sender_id: sender.into(),
                                message_id: id.into(),
                                channel_id: channel.into(),
                                lamport_timestamp: lamport,
                                causal_history: history,
                                bloom_filter: bloom.clone().map(Bytes::from),
                                repair_request: repair,
                                content: content.clone().map(Bytes::from),
                            }
                            .encode_to_vec();
                            assert_eq!(ours_len, want.len());
                            assert_eq!(ours.to_vec(), want);
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 2 * 2 * 3 * 3 * 3);
    }
}

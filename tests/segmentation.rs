//! Segmentation: segment → frames → reassemble, every discard rule, loss reports, bounds, expiry.

use bytes::Bytes;
use proptest::prelude::*;
use rand::{rngs::SmallRng, Rng, SeedableRng};

use reliable_channel::segmentation::{
    chunk_count, new_request_id, segment, ChunkOutcome, Completed, DiscardReason, Lost, LostReason, Reassembler, ReassemblyConfig, SegmentError,
    DEFAULT_CHUNK_SIZE_BYTES, DEFAULT_REASSEMBLY_EXPIRY_MS, MAX_PAYLOAD_BYTES,
};
use reliable_channel::wire::MessageChunk;

fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng(seed).fill(&mut v[..]);
    v
}

/// Segments and decodes the frames back into chunks.
fn chunks(data: &[u8], chunk_size: usize, rid: &str, seed: u64) -> Vec<MessageChunk> {
    segment(data, chunk_size, rid, &mut rng(seed)).unwrap().into_iter().map(|f| MessageChunk::decode_bytes(Bytes::from(f)).unwrap()).collect()
}

fn small_cfg(max_bytes: usize, max_messages: usize) -> ReassemblyConfig {
    ReassemblyConfig { max_bytes, max_messages, ..ReassemblyConfig::default() }
}

fn complete(o: ChunkOutcome) -> Completed {
    match o {
        ChunkOutcome::Complete(c) => c,
        other => panic!("expected Complete, got {other:?}"),
    }
}

fn drain_lost(r: &mut Reassembler) -> Vec<Lost> {
    std::iter::from_fn(|| r.poll_lost()).collect()
}

/// Feeds all chunks but the last (each must be Pending) and returns the last one's outcome.
fn feed_all(r: &mut Reassembler, now: u64, sender: &str, cs: Vec<MessageChunk>) -> ChunkOutcome {
    let n = cs.len();
    let mut out = ChunkOutcome::Pending;
    for (i, c) in cs.into_iter().enumerate() {
        out = r.on_chunk(now, sender, c);
        if i + 1 < n {
            assert_eq!(out, ChunkOutcome::Pending, "chunk {i} of {n}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Segmenting

#[test]
fn round_trips_at_the_size_edges() {
    for cs in [DEFAULT_CHUNK_SIZE_BYTES, 1000, 7] {
        let mut sizes = vec![1, cs - 1, cs, cs + 1, 3 * cs + 2];
        if cs >= 1000 {
            sizes.push(MAX_PAYLOAD_BYTES);
        }
        for (i, len) in sizes.into_iter().filter(|&l| l > 0).enumerate() {
            let data = payload(len, i as u64);
            let rid = new_request_id(&mut rng(len as u64));
            let cs_ = chunks(&data, cs, &rid, 9);
            assert_eq!(cs_.len(), chunk_count(len, cs), "len {len} cs {cs}");
            let mut r = Reassembler::default();
            let c = complete(feed_all(&mut r, 1, "alice", cs_));
            assert_eq!(c.payload, data, "len {len} cs {cs}");
            assert_eq!((c.sender_id.as_str(), c.request_id.as_str()), ("alice", rid.as_str()));
            assert_eq!((r.bytes(), r.len()), (0, 0));
            assert_eq!(r.stats().completed, 1);
            assert_eq!(r.stats().discarded.total(), 0);
            assert!(r.poll_lost().is_none());
        }
    }
}

#[test]
fn refusals() {
    let mut g = rng(1);
    assert_eq!(segment(b"", 10, "r", &mut g), Err(SegmentError::Empty));
    let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        segment(&big, DEFAULT_CHUNK_SIZE_BYTES, "r", &mut g),
        Err(SegmentError::TooLarge { len: MAX_PAYLOAD_BYTES + 1, max: MAX_PAYLOAD_BYTES })
    );
    assert_eq!(segment(b"abc", 0, "r", &mut g), Err(SegmentError::InvalidChunkSize));
    assert!(segment(&big[..MAX_PAYLOAD_BYTES], DEFAULT_CHUNK_SIZE_BYTES, "r", &mut g).is_ok());
}

#[test]
fn chain_fields_are_exact() {
    let data = payload(25, 3);
    let cs = chunks(&data, 10, "0123456789abcdef0123", 4);
    assert_eq!(cs.len(), 3);
    let mut ids = std::collections::BTreeSet::new();
    for (i, c) in cs.iter().enumerate() {
        let u = uuid::Uuid::parse_str(&c.chunk_id).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(c.chunk_id, u.to_string(), "lowercase hyphenated");
        assert!(ids.insert(c.chunk_id.clone()));
        assert_eq!(c.chunk_index, i as u32);
        assert_eq!(c.last_chunk_index, 2);
        assert_eq!(c.request_id, "0123456789abcdef0123");
        let prev = if i == 0 { String::new() } else { cs[i - 1].chunk_id.clone() };
        assert_eq!(c.previous_chunk_id, prev);
        assert_eq!(&c.payload[..], &data[i * 10..(i * 10 + 10).min(25)]);
    }
    // Same seed, same frames.
    assert_eq!(segment(&data, 10, "x", &mut rng(4)), segment(&data, 10, "x", &mut rng(4)));
    assert_ne!(segment(&data, 10, "x", &mut rng(4)), segment(&data, 10, "x", &mut rng(5)));
    // A single-chunk message is framed too.
    let one = chunks(b"hi", DEFAULT_CHUNK_SIZE_BYTES, "r", 1);
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].chunk_index, one[0].last_chunk_index, one[0].previous_chunk_id.as_str()), (0, 0, ""));
}

#[test]
fn request_id_format() {
    let mut g = rng(7);
    let a = new_request_id(&mut g);
    let b = new_request_id(&mut g);
    assert_ne!(a, b);
    for id in [a, b] {
        assert_eq!(id.len(), 20);
        assert!(id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{id}");
    }
    assert_eq!(new_request_id(&mut rng(8)), new_request_id(&mut rng(8)));
}

#[test]
fn chunk_count_matches_segment() {
    assert_eq!(chunk_count(1, 10), 1);
    assert_eq!(chunk_count(10, 10), 1);
    assert_eq!(chunk_count(11, 10), 2);
    assert_eq!(chunk_count(MAX_PAYLOAD_BYTES, DEFAULT_CHUNK_SIZE_BYTES), 11);
    assert_eq!(chunk_count(3, 0), 0);
}

// ---------------------------------------------------------------------------------------------
// Reassembly: acceptance and discard rules

#[test]
fn zero_length_single_chunk_completes_unbuffered() {
    let mut r = Reassembler::default();
    let c = MessageChunk {
        chunk_id: "id".into(),
        previous_chunk_id: String::new(),
        chunk_index: 0,
        last_chunk_index: 0,
        request_id: "r".into(),
        payload: Bytes::new(),
    };
    assert!(complete(r.on_chunk(0, "s", c)).payload.is_empty());
    assert_eq!((r.bytes(), r.len(), r.next_deadline()), (0, 0, None));
}

#[test]
fn single_chunk_over_max_payload_is_discarded() {
    let mut r = Reassembler::new(ReassemblyConfig { max_payload_bytes: 4, ..ReassemblyConfig::default() });
    let c = chunks(b"12345", 10, "r", 1).remove(0);
    assert_eq!(r.on_chunk(0, "s", c), ChunkOutcome::Discarded(DiscardReason::TooLarge));
    assert_eq!(r.stats().discarded.too_large, 1);
}

/// A 4-chunk message of 35 bytes (chunk size 10) whose chunks get tampered with.
fn four() -> (Vec<u8>, Vec<MessageChunk>) {
    let data = payload(35, 11);
    let cs = chunks(&data, 10, "req", 12);
    assert_eq!(cs.len(), 4);
    (data, cs)
}

/// Applies `bad` after chunks 0..=1 were accepted; the honest chunks 2, 3 must still complete.
fn assert_discard_keeps_partial(bad: impl FnOnce(&[MessageChunk]) -> MessageChunk, want: DiscardReason) {
    let (data, cs) = four();
    let mut r = Reassembler::default();
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(0, "s", cs[1].clone()), ChunkOutcome::Pending);
    let forged = bad(&cs);
    assert_eq!(r.on_chunk(0, "s", forged), ChunkOutcome::Discarded(want));
    assert_eq!(r.stats().discarded.get(want), 1);
    assert_eq!(r.stats().discarded.total(), 1);
    assert_eq!(r.bytes(), 20);
    assert_eq!(r.on_chunk(0, "s", cs[2].clone()), ChunkOutcome::Pending);
    assert_eq!(complete(r.on_chunk(0, "s", cs[3].clone())).payload, data);
    assert!(r.poll_lost().is_none());
}

#[test]
fn forged_previous_chunk_id_is_discarded() {
    assert_discard_keeps_partial(|cs| MessageChunk { previous_chunk_id: cs[0].chunk_id.clone(), ..cs[2].clone() }, DiscardReason::ForgedChain);
    assert_discard_keeps_partial(
        |cs| MessageChunk { previous_chunk_id: "not-an-id".into(), payload: Bytes::from(vec![0; 10]), ..cs[2].clone() },
        DiscardReason::ForgedChain,
    );
}

#[test]
fn replayed_index_is_discarded() {
    assert_discard_keeps_partial(|cs| cs[1].clone(), DiscardReason::UnexpectedIndex);
}

#[test]
fn mismatched_last_chunk_index_is_discarded() {
    assert_discard_keeps_partial(|cs| MessageChunk { last_chunk_index: 5, ..cs[2].clone() }, DiscardReason::MismatchedLastIndex);
}

#[test]
fn wrong_sizes_are_discarded() {
    // Middle chunk shorter or longer than chunk 0.
    assert_discard_keeps_partial(|cs| MessageChunk { payload: cs[2].payload.slice(..9), ..cs[2].clone() }, DiscardReason::WrongSize);
    assert_discard_keeps_partial(|cs| MessageChunk { payload: Bytes::from(vec![1; 11]), ..cs[2].clone() }, DiscardReason::WrongSize);
    // Last chunk larger than the chunk size, or empty.
    let (_, cs) = four();
    let mut r = Reassembler::default();
    for c in &cs[..3] {
        assert_eq!(r.on_chunk(0, "s", c.clone()), ChunkOutcome::Pending);
    }
    let big = MessageChunk { payload: Bytes::from(vec![1; 11]), ..cs[3].clone() };
    assert_eq!(r.on_chunk(0, "s", big), ChunkOutcome::Discarded(DiscardReason::WrongSize));
    let empty = MessageChunk { payload: Bytes::new(), ..cs[3].clone() };
    assert_eq!(r.on_chunk(0, "s", empty), ChunkOutcome::Discarded(DiscardReason::WrongSize));
    // Full-size last chunk is fine.
    let full = MessageChunk { payload: Bytes::from(vec![1; 10]), ..cs[3].clone() };
    assert_eq!(complete(r.on_chunk(0, "s", full)).payload.len(), 40);
    // An empty first chunk of a multi-chunk message gives no chunk size.
    let mut r = Reassembler::default();
    let empty0 = MessageChunk { payload: Bytes::new(), ..cs[0].clone() };
    assert_eq!(r.on_chunk(0, "s", empty0), ChunkOutcome::Discarded(DiscardReason::WrongSize));
    assert_eq!(r.len(), 0);
}

#[test]
fn huge_last_chunk_index_is_discarded() {
    let (_, cs) = four();
    let mut r = Reassembler::default();
    // 10-byte chunks: the first `last` chunks are full, so last * 10 < 1 MiB, i.e. last <= 104,857.
    let over = MessageChunk { last_chunk_index: (MAX_PAYLOAD_BYTES / 10 + 1) as u32, ..cs[0].clone() };
    assert_eq!(r.on_chunk(0, "s", over), ChunkOutcome::Discarded(DiscardReason::TooLarge));
    let max = MessageChunk { last_chunk_index: u32::MAX, ..cs[0].clone() };
    assert_eq!(r.on_chunk(0, "s", max), ChunkOutcome::Discarded(DiscardReason::TooLarge));
    assert_eq!(r.stats().discarded.too_large, 2);
    assert_eq!(r.len(), 0);
    let edge = MessageChunk { last_chunk_index: (MAX_PAYLOAD_BYTES / 10) as u32, ..cs[0].clone() };
    assert_eq!(r.on_chunk(0, "s", edge), ChunkOutcome::Pending);
}

#[test]
fn last_chunk_cannot_push_the_message_over_the_maximum() {
    let mut r = Reassembler::new(ReassemblyConfig { max_payload_bytes: 25, ..ReassemblyConfig::default() });
    let cs = chunks(&payload(30, 1), 10, "r", 1);
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(0, "s", cs[1].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(0, "s", cs[2].clone()), ChunkOutcome::Discarded(DiscardReason::TooLarge));
    let five = MessageChunk { payload: cs[2].payload.slice(..5), ..cs[2].clone() };
    assert_eq!(complete(r.on_chunk(0, "s", five)).payload.len(), 25);
    // A first chunk announcing more than the maximum is refused outright.
    let cs = chunks(&payload(31, 2), 10, "q", 2);
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Discarded(DiscardReason::TooLarge));
}

#[test]
fn duplicate_first_chunk_is_discarded() {
    let (data, cs) = four();
    let mut r = Reassembler::default();
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Discarded(DiscardReason::DuplicateFirstChunk));
    let other = chunks(b"x", 10, "req", 99).remove(0); // a single-chunk message under the same key
    assert_eq!(r.on_chunk(0, "s", other), ChunkOutcome::Discarded(DiscardReason::DuplicateFirstChunk));
    assert_eq!(r.stats().discarded.duplicate_first_chunk, 2);
    for c in &cs[1..3] {
        assert_eq!(r.on_chunk(0, "s", c.clone()), ChunkOutcome::Pending);
    }
    assert_eq!(complete(r.on_chunk(0, "s", cs[3].clone())).payload, data);
    // Once complete, the key is finished: replays are discarded, never reported.
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    assert_eq!(r.on_chunk(0, "s", cs[3].clone()), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    assert!(r.poll_lost().is_none());
}

#[test]
fn malformed_chunks_are_discarded() {
    let (_, cs) = four();
    let mut r = Reassembler::default();
    let cases = [
        MessageChunk { chunk_index: 4, ..cs[3].clone() },
        MessageChunk { previous_chunk_id: "x".into(), ..cs[0].clone() },
        MessageChunk { previous_chunk_id: String::new(), ..cs[1].clone() },
        MessageChunk { chunk_id: String::new(), ..cs[0].clone() },
        MessageChunk { request_id: "r".repeat(257), ..cs[0].clone() },
    ];
    for c in cases {
        assert_eq!(r.on_chunk(0, "s", c), ChunkOutcome::Discarded(DiscardReason::Malformed));
    }
    assert_eq!(r.on_chunk(0, &"s".repeat(257), cs[0].clone()), ChunkOutcome::Discarded(DiscardReason::Malformed));
    assert_eq!(r.stats().discarded.malformed, 6);
    assert_eq!((r.len(), r.bytes()), (0, 0));
    assert!(r.poll_lost().is_none());
}

// ---------------------------------------------------------------------------------------------
// Loss reports

/// Chunk 1 lost by SDS: the chunks after it cannot be linked to chunk 0. They are discarded
/// alone (a forger could send the same), and the partial ends by expiry, reported once.
/// (This used to end the partial at once as a "broken chain": see `forged_chunk_never_destroys_a_partial`.)
#[test]
fn gap_is_discarded_alone_and_the_partial_expires() {
    let (_, cs) = four();
    let mut r = Reassembler::default();
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(1, "s", cs[2].clone()), ChunkOutcome::Discarded(DiscardReason::Gap));
    assert_eq!(r.on_chunk(2, "s", cs[3].clone()), ChunkOutcome::Discarded(DiscardReason::Gap));
    assert!(r.poll_lost().is_none());
    assert_eq!((r.len(), r.bytes()), (1, 10));
    assert_eq!(r.stats().discarded.gap, 2);
    r.handle_timeout(DEFAULT_REASSEMBLY_EXPIRY_MS);
    let lost = drain_lost(&mut r);
    assert_eq!(
        lost,
        vec![Lost {
            sender_id: "s".into(),
            request_id: "req".into(),
            reason: LostReason::Expired { after_ms: DEFAULT_REASSEMBLY_EXPIRY_MS, received: 1, total: 4 }
        }]
    );
    assert_eq!((r.len(), r.bytes()), (0, 0));
    // Reported once: the message is finished now.
    assert_eq!(r.on_chunk(DEFAULT_REASSEMBLY_EXPIRY_MS, "s", cs[1].clone()), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    assert!(r.poll_lost().is_none());
    assert_eq!(r.stats().lost.total(), 1);
}

/// Issue #10 item 7: one chunk with the real request id, `chunk_index = 2` and a garbage
/// `previous_chunk_id` made the receiver drop the partial as a broken chain and then discard the
/// real chunks as belonging to a finished message. A chunk whose link cannot be verified is now
/// discarded alone: the real 3-chunk message still arrives, whatever the forgery's index and
/// whenever it comes (before the first chunk, between chunks, or many of them).
#[test]
fn forged_chunk_never_destroys_a_partial() {
    let data = payload(25, 7);
    let cs = chunks(&data, 10, "req", 8);
    assert_eq!(cs.len(), 3);
    let forged = |k: u32, prev: &str, len: usize| MessageChunk {
        chunk_id: format!("forged-{k}-{prev}"),
        previous_chunk_id: prev.into(),
        chunk_index: k,
        last_chunk_index: 2,
        request_id: "req".into(),
        payload: Bytes::from(vec![0xee; len]),
    };
    // The issue's case: the forgery lands after chunk 0.
    let mut r = Reassembler::default();
    assert_eq!(r.on_chunk(0, "alice", cs[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(0, "alice", forged(2, "garbage", 5)), ChunkOutcome::Discarded(DiscardReason::Gap));
    assert_eq!(r.on_chunk(0, "alice", cs[1].clone()), ChunkOutcome::Pending);
    assert_eq!(complete(r.on_chunk(0, "alice", cs[2].clone())).payload, data);
    assert!(r.poll_lost().is_none());
    assert_eq!(r.stats().discarded.total(), 1);

    // Every index, before the first chunk and between each pair of real chunks.
    let every = |r: &mut Reassembler| {
        for (k, len) in [(1, 10), (2, 5), (2, 10), (1, 3)] {
            let out = r.on_chunk(0, "alice", forged(k, "garbage", len));
            assert!(matches!(out, ChunkOutcome::Discarded(_)), "forged chunk {k} accepted: {out:?}");
        }
    };
    let mut r = Reassembler::default();
    every(&mut r);
    assert_eq!(r.stats().discarded.missing_first_chunk, 4);
    assert_eq!(r.on_chunk(0, "alice", cs[0].clone()), ChunkOutcome::Pending);
    every(&mut r);
    assert_eq!(r.on_chunk(0, "alice", cs[1].clone()), ChunkOutcome::Pending);
    every(&mut r);
    assert_eq!((r.len(), r.bytes()), (1, 20), "the partial is exactly the real chunks");
    assert_eq!(complete(r.on_chunk(0, "alice", cs[2].clone())).payload, data);
    assert!(r.poll_lost().is_none(), "nothing reported lost");
    assert_eq!(r.stats().lost.total(), 0);
    // Once complete, forgeries (and replays) are discarded as finished, never delivered.
    every(&mut r);
    assert_eq!(r.stats().discarded.already_finished, 4);
    assert_eq!(r.stats().completed, 1);
}

#[test]
fn skipping_chunk_that_does_not_fit_the_message_is_not_a_gap() {
    let (_, cs) = four();
    let mut r = Reassembler::default();
    assert_eq!(r.on_chunk(0, "s", cs[0].clone()), ChunkOutcome::Pending);
    let wrong = MessageChunk { last_chunk_index: 9, ..cs[2].clone() };
    assert_eq!(r.on_chunk(0, "s", wrong), ChunkOutcome::Discarded(DiscardReason::MismatchedLastIndex));
    assert_eq!(r.len(), 1);
    assert!(r.poll_lost().is_none());
}

/// A later chunk without its first cannot be linked to anything: discarded alone, not reported
/// and not remembered, so a first chunk arriving after it still opens the message. (It used to be
/// reported lost and remembered as finished, which let a forged chunk sent ahead of a real
/// message destroy it.)
#[test]
fn missing_first_chunk_is_discarded_alone() {
    let (data, cs) = four();
    let mut r = Reassembler::default();
    for c in &cs[1..] {
        assert_eq!(r.on_chunk(0, "s", c.clone()), ChunkOutcome::Discarded(DiscardReason::MissingFirstChunk));
    }
    assert!(r.poll_lost().is_none());
    assert_eq!((r.len(), r.bytes()), (0, 0));
    assert_eq!(r.stats().discarded.missing_first_chunk, 3);
    // The first chunk still opens it, and the message completes.
    assert_eq!(complete(feed_all(&mut r, 0, "s", cs.clone())).payload, data);
    // Another sender's message with the same request id is another key.
    assert_eq!(r.on_chunk(0, "t", cs[1].clone()), ChunkOutcome::Discarded(DiscardReason::MissingFirstChunk));
    assert_eq!(r.stats().lost.total(), 0);
}

/// A single-chunk message is remembered like any other: a copy wrapped in another SDS message
/// (SDS dedups by message id only) is not delivered a second time.
#[test]
fn single_chunk_message_is_delivered_once() {
    let mut r = Reassembler::default();
    let c = chunks(b"hello", 10, "one", 3).remove(0);
    assert_eq!(complete(r.on_chunk(0, "s", c.clone())).payload, b"hello");
    assert_eq!(r.on_chunk(1, "s", c.clone()), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    let other_payload = MessageChunk { chunk_id: "copy".into(), payload: Bytes::from_static(b"forged"), ..c.clone() };
    assert_eq!(r.on_chunk(2, "s", other_payload), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    // Same request id from another sender: another message.
    assert_eq!(complete(r.on_chunk(3, "t", c)).sender_id, "t");
    assert_eq!(r.stats().completed, 2);
}

#[test]
fn count_bound_evicts_the_oldest() {
    let mut r = Reassembler::new(small_cfg(1 << 20, 2));
    let msgs: Vec<_> = (0..3).map(|i| (payload(25, i), chunks(&payload(25, i), 10, &format!("r{i}"), i))).collect();
    // Same time for all: arrival order breaks the tie.
    for (_, cs) in &msgs {
        assert_eq!(r.on_chunk(5, "s", cs[0].clone()), ChunkOutcome::Pending);
    }
    assert_eq!(r.len(), 2);
    let lost = drain_lost(&mut r);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].request_id, "r0");
    assert_eq!(lost[0].reason, LostReason::Evicted { received: 1, total: 3 });
    assert_eq!(lost[0].reason.to_string(), "evicted from the full reassembly buffer with 1 of 3 chunks");
    for (data, cs) in &msgs[1..] {
        assert_eq!(r.on_chunk(5, "s", cs[1].clone()), ChunkOutcome::Pending);
        assert_eq!(&complete(r.on_chunk(5, "s", cs[2].clone())).payload, data);
    }
    assert_eq!(r.on_chunk(5, "s", msgs[0].1[1].clone()), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    assert!(r.poll_lost().is_none());
    assert_eq!(r.stats().lost.evicted, 1);
}

#[test]
fn byte_bound_evicts_the_oldest_other_partial() {
    // Chunk size 100, 3-chunk messages buffer at most 200 bytes each.
    let mut r = Reassembler::new(small_cfg(250, 10));
    let a = payload(300, 1);
    let b = payload(300, 2);
    let ca = chunks(&a, 100, "a", 1);
    let cb = chunks(&b, 100, "b", 2);
    assert_eq!(r.on_chunk(1, "s", ca[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(2, "s", cb[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.bytes(), 200);
    // a's chunk 1 needs 100 more bytes: a is the oldest but it is the one growing, so b goes.
    assert_eq!(r.on_chunk(3, "s", ca[1].clone()), ChunkOutcome::Pending);
    assert_eq!(r.bytes(), 200);
    let lost = drain_lost(&mut r);
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].request_id.as_str(), lost[0].reason), ("b", LostReason::Evicted { received: 1, total: 3 }));
    // The last chunk completes without being buffered.
    assert_eq!(complete(r.on_chunk(4, "s", ca[2].clone())).payload, a);
    assert_eq!(r.bytes(), 0);
    // A message that cannot fit even alone is refused at its first chunk.
    let big = chunks(&payload(400, 3), 100, "big", 3);
    assert_eq!(r.on_chunk(5, "s", big[0].clone()), ChunkOutcome::Discarded(DiscardReason::NoRoom));
    assert_eq!(r.stats().discarded.no_room, 1);
    // Zero open messages allowed: every multi-chunk message is refused, single ones still pass.
    let mut r = Reassembler::new(small_cfg(1000, 0));
    assert_eq!(r.on_chunk(0, "s", ca[0].clone()), ChunkOutcome::Discarded(DiscardReason::NoRoom));
    assert_eq!(complete(r.on_chunk(0, "s", chunks(b"hey", 100, "x", 0).remove(0))).payload, b"hey");
}

#[test]
fn expiry_and_next_deadline() {
    let mut r = Reassembler::default();
    let (_, cs) = four();
    let other = chunks(&payload(30, 5), 10, "other", 5);
    assert_eq!(r.next_deadline(), None);
    assert_eq!(r.on_chunk(1_000, "s", cs[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(2_000, "s", other[0].clone()), ChunkOutcome::Pending);
    assert_eq!(r.on_chunk(3_000, "s", cs[1].clone()), ChunkOutcome::Pending);
    let d = 1_000 + DEFAULT_REASSEMBLY_EXPIRY_MS;
    assert_eq!(r.next_deadline(), Some(d));
    r.handle_timeout(d - 1);
    assert!(r.poll_lost().is_none());
    r.handle_timeout(d);
    let lost = drain_lost(&mut r);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].request_id, "req");
    assert_eq!(lost[0].reason, LostReason::Expired { after_ms: DEFAULT_REASSEMBLY_EXPIRY_MS, received: 2, total: 4 });
    assert_eq!(lost[0].reason.to_string(), "reassembly expired after 300000 ms with 2 of 4 chunks");
    assert_eq!(r.next_deadline(), Some(2_000 + DEFAULT_REASSEMBLY_EXPIRY_MS));
    assert_eq!((r.len(), r.bytes()), (1, 10));
    // A chunk arriving after the deadline finds the partial expired, even without handle_timeout.
    let late = 2_000 + DEFAULT_REASSEMBLY_EXPIRY_MS;
    assert_eq!(r.on_chunk(late, "s", other[1].clone()), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    assert_eq!(drain_lost(&mut r).len(), 1);
    assert_eq!(r.next_deadline(), None);
    // Time never goes backwards: an older `now` does not revive anything.
    r.handle_timeout(0);
    assert_eq!(r.stats().lost.expired, 2);
    assert_eq!(r.bytes(), 0);
}

#[test]
fn interleaved_senders_and_messages() {
    let mut r = Reassembler::default();
    let senders = ["alice", "bob", "carol"];
    // Every sender uses the same request ids: the key is (sender, request id).
    let mut streams: Vec<(usize, Vec<u8>, Vec<MessageChunk>)> = Vec::new();
    for (s, _) in senders.iter().enumerate() {
        for m in 0..2u64 {
            let data = payload(15 + 10 * (s + m as usize), (s as u64) * 10 + m);
            let cs = chunks(&data, 7, &format!("req{m}"), (s as u64) * 10 + m);
            streams.push((s, data, cs));
        }
    }
    let mut pos = vec![0usize; streams.len()];
    let mut done = Vec::new();
    let mut g = rng(42);
    let mut now = 0;
    while pos.iter().zip(&streams).any(|(p, (_, _, cs))| *p < cs.len()) {
        let i = g.gen_range(0..streams.len());
        let (s, data, cs) = &streams[i];
        if pos[i] == cs.len() {
            continue;
        }
        now += 1;
        match r.on_chunk(now, senders[*s], cs[pos[i]].clone()) {
            ChunkOutcome::Pending => assert!(pos[i] + 1 < cs.len()),
            ChunkOutcome::Complete(c) => {
                assert_eq!(pos[i] + 1, cs.len());
                assert_eq!(&c.payload, data);
                assert_eq!(c.sender_id, senders[*s]);
                done.push(i);
            }
            d => panic!("{d:?}"),
        }
        pos[i] += 1;
    }
    done.sort();
    assert_eq!(done, (0..streams.len()).collect::<Vec<_>>());
    assert_eq!(r.stats().completed, 6);
    assert_eq!(r.stats().discarded.total() + r.stats().lost.total(), 0);
    assert_eq!((r.len(), r.bytes()), (0, 0));
}

#[test]
fn discard_reasons_display() {
    assert_eq!(DiscardReason::ForgedChain.to_string(), "previous_chunk_id does not match the last accepted chunk");
    assert_eq!(DiscardReason::Gap.to_string(), "chunk skips ahead of the next expected one: its link cannot be verified");
}

// ---------------------------------------------------------------------------------------------
// Properties

/// How a chunk of an honest stream is tampered with before delivery.
#[derive(Debug, Clone)]
enum Mutation {
    Keep,
    Drop,
    Duplicate,
    Index(u32),
    Last(u32),
    Prev(String),
    Truncate(usize),
    Extend(usize),
    Sender(u8),
    Request(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => Just(Mutation::Keep),
        1 => Just(Mutation::Drop),
        1 => Just(Mutation::Duplicate),
        1 => (0u32..8).prop_map(Mutation::Index),
        1 => prop_oneof![0u32..8, Just(u32::MAX)].prop_map(Mutation::Last),
        1 => prop_oneof![Just(String::new()), "[a-f0-9-]{1,8}"].prop_map(Mutation::Prev),
        1 => (0usize..20).prop_map(Mutation::Truncate),
        1 => (1usize..20).prop_map(Mutation::Extend),
        1 => (0u8..3).prop_map(Mutation::Sender),
        1 => (0u8..3).prop_map(Mutation::Request),
    ]
}

/// A message: sender, payload length, chunk size.
fn message() -> impl Strategy<Value = (u8, usize, usize)> {
    (0u8..3, 1usize..120, 1usize..40)
}

fn raw_chunk() -> impl Strategy<Value = MessageChunk> {
    ("[a-z0-9]{0,4}", "[a-z0-9]{0,4}", 0u32..6, prop_oneof![0u32..6, any::<u32>()], "r[0-3]", proptest::collection::vec(any::<u8>(), 0..60)).prop_map(
        |(id, prev, k, last, rid, p)| MessageChunk {
            chunk_id: id,
            previous_chunk_id: prev,
            chunk_index: k,
            last_chunk_index: last,
            request_id: rid,
            payload: Bytes::from(p),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutated, shuffled, forged and raw chunks: never a panic, bounds always hold, bytes() is
    /// exactly what the open partials hold, and completed messages are never larger than allowed.
    #[test]
    fn hostile_sequences_respect_bounds(
        msgs in proptest::collection::vec(message(), 1..8),
        muts in proptest::collection::vec(mutation(), 0..120),
        raws in proptest::collection::vec(raw_chunk(), 0..20),
        shuffle_seed in any::<u64>(),
        max_bytes in 0usize..400,
        max_messages in 0usize..5,
        expiry_ms in prop_oneof![0u64..40, 1_000u64..2_000],
        step in 0u64..5,
    ) {
        let cfg = ReassemblyConfig { max_bytes, max_messages, expiry_ms, max_payload_bytes: 100 };
        let mut r = Reassembler::new(cfg);
        let mut all: Vec<(String, MessageChunk)> = Vec::new();
        for (i, &(s, len, cs)) in msgs.iter().enumerate() {
            let rid = format!("r{}", i % 4);
            for c in chunks(&payload(len, i as u64), cs, &rid, i as u64) {
                all.push((format!("s{s}"), c));
            }
        }
        let mut g = rng(shuffle_seed);
        // Partially shuffle: swap some neighbours so most of the order is still causal.
        for _ in 0..(all.len() / 3) {
            let i = g.gen_range(0..all.len());
            let j = (i + 1).min(all.len() - 1);
            all.swap(i, j);
        }
        let mut feed: Vec<(String, MessageChunk)> = Vec::new();
        for (i, (s, c)) in all.into_iter().enumerate() {
            match muts.get(i).cloned().unwrap_or(Mutation::Keep) {
                Mutation::Keep => feed.push((s, c)),
                Mutation::Drop => {}
                Mutation::Duplicate => { feed.push((s.clone(), c.clone())); feed.push((s, c)); }
                Mutation::Index(k) => feed.push((s, MessageChunk { chunk_index: k, ..c })),
                Mutation::Last(l) => feed.push((s, MessageChunk { last_chunk_index: l, ..c })),
                Mutation::Prev(p) => feed.push((s, MessageChunk { previous_chunk_id: p, ..c })),
                Mutation::Truncate(n) => {
                    let n = n.min(c.payload.len());
                    feed.push((s, MessageChunk { payload: c.payload.slice(..n), ..c }))
                }
                Mutation::Extend(n) => {
                    let mut p = c.payload.to_vec();
                    p.extend(std::iter::repeat_n(9, n));
                    feed.push((s, MessageChunk { payload: Bytes::from(p), ..c }))
                }
                Mutation::Sender(x) => feed.push((format!("s{x}"), c)),
                Mutation::Request(x) => feed.push((s, MessageChunk { request_id: format!("r{x}"), ..c })),
            }
        }
        for (i, c) in raws.into_iter().enumerate() {
            let at = g.gen_range(0..=feed.len());
            feed.insert(at, (format!("s{}", i % 3), c));
        }
        let mut now = 0u64;
        let mut lost = 0u64;
        for (s, c) in feed {
            now += step;
            match r.on_chunk(now, &s, c) {
                ChunkOutcome::Complete(done) => prop_assert!(done.payload.len() <= 100),
                ChunkOutcome::Pending => prop_assert!(!r.is_empty()),
                ChunkOutcome::Discarded(_) => {}
            }
            prop_assert!(r.bytes() <= max_bytes);
            prop_assert!(r.len() <= max_messages);
            prop_assert!(r.bytes() >= r.len(), "every open partial holds at least one byte");
            if let Some(d) = r.next_deadline() {
                prop_assert!(d > now || (expiry_ms == 0 && d == now));
            }
            while r.poll_lost().is_some() { lost += 1; }
        }
        r.handle_timeout(now.saturating_add(expiry_ms));
        while r.poll_lost().is_some() { lost += 1; }
        prop_assert_eq!((r.len(), r.bytes(), r.next_deadline()), (0, 0, None));
        prop_assert_eq!(lost, r.stats().lost.total());
    }

    /// A forger that knows the sender id and request id (but not the next chunk id) interleaves
    /// chunks of any index, size and last index, with garbage links, into an honest in-order
    /// stream: the real message still completes exactly once, byte-identical, nothing is reported
    /// lost, and no forged chunk is ever accepted. Forged first chunks come only after the real
    /// one: one accepted before it takes its place, which no rule can tell apart (see the module
    /// docs of reassembly.rs).
    #[test]
    fn forged_chunks_never_stop_a_real_message(
        (len, chunk_size) in (1usize..200, 1usize..40),
        forgeries in proptest::collection::vec((0usize..64, 0u32..8, prop_oneof![Just(None), (0u32..8).prop_map(Some)], 0usize..50, "[a-z0-9-]{1,12}"), 0..40),
        expired_gap in any::<bool>(),
    ) {
        let data = payload(len, 5);
        let cs = chunks(&data, chunk_size, "real", 6);
        let last = cs[0].last_chunk_index;
        let mut feed: Vec<(bool, MessageChunk)> = cs.iter().map(|c| (true, c.clone())).collect();
        // Positions in the honest stream; a forged first chunk only after the real first chunk.
        let mut forgeries: Vec<_> = forgeries
            .into_iter()
            .map(|(pos, k, l, flen, prev)| (if k == 0 { (pos % cs.len()) + 1 } else { pos % (cs.len() + 1) }, k, l, flen, prev))
            .collect();
        // Inserted from the back, so that each position still refers to the honest stream.
        forgeries.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (pos, k, last_override, flen, prev) in forgeries {
            let chunk = MessageChunk {
                chunk_id: format!("f-{prev}"),
                previous_chunk_id: if k == 0 { String::new() } else { prev },
                chunk_index: k,
                last_chunk_index: last_override.unwrap_or(last).max(k),
                request_id: "real".into(),
                payload: Bytes::from(vec![0xee; flen]),
            };
            feed.insert(pos, (false, chunk));
        }
        let mut r = Reassembler::default();
        let mut completed = 0;
        for (i, (real, c)) in feed.into_iter().enumerate() {
            // Optionally let time pass between chunks (never up to the expiry).
            let now = if expired_gap { i as u64 * 1_000 } else { 0 };
            match r.on_chunk(now, "alice", c) {
                ChunkOutcome::Complete(done) => {
                    prop_assert!(real, "a forged chunk completed a message");
                    prop_assert_eq!(&done.payload, &data);
                    completed += 1;
                }
                ChunkOutcome::Pending => prop_assert!(real, "a forged chunk was accepted"),
                ChunkOutcome::Discarded(d) => prop_assert!(!real, "a real chunk was discarded: {}", d),
            }
        }
        prop_assert_eq!(completed, 1);
        prop_assert!(r.poll_lost().is_none());
        prop_assert_eq!((r.len(), r.bytes()), (0, 0));
    }

    /// Honest messages, delivered each in order (interleaved arbitrarily), all reassemble exactly.
    #[test]
    fn honest_in_order_delivery_reassembles(
        msgs in proptest::collection::vec(message(), 1..10),
        picks in proptest::collection::vec(any::<u16>(), 0..400),
    ) {
        let mut r = Reassembler::default();
        let mut streams = Vec::new();
        for (i, &(s, len, cs)) in msgs.iter().enumerate() {
            let data = payload(len, i as u64 + 100);
            let rid = new_request_id(&mut rng(i as u64));
            streams.push((format!("s{s}"), rid.clone(), data.clone(), chunks(&data, cs, &rid, i as u64)));
        }
        let mut pos = vec![0usize; streams.len()];
        let mut completed = vec![false; streams.len()];
        let mut picks = picks.into_iter();
        let mut now = 0;
        loop {
            let open: Vec<usize> = (0..streams.len()).filter(|&i| pos[i] < streams[i].3.len()).collect();
            if open.is_empty() { break; }
            let i = open[picks.next().map_or(0, |p| p as usize % open.len())];
            let (s, rid, data, cs) = &streams[i];
            now += 1;
            match r.on_chunk(now, s, cs[pos[i]].clone()) {
                ChunkOutcome::Complete(c) => {
                    prop_assert_eq!(pos[i] + 1, cs.len());
                    prop_assert_eq!(&c.payload, data);
                    prop_assert_eq!((&c.sender_id, &c.request_id), (s, rid));
                    completed[i] = true;
                }
                ChunkOutcome::Pending => prop_assert!(pos[i] + 1 < cs.len()),
                ChunkOutcome::Discarded(d) => prop_assert!(false, "discarded: {d}"),
            }
            pos[i] += 1;
        }
        prop_assert!(completed.iter().all(|&c| c));
        prop_assert!(r.poll_lost().is_none());
        prop_assert_eq!((r.len(), r.bytes()), (0, 0));
    }
}

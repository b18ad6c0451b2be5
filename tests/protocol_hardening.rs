//! Issue #10's SDS protocol holes (items 1–5, 9), each with a test that failed before its fix: a
//! long-lived or hostile channel never loses, duplicates or falsely acknowledges a message.
//! Engines on a virtual clock; messages crafted by hand where a peer misbehaves.

use bytes::Bytes;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use reliable_channel::sds::{ReceiveOutcome, SdsConfig, SdsEngine, SdsEvent};
use reliable_channel::wire::{HistoryEntry, SdsMessage};

const T0: u64 = 1_700_000_000_000;
const CHANNEL: &str = "chan";

fn drain(e: &mut SdsEngine) -> Vec<SdsEvent> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn delivered_count(ev: &[SdsEvent]) -> usize {
    ev.iter().filter(|e| matches!(e, SdsEvent::Delivered(_))).count()
}

/// A content message from `sender` as a peer (honest or not) would send it.
fn content(sender: &str, id: &str, lamport: u64, history: Vec<HistoryEntry>) -> Bytes {
    SdsMessage {
        sender_id: sender.into(),
        message_id: id.into(),
        channel_id: CHANNEL.into(),
        lamport_timestamp: Some(lamport),
        causal_history: history,
        content: Some(Bytes::from(format!("payload of {id}"))),
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

// ---------------------------------------------------------------------------------------------
// Item 4: exactly-once by arrival

/// Every message arrives twice, the copy `gap` arrivals after the original, with lamports in an
/// order chosen to defeat a lamport-ordered log (each new message sorts first, or at random).
fn duplicates_by_arrival(max_local_history: usize, messages: usize, gap: usize, decreasing: bool) -> usize {
    let config = SdsConfig { max_local_history, ..SdsConfig::default() };
    let mut e = SdsEngine::new(CHANNEL, "victim", config, T0, 1);
    let mut lamports: Vec<u64> = (0..messages as u64).map(|i| T0 + 1_000_000 - i).collect();
    if !decreasing {
        lamports.shuffle(&mut SmallRng::seed_from_u64(9));
    }
    let msgs: Vec<Bytes> = (0..messages).map(|i| content(&format!("peer{}", i % 7), &format!("m{i}"), lamports[i], Vec::new())).collect();
    let mut delivered = 0;
    for step in 0..messages + gap {
        if step < messages {
            e.receive(T0 + step as u64, msgs[step].clone(), None);
        }
        if step >= gap {
            assert_eq!(e.receive(T0 + step as u64, msgs[step - gap].clone(), None), ReceiveOutcome::Duplicate, "copy of m{}", step - gap);
        }
        delivered += delivered_count(&drain(&mut e));
    }
    delivered
}

#[test]
fn duplicates_are_caught_by_arrival_whatever_their_lamport() {
    assert_eq!(duplicates_by_arrival(16, 300, 8, true), 300);
    assert_eq!(duplicates_by_arrival(16, 300, 15, false), 300);
}

#[test]
fn duplicates_are_caught_across_the_default_log() {
    let n = SdsConfig::default().max_local_history;
    assert_eq!(duplicates_by_arrival(n, 12_000, n - 1, false), 12_000);
}

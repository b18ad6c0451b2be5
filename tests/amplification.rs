//! Issue #10 item 6: what a hostile message naming unknown dependencies makes its victim publish,
//! look up in the store, and report lost; and that a steady stream of them never spends more than
//! the control share of the RLN budget or displaces the victim's own sends.
//!
//! The victim is one sans-I/O [`Channel`] with the default configuration on a virtual clock;
//! every dispatch is confirmed at once, store lookups find nothing (the ids are made up).

use bytes::Bytes;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent};
use reliable_channel::wire::{HistoryEntry, MessageChunk, SdsMessage, WakuMessage};

const T0: u64 = 1_700_000_000_000;
const CHANNEL: &str = "amplification";
const TOPIC: &str = "/amplification/1/chat/proto";
const PUBSUB: &str = "/waku/2/rs/0/0";

/// Most WakuMessages the victim may publish about one hostile message, idle channel: the
/// acknowledgement and idle syncs any content costs (1 + 3), a few repair syncs backing off, and
/// the acknowledgement of the hostile message itself once it is delivered without its dependencies.
const HANDFUL: usize = 8;

fn waku(payload: Vec<u8>) -> WakuMessage {
    WakuMessage::reliable(TOPIC, payload.into(), 1_700_000_000_000)
}

fn chunk(request: &str) -> Bytes {
    let c = MessageChunk {
        chunk_id: format!("{request}-c0"),
        previous_chunk_id: String::new(),
        chunk_index: 0,
        last_chunk_index: 0,
        request_id: request.into(),
        payload: Bytes::from_static(b"hello"),
    };
    Bytes::from(c.encode_to_vec())
}

fn sds(sender: &str, id: &str, lamport: u64, history: Vec<HistoryEntry>, content: Option<Bytes>, repair: Vec<HistoryEntry>) -> WakuMessage {
    let m = SdsMessage {
        sender_id: sender.into(),
        message_id: id.into(),
        channel_id: CHANNEL.into(),
        lamport_timestamp: Some(lamport),
        causal_history: history,
        bloom_filter: None,
        repair_request: repair,
        content,
    };
    waku(m.encode_to_vec())
}

/// `n` made-up ids, with made-up retrieval hints when `hinted`.
fn phantoms(rng: &mut SmallRng, n: usize, hinted: bool) -> Vec<HistoryEntry> {
    (0..n)
        .map(|_| {
            let mut id = [0u8; 32];
            rng.fill_bytes(&mut id);
            let hint = hinted.then(|| {
                let mut h = [0u8; 32];
                rng.fill_bytes(&mut h);
                Bytes::copy_from_slice(&h)
            });
            HistoryEntry { message_id: id.iter().map(|b| format!("{b:02x}")).collect(), retrieval_hint: hint, sender_id: None }
        })
        .collect()
}

#[derive(Default, Debug)]
struct Counts {
    syncs: usize,
    content: usize,
    lookups: usize,
    lost: usize,
    /// (dispatch time, is a sync)
    dispatches: Vec<(u64, bool)>,
    /// request id → (send time, first dispatch time)
    content_at: Vec<u64>,
}

struct Victim {
    ch: Channel,
    now: u64,
    counts: Counts,
    serial: u64,
}

impl Victim {
    fn new(config: ChannelConfig) -> Self {
        let ch = Channel::new(CHANNEL, TOPIC, "victim", config, T0, 7);
        Victim { ch, now: T0, counts: Counts::default(), serial: 0 }
    }

    fn drain(&mut self) {
        while let Some(a) = self.ch.poll_action() {
            match a {
                ChannelAction::Dispatch { token, message } => {
                    let m = SdsMessage::decode(message.payload.clone()).expect("the victim publishes SDS messages");
                    let sync = m.content.is_none();
                    if sync {
                        self.counts.syncs += 1;
                    } else {
                        self.counts.content += 1;
                        self.counts.content_at.push(self.now);
                    }
                    self.counts.dispatches.push((self.now, sync));
                    self.ch.on_dispatch_result(self.now, token, Ok(Some(message.hash(PUBSUB))));
                }
                ChannelAction::Retrieve { hashes } => self.counts.lookups += hashes.len(),
                ChannelAction::Event(ChannelEvent::Lost { .. }) => self.counts.lost += 1,
                ChannelAction::Event(_) => {}
            }
        }
    }

    /// Fires timers until `until` (or until none is armed).
    fn run_until(&mut self, until: u64) {
        self.drain();
        while let Some(d) = self.ch.next_deadline().filter(|d| *d <= until) {
            self.now = self.now.max(d);
            self.ch.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(until);
    }

    fn feed(&mut self, msg: &WakuMessage) {
        self.ch.on_message(self.now, msg, Some(msg.hash(PUBSUB)));
        self.drain();
    }

    /// An honest message from bob, then quiet: the victim has something in its log.
    fn warm_up(&mut self) {
        self.serial += 1;
        let id = format!("bob-{}", self.serial);
        self.feed(&sds("bob", &id, self.now, vec![], Some(chunk(&id)), vec![]));
        self.run_until(self.now + 3_600_000);
        self.counts = Counts::default();
    }
}

/// One hostile message into an idle channel: what the victim does about it until quiet again.
fn one_hostile(n: usize, hinted: bool, content: bool) -> Counts {
    let mut rng = SmallRng::seed_from_u64(n as u64 * 2 + u64::from(hinted));
    let mut v = Victim::new(ChannelConfig::default());
    v.warm_up();
    let ids = phantoms(&mut rng, n, hinted);
    let msg = if content {
        sds("mallory", "hostile-content", v.now, ids, Some(chunk("hostile")), vec![])
    } else {
        let repair = ids.iter().take(64).map(|e| HistoryEntry { retrieval_hint: None, ..e.clone() }).collect();
        sds("mallory", "sync-hostile", v.now, ids, None, repair)
    };
    v.feed(&msg);
    v.run_until(v.now + 3_600_000);
    assert!(v.ch.next_deadline().is_none(), "the channel is quiet again");
    v.counts
}

#[test]
fn one_hostile_message_costs_a_handful_of_publications() {
    for n in [64, 1_024] {
        for hinted in [false, true] {
            for content in [true, false] {
                let c = one_hostile(n, hinted, content);
                let what = format!("{n} ids, hinted {hinted}, content {content}: {c:?}");
                assert!(c.syncs + c.content <= HANDFUL, "published {} ({what})", c.syncs + c.content);
                assert_eq!(c.content, 0, "{what}");
                // Store lookups back off per id (at once, then after 1, 2, 4 × the ack timeout).
                let max_lookups = if hinted { 4 * n } else { 0 };
                assert!(c.lookups <= max_lookups, "{} lookups ({what})", c.lookups);
                // One loss report for the hostile content message (it waited), none for a sync.
                assert_eq!(c.lost, usize::from(content), "{what}");
            }
        }
    }
}

#[test]
fn store_lookups_are_capped_per_minute() {
    let c = one_hostile(1_024, true, true);
    // 1,024 hashes from one message are a crowd: at most half the minute's cap, then backoff.
    let cap = reliable_channel::channel::MAX_CROWDED_LOOKUPS_PER_MINUTE;
    assert!(c.lookups <= 2 * cap, "{} lookups in the minute or two before the dependency timeout", c.lookups);
    assert!(c.lookups >= cap, "the lookups were made");
}

#[test]
fn steady_hostile_stream_stays_within_the_control_share_and_displaces_no_send() {
    // Own sends are never acknowledged here (no honest peer): no retransmissions, to count
    // first dispatches only.
    let config = ChannelConfig::default().with_json(Some(r#"{"sdsConfig": {"maxRetransmissions": 0}}"#)).expect("valid");
    let epoch = config.rate_limit.epoch_size_ms;
    let control = config.rate_limit.control_limit() as usize;
    let mut v = Victim::new(config);
    v.warm_up();
    let mut rng = SmallRng::seed_from_u64(99);
    // Three epochs: a hostile message every 2 s (content, 64 made-up ids, alternately hinted),
    // and the victim's own send every 14 s (43 per epoch, within what the control share leaves).
    let start = v.now;
    let mut sends = Vec::new();
    let mut k = 0u64;
    while v.now < start + 3 * epoch {
        let t = start + k * 2_000;
        v.run_until(t);
        let ids = phantoms(&mut rng, 64, k.is_multiple_of(2));
        let id = format!("hostile-{k}");
        v.feed(&sds("mallory", &id, v.now, ids, Some(chunk(&id)), vec![]));
        if k.is_multiple_of(7) {
            let rid = format!("own-{k}");
            v.ch.send(v.now, &rid, b"a real message", false).expect("send accepted");
            sends.push(v.now);
            v.drain();
        }
        k += 1;
    }
    v.run_until(v.now + 3_600_000);
    let mut syncs_per_epoch = std::collections::BTreeMap::<u64, usize>::new();
    for (t, sync) in &v.counts.dispatches {
        if *sync {
            *syncs_per_epoch.entry(t / epoch).or_default() += 1;
        }
    }
    assert!(syncs_per_epoch.values().all(|n| *n <= control), "syncs per epoch {syncs_per_epoch:?} (control share {control})");
    // Every own send went out when it was made: none waited for a later epoch.
    assert_eq!(v.counts.content_at.len(), sends.len());
    for (sent, dispatched) in sends.iter().zip(&v.counts.content_at) {
        assert_eq!(sent, dispatched, "a send was delayed");
    }
}

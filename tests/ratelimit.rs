//! Rate Limit Manager behaviour, on a virtual clock (`now` is just a number; nothing sleeps).

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use reliable_channel::ratelimit::{Accounting, Admit, MessageClass, RateLimitConfig, RateLimitConfigError, RateLimitStats, RateLimiter};

const EPOCH: u64 = 1_000;

const FIRST: MessageClass = MessageClass::Chunk { first: true };
const LATER: MessageClass = MessageClass::Chunk { first: false };

fn cfg(limit: u32) -> RateLimitConfig {
    RateLimitConfig { epoch_size_ms: EPOCH, messages_per_epoch: limit, ..Default::default() }
}

fn limiter(limit: u32) -> RateLimiter<u32> {
    RateLimiter::new(cfg(limit))
}

fn all(_: &u32) -> bool {
    true
}

fn release(rl: &mut RateLimiter<u32>, now: u64) -> Option<u32> {
    let mut d = Vec::new();
    let r = rl.next_ready(now, &mut all, &mut d);
    assert!(d.is_empty());
    r
}

fn drain(rl: &mut RateLimiter<u32>, now: u64) -> Vec<u32> {
    std::iter::from_fn(|| release(rl, now)).collect()
}

// ---------------------------------------------------------------------------------------------
// configuration

#[test]
fn defaults_match_spec() {
    let c = RateLimitConfig::default();
    assert!(c.enabled);
    assert_eq!(c.epoch_size_ms, 600_000);
    assert_eq!(c.messages_per_epoch, 100);
    assert_eq!(c.accounting, Accounting::FirstChunk);
    assert_eq!(c.approach_threshold, 0.9);
    assert_eq!(c.max_queued_items, 4096);
    assert_eq!(c.max_queued_bytes, 64 * 1024 * 1024);
    assert_eq!(c.approach_limit(), 90);
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn accounting_parses_and_displays() {
    assert_eq!("firstChunk".parse::<Accounting>(), Ok(Accounting::FirstChunk));
    assert_eq!("allMessages".parse::<Accounting>(), Ok(Accounting::AllMessages));
    assert_eq!("ALLMESSAGES".parse::<Accounting>(), Ok(Accounting::AllMessages));
    assert!("everything".parse::<Accounting>().is_err());
    assert_eq!(Accounting::FirstChunk.to_string(), "firstChunk");
    assert_eq!(Accounting::AllMessages.to_string(), "allMessages");
    for a in [Accounting::FirstChunk, Accounting::AllMessages] {
        assert_eq!(a.to_string().parse::<Accounting>(), Ok(a));
    }
}

#[test]
fn validate_rejects_unusable_configs() {
    let bad = |f: fn(&mut RateLimitConfig)| {
        let mut c = RateLimitConfig::default();
        f(&mut c);
        c.validate()
    };
    assert_eq!(bad(|c| c.epoch_size_ms = 0), Err(RateLimitConfigError::ZeroEpochSize));
    assert_eq!(bad(|c| c.messages_per_epoch = 0), Err(RateLimitConfigError::ZeroMessagesPerEpoch));
    assert_eq!(
        bad(|c| {
            c.messages_per_epoch = 0;
            c.enabled = false
        }),
        Ok(())
    );
    assert!(matches!(bad(|c| c.approach_threshold = 1.01), Err(RateLimitConfigError::ThresholdOutOfRange(_))));
    assert!(matches!(bad(|c| c.approach_threshold = -0.1), Err(RateLimitConfigError::ThresholdOutOfRange(_))));
    assert!(matches!(bad(|c| c.approach_threshold = f64::NAN), Err(RateLimitConfigError::ThresholdOutOfRange(_))));
    assert_eq!(bad(|c| c.approach_threshold = 0.0), Ok(()));
    assert_eq!(bad(|c| c.approach_threshold = 1.0), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// epochs

#[test]
fn epoch_is_floor_of_now_over_size() {
    let rl = limiter(1);
    assert_eq!(rl.epoch(0), 0);
    assert_eq!(rl.epoch(EPOCH - 1), 0);
    assert_eq!(rl.epoch(EPOCH), 1);
    assert_eq!(rl.epoch(EPOCH + 1), 1);
    assert_eq!(rl.epoch(2 * EPOCH - 1), 1);
    assert_eq!(rl.epoch(2 * EPOCH), 2);
    assert_eq!(rl.next_epoch_start(EPOCH - 1), EPOCH);
    assert_eq!(rl.next_epoch_start(EPOCH), 2 * EPOCH);

    // Default 10-minute epochs on a realistic Unix time.
    let rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig::default());
    let t = 1_700_000_400_000u64; // a multiple of 600_000
    assert_eq!(t % 600_000, 0);
    assert_eq!(rl.epoch(t - 1), t / 600_000 - 1);
    assert_eq!(rl.epoch(t), t / 600_000);
    assert_eq!(rl.epoch(t + 599_999), t / 600_000);
    assert_eq!(rl.epoch(t + 600_000), t / 600_000 + 1);
}

#[test]
fn budget_resets_exactly_at_epoch_start() {
    let mut rl = limiter(2);
    let e1 = 5 * EPOCH;
    // Fill epoch 4 in its last millisecond.
    assert_eq!(rl.offer(e1 - 1, 1, 10, FIRST), Admit::Now(1));
    assert_eq!(rl.offer(e1 - 1, 2, 10, FIRST), Admit::Now(2));
    assert_eq!(rl.used(e1 - 1), 2);
    assert_eq!(rl.used(e1), 0, "a new epoch starts with nothing used");
    assert_eq!(rl.offer(e1 - 1, 3, 10, FIRST), Admit::Queued);
    assert_eq!(rl.next_deadline(e1 - 1), Some(e1));
    assert_eq!(release(&mut rl, e1 - 1), None, "one millisecond early");
    assert_eq!(release(&mut rl, e1), Some(3), "released at the epoch's first millisecond");
    assert_eq!(rl.used(e1), 1);
    assert_eq!(rl.offer(e1 + 1, 4, 10, FIRST), Admit::Now(4));
    assert_eq!(rl.offer(e1 + EPOCH - 1, 5, 10, FIRST), Admit::Queued, "last ms of the epoch is still full");
    assert_eq!(release(&mut rl, e1 + EPOCH), Some(5));
}

#[test]
fn time_going_backwards_never_recharges_an_old_epoch() {
    let mut rl = limiter(1);
    assert_eq!(rl.offer(3 * EPOCH, 1, 1, FIRST), Admit::Now(1));
    // A `now` from an earlier epoch is treated as the latest time seen.
    assert_eq!(rl.offer(EPOCH, 2, 1, FIRST), Admit::Queued);
    assert_eq!(rl.used(EPOCH), 1);
    assert_eq!(rl.next_deadline(EPOCH), Some(4 * EPOCH));
    assert_eq!(release(&mut rl, 2 * EPOCH), None);
    assert_eq!(release(&mut rl, 4 * EPOCH), Some(2));
}

// ---------------------------------------------------------------------------------------------
// costs

#[test]
fn first_chunk_accounting_costs() {
    let rl = limiter(10);
    assert_eq!(rl.cost(FIRST), 1);
    assert_eq!(rl.cost(LATER), 0);
    assert_eq!(rl.cost(MessageClass::Retransmission { first_chunk: true }), 1);
    assert_eq!(rl.cost(MessageClass::Retransmission { first_chunk: false }), 0);
    assert_eq!(rl.cost(MessageClass::Sync), 1);
    assert_eq!(rl.cost(MessageClass::Ephemeral { first: true }), 1);
    assert_eq!(rl.cost(MessageClass::Ephemeral { first: false }), 0);
}

#[test]
fn all_messages_accounting_costs_one_each() {
    let rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { accounting: Accounting::AllMessages, ..cfg(10) });
    for c in [
        FIRST,
        LATER,
        MessageClass::Retransmission { first_chunk: true },
        MessageClass::Retransmission { first_chunk: false },
        MessageClass::Sync,
        MessageClass::Ephemeral { first: true },
        MessageClass::Ephemeral { first: false },
    ] {
        assert_eq!(rl.cost(c), 1, "{c:?}");
    }
}

#[test]
fn first_chunk_lets_later_chunks_through_a_spent_budget() {
    let mut rl = limiter(1);
    assert_eq!(rl.offer(0, 0, 100, FIRST), Admit::Now(0));
    for i in 1..20 {
        assert_eq!(rl.offer(0, i, 100, LATER), Admit::Now(i));
        assert_eq!(rl.offer(0, 100 + i, 100, MessageClass::Retransmission { first_chunk: false }), Admit::Now(100 + i));
    }
    assert_eq!(rl.used(0), 1);
    assert_eq!(rl.offer(0, 50, 100, MessageClass::Retransmission { first_chunk: true }), Admit::Queued);
    assert_eq!(rl.offer(0, 51, 100, FIRST), Admit::Queued);
}

#[test]
fn all_messages_charges_every_chunk_and_retransmission() {
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { accounting: Accounting::AllMessages, ..cfg(3) });
    assert_eq!(rl.offer(0, 0, 1, FIRST), Admit::Now(0));
    assert_eq!(rl.offer(0, 1, 1, LATER), Admit::Now(1));
    assert_eq!(rl.offer(0, 2, 1, MessageClass::Retransmission { first_chunk: false }), Admit::Now(2));
    assert_eq!(rl.used(0), 3);
    assert_eq!(rl.offer(0, 3, 1, LATER), Admit::Queued);
    assert_eq!(rl.offer(0, 4, 1, MessageClass::Retransmission { first_chunk: false }), Admit::Queued);
    assert_eq!(drain(&mut rl, EPOCH), vec![3, 4]);
    assert_eq!(rl.used(EPOCH), 2);
}

// ---------------------------------------------------------------------------------------------
// FIFO

#[test]
fn zero_cost_items_queue_behind_a_blocked_head() {
    let mut rl = limiter(1);
    assert_eq!(rl.offer(0, 1, 1, FIRST), Admit::Now(1));
    assert_eq!(rl.offer(0, 2, 1, FIRST), Admit::Queued);
    // Free, but behind a blocked head: must not overtake it.
    assert_eq!(rl.offer(0, 3, 1, LATER), Admit::Queued);
    assert_eq!(rl.offer(0, 4, 1, MessageClass::Retransmission { first_chunk: false }), Admit::Queued);
    assert_eq!(rl.offer(0, 5, 1, FIRST), Admit::Queued);
    assert_eq!(rl.offer(0, 6, 1, LATER), Admit::Queued);
    assert_eq!(release(&mut rl, 1), None);
    assert_eq!(rl.queued().copied().collect::<Vec<_>>(), vec![2, 3, 4, 5, 6]);
    // Epoch 1: 2 (cost 1), then the free 3 and 4; 5 is blocked again, and 6 behind it.
    assert_eq!(drain(&mut rl, EPOCH), vec![2, 3, 4]);
    assert_eq!(rl.next_deadline(EPOCH), Some(2 * EPOCH));
    assert_eq!(drain(&mut rl, 2 * EPOCH), vec![5, 6]);
    assert_eq!(rl.queue_len(), 0);
}

#[test]
fn offers_queue_while_anything_waits_even_in_a_fresh_epoch() {
    let mut rl = limiter(5);
    for i in 0..5 {
        assert_eq!(rl.offer(0, i, 1, FIRST), Admit::Now(i));
    }
    assert_eq!(rl.offer(0, 5, 1, FIRST), Admit::Queued);
    // New epoch, budget available, but the queue has not been drained yet: strict FIFO.
    assert_eq!(rl.offer(EPOCH, 6, 1, FIRST), Admit::Queued);
    assert_eq!(rl.next_deadline(EPOCH), Some(EPOCH), "head fits: drain now");
    assert_eq!(drain(&mut rl, EPOCH), vec![5, 6]);
    assert_eq!(rl.offer(EPOCH, 7, 1, FIRST), Admit::Now(7));
}

// ---------------------------------------------------------------------------------------------
// droppable traffic

#[test]
fn sync_and_ephemeral_dropped_at_the_approach_threshold() {
    // limit 10, threshold 0.9 → approach limit 9: admitted only while used + cost <= 9.
    let mut rl = limiter(10);
    for i in 0..8 {
        assert_eq!(rl.offer(0, i, 1, FIRST), Admit::Now(i));
    }
    assert!(rl.admits_droppable(0, 1));
    assert!(!rl.admits_droppable(0, 2));
    assert_eq!(rl.offer(0, 100, 1, MessageClass::Sync), Admit::Now(100), "8 + 1 <= 9");
    assert_eq!(rl.used(0), 9);
    assert_eq!(rl.offer(0, 101, 1, MessageClass::Sync), Admit::Dropped(101), "9 + 1 > 9");
    assert_eq!(rl.offer(0, 102, 1, MessageClass::Ephemeral { first: true }), Admit::Dropped(102));
    // A free continuation chunk of an ephemeral message costs nothing: admitted.
    assert_eq!(rl.offer(0, 103, 1, MessageClass::Ephemeral { first: false }), Admit::Now(103));
    // Reliable content still gets the reserved headroom.
    assert_eq!(rl.offer(0, 9, 1, FIRST), Admit::Now(9));
    assert_eq!(rl.used(0), 10);
    let s = rl.stats();
    assert_eq!((s.dropped_sync, s.dropped_ephemeral), (1, 1));
    // Next epoch: sync flows again.
    assert_eq!(rl.offer(EPOCH, 104, 1, MessageClass::Sync), Admit::Now(104));
}

#[test]
fn sync_traffic_capped_at_the_control_share() {
    // Budget 20, control share 0.3 → 6 syncs per epoch, whatever else is left.
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { control_share: 0.3, ..cfg(20) });
    assert_eq!(rl.config().control_limit(), 6);
    for i in 0..6 {
        assert_eq!(rl.offer(0, i, 1, MessageClass::Sync), Admit::Now(i));
    }
    assert!(!rl.admits_control(0, 1));
    assert_eq!(rl.offer(0, 6, 1, MessageClass::Sync), Admit::Dropped(6), "control share spent");
    assert_eq!(rl.stats().dropped_sync, 1);
    // Ephemeral and content traffic do not count against it, nor are they limited by it.
    assert_eq!(rl.offer(0, 7, 1, MessageClass::Ephemeral { first: true }), Admit::Now(7));
    for i in 8..21 {
        assert_eq!(rl.offer(0, i, 1, FIRST), Admit::Now(i));
    }
    assert_eq!(rl.used(0), 20);
    // A new epoch: the share is back.
    assert_eq!(rl.control_used(EPOCH), 0);
    assert_eq!(rl.offer(EPOCH, 30, 1, MessageClass::Sync), Admit::Now(30));
}

#[test]
fn control_share_limits() {
    let cfg = |share: f64, l: u32| RateLimitConfig { control_share: share, messages_per_epoch: l, ..Default::default() };
    assert_eq!(RateLimitConfig::default().control_limit(), 50);
    assert_eq!(cfg(0.3, 3).control_limit(), 1, "at least one sync per epoch");
    assert_eq!(cfg(0.0, 100).control_limit(), 0, "0 turns syncs off");
    assert_eq!(cfg(1.0, 7).control_limit(), 7);
    assert_eq!(cfg(f64::NAN, 100).control_limit(), 50);
    assert!(cfg(1.5, 10).validate().is_err());
    assert!(cfg(f64::NAN, 10).validate().is_err());
}

#[test]
fn droppable_traffic_dropped_while_anything_is_queued() {
    // Budget 3, approach limit floor(2.7) = 2.
    let mut rl = limiter(3);
    assert_eq!(rl.offer(0, 0, 1, FIRST), Admit::Now(0));
    assert_eq!(rl.offer(0, 1, 1, FIRST), Admit::Now(1));
    assert_eq!(rl.offer(0, 2, 1, FIRST), Admit::Now(2));
    assert_eq!(rl.offer(0, 3, 1, FIRST), Admit::Queued);
    // Fresh epoch with budget, but something waits: droppables never overtake nor queue.
    assert_eq!(rl.offer(EPOCH, 10, 1, MessageClass::Sync), Admit::Dropped(10));
    assert_eq!(rl.offer(EPOCH, 11, 1, MessageClass::Ephemeral { first: false }), Admit::Dropped(11));
    assert_eq!(rl.queue_len(), 1);
    assert_eq!(drain(&mut rl, EPOCH), vec![3]);
    assert_eq!(rl.offer(EPOCH, 12, 1, MessageClass::Sync), Admit::Now(12), "1 + 1 <= 2");
    assert_eq!(rl.offer(EPOCH, 13, 1, MessageClass::Sync), Admit::Dropped(13), "2 + 1 > 2");
}

#[test]
fn all_messages_ephemeral_continuations_cost_and_can_be_dropped() {
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { accounting: Accounting::AllMessages, ..cfg(10) });
    // A 12-chunk ephemeral message would cost 12 > 9: check the whole message first.
    assert!(!rl.admits_droppable(0, 12));
    assert!(rl.admits_droppable(0, 9));
    for i in 0..9 {
        assert_eq!(rl.offer(0, i, 1, MessageClass::Ephemeral { first: i == 0 }), Admit::Now(i));
    }
    assert_eq!(rl.offer(0, 9, 1, MessageClass::Ephemeral { first: false }), Admit::Dropped(9));
}

#[test]
fn small_budget_threshold_rounds_down() {
    // floor(0.9 × 1) = 0: with a budget of one, droppable traffic never costs the only message.
    let mut rl = limiter(1);
    assert_eq!(rl.offer(0, 1, 1, MessageClass::Sync), Admit::Dropped(1));
    assert_eq!(rl.offer(0, 2, 1, FIRST), Admit::Now(2));
    // Threshold 1.0 lets droppables use the whole budget.
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { approach_threshold: 1.0, ..cfg(1) });
    assert_eq!(rl.offer(0, 1, 1, MessageClass::Sync), Admit::Now(1));
    assert_eq!(rl.offer(0, 2, 1, MessageClass::Sync), Admit::Dropped(2));
}

// ---------------------------------------------------------------------------------------------
// disabled

#[test]
fn disabled_admits_everything_and_still_counts() {
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { enabled: false, ..cfg(1) });
    for i in 0..50 {
        let class = match i % 4 {
            0 => FIRST,
            1 => MessageClass::Sync,
            2 => MessageClass::Ephemeral { first: true },
            _ => MessageClass::Retransmission { first_chunk: true },
        };
        assert_eq!(rl.offer(0, i, usize::MAX, class), Admit::Now(i));
    }
    assert_eq!(rl.used(0), 50);
    assert_eq!(rl.queue_len(), 0);
    assert_eq!(rl.next_deadline(0), None);
    assert!(rl.admits_droppable(0, 1_000));
    let s = rl.stats();
    assert_eq!(s.admitted, 50);
    assert_eq!(s.charged, 50);
    assert_eq!(s.max_epoch_used, 50);
    assert_eq!(s.queued + s.dropped_sync + s.dropped_ephemeral + s.full, 0);
}

// ---------------------------------------------------------------------------------------------
// bounded queue

#[test]
fn full_queue_hands_the_item_back() {
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { max_queued_items: 2, max_queued_bytes: 100, ..cfg(1) });
    assert_eq!(rl.offer(0, 0, 10, FIRST), Admit::Now(0));
    assert!(rl.has_room(2, 100));
    assert!(!rl.has_room(3, 0));
    assert!(!rl.has_room(1, 101));
    assert_eq!(rl.offer(0, 1, 60, FIRST), Admit::Queued);
    assert_eq!(rl.queued_bytes(), 60);
    assert!(!rl.has_room(1, 41));
    assert_eq!(rl.offer(0, 2, 41, LATER), Admit::Full(2), "byte bound");
    assert_eq!(rl.offer(0, 3, 40, LATER), Admit::Queued);
    assert_eq!(rl.offer(0, 4, 0, LATER), Admit::Full(4), "item bound");
    assert!(!rl.has_room(1, 0));
    assert_eq!(rl.stats().full, 2);
    assert_eq!(rl.used(0), 1, "refused items are not charged");
    assert_eq!(drain(&mut rl, EPOCH), vec![1, 3]);
    assert_eq!(rl.queued_bytes(), 0);
    assert!(rl.has_room(2, 100));
}

#[test]
fn item_larger_than_the_byte_bound_is_full_only_when_it_must_wait() {
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { max_queued_bytes: 10, ..cfg(1) });
    assert_eq!(rl.offer(0, 1, 1_000, FIRST), Admit::Now(1), "no need to queue");
    assert_eq!(rl.offer(0, 2, 1_000, FIRST), Admit::Full(2));
}

// ---------------------------------------------------------------------------------------------
// deadlines

#[test]
fn next_deadline_is_next_epoch_start_while_blocked() {
    let mut rl = limiter(1);
    assert_eq!(rl.next_deadline(0), None, "empty queue");
    assert_eq!(rl.offer(1_234, 1, 1, FIRST), Admit::Now(1));
    assert_eq!(rl.next_deadline(1_234), None);
    assert_eq!(rl.offer(1_500, 2, 1, FIRST), Admit::Queued);
    assert_eq!(rl.next_deadline(1_500), Some(2_000));
    assert_eq!(rl.next_deadline(1_999), Some(2_000));
    assert_eq!(rl.next_deadline(2_000), Some(2_000), "due: the head fits now");
    assert_eq!(rl.next_deadline(2_345), Some(2_345));
    assert_eq!(release(&mut rl, 2_345), Some(2));
    assert_eq!(rl.offer(2_400, 3, 1, FIRST), Admit::Queued);
    assert_eq!(rl.next_deadline(2_400), Some(3_000));
}

// ---------------------------------------------------------------------------------------------
// wanted / remove_where

#[test]
fn unwanted_heads_are_discarded_uncharged() {
    let mut rl = limiter(1);
    assert_eq!(rl.offer(0, 0, 5, FIRST), Admit::Now(0));
    for i in 1..=5 {
        assert_eq!(rl.offer(0, i, 5, FIRST), Admit::Queued);
    }
    let mut discarded = Vec::new();
    // Items 1 and 2 were acknowledged meanwhile; 3 is wanted.
    let mut wanted = |x: &u32| *x >= 3;
    // Still blocked, but unwanted heads are cleared up front.
    assert_eq!(rl.next_ready(10, &mut wanted, &mut discarded), None);
    assert_eq!(discarded, vec![1, 2]);
    assert_eq!(rl.queue_len(), 3);
    assert_eq!(rl.queued_bytes(), 15);
    assert_eq!(rl.used(10), 1);
    discarded.clear();
    // Next epoch: 3 released; 4 is rejected too; 5 is blocked.
    let mut wanted = |x: &u32| *x != 4;
    assert_eq!(rl.next_ready(EPOCH, &mut wanted, &mut discarded), Some(3));
    assert_eq!(rl.next_ready(EPOCH, &mut wanted, &mut discarded), None);
    assert_eq!(discarded, vec![4]);
    assert_eq!(rl.queued().copied().collect::<Vec<_>>(), vec![5]);
    assert_eq!(rl.used(EPOCH), 1);
    let s = *rl.stats();
    assert_eq!((s.discarded, s.released), (3, 1));
    // All rejected: the queue empties without charge and the deadline disappears.
    assert_eq!(rl.next_ready(EPOCH, &mut |_| false, &mut discarded), None);
    assert_eq!(rl.queue_len(), 0);
    assert_eq!(rl.next_deadline(EPOCH), None);
}

#[test]
fn remove_where_takes_matching_items_in_order() {
    let mut rl = limiter(1);
    assert_eq!(rl.offer(0, 0, 1, FIRST), Admit::Now(0));
    for i in 1..=6 {
        assert_eq!(rl.offer(0, i, i as usize, if i % 3 == 1 { FIRST } else { LATER }), Admit::Queued);
    }
    let removed = rl.remove_where(&mut |x| x % 2 == 0);
    assert_eq!(removed, vec![2, 4, 6]);
    assert_eq!(rl.queued().copied().collect::<Vec<_>>(), vec![1, 3, 5]);
    assert_eq!(rl.queued_bytes(), 1 + 3 + 5);
    assert_eq!(rl.used(0), 1, "removal is not charged");
    assert_eq!(rl.stats().removed, 3);
    assert!(rl.remove_where(&mut |_| false).is_empty());
    // 1 costs 1; 3 and 5 are later chunks (cost 0): all fit one epoch.
    assert_eq!(drain(&mut rl, EPOCH), vec![1, 3, 5]);
}

#[test]
fn stats_account_for_every_offer() {
    let mut rl: RateLimiter<u32> = RateLimiter::new(RateLimitConfig { max_queued_items: 1, ..cfg(2) });
    let _ = rl.offer(0, 0, 1, FIRST);
    let _ = rl.offer(0, 1, 1, MessageClass::Sync); // 1 + 1 > floor(1.8) = 1 → dropped
    let _ = rl.offer(0, 2, 1, FIRST);
    let _ = rl.offer(0, 3, 1, FIRST); // queued
    let _ = rl.offer(0, 4, 1, LATER); // full
    let _ = rl.offer(0, 5, 1, MessageClass::Ephemeral { first: true }); // dropped
    let _ = drain(&mut rl, EPOCH);
    assert_eq!(
        *rl.stats(),
        RateLimitStats {
            admitted: 2,
            queued: 1,
            released: 1,
            dropped_sync: 1,
            dropped_ephemeral: 1,
            full: 1,
            discarded: 0,
            removed: 0,
            charged: 3,
            max_epoch_used: 2,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// the invariant, under random schedules

#[derive(Debug, Clone)]
enum Op {
    Offer { dt: u64, class: MessageClass, bytes: usize },
    Ready { dt: u64, reject_mod: u32 },
    Remove { modulus: u32 },
    Wait { dt: u64 },
}

fn class() -> impl Strategy<Value = MessageClass> {
    prop_oneof![
        4 => any::<bool>().prop_map(|first| MessageClass::Chunk { first }),
        2 => any::<bool>().prop_map(|first_chunk| MessageClass::Retransmission { first_chunk }),
        1 => Just(MessageClass::Sync),
        1 => any::<bool>().prop_map(|first| MessageClass::Ephemeral { first }),
    ]
}

fn dt() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 2 => 0..5u64, 2 => 0..EPOCH, 1 => Just(EPOCH), 1 => Just(EPOCH - 1)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (dt(), class(), 0..50usize).prop_map(|(dt, class, bytes)| Op::Offer { dt, class, bytes }),
        5 => (dt(), prop_oneof![3 => Just(0u32), 1 => 2..5u32]).prop_map(|(dt, reject_mod)| Op::Ready { dt, reject_mod }),
        1 => (2..6u32).prop_map(|modulus| Op::Remove { modulus }),
        1 => dt().prop_map(|dt| Op::Wait { dt }),
    ]
}

fn config() -> impl Strategy<Value = RateLimitConfig> {
    (
        1..6u32,
        prop_oneof![Just(Accounting::FirstChunk), Just(Accounting::AllMessages)],
        prop_oneof![Just(0.0), Just(0.5), Just(0.9), Just(1.0)],
        1..8usize,
        20..200usize,
        prop_oneof![9 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(limit, accounting, t, items, bytes, enabled)| RateLimitConfig {
            enabled,
            epoch_size_ms: EPOCH,
            messages_per_epoch: limit,
            accounting,
            approach_threshold: t,
            control_share: 1.0,
            max_queued_items: items,
            max_queued_bytes: bytes,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The limiter against a model: per-epoch charged cost never exceeds the budget, the queue is
    /// exactly the FIFO of what was queued minus what was released/discarded/removed, droppables
    /// never wait, the bounds hold, and everything queued is eventually released.
    #[test]
    fn budget_is_never_exceeded_and_release_is_fifo(cfg in config(), start in 0..3 * EPOCH, ops in prop::collection::vec(op(), 1..120)) {
        let limit = cfg.messages_per_epoch;
        let approach = cfg.approach_limit();
        let enabled = cfg.enabled;
        let (max_items, max_bytes) = (cfg.max_queued_items, cfg.max_queued_bytes);
        let mut rl: RateLimiter<u32> = RateLimiter::new(cfg);
        let mut now = start;
        let mut charged: BTreeMap<u64, u32> = BTreeMap::new();
        // (id, cost, bytes) in queue order.
        let mut model: VecDeque<(u32, u32, usize)> = VecDeque::new();
        let mut next_id = 0u32;
        let mut released_ids: Vec<u32> = Vec::new();

        let check = |rl: &RateLimiter<u32>, model: &VecDeque<(u32, u32, usize)>, charged: &BTreeMap<u64, u32>, now: u64| -> Result<(), TestCaseError> {
            let epoch = rl.epoch(now);
            let used = charged.get(&epoch).copied().unwrap_or(0);
            prop_assert_eq!(rl.used(now), used);
            if enabled {
                prop_assert!(used <= limit, "epoch {} charged {} > {}", epoch, used, limit);
            }
            prop_assert_eq!(rl.queued().copied().collect::<Vec<_>>(), model.iter().map(|m| m.0).collect::<Vec<_>>());
            prop_assert_eq!(rl.queued_bytes(), model.iter().map(|m| m.2).sum::<usize>());
            prop_assert!(rl.queue_len() <= max_items && rl.queued_bytes() <= max_bytes);
            match model.front() {
                None => prop_assert_eq!(rl.next_deadline(now), None),
                Some(&(_, cost, _)) if used + cost <= limit => prop_assert_eq!(rl.next_deadline(now), Some(now)),
                Some(_) => prop_assert_eq!(rl.next_deadline(now), Some(rl.next_epoch_start(now))),
            }
            Ok(())
        };

        for op in ops {
            match op {
                Op::Wait { dt } => now += dt,
                Op::Offer { dt, class, bytes } => {
                    now += dt;
                    let id = next_id;
                    next_id += 1;
                    let cost = rl.cost(class);
                    let epoch = rl.epoch(now);
                    let used = charged.get(&epoch).copied().unwrap_or(0);
                    let was_empty = model.is_empty();
                    match rl.offer(now, id, bytes, class) {
                        Admit::Now(x) => {
                            prop_assert_eq!(x, id);
                            if enabled {
                                prop_assert!(was_empty);
                                if class.is_droppable() {
                                    prop_assert!(cost == 0 || used + cost <= approach);
                                }
                            }
                            *charged.entry(epoch).or_default() += cost;
                        }
                        Admit::Queued => {
                            prop_assert!(enabled && !class.is_droppable());
                            prop_assert!(!was_empty || used + cost > limit);
                            model.push_back((id, cost, bytes));
                        }
                        Admit::Dropped(x) => {
                            prop_assert_eq!(x, id);
                            prop_assert!(enabled && class.is_droppable());
                            prop_assert!(!was_empty || (cost > 0 && used + cost > approach));
                        }
                        Admit::Full(x) => {
                            prop_assert_eq!(x, id);
                            prop_assert!(enabled && !class.is_droppable());
                            prop_assert!(model.len() + 1 > max_items || model.iter().map(|m| m.2).sum::<usize>() + bytes > max_bytes);
                        }
                    }
                }
                Op::Ready { dt, reject_mod } => {
                    now += dt;
                    let mut wanted = |x: &u32| reject_mod == 0 || !x.is_multiple_of(reject_mod);
                    let mut discarded = Vec::new();
                    let got = rl.next_ready(now, &mut wanted, &mut discarded);
                    // Model: drop unwanted heads, then release the head if it fits.
                    let mut expect_discarded = Vec::new();
                    while let Some(&(id, _, _)) = model.front() {
                        if wanted(&id) { break; }
                        expect_discarded.push(id);
                        model.pop_front();
                    }
                    prop_assert_eq!(&discarded, &expect_discarded);
                    let epoch = rl.epoch(now);
                    let used = charged.get(&epoch).copied().unwrap_or(0);
                    match model.front().copied() {
                        Some((id, cost, _)) if used + cost <= limit => {
                            prop_assert_eq!(got, Some(id));
                            model.pop_front();
                            *charged.entry(epoch).or_default() += cost;
                            if let Some(&last) = released_ids.last() {
                                prop_assert!(id > last, "FIFO: {} released after {}", id, last);
                            }
                            released_ids.push(id);
                        }
                        _ => prop_assert_eq!(got, None),
                    }
                }
                Op::Remove { modulus } => {
                    let removed = rl.remove_where(&mut |x| x % modulus == 0);
                    let expect: Vec<u32> = model.iter().map(|m| m.0).filter(|x| x % modulus == 0).collect();
                    model.retain(|m| m.0 % modulus != 0);
                    prop_assert_eq!(removed, expect);
                }
            }
            check(&rl, &model, &charged, now)?;
        }

        // Liveness: stepping through epochs drains the whole queue, within budget.
        let mut epochs = 0;
        while !model.is_empty() {
            now = rl.next_deadline(now).unwrap_or(now).max(now);
            let epoch = rl.epoch(now);
            while let Some(x) = release(&mut rl, now) {
                let (id, cost, _) = model.pop_front().unwrap_or((u32::MAX, 0, 0));
                prop_assert_eq!(x, id);
                *charged.entry(epoch).or_default() += cost;
            }
            check(&rl, &model, &charged, now)?;
            epochs += 1;
            prop_assert!(epochs <= 2 * max_items + 2, "queue did not drain");
        }
        if enabled {
            prop_assert!(charged.values().all(|&c| c <= limit));
            prop_assert!(rl.stats().max_epoch_used <= limit);
        }
        prop_assert_eq!(rl.stats().charged, charged.values().map(|&c| u64::from(c)).sum::<u64>());
        prop_assert_eq!(rl.stats().max_epoch_used, charged.values().copied().max().unwrap_or(0));
    }
}

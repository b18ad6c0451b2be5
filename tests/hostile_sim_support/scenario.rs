//! What a seed of tests/hostile_sim.rs runs (the honest workload, the network's faults, mallory's
//! attacks) and the invariants it checks.

use crate::*;

/// What mallory does. Each seed of the `Full` family enables a random non-empty subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Attack {
    /// Chunks of real messages under their sender's id: garbage links at any index, duplicate
    /// first chunks (after the real one), exact copies re-wrapped in new SDS messages.
    ForgedChunk,
    /// Old honest WakuMessages published again, byte for byte, 20 s or more later.
    Replay,
    /// Content under an honest participant's id: an echo spoof for that participant.
    SpoofSender,
    /// Lamport `u64::MAX` or 0.
    Lamport,
    /// Two syncs with an all-ones or saturated (75–95 % set) bloom filter, right after an
    /// honest content publication (before its receivers could have acknowledged it).
    Bloom,
    /// Content or syncs naming 64–1,024 unknown ids, with or without retrieval hints.
    Phantom,
    /// A WakuMessage over the size limit, or a message with an empty sender id.
    Invalid,
}

pub(crate) const ATTACKS: [Attack; 7] =
    [Attack::ForgedChunk, Attack::Replay, Attack::SpoofSender, Attack::Lamport, Attack::Bloom, Attack::Phantom, Attack::Invalid];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Full,
    Chunks,
    Quiet,
}

#[derive(Debug, Clone)]
pub(crate) struct RateCfg {
    pub(crate) epoch_ms: u64,
    pub(crate) per_epoch: u32,
}

/// An honest send: who, when, what.
pub(crate) struct Planned {
    pub(crate) from: usize,
    pub(crate) at: u64,
    pub(crate) ephemeral: bool,
    pub(crate) request_id: String,
    pub(crate) payload: Arc<Vec<u8>>,
}

/// The network's faults, the same for every copy of every message (mallory's too).
#[derive(Debug)]
pub(crate) struct Faults {
    pub(crate) loss: f64,
    pub(crate) duplicate: f64,
    /// Chance that a copy is held back 0–3 s more.
    pub(crate) reorder: f64,
    pub(crate) delay_ms: (u64, u64),
}

pub(crate) struct Scenario {
    pub(crate) seed: u64,
    pub(crate) family: Family,
    pub(crate) n: usize,
    pub(crate) faults: Faults,
    pub(crate) rate: Option<RateCfg>,
    pub(crate) config: ChannelConfig,
    pub(crate) sends: Vec<Planned>,
    pub(crate) attacks: Vec<Attack>,
    /// Times of mallory's scheduled attacks.
    pub(crate) hostile_at: Vec<u64>,
    /// Chance that mallory reacts to an honest content publication.
    pub(crate) react: f64,
    pub(crate) probes: u32,
}

pub(crate) fn scenario(seed: u64, family: Family) -> Scenario {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x4057_11e5_eed5);
    let n = rng.gen_range(2..=HONEST.len());
    let lo = rng.gen_range(1..100);
    let faults = Faults {
        loss: rng.gen_range(0.0..=0.10),
        duplicate: rng.gen_range(0.0..0.1),
        reorder: rng.gen_range(0.0..0.2),
        delay_ms: (lo, lo + rng.gen_range(0..300)),
    };
    let chunk = [1_024, 2_048, 4_096][rng.gen_range(0..3)];
    let r: f64 = rng.gen();
    let rate = if r < 0.2 {
        Some(RateCfg { epoch_ms: rng.gen_range(1_000..=2_000), per_epoch: rng.gen_range(8..=12) })
    } else if r < 0.5 {
        Some(RateCfg { epoch_ms: 600_000, per_epoch: 100 })
    } else {
        None
    };
    let rate_json = match &rate {
        None => r#""enabled": false"#.to_owned(),
        Some(c) => format!(r#""enabled": true, "epochSizeMs": {}, "messagesPerEpoch": {}, "accounting": "firstChunk""#, c.epoch_ms, c.per_epoch),
    };
    let json = format!(r#"{{"segmentationConfig": {{"chunkSizeBytes": {chunk}}}, "rateLimitConfig": {{{rate_json}}}}}"#);
    let config = ChannelConfig::default().with_json(Some(&json)).expect("valid simulation config");
    let mut sends = Vec::new();
    for from in 0..n {
        for _ in 0..rng.gen_range(1..=4) {
            let r: f64 = rng.gen();
            let len = if r < 0.5 {
                rng.gen_range(1..=200)
            } else if r < 0.85 {
                rng.gen_range(201..=8_192)
            } else {
                rng.gen_range(8_193..=32_768)
            };
            let mut payload = vec![0u8; len];
            rng.fill_bytes(&mut payload);
            let at = T0 + rng.gen_range(0..SEND_WINDOW_MS);
            sends.push(Planned { from, at, request_id: String::new(), payload: Arc::new(payload), ephemeral: rng.gen_bool(0.1) });
        }
    }
    sends.sort_by_key(|p| (p.at, p.from));
    let mut next = [0usize; HONEST.len()];
    for p in &mut sends {
        p.request_id = format!("{}-{}", HONEST[p.from], next[p.from]);
        next[p.from] += 1;
    }
    let attacks: Vec<Attack> = match family {
        Family::Quiet => Vec::new(),
        Family::Chunks => vec![Attack::ForgedChunk, Attack::Replay],
        Family::Full => {
            let mut a: Vec<Attack> = ATTACKS.iter().copied().filter(|_| rng.gen_bool(0.6)).collect();
            if a.is_empty() {
                a.push(ATTACKS[rng.gen_range(0..ATTACKS.len())]);
            }
            a
        }
    };
    let count = if attacks.is_empty() { 0 } else { rng.gen_range(5..=20) };
    let mut hostile_at: Vec<u64> = (0..count).map(|_| T0 + rng.gen_range(0..HOSTILE_WINDOW_MS)).collect();
    hostile_at.sort_unstable();
    let react = if attacks.is_empty() { 0.0 } else { rng.gen_range(0.1..0.4) };
    // One probe round per Full seed: the phantom lists it sends are most of the simulation's
    // time while the victim still retries every acknowledgement timeout (HOSTILE_PROBES=n for more).
    let probes = if family == Family::Full { env_u64("HOSTILE_PROBES").map_or(1, |n| n as u32) } else { 0 };
    Scenario { seed, family, n, faults, rate, config, sends, attacks, hostile_at, react, probes }
}

impl Scenario {
    pub(crate) fn summary(&self) -> String {
        let (sc, attacks) = (self, format!("attacks {:?} ({} scheduled, react {:.2})", self.attacks, self.hostile_at.len(), self.react));
        let head = format!("seed {} ({:?}): {} honest, {:?}, chunk {} B", sc.seed, sc.family, sc.n, sc.faults, sc.config.chunk_size_bytes);
        let mut s = format!("{head}, rate {:?}, {attacks}, {} probe rounds\n", sc.rate, sc.probes);
        for p in &self.sends {
            let eph = if p.ephemeral { ", ephemeral" } else { "" };
            let _ = writeln!(s, "  +{:>6} ms {} sends {} ({} B{eph})", p.at - T0, HONEST[p.from], p.request_id, p.payload.len());
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Invariants

/// The invariants, each reported on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Inv {
    NoLoss,
    NoDuplicates,
    NoFalseDelivered,
    Integrity,
    Lifecycle,
    Amplification,
    LostReports,
    EchoSpoof,
    Lamport,
    RefusesInvalid,
    Bounds,
    RlnBudget,
    Quiescence,
    NoPanic,
}

pub(crate) const INVARIANTS: [Inv; 14] = [
    Inv::NoLoss,
    Inv::NoDuplicates,
    Inv::NoFalseDelivered,
    Inv::Integrity,
    Inv::Lifecycle,
    Inv::Amplification,
    Inv::LostReports,
    Inv::EchoSpoof,
    Inv::Lamport,
    Inv::RefusesInvalid,
    Inv::Bounds,
    Inv::RlnBudget,
    Inv::Quiescence,
    Inv::NoPanic,
];

impl Inv {
    pub(crate) fn doc(self) -> &'static str {
        match self {
            Inv::NoLoss => "every reliable honest send ends DELIVERED and is RECEIVED by every other honest participant",
            Inv::NoDuplicates => "no honest participant RECEIVES a (sender, request id) twice",
            Inv::NoFalseDelivered => "a send is DELIVERED only when every chunk had reached an honest peer of its sender",
            Inv::Integrity => "honest messages RECEIVED byte-identical and in send order; nothing unknown, nothing under one's own id",
            Inv::Lifecycle => "every accepted send has exactly one final event, SENT before DELIVERED",
            Inv::Amplification => "in the idle channel, an honest participant's publications and store lookups per probe message are bounded",
            Inv::LostReports => "MESSAGE_LOST at most once per waiting probe message; never both RECEIVED and lost",
            Inv::EchoSpoof => "no honest participant waits for, and reports lost, a message carrying its own sender id",
            Inv::Lamport => "no honest participant publishes a lamport timestamp far past its clock",
            Inv::RefusesInvalid => "oversized and empty-sender messages are never RECEIVED",
            Inv::Bounds => "every Channel::bounds() within its bound after every step",
            Inv::RlnBudget => "no honest participant exceeds the RLN budget of an epoch",
            Inv::Quiescence => "the run ends: no endless traffic, nothing pending",
            Inv::NoPanic => "no panic",
        }
    }
}

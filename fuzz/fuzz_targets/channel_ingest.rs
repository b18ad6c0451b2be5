//! One channel fed structure-aware traffic, sends, dispatch outcomes and time (see
//! `src/victim.rs` for the operations and `src/ledger.rs` for the invariants checked after every
//! step).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliable_channel_fuzz::victim::{Input, Victim};

fuzz_target!(|input: Input| Victim::run(&input));

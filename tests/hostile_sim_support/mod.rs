//! The parts of tests/hostile_sim.rs: the scenario each seed draws and the invariants
//! (`scenario.rs`), mallory's attacks (`mallory.rs`) and the end-of-run checks (`checks.rs`).
//! `mallory.rs` and `checks.rs` extend the simulator (`Sim`, defined in tests/hostile_sim.rs).

mod checks;
pub(crate) mod mallory;
pub(crate) mod scenario;

//! The event dispatcher thread: hands events to the application's handler.
//!
//! The runtime hands events over in batches (one lock and at most one wake-up per batch), and the
//! dispatcher sleeps on a condition variable when idle: no spinning, which on a small machine
//! would steal a core from the runtime.
//!
//! Each event carries its channel's handle; an event of a channel that was closed is dropped.
//! While a handler runs, the channel's gate is held for reading, so `close_channel` (which takes
//! it for writing) returns only once no event of that channel is being delivered.
//!
//! Events of durable channels are rows of the manager's database (the outbox) until the handler
//! returned from them: the dispatcher then reports their `seq` in [`Delivered`], and the runtime
//! deletes the rows in a later commit. One dropped because its channel was closed stays stored and
//! is delivered again when the channel is reopened.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::driver::Command;
use super::manager::{ChannelHandle, Event, Shared};
use crate::collections::FastSet;

pub(crate) struct DispatchItem {
    pub handle: Arc<ChannelHandle>,
    pub event: crate::channel::ChannelEvent,
    /// The event's sequence number (see `Event::seq`).
    pub seq: u64,
    /// Stored in the outbox: report it once delivered.
    pub durable: bool,
}

/// What the dispatcher tells the runtime about events of durable channels.
#[derive(Default)]
pub(crate) struct Delivered {
    /// Handed to the handler, which returned: the rows may go.
    done: Mutex<Vec<u64>>,
    /// Being handed to the handler right now (0: none). Set before the channel's `open` flag is
    /// read, both sequentially consistent: a reopen that finds the flag cleared also finds this
    /// (see `Delivered::settled`).
    in_flight: AtomicU64,
}

impl Delivered {
    /// Takes the delivered sequence numbers (for a commit).
    pub fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.done.lock())
    }

    /// How many are waiting for a commit.
    pub fn pending(&self) -> usize {
        self.done.lock().len()
    }

    /// Sequence numbers that must not be delivered again by a reopen: delivered (not yet
    /// committed as such) or being delivered.
    pub fn settled(&self) -> FastSet<u64> {
        // In this order: a delivery finishing in between is pushed to `done` before it clears
        // `in_flight`, so it is found in one or the other.
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        let mut s: FastSet<u64> = self.done.lock().iter().copied().collect();
        if in_flight != 0 {
            s.insert(in_flight);
        }
        s
    }

    /// Records a delivery; true when the list was empty (the runtime is to be woken).
    fn push(&self, seq: u64) -> bool {
        let mut d = self.done.lock();
        d.push(seq);
        d.len() == 1
    }
}

/// An unbounded FIFO from the runtime thread to the dispatcher thread. Unbounded so that a slow
/// application never stalls the runtime's timers.
#[derive(Default)]
pub(crate) struct EventQueue {
    state: Mutex<(VecDeque<DispatchItem>, bool)>,
    ready: Condvar,
    /// Deliveries of durable events, for the runtime.
    pub delivered: Delivered,
}

impl EventQueue {
    /// Appends a batch (emptying `items`), waking the dispatcher if it sleeps.
    pub fn push_batch(&self, items: &mut Vec<DispatchItem>) {
        if items.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        let was_empty = st.0.is_empty();
        st.0.extend(items.drain(..));
        drop(st);
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// No more events: the dispatcher exits once it has delivered what is queued.
    pub fn close(&self) {
        self.state.lock().1 = true;
        self.ready.notify_one();
    }

    /// Waits for events and moves all of them to `out`; false once closed and drained.
    fn take_all(&self, out: &mut VecDeque<DispatchItem>) -> bool {
        let mut st = self.state.lock();
        while st.0.is_empty() && !st.1 {
            self.ready.wait(&mut st);
        }
        if st.0.is_empty() {
            return false;
        }
        std::mem::swap(out, &mut st.0);
        true
    }
}

pub(crate) fn run(shared: Arc<Shared>, queue: Arc<EventQueue>) {
    shared.mark_dispatcher_thread();
    let mut batch = VecDeque::new();
    let delivered = &queue.delivered;
    while queue.take_all(&mut batch) {
        let handler = shared.handler();
        for item in batch.drain(..) {
            let gate = item.handle.gate.read();
            if item.durable {
                delivered.in_flight.store(item.seq, Ordering::SeqCst);
            }
            if !item.handle.is_open() {
                delivered.in_flight.store(0, Ordering::SeqCst);
                continue;
            }
            if let Some(h) = &handler {
                let ev = Event {
                    seq: item.seq,
                    channel_id: &item.handle.id,
                    content_topic: &item.handle.topic,
                    local_sender_id: item.handle.outbox.sender_id(),
                    event: &item.event,
                };
                // A panicking handler must not take the dispatcher down with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(&ev)));
            }
            // Without a handler the application chose not to listen: delivered all the same.
            if item.durable {
                if delivered.push(item.seq) {
                    // The runtime commits the deletion (deferred: see `driver.rs`).
                    let _ = shared.cmd_sender().send(Command::Delivered);
                }
                delivered.in_flight.store(0, Ordering::SeqCst);
            }
            drop(gate);
        }
    }
}

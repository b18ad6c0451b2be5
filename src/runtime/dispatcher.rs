//! The event dispatcher thread: hands events to the application's handler.
//!
//! The runtime hands events over in batches (one lock and at most one wake-up per batch), and the
//! dispatcher sleeps on a condition variable when idle: no spinning, which on a small machine
//! would steal a core from the runtime.
//!
//! Each event carries its channel's handle; an event of a channel that was closed is dropped.
//! While a handler runs, the channel's gate is held for reading, so `close_channel` (which takes
//! it for writing) returns only once no event of that channel is being delivered.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::manager::{ChannelHandle, Event, Shared};

pub(crate) struct DispatchItem {
    pub handle: Arc<ChannelHandle>,
    pub event: crate::channel::ChannelEvent,
}

/// An unbounded FIFO from the runtime thread to the dispatcher thread. Unbounded so that a slow
/// application never stalls the runtime's timers.
#[derive(Default)]
pub(crate) struct EventQueue {
    state: Mutex<(VecDeque<DispatchItem>, bool)>,
    ready: Condvar,
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
    while queue.take_all(&mut batch) {
        let handler = shared.handler();
        for item in batch.drain(..) {
            let gate = item.handle.gate.read();
            if !item.handle.is_open() {
                continue;
            }
            if let Some(h) = &handler {
                let ev = Event {
                    channel_id: &item.handle.id,
                    content_topic: &item.handle.topic,
                    local_sender_id: item.handle.outbox.sender_id(),
                    event: &item.event,
                };
                // A panicking handler must not take the dispatcher down with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(&ev)));
            }
            drop(gate);
        }
    }
}

//! The event dispatcher thread: hands events to the application's handler.
//!
//! Each event carries its channel's handle; an event of a channel that was closed is dropped.
//! While a handler runs, the channel's gate is held for reading, so `close_channel` (which takes
//! it for writing) returns only once no event of that channel is being delivered.

use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::manager::{ChannelHandle, Event, Shared};

pub(crate) struct DispatchItem {
    pub handle: Arc<ChannelHandle>,
    pub event: crate::channel::ChannelEvent,
}

pub(crate) fn run(shared: Arc<Shared>, rx: Receiver<DispatchItem>) {
    shared.mark_dispatcher_thread();
    for item in rx {
        let handler = shared.handler();
        let gate = item.handle.gate.read();
        if !item.handle.is_open() {
            continue;
        }
        if let Some(h) = handler {
            let ev = Event { channel_id: &item.handle.id, content_topic: &item.handle.topic, local_sender_id: &item.handle.sender, event: &item.event };
            // A panicking handler must not take the dispatcher down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(&ev)));
        }
        drop(gate);
    }
}

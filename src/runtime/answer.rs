//! The runtime's answer to a caller blocked for a commit (a durable `send`, `open_channel`,
//! `purge_channel`): one value, handed from the runtime thread to the waiting thread.
//!
//! The waiter parks at once and the runtime unparks it. A channel whose receiver first spins and
//! yields (crossbeam's) made the blocked senders take, between them, a sixth of the CPU samples,
//! on the two cores the runtime threads needed for the commit they waited for (`make
//! bench-durable`; BENCHMARKS.md, "Journal file").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use parking_lot::Mutex;

use crate::error::Error;

struct Slot {
    value: Mutex<Option<Result<(), Error>>>,
    done: AtomicBool,
    waiter: Thread,
}

impl Slot {
    fn put(&self, v: Result<(), Error>) {
        *self.value.lock() = Some(v);
        self.done.store(true, Ordering::Release);
        self.waiter.unpark();
    }
}

/// The runtime's end: [`Reply::send`] answers; dropped unanswered it answers [`Error::Stopped`].
pub(crate) struct Reply(Option<Arc<Slot>>);

/// The caller's end, waited on by the thread that made it.
pub(crate) struct Answer(Arc<Slot>);

/// A reply and the answer the calling thread waits for.
pub(crate) fn answer() -> (Reply, Answer) {
    let slot = Arc::new(Slot { value: Mutex::new(None), done: AtomicBool::new(false), waiter: std::thread::current() });
    (Reply(Some(slot.clone())), Answer(slot))
}

impl Reply {
    pub fn send(mut self, v: Result<(), Error>) {
        if let Some(s) = self.0.take() {
            s.put(v);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.put(Err(Error::Stopped));
        }
    }
}

impl Answer {
    /// Parks until the reply came: durable operations only, never on the runtime thread (which
    /// would wait for itself).
    pub fn wait(self) -> Result<(), Error> {
        while !self.0.done.load(Ordering::Acquire) {
            std::thread::park();
        }
        self.0.value.lock().take().unwrap_or(Err(Error::Stopped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_arrives_from_another_thread_and_a_dropped_reply_means_stopped() {
        let (reply, waiting) = answer();
        let t = std::thread::spawn(move || reply.send(Err(Error::Storage("full".into()))));
        assert!(matches!(waiting.wait(), Err(Error::Storage(m)) if m == "full"));
        t.join().unwrap();
        let (reply, waiting) = answer();
        std::thread::spawn(move || drop(reply)).join().unwrap();
        assert!(matches!(waiting.wait(), Err(Error::Stopped)));
        let (reply, waiting) = answer();
        reply.send(Ok(()));
        assert!(waiting.wait().is_ok());
    }
}

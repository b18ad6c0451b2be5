//! The write-ahead rule of the runtime thread: what a batch of the driver loop produced leaves the
//! process only after the batch's commit.
//!
//! The driver drains its command queue in batches. Everything that leaves the process — WakuMessages
//! to publish, events for the application, replies to `send` / `open_channel` callers waiting for
//! durability — is held in [`Batch`] until the batch ends; then what durable channels changed is
//! written to the [`Store`] in one transaction (the group commit: every concurrent sender of the
//! batch shares it), together with what the batch changed in the durable channels' own state
//! (`Channel::take_changes`, collected by the driver at the end of the batch), and only after it
//! succeeded is the rest released. A manager without storage
//! releases at the same point, without a commit.
//!
//! A failed commit is final for the manager's storage: the error is logged, the callers waiting
//! get `Error::Storage` with SQLite's message, what the batch held for durable channels is dropped
//! (never published or emitted: it is not on disk), and the driver stops its durable channels.
//!
//! Sequence numbers: every event gets the next `seq`. `seq_bound` in the store covers every
//! number handed out, raised by [`SEQ_BLOCK`] at a time, so that events of memory channels do not
//! cost a commit each. Outbox rows of delivered events are deleted in the next commit, or after
//! [`DELETION_DELAY_MS`] (or [`MAX_DEFERRED_DELETIONS`] of them) when no other commit comes: a
//! crash meanwhile delivers them again, with the same `seq`.

use std::sync::Arc;

use super::dispatcher::{DispatchItem, EventQueue};
use super::fault::{self, Point};
use super::manager::ChannelHandle;
use crate::channel::{Change, ChannelChanges, ChannelEvent};
use crate::collections::FastMap;
use crate::error::Error;
use crate::messaging::{DispatchId, Transport};
use crate::storage::{self, ChannelKey, ChannelRecord, EventRow, Store};
use crate::wire::WakuMessage;

/// Sequence numbers reserved in the store per raise of its bound.
pub(crate) const SEQ_BLOCK: u64 = 1 << 16;
/// Longest time a delivered event's row waits for a commit to ride on.
pub(crate) const DELETION_DELAY_MS: u64 = 50;
/// Deliveries that make a commit of their own at the end of a batch.
pub(crate) const MAX_DEFERRED_DELETIONS: usize = 1_024;

pub(crate) use super::answer::Reply;

/// What one batch holds back until it is committed.
#[derive(Default)]
pub(crate) struct Batch {
    /// (dispatch id, message, of a durable channel).
    publishes: Vec<(DispatchId, WakuMessage, bool)>,
    /// Events already stored, delivered again (before the new ones of their channel).
    redeliveries: Vec<DispatchItem>,
    events: Vec<DispatchItem>,
    /// The outbox rows to write: (index in `events`, the channel's key).
    rows: Vec<(usize, ChannelKey)>,
    replies: Vec<Reply>,
    new_channels: Vec<ChannelRecord>,
    /// What durable channels changed in their own state.
    changes: Vec<(ChannelKey, ChannelChanges)>,
    /// Holds something of a durable channel: commit before release.
    durable: bool,
}

/// The manager's storage as the runtime thread drives it, and the batch in progress.
pub(crate) struct Committer {
    store: Option<Box<dyn Store>>,
    /// Set once a commit failed: no further commit is attempted.
    failure: Option<String>,
    next_seq: u64,
    /// When the delivered events' rows are to be deleted at the latest (ms).
    deletions_due: Option<u64>,
    pub batch: Batch,
}

impl Committer {
    pub fn new(store: Option<Box<dyn Store>>) -> Self {
        let next_seq = store.as_ref().map_or(1, |s| s.seq_bound());
        Committer { store, failure: None, next_seq, deletions_due: None, batch: Batch::default() }
    }

    /// The store (for loading and purging between batches), unless it failed.
    pub fn store(&mut self) -> Result<&mut (dyn Store + 'static), Error> {
        if let Some(f) = &self.failure {
            return Err(Error::Storage(f.clone()));
        }
        self.store.as_deref_mut().ok_or_else(|| Error::Internal("a durable channel on a manager without storage".into()))
    }

    /// Gives the store back (at shutdown).
    pub fn into_store(self) -> Option<Box<dyn Store>> {
        self.store
    }

    /// The failure that stopped the storage, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// When the batch loop must wake up for deferred deletions.
    pub fn deadline(&self) -> Option<u64> {
        self.deletions_due
    }

    /// The batch holds something of a durable channel (it is committed when it ends).
    pub fn holds_durable(&self) -> bool {
        self.batch.durable
    }

    /// Holds an event for the application with the next `seq`; one of a durable channel (its
    /// `key`) becomes an outbox row.
    pub fn event(&mut self, handle: &Arc<ChannelHandle>, event: ChannelEvent, key: Option<ChannelKey>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let b = &mut self.batch;
        if let Some(k) = key {
            b.durable = true;
            b.rows.push((b.events.len(), k));
        }
        b.events.push(DispatchItem { handle: handle.clone(), event, seq, durable: key.is_some() });
    }

    /// Holds an event that is already stored (a re-delivery), with its own `seq`.
    pub fn redeliver(&mut self, handle: &Arc<ChannelHandle>, event: ChannelEvent, seq: u64) {
        self.batch.redeliveries.push(DispatchItem { handle: handle.clone(), event, seq, durable: true });
    }

    /// Holds a publication.
    pub fn publish(&mut self, id: DispatchId, message: WakuMessage, durable: bool) {
        self.batch.durable |= durable;
        self.batch.publishes.push((id, message, durable));
    }

    /// Holds a reply until the batch is committed; the batch commits.
    pub fn reply_after_commit(&mut self, reply: Reply) {
        self.batch.durable = true;
        self.batch.replies.push(reply);
    }

    /// A channel stored for the first time in this batch.
    pub fn new_channel(&mut self, record: ChannelRecord) {
        self.batch.durable = true;
        self.batch.new_channels.push(record);
    }

    /// What a durable channel changed in its own state (nothing to do when empty).
    pub fn channel_changes(&mut self, key: ChannelKey, changes: ChannelChanges) {
        if !changes.is_empty() {
            self.batch.durable = true;
            self.batch.changes.push((key, changes));
        }
    }

    /// Ends the batch: commits what must be, then releases what the commit covers. Returns the
    /// error of a commit that just failed (the driver then stops its durable channels).
    pub fn end(
        &mut self,
        now: u64,
        queue: &EventQueue,
        transport: &mut dyn Transport,
        dispatches: &mut FastMap<DispatchId, (Arc<str>, u64)>,
    ) -> Option<Error> {
        let failed_now = self.commit(now, queue).err();
        let failed = self.failure.is_some();
        let b = &mut self.batch;
        // The callers waiting for the commit first: their next sends are prepared on their
        // threads while this one publishes (they join the next batch sooner).
        for r in b.replies.drain(..) {
            r.send(self.failure.as_ref().map_or(Ok(()), |f| Err(Error::Storage(f.clone()))));
        }
        for (id, message, durable) in b.publishes.drain(..) {
            if failed && durable {
                dispatches.remove(&id);
            } else {
                transport.publish(id, message);
            }
        }
        if failed {
            b.redeliveries.clear();
            b.events.retain(|e| !e.durable);
        }
        queue.push_batch(&mut b.redeliveries);
        queue.push_batch(&mut b.events);
        b.rows.clear();
        b.new_channels.clear();
        b.changes.clear();
        b.durable = false;
        // Everything is released: housekeeping that may take a while (the checkpoint) no longer
        // delays anybody's reply.
        self.maintain(false);
        failed_now
    }

    /// Storage housekeeping off the commit path (`Store::maintain`): `idle` when the runtime is
    /// about to wait for work.
    pub fn maintain(&mut self, idle: bool) {
        if self.failure.is_none() {
            if let Some(store) = self.store.as_deref_mut() {
                store.maintain(idle);
            }
        }
    }

    /// Writes the batch when it holds durable changes, a new sequence bound, or deletions that
    /// are due. Nothing is attempted once a commit failed.
    fn commit(&mut self, now: u64, queue: &EventQueue) -> Result<(), Error> {
        if self.failure.is_some() {
            return Ok(());
        }
        let Some(store) = self.store.as_deref_mut() else { return Ok(()) };
        // Every seq handed out (below `next_seq`) must stay below the stored bound.
        let seq_bound = (self.next_seq > store.seq_bound()).then_some(self.next_seq + SEQ_BLOCK);
        let pending = queue.delivered.pending();
        if pending > 0 && self.deletions_due.is_none() {
            self.deletions_due = Some(now + DELETION_DELAY_MS);
        }
        let deletions_now = pending >= MAX_DEFERRED_DELETIONS || self.deletions_due.is_some_and(|t| t <= now);
        if !self.batch.durable && seq_bound.is_none() && !deletions_now {
            return Ok(());
        }
        let delivered = queue.delivered.take();
        let b = &self.batch;
        let events = b.rows.iter().map(|&(i, channel)| EventRow { seq: b.events[i].seq, channel, event: &b.events[i].event }).collect();
        let batch = storage::Batch { new_channels: b.new_channels.clone(), events, delivered, seq_bound, channels: &b.changes };
        fault::hit(Point::CommitBefore);
        match store.commit(&batch) {
            Ok(()) => {
                fault::hit(Point::CommitAfter);
                if fault::is_armed(Point::Partial)
                    && b.changes.iter().any(|(_, c)| c.changes.iter().any(|x| matches!(x, Change::PartialChunk { .. })))
                {
                    fault::hit(Point::Partial);
                }
                self.deletions_due = None;
                Ok(())
            }
            Err(e) => {
                log::error!("storage failed, durable channels stopped (sends refused with RC_ERR_STORAGE until the manager is restarted): {e}");
                self.failure = Some(e.0.clone());
                Err(e.into())
            }
        }
    }
}

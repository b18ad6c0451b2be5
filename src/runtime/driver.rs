//! The runtime thread: owns every channel, the timers and the transport, and drives the
//! sans-I/O channels with commands, transport events and time.
//!
//! Per message the work is O(1) in the number of channels: incoming messages are routed by
//! content topic, dispatch outcomes by dispatch id, and timers live in one ordered index keyed
//! by (deadline, channel).
//!
//! Commands are handled in batches; what a batch produces leaves the process when the batch ends,
//! after its commit (`batch.rs`: the write-ahead rule and the group commit).

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::batch::{Committer, Reply};
use super::config::{ManagerConfig, TransportConfig};
use super::dispatcher::EventQueue;
use super::manager::{ChannelHandle, Shared};
use super::Clock;
use crate::channel::{Channel, ChannelAction, ChannelEvent, ChannelSnapshot, ChannelStats, Encryption, PreparedSend};
use crate::collections::FastMap;
use crate::error::Error;
use crate::messaging::host::{HostBridge, HostTransport};
use crate::messaging::memory::MemoryTransport;
use crate::messaging::{DispatchId, Transport, TransportEvent, TransportSink};
use crate::storage::{ChannelKey, ChannelRecord, Store};

/// Times the runtime re-checks its queue (yielding the CPU in between) before it parks.
const BUSY_POLLS: u32 = 8;
/// While commands keep arriving, due timers are fired after this many of them.
const TIMER_CHECK_EVERY: u32 = 64;
/// While commands keep arriving, the batch ends (is committed and released) after this many: a
/// steady stream must not hold back what earlier commands produced.
const MAX_BATCH_COMMANDS: u32 = 256;

/// What the API threads and the transport ask of the runtime.
pub(crate) enum Command {
    /// A channel created on the API thread (with its outbox already in the handle). A durable
    /// one is checked against its stored record and answered after the commit that stores it.
    Open {
        handle: Arc<ChannelHandle>,
        channel: Box<Channel>,
        reply: Option<Reply>,
    },
    Close(Arc<str>),
    /// A send reserved and prepared on the API thread; dropping it gives its room back. One on a
    /// durable channel is answered after the commit of the batch that handled it.
    Send {
        handle: Arc<ChannelHandle>,
        prepared: PreparedSend,
        reply: Option<Reply>,
    },
    /// Deletes the stored state of a channel that is not open.
    Purge {
        channel: Arc<str>,
        reply: Reply,
    },
    /// The dispatcher delivered events of durable channels: their rows are to be deleted.
    Delivered,
    SetEncryption {
        channel: Option<Arc<str>>,
        enc: Option<Arc<dyn Encryption>>,
    },
    Stats {
        channel: Arc<str>,
        reply: crossbeam_channel::Sender<Option<ChannelStats>>,
    },
    Transport(TransportEvent),
    Shutdown,
}

/// A transport for the runtime thread and, for the host transport, the bridge through which
/// the host reports (kept by the manager).
pub(crate) struct MadeTransport {
    pub transport: Box<dyn Transport>,
    pub host: Option<Arc<HostBridge>>,
    /// The relay node's handle (addresses, `connect`, stats), for the relay transport.
    #[cfg(feature = "relay")]
    pub relay: Option<crate::messaging::relay::RelayHandle>,
}

/// Creates the configured transport, wired to the runtime's command queue.
pub(crate) fn make_transport(cfg: &ManagerConfig, shared: &Arc<Shared>) -> Result<MadeTransport, Error> {
    let sink = transport_sink(shared);
    let made = |transport: Box<dyn Transport>, host| MadeTransport {
        transport,
        host,
        #[cfg(feature = "relay")]
        relay: None,
    };
    match &cfg.transport {
        TransportConfig::Memory(m) => Ok(made(Box::new(MemoryTransport::new(m.clone(), sink)?), None)),
        TransportConfig::Host { pubsub_topic } => {
            let bridge = HostBridge::new(sink, pubsub_topic.clone());
            Ok(made(Box::new(HostTransport::new(bridge.clone())), Some(bridge)))
        }
        #[cfg(feature = "relay")]
        TransportConfig::Relay(r) => {
            let (transport, handle) = super::relay::make_relay(r, cfg.storage.as_ref(), sink)?;
            Ok(MadeTransport { transport, host: None, relay: Some(handle) })
        }
    }
}

pub(crate) fn transport_sink(shared: &Arc<Shared>) -> TransportSink {
    let weak = Arc::downgrade(shared);
    TransportSink::new(move |ev| {
        if let Some(s) = weak.upgrade() {
            s.transport_event(ev);
        }
    })
}

impl Shared {
    /// Enqueues a transport event (callable from any thread, never blocks).
    pub(crate) fn transport_event(&self, ev: TransportEvent) {
        let _ = self.cmd_sender().send(Command::Transport(ev));
    }
}

struct Slot {
    channel: Box<Channel>,
    handle: Arc<ChannelHandle>,
    deadline: Option<u64>,
    has_own_encryption: bool,
    /// The channel's key in the store: durable channels only.
    key: Option<ChannelKey>,
    /// In `Driver::dirty`: its changes are taken at the end of the batch.
    dirty: bool,
}

struct Driver {
    /// The manager's clock (a copy: it is two numbers).
    clock: Clock,
    channels: FastMap<Arc<str>, Slot>,
    by_topic: FastMap<Arc<str>, Vec<Arc<str>>>,
    timers: BTreeSet<(u64, Arc<str>)>,
    dispatches: FastMap<DispatchId, (Arc<str>, u64)>,
    next_dispatch: DispatchId,
    transport: Box<dyn Transport>,
    default_encryption: Option<Arc<dyn Encryption>>,
    events: Arc<EventQueue>,
    /// The store and the batch in progress: what leaves the process waits here for the commit.
    committer: Committer,
    /// Durable channels touched in this batch: their changes go into its commit.
    dirty: Vec<Arc<str>>,
    shared: Arc<Shared>,
}

/// The runtime thread's body. Returns the store, for the last deletions once the dispatcher
/// has delivered everything (see `Manager::shutdown`).
pub(crate) fn run(
    shared: Arc<Shared>,
    mut rx: UnboundedReceiver<Command>,
    transport: Box<dyn Transport>,
    events: Arc<EventQueue>,
    store: Option<Box<dyn Store>>,
) -> Option<Box<dyn Store>> {
    shared.mark_runtime_thread();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(_) => {
            events.close();
            return store;
        }
    };
    let mut d = Driver {
        clock: shared.clock,
        channels: FastMap::default(),
        by_topic: FastMap::default(),
        timers: BTreeSet::new(),
        dispatches: FastMap::default(),
        next_dispatch: 1,
        transport,
        default_encryption: None,
        events,
        committer: Committer::new(store),
        dirty: Vec::new(),
        shared,
    };
    rt.block_on(async move {
        loop {
            let next = [d.timers.first().map(|(t, _)| *t), d.committer.deadline()].into_iter().flatten().min();
            let wake = next.map(|t| tokio::time::Instant::from_std(d.clock.instant_of(t)));
            tokio::select! {
                biased;
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if !d.handle(cmd) { d.end_batch(); break; }
                    // Drain what is already queued before looking at timers again. When the queue
                    // runs dry, yield a few times before parking: under load the next command
                    // arrives within microseconds, and a park/wake costs more than the check.
                    let mut stop = false;
                    let mut idle = 0;
                    let mut handled = 0u32;
                    while idle < BUSY_POLLS {
                        match rx.try_recv() {
                            Ok(cmd) => {
                                idle = 0;
                                if !d.handle(cmd) { stop = true; break; }
                                // A steady stream of commands must not starve the timers.
                                handled += 1;
                                if handled.is_multiple_of(TIMER_CHECK_EVERY) {
                                    d.fire_timers();
                                }
                                if handled.is_multiple_of(MAX_BATCH_COMMANDS) {
                                    d.end_batch();
                                }
                            }
                            Err(_) => {
                                if idle == 0 {
                                    d.fire_timers();
                                    // A batch that commits waits out the yields first: senders
                                    // woken by the last commit join this one (the group commit)
                                    // rather than each making a commit of its own.
                                    if !d.commits() {
                                        d.end_batch();
                                    }
                                }
                                idle += 1;
                                std::thread::yield_now();
                            }
                        }
                    }
                    d.end_batch();
                    if stop { break; }
                    // The queue ran dry: time for the storage's housekeeping (the checkpoint).
                    d.committer.maintain(true);
                }
                _ = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {
                    d.fire_timers();
                    d.end_batch();
                }
            }
        }
        d.transport.shutdown();
        d.end_batch();
        d.events.close();
        d.committer.into_store()
    })
}

impl Driver {
    /// Handles one command; false means stop.
    fn handle(&mut self, cmd: Command) -> bool {
        let now = self.clock.now_ms();
        match cmd {
            Command::Open { handle, mut channel, reply } => {
                let key = if handle.durable {
                    match self.open_durable(&handle, &mut channel) {
                        Ok(key) => Some(key),
                        Err(e) => {
                            if let Some(r) = reply {
                                r.send(Err(e));
                            }
                            return true;
                        }
                    }
                } else {
                    None
                };
                channel.set_encryption(self.default_encryption.clone());
                self.transport.subscribe(&handle.topic);
                self.by_topic.entry(handle.topic.clone()).or_default().push(handle.id.clone());
                log::info!(
                    "channel {} opened on {} as {}{}",
                    handle.id,
                    handle.topic,
                    handle.outbox.sender_id(),
                    if key.is_some() { " (durable)" } else { "" }
                );
                let id = handle.id.clone();
                self.channels.insert(id.clone(), Slot { channel, handle, deadline: None, has_own_encryption: false, key, dirty: false });
                if let Some(r) = reply {
                    self.committer.reply_after_commit(r);
                }
                self.pump(&id);
            }
            Command::Close(id) => self.close(&id),
            Command::Send { handle, prepared, reply } => {
                // The channel may have been closed (and even re-opened) since: match the handle.
                let Some(slot) = self.channels.get_mut(&handle.id).filter(|s| Arc::ptr_eq(&s.handle, &handle)) else {
                    if let Some(r) = reply {
                        let why =
                            self.committer.failure().map_or_else(|| Error::UnknownChannel(handle.id.to_string()), |f| Error::Storage(f.to_owned()));
                        r.send(Err(why));
                    }
                    return true;
                };
                let request_id = prepared.request_id().to_owned();
                // Refused only for a send prepared elsewhere or a request id in use: neither
                // happens to one prepared by `Manager::send`; reported rather than dropped.
                if let Err(e) = slot.channel.send_prepared(now, prepared) {
                    let ev = ChannelEvent::SendError { request_id, error: e.to_string() };
                    let key = slot.key;
                    self.committer.event(&handle, ev, key);
                }
                if let Some(r) = reply {
                    self.committer.reply_after_commit(r);
                }
                let id = handle.id.clone();
                self.pump(&id);
            }
            Command::Purge { channel, reply } => {
                reply.send(self.purge(&channel));
            }
            Command::Delivered => {}
            Command::SetEncryption { channel: Some(id), enc } => {
                if let Some(slot) = self.channels.get_mut(&id) {
                    slot.has_own_encryption = enc.is_some();
                    let e = enc.or_else(|| self.default_encryption.clone());
                    slot.channel.set_encryption(e);
                }
            }
            Command::SetEncryption { channel: None, enc } => {
                self.default_encryption = enc;
                for slot in self.channels.values_mut().filter(|s| !s.has_own_encryption) {
                    slot.channel.set_encryption(self.default_encryption.clone());
                }
            }
            Command::Stats { channel, reply } => {
                let _ = reply.send(self.channels.get(&channel).map(|s| s.channel.stats()));
            }
            Command::Transport(ev) => self.transport_event(now, ev),
            Command::Shutdown => return false,
        }
        true
    }

    /// Checks a durable channel against its stored record, or allocates one: the key. Its outbox
    /// (events stored and not yet delivered) is delivered again first, and its stored protocol
    /// state is restored into `channel` (which starts recording its changes).
    fn open_durable(&mut self, handle: &Arc<ChannelHandle>, channel: &mut Channel) -> Result<ChannelKey, Error> {
        // Rows of the channel's previous opening may be in this batch: commit them first.
        self.end_batch();
        let settled = self.events.delivered.settled();
        let store = self.committer.store()?;
        let (id, sender) = (&handle.id, handle.outbox.sender_id());
        let Some(rec) = store.load_channel(id)? else {
            let key = store.allocate_key();
            let record = ChannelRecord { key, channel_id: id.to_string(), sender_id: sender.to_string(), content_topic: handle.topic.to_string() };
            self.committer.new_channel(record);
            channel.restore(self.clock.now_ms(), ChannelSnapshot::default());
            return Ok(key);
        };
        for (what, stored, given) in [("sender id", &*rec.sender_id, &**sender), ("content topic", &*rec.content_topic, &*handle.topic)] {
            if stored != given {
                return Err(Error::Config(format!(
                    "channel {id} is stored with {what} {stored:?}, opened with {given:?} (rc_channel_purge deletes the stored channel)"
                )));
            }
        }
        let outbox = store.load_events(rec.key)?;
        let started = std::time::Instant::now();
        let snapshot = store.load_snapshot(rec.key)?;
        let (log, sends) = (snapshot.log.len(), snapshot.sends.len());
        channel.restore(self.clock.now_ms(), snapshot);
        log::info!("channel {id}: restored {log} log entries and {sends} pending sends in {:?}", started.elapsed());
        let n = outbox.len();
        for e in outbox.into_iter().filter(|e| !settled.contains(&e.seq)) {
            self.committer.redeliver(handle, e.event, e.seq);
        }
        log::info!("channel {id} resumed from storage ({n} stored events to deliver)");
        Ok(rec.key)
    }

    /// Deletes the stored state of a channel that is not open, after committing the batch (which
    /// may still hold rows of its last opening).
    fn purge(&mut self, id: &Arc<str>) -> Result<(), Error> {
        if self.channels.contains_key(id) {
            return Err(Error::ChannelExists(id.to_string()));
        }
        self.end_batch();
        if self.committer.store()?.purge(id)? {
            log::info!("channel {id}: stored state purged");
        }
        Ok(())
    }

    /// The batch in progress will be committed: it holds something of a durable channel.
    fn commits(&self) -> bool {
        !self.dirty.is_empty() || self.committer.holds_durable()
    }

    /// Ends the batch (see `batch.rs`); after a failed commit, stops every durable channel: its
    /// state in memory is ahead of the disk, and nothing of it may leave the process any more.
    fn end_batch(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.channels.get_mut(&id) {
                slot.dirty = false;
                if let (Some(key), Some(changes)) = (slot.key, slot.channel.take_changes()) {
                    self.committer.channel_changes(key, changes);
                }
            }
        }
        let now = self.clock.now_ms();
        if let Some(e) = self.committer.end(now, &self.events, &mut *self.transport, &mut self.dispatches) {
            self.shared.set_storage_failure(e.to_string());
            let durable: Vec<Arc<str>> = self.channels.iter().filter(|(_, s)| s.key.is_some()).map(|(id, _)| id.clone()).collect();
            for id in durable {
                self.close(&id);
            }
        }
    }

    fn close(&mut self, id: &Arc<str>) {
        let Some(mut slot) = self.channels.remove(id) else { return };
        log::info!("channel {id} closed");
        // What it changed last goes into this batch's commit (the stored state stays).
        if let (Some(key), Some(changes)) = (slot.key, slot.channel.take_changes()) {
            self.committer.channel_changes(key, changes);
        }
        if let Some(d) = slot.deadline.take() {
            self.timers.remove(&(d, id.clone()));
        }
        self.transport.unsubscribe(&slot.handle.topic);
        if let Some(list) = self.by_topic.get_mut(&slot.handle.topic) {
            list.retain(|c| c != id);
            if list.is_empty() {
                self.by_topic.remove(&slot.handle.topic);
            }
        }
        // Dispatch ids of this channel are dropped lazily when their outcome arrives.
    }

    fn transport_event(&mut self, now: u64, ev: TransportEvent) {
        match ev {
            TransportEvent::Sent { dispatch_id, message_hash } => self.dispatch_result(now, dispatch_id, Ok(message_hash)),
            TransportEvent::Failed { dispatch_id, error } => self.dispatch_result(now, dispatch_id, Err(error)),
            TransportEvent::Received { message, message_hash } => {
                let Some(ids) = self.by_topic.get(message.content_topic.as_str()) else { return };
                let ids = ids.clone();
                for id in ids {
                    if let Some(slot) = self.channels.get_mut(&id) {
                        slot.channel.on_message(now, &message, message_hash);
                        self.pump(&id);
                    }
                }
            }
        }
    }

    fn dispatch_result(&mut self, now: u64, dispatch_id: DispatchId, result: Result<Option<[u8; 32]>, String>) {
        let Some((id, token)) = self.dispatches.remove(&dispatch_id) else { return };
        if let Some(slot) = self.channels.get_mut(&id) {
            slot.channel.on_dispatch_result(now, token, result);
            self.pump(&id);
        }
    }

    fn fire_timers(&mut self) {
        let now = self.clock.now_ms();
        while self.timers.first().is_some_and(|(t, _)| *t <= now) {
            let Some((_, id)) = self.timers.pop_first() else { break };
            if let Some(slot) = self.channels.get_mut(&id) {
                slot.deadline = None;
                slot.channel.handle_timeout(now);
                self.pump(&id);
            }
        }
    }

    /// Carries out a channel's actions until it has none left, then re-arms its timer.
    fn pump(&mut self, id: &Arc<str>) {
        // The store capability may change (a host installs or removes its store hook): cheap to ask.
        let store = self.transport.has_store();
        if let Some(slot) = self.channels.get_mut(id) {
            slot.channel.set_store_available(store);
        }
        loop {
            let Some(slot) = self.channels.get_mut(id) else { return };
            let Some(action) = slot.channel.poll_action() else { break };
            let key = slot.key;
            match action {
                ChannelAction::Dispatch { token, message } => {
                    let dispatch_id = self.next_dispatch;
                    self.next_dispatch += 1;
                    self.dispatches.insert(dispatch_id, (id.clone(), token));
                    self.committer.publish(dispatch_id, message, key.is_some());
                }
                // A query, not a fact about the channel: nothing to commit first.
                ChannelAction::Retrieve { hashes } => {
                    let topic = slot.handle.topic.clone();
                    self.transport.retrieve(&topic, &hashes);
                }
                ChannelAction::Event(event) => {
                    let handle = slot.handle.clone();
                    self.committer.event(&handle, event, key);
                }
            }
        }
        let Some(slot) = self.channels.get_mut(id) else { return };
        if slot.key.is_some() && !slot.dirty {
            slot.dirty = true;
            self.dirty.push(id.clone());
        }
        let next = slot.channel.next_deadline();
        if next != slot.deadline {
            if let Some(old) = slot.deadline.take() {
                self.timers.remove(&(old, id.clone()));
            }
            if let Some(n) = next {
                self.timers.insert((n, id.clone()));
            }
            slot.deadline = next;
        }
    }
}

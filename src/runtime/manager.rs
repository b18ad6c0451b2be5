//! [`Manager`]: the public Rust API, a thin validating front over the runtime thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use rand::RngCore;

use super::answer::answer;
use super::config::ManagerConfig;
use super::dispatcher::{self, EventQueue};
use super::driver::{self, Command};
use super::Clock;
use crate::channel::config::{HistoryBackend, MAX_NAME_BYTES};
use crate::channel::{Channel, ChannelEvent, ChannelStats, Encryption, Outbox, Reservation};
use crate::collections::FastMap;
use crate::error::Error;
use crate::messaging::host::{HostBridge, HostRetriever, HostSender};
use crate::messaging::{DispatchId, MessageHash};
use crate::segmentation::new_request_id;
use crate::storage::{Batch, SqliteStore, Store};
use crate::wire::WakuMessage;

/// An event as handed to the application: borrowed for the duration of the callback.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The event's sequence number: strictly increasing per manager (per database, across
    /// restarts, for a manager with storage), and within a channel in delivery order. An event of a
    /// durable channel delivered again after a restart or a reopen keeps its first `seq`: an
    /// application that stores the last `seq` it handled per channel, in its own transaction,
    /// handles every event exactly once.
    pub seq: u64,
    pub channel_id: &'a str,
    pub content_topic: &'a str,
    /// Our own sender id on this channel.
    pub local_sender_id: &'a str,
    pub event: &'a ChannelEvent,
}

/// The application's event handler. Runs on the library's event thread.
pub type EventHandler = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// What the API threads and the runtime share about one open channel.
pub(crate) struct ChannelHandle {
    pub id: Arc<str>,
    pub topic: Arc<str>,
    open: AtomicBool,
    /// Held for reading while one of this channel's events is delivered.
    pub gate: RwLock<()>,
    /// The channel's sending side: its configuration, our sender id, the one check of a send
    /// and the pending counts it reserves, the chunk ids' clock.
    pub outbox: Arc<Outbox>,
    /// `historyBackend: "sqlite"`: stored in the manager's database; sends and opens wait for
    /// their commit.
    pub durable: bool,
}

impl ChannelHandle {
    /// Sequentially consistent, as its store in `close_channel`: the dispatcher marks an event
    /// in flight before it reads the flag (see `dispatcher::Delivered`).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
}

/// State shared by the API, the runtime thread and the dispatcher thread.
pub(crate) struct Shared {
    /// The one clock of the manager: channels are created with it (on the API threads) and
    /// driven by it (on the runtime thread).
    pub clock: Clock,
    cmd: tokio::sync::mpsc::UnboundedSender<Command>,
    registry: Mutex<FastMap<Arc<str>, Arc<ChannelHandle>>>,
    stopped: AtomicBool,
    handler: RwLock<Option<EventHandler>>,
    runtime_thread: Mutex<Option<ThreadId>>,
    dispatcher_thread: Mutex<Option<ThreadId>>,
    /// Set by the runtime when a commit failed: durable channels refuse from then on.
    storage_failure: OnceLock<String>,
}

impl Shared {
    pub(crate) fn set_storage_failure(&self, why: String) {
        let _ = self.storage_failure.set(why);
    }
    /// `Err(Storage)` once the manager's storage failed.
    fn check_storage(&self) -> Result<(), Error> {
        self.storage_failure.get().map_or(Ok(()), |f| Err(Error::Storage(format!("the manager's storage failed earlier: {f}"))))
    }
    pub fn handler(&self) -> Option<EventHandler> {
        self.handler.read().clone()
    }
    pub fn mark_dispatcher_thread(&self) {
        *self.dispatcher_thread.lock() = Some(std::thread::current().id());
    }
    pub fn mark_runtime_thread(&self) {
        *self.runtime_thread.lock() = Some(std::thread::current().id());
    }
    fn on_runtime_thread(&self) -> bool {
        *self.runtime_thread.lock() == Some(std::thread::current().id())
    }
    fn on_dispatcher_thread(&self) -> bool {
        *self.dispatcher_thread.lock() == Some(std::thread::current().id())
    }
    /// True on any library thread, i.e. inside a library callback.
    pub fn in_callback(&self) -> bool {
        self.on_runtime_thread() || self.on_dispatcher_thread()
    }
    pub(crate) fn cmd_sender(&self) -> &tokio::sync::mpsc::UnboundedSender<Command> {
        &self.cmd
    }
    fn submit(&self, c: Command) -> Result<(), Error> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        self.cmd.send(c).map_err(|_| Error::Stopped)
    }
}

/// A reliable-channel manager: owns channels, one runtime thread and one event thread.
///
/// Every method may be called from any thread, including from inside the event handler, the
/// encryption hook and the host transport (except [`Manager::shutdown`] and
/// [`Manager::channel_stats`] from the runtime thread's callbacks).
pub struct Manager {
    shared: Arc<Shared>,
    config: ManagerConfig,
    /// The runtime thread; it gives the store back when it ends.
    runtime: Option<JoinHandle<Option<Box<dyn Store>>>>,
    events: Arc<EventQueue>,
    dispatcher: Option<JoinHandle<()>>,
    host: Option<Arc<HostBridge>>,
    /// The relay node, for `transport.kind = "relay"`.
    #[cfg(feature = "relay")]
    relay: Option<crate::messaging::relay::RelayHandle>,
}

impl Manager {
    /// Starts a manager. With `storage`, opens (creates, validates, locks) its database first:
    /// [`Error::Storage`] when it cannot.
    pub fn new(config: ManagerConfig) -> Result<Manager, Error> {
        let store: Option<Box<dyn Store>> = match &config.storage {
            Some(s) => Some(Box::new(SqliteStore::open(s)?)),
            None => None,
        };
        let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
        let events = Arc::new(EventQueue::default());
        let shared = Arc::new(Shared {
            clock: Clock::new(),
            cmd: cmd_tx,
            registry: Mutex::new(FastMap::default()),
            stopped: AtomicBool::new(false),
            handler: RwLock::new(None),
            runtime_thread: Mutex::new(None),
            dispatcher_thread: Mutex::new(None),
            storage_failure: OnceLock::new(),
        });
        let made = driver::make_transport(&config, &shared)?;
        let (transport, host) = (made.transport, made.host);
        #[cfg(feature = "relay")]
        let relay = made.relay;
        let s = shared.clone();
        let runtime = std::thread::Builder::new()
            .name("rc-runtime".into())
            .spawn({
                let events = events.clone();
                move || driver::run(s, cmd_rx, transport, events, store)
            })
            .map_err(|e| Error::Storage(format!("cannot spawn the runtime thread: {e}")))?;
        let s = shared.clone();
        let dispatcher = std::thread::Builder::new()
            .name("rc-events".into())
            .spawn({
                let events = events.clone();
                move || dispatcher::run(s, events)
            })
            .map_err(|e| Error::Storage(format!("cannot spawn the event thread: {e}")))?;
        match &config.storage {
            Some(s) => log::info!("manager started, storage {} ({:?} durability)", s.path.display(), s.durability),
            None => log::info!("manager started, no storage"),
        }
        Ok(Manager {
            shared,
            config,
            runtime: Some(runtime),
            events,
            dispatcher: Some(dispatcher),
            host,
            #[cfg(feature = "relay")]
            relay,
        })
    }

    /// Starts a manager from the JSON configuration (`None` = defaults).
    pub fn from_json(json: Option<&str>) -> Result<Manager, Error> {
        Manager::new(ManagerConfig::from_json(json)?)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// Sets (or replaces, or with `None` removes) the event handler. A handler being replaced
    /// may still be running its current call; it is dropped once that call returns.
    pub fn set_event_handler(&self, handler: Option<EventHandler>) -> Result<(), Error> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        *self.shared.handler.write() = handler;
        Ok(())
    }

    /// Opens a channel. The channel JSON overrides `channelDefaults` field by field.
    ///
    /// A durable channel (`historyBackend: "sqlite"`) stored before resumes: its sender id and
    /// content topic must be the stored ones ([`Error::Config`] otherwise), and its events not
    /// yet delivered are delivered again first, with their `seq`. Returns once the channel is
    /// stored; not callable from the encryption or transport callbacks ([`Error::Reentrant`]).
    pub fn open_channel(&self, channel_id: &str, content_topic: &str, sender_id: &str, channel_config_json: Option<&str>) -> Result<(), Error> {
        for (what, v) in [("channel_id", channel_id), ("content_topic", content_topic), ("sender_id", sender_id)] {
            if v.is_empty() || v.len() > MAX_NAME_BYTES {
                return Err(Error::InvalidArgument(format!("{what} must be 1..={MAX_NAME_BYTES} bytes, got {}", v.len())));
            }
        }
        let config = self.config.channel_defaults.with_json(channel_config_json)?;
        config.check_fits("channel", content_topic.len())?;
        self.config.check_backend(&config, "channel")?;
        let durable = config.history_backend == HistoryBackend::Sqlite;
        if durable {
            self.durable_call("opening a durable channel")?;
        }
        let seed = rand::thread_rng().next_u64();
        let channel = Box::new(Channel::new(channel_id, content_topic, sender_id, config, self.shared.clock.now_ms(), seed));
        let handle = Arc::new(ChannelHandle {
            id: channel_id.into(),
            topic: content_topic.into(),
            open: AtomicBool::new(true),
            gate: RwLock::new(()),
            outbox: channel.outbox().clone(),
            durable,
        });
        let (reply, answer) = if durable {
            let (tx, rx) = answer();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        {
            let mut reg = self.shared.registry.lock();
            if reg.contains_key(channel_id) {
                return Err(Error::ChannelExists(channel_id.to_owned()));
            }
            self.shared.submit(Command::Open { handle: handle.clone(), channel, reply })?;
            reg.insert(handle.id.clone(), handle.clone());
        }
        let Some(answer) = answer else { return Ok(()) };
        let result = answer.wait();
        if result.is_err() {
            // Refused by the runtime (stored with another sender, storage failed): not open.
            let mut reg = self.shared.registry.lock();
            if reg.get(channel_id).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                reg.remove(channel_id);
            }
            handle.open.store(false, Ordering::SeqCst);
        }
        result
    }

    /// The checks of a call that waits for the runtime's commit: not from the runtime thread's
    /// callbacks (it would wait for itself), not once the storage failed.
    fn durable_call(&self, what: &str) -> Result<(), Error> {
        if self.shared.on_runtime_thread() {
            return Err(Error::Reentrant(format!("{what} from inside an encryption or transport callback")));
        }
        self.shared.check_storage()
    }

    /// Deletes the stored state of a channel that is not open (its record, its undelivered
    /// events), in one transaction: reopening it starts afresh. [`Error::ChannelExists`] while it
    /// is open; nothing to delete (or a manager without storage) is fine. Not callable from the
    /// encryption or transport callbacks ([`Error::Reentrant`]).
    pub fn purge_channel(&self, channel_id: &str) -> Result<(), Error> {
        if self.config.storage.is_none() {
            return Ok(());
        }
        self.durable_call("purging a channel")?;
        let (tx, rx) = answer();
        {
            let reg = self.shared.registry.lock();
            if reg.contains_key(channel_id) {
                return Err(Error::ChannelExists(channel_id.to_owned()));
            }
            // Under the registry lock: an open of the same id queues after it.
            self.shared.submit(Command::Purge { channel: channel_id.into(), reply: tx })?;
        }
        rx.wait()
    }

    /// Closes a channel: releases its state; no event of it is delivered after this returns
    /// (called from inside a library callback: none is *started* after it returns).
    pub fn close_channel(&self, channel_id: &str) -> Result<(), Error> {
        let handle = {
            let mut reg = self.shared.registry.lock();
            let h = reg.remove(channel_id).ok_or_else(|| Error::UnknownChannel(channel_id.to_owned()))?;
            h.open.store(false, Ordering::SeqCst);
            // Submitted under the registry lock so that a re-open of the same id queues after it.
            let _ = self.shared.submit(Command::Close(h.id.clone()));
            h
        };
        // Wait for an event of this channel being delivered right now, but never from a library
        // thread: on the event thread we may be that delivery, and the runtime thread must not
        // block on the application (whose event callback may itself wait for the runtime). Events
        // delivered later are dropped by the `open` flag either way.
        if !self.shared.in_callback() {
            drop(handle.gate.write());
        }
        Ok(())
    }

    /// spec: send — validates, enqueues and returns the RequestId (20 hex chars) at once:
    /// [`Self::reserve_send`] then [`SendPermit::send`].
    pub fn send(&self, channel_id: &str, payload: &[u8], ephemeral: bool) -> Result<String, Error> {
        self.reserve_send(channel_id, payload.len())?.send(payload, ephemeral)
    }

    /// spec: send + send.backpressure — the one check of a send of `len` bytes, in the order a
    /// user expects: unknown channel, empty, too large (over 1 MiB), queue full. On success the
    /// room stays reserved until the permit is used or dropped. Split from [`Self::send`] for
    /// callers that must validate a length before they may read the payload (the C ABI).
    ///
    /// On a durable channel, a send returns once it is committed (concurrent senders share one
    /// commit): [`Error::Storage`] once the storage failed, [`Error::Reentrant`] from the
    /// encryption or transport callbacks (which run on the thread that commits).
    pub fn reserve_send(&self, channel_id: &str, len: usize) -> Result<SendPermit<'_>, Error> {
        let handle = self.shared.registry.lock().get(channel_id).cloned().ok_or_else(|| Error::UnknownChannel(channel_id.to_owned()))?;
        if handle.durable {
            self.durable_call("a send on a durable channel")?;
        }
        let reservation = handle.outbox.reserve(len)?;
        Ok(SendPermit { shared: &self.shared, handle, reservation })
    }

    /// Sets the encryption hook of one channel, or (`None`) the default of every channel
    /// without its own. `enc = None` removes it.
    pub fn set_encryption(&self, channel_id: Option<&str>, enc: Option<Arc<dyn Encryption>>) -> Result<(), Error> {
        if let Some(id) = channel_id {
            if !self.shared.registry.lock().contains_key(id) {
                return Err(Error::UnknownChannel(id.to_owned()));
            }
        }
        self.shared.submit(Command::SetEncryption { channel: channel_id.map(Arc::from), enc })
    }

    /// Counters of one channel. Not callable from the runtime thread's callbacks.
    pub fn channel_stats(&self, channel_id: &str) -> Result<ChannelStats, Error> {
        if self.shared.on_runtime_thread() {
            return Err(Error::Reentrant("channel stats from inside an encryption or transport callback".into()));
        }
        let durable = self.shared.registry.lock().get(channel_id).ok_or_else(|| Error::UnknownChannel(channel_id.to_owned()))?.durable;
        if durable {
            self.shared.check_storage()?;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.shared.submit(Command::Stats { channel: channel_id.into(), reply: tx })?;
        rx.recv().map_err(|_| Error::Stopped)?.ok_or_else(|| Error::UnknownChannel(channel_id.to_owned()))
    }

    /// The ids of the open channels.
    pub fn channels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.shared.registry.lock().keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    /// Drains the commands already submitted, stops the transport, delivers the events already
    /// produced and joins both threads: no callback runs after this returns. From inside a
    /// library callback it returns [`Error::Reentrant`] and leaves the manager working.
    pub fn shutdown(&mut self) -> Result<(), Error> {
        if self.shared.in_callback() {
            return Err(Error::Reentrant("manager shutdown from inside a library callback".into()));
        }
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _ = self.shared.cmd.send(Command::Shutdown);
        let store = self.runtime.take().and_then(|t| t.join().ok()).flatten();
        if let Some(t) = self.dispatcher.take() {
            let _ = t.join();
        }
        // The rows of the events the dispatcher delivered last: otherwise delivered again by the
        // next opening (with their seq).
        if let Some(mut store) = store.filter(|_| self.shared.storage_failure.get().is_none()) {
            let delivered = self.events.delivered.take();
            if !delivered.is_empty() {
                if let Err(e) = store.commit(&Batch { delivered, ..Batch::default() }) {
                    log::error!("storage: the last deliveries could not be recorded (they will be delivered again): {e}");
                }
            }
        }
        *self.shared.handler.write() = None;
        self.shared.registry.lock().clear();
        if let Some(h) = &self.host {
            h.set_sender(None);
        }
        Ok(())
    }

    fn host(&self) -> Result<&Arc<HostBridge>, Error> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        self.host.as_ref().ok_or_else(|| Error::Transport("the manager's transport is not \"host\"".into()))
    }

    /// Host transport: installs (or removes) the host's publish hook. Returns the previous one.
    pub fn set_host_sender(&self, sender: Option<Arc<dyn HostSender>>) -> Result<Option<Arc<dyn HostSender>>, Error> {
        Ok(self.host()?.set_sender(sender))
    }

    /// Host transport: installs (or removes) the host's store hook. Returns the previous one.
    pub fn set_host_retriever(&self, retriever: Option<Arc<dyn HostRetriever>>) -> Result<Option<Arc<dyn HostRetriever>>, Error> {
        Ok(self.host()?.set_retriever(retriever))
    }

    /// Host transport: dispatch `id` was published (with its message hash when known).
    pub fn transport_sent(&self, id: DispatchId, message_hash: Option<MessageHash>) -> Result<(), Error> {
        self.host()?.sent(id, message_hash).map_err(|e| Error::Transport(e.to_string()))
    }

    /// Host transport: dispatch `id` failed.
    pub fn transport_failed(&self, id: DispatchId, error: &str) -> Result<(), Error> {
        self.host()?.failed(id, error.to_owned()).map_err(|e| Error::Transport(e.to_string()))
    }

    /// Host transport: a message the host's node received.
    pub fn transport_receive(&self, message: WakuMessage, message_hash: Option<MessageHash>) -> Result<(), Error> {
        self.host()?.receive(message, message_hash);
        Ok(())
    }
}

/// The relay transport's node (`transport.kind = "relay"`). Every method is callable from any
/// thread, callbacks included, and never waits for the network.
impl Manager {
    /// The relay node, or `Error::Transport` when the transport is another one.
    #[cfg(feature = "relay")]
    pub fn relay(&self) -> Result<&crate::messaging::relay::RelayHandle, Error> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        self.relay.as_ref().ok_or_else(|| Error::Transport("the manager's transport is not \"relay\"".into()))
    }

    /// The relay node's full listen addresses (`/p2p/<peer id>` included, the real port where
    /// port 0 was asked).
    pub fn relay_listen_addresses(&self) -> Result<Vec<String>, Error> {
        #[cfg(feature = "relay")]
        {
            Ok(self.relay()?.listen_addresses().iter().map(ToString::to_string).collect())
        }
        #[cfg(not(feature = "relay"))]
        {
            Err(no_relay())
        }
    }

    /// Dials a peer (a multiaddr ending in `/p2p/<peer id>`) and keeps it connected: an
    /// unreachable peer is retried with backoff and logged, never an error here.
    pub fn relay_connect(&self, multiaddr: &str) -> Result<(), Error> {
        #[cfg(feature = "relay")]
        {
            self.relay()?.connect(multiaddr).map_err(|e| match e {
                crate::messaging::relay::RelayError::Config { reason, .. } => Error::InvalidArgument(format!("multiaddr: {reason}")),
                other => other.into(),
            })
        }
        #[cfg(not(feature = "relay"))]
        {
            let _ = multiaddr;
            Err(no_relay())
        }
    }

    /// The relay node's peers, mesh and counters as a JSON object; `None` for other transports.
    pub fn relay_stats_json(&self) -> Option<serde_json::Value> {
        #[cfg(feature = "relay")]
        {
            self.relay.as_ref().map(|r| r.stats().to_json())
        }
        #[cfg(not(feature = "relay"))]
        {
            None
        }
    }
}

#[cfg(not(feature = "relay"))]
fn no_relay() -> Error {
    Error::Transport("this build of the library has no relay transport (cargo feature `relay`)".into())
}

impl Drop for Manager {
    fn drop(&mut self) {
        if !self.shared.in_callback() {
            let _ = self.shutdown();
        }
    }
}

/// A send that passed [`Manager::reserve_send`]: its room in the channel's pending bounds is
/// held until [`SendPermit::send`] hands the payload over, or the permit is dropped.
pub struct SendPermit<'a> {
    shared: &'a Arc<Shared>,
    handle: Arc<ChannelHandle>,
    reservation: Reservation,
}

impl SendPermit<'_> {
    /// Segments `payload` (of the reserved length) and computes its chunk ids here, on the
    /// caller's thread, in parallel with the runtime thread rather than in front of it; enqueues
    /// it and returns the RequestId without waiting for the pipeline.
    pub fn send(self, payload: &[u8], ephemeral: bool) -> Result<String, Error> {
        // spec: wire.request-id — 10 random bytes as 20 lowercase hex characters.
        let request_id = new_request_id(&mut rand::thread_rng());
        let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let prepared = self.reservation.prepare(now_ns, &request_id, payload, ephemeral, &mut rand::thread_rng())?;
        if !self.handle.durable {
            self.shared.submit(Command::Send { handle: self.handle, prepared, reply: None })?;
            return Ok(request_id);
        }
        // spec: durability — accepted means committed: wait for the batch's commit.
        let (tx, rx) = answer();
        self.shared.submit(Command::Send { handle: self.handle, prepared, reply: Some(tx) })?;
        rx.wait()?;
        Ok(request_id)
    }
}

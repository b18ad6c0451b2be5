//! The host transport: the application moves WakuMessages through its own Waku node.
//!
//! The library hands each message to the host's [`HostSender`] with a dispatch id; the host
//! reports the outcome with [`HostBridge::sent`] / [`HostBridge::failed`] (possibly from inside
//! its own send hook) and feeds what its node receives to [`HostBridge::receive`]. Dispatch ids
//! are tracked so that an unknown or repeated report is an error, not a crash. A host with a
//! Store node may also install a [`HostRetriever`]: SDS then asks it for missing messages by
//! their retrieval hints (Waku message hashes), and the host feeds what it finds to `receive`.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{DispatchId, MessageHash, Transport, TransportEvent, TransportSink};
use crate::collections::FastSet;
use crate::wire::WakuMessage;

/// Most dispatches awaiting the host's report; beyond it new dispatches fail at once.
pub const MAX_OUTSTANDING_DISPATCHES: usize = 1 << 20;

/// The host's publish hook.
pub trait HostSender: Send + Sync {
    /// Publishes `message`; an `Err` fails this dispatch at once.
    fn send(&self, dispatch_id: DispatchId, message: &WakuMessage) -> Result<(), HostSendError>;
}

/// Why the host's publish hook failed a dispatch at once (it becomes the dispatch's failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostSendError {
    /// The message cannot be handed to the host (e.g. a content topic with a NUL byte for C).
    #[error("the message cannot be handed to the host: {0}")]
    Unrepresentable(&'static str),
    /// The hook refused the message with this status (non-zero).
    #[error("host send callback returned {0}")]
    Refused(i32),
}

/// The host's store hook (optional).
pub trait HostRetriever: Send + Sync {
    /// Fetches the messages with these hashes on `content_topic` from a store, best effort, and
    /// hands each one found to [`HostBridge::receive`] (now or later, from any thread). Must not
    /// block: it runs on the runtime thread. Unanswered requests are repeated while the
    /// dependency is missing.
    fn retrieve(&self, content_topic: &str, hashes: &[MessageHash]);
}

/// Shared between the runtime (publishing) and the host's threads (reporting).
pub struct HostBridge {
    sender: RwLock<Option<Arc<dyn HostSender>>>,
    retriever: RwLock<Option<Arc<dyn HostRetriever>>>,
    outstanding: Mutex<FastSet<DispatchId>>,
    sink: TransportSink,
    pubsub_topic: String,
}

/// Why a host report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("unknown or already reported dispatch id {0}")]
    UnknownDispatch(DispatchId),
}

impl HostBridge {
    /// A bridge reporting to `sink`; received messages without a hash are hashed on `pubsub_topic`.
    pub fn new(sink: TransportSink, pubsub_topic: String) -> Arc<Self> {
        Arc::new(HostBridge {
            sender: RwLock::new(None),
            retriever: RwLock::new(None),
            outstanding: Mutex::new(FastSet::default()),
            sink,
            pubsub_topic,
        })
    }

    /// Installs (or with `None` removes) the host's publish hook; returns the previous one.
    pub fn set_sender(&self, sender: Option<Arc<dyn HostSender>>) -> Option<Arc<dyn HostSender>> {
        std::mem::replace(&mut *self.sender.write(), sender)
    }

    /// Installs (or with `None` removes) the host's store hook; returns the previous one.
    pub fn set_retriever(&self, retriever: Option<Arc<dyn HostRetriever>>) -> Option<Arc<dyn HostRetriever>> {
        std::mem::replace(&mut *self.retriever.write(), retriever)
    }

    /// The host published dispatch `id` (its message hash, when known, becomes the retrieval hint).
    pub fn sent(&self, id: DispatchId, message_hash: Option<MessageHash>) -> Result<(), HostError> {
        if !self.outstanding.lock().remove(&id) {
            return Err(HostError::UnknownDispatch(id));
        }
        self.sink.emit(TransportEvent::Sent { dispatch_id: id, message_hash });
        Ok(())
    }

    /// The host could not publish dispatch `id`.
    pub fn failed(&self, id: DispatchId, error: String) -> Result<(), HostError> {
        if !self.outstanding.lock().remove(&id) {
            return Err(HostError::UnknownDispatch(id));
        }
        self.sink.emit(TransportEvent::Failed { dispatch_id: id, error });
        Ok(())
    }

    /// A message the host's node received. Without a hash, the Waku message hash is computed.
    pub fn receive(&self, message: WakuMessage, message_hash: Option<MessageHash>) {
        let hash = message_hash.unwrap_or_else(|| message.hash(&self.pubsub_topic));
        self.sink.emit(TransportEvent::Received { message, message_hash: Some(hash) });
    }

    /// Dispatches awaiting the host's report.
    pub fn outstanding(&self) -> usize {
        self.outstanding.lock().len()
    }
}

/// The [`Transport`] side of a [`HostBridge`], owned by the runtime.
pub struct HostTransport {
    bridge: Arc<HostBridge>,
}

impl HostTransport {
    pub fn new(bridge: Arc<HostBridge>) -> Self {
        HostTransport { bridge }
    }
}

impl Transport for HostTransport {
    fn publish(&mut self, dispatch_id: DispatchId, message: WakuMessage) {
        let sender = self.bridge.sender.read().clone();
        let fail = |why: String| {
            log::error!("host transport: message not published: {why}");
            if self.bridge.outstanding.lock().remove(&dispatch_id) {
                self.bridge.sink.emit(TransportEvent::Failed { dispatch_id, error: why });
            }
        };
        {
            let mut out = self.bridge.outstanding.lock();
            if out.len() >= MAX_OUTSTANDING_DISPATCHES {
                drop(out);
                log::warn!("host transport: {MAX_OUTSTANDING_DISPATCHES} dispatches await the host's report; message not published");
                self.bridge.sink.emit(TransportEvent::Failed { dispatch_id, error: "too many dispatches awaiting the host's report".into() });
                return;
            }
            // Recorded before the hook runs: the host may report from inside it.
            out.insert(dispatch_id);
        }
        match sender {
            None => fail("no host transport set (rc_set_transport)".into()),
            Some(s) => {
                if let Err(e) = s.send(dispatch_id, &message) {
                    fail(e.to_string());
                }
            }
        }
    }
    // The host subscribes its own node; content-topic filtering happens in the channels.
    fn subscribe(&mut self, _content_topic: &str) {}
    fn unsubscribe(&mut self, _content_topic: &str) {}
    fn retrieve(&mut self, content_topic: &str, hashes: &[MessageHash]) {
        // Without a store hook this is a no-op: SDS repair (syncs, repair requests) still runs.
        let retriever = self.bridge.retriever.read().clone();
        if let Some(r) = retriever {
            r.retrieve(content_topic, hashes);
        }
    }
    /// A host with a store hook installed can fetch what was published.
    fn has_store(&self) -> bool {
        self.bridge.retriever.read().is_some()
    }
    fn shutdown(&mut self) {
        self.bridge.set_sender(None);
        self.bridge.set_retriever(None);
    }
}

//! The messaging seam: what the channel layer needs from the Waku Messaging API.
//!
//! A [`Transport`] publishes WakuMessages and reports, through the [`TransportSink`] it was
//! created with, whether each dispatch was accepted and what arrived from the network. The runtime
//! thread owns the transport; the sink may be called from any thread (including from inside
//! [`Transport::publish`]), because it only enqueues.
//!
//! Implementations: `memory` (the embedded in-process network, the default) and the host
//! transport (the application moves messages through its own Waku node).

pub mod host;
pub mod memory;
#[cfg(feature = "relay")]
pub mod relay;

use std::sync::Arc;

use crate::wire::WakuMessage;

/// Identifies one `publish` call, echoed in its outcome.
pub type DispatchId = u64;

pub use crate::wire::MessageHash;

/// What a transport reports back to the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportEvent {
    /// The messaging layer accepted the message (for Waku: relayed / lightpushed).
    Sent { dispatch_id: DispatchId, message_hash: Option<MessageHash> },
    /// The messaging layer gave up on the message.
    Failed { dispatch_id: DispatchId, error: String },
    /// A message arrived on a subscribed content topic (or from a store query).
    Received { message: WakuMessage, message_hash: Option<MessageHash> },
}

/// Where a transport delivers its events. Cheap to clone; callable from any thread.
#[derive(Clone)]
pub struct TransportSink(Arc<dyn Fn(TransportEvent) + Send + Sync>);

impl TransportSink {
    /// A sink calling `f` for every event.
    pub fn new(f: impl Fn(TransportEvent) + Send + Sync + 'static) -> Self {
        TransportSink(Arc::new(f))
    }

    /// Delivers one event.
    pub fn emit(&self, ev: TransportEvent) {
        (self.0)(ev)
    }
}

impl std::fmt::Debug for TransportSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportSink")
    }
}

/// The Messaging API as the channel layer uses it.
pub trait Transport: Send {
    /// Publishes a message; the outcome arrives later as `Sent` or `Failed` with `dispatch_id`.
    fn publish(&mut self, dispatch_id: DispatchId, message: WakuMessage);
    /// Starts receiving messages on a content topic (called once per open channel on it).
    fn subscribe(&mut self, content_topic: &str);
    /// Stops receiving on a content topic (called once per closed channel on it).
    fn unsubscribe(&mut self, content_topic: &str);
    /// Asks the network's store for messages by hash (SDS retrieval hints of missing
    /// dependencies). Found messages arrive as `Received`. Default: no store.
    fn retrieve(&mut self, _content_topic: &str, _hashes: &[MessageHash]) {}
    /// Can [`Self::retrieve`] fetch what was published (a store holds it)? The channels then
    /// repair losses by store fetches rather than retransmissions where the RLN budget counts
    /// (see `Channel::set_store_available`). Default: no store.
    fn has_store(&self) -> bool {
        false
    }
    /// Stops the transport: no event is emitted after it returns.
    fn shutdown(&mut self) {}
}

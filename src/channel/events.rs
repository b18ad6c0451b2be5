//! What a channel tells the application.

/// One event of one channel. The manager adds the channel id and content topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// `reliable:message:received` — a whole message, reassembled, exactly once, in causal order.
    Received { request_id: String, sender_id: String, payload: Vec<u8> },
    /// `reliable:message:sent` — every chunk of the send was accepted by the messaging layer.
    Sent { request_id: String },
    /// Every chunk was acknowledged end to end through SDS. Final.
    Delivered { request_id: String },
    /// `reliable:message:send-error` — a chunk could not be dispatched or stayed unacknowledged
    /// after the last retransmission. Final.
    SendError { request_id: String, error: String },
    /// An incoming message can no longer be completed.
    Lost { request_id: Option<String>, sender_id: Option<String>, error: String },
}

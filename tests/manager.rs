//! The manager end to end on the embedded network: real threads, real time (waits are bounded
//! by generous timeouts, never asserted as speed).

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver};
use reliable_channel::channel::{ChannelEvent, CryptoError, Encryption};
use reliable_channel::{Error, Manager};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
struct Ev {
    channel: String,
    local: String,
    event: ChannelEvent,
}

fn manager(network: &str, extra: &str) -> (Manager, Receiver<Ev>) {
    let json = format!(r#"{{"transport": {{"kind": "memory", "network": "{network}"{extra}}}}}"#);
    let m = Manager::from_json(Some(&json)).unwrap();
    let (tx, rx) = unbounded();
    m.set_event_handler(Some(Arc::new(move |e: &reliable_channel::Event<'_>| {
        let _ = tx.send(Ev { channel: e.channel_id.into(), local: e.local_sender_id.into(), event: e.event.clone() });
    })))
    .unwrap();
    (m, rx)
}

/// Returns once `m`'s runtime has opened `channel` (and subscribed its topic): opening a memory
/// channel does not wait for the runtime, and a message published before the receiver subscribed
/// reaches it only by a later repair (a retransmission, or a store fetch where the store timing
/// applies: up to 6 × the acknowledgement timeout).
fn opened(m: &Manager, channel: &str) {
    m.channel_stats(channel).expect("the channel is open");
}

fn wait_for(rx: &Receiver<Ev>, mut pred: impl FnMut(&Ev) -> bool) -> Ev {
    loop {
        let e = rx.recv_timeout(WAIT).expect("event within the timeout");
        if pred(&e) {
            return e;
        }
    }
}

#[test]
fn two_managers_exchange_text_and_a_large_message() {
    let (a, arx) = manager("mgr-basic", "");
    let (b, brx) = manager("mgr-basic", "");
    a.open_channel("room", "/app/1/room/proto", "alice", None).unwrap();
    b.open_channel("room", "/app/1/room/proto", "bob", None).unwrap();
    opened(&b, "room");

    let rid = a.send("room", b"hello bob", false).unwrap();
    assert_eq!(rid.len(), 20);
    let got = wait_for(&brx, |e| matches!(e.event, ChannelEvent::Received { .. }));
    assert_eq!(got.event, ChannelEvent::Received { request_id: rid.clone(), sender_id: "alice".into(), payload: b"hello bob".to_vec() });
    wait_for(&arx, |e| e.event == ChannelEvent::Sent { request_id: rid.clone() });
    wait_for(&arx, |e| e.event == ChannelEvent::Delivered { request_id: rid.clone() });

    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    let rid2 = b.send("room", &big, false).unwrap();
    let got = wait_for(&arx, |e| matches!(e.event, ChannelEvent::Received { .. }));
    match got.event {
        ChannelEvent::Received { request_id, sender_id, payload } => {
            assert_eq!(request_id, rid2);
            assert_eq!(sender_id, "bob");
            assert!(payload == big, "1 MiB byte-identical");
        }
        _ => unreachable!(),
    }
    wait_for(&brx, |e| e.event == ChannelEvent::Delivered { request_id: rid2.clone() });
    let s = b.channel_stats("room").unwrap();
    assert_eq!(s.chunks_sent, 11);
    assert_eq!(s.messages_delivered, 1);
}

#[test]
fn api_errors() {
    let (a, _rx) = manager("mgr-errors", "");
    a.open_channel("c", "/t", "me", None).unwrap();
    assert_eq!(a.open_channel("c", "/t", "me", None), Err(Error::ChannelExists("c".into())));
    assert!(matches!(a.send("nope", b"x", false), Err(Error::UnknownChannel(_))));
    assert_eq!(a.send("c", b"", false), Err(Error::PayloadEmpty));
    assert!(matches!(a.send("c", &vec![0u8; 1_048_577], false), Err(Error::PayloadTooLarge { len: 1_048_577, .. })));
    let e = a.open_channel("d", "/t", "me", Some(r#"{"sdsConfig": {"bogus": 1}}"#)).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("channel.sdsConfig.bogus")), "{e:?}");
    let e = a.open_channel("d", "/t", "me", Some(r#"{"segmentationConfig": {"chunkSizeBytes": 150000}}"#)).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("chunkSizeBytes")), "{e:?}");
    assert!(matches!(a.close_channel("nope"), Err(Error::UnknownChannel(_))));
    a.close_channel("c").unwrap();
    assert!(matches!(a.send("c", b"x", false), Err(Error::UnknownChannel(_))));
    let e = Manager::from_json(Some(r#"{"transport": {"kind": "memory", "los": 0.1}}"#)).err().unwrap();
    assert!(matches!(&e, Error::Config(m) if m.contains("transport.los")), "{e:?}");
}

#[test]
fn backpressure_refuses_with_queue_full() {
    let (a, _rx) = manager("mgr-bp", "");
    // A tiny budget: one message per long epoch, so sends pile up behind the rate limiter.
    let cfg = r#"{"rateLimitConfig": {"messagesPerEpoch": 1, "epochSizeMs": 3600000}, "sendQueue": {"maxPendingChunks": 4}}"#;
    a.open_channel("c", "/bp", "me", Some(cfg)).unwrap();
    let mut full = None;
    for i in 0..10 {
        match a.send("c", &[i], false) {
            Ok(_) => {}
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    assert!(matches!(full, Some(Error::QueueFull(_))), "{full:?}");
    // One set of pending counts: what `send` reserved is what the channel reports.
    let s = a.channel_stats("c").unwrap();
    assert_eq!((s.pending_chunks, s.pending_bytes), (4, 4));
}

/// One check per send, in the order a user expects: unknown channel, empty, too large, queue
/// full. A reservation that is never used gives its room back.
#[test]
fn send_checks_once_in_the_order_a_user_expects() {
    let (a, _rx) = manager("mgr-order", "");
    let cfg = r#"{"rateLimitConfig": {"messagesPerEpoch": 1, "epochSizeMs": 3600000}, "sendQueue": {"maxPendingChunks": 2}}"#;
    a.open_channel("c", "/order", "me", Some(cfg)).unwrap();
    let too_large = 1_048_577;
    assert!(matches!(a.reserve_send("nope", 0), Err(Error::UnknownChannel(_))));
    assert!(matches!(a.reserve_send("nope", usize::MAX), Err(Error::UnknownChannel(_))));
    let first = a.reserve_send("c", 1).unwrap();
    let second = a.reserve_send("c", 1).unwrap();
    // The queue is full now: emptiness and size are still reported first.
    assert_eq!(a.send("c", b"", false), Err(Error::PayloadEmpty));
    assert!(matches!(a.reserve_send("c", too_large), Err(Error::PayloadTooLarge { len: 1_048_577, .. })));
    assert!(matches!(a.reserve_send("c", usize::MAX), Err(Error::PayloadTooLarge { .. })));
    assert!(matches!(a.send("c", b"x", false), Err(Error::QueueFull(m)) if m.contains("pending")));
    // A permit takes exactly the payload it was reserved for; refused, it gives its room back.
    assert!(matches!(second.send(b"two bytes", false), Err(Error::InvalidArgument(_))));
    assert_eq!(a.channel_stats("c").unwrap().pending_chunks, 1);
    drop(first);
    assert_eq!(a.channel_stats("c").unwrap().pending_chunks, 0);
    a.reserve_send("c", 1).unwrap().send(b"x", false).unwrap();
}

/// XOR with a trailing key tag, so that a wrong key is detected (as an AEAD would).
struct Xor(u8);
impl Encryption for Xor {
    fn encrypt(&self, _c: &str, p: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut v: Vec<u8> = p.iter().map(|b| b ^ self.0).collect();
        v.push(self.0);
        Ok(v)
    }
    fn decrypt(&self, _c: &str, p: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match p.split_last() {
            Some((&tag, body)) if tag == self.0 => Ok(body.iter().map(|b| b ^ self.0).collect()),
            _ => Err(CryptoError("authentication failed".into())),
        }
    }
}

#[test]
fn encryption_hook_round_trip_and_failure() {
    let (a, arx) = manager("mgr-enc", "");
    let (b, brx) = manager("mgr-enc", "");
    a.open_channel("c", "/enc", "alice", None).unwrap();
    b.open_channel("c", "/enc", "bob", None).unwrap();
    opened(&b, "c");
    a.set_encryption(None, Some(Arc::new(Xor(0x55)))).unwrap();
    b.set_encryption(Some("c"), Some(Arc::new(Xor(0x55)))).unwrap();
    let rid = a.send("c", b"secret", false).unwrap();
    let got = wait_for(&brx, |e| matches!(e.event, ChannelEvent::Received { .. }));
    assert!(matches!(got.event, ChannelEvent::Received { ref payload, .. } if payload == b"secret"));
    wait_for(&arx, |e| e.event == ChannelEvent::Delivered { request_id: rid.clone() });
    // Bob's key changes: alice's next message cannot be decrypted there and is reported lost.
    b.set_encryption(Some("c"), Some(Arc::new(Xor(0x66)))).unwrap();
    a.send("c", b"garbled", false).unwrap();
    let lost = wait_for(&brx, |e| matches!(e.event, ChannelEvent::Lost { .. }));
    assert!(matches!(lost.event, ChannelEvent::Lost { ref error, .. } if error.contains("decryption failed")));
    let _ = (arx, lost.channel, lost.local);
}

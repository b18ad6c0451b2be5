// Package reliablechannel is a Go binding of libreliable_channel, the Logos Messaging (Waku)
// Reliable Channel API: end-to-end reliable, ordered-by-causality, segmented messaging over Waku.
//
// A Manager owns channels, a runtime thread and an event thread (inside the library). Events
// (messages received, sent, delivered, send errors, losses) are read from Events() or handled by
// a function installed with SetEventHandler. Encryption hooks and the host transport (its
// publish function and optional store hook) are Go functions; they run on the library's
// runtime thread.
//
// Callbacks reach Go through runtime/cgo.Handle values: no Go pointer is ever stored in C
// memory. Every handle is released when the library lets go of it (hook replaced) or by Close.
//
// All methods are safe for concurrent use. Send, OpenChannel, CloseChannel, SetEncryption and
// the Transport* methods may be called from inside callbacks; Close may not (it returns
// ErrReentrant there: call it from another goroutine).
package reliablechannel

// #include "shim.h"
import "C"

import (
	"encoding/json"
	"runtime/cgo"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Limits of the C library.
const (
	// MaxPayloadBytes is the largest payload Send accepts (1 MiB).
	MaxPayloadBytes = C.RC_MAX_PAYLOAD_BYTES
	// RequestIDLen is the length of a request id (hex characters).
	RequestIDLen = C.RC_REQUEST_ID_LEN
)

// Version is the version of the loaded C library, e.g. "0.1.0".
func Version() string { return C.GoString(C.rc_version()) }

// EventKind says what an Event reports.
type EventKind int

// The kinds of events.
const (
	// MessageReceived: a whole message from a remote participant, exactly once, in causal order.
	MessageReceived EventKind = C.RC_EVENT_MESSAGE_RECEIVED
	// MessageSent: every chunk of one of our sends was accepted by the messaging layer.
	MessageSent EventKind = C.RC_EVENT_MESSAGE_SENT
	// MessageDelivered: every chunk was acknowledged end to end (final).
	MessageDelivered EventKind = C.RC_EVENT_MESSAGE_DELIVERED
	// SendError: the send failed (final); Reason says why.
	SendError EventKind = C.RC_EVENT_SEND_ERROR
	// MessageLost: an incoming message can no longer be completed; Reason says why.
	MessageLost EventKind = C.RC_EVENT_MESSAGE_LOST
)

func (k EventKind) String() string {
	switch k {
	case MessageReceived:
		return "MessageReceived"
	case MessageSent:
		return "MessageSent"
	case MessageDelivered:
		return "MessageDelivered"
	case SendError:
		return "SendError"
	case MessageLost:
		return "MessageLost"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one event of a channel; it owns its data (copied from the library).
type Event struct {
	Kind      EventKind
	ChannelID string
	// RequestID: MessageReceived: the remote sender's request id; MessageSent, MessageDelivered,
	// SendError: ours (as returned by Send); MessageLost: the lost message's id, or "" if unknown.
	RequestID string
	// SenderID: MessageReceived: the remote participant; MessageLost: the remote participant
	// whose message was lost, or "" if unknown (e.g. undecryptable); otherwise our own sender id.
	SenderID     string
	ContentTopic string
	// Payload: MessageReceived only.
	Payload []byte
	// Reason: SendError and MessageLost only.
	Reason string
	// Seq numbers the manager's events from 1, strictly increasing (with "storage": per
	// database, across restarts); within a channel it grows in delivery order. An event of a
	// durable channel (historyBackend "sqlite") delivered again after a restart or a reopen keeps
	// its first Seq: store the last Seq handled per channel with the application's own state and
	// skip events at or below it. Such an event counts as delivered once the handler of
	// SetEventHandler returned, or once it was queued for Events().
	Seq uint64
}

// WakuMessage is a message exchanged with the host's Waku node (host transport).
type WakuMessage struct {
	ContentTopic string
	Payload      []byte
	// Meta is the reliable-channel marker: publish it as the WakuMessage's meta field.
	Meta []byte
	// Timestamp in Unix nanoseconds.
	Timestamp int64
	Ephemeral bool
}

// CryptoFunc encrypts or decrypts one chunk of a channel. A non-nil error fails the message
// (SendError when encrypting, a dropped message when decrypting; never a plaintext fallback).
type CryptoFunc func(channelID string, in []byte) ([]byte, error)

// TransportFunc publishes msg through the host's Waku node. It must later report the outcome
// with TransportSent or TransportFailed for dispatchID (it may do so before returning); a
// non-nil error fails the dispatch at once.
type TransportFunc func(dispatchID uint64, msg WakuMessage) error

// RetrieveFunc is the host transport's store hook: it fetches from a Store node the messages
// on contentTopic whose Waku message hashes are messageHashes ("0x" + 64 hex each), and hands
// each one found to TransportReceive with its hash, now or later, from any goroutine. It is
// best effort: a request that finds nothing (or panics) is repeated while the message is still
// missing. It runs on the library's runtime thread and must not block: query the store from
// another goroutine when that takes time.
type RetrieveFunc func(contentTopic string, messageHashes []string)

// Stats are the counters of a channel (rc_channel_stats_json), keyed by their JSON names such
// as "messagesSent" or "retransmissions"; numbers are json.Number.
type Stats map[string]any

// Count is the counter named key as an integer (0 when absent).
func (s Stats) Count(key string) uint64 {
	if n, ok := s[key].(json.Number); ok {
		if v, err := n.Int64(); err == nil && v >= 0 {
			return uint64(v)
		}
	}
	return 0
}

// Manager is a reliable-channel manager (an rc_manager). Create it with New and release it
// with Close.
type Manager struct {
	mu       sync.Mutex
	cond     sync.Cond
	ptr      *C.rc_manager
	inflight int  // C calls in progress (Close waits for them before freeing)
	closing  bool // Close has begun: every new call fails with ErrStopped
	closed   bool // rc_manager_free has returned
	closeErr error
	self     cgo.Handle // this Manager, as the event callback's user data and the callback token

	handler atomic.Value // eventHandler

	qmu    sync.Mutex
	queue  *eventQueue
	qclose bool
}

type eventHandler struct{ f func(Event) }

var liveHandles atomic.Int64 // handles created and not yet deleted (tests check it returns to 0)

func newHandle(v any) cgo.Handle {
	liveHandles.Add(1)
	return cgo.NewHandle(v)
}

func deleteHandle(h cgo.Handle) {
	h.Delete()
	liveHandles.Add(-1)
}

func invalidArg(msg string) error { return &Error{Code: StatusInvalidArgument, Msg: msg} }

// cString copies s to C memory (free it with C.free); a NUL byte inside s is refused. When
// nullable, "" is NULL.
func cString(name, s string, nullable bool) (*C.char, error) {
	if nullable && s == "" {
		return nil, nil
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, invalidArg(name + " contains a NUL byte")
	}
	return C.CString(s), nil
}

func cFree(p *C.char) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// New creates a manager from a JSON configuration ("" = the defaults; see the README for the
// keys). A configuration error is an *Error with Code StatusConfig whose Msg names the key.
func New(configJSON string) (*Manager, error) {
	cfg, err := cString("configJSON", configJSON, true)
	if err != nil {
		return nil, err
	}
	defer cFree(cfg)
	var ptr *C.rc_manager
	var msg *C.char
	if err := statusErr(C.rcgo_manager_new(cfg, &ptr, &msg), msg); err != nil {
		return nil, err
	}
	m := &Manager{ptr: ptr}
	m.cond.L = &m.mu
	m.self = newHandle(m)
	msg = nil
	if err := statusErr(C.rcgo_set_event_callback(ptr, C.uintptr_t(m.self), &msg), msg); err != nil {
		C.rcgo_manager_free(ptr, nil)
		deleteHandle(m.self)
		return nil, err
	}
	return m, nil
}

// enter admits a C call on the handle unless Close has begun; leave must follow.
func (m *Manager) enter() (*C.rc_manager, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return nil, &Error{Code: StatusStopped, Msg: "the manager is closed"}
	}
	m.inflight++
	return m.ptr, nil
}

func (m *Manager) leave() {
	m.mu.Lock()
	m.inflight--
	if m.inflight == 0 && m.closing {
		m.cond.Broadcast()
	}
	m.mu.Unlock()
}

// call runs f with the live handle; f returns the shim's status and error text.
func (m *Manager) call(f func(p *C.rc_manager, msg **C.char) C.rc_status) error {
	p, err := m.enter()
	if err != nil {
		return err
	}
	defer m.leave()
	var msg *C.char
	st := f(p, &msg)
	return statusErr(st, msg)
}

// inOwnCallback reports whether the calling goroutine runs inside a callback of m.
func (m *Manager) inOwnCallback() bool {
	return C.rcgo_current() == C.uintptr_t(m.self)
}

// Close stops the manager: it drains the submitted work, delivers the events already produced,
// joins the library's threads, frees the handle and releases every callback handle. Calls made
// after Close has begun fail with ErrStopped; the Events() channel is closed once its last
// event has been read. Close is idempotent: later calls wait for the first to finish and
// return nil. From inside a callback of this manager, or the log function, it returns
// ErrReentrant and does nothing.
func (m *Manager) Close() error {
	if m.inOwnCallback() {
		return &Error{Code: StatusReentrant, Msg: "Close from inside a callback of this manager (call it from another goroutine)"}
	}
	if inLogFunc() {
		return &Error{Code: StatusReentrant, Msg: "Close from inside the log function"}
	}
	m.mu.Lock()
	if m.closing {
		for !m.closed {
			m.cond.Wait()
		}
		m.mu.Unlock()
		return nil
	}
	m.closing = true
	for m.inflight > 0 {
		m.cond.Wait()
	}
	ptr := m.ptr
	m.mu.Unlock()

	var msg *C.char
	err := statusErr(C.rcgo_manager_free(ptr, &msg), msg)

	m.mu.Lock()
	m.ptr = nil
	m.closed = true
	m.closeErr = err
	m.cond.Broadcast()
	m.mu.Unlock()

	// No callback runs any more: the encryption and transport handles were released by the
	// library's finalizers; the event callback's user data (this manager) is ours to release.
	deleteHandle(m.self)
	m.qmu.Lock()
	m.qclose = true
	if m.queue != nil {
		m.queue.close()
	}
	m.qmu.Unlock()
	return err
}

// SetEventHandler installs f to receive every event (nil removes it). f runs on the library's
// event thread, one event at a time, in order per channel: keep it short and non-blocking (it
// may call Send, OpenChannel, CloseChannel). It is independent of Events().
func (m *Manager) SetEventHandler(f func(Event)) {
	m.handler.Store(eventHandler{f})
}

// Events returns the channel of this manager's events, in order per channel. Events are
// queued without bound, so a slow reader never blocks the library; read it until it is closed
// (after Close). Events produced before the first call are not queued: call it before opening
// channels. Every call returns the same channel.
func (m *Manager) Events() <-chan Event {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	if m.queue == nil {
		m.queue = newEventQueue()
		if m.qclose {
			m.queue.close()
		}
	}
	return m.queue.out
}

func (m *Manager) dispatch(e Event) {
	if h, _ := m.handler.Load().(eventHandler); h.f != nil {
		h.f(e)
	}
	m.qmu.Lock()
	q := m.queue
	m.qmu.Unlock()
	if q != nil {
		q.push(e)
	}
}

// OpenChannel opens channel channelID on contentTopic with our senderID. channelConfigJSON
// overrides the manager's channelDefaults key by key ("" = the defaults). A durable channel
// (`{"sdsConfig":{"historyBackend":"sqlite"}}`, with the manager's "storage") stored before
// resumes: its events not yet delivered come first, with their Seq; another senderID or
// contentTopic than the stored ones is ErrConfig.
func (m *Manager) OpenChannel(channelID, contentTopic, senderID, channelConfigJSON string) error {
	args := [4]*C.char{}
	defer func() {
		for _, p := range args {
			cFree(p)
		}
	}()
	var err error
	for i, a := range []struct {
		name, v  string
		nullable bool
	}{{"channelID", channelID, false}, {"contentTopic", contentTopic, false}, {"senderID", senderID, false}, {"channelConfigJSON", channelConfigJSON, true}} {
		if args[i], err = cString(a.name, a.v, a.nullable); err != nil {
			return err
		}
	}
	return m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_open_channel(p, args[0], args[1], args[2], args[3], msg)
	})
}

// CloseChannel closes a channel and releases its state in memory; no event of the channel is
// delivered after it returns (from inside an event handler: after the current event). A durable
// channel's stored state is kept: OpenChannel resumes it, PurgeChannel deletes it.
func (m *Manager) CloseChannel(channelID string) error {
	cid, err := cString("channelID", channelID, false)
	if err != nil {
		return err
	}
	defer cFree(cid)
	return m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_close_channel(p, cid, msg)
	})
}

// PurgeChannel deletes the stored state of a durable channel that is not open (ErrChannelExists
// while it is); nothing stored, or a manager without storage, is not an error.
func (m *Manager) PurgeChannel(channelID string) error {
	cid, err := cString("channelID", channelID, false)
	if err != nil {
		return err
	}
	defer cFree(cid)
	return m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_channel_purge(p, cid, msg)
	})
}

// Send sends payload (copied before Send returns; 1 byte to 1 MiB) on a channel and returns
// its request id at once; MessageSent, then MessageDelivered or SendError follow as events.
// An ephemeral message is not retransmitted nor acknowledged. ErrQueueFull is backpressure:
// retry later. On a durable channel Send returns once the send is committed to the manager's
// database; ErrStorage once the database failed.
func (m *Manager) Send(channelID string, payload []byte, ephemeral bool) (string, error) {
	cid, err := cString("channelID", channelID, false)
	if err != nil {
		return "", err
	}
	defer cFree(cid)
	var flags C.uint32_t
	if ephemeral {
		flags = C.RC_SEND_EPHEMERAL
	}
	var rid [C.RC_REQUEST_ID_LEN + 1]C.char
	err = m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_send(p, cid, bytesPtr(payload), C.size_t(len(payload)), flags, &rid[0], msg)
	})
	if err != nil {
		return "", err
	}
	return C.GoString(&rid[0]), nil
}

// Stats returns the counters of a channel. Not callable from encryption or transport
// callbacks (ErrReentrant).
func (m *Manager) Stats(channelID string) (Stats, error) {
	cid, err := cString("channelID", channelID, false)
	if err != nil {
		return nil, err
	}
	defer cFree(cid)
	var out *C.char
	err = m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_channel_stats_json(p, cid, &out, msg)
	})
	if err != nil {
		return nil, err
	}
	text := C.GoString(out)
	C.rc_string_free(out)
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var s Stats
	if err := dec.Decode(&s); err != nil {
		return nil, &Error{Code: StatusStorage, Msg: "stats: " + err.Error()}
	}
	return s, nil
}

// ListenAddresses returns this node's addresses when the manager's transport is "relay": full
// multiaddrs ending in /p2p/<peer id> (the real port when port 0 was configured), to give to the
// other participants. ErrTransport for another transport.
func (m *Manager) ListenAddresses() ([]string, error) {
	var out *C.char
	err := m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_relay_listen_addresses(p, &out, msg)
	})
	if err != nil {
		return nil, err
	}
	text := C.GoString(out)
	C.rc_string_free(out)
	var addrs []string
	if err := json.Unmarshal([]byte(text), &addrs); err != nil {
		return nil, &Error{Code: StatusTransport, Msg: "listen addresses: " + err.Error()}
	}
	return addrs, nil
}

// Connect dials a peer at run time (relay transport) and keeps it connected: multiaddr ends in
// /p2p/<peer id>, as ListenAddresses gives it. It returns once the dial is queued; an
// unreachable peer is retried with backoff and logged, never an error here. ErrInvalidArgument
// for a malformed address; ErrTransport for another transport.
func (m *Manager) Connect(multiaddr string) error {
	ca, err := cString("multiaddr", multiaddr, false)
	if err != nil {
		return err
	}
	defer cFree(ca)
	return m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_relay_connect(p, ca, msg)
	})
}

type cryptoHooks struct {
	m                *Manager
	encrypt, decrypt CryptoFunc
}

// SetEncryption installs the encryption hook of channelID ("" = the default of every channel
// without its own). Both nil removes it. The functions run on the library's runtime thread,
// once per chunk; they may be called concurrently for different managers.
func (m *Manager) SetEncryption(channelID string, encrypt, decrypt CryptoFunc) error {
	if (encrypt == nil) != (decrypt == nil) {
		return invalidArg("encrypt and decrypt must both be set or both be nil")
	}
	cid, err := cString("channelID", channelID, true)
	if err != nil {
		return err
	}
	defer cFree(cid)
	var hook any
	if encrypt != nil {
		hook = &cryptoHooks{m: m, encrypt: encrypt, decrypt: decrypt}
	}
	return m.installHook(hook, func(p *C.rc_manager, h C.uintptr_t, msg **C.char) C.rc_status {
		return C.rcgo_set_encryption(p, cid, h, msg)
	})
}

type transportHook struct {
	m    *Manager
	send TransportFunc
}

// SetTransport installs the host transport's publish function (nil removes it). The manager
// must have been created with {"transport": {"kind": "host"}} (else ErrTransport). send runs on
// the library's runtime thread; it may call TransportSent / TransportFailed itself or hand the
// message to another goroutine that does.
func (m *Manager) SetTransport(send TransportFunc) error {
	var hook any
	if send != nil {
		hook = &transportHook{m: m, send: send}
	}
	return m.installHook(hook, func(p *C.rc_manager, h C.uintptr_t, msg **C.char) C.rc_status {
		return C.rcgo_set_transport(p, h, msg)
	})
}

// installHook hands the library a handle to hook (nil: remove the hook) through set; on failure
// the library did not take the handle, so it is released here.
func (m *Manager) installHook(hook any, set func(p *C.rc_manager, h C.uintptr_t, msg **C.char) C.rc_status) error {
	var h cgo.Handle
	if hook != nil {
		h = newHandle(hook)
	}
	err := m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return set(p, C.uintptr_t(h), msg)
	})
	if err != nil && h != 0 {
		deleteHandle(h)
	}
	return err
}

type retrieveHook struct {
	m        *Manager
	retrieve RetrieveFunc
}

// SetTransportRetrieve installs the host transport's optional store hook (nil removes it):
// when SDS misses a message whose retrieval hint (Waku message hash) it knows, e.g. the
// sender's earlier message after a loss, retrieve is asked to fetch it from a Store node and
// hand it back with TransportReceive. Without it, missing messages are recovered by SDS alone
// (retransmission, syncs, repair requests to peers), which takes an acknowledgement timeout
// instead of a store round trip. While a hook is installed and a channel's rate limit is on, the
// channel relies on the store to save RLN budget (first retransmission after 6 acknowledgement
// timeouts, later acknowledgement syncs; see rc_set_transport_retrieve in the C header), so
// report message hashes with TransportSent. The manager must have been created with
// {"transport": {"kind": "host"}} (else ErrTransport). retrieve runs on the library's runtime
// thread; the previous hook is released once the library no longer uses it.
func (m *Manager) SetTransportRetrieve(retrieve RetrieveFunc) error {
	var hook any
	if retrieve != nil {
		hook = &retrieveHook{m: m, retrieve: retrieve}
	}
	return m.installHook(hook, func(p *C.rc_manager, h C.uintptr_t, msg **C.char) C.rc_status {
		return C.rcgo_set_transport_retrieve(p, h, msg)
	})
}

// TransportSent reports that dispatch dispatchID was published; messageHash ("0x" + 64 hex,
// or "" when unknown) becomes the retrieval hint. ErrTransport for an unknown or repeated id.
func (m *Manager) TransportSent(dispatchID uint64, messageHash string) error {
	hash, err := cString("messageHash", messageHash, true)
	if err != nil {
		return err
	}
	defer cFree(hash)
	return m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_transport_sent(p, C.uint64_t(dispatchID), hash, msg)
	})
}

// TransportFailed reports that dispatch dispatchID could not be published.
func (m *Manager) TransportFailed(dispatchID uint64, reason string) error {
	r, err := cString("reason", reason, true)
	if err != nil {
		return err
	}
	defer cFree(r)
	return m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_transport_failed(p, C.uint64_t(dispatchID), r, msg)
	})
}

// TransportReceive hands the library a WakuMessage the host's node received (copied before
// it returns); foreign traffic is filtered by the library. messageHash may be "" (computed).
func (m *Manager) TransportReceive(w WakuMessage, messageHash string) error {
	topic, err := cString("ContentTopic", w.ContentTopic, false)
	if err != nil {
		return err
	}
	defer cFree(topic)
	hash, err := cString("messageHash", messageHash, true)
	if err != nil {
		return err
	}
	defer cFree(hash)
	eph := C.int(0)
	if w.Ephemeral {
		eph = 1
	}
	return m.call(func(p *C.rc_manager, msg **C.char) C.rc_status {
		return C.rcgo_transport_receive(p, topic, bytesPtr(w.Payload), C.size_t(len(w.Payload)),
			bytesPtr(w.Meta), C.size_t(len(w.Meta)), C.int64_t(w.Timestamp), eph, hash, msg)
	})
}

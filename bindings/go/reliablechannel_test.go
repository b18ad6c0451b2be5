package reliablechannel_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rc "logos.co/reliablechannel"
)

// Generous bounds: the tests wait for events, never sleep for correctness; these only turn a
// hang into a failure.
const (
	longWait  = 90 * time.Second
	shortWait = 30 * time.Second
)

var netSeq atomic.Int64

// network returns a memory network name no other test uses.
func network(t *testing.T) string {
	return fmt.Sprintf("go-%s-%d-%d", t.Name(), time.Now().UnixNano(), netSeq.Add(1))
}

// memConfig: the embedded network with loss, a short acknowledgement timeout and no rate limit.
func memConfig(net string, loss float64, seed int) string {
	return fmt.Sprintf(`{"transport":{"kind":"memory","network":%q,"loss":%g,"seed":%d},
		"channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":400,"maxRetransmissions":30},
		"rateLimitConfig":{"enabled":false}}}`, net, loss, seed)
}

const hostConfig = `{"transport":{"kind":"host"},
	"channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":400,"maxRetransmissions":30},
	"rateLimitConfig":{"enabled":false}}}`

// noLeaks checks, when the test ends (after the managers' Close, registered later), that every
// cgo handle was released and the goroutines went back to their number at the start.
func noLeaks(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	handles := rc.LiveHandles()
	t.Cleanup(func() {
		deadline := time.Now().Add(shortWait)
		for {
			g, h := runtime.NumGoroutine(), rc.LiveHandles()
			if g <= base && h == handles {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Fatalf("leak: %d goroutines (at start %d), %d live handles (at start %d)\n%s", g, base, h, handles, buf[:n])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// waitHandles waits until the live handles are back to want (finalizers run on the library's
// runtime thread, after the setter returned).
func waitHandles(t *testing.T, what string, want int64) {
	t.Helper()
	deadline := time.Now().Add(shortWait)
	for rc.LiveHandles() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s leaked handles: %d, want %d", what, rc.LiveHandles(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newManager(t *testing.T, cfg string) *rc.Manager {
	t.Helper()
	m, err := rc.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func mustOpen(t *testing.T, m *rc.Manager, channel, sender string) {
	t.Helper()
	if err := m.OpenChannel(channel, "/reliable-go/1/"+channel+"/proto", sender, ""); err != nil {
		t.Fatalf("OpenChannel(%s): %v", sender, err)
	}
}

func mustSend(t *testing.T, m *rc.Manager, channel string, payload []byte) string {
	t.Helper()
	id, err := m.Send(channel, payload, false)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(id) != rc.RequestIDLen {
		t.Fatalf("request id %q: want %d hex characters", id, rc.RequestIDLen)
	}
	return id
}

// aesGCM is an encryption hook written in Go: AES-256-GCM, a random nonce before the sealed
// chunk, the channel id as additional data. It counts its calls.
type aesGCM struct {
	aead               cipher.AEAD
	encrypted, opened  atomic.Int64
	failEncrypt, panic atomic.Bool
}

func newAESGCM(t *testing.T, key []byte) *aesGCM {
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return &aesGCM{aead: a}
}

func (g *aesGCM) encrypt(channelID string, in []byte) ([]byte, error) {
	if g.panic.Load() {
		panic("encrypt exploded")
	}
	if g.failEncrypt.Load() {
		return nil, errors.New("no key")
	}
	nonce := make([]byte, g.aead.NonceSize(), g.aead.NonceSize()+len(in)+g.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	g.encrypted.Add(1)
	return g.aead.Seal(nonce, nonce, in, []byte(channelID)), nil
}

func (g *aesGCM) decrypt(channelID string, in []byte) ([]byte, error) {
	n := g.aead.NonceSize()
	if len(in) < n {
		return nil, errors.New("short ciphertext")
	}
	out, err := g.aead.Open(nil, in[:n], in[n:], []byte(channelID))
	if err != nil {
		return nil, err
	}
	g.opened.Add(1)
	return out, nil
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// drain reads events until done returns true; it fails the test after timeout or when the
// channel closes first.
func drain(t *testing.T, what string, events <-chan rc.Event, timeout time.Duration, done func(rc.Event) bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("%s: events closed early", what)
			}
			if done(e) {
				return
			}
		case <-timer.C:
			t.Fatalf("%s: timed out after %v", what, timeout)
		}
	}
}

func TestVersion(t *testing.T) {
	if v := rc.Version(); !strings.Contains(v, ".") {
		t.Fatalf("Version() = %q", v)
	}
	if s := rc.StatusQueueFull.String(); s != "RC_ERR_QUEUE_FULL" {
		t.Fatalf("StatusQueueFull.String() = %q", s)
	}
}

// Two managers exchange a text message and a 1 MiB message, both ways encrypted by Go, over
// a memory network that loses 20% of what each publishes.
func TestEncryptedExchangeOverLossyNetwork(t *testing.T) {
	noLeaks(t)
	net := network(t)
	alice := newManager(t, memConfig(net, 0.2, 1))
	bob := newManager(t, memConfig(net, 0.2, 2))
	aev, bev := alice.Events(), bob.Events()

	key := randomBytes(t, 32)
	ac, bc := newAESGCM(t, key), newAESGCM(t, key)
	mustOpen(t, alice, "room", "alice")
	mustOpen(t, bob, "room", "bob")
	if err := alice.SetEncryption("room", ac.encrypt, ac.decrypt); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetEncryption("", bc.encrypt, bc.decrypt); err != nil { // bob: default hook
		t.Fatal(err)
	}

	text := []byte("hello, reliable world")
	big := randomBytes(t, rc.MaxPayloadBytes)
	idText := mustSend(t, alice, "room", text)
	idBig := mustSend(t, alice, "room", big)
	idReply := mustSend(t, bob, "room", []byte("hi alice"))

	var wg sync.WaitGroup
	wg.Add(2)
	// Alice: both sends delivered, bob's reply received.
	go func() {
		defer wg.Done()
		delivered := map[string]bool{}
		gotReply := false
		drain(t, "alice", aev, longWait, func(e rc.Event) bool {
			switch e.Kind {
			case rc.MessageDelivered:
				delivered[e.RequestID] = true
			case rc.SendError:
				t.Errorf("alice: send error %s: %s", e.RequestID, e.Reason)
			case rc.MessageReceived:
				if e.RequestID == idReply && string(e.Payload) == "hi alice" && e.SenderID == "bob" {
					gotReply = true
				} else {
					t.Errorf("alice: unexpected message %+v", e)
				}
			}
			return delivered[idText] && delivered[idBig] && gotReply
		})
	}()
	// Bob: both messages received exactly once, intact; his reply delivered.
	go func() {
		defer wg.Done()
		got := map[string][]byte{}
		replyDelivered := false
		drain(t, "bob", bev, longWait, func(e rc.Event) bool {
			switch e.Kind {
			case rc.MessageReceived:
				if _, dup := got[e.RequestID]; dup {
					t.Errorf("bob: %s received twice", e.RequestID)
				}
				if e.SenderID != "alice" || e.ChannelID != "room" {
					t.Errorf("bob: event %s from %q on %q", e.Kind, e.SenderID, e.ChannelID)
				}
				got[e.RequestID] = e.Payload
			case rc.MessageDelivered:
				replyDelivered = replyDelivered || e.RequestID == idReply
			case rc.MessageLost:
				// Only alice sends to bob: a lost message is hers, or of an unknown sender.
				if e.SenderID != "alice" && e.SenderID != "" {
					t.Errorf("bob: lost %s from %q", e.RequestID, e.SenderID)
				}
				t.Logf("bob: lost %s from %q: %s", e.RequestID, e.SenderID, e.Reason)
			}
			return got[idText] != nil && got[idBig] != nil && replyDelivered
		})
		if !bytes.Equal(got[idText], text) {
			t.Errorf("bob: text payload %q", got[idText])
		}
		if !bytes.Equal(got[idBig], big) {
			t.Errorf("bob: 1 MiB payload differs (%d bytes)", len(got[idBig]))
		}
	}()
	wg.Wait()

	// 1 MiB is 11 chunks: at least 12 encrypted by alice, decrypted by bob.
	if ac.encrypted.Load() < 12 || bc.opened.Load() < 12 {
		t.Errorf("encrypt/decrypt calls: alice encrypted %d, bob opened %d", ac.encrypted.Load(), bc.opened.Load())
	}
	st, err := alice.Stats("room")
	if err != nil {
		t.Fatal(err)
	}
	if st.Count("messagesDelivered") < 2 || st.Count("messagesReceived") < 1 {
		t.Errorf("alice stats: %v", st)
	}
	t.Logf("alice: %d retransmissions, %d chunks sent; bob stats dropped undecryptable: %v",
		st.Count("retransmissions"), st.Count("chunksSent"), func() uint64 { s, _ := bob.Stats("room"); return s.Count("droppedUndecryptable") }())
}

func asError(t *testing.T, err error) *rc.Error {
	t.Helper()
	var e *rc.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *rc.Error", err, err)
	}
	return e
}

func wantErr(t *testing.T, what string, err error, sentinel *rc.Error, msgContains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %s", what, sentinel.Code)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s: %v, want %s", what, err, sentinel.Code)
	}
	e := asError(t, err)
	if e.Code != sentinel.Code {
		t.Fatalf("%s: code %s, want %s", what, e.Code, sentinel.Code)
	}
	if !strings.Contains(e.Msg, msgContains) || !strings.Contains(err.Error(), sentinel.Code.String()) {
		t.Fatalf("%s: %q should mention %q and %s", what, err.Error(), msgContains, sentinel.Code)
	}
}

func TestErrors(t *testing.T) {
	noLeaks(t)

	_, err := rc.New(`{"bogus": 1}`)
	wantErr(t, "unknown top-level key", err, rc.ErrConfig, "bogus")
	_, err = rc.New(`{"channelDefaults":{"sdsConfig":{"maxRetransmissions":"many"}}}`)
	wantErr(t, "wrong type", err, rc.ErrConfig, "channelDefaults.sdsConfig.maxRetransmissions")
	_, err = rc.New(`{"transport":{"kind":"carrier-pigeon"}}`)
	wantErr(t, "unknown transport", err, rc.ErrConfig, "transport.kind")
	_, err = rc.New(`{not json`)
	wantErr(t, "invalid JSON", err, rc.ErrConfig, "JSON")
	_, err = rc.New("{\"a\x00\":1}")
	wantErr(t, "NUL in config", err, rc.ErrInvalidArgument, "NUL")

	m := newManager(t, memConfig(network(t), 0, 1))
	handles := rc.LiveHandles()
	mustOpen(t, m, "c", "me")

	wantErr(t, "channel config", m.OpenChannel("d", "/t/1/d/proto", "me", `{"segmentationConfig":{"chunkSizeBytes":10}}`),
		rc.ErrConfig, "segmentationConfig.chunkSizeBytes")
	wantErr(t, "channel config unknown key", m.OpenChannel("d", "/t/1/d/proto", "me", `{"sdsConfig":{"nope":1}}`),
		rc.ErrConfig, "sdsConfig.nope")
	wantErr(t, "open twice", m.OpenChannel("c", "/t/1/c/proto", "me", ""), rc.ErrChannelExists, "c")
	wantErr(t, "empty channel id", m.OpenChannel("", "/t/1/c/proto", "me", ""), rc.ErrInvalidArgument, "channel_id")
	wantErr(t, "NUL in channel id", m.OpenChannel("a\x00b", "/t/1/c/proto", "me", ""), rc.ErrInvalidArgument, "channelID")
	wantErr(t, "invalid UTF-8", m.OpenChannel("\xff\xfe", "/t/1/c/proto", "me", ""), rc.ErrInvalidArgument, "")

	_, err = m.Send("nowhere", []byte("x"), false)
	wantErr(t, "unknown channel", err, rc.ErrUnknownChannel, "nowhere")
	if errors.Is(err, rc.ErrConfig) {
		t.Fatal("an unknown-channel error matches ErrConfig")
	}
	_, err = m.Send("c", nil, false)
	wantErr(t, "empty payload", err, rc.ErrPayloadEmpty, "")
	_, err = m.Send("c", make([]byte, rc.MaxPayloadBytes+1), false)
	wantErr(t, "too large", err, rc.ErrPayloadTooLarge, fmt.Sprint(rc.MaxPayloadBytes+1))
	if _, err := m.Send("c", make([]byte, rc.MaxPayloadBytes), true); err != nil {
		t.Fatalf("1 MiB ephemeral send: %v", err)
	}
	_, err = m.Stats("nowhere")
	wantErr(t, "stats of unknown channel", err, rc.ErrUnknownChannel, "nowhere")
	wantErr(t, "close unknown channel", m.CloseChannel("nowhere"), rc.ErrUnknownChannel, "nowhere")

	g := newAESGCM(t, randomBytes(t, 16))
	wantErr(t, "encryption of unknown channel", m.SetEncryption("nowhere", g.encrypt, g.decrypt), rc.ErrUnknownChannel, "nowhere")
	wantErr(t, "half an encryption hook", m.SetEncryption("c", g.encrypt, nil), rc.ErrInvalidArgument, "both")
	wantErr(t, "host transport on a memory manager", m.SetTransport(func(uint64, rc.WakuMessage) error { return nil }),
		rc.ErrTransport, "host")
	wantErr(t, "transport report on a memory manager", m.TransportSent(1, ""), rc.ErrTransport, "")
	if h := rc.LiveHandles(); h != handles {
		t.Fatalf("failed setters leaked handles: %d, want %d", h, handles)
	}
	// Replacing and removing a hook releases the previous handle (the library's finalizer).
	for i := 0; i < 3; i++ {
		if err := m.SetEncryption("c", g.encrypt, g.decrypt); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SetEncryption("c", nil, nil); err != nil {
		t.Fatal(err)
	}
	// The library drops a replaced hook on its runtime thread, soon after the call.
	waitHandles(t, "replaced hooks", handles)

	h := newManager(t, hostConfig)
	wantErr(t, "unknown dispatch id", h.TransportSent(12345, ""), rc.ErrTransport, "")
	wantErr(t, "bad message hash", h.TransportSent(1, "0xnothex"), rc.ErrInvalidArgument, "message_hash")
}

// An encryption hook that fails (or panics) fails the send: SendError, no plaintext fallback.
func TestEncryptFailureIsSendError(t *testing.T) {
	noLeaks(t)
	m := newManager(t, memConfig(network(t), 0, 1))
	ev := m.Events()
	mustOpen(t, m, "c", "me")
	g := newAESGCM(t, randomBytes(t, 32))
	g.failEncrypt.Store(true)
	if err := m.SetEncryption("c", g.encrypt, g.decrypt); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"error", "panic"} {
		g.panic.Store(mode == "panic")
		id := mustSend(t, m, "c", []byte("secret"))
		drain(t, mode, ev, shortWait, func(e rc.Event) bool {
			if e.RequestID == id && (e.Kind == rc.MessageSent || e.Kind == rc.MessageDelivered) {
				t.Fatalf("%s: %s despite a failing encrypt", mode, e.Kind)
			}
			return e.Kind == rc.SendError && e.RequestID == id
		})
	}
}

// A message bob cannot decrypt (another key) is dropped and reported lost, with no sender: no
// one can tell whose it was.
func TestUndecryptableIsLostFromUnknownSender(t *testing.T) {
	noLeaks(t)
	net := network(t)
	alice := newManager(t, memConfig(net, 0, 1))
	bob := newManager(t, memConfig(net, 0, 2))
	bev := bob.Events()
	mustOpen(t, alice, "k", "alice")
	mustOpen(t, bob, "k", "bob")
	ac, bc := newAESGCM(t, randomBytes(t, 32)), newAESGCM(t, randomBytes(t, 32))
	if err := alice.SetEncryption("k", ac.encrypt, ac.decrypt); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetEncryption("k", bc.encrypt, bc.decrypt); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "k", []byte("for other eyes"))
	drain(t, "bob", bev, shortWait, func(e rc.Event) bool {
		if e.Kind == rc.MessageReceived {
			t.Fatalf("bob received %q without the key", e.Payload)
		}
		if e.Kind != rc.MessageLost {
			return false
		}
		if e.SenderID != "" || e.RequestID != "" || !strings.Contains(e.Reason, "decryption failed") {
			t.Errorf("lost event: sender %q, request %q, reason %q", e.SenderID, e.RequestID, e.Reason)
		}
		return true
	})
}

// Many goroutines send on one channel at once: every message arrives once, every send is
// delivered.
func TestConcurrentSends(t *testing.T) {
	noLeaks(t)
	net := network(t)
	a := newManager(t, memConfig(net, 0.05, 3))
	b := newManager(t, memConfig(net, 0.05, 4))
	aev, bev := a.Events(), b.Events()
	mustOpen(t, a, "c", "a")
	mustOpen(t, b, "c", "b")

	const senders, each = 16, 25
	ids := make(chan string, senders*each)
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				payload := []byte(fmt.Sprintf("g%02d-m%02d", g, i))
				for {
					id, err := a.Send("c", payload, false)
					if errors.Is(err, rc.ErrQueueFull) {
						runtime.Gosched()
						continue
					}
					if err != nil {
						t.Errorf("Send: %v", err)
						return
					}
					ids <- id
					break
				}
			}
		}(g)
	}
	wg.Wait()
	close(ids)
	want := map[string]bool{}
	for id := range ids {
		if want[id] {
			t.Fatalf("request id %s returned twice", id)
		}
		want[id] = true
	}
	if len(want) != senders*each {
		t.Fatalf("%d sends succeeded, want %d", len(want), senders*each)
	}

	var rwg sync.WaitGroup
	rwg.Add(2)
	go func() {
		defer rwg.Done()
		delivered := 0
		drain(t, "sender", aev, longWait, func(e rc.Event) bool {
			if e.Kind == rc.SendError {
				t.Errorf("send error: %s", e.Reason)
			}
			if e.Kind == rc.MessageDelivered && want[e.RequestID] {
				delivered++
			}
			return delivered == senders*each
		})
	}()
	go func() {
		defer rwg.Done()
		got := map[string]bool{}
		drain(t, "receiver", bev, longWait, func(e rc.Event) bool {
			if e.Kind == rc.MessageReceived {
				if got[string(e.Payload)] || !want[e.RequestID] {
					t.Errorf("unexpected or repeated message %q (%s)", e.Payload, e.RequestID)
				}
				got[string(e.Payload)] = true
			}
			return len(got) == senders*each
		})
	}()
	rwg.Wait()
}

// hostNet is a host transport implemented in Go: the managers' publish callbacks hand their
// WakuMessages to a Go channel; a router goroutine reports them sent and delivers them to the
// other peers, dropping every dropEvery-th delivery (the publish still succeeds: SDS repairs).
type hostNet struct {
	packets   chan packet
	peers     []*rc.Manager
	dropEvery int
	done      chan struct{}
}

type packet struct {
	from *rc.Manager
	id   uint64
	msg  rc.WakuMessage
}

func newHostNet(dropEvery int) *hostNet {
	n := &hostNet{packets: make(chan packet, 1<<14), dropEvery: dropEvery, done: make(chan struct{})}
	return n
}

// attach installs m's transport: asynchronous (the router reports the outcome) or synchronous
// (TransportSent from inside the callback, as the C contract allows).
func (n *hostNet) attach(t *testing.T, m *rc.Manager, synchronous bool) {
	n.peers = append(n.peers, m)
	err := m.SetTransport(func(id uint64, msg rc.WakuMessage) error {
		if synchronous {
			if err := m.TransportSent(id, ""); err != nil {
				return err
			}
			id = 0
		}
		select {
		case n.packets <- packet{from: m, id: id, msg: msg}:
			return nil
		default:
			return errors.New("host network congested")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (n *hostNet) run(t *testing.T) {
	go func() {
		defer close(n.done)
		count := 0
		for p := range n.packets {
			if p.id != 0 {
				if err := p.from.TransportSent(p.id, ""); err != nil && !errors.Is(err, rc.ErrStopped) {
					t.Errorf("TransportSent: %v", err)
				}
			}
			count++
			if n.dropEvery > 0 && count%n.dropEvery == 0 {
				continue
			}
			for _, peer := range n.peers {
				if peer == p.from {
					continue
				}
				if err := peer.TransportReceive(p.msg, ""); err != nil && !errors.Is(err, rc.ErrStopped) {
					t.Errorf("TransportReceive: %v", err)
				}
			}
		}
	}()
}

// stop ends the router; call it after the managers are closed (their callbacks no longer run).
func (n *hostNet) stop() {
	close(n.packets)
	<-n.done
}

func TestHostTransportLoop(t *testing.T) {
	noLeaks(t)
	n := newHostNet(5)
	t.Cleanup(n.stop) // runs after the managers' Close (registered later, run earlier)
	a := newManager(t, hostConfig)
	b := newManager(t, hostConfig)
	aev, bev := a.Events(), b.Events()
	n.attach(t, a, false)
	n.attach(t, b, true)
	n.run(t)
	mustOpen(t, a, "h", "a")
	mustOpen(t, b, "h", "b")

	big := randomBytes(t, 300_000)
	sentA := map[string][]byte{}
	for i := 0; i < 10; i++ {
		p := []byte(fmt.Sprintf("from a #%d", i))
		sentA[mustSend(t, a, "h", p)] = p
	}
	sentA[mustSend(t, a, "h", big)] = big
	sentB := map[string][]byte{}
	for i := 0; i < 10; i++ {
		p := []byte(fmt.Sprintf("from b #%d", i))
		sentB[mustSend(t, b, "h", p)] = p
	}

	side := func(name string, ev <-chan rc.Event, mine, theirs map[string][]byte) {
		delivered, received := 0, 0
		drain(t, name, ev, longWait, func(e rc.Event) bool {
			switch e.Kind {
			case rc.MessageDelivered:
				if mine[e.RequestID] != nil {
					delivered++
				}
			case rc.SendError:
				t.Errorf("%s: send error: %s", name, e.Reason)
			case rc.MessageReceived:
				if want, ok := theirs[e.RequestID]; !ok || !bytes.Equal(want, e.Payload) {
					t.Errorf("%s: unexpected message %s (%d bytes)", name, e.RequestID, len(e.Payload))
				}
				received++
			}
			return delivered == len(mine) && received == len(theirs)
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); side("a", aev, sentA, sentB) }()
	go func() { defer wg.Done(); side("b", bev, sentB, sentA) }()
	wg.Wait()
}

// A publish that fails (the callback's error, or TransportFailed later) fails the send.
func TestHostTransportFailure(t *testing.T) {
	noLeaks(t)
	m := newManager(t, hostConfig)
	ev := m.Events()
	failed := make(chan uint64, 64)
	var mode atomic.Int32 // 0: the callback fails; 1: reported later with TransportFailed
	if err := m.SetTransport(func(id uint64, _ rc.WakuMessage) error {
		if mode.Load() == 0 {
			return errors.New("node offline")
		}
		failed <- id
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	reporterDone := make(chan struct{})
	go func() {
		defer close(reporterDone)
		for id := range failed {
			if err := m.TransportFailed(id, "relay refused"); err != nil && !errors.Is(err, rc.ErrStopped) {
				t.Errorf("TransportFailed: %v", err)
			}
		}
	}()
	mustOpen(t, m, "h", "me")
	for _, md := range []int32{0, 1} {
		mode.Store(md)
		id := mustSend(t, m, "h", []byte("doomed"))
		drain(t, fmt.Sprint("mode ", md), ev, longWait, func(e rc.Event) bool {
			if e.RequestID == id && e.Kind == rc.MessageDelivered {
				t.Fatalf("delivered through a failing transport")
			}
			return e.Kind == rc.SendError && e.RequestID == id
		})
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	close(failed)
	<-reporterDone
}

// Callbacks may call Send (an echo) but not Close (ErrReentrant); Close from another goroutine
// then works.
func TestCallbacksReenter(t *testing.T) {
	noLeaks(t)
	net := network(t)
	a := newManager(t, memConfig(net, 0, 1))
	b := newManager(t, memConfig(net, 0, 2))
	aev := a.Events()
	closeErr := make(chan error, 16)
	b.SetEventHandler(func(e rc.Event) {
		if e.Kind != rc.MessageReceived {
			return
		}
		closeErr <- b.Close()
		if _, err := b.Send(e.ChannelID, append([]byte("echo: "), e.Payload...), false); err != nil {
			t.Errorf("Send from the event handler: %v", err)
		}
	})
	mustOpen(t, a, "e", "a")
	mustOpen(t, b, "e", "b")
	// An encryption hook that opens a channel from the runtime thread.
	var opened sync.Once
	ident := func(ch string, in []byte) ([]byte, error) {
		opened.Do(func() {
			if err := a.OpenChannel("side", "/reliable-go/1/side/proto", "a", ""); err != nil {
				t.Errorf("OpenChannel from the encrypt hook: %v", err)
			}
			if err := a.Close(); !errors.Is(err, rc.ErrReentrant) {
				t.Errorf("Close from the encrypt hook: %v, want ErrReentrant", err)
			}
		})
		return append([]byte(nil), in...), nil
	}
	if err := a.SetEncryption("", ident, ident); err != nil {
		t.Fatal(err)
	}
	if err := b.SetEncryption("", ident, ident); err != nil {
		t.Fatal(err)
	}
	mustSend(t, a, "e", []byte("ping"))
	drain(t, "echo", aev, longWait, func(e rc.Event) bool {
		return e.Kind == rc.MessageReceived && string(e.Payload) == "echo: ping"
	})
	select {
	case err := <-closeErr:
		if !errors.Is(err, rc.ErrReentrant) {
			t.Fatalf("Close from the event handler: %v, want ErrReentrant", err)
		}
	case <-time.After(shortWait):
		t.Fatal("the handler did not run")
	}
	if _, err := a.Stats("side"); err != nil {
		t.Fatalf("the channel opened from the hook: %v", err)
	}
}

// Close while goroutines send and events flow: senders get ErrStopped, Close returns nil, the
// events channel closes, nothing leaks.
func TestCloseWhileTrafficFlows(t *testing.T) {
	noLeaks(t)
	net := network(t)
	a, err := rc.New(memConfig(net, 0.1, 1))
	if err != nil {
		t.Fatal(err)
	}
	b := newManager(t, memConfig(net, 0.1, 2))
	aev, bev := a.Events(), b.Events()
	mustOpen(t, a, "c", "a")
	mustOpen(t, b, "c", "b")
	g := newAESGCM(t, randomBytes(t, 32))
	for _, m := range []*rc.Manager{a, b} {
		if err := m.SetEncryption("", g.encrypt, g.decrypt); err != nil {
			t.Fatal(err)
		}
	}
	// Bob echoes from his event handler, so traffic flows both ways until the end.
	b.SetEventHandler(func(e rc.Event) {
		if e.Kind == rc.MessageReceived {
			_, _ = b.Send("c", e.Payload, false)
		}
	})

	var sends atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ; n++ {
				_, err := a.Send("c", []byte(fmt.Sprintf("s%d-%d", i, n)), n%3 == 0)
				switch {
				case err == nil:
					sends.Add(1)
				case errors.Is(err, rc.ErrQueueFull):
					runtime.Gosched()
				case errors.Is(err, rc.ErrStopped):
					return
				default:
					t.Errorf("Send: %v", err)
					return
				}
			}
		}(i)
	}
	// Bob's reader: wait until traffic really flows, then keep draining.
	flowing := make(chan struct{})
	bobDone := make(chan struct{})
	go func() {
		defer close(bobDone)
		received := 0
		for e := range bev {
			if e.Kind == rc.MessageReceived {
				if received++; received == 50 {
					close(flowing)
				}
			}
		}
	}()
	aliceEvents := make(chan int)
	go func() {
		n := 0
		for range aev {
			n++
		}
		aliceEvents <- n
	}()
	select {
	case <-flowing:
	case <-time.After(longWait):
		t.Fatal("traffic never flowed")
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(longWait):
		t.Fatal("Close hung")
	}
	wg.Wait() // every sender saw ErrStopped
	select {
	case n := <-aliceEvents:
		t.Logf("%d sends accepted, %d events for alice before her channel closed", sends.Load(), n)
	case <-time.After(shortWait):
		t.Fatal("alice's events channel was not closed after Close")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	<-bobDone
}

// Close twice (and concurrently) is fine; every later call fails with ErrStopped.
func TestCloseTwice(t *testing.T) {
	noLeaks(t)
	m, err := rc.New(memConfig(network(t), 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	ev := m.Events()
	mustOpen(t, m, "c", "me")
	g := newAESGCM(t, randomBytes(t, 32))
	if err := m.SetEncryption("c", g.encrypt, g.decrypt); err != nil {
		t.Fatal(err)
	}
	mustSend(t, m, "c", []byte("last words"))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Close(); err != nil {
				t.Errorf("concurrent Close: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for range ev { // the events produced before Close, then closed
	}
	if _, err := m.Send("c", []byte("x"), false); !errors.Is(err, rc.ErrStopped) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := m.OpenChannel("d", "/t/1/d/proto", "me", ""); !errors.Is(err, rc.ErrStopped) {
		t.Fatalf("OpenChannel after Close: %v", err)
	}
	if err := m.SetEncryption("", g.encrypt, g.decrypt); !errors.Is(err, rc.ErrStopped) {
		t.Fatalf("SetEncryption after Close: %v", err)
	}
	if _, err := m.Stats("c"); !errors.Is(err, rc.ErrStopped) {
		t.Fatalf("Stats after Close: %v", err)
	}
	if _, ok := <-m.Events(); ok {
		t.Fatal("Events() after Close is not closed")
	}
}

// storeNode is the host's Waku node with a Store: it keeps every message alice publishes,
// under a hash it assigns ("0x" + a 64-hex counter) and reports with TransportSent, and loses
// the first one on its way to bob.
type storeNode struct {
	mu      sync.Mutex
	hashes  []string
	stored  map[string]rc.WakuMessage
	dropped atomic.Int64
}

// The host transport's store hook (SetTransportRetrieve): a message alice's node lost on its way
// to bob is fetched back from the store by its hash; both messages are received, in order,
// before any retransmission could have repaired the loss.
func TestHostTransportRetrieve(t *testing.T) {
	noLeaks(t)
	handles := rc.LiveHandles()
	hook := func(string, []string) {}

	// Refused on a memory manager: ErrTransport, and the handle is not the library's.
	mem := newManager(t, memConfig(network(t), 0, 1))
	wantErr(t, "store hook on a memory manager", mem.SetTransportRetrieve(hook), rc.ErrTransport, "host")
	if h := rc.LiveHandles(); h != handles+1 { // +1: mem itself
		t.Fatalf("a refused SetTransportRetrieve leaked its handle: %d, want %d", h, handles+1)
	}

	// A long acknowledgement timeout: the dropped message is not retransmitted during the test,
	// so only the store hook can bring it back in time.
	const cfg = `{"transport":{"kind":"host"},
		"channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":60000,"maxRetransmissions":30},
		"rateLimitConfig":{"enabled":false}}}`
	alice := newManager(t, cfg)
	bob := newManager(t, cfg)
	aev, bev := alice.Events(), bob.Events()
	defer func() { // read what is left (acknowledgements, ...) until Close closes the channels
		for _, ev := range []<-chan rc.Event{aev, bev} {
			go func(ev <-chan rc.Event) {
				for range ev {
				}
			}(ev)
		}
	}()
	base := rc.LiveHandles()

	// Replacing and removing the hook releases the previous handle.
	for i := 0; i < 3; i++ {
		if err := bob.SetTransportRetrieve(hook); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.SetTransportRetrieve(nil); err != nil {
		t.Fatal(err)
	}
	waitHandles(t, "replaced store hooks", base)

	var reportErrors atomic.Int64
	report := func(what string, err error) {
		if err != nil && !errors.Is(err, rc.ErrStopped) {
			reportErrors.Add(1)
			t.Errorf("%s: %v", what, err)
		}
	}
	node := &storeNode{stored: map[string]rc.WakuMessage{}}
	if err := alice.SetTransport(func(id uint64, msg rc.WakuMessage) error {
		node.mu.Lock()
		k := len(node.hashes)
		hash := fmt.Sprintf("0x%064x", k+1)
		node.hashes = append(node.hashes, hash)
		node.stored[hash] = msg
		node.mu.Unlock()
		if k == 0 {
			node.dropped.Add(1) // lost on the way to bob
		} else {
			report("bob.TransportReceive", bob.TransportReceive(msg, hash))
		}
		report("alice.TransportSent", alice.TransportSent(id, hash))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetTransport(func(id uint64, msg rc.WakuMessage) error {
		report("alice.TransportReceive", alice.TransportReceive(msg, ""))
		report("bob.TransportSent", bob.TransportSent(id, ""))
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	const channel = "s"
	topic := "/reliable-go/1/" + channel + "/proto"
	var calls, found, badArgs atomic.Int64
	if err := bob.SetTransportRetrieve(func(contentTopic string, messageHashes []string) {
		calls.Add(1)
		if contentTopic != topic || len(messageHashes) == 0 {
			badArgs.Add(1)
		}
		for _, h := range messageHashes {
			if len(h) != 66 || !strings.HasPrefix(h, "0x") {
				badArgs.Add(1)
			}
			node.mu.Lock()
			msg, ok := node.stored[h]
			node.mu.Unlock()
			if ok && msg.ContentTopic == contentTopic {
				found.Add(1)
				report("TransportReceive from the store hook", bob.TransportReceive(msg, h))
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, alice, channel, "alice")
	mustOpen(t, bob, channel, "bob")

	one := mustSend(t, alice, channel, []byte("one"))
	drain(t, "alice: one sent", aev, shortWait, func(e rc.Event) bool {
		if e.Kind == rc.SendError {
			t.Fatalf("alice: send error: %s", e.Reason)
		}
		return e.Kind == rc.MessageSent && e.RequestID == one
	})
	two := mustSend(t, alice, channel, []byte("two"))
	// "one" never reached bob's node: "two" names it with its hash, bob's store hook fetches
	// it, and both are received in order.
	var received []string
	drain(t, "bob: both received", bev, shortWait, func(e rc.Event) bool {
		switch e.Kind {
		case rc.MessageReceived:
			received = append(received, e.RequestID)
			if want := map[string]string{one: "one", two: "two"}[e.RequestID]; string(e.Payload) != want || e.SenderID != "alice" {
				t.Errorf("bob: unexpected message %q (%s) from %q", e.Payload, e.RequestID, e.SenderID)
			}
		case rc.MessageLost:
			t.Errorf("bob: lost %s: %s", e.RequestID, e.Reason)
		}
		return len(received) >= 2
	})
	if len(received) != 2 || received[0] != one || received[1] != two {
		t.Fatalf("bob received %v, want [%s %s] (in order)", received, one, two)
	}
	if node.dropped.Load() != 1 {
		t.Errorf("alice's node dropped %d messages, want 1", node.dropped.Load())
	}
	if calls.Load() < 1 || found.Load() < 1 || badArgs.Load() != 0 || reportErrors.Load() != 0 {
		t.Errorf("store hook: %d calls, %d found, %d bad arguments; %d report errors",
			calls.Load(), found.Load(), badArgs.Load(), reportErrors.Load())
	}
	st, err := alice.Stats(channel)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Count("retransmissions"); n != 0 {
		t.Errorf("alice retransmitted %d times: the store hook should have repaired the loss first", n)
	}
	bst, err := bob.Stats(channel)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hook calls %d, found %d; bob stats: retrievalsRequested %d", calls.Load(), found.Load(), bst.Count("retrievalsRequested"))
}

// durableConfig: memConfig with the manager's database at path.
func durableConfig(net, path string) string {
	return fmt.Sprintf(`{"transport":{"kind":"memory","network":%q},"storage":{"path":%q},
		"channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":400,"maxRetransmissions":30},
		"rateLimitConfig":{"enabled":false}}}`, net, path)
}

const sqliteChannel = `{"sdsConfig":{"historyBackend":"sqlite"}}`

// A durable channel across a restart of its manager (Close, New on the same database): Seq
// continues, nothing delivered is delivered again from the database, another sender id is
// refused, and PurgeChannel deletes the stored channel.
func TestDurableChannelAcrossARestart(t *testing.T) {
	noLeaks(t)
	net := network(t)
	path := filepath.Join(t.TempDir(), "bob.db")
	alice, err := rc.New(memConfig(net, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	aliceEvents := alice.Events()
	// No causal history: this test is about the database (Seq, the outbox, purge); causal order
	// across a restart, with the stored SDS log, is covered by tests/durable.rs.
	if err := alice.OpenChannel("room", "/reliable-go/1/room/proto", "alice", `{"sdsConfig":{"causalHistorySize":0}}`); err != nil {
		t.Fatal(err)
	}

	bob, err := rc.New(durableConfig(net, path))
	if err != nil {
		t.Fatal(err)
	}
	events := bob.Events()
	if err := bob.OpenChannel("room", "/reliable-go/1/room/proto", "bob", sqliteChannel); err != nil {
		t.Fatal(err)
	}
	sent := mustSend(t, bob, "room", []byte("from bob, before the restart"))
	drain(t, "alice receives", aliceEvents, longWait, func(e rc.Event) bool { return e.Kind == rc.MessageReceived })
	mustSend(t, alice, "room", []byte("one"))
	var last uint64
	delivered, received := false, false
	drain(t, "bob's events", events, longWait, func(e rc.Event) bool {
		if e.Seq <= last {
			t.Fatalf("seq %d after %d", e.Seq, last)
		}
		last = e.Seq
		delivered = delivered || (e.Kind == rc.MessageDelivered && e.RequestID == sent)
		received = received || (e.Kind == rc.MessageReceived && string(e.Payload) == "one")
		return delivered && received
	})
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	for range events {
	}

	bob, err = rc.New(durableConfig(net, path))
	if err != nil {
		t.Fatal(err)
	}
	events = bob.Events()
	wantErr(t, "another sender id", bob.OpenChannel("room", "/reliable-go/1/room/proto", "mallory", sqliteChannel), rc.ErrConfig, "sender id")
	if err := bob.OpenChannel("room", "/reliable-go/1/room/proto", "bob", sqliteChannel); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, "room", []byte("two"))
	// Nothing comes back from the outbox: every event has a new Seq. The SDS log is stored too:
	// "one", had the network delivered it again, would be a duplicate, never a new event.
	drain(t, "bob receives after the restart", events, longWait, func(e rc.Event) bool {
		if e.Seq <= last {
			t.Fatalf("seq %d after %d: it must continue across restarts", e.Seq, last)
		}
		return e.Kind == rc.MessageReceived && string(e.Payload) == "two"
	})
	wantErr(t, "purge while open", bob.PurgeChannel("room"), rc.ErrChannelExists, "room")
	if err := bob.CloseChannel("room"); err != nil {
		t.Fatal(err)
	}
	if err := bob.PurgeChannel("room"); err != nil {
		t.Fatal(err)
	}
	if err := bob.OpenChannel("room", "/reliable-go/1/room/proto", "mallory", sqliteChannel); err != nil {
		t.Fatalf("after a purge any sender id may open it: %v", err)
	}
	second, err := rc.New(durableConfig(net, path))
	if second != nil {
		_ = second.Close()
	}
	wantErr(t, "a second manager on the database", err, rc.ErrStorage, "in use")
	for _, m := range []*rc.Manager{bob, alice} {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for range events {
	}
	for range aliceEvents {
	}
}

package reliablechannel_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
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

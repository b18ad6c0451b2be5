// The host transport: a Go program moving WakuMessages between managers (loop, failures, the store hook).

package reliablechannel_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	rc "logos.co/reliablechannel"
)

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

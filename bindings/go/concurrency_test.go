// Concurrency: sends from many goroutines, callbacks that call back in, closing while traffic flows.

package reliablechannel_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rc "logos.co/reliablechannel"
)

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

// Durable channels from Go: a restart with the same database.

package reliablechannel_test

import (
	"fmt"
	"path/filepath"
	"testing"

	rc "logos.co/reliablechannel"
)

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

package reliablechannel_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	rc "logos.co/reliablechannel"
)

// relayConfig: a relay node on loopback (any port) dialling peers, quick acknowledgements.
func relayConfig(peers ...string) string {
	quoted := make([]string, len(peers))
	for i, p := range peers {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf(`{"transport":{"kind":"relay","listen":["/ip4/127.0.0.1/tcp/0"],"peers":[%s]},
		"channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":1000,"syncIntervalMs":1000,"maxRetransmissions":60},
		"rateLimitConfig":{"enabled":false}}}`, strings.Join(quoted, ","))
}

// Two managers, each its own Waku Relay node: ListenAddresses, Connect at run time, a message each
// way, DELIVERED, relay stats; the relay calls on another transport.
func TestRelayListenAddressesAndConnect(t *testing.T) {
	noLeaks(t)
	alice, err := rc.New(relayConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	addrs, err := alice.ListenAddresses()
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 || !strings.HasPrefix(addrs[0], "/ip4/127.0.0.1/tcp/") || !strings.Contains(addrs[0], "/p2p/") || strings.Contains(addrs[0], "/tcp/0/") {
		t.Fatalf("listen addresses %v", addrs)
	}
	bob, err := rc.New(relayConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	aev, bev := alice.Events(), bob.Events()
	for _, m := range []struct {
		m    *rc.Manager
		name string
	}{{alice, "alice"}, {bob, "bob"}} {
		if err := m.m.OpenChannel("room", "/reliable-go/1/relay/proto", m.name, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.Connect(addrs[0]); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "not a multiaddr", bob.Connect("nonsense"), rc.ErrInvalidArgument, "multiaddr")
	sent := mustSend(t, bob, "room", []byte("hello over relay"))
	drain(t, "alice receives", aev, longWait, func(e rc.Event) bool {
		return e.Kind == rc.MessageReceived && string(e.Payload) == "hello over relay" && e.SenderID == "bob"
	})
	drain(t, "bob's send delivered", bev, longWait, func(e rc.Event) bool {
		return e.Kind == rc.MessageDelivered && e.RequestID == sent
	})
	s, err := bob.Stats("room")
	if err != nil {
		t.Fatal(err)
	}
	relay, ok := s["relay"].(map[string]any)
	if !ok || fmt.Sprint(relay["connectedPeers"]) != "1" {
		t.Fatalf("relay stats %v", s["relay"])
	}

	mem, err := rc.New(memConfig(network(t), 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	_, err = mem.ListenAddresses()
	if !errors.Is(err, rc.ErrTransport) {
		t.Fatalf("ListenAddresses on a memory manager: %v", err)
	}
	wantErr(t, "connect on memory", mem.Connect(addrs[0]), rc.ErrTransport, "relay")
}

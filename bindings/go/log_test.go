package reliablechannel_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	rc "logos.co/reliablechannel"
)

type logRecord struct {
	level           rc.LogLevel
	target, message string
}

// A peer's garbage (the reliable-channel marker, then bytes that are not an SDS message) is
// dropped with a WARN record naming the channel; INFO records stay out at LogWarn; calls into
// the package from the log function are refused; nil removes the function.
func TestLoggerWarnsOfMalformedMessage(t *testing.T) {
	noLeaks(t)
	m := newManager(t, hostConfig)
	records := make(chan logRecord, 1024)
	var once sync.Once
	reentrant := make(chan [3]error, 1)
	logf := func(level rc.LogLevel, target, message string) {
		once.Do(func() {
			_, sendErr := m.Send("logs", []byte("from the log function"), false)
			reentrant <- [3]error{sendErr, m.Close(), rc.SetLogger(rc.LogOff, nil)}
		})
		select {
		case records <- logRecord{level, target, message}:
		default:
		}
	}
	if err := rc.SetLogger(rc.LogWarn, logf); err != nil {
		t.Fatalf("SetLogger: %v", err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			_ = rc.SetLogger(rc.LogOff, nil)
		}
	})
	mustOpen(t, m, "logs", "me")
	garbage := rc.WakuMessage{
		ContentTopic: "/reliable-go/1/logs/proto",
		Payload:      []byte("payload"),
		Meta:         []byte("RELIABLE-CHANNEL-API/1"),
		Timestamp:    1,
	}
	if err := m.TransportReceive(garbage, ""); err != nil {
		t.Fatalf("TransportReceive: %v", err)
	}
	deadline := time.After(shortWait)
	for found := false; !found; {
		select {
		case r := <-records:
			if r.level > rc.LogWarn {
				t.Errorf("a %v record with the maximum at WARN: %s", r.level, r.message)
			}
			found = r.level == rc.LogWarn && strings.Contains(r.message, "not a valid SDS message") &&
				strings.Contains(r.message, "logs") && strings.HasPrefix(r.target, "reliable_channel")
		case <-deadline:
			t.Fatal("no WARN record for the malformed message")
		}
	}
	errs := <-reentrant
	for i, what := range []string{"Send", "Close", "SetLogger"} {
		if !errors.Is(errs[i], rc.ErrReentrant) {
			t.Errorf("%s from the log function: %v, want ErrReentrant", what, errs[i])
		}
	}

	if err := rc.SetLogger(rc.LogTrace+1, logf); !errors.Is(err, rc.ErrInvalidArgument) {
		t.Errorf("SetLogger with an invalid level: %v, want ErrInvalidArgument", err)
	}
	if err := rc.SetLogger(rc.LogOff, nil); err != nil {
		t.Fatalf("SetLogger(nil): %v", err)
	}
	removed = true
	// Nothing arrives once it is removed: the stats call is a round trip through the runtime
	// thread, after which the second message has been handled.
	for len(records) > 0 {
		<-records
	}
	if err := m.TransportReceive(garbage, ""); err != nil {
		t.Fatalf("TransportReceive: %v", err)
	}
	if _, err := m.Stats("logs"); err != nil {
		t.Fatal(err)
	}
	if n := len(records); n != 0 {
		t.Errorf("%d records after SetLogger(nil)", n)
	}
	// The manager still works: Close from the log function changed nothing.
	if _, err := m.Send("logs", []byte("after"), false); err != nil {
		t.Errorf("Send after the log test: %v", err)
	}
}

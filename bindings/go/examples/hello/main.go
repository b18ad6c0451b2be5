// hello: two managers on the embedded in-process network; alice sends bob an encrypted
// message and waits until it is delivered (acknowledged end to end).
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"time"

	rc "logos.co/reliablechannel"
)

func main() {
	// AES-256-GCM with a key both sides share (agreeing on it is the application's business).
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		log.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	encrypt := func(channelID string, in []byte) ([]byte, error) {
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		return aead.Seal(nonce, nonce, in, []byte(channelID)), nil
	}
	decrypt := func(channelID string, in []byte) ([]byte, error) {
		if len(in) < aead.NonceSize() {
			return nil, errors.New("short message")
		}
		n := aead.NonceSize()
		return aead.Open(nil, in[:n], in[n:], []byte(channelID))
	}

	const config = `{"transport": {"kind": "memory", "network": "hello-go"},
	                 "channelDefaults": {"rateLimitConfig": {"enabled": false}}}`
	managers := map[string]*rc.Manager{}
	for _, who := range []string{"alice", "bob"} {
		m, err := rc.New(config)
		if err != nil {
			log.Fatal(err)
		}
		defer m.Close()
		m.Events() // start queueing events before the channel opens
		if err := m.OpenChannel("general", "/hello/1/general/proto", who, ""); err != nil {
			log.Fatal(err)
		}
		if err := m.SetEncryption("", encrypt, decrypt); err != nil {
			log.Fatal(err)
		}
		managers[who] = m
	}
	alice, bob := managers["alice"], managers["bob"]

	id, err := alice.Send("general", []byte("hello, bob"), false)
	if err != nil {
		var e *rc.Error
		if errors.As(err, &e) {
			log.Fatalf("send failed with %s: %s", e.Code, e.Msg)
		}
		log.Fatal(err)
	}
	for received, delivered := false, false; !received || !delivered; {
		select {
		case e := <-bob.Events():
			if e.Kind == rc.MessageReceived {
				fmt.Printf("bob received %q from %s\n", e.Payload, e.SenderID)
				received = true
			}
		case e := <-alice.Events():
			switch e.Kind {
			case rc.MessageDelivered:
				fmt.Printf("alice's message %s was delivered\n", e.RequestID)
				delivered = e.RequestID == id
			case rc.SendError:
				log.Fatalf("send error: %s", e.Reason)
			}
		case <-time.After(30 * time.Second):
			log.Fatal("timed out")
		}
	}
}

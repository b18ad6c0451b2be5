package reliablechannel

// The Go side of the trampolines in shim.c. The library calls them on its own threads with the
// cgo.Handle integer it was given as user data.
//
// (A file with //export may only declare in its preamble: the C definitions are in shim.c.)

// #include "shim.h"
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

func goStr(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

func goBytes(p *C.uint8_t, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}

// callbackScope marks the current OS thread as running a callback of m until the returned
// function is called (a callback's goroutine stays on the library's thread until it returns).
func callbackScope(m *Manager) func() {
	prev := C.rcgo_swap_current(C.uintptr_t(m.self))
	return func() { C.rcgo_swap_current(prev) }
}

//export rcgoEvent
func rcgoEvent(ev *C.rc_event, h C.uintptr_t) {
	m := cgo.Handle(h).Value().(*Manager)
	defer callbackScope(m)()
	m.dispatch(Event{
		Kind:         EventKind(ev.kind),
		ChannelID:    goStr(ev.channel_id),
		RequestID:    goStr(ev.request_id),
		SenderID:     goStr(ev.sender_id),
		ContentTopic: goStr(ev.content_topic),
		Payload:      goBytes(ev.payload, ev.payload_len),
		Reason:       goStr(ev.error),
		Seq:          uint64(ev.seq),
	})
}

// errPanic turns a panic of a hook into an error: the hook fails (its message fails) rather
// than the panic unwinding through the library's C frames, which would crash the process.
func errPanic(what string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s panicked: %v", what, r)
	}
}

func runCrypto(f CryptoFunc, what, channelID string, in []byte) (out []byte, err error) {
	defer errPanic(what, &err)
	return f(channelID, in)
}

//export rcgoCrypt
func rcgoCrypt(h C.uintptr_t, decrypt C.int, channelID *C.char, input *C.uint8_t, inputLen C.size_t, out *C.rc_buffer) C.int {
	hooks := cgo.Handle(h).Value().(*cryptoHooks)
	defer callbackScope(hooks.m)()
	f, what := hooks.encrypt, "encrypt"
	if decrypt != 0 {
		f, what = hooks.decrypt, "decrypt"
	}
	res, err := runCrypto(f, what, goStr(channelID), goBytes(input, inputLen))
	if err != nil {
		return 1
	}
	var msg *C.char
	if err := statusErr(C.rcgo_buffer_append(out, bytesPtr(res), C.size_t(len(res)), &msg), msg); err != nil {
		return 2
	}
	return 0
}

func runTransport(f TransportFunc, id uint64, w WakuMessage) (err error) {
	defer errPanic("transport", &err)
	return f(id, w)
}

//export rcgoTransportSend
func rcgoTransportSend(h C.uintptr_t, dispatchID C.uint64_t, msg *C.rc_waku_message) C.int {
	t := cgo.Handle(h).Value().(*transportHook)
	defer callbackScope(t.m)()
	w := WakuMessage{
		ContentTopic: goStr(msg.content_topic),
		Payload:      goBytes(msg.payload, msg.payload_len),
		Meta:         goBytes(msg.meta, msg.meta_len),
		Timestamp:    int64(msg.timestamp_ns),
		Ephemeral:    bool(msg.ephemeral),
	}
	if err := runTransport(t.send, uint64(dispatchID), w); err != nil {
		return 1
	}
	return 0
}

// runRetrieve runs a store hook; a panic counts as finding nothing (the library repeats the
// request while the message is still missing) rather than unwinding through C frames.
func runRetrieve(f RetrieveFunc, contentTopic string, hashes []string) {
	defer func() { _ = recover() }()
	f(contentTopic, hashes)
}

//export rcgoTransportRetrieve
func rcgoTransportRetrieve(h C.uintptr_t, contentTopic *C.char, messageHashes **C.char, count C.size_t) {
	r := cgo.Handle(h).Value().(*retrieveHook)
	defer callbackScope(r.m)()
	var hashes []string
	if messageHashes != nil && count > 0 {
		for _, p := range unsafe.Slice(messageHashes, int(count)) {
			if p != nil {
				hashes = append(hashes, C.GoString(p))
			}
		}
	}
	runRetrieve(r.retrieve, goStr(contentTopic), hashes)
}

//export rcgoFreeHandle
func rcgoFreeHandle(h C.uintptr_t) {
	deleteHandle(cgo.Handle(h))
}

package reliablechannel

// #include "shim.h"
import "C"

import (
	"fmt"
	"unsafe"
)

// Status is a status code of the C library (rc_status). StatusOK is never returned as an error.
type Status int

// The status codes of the C ABI.
const (
	StatusOK              Status = C.RC_OK
	StatusInvalidArgument Status = C.RC_ERR_INVALID_ARGUMENT
	StatusConfig          Status = C.RC_ERR_CONFIG
	StatusChannelExists   Status = C.RC_ERR_CHANNEL_EXISTS
	StatusUnknownChannel  Status = C.RC_ERR_UNKNOWN_CHANNEL
	StatusPayloadEmpty    Status = C.RC_ERR_PAYLOAD_EMPTY
	StatusPayloadTooLarge Status = C.RC_ERR_PAYLOAD_TOO_LARGE
	StatusQueueFull       Status = C.RC_ERR_QUEUE_FULL
	StatusStopped         Status = C.RC_ERR_STOPPED
	StatusStorage         Status = C.RC_ERR_STORAGE
	StatusTransport       Status = C.RC_ERR_TRANSPORT
	StatusReentrant       Status = C.RC_ERR_REENTRANT
	StatusPanic           Status = C.RC_ERR_PANIC
)

// String is the C constant's name, e.g. "RC_ERR_QUEUE_FULL".
func (s Status) String() string {
	return C.GoString(C.rc_status_name(C.int(s)))
}

// Error is a failure reported by the library: the status code and the detail of
// rc_last_error(). Compare with the sentinels through errors.Is (the code decides):
//
//	if errors.Is(err, reliablechannel.ErrQueueFull) { retry later }
//
// or get the code with errors.As.
type Error struct {
	Code Status
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "reliablechannel: " + e.Code.String()
	}
	return fmt.Sprintf("reliablechannel: %s: %s", e.Code, e.Msg)
}

// Is reports whether target is an *Error with the same code (the message is not compared), so
// errors.Is(err, ErrUnknownChannel) works for every unknown-channel failure.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is, one per status code.
var (
	ErrInvalidArgument = &Error{Code: StatusInvalidArgument}
	ErrConfig          = &Error{Code: StatusConfig}
	ErrChannelExists   = &Error{Code: StatusChannelExists}
	ErrUnknownChannel  = &Error{Code: StatusUnknownChannel}
	ErrPayloadEmpty    = &Error{Code: StatusPayloadEmpty}
	ErrPayloadTooLarge = &Error{Code: StatusPayloadTooLarge}
	ErrQueueFull       = &Error{Code: StatusQueueFull}
	// ErrStopped: the manager is closing or closed.
	ErrStopped   = &Error{Code: StatusStopped}
	ErrStorage   = &Error{Code: StatusStorage}
	ErrTransport = &Error{Code: StatusTransport}
	// ErrReentrant: not allowed from inside a callback of this manager (Close).
	ErrReentrant = &Error{Code: StatusReentrant}
	ErrPanic     = &Error{Code: StatusPanic}
)

// statusErr turns a status and the malloc'd rc_last_error() copy from the shim into an error,
// freeing the copy.
func statusErr(st C.rc_status, msg *C.char) error {
	var text string
	if msg != nil {
		text = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	if st == C.RC_OK {
		return nil
	}
	return &Error{Code: Status(st), Msg: text}
}

package reliablechannel

// The library's log records, delivered to a Go function (rc_set_log_callback).
//
// (A file with //export may only declare in its preamble: the C definitions are in shim.c.)

// #include "shim.h"
import "C"

import (
	"runtime/cgo"
	"strconv"
	"sync"
)

// LogLevel is the severity of a log record (rc_log_level), and the maximum given to SetLogger.
type LogLevel int

// The levels, most severe first.
const (
	// LogOff: no records (as a maximum).
	LogOff LogLevel = C.RC_LOG_OFF
	// LogError: a failure the application must know (storage failed, transport down).
	LogError LogLevel = C.RC_LOG_ERROR
	// LogWarn: something given up, lost or refused (a send given up, a dependency lost, a
	// malformed, undecryptable or unmarked message dropped). Rate limited per call site.
	LogWarn LogLevel = C.RC_LOG_WARN
	// LogInfo: lifecycle (a channel opened or closed, the transport connected).
	LogInfo LogLevel = C.RC_LOG_INFO
	// LogDebug: per-message decisions.
	LogDebug LogLevel = C.RC_LOG_DEBUG
	// LogTrace: summaries of the wire bytes of each message.
	LogTrace LogLevel = C.RC_LOG_TRACE
)

func (l LogLevel) String() string {
	switch l {
	case LogOff:
		return "OFF"
	case LogError:
		return "ERROR"
	case LogWarn:
		return "WARN"
	case LogInfo:
		return "INFO"
	case LogDebug:
		return "DEBUG"
	case LogTrace:
		return "TRACE"
	}
	return "LogLevel(" + strconv.Itoa(int(l)) + ")"
}

// LogFunc receives one log record: its level, its target (the emitting module of the library,
// e.g. "reliable_channel::channel::channel") and its message.
type LogFunc func(level LogLevel, target, message string)

var (
	logMu     sync.Mutex
	logHandle cgo.Handle // the installed LogFunc; 0 when none
)

// SetLogger sends the library's log records up to maxLevel to f, for the whole process (every
// Manager), until it is replaced; nil removes it (then RC_LOG=<level> in the environment sends
// records to stderr, else they go nowhere). Logging is off until it is called. Records above
// maxLevel are not even formatted.
//
// f runs on whichever thread emitted the record (the library's runtime and event threads, or a
// goroutine inside a call of this package), possibly on several at once: it must be fast and must
// not block (a blocked f stalls the library's thread). Calls into this package from f fail with
// ErrReentrant: hand what you need to another goroutine. ERROR and WARN records are rate
// limited per call site (10 at once, then 1 per second); a record "N similar records suppressed
// (…)" counts what was dropped. A panic in f loses the record and nothing else. When SetLogger
// returns, the function it replaced is not running and is not called again.
func SetLogger(maxLevel LogLevel, f LogFunc) error {
	// Refused here, not only by the library: the SetLogger in progress that holds logMu may be
	// waiting for this very call of the log function to return.
	if inLogFunc() {
		return &Error{Code: StatusReentrant, Msg: "SetLogger from inside the log function"}
	}
	logMu.Lock()
	defer logMu.Unlock()
	var h cgo.Handle
	if f != nil {
		h = newHandle(f)
	}
	var msg *C.char
	if err := statusErr(C.rcgo_set_log_callback(C.uintptr_t(h), C.rc_log_level(maxLevel), &msg), msg); err != nil {
		if h != 0 {
			deleteHandle(h)
		}
		return err
	}
	// The library waited for the calls of the replaced function in progress: its handle can go.
	if logHandle != 0 {
		deleteHandle(logHandle)
	}
	logHandle = h
	return nil
}

// inLogFunc reports whether the calling goroutine runs inside the log function.
func inLogFunc() bool {
	return C.rcgo_current() == C.RCGO_LOG_TOKEN
}

func runLog(f LogFunc, level LogLevel, target, message string) {
	defer func() { _ = recover() }()
	f(level, target, message)
}

//export rcgoLog
func rcgoLog(h C.uintptr_t, level C.rc_log_level, target, message *C.char) {
	f := cgo.Handle(h).Value().(LogFunc)
	prev := C.rcgo_swap_current(C.RCGO_LOG_TOKEN)
	defer C.rcgo_swap_current(prev)
	runLog(f, LogLevel(level), goStr(target), goStr(message))
}

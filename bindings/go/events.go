package reliablechannel

import "sync"

// eventQueue is an unbounded FIFO between the library's event thread (push, never blocks) and
// one goroutine that forwards to out. After close, the goroutine forwards what is left, closes
// out and exits.
type eventQueue struct {
	mu     sync.Mutex
	items  []Event
	closed bool
	wake   chan struct{}
	out    chan Event
}

func newEventQueue() *eventQueue {
	q := &eventQueue{wake: make(chan struct{}, 1), out: make(chan Event)}
	go q.pump()
	return q
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, e)
	}
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) pump() {
	for {
		q.mu.Lock()
		batch, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for i := range batch {
			q.out <- batch[i]
			batch[i] = Event{}
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			close(q.out)
			return
		}
		<-q.wake
	}
}

package reliablechannel

// LiveHandles is the number of cgo handles not yet released (for the leak checks).
func LiveHandles() int64 { return liveHandles.Load() }

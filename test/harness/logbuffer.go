package harness

import (
	"bytes"
	"sync"
)

// LogBuffer is a log sink safe for concurrent writers (managers, sidecars) that tests read while they
// run: what the leak and readiness checks search.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

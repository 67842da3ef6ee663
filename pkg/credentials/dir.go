package credentials

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/utils/clock"
)

// DefaultPollInterval is how often a DirSource re-reads its directory besides watching it.
const DefaultPollInterval = 2 * time.Second

// dataLink is the symlink the kubelet's AtomicWriter swaps to publish a new generation of a volume.
const dataLink = "..data"

// maxGenerationRetries bounds how often one read starts over because ..data moved under it.
const maxGenerationRetries = 8

// DirSource reads a Secret mounted as a volume. It watches the directory (a watch on a file dies at
// the kubelet's ..data swap: kubernetes#111947) and polls it, since watches miss events on some
// filesystems. Each read resolves ..data once and reads every key from that generation, then checks
// that ..data still points there, so keys of two generations are never mixed.
//
// A directory without ..data (not a kubelet volume) is read as is, with no such guarantee.
type DirSource struct {
	dir   string
	h     *holder
	clock clock.WithTicker
	poll  time.Duration
	watch bool

	readMu sync.Mutex // one read at a time, so reads land in order
	cancel context.CancelFunc
	done   chan struct{}
}

// DirOption configures a DirSource.
type DirOption func(*DirSource)

// WithPollInterval sets how often the directory is re-read besides the watch (DefaultPollInterval).
// A value <= 0 keeps the default.
func WithPollInterval(d time.Duration) DirOption {
	return func(s *DirSource) {
		if d > 0 {
			s.poll = d
		}
	}
}

// WithDirClock injects the clock that drives polling and expiry checks (tests use a fake one).
func WithDirClock(c clock.WithTicker) DirOption { return func(s *DirSource) { s.clock = c } }

// withoutWatch makes a source poll only, as on a filesystem without change notifications.
func withoutWatch() DirOption { return func(s *DirSource) { s.watch = false } }

// NewDirSource reads dir once and then keeps it current until Close. dir must exist (an optional
// Secret volume is an empty directory: Current answers ErrNoCredential until the Secret appears).
func NewDirSource(dir string, opts ...DirOption) (*DirSource, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("credentials: %s is not a directory", dir)
	}
	s := &DirSource{dir: dir, clock: clock.RealClock{}, poll: DefaultPollInterval, watch: true, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.h = newHolder(s.clock)
	s.read()

	var w *fsnotify.Watcher
	if s.watch {
		// Without a watch (inotify instances exhausted, say) the poll still keeps the source current.
		if w, err = fsnotify.NewWatcher(); err == nil {
			if err = w.Add(dir); err != nil {
				_ = w.Close()
				w = nil
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx, w)
	return s, nil
}

func (s *DirSource) run(ctx context.Context, w *fsnotify.Watcher) {
	defer close(s.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer func() { _ = w.Close() }()
		events, errs = w.Events, w.Errors
	}
	t := s.clock.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil // the poll carries on
				continue
			}
			// Any change in the directory may be a ..data swap; a read is cheap.
			s.read()
		case _, ok := <-errs:
			if !ok {
				errs = nil
			}
		case <-t.C():
			s.read()
		}
	}
}

// Current returns the credential last read; see Source.
func (s *DirSource) Current(context.Context) (Credential, error) {
	c, err := s.h.current()
	if errors.Is(err, ErrExpired) {
		// The watch or the poll may not have caught up yet: look once more before giving up.
		return s.Refresh(context.Background())
	}
	return c, err
}

// Refresh re-reads the directory now and returns what Current then returns.
func (s *DirSource) Refresh(context.Context) (Credential, error) {
	s.read()
	return s.h.current()
}

// WaitNewer waits for a credential whose Version differs from version; see Source.
func (s *DirSource) WaitNewer(ctx context.Context, version string) (Credential, error) {
	s.read()
	return s.h.waitNewer(ctx, version)
}

// Close stops the watch and the poll.
func (s *DirSource) Close() error {
	s.cancel()
	<-s.done
	s.h.close()
	return nil
}

func (s *DirSource) read() {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	data, err := readGeneration(s.dir)
	if err != nil {
		s.h.fail(err)
		return
	}
	c, err := parse(data)
	if err != nil {
		s.h.fail(err)
		return
	}
	s.h.set(c)
}

// readGeneration reads the keys of one ..data generation of dir.
func readGeneration(dir string) (map[string][]byte, error) {
	link := filepath.Join(dir, dataLink)
	for range maxGenerationRetries {
		target, err := os.Readlink(link)
		if errors.Is(err, fs.ErrNotExist) {
			return readKeys(dir) // not a kubelet volume
		}
		if err != nil {
			return nil, fmt.Errorf("credentials: reading %s: %w", dataLink, err)
		}
		gen := target
		if !filepath.IsAbs(gen) {
			gen = filepath.Join(dir, gen)
		}
		data, err := readKeys(gen)
		again, lerr := os.Readlink(link)
		if err == nil && lerr == nil && again == target {
			return data, nil
		}
		// ..data moved while we read (the old generation may already be gone): start over.
	}
	return nil, fmt.Errorf("credentials: %s kept changing during %d reads", dataLink, maxGenerationRetries)
}

// readKeys reads the keys a credential needs from dir; an absent key is left out.
func readKeys(dir string) (map[string][]byte, error) {
	data := map[string][]byte{}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(dir, k))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("credentials: reading key %s: %w", k, err)
		}
		data[k] = b
	}
	return data, nil
}

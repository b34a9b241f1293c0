package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/backendtest"
)

// transientErr is a failure IsTransient retries.
type transientErr struct{}

func (transientErr) Error() string   { return "connection dropped" }
func (transientErr) Temporary() bool { return true }

// script is a Backend whose calls fail as told, then pass to a mem store.
type script struct {
	backend.Backend
	mu    sync.Mutex
	fails map[string][]error // per op, consumed in order
	calls map[string]int
	// saveThenFail stores the object and then fails (a lost answer).
	saveThenFail int
	// loadCut is the number of loads that deliver half the data and then
	// fail.
	loadCut int
}

func newScript() *script {
	return &script{Backend: backend.OpenMem(), fails: map[string][]error{}, calls: map[string]int{}}
}

func (s *script) next(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	if len(s.fails[op]) == 0 {
		return nil
	}
	err := s.fails[op][0]
	s.fails[op] = s.fails[op][1:]
	return err
}

func (s *script) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *script) Save(ctx context.Context, key string, data []byte) error {
	if err := s.next("save"); err != nil {
		return err
	}
	s.mu.Lock()
	lose := s.saveThenFail > 0
	s.saveThenFail--
	s.mu.Unlock()
	if err := s.Backend.Save(ctx, key, data); err != nil || !lose {
		return err
	}
	return fmt.Errorf("save %s: %w", key, transientErr{})
}

func (s *script) Load(ctx context.Context, key string, off, n int64, fn func(io.Reader) error) error {
	if err := s.next("load"); err != nil {
		return err
	}
	s.mu.Lock()
	cut := s.loadCut > 0
	s.loadCut--
	s.mu.Unlock()
	return s.Backend.Load(ctx, key, off, n, func(r io.Reader) error {
		if !cut {
			return fn(r)
		}
		data, _ := io.ReadAll(r)
		return fn(io.MultiReader(bytes.NewReader(data[:len(data)/2]), &failReader{transientErr{}}))
	})
}

func (s *script) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := s.next("stat"); err != nil {
		return backend.ObjectInfo{}, err
	}
	return s.Backend.Stat(ctx, key)
}

func (s *script) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	if err := s.next("list"); err != nil {
		return err
	}
	return s.Backend.List(ctx, prefix, fn)
}

func (s *script) Remove(ctx context.Context, key string) error {
	if err := s.next("remove"); err != nil {
		return err
	}
	return s.Backend.Remove(ctx, key)
}

type failReader struct{ err error }

func (f *failReader) Read([]byte) (int, error) { return 0, f.err }

// waits records the backoff waits instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func retryOn(be backend.Backend, w *waits) backend.Backend {
	return backend.Retry(be, backend.RetryOptions{Sleep: w.sleep})
}

func TestRetrySuiteMem(t *testing.T) {
	backendtest.RunSuite(t, func(t *testing.T) backend.Backend {
		return backend.Retry(backend.OpenMem(), backend.RetryOptions{})
	})
}

func TestRetryTransientThenSuccess(t *testing.T) {
	ctx := t.Context()
	s := newScript()
	s.fails["save"] = []error{transientErr{}, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	s.fails["stat"] = []error{fmt.Errorf("stat: %w", io.ErrUnexpectedEOF)}
	s.fails["list"] = []error{syscall.ECONNRESET}
	s.fails["remove"] = []error{transientErr{}}
	var w waits
	b := retryOn(s, &w)
	if err := b.Save(ctx, "data/a", []byte("hello")); err != nil {
		t.Fatalf("save: %v", err)
	}
	if got := s.count("save"); got != 3 {
		t.Errorf("save tried %d times, want 3", got)
	}
	if fi, err := b.Stat(ctx, "data/a"); err != nil || fi.Size != 5 {
		t.Errorf("stat: %+v, %v", fi, err)
	}
	n := 0
	if err := b.List(ctx, "data/", func(backend.ObjectInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("list: %d objects, %v", n, err)
	}
	if err := b.Remove(ctx, "data/a"); err != nil {
		t.Errorf("remove: %v", err)
	}
	if len(w.d) != 5 {
		t.Errorf("%d waits, want 5", len(w.d))
	}
}

func TestRetryPermanentNotRetried(t *testing.T) {
	ctx := t.Context()
	for _, perm := range []error{
		backend.ErrNotFound, backend.ErrExists, backend.ErrNoSpace, context.Canceled,
		errors.New("invalid range"), syscall.ENOSPC, httpStatus(403),
	} {
		s := newScript()
		s.fails["save"] = []error{fmt.Errorf("save x: %w", perm)}
		var w waits
		err := retryOn(s, &w).Save(ctx, "data/x", []byte("x"))
		if !errors.Is(err, perm) || s.count("save") != 1 || len(w.d) != 0 {
			t.Errorf("%v: err %v after %d tries, %d waits; want it once, unretried", perm, err, s.count("save"), len(w.d))
		}
	}
	// Invalid keys never reach the store.
	s := newScript()
	if err := retryOn(s, &waits{}).Save(ctx, "../x", nil); err == nil || s.count("save") != 0 {
		t.Errorf("invalid key: %v after %d calls", err, s.count("save"))
	}
	// Attempts run out.
	s = newScript()
	s.fails["stat"] = []error{transientErr{}, transientErr{}, transientErr{}, transientErr{}, transientErr{}, transientErr{}}
	if _, err := retryOn(s, &waits{}).Stat(ctx, "data/x"); !errors.As(err, new(transientErr)) || s.count("stat") != 5 {
		t.Errorf("stat: %v after %d tries, want the transient error after 5", err, s.count("stat"))
	}
	// A cancelled context stops the retries.
	s = newScript()
	s.fails["stat"] = []error{transientErr{}, transientErr{}}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := retryOn(s, &waits{}).Stat(cctx, "data/x"); !errors.Is(err, context.Canceled) || s.count("stat") != 1 {
		t.Errorf("cancelled: %v after %d tries", err, s.count("stat"))
	}
}

type httpStatus int

func (h httpStatus) Error() string       { return fmt.Sprintf("http %d", int(h)) }
func (h httpStatus) HTTPStatusCode() int { return int(h) }

func TestIsTransient(t *testing.T) {
	for err, want := range map[error]bool{
		transientErr{}:                          true,
		httpStatus(503):                         true,
		httpStatus(429):                         true,
		httpStatus(404):                         false,
		httpStatus(401):                         false,
		fmt.Errorf("x: %w", syscall.ECONNRESET): true,
		io.ErrUnexpectedEOF:                     true,
		&net.OpError{Op: "read", Err: errors.New("boom")}:        true,
		errors.New("decode failed"):                              false,
		backend.ErrNotFound:                                      false,
		fmt.Errorf("%w: %w", backend.ErrNoSpace, transientErr{}): false,
	} {
		if got := backend.IsTransient(err); got != want {
			t.Errorf("IsTransient(%v) = %v, want %v", err, got, want)
		}
	}
}

// A Save whose answer was lost is retried, meets ErrExists, and finds its
// own object: success. A different object under the key stays ErrExists.
func TestRetrySaveExistsAfterAmbiguous(t *testing.T) {
	ctx := t.Context()
	s := newScript()
	s.saveThenFail = 1
	var w waits
	b := retryOn(s, &w)
	if err := b.Save(ctx, "data/a", []byte("content")); err != nil {
		t.Fatalf("ambiguous save: %v", err)
	}
	if s.count("save") != 2 {
		t.Errorf("save tried %d times, want 2", s.count("save"))
	}
	if got, _ := backend.LoadAll(ctx, s, "data/a"); string(got) != "content" {
		t.Errorf("stored %q", got)
	}
	// First try: ErrExists is the answer.
	if err := b.Save(ctx, "data/a", []byte("content")); !errors.Is(err, backend.ErrExists) {
		t.Errorf("plain duplicate save: %v, want ErrExists", err)
	}
	// Someone else's object under the key after an ambiguous failure.
	if err := s.Backend.Save(ctx, "data/b", []byte("theirs!")); err != nil {
		t.Fatal(err)
	}
	s.fails["save"] = []error{transientErr{}}
	if err := b.Save(ctx, "data/b", []byte("ours!!!")); !errors.Is(err, backend.ErrExists) {
		t.Errorf("save over a different object: %v, want ErrExists", err)
	}
}

// A load that breaks off half-way restarts cleanly: the callback, which
// resets what it read, ends with exactly the object.
func TestRetryLoadRestart(t *testing.T) {
	ctx := t.Context()
	s := newScript()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if err := s.Backend.Save(ctx, "data/big", data); err != nil {
		t.Fatal(err)
	}
	s.loadCut = 2
	s.fails["load"] = []error{transientErr{}}
	b := retryOn(s, &waits{})
	calls := 0
	got, err := func() ([]byte, error) {
		var buf []byte
		err := b.Load(ctx, "data/big", 100, 5000, func(r io.Reader) error {
			calls++
			buf = buf[:0]
			var err error
			buf, err = io.ReadAll(r)
			return err
		})
		return buf, err
	}()
	if err != nil || !bytes.Equal(got, data[100:5100]) {
		t.Fatalf("load: %d bytes, %v", len(got), err)
	}
	if calls != 3 || s.count("load") != 4 {
		t.Errorf("fn called %d times over %d loads, want 3 over 4", calls, s.count("load"))
	}
	// fn's own error is final.
	s.loadCut = 0
	own := errors.New("bad content")
	n := s.count("load")
	if err := b.Load(ctx, "data/big", 0, 0, func(io.Reader) error { return own }); !errors.Is(err, own) || s.count("load") != n+1 {
		t.Errorf("fn error: %v after %d loads, want it after 1", err, s.count("load")-n)
	}
}

// A stalled try times out and is retried.
func TestRetryAttemptTimeout(t *testing.T) {
	s := &stallOnce{Backend: backend.OpenMem()}
	b := backend.Retry(s, backend.RetryOptions{AttemptTimeout: 50 * time.Millisecond, Sleep: (&waits{}).sleep})
	start := time.Now()
	if err := b.Save(t.Context(), "data/a", []byte("x")); err != nil {
		t.Fatalf("save: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

type stallOnce struct {
	backend.Backend
	once sync.Once
}

func (s *stallOnce) Save(ctx context.Context, key string, data []byte) error {
	stalled := false
	s.once.Do(func() { stalled = true; <-ctx.Done() })
	if stalled {
		return ctx.Err()
	}
	return s.Backend.Save(ctx, key, data)
}

func TestRetryBackoffBounds(t *testing.T) {
	o := backend.RetryOptions{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt, ceil := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 6: 3200 * time.Millisecond, 7: 5 * time.Second, 40: 5 * time.Second} {
		if got := o.Backoff(attempt, 0); got != 0 {
			t.Errorf("attempt %d, jitter 0: %v", attempt, got)
		}
		if got := o.Backoff(attempt, 0.999999); got > ceil || got < ceil*99/100 {
			t.Errorf("attempt %d: max wait %v, want just under %v", attempt, got, ceil)
		}
	}
	// Waits actually used stay within the ceilings.
	s := newScript()
	s.fails["stat"] = []error{transientErr{}, transientErr{}, transientErr{}, transientErr{}}
	var w waits
	_, _ = backend.Retry(s, backend.RetryOptions{Sleep: w.sleep}).Stat(t.Context(), "data/x")
	if len(w.d) != 4 {
		t.Fatalf("%d waits, want 4", len(w.d))
	}
	for i, d := range w.d {
		if ceil := backend.DefaultRetryBase << i; d < 0 || d >= ceil {
			t.Errorf("wait %d = %v, want in [0, %v)", i+1, d, ceil)
		}
	}
}

func TestRetryProperties(t *testing.T) {
	b := backend.Retry(backend.OpenMem(), backend.RetryOptions{})
	if backend.Connections(b, 99) != 4 || backend.Location(b) != "mem://" {
		t.Errorf("properties: %d %q", backend.Connections(b, 99), backend.Location(b))
	}
}

package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"gocloud.dev/gcerrors"
)

// RetryOptions tunes Retry. The zero value gives the defaults.
type RetryOptions struct {
	// Attempts is the number of tries per call, the first included
	// (default 5).
	Attempts int
	// Base is the backoff ceiling before the second try; it doubles with
	// every further try (default 100 ms).
	Base time.Duration
	// Max caps the backoff ceiling (default 5 s).
	Max time.Duration
	// AttemptTimeout, if positive, bounds each try, so a stalled connection
	// becomes a retryable failure instead of a hang. It bounds the Load
	// callback too, so leave it 0 for loads whose consumer may be slow.
	AttemptTimeout time.Duration
	// Transient decides which errors are worth another try (default
	// IsTransient). Permanent errors (ErrNotFound, ErrExists, ErrNoSpace,
	// cancellation of the caller's context) are never retried, whatever it
	// says.
	Transient func(error) bool
	// Sleep waits d or until ctx is done (default: a timer). Tests inject
	// one that records the waits.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) (default math/rand/v2.Float64).
	Jitter func() float64
	// OnRetry, if set, is told about every failed try that will be retried.
	OnRetry func(op, key string, attempt int, err error, wait time.Duration)
}

// Retry defaults.
const (
	DefaultRetryAttempts = 5
	DefaultRetryBase     = 100 * time.Millisecond
	DefaultRetryMax      = 5 * time.Second
)

// Retry wraps be so that calls failing with a transient error (a dropped
// connection, a timeout, a 5xx or throttling answer) are tried again with
// exponential backoff and full jitter: before try n+1 it waits a random
// time in [0, min(Max, Base·2^(n-1))).
//
// Save is create-only, so a retry after an ambiguous failure (the first try
// may have stored the object and lost the answer) can meet ErrExists. Retry
// then compares the stored object with data (bytes up to 4 MiB, size above;
// keys are content hashes) and reports success if they match.
//
// Load restarts a retried read from its start and calls fn again, as the
// Backend contract allows (fn must be idempotent); an error that fn returns
// on its own, rather than one from reading, is never retried.
//
// Properties pass through.
func Retry(be Backend, opts RetryOptions) Backend {
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultRetryAttempts
	}
	if opts.Base <= 0 {
		opts.Base = DefaultRetryBase
	}
	if opts.Max <= 0 {
		opts.Max = DefaultRetryMax
	}
	if opts.Transient == nil {
		opts.Transient = IsTransient
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	return &retryBackend{be: be, opts: opts}
}

type retryBackend struct {
	be   Backend
	opts RetryOptions
}

var (
	_ Backend    = (*retryBackend)(nil)
	_ Properties = (*retryBackend)(nil)
)

// compareLimit is the largest object an ambiguous Save compares byte for
// byte; above it, equal size is taken as equal content.
const compareLimit = 4 << 20

// Backoff returns the full-jitter wait before try attempt+1 (attempt ≥ 1),
// given a jitter value in [0, 1).
func (o RetryOptions) Backoff(attempt int, jitter float64) time.Duration {
	ceil := o.Base
	for i := 1; i < attempt && ceil < o.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, o.Max)
	return time.Duration(jitter * float64(ceil))
}

// do runs try until it succeeds, fails permanently or runs out of tries.
// try reports whether its error may be retried (false for errors that are
// not the store's, such as a Load callback's own).
func (b *retryBackend) do(ctx context.Context, op, key string, try func(ctx context.Context, attempt int) (retryable bool, err error)) error {
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if b.opts.AttemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, b.opts.AttemptTimeout)
		}
		var retryable bool
		retryable, err = try(actx, attempt)
		cancel()
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil && retryable && !errors.Is(err, cerr) {
			return fmt.Errorf("%w (%w)", err, cerr)
		}
		if !retryable || attempt >= b.opts.Attempts || !b.transient(ctx, err) {
			break
		}
		wait := b.opts.Backoff(attempt, b.opts.Jitter())
		if b.opts.OnRetry != nil {
			b.opts.OnRetry(op, key, attempt, err, wait)
		}
		if serr := b.opts.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (retrying after: %v)", serr, err)
		}
	}
	return err
}

// transient reports whether err, from a try under ctx, may go away.
func (b *retryBackend) transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil || isPermanent(err) {
		return false
	}
	// A try that ran into its own AttemptTimeout stalled: retry it.
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return b.opts.Transient(err)
}

// isPermanent: errors no retry can fix.
func isPermanent(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) || errors.Is(err, ErrNoSpace) ||
		errors.Is(err, context.Canceled) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// IsTransient reports whether err looks like a failure that may go away on
// its own: a network error (reset, refused, timeout, unexpected EOF), an
// HTTP 408, 429 or 5xx answer, a gocloud Internal,
// ResourceExhausted (throttling) or DeadlineExceeded error, or any error
// with a Temporary() true method in its chain (injected faults). Everything
// else is permanent, notably ErrNotFound, ErrExists, ErrNoSpace,
// cancellation, authentication and permission errors, invalid keys and
// out-of-range reads.
func IsTransient(err error) bool {
	if err == nil || isPermanent(err) {
		return false
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		switch c := status.HTTPStatusCode(); {
		case c == 401 || c == 403:
			return false
		case c == 408 || c == 429 || c >= 500:
			return true
		}
	}
	switch gcerrors.Code(err) {
	case gcerrors.PermissionDenied, gcerrors.InvalidArgument, gcerrors.Unimplemented, gcerrors.FailedPrecondition, gcerrors.Canceled:
		return false
	case gcerrors.Internal, gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Save retries, and turns ErrExists after an ambiguous failed try into
// success when the stored object is ours.
func (b *retryBackend) Save(ctx context.Context, key string, data []byte) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	return b.do(ctx, "save", key, func(ctx context.Context, attempt int) (bool, error) {
		err := b.be.Save(ctx, key, data)
		if attempt > 1 && errors.Is(err, ErrExists) && b.holds(ctx, key, data) {
			return false, nil
		}
		return true, err
	})
}

// holds reports whether key holds data (bytes up to compareLimit, size
// beyond).
func (b *retryBackend) holds(ctx context.Context, key string, data []byte) bool {
	if len(data) > compareLimit {
		fi, err := b.be.Stat(ctx, key)
		return err == nil && fi.Size == int64(len(data))
	}
	stored, err := LoadAll(ctx, b.be, key)
	return err == nil && bytes.Equal(stored, data)
}

// Load retries failed opens and failed reads; see Retry.
func (b *retryBackend) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	return b.do(ctx, "load", key, func(ctx context.Context, _ int) (bool, error) {
		var rd *errReader
		called := false
		err := b.be.Load(ctx, key, offset, length, func(r io.Reader) error {
			called = true
			rd = &errReader{r: r}
			return fn(rd)
		})
		if err == nil || !called {
			return true, err
		}
		// fn ran: retry only if reading failed (fn's own errors are final).
		return rd.err != nil, err
	})
}

// errReader remembers the first read error other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// Stat retries.
func (b *retryBackend) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := validKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	var fi ObjectInfo
	err := b.do(ctx, "stat", key, func(ctx context.Context, _ int) (bool, error) {
		var err error
		fi, err = b.be.Stat(ctx, key)
		return true, err
	})
	return fi, err
}

// List retries a failed listing; objects already reported to fn are not
// reported again.
func (b *retryBackend) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validPrefix(prefix); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	var seen map[string]struct{}
	return b.do(ctx, "list", prefix, func(ctx context.Context, attempt int) (bool, error) {
		fnFailed := false
		err := b.be.List(ctx, prefix, func(fi ObjectInfo) error {
			if _, dup := seen[fi.Key]; dup {
				return nil
			}
			if seen == nil {
				seen = map[string]struct{}{}
			}
			seen[fi.Key] = struct{}{}
			if err := fn(fi); err != nil {
				fnFailed = true
				return err
			}
			return nil
		})
		return !fnFailed, err
	})
}

// Remove retries. ErrNotFound on a retry may mean that an earlier try
// removed the object and lost the answer; it is reported as it is, since
// the key may as well never have existed (callers removing an object
// treat ErrNotFound as gone).
func (b *retryBackend) Remove(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	return b.do(ctx, "remove", key, func(ctx context.Context, _ int) (bool, error) {
		return true, b.be.Remove(ctx, key)
	})
}

// Unwrap returns the wrapped store.
func (b *retryBackend) Unwrap() Backend { return b.be }

// Close closes the wrapped store.
func (b *retryBackend) Close() error { return b.be.Close() }

// Connections passes through.
func (b *retryBackend) Connections() int { return Connections(b.be, 0) }

// Location passes through.
func (b *retryBackend) Location() string { return Location(b.be) }

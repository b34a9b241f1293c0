package mirror

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/strata-backup/strata/backend"
)

// limiter is a token bucket shared by every transfer in one direction:
// rate bytes per second, with a burst of one second's worth (at least
// limiterChunk). Waiting reserves tokens ahead, so concurrent transfers
// share the rate instead of each taking it.
type limiter struct {
	rate  float64
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// limiterChunk is the largest single reservation: a big object is paced in
// pieces rather than waited for in one long sleep.
const limiterChunk = 64 << 10

func newLimiter(bytesPerSecond int64) *limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := max(float64(bytesPerSecond), limiterChunk)
	return &limiter{rate: float64(bytesPerSecond), burst: burst, tokens: burst, last: time.Now()}
}

// wait blocks until n bytes may pass (nil limiter: at once).
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		c := min(n, limiterChunk)
		n -= c
		l.mu.Lock()
		now := time.Now()
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		l.tokens -= float64(c)
		var d time.Duration
		if l.tokens < 0 {
			d = time.Duration(-l.tokens / l.rate * float64(time.Second))
		}
		l.mu.Unlock()
		if d <= 0 {
			continue
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}

// limitedBackend paces Save (uploads) and Load (downloads) through token
// buckets; everything else passes through.
type limitedBackend struct {
	backend.Backend
	up, down *limiter
}

var (
	_ backend.Backend    = (*limitedBackend)(nil)
	_ backend.Properties = (*limitedBackend)(nil)
)

// limit wraps be with upload and download limits in bytes per second (0:
// unlimited); with neither it returns be itself.
func limit(be backend.Backend, up, down int64) backend.Backend {
	if up <= 0 && down <= 0 {
		return be
	}
	return &limitedBackend{Backend: be, up: newLimiter(up), down: newLimiter(down)}
}

func (b *limitedBackend) Save(ctx context.Context, key string, data []byte) error {
	if err := b.up.wait(ctx, len(data)); err != nil {
		return err
	}
	return b.Backend.Save(ctx, key, data)
}

func (b *limitedBackend) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if b.down == nil {
		return b.Backend.Load(ctx, key, offset, length, fn)
	}
	return b.Backend.Load(ctx, key, offset, length, func(r io.Reader) error {
		return fn(&limitedReader{ctx: ctx, r: r, l: b.down})
	})
}

func (b *limitedBackend) Connections() int { return backend.Connections(b.Backend, 0) }
func (b *limitedBackend) Location() string { return backend.Location(b.Backend) }

type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *limiter
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if len(p) > limiterChunk {
		p = p[:limiterChunk]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.l.wait(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

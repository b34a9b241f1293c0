// Package fault wraps a backend.Backend with injected failures: a store
// that fills up (Full), one that drops or stalls calls and can be cut off
// and healed (Flaky), and one that returns damaged bytes (BitFlip). A TCP
// Proxy does the same to a network store from outside the process.
//
// Tests and `strata drill` use the same wrappers. In their healthy state
// they pass every call through unchanged and satisfy the backend contract
// (backendtest.RunSuite); Properties pass through.
package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-backup/strata/backend"
)

// ErrInjected is wrapped by every failure this package makes up, so tests
// can tell injected faults from real ones.
var ErrInjected = errors.New("injected fault")

// Error is an injected transient failure: a dropped call, a stall that ran
// out its time, or a call made while the store was cut off. Its Temporary
// method reports true, so backend.IsTransient retries it.
type Error struct {
	Op   string // "save", "load", "list", "stat" or "remove"
	Key  string // key or list prefix
	Kind string // "dropped", "stalled", "cut off"
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s: %v", e.Op, e.Key, e.Kind, ErrInjected)
}

// Unwrap returns ErrInjected.
func (e *Error) Unwrap() error { return ErrInjected }

// Temporary reports true: the fault may go away.
func (e *Error) Temporary() bool { return true }

// passthrough forwards Properties and Close; the wrappers embed it.
type passthrough struct{ be backend.Backend }

func (p passthrough) Close() error            { return p.be.Close() }
func (p passthrough) Connections() int        { return backend.Connections(p.be, 1) }
func (p passthrough) Location() string        { return backend.Location(p.be) }
func (p passthrough) Unwrap() backend.Backend { return p.be }

// ---- Full ----

// FullStore is a store that runs out of space; see Full.
type FullStore struct {
	passthrough
	mu    sync.Mutex
	limit int64
	used  int64
}

var (
	_ backend.Backend    = (*FullStore)(nil)
	_ backend.Properties = (*FullStore)(nil)
)

// Full wraps be so that it runs out of space once limit bytes have been
// saved through it. A Save that does not fit fails with an error wrapping
// backend.ErrNoSpace and stores nothing; a failed Save costs no space.
// Removes do not give space back. Reads, listings and removes are
// unaffected.
func Full(be backend.Backend, limit int64) *FullStore {
	return &FullStore{passthrough: passthrough{be}, limit: limit}
}

// SetLimit changes the limit (bytes saved through the store so far count
// against it); a negative limit means unlimited.
func (f *FullStore) SetLimit(limit int64) {
	f.mu.Lock()
	f.limit = limit
	f.mu.Unlock()
}

// Used is the number of bytes saved through the store.
func (f *FullStore) Used() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used
}

// Save stores data if it fits in what is left.
func (f *FullStore) Save(ctx context.Context, key string, data []byte) error {
	n := int64(len(data))
	f.mu.Lock()
	if f.limit >= 0 && f.used+n > f.limit {
		used, limit := f.used, f.limit
		f.mu.Unlock()
		return fmt.Errorf("save %s: %w (%d of %d bytes used, %w)", key, backend.ErrNoSpace, used, limit, ErrInjected)
	}
	f.used += n // reserve, so concurrent saves cannot overshoot
	f.mu.Unlock()
	err := f.be.Save(ctx, key, data)
	if err != nil {
		f.mu.Lock()
		f.used -= n
		f.mu.Unlock()
	}
	return err
}

// Load passes through.
func (f *FullStore) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	return f.be.Load(ctx, key, offset, length, fn)
}

// Stat passes through.
func (f *FullStore) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	return f.be.Stat(ctx, key)
}

// List passes through.
func (f *FullStore) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	return f.be.List(ctx, prefix, fn)
}

// Remove passes through.
func (f *FullStore) Remove(ctx context.Context, key string) error { return f.be.Remove(ctx, key) }

// ---- Flaky ----

// Op is a set of Backend methods.
type Op uint8

// The methods a FlakyStore can disturb.
const (
	OpSave Op = 1 << iota
	OpLoad
	OpList
	OpStat
	OpRemove
	AllOps = OpSave | OpLoad | OpList | OpStat | OpRemove
)

// Fault is what a FlakyStore does to one call.
type Fault uint8

// Faults.
const (
	Pass  Fault = iota // call through
	Drop               // fail with an *Error
	Stall              // wait FlakyOptions.Stall (or until the context ends), then fail
)

// FlakyOptions chooses which calls a FlakyStore disturbs and how.
type FlakyOptions struct {
	// Ops are the methods affected (default AllOps).
	Ops Op
	// KeyPrefix, if set, limits the faults to keys (or list prefixes)
	// starting with it.
	KeyPrefix string
	// Sequence gives the fault for each affected call in order; once it
	// is used up, DropRate and StallRate decide.
	Sequence []Fault
	// DropRate and StallRate are the fractions of affected calls dropped
	// and stalled.
	DropRate, StallRate float64
	// Stall is how long a stalled call waits before failing; 0 means until
	// its context is done.
	Stall time.Duration
	// Ambiguous makes dropped Saves and Removes fail after the wrapped
	// store carried them out (the answer is lost), and dropped Loads fail
	// half-way through the data.
	Ambiguous bool
	// Seed makes the random choices repeatable.
	Seed uint64
	// OnCall, if set, is called at the start of every call, before the
	// store decides its fault: a test or drill can Cut the store at a
	// chosen moment (the call that triggers the cut fails).
	OnCall func(op Op, key string)
}

// FlakyStore drops and stalls calls; see Flaky.
type FlakyStore struct {
	passthrough
	opts   FlakyOptions
	cut    atomic.Bool
	mu     sync.Mutex
	rnd    *rand.Rand
	seq    int
	calls  atomic.Int64
	faults atomic.Int64
}

var (
	_ backend.Backend    = (*FlakyStore)(nil)
	_ backend.Properties = (*FlakyStore)(nil)
)

// Flaky wraps be so that the calls chosen by opts fail. Cut makes every
// call fail, and reads in progress break off, until Heal (a partition).
// With the zero FlakyOptions the store is healthy until cut.
func Flaky(be backend.Backend, opts FlakyOptions) *FlakyStore {
	if opts.Ops == 0 {
		opts.Ops = AllOps
	}
	return &FlakyStore{
		passthrough: passthrough{be},
		opts:        opts,
		rnd:         rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
	}
}

// Cut makes every call fail until Heal.
func (f *FlakyStore) Cut() { f.cut.Store(true) }

// Heal ends a Cut.
func (f *FlakyStore) Heal() { f.cut.Store(false) }

// IsCut reports whether the store is cut off.
func (f *FlakyStore) IsCut() bool { return f.cut.Load() }

// Calls is the number of calls made; Faults the number that were disturbed
// (cut-off calls included).
func (f *FlakyStore) Calls() int64  { return f.calls.Load() }
func (f *FlakyStore) Faults() int64 { return f.faults.Load() }

// decide picks the fault for one call.
func (f *FlakyStore) decide(op Op, key string) Fault {
	f.calls.Add(1)
	if f.opts.OnCall != nil {
		f.opts.OnCall(op, key)
	}
	if f.cut.Load() {
		f.faults.Add(1)
		return Drop
	}
	if f.opts.Ops&op == 0 || len(key) < len(f.opts.KeyPrefix) || key[:len(f.opts.KeyPrefix)] != f.opts.KeyPrefix {
		return Pass
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fault := Pass
	if f.seq < len(f.opts.Sequence) {
		fault = f.opts.Sequence[f.seq]
		f.seq++
	} else if f.opts.DropRate > 0 || f.opts.StallRate > 0 {
		switch x := f.rnd.Float64(); {
		case x < f.opts.DropRate:
			fault = Drop
		case x < f.opts.DropRate+f.opts.StallRate:
			fault = Stall
		}
	}
	if fault != Pass {
		f.faults.Add(1)
	}
	return fault
}

// fail carries out a Drop or a Stall.
func (f *FlakyStore) fail(ctx context.Context, fault Fault, op, key string) error {
	if f.cut.Load() {
		return &Error{Op: op, Key: key, Kind: "cut off"}
	}
	if fault == Stall {
		var timeout <-chan time.Time
		if f.opts.Stall > 0 {
			t := time.NewTimer(f.opts.Stall)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: stalled (%v): %w", op, key, ErrInjected, ctx.Err())
		case <-timeout:
			return &Error{Op: op, Key: key, Kind: "stalled"}
		}
	}
	return &Error{Op: op, Key: key, Kind: "dropped"}
}

// Save fails before (or, if Ambiguous, after) saving.
func (f *FlakyStore) Save(ctx context.Context, key string, data []byte) error {
	fault := f.decide(OpSave, key)
	if fault == Drop && f.opts.Ambiguous && !f.cut.Load() {
		if err := f.be.Save(ctx, key, data); err != nil {
			return err
		}
		return f.fail(ctx, fault, "save", key)
	}
	if fault != Pass {
		return f.fail(ctx, fault, "save", key)
	}
	return f.be.Save(ctx, key, data)
}

// Load fails before reading, or half-way if Ambiguous; a Cut breaks off
// reads in progress.
func (f *FlakyStore) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	fault := f.decide(OpLoad, key)
	half := fault == Drop && f.opts.Ambiguous && !f.cut.Load()
	if fault != Pass && !half {
		return f.fail(ctx, fault, "load", key)
	}
	return f.be.Load(ctx, key, offset, length, func(r io.Reader) error {
		cr := &cutReader{f: f, r: r, key: key, limit: -1}
		if half {
			// Read the data here to know where half-way is.
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			cr.r, cr.limit = bytes.NewReader(data), int64(len(data)/2)
		}
		return fn(cr)
	})
}

// cutReader breaks off when the store is cut, or after limit bytes.
type cutReader struct {
	f     *FlakyStore
	r     io.Reader
	key   string
	limit int64 // -1: none
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.f.cut.Load() {
		return 0, &Error{Op: "load", Key: c.key, Kind: "cut off"}
	}
	if c.limit == 0 {
		return 0, &Error{Op: "load", Key: c.key, Kind: "dropped"}
	}
	if c.limit > 0 && int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.r.Read(p)
	if c.limit > 0 {
		c.limit -= int64(n)
	}
	return n, err
}

// Stat fails or passes through.
func (f *FlakyStore) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if fault := f.decide(OpStat, key); fault != Pass {
		return backend.ObjectInfo{}, f.fail(ctx, fault, "stat", key)
	}
	return f.be.Stat(ctx, key)
}

// List fails before listing; a Cut breaks off a listing in progress.
func (f *FlakyStore) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	if fault := f.decide(OpList, prefix); fault != Pass {
		return f.fail(ctx, fault, "list", prefix)
	}
	return f.be.List(ctx, prefix, func(fi backend.ObjectInfo) error {
		if f.cut.Load() {
			return &Error{Op: "list", Key: prefix, Kind: "cut off"}
		}
		return fn(fi)
	})
}

// Remove fails before (or, if Ambiguous, after) removing.
func (f *FlakyStore) Remove(ctx context.Context, key string) error {
	fault := f.decide(OpRemove, key)
	if fault == Drop && f.opts.Ambiguous && !f.cut.Load() {
		if err := f.be.Remove(ctx, key); err != nil {
			return err
		}
		return f.fail(ctx, fault, "remove", key)
	}
	if fault != Pass {
		return f.fail(ctx, fault, "remove", key)
	}
	return f.be.Remove(ctx, key)
}

// ---- BitFlip ----

// BitFlipOptions chooses the objects a BitFlipStore damages.
type BitFlipOptions struct {
	// Keys are damaged on every load.
	Keys []string
	// Match, if set, chooses further keys to damage.
	Match func(key string) bool
	// Rate is the fraction of all other keys damaged, chosen by a hash of
	// the key and Seed, so a damaged object stays damaged on every load.
	Rate float64
	// Seed varies which keys Rate picks and which bit flips.
	Seed uint64
}

// BitFlipStore returns damaged bytes; see BitFlip.
type BitFlipStore struct {
	passthrough
	opts    BitFlipOptions
	keys    map[string]bool
	mu      sync.Mutex
	flipped map[string]bool
}

var (
	_ backend.Backend    = (*BitFlipStore)(nil)
	_ backend.Properties = (*BitFlipStore)(nil)
)

// BitFlip wraps be so that chosen objects read back with one bit flipped,
// as if damaged at rest: each has one bad bit at a fixed position (chosen by
// the key and seed), which every load whose range covers it sees. The stored
// objects are untouched, and Stat and List report them as they are.
func BitFlip(be backend.Backend, opts BitFlipOptions) *BitFlipStore {
	keys := make(map[string]bool, len(opts.Keys))
	for _, k := range opts.Keys {
		keys[k] = true
	}
	return &BitFlipStore{passthrough: passthrough{be}, opts: opts, keys: keys, flipped: map[string]bool{}}
}

// Flipped returns the keys that were read back damaged so far.
func (b *BitFlipStore) Flipped() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.flipped))
	for k := range b.flipped {
		out = append(out, k)
	}
	return out
}

func (b *BitFlipStore) hash(key string) uint64 {
	h := fnv.New64a()
	var seed [8]byte
	for i := range seed {
		seed[i] = byte(b.opts.Seed >> (8 * i))
	}
	h.Write(seed[:])
	h.Write([]byte(key))
	// FNV mixes its last bytes poorly into the high bits: finish with
	// splitmix64's mixer.
	x := h.Sum64()
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Damaged reports whether key reads back damaged.
func (b *BitFlipStore) Damaged(key string) bool {
	if b.keys[key] || (b.opts.Match != nil && b.opts.Match(key)) {
		return true
	}
	return b.opts.Rate > 0 && float64(b.hash(key)>>11)/float64(1<<53) < b.opts.Rate
}

// Load flips the object's bad bit if the range covers it.
func (b *BitFlipStore) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if !b.Damaged(key) {
		return b.be.Load(ctx, key, offset, length, fn)
	}
	fi, err := b.be.Stat(ctx, key)
	if err != nil {
		return b.be.Load(ctx, key, offset, length, fn) // let the store explain
	}
	return b.be.Load(ctx, key, offset, length, func(r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if fi.Size > 0 {
			h := b.hash(key)
			bit := int64(h % uint64(fi.Size*8))
			if pos := bit/8 - offset; pos >= 0 && pos < int64(len(data)) {
				data[pos] ^= 1 << (bit % 8)
				b.mu.Lock()
				b.flipped[key] = true
				b.mu.Unlock()
			}
		}
		return fn(bytes.NewReader(data))
	})
}

// Save passes through.
func (b *BitFlipStore) Save(ctx context.Context, key string, data []byte) error {
	return b.be.Save(ctx, key, data)
}

// Stat passes through.
func (b *BitFlipStore) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	return b.be.Stat(ctx, key)
}

// List passes through.
func (b *BitFlipStore) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	return b.be.List(ctx, prefix, fn)
}

// Remove passes through.
func (b *BitFlipStore) Remove(ctx context.Context, key string) error { return b.be.Remove(ctx, key) }

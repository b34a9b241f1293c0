// Package mirror keeps byte-identical replicas of a repository on other
// stores (SPEC sections 6 and 8).
//
// # Basics
//
// New pairs an open repository (the primary) with the store of a mirror.
// (*Mirror).Plan lists both sides and decides everything: which objects to
// copy and in which order, which heartbeats to replace, and which removals
// named by deletion records are due on the mirror. (*Plan).Execute copies and
// deletes; (*Mirror).Run does both; (*Plan).Status says how far behind the
// mirror is without changing anything. A mirror is a repository like any
// other: restore, verify and timeline open it with the primary's password.
//
// # Copy order
//
// Objects are copied in phases; a phase is complete and durable before the
// next one starts, so a mirror interrupted at any moment holds nothing whose
// dependencies it lacks:
//
//	keys, config   a new mirror gets the key files, then the config (as init --from-repo)
//	data/          packs
//	index/         index objects, which name packs
//	oplog/         sealed log segments, then each generation's newest heartbeat
//	snapshots/     which need packs, index objects and, for a cut, the log
//	deletions/, policy/, verifications/, drills/
//
// The primary is listed in the reverse order (drills/ first, keys last), so
// that every object listed has what it depends on in a later listing.
// Leases (locks/) are never mirrored, and keys that are not objects of the
// repository layout are left alone and reported.
//
// # Deletions
//
// Nothing is deleted on a mirror because the primary lacks it: a wiped
// primary never wipes its mirrors. A key is removed from the mirror only when
// a deletion record of the primary names it under "removed" (marks are not
// removals), the primary no longer holds it, the run copied everything it
// planned (so everything written before the record is on the mirror), and the
// record is older than the delete delay. The delay counts from the record's
// time, or from when the mirror received the record if that is later, so a
// record with a backdated time cannot skip it. The one exception is
// heartbeats, which, like leases, their writer replaces without a record:
// once a generation's newest heartbeat is on the mirror, the mirror's older
// heartbeats of that generation are removed.
//
// # Caveats
//
// Every object is verified before it is written: its bytes must hash to the
// id in its name (the config must authenticate). An object that does not is
// reported and not copied; it does not hold up other copies, but deletions
// wait until a run has copied everything. Objects pass through memory whole
// (Options.MemoryLimit bounds how much is held at once).
package mirror

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
)

// DefaultDeleteDelay is how old a deletion record must be before mirrors
// follow it: long enough that one mistaken or malicious run cannot wipe
// every copy before someone notices.
const DefaultDeleteDelay = 7 * 24 * time.Hour

// DefaultMemoryLimit bounds the bytes of objects in flight at once.
const DefaultMemoryLimit = 256 << 20

// ErrIncomplete means a run did not copy every object it planned to; the
// mirror is consistent but behind, and deletions were not applied.
var ErrIncomplete = errors.New("is incomplete")

// Options tune a Mirror. The zero value is usable.
type Options struct {
	// DeleteDelay is how old a deletion record must be before the mirror
	// follows it. 0 means DefaultDeleteDelay; negative means no delay.
	DeleteDelay time.Duration
	// Now is the clock that judges delays and lag (default time.Now).
	Now func() time.Time
	// Loaders and Savers bound concurrent loads from the primary and saves
	// to the mirror (default: each store's Connections).
	Loaders, Savers int
	// MemoryLimit bounds the bytes of objects held at once (default
	// DefaultMemoryLimit); a larger object is copied alone.
	MemoryLimit int64
	// UploadLimit and DownloadLimit cap the bytes per second written to the
	// mirror and read from the primary (0: unlimited).
	UploadLimit, DownloadLimit int64
	// Progress is told totals, copies and problems (default: nothing).
	Progress Progress
}

// Progress receives a run's progress. Implementations must be safe for
// concurrent use.
type Progress interface {
	// SetTotal announces what the run will copy.
	SetTotal(bytes, objects int64)
	// Add reports bytes and whole objects copied.
	Add(bytes, objects int64)
	// Warn reports a problem with one object that did not stop the run.
	Warn(key string, err error)
}

// NoProgress is the silent Progress.
type NoProgress struct{}

func (NoProgress) SetTotal(int64, int64) {}
func (NoProgress) Add(int64, int64)      {}
func (NoProgress) Warn(string, error)    {}

// Mirror replicates one repository to one store. It keeps what it learnt
// about immutable objects (deletion records, heartbeat times) between runs,
// so repeated runs (--watch) read each only once. Runs must not overlap.
type Mirror struct {
	src   *repo.Repository
	srcBE backend.Backend // the primary's store, rate-limited for copies
	dst   backend.Backend // the mirror's store, rate-limited
	opts  Options

	records    map[chunk.ID]*repo.Deletion
	heartbeats map[string]time.Time
}

// New returns a Mirror copying src to dst. It does not touch either store.
func New(src *repo.Repository, dst backend.Backend, opts Options) *Mirror {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DeleteDelay == 0 {
		opts.DeleteDelay = DefaultDeleteDelay
	}
	if opts.MemoryLimit <= 0 {
		opts.MemoryLimit = DefaultMemoryLimit
	}
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	return &Mirror{
		src:        src,
		srcBE:      limit(src.Backend(), 0, opts.DownloadLimit),
		dst:        limit(dst, opts.UploadLimit, 0),
		opts:       opts,
		records:    map[chunk.ID]*repo.Deletion{},
		heartbeats: map[string]time.Time{},
	}
}

// SetProgress replaces the Progress of later passes (nil: none).
func (m *Mirror) SetProgress(p Progress) {
	if p == nil {
		p = NoProgress{}
	}
	m.opts.Progress = p
}

// Run plans and executes one pass: afterwards the mirror holds every object
// the primary held when the pass listed it (but leases), and follows every
// deletion record that was due.
func (m *Mirror) Run(ctx context.Context) (*Result, error) {
	p, err := m.Plan(ctx)
	if err != nil {
		return nil, err
	}
	return p.Execute(ctx)
}

// Result is what one pass did.
type Result struct {
	// Initialized: the mirror was empty and got the keys and config first.
	Initialized bool
	// CopiedObjects and CopiedBytes count what was written to the mirror.
	CopiedObjects int
	CopiedBytes   int64
	// PresentObjects were on the mirror already.
	PresentObjects int
	// VanishedObjects were removed from the primary between the listing and
	// the copy (by a recorded deletion, or a replaced heartbeat).
	VanishedObjects int
	// DeletedObjects were removed from the mirror: due deletion-record
	// removals and replaced heartbeats.
	DeletedObjects int
	// PendingDeletions are removals named by deletion records that the
	// mirror still holds (delayed, held back, or refused by the store).
	PendingDeletions int
	// Failed lists the objects that could not be copied.
	Failed []Failure
	// Ignored lists keys of the primary that are not objects of the
	// repository layout; they are not copied.
	Ignored []string
	// Duration is the wall time of the pass (listing included).
	Duration time.Duration
}

// Failure is one object that could not be copied.
type Failure struct {
	Key string
	Err error
}

// delay returns the effective delete delay (0 for none).
func (m *Mirror) delay() time.Duration {
	if m.opts.DeleteDelay < 0 {
		return 0
	}
	return m.opts.DeleteDelay
}

// Execute copies the missing objects phase by phase, replaces heartbeats and
// applies the due removals. Execute a Plan once: its listings are stale
// afterwards. On error the Result still says what was done. Damage on the
// primary (an object that does not match its name) is reported in
// Result.Failed and the other objects are copied; any other failure (either
// store failing, an interrupt) cancels the phase, and no later phase starts.
// Removals are applied only when every object was copied.
func (p *Plan) Execute(ctx context.Context) (*Result, error) {
	m := p.m
	res := &Result{Initialized: p.initialize, PresentObjects: p.present, Ignored: p.ignored}
	defer func() { res.Duration = time.Since(p.started) }()
	objects, size := p.Missing()
	m.opts.Progress.SetTotal(size, int64(objects))
	for _, ph := range p.phases {
		if len(ph.objs) == 0 {
			continue
		}
		if err := m.copyPhase(ctx, ph, res); err != nil {
			res.PendingDeletions = len(p.removals)
			return res, fmt.Errorf("mirror to %s: copy %s: %w", backend.Location(m.dst), ph.name, err)
		}
	}
	if len(res.Failed) > 0 {
		res.PendingDeletions = len(p.removals)
		f := res.Failed[0]
		return res, fmt.Errorf("mirror %s %w: %d objects not copied, deletions held back (first: %s: %w)",
			backend.Location(m.dst), ErrIncomplete, len(res.Failed), f.Key, f.Err)
	}
	// Heartbeats: the newer one is durable on the mirror now.
	for _, key := range p.staleHeartbeats {
		if err := m.dst.Remove(ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
			if ctx.Err() != nil {
				return res, fmt.Errorf("mirror to %s: %w", backend.Location(m.dst), ctx.Err())
			}
			m.opts.Progress.Warn(key, fmt.Errorf("remove replaced heartbeat: %w", err))
			continue
		}
		res.DeletedObjects++
	}
	now := m.opts.Now()
	for i, rm := range p.removals {
		if rm.due.After(now) {
			res.PendingDeletions++
			continue
		}
		err := m.dst.Remove(ctx, rm.key)
		switch {
		case err == nil:
			res.DeletedObjects++
		case errors.Is(err, backend.ErrNotFound):
		case ctx.Err() != nil:
			res.PendingDeletions += len(p.removals) - i
			return res, fmt.Errorf("mirror to %s: %w", backend.Location(m.dst), ctx.Err())
		default:
			// An object under retention (Object Lock) or a store that
			// refuses deletes: the mirror keeps more than the primary,
			// which is safe. The next run tries again.
			res.PendingDeletions++
			m.opts.Progress.Warn(rm.key, fmt.Errorf("remove (named by deletion record %s): %w", rm.record.Short(), err))
		}
	}
	return res, nil
}

// loaded is an object read from the primary and verified, on its way to
// the mirror.
type loaded struct {
	fi     backend.ObjectInfo
	data   []byte
	weight int64
}

// copyPhase copies one phase's objects: loaders read and verify them from
// the primary, savers write them to the mirror, with the bytes in between
// bounded by MemoryLimit. Damage on the primary is recorded and skipped;
// any other failure cancels the phase.
func (m *Mirror) copyPhase(ctx context.Context, ph phase, res *Result) error {
	var mu sync.Mutex // guards res
	fail := func(key string, err error) {
		mu.Lock()
		res.Failed = append(res.Failed, Failure{Key: key, Err: err})
		mu.Unlock()
		m.opts.Progress.Warn(key, err)
	}
	mem := semaphore.NewWeighted(m.opts.MemoryLimit)
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan backend.ObjectInfo)
	out := make(chan loaded)
	loaders := m.opts.Loaders
	if loaders <= 0 {
		loaders = backend.Connections(m.srcBE, 4)
	}
	savers := m.opts.Savers
	if savers <= 0 {
		savers = backend.Connections(m.dst, 4)
	}
	// Log segments land one at a time in key order, which is lsn order
	// within a generation: an interrupted copy leaves each generation's
	// chain shorter, never with a hole. After a corrupt segment the rest of
	// its generation waits (copying it would make a hole).
	broken := map[uint64]string{}
	if ph.name == phaseOplog {
		loaders, savers = 1, 1
	}

	g.Go(func() error {
		defer close(jobs)
		for _, fi := range ph.objs {
			select {
			case jobs <- fi:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var lwg sync.WaitGroup
	for range loaders {
		lwg.Add(1)
		g.Go(func() error {
			defer lwg.Done()
			for fi := range jobs {
				var gen uint64
				if ph.name == phaseOplog {
					seg, _ := oplog.ParseSegmentKey(fi.Key)
					gen = seg.Generation
					if bad, ok := broken[gen]; ok {
						fail(fi.Key, fmt.Errorf("not copied: it follows %s, which is corrupt, in the log chain: %w", bad, repo.ErrCorrupt))
						continue
					}
				}
				w := min(max(fi.Size, 1), m.opts.MemoryLimit)
				if err := mem.Acquire(gctx, w); err != nil {
					return err
				}
				data, err := m.load(gctx, fi.Key)
				switch {
				case errors.Is(err, backend.ErrNotFound) && gctx.Err() == nil:
					mem.Release(w)
					mu.Lock()
					res.VanishedObjects++
					mu.Unlock()
					continue
				case errors.Is(err, repo.ErrCorrupt):
					mem.Release(w)
					fail(fi.Key, err)
					if ph.name == phaseOplog {
						broken[gen] = fi.Key // one loader: no race
					}
					continue
				case err != nil:
					mem.Release(w)
					if gctx.Err() == nil {
						fail(fi.Key, err)
					}
					return err
				}
				select {
				case out <- loaded{fi: fi, data: data, weight: w}:
				case <-gctx.Done():
					mem.Release(w)
					return gctx.Err()
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		lwg.Wait()
		close(out)
		return nil
	})
	for range savers {
		g.Go(func() error {
			for l := range out {
				err := m.dst.Save(gctx, l.fi.Key, l.data)
				mem.Release(l.weight)
				switch {
				case err == nil:
					mu.Lock()
					res.CopiedObjects++
					res.CopiedBytes += int64(len(l.data))
					mu.Unlock()
					m.opts.Progress.Add(int64(len(l.data)), 1)
				case errors.Is(err, backend.ErrExists):
					// Content-addressed: the same name holds the same bytes.
					// Only the config has a fixed name; re-check it.
					if l.fi.Key == repo.ConfigKey {
						if replica, cerr := m.src.CheckReplica(gctx, m.dst); cerr != nil || !replica {
							err = errors.Join(err, cerr)
							fail(l.fi.Key, err)
							return err
						}
					}
					mu.Lock()
					res.PresentObjects++
					mu.Unlock()
					m.opts.Progress.Add(int64(len(l.data)), 1)
				default:
					if gctx.Err() == nil {
						fail(l.fi.Key, err)
					}
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// load reads one object from the primary and checks that its bytes are
// what its name says (errors wrapping repo.ErrCorrupt when not).
func (m *Mirror) load(ctx context.Context, key string) ([]byte, error) {
	data, err := backend.LoadAll(ctx, m.srcBE, key)
	if err != nil {
		return nil, err
	}
	if err := m.verify(key, data); err != nil {
		return nil, err
	}
	return data, nil
}

// verify checks stored bytes against their key: content-addressed objects
// must hash to the id in their name, the config must authenticate.
func (m *Mirror) verify(key string, data []byte) error {
	k, ok := classify(key)
	switch {
	case !ok:
		return errors.New("not an object of the repository layout")
	case key == repo.ConfigKey:
		if err := m.src.OpenConfig(data); err != nil {
			return fmt.Errorf("the primary's config does not authenticate, not copied: %w", err)
		}
	case chunk.ObjectID(data) != k.id:
		return fmt.Errorf("the primary's stored bytes do not hash to the name, not copied: %w", repo.ErrCorrupt)
	}
	return nil
}

// sortObjects orders a phase by key, so runs are reproducible.
func sortObjects(objs []backend.ObjectInfo) {
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
}

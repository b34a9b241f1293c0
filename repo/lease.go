package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/strata-backup/strata/chunk"
)

// ErrLocked means a conflicting lease is alive.
var ErrLocked = errors.New("repository is locked")

// DefaultLeaseTTL is how long a lease lives without renewal. A process that
// dies leaves a lease that simply expires: no stale lock to clear by hand.
const DefaultLeaseTTL = 5 * time.Minute

// Lease kinds.
const (
	LeaseBackup = "backup" // shared: any number of writers add objects at once
	LeasePrune  = "prune"  // exclusive among prunes
	LeaseOplog  = "oplog"  // exclusive among pushes to one log (Scope names it)
)

// LeaseInfo is the plaintext of locks/<id>.
type LeaseInfo struct {
	Kind      string    `json:"kind"`
	Scope     string    `json:"scope,omitempty"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Expires   time.Time `json:"expires"`
}

// Alive reports whether the lease has not expired at now.
func (l LeaseInfo) Alive(now time.Time) bool { return now.Before(l.Expires) }

// Lease is a held lease, renewed in the background until Release.
type Lease struct {
	r    *Repository
	info LeaseInfo
	ttl  time.Duration

	mu     sync.Mutex
	id     chunk.ID
	err    error // the last renewal failure
	stop   chan struct{}
	done   chan struct{}
	expiry time.Time
}

// AcquireLease takes a lease of kind (and scope). An exclusive lease fails
// with ErrLocked while another live lease of the same kind and scope exists;
// a shared one never conflicts.
func (r *Repository) AcquireLease(ctx context.Context, kind, scope string, exclusive bool, ttl time.Duration) (*Lease, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	host, _ := os.Hostname()
	now := time.Now().UTC()
	l := &Lease{r: r, ttl: ttl, stop: make(chan struct{}), done: make(chan struct{}),
		info: LeaseInfo{Kind: kind, Scope: scope, Exclusive: exclusive, Hostname: host, PID: os.Getpid(), Started: now}}
	if err := l.write(ctx); err != nil {
		return nil, err
	}
	if exclusive {
		// Write first, then look: two racing exclusive takers both see
		// each other and the later-started one backs off.
		others, err := r.Leases(ctx)
		if err != nil {
			l.remove(ctx)
			return nil, err
		}
		for id, o := range others {
			if id == l.id || o.Kind != kind || o.Scope != scope || !o.Alive(time.Now()) || deadHere(o) {
				continue
			}
			if o.Started.Before(l.info.Started) || (o.Started.Equal(l.info.Started) && id.String() < l.id.String()) {
				l.remove(ctx)
				return nil, fmt.Errorf("acquire %s lease: held by %s pid %d since %s until %s: %w",
					kind, o.Hostname, o.PID, o.Started.Format(time.RFC3339), o.Expires.Format(time.RFC3339), ErrLocked)
			}
		}
	}
	go l.renew()
	return l, nil
}

func (l *Lease) write(ctx context.Context) error {
	l.info.Expires = time.Now().UTC().Add(l.ttl)
	id, _, err := l.r.SaveJSON(ctx, PrefixLocks, l.info)
	if err != nil {
		return fmt.Errorf("write %s lease: %w", l.info.Kind, err)
	}
	l.mu.Lock()
	old := l.id
	l.id, l.expiry = id, l.info.Expires
	l.mu.Unlock()
	if !old.IsNull() {
		_ = l.r.be.Remove(ctx, ObjectKey(PrefixLocks, old))
	}
	return nil
}

func (l *Lease) remove(ctx context.Context) {
	l.mu.Lock()
	id := l.id
	l.mu.Unlock()
	_ = l.r.be.Remove(ctx, ObjectKey(PrefixLocks, id))
}

// renew writes a fresh lock object every third of the TTL (a new object,
// then removal of the old one: objects are never rewritten in place).
func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
			err := l.write(ctx)
			cancel()
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
		}
	}
}

// Valid reports an error if the lease may have expired (renewal failing
// past its expiry). Long operations check it before committing.
func (l *Lease) Valid() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().After(l.expiry) {
		return fmt.Errorf("%s lease expired at %s (last renewal: %v)", l.info.Kind, l.expiry.Format(time.RFC3339), l.err)
	}
	return nil
}

// Info returns the lease as stored.
func (l *Lease) Info() LeaseInfo { return l.info }

// Release stops renewal and removes the lease.
func (l *Lease) Release(ctx context.Context) {
	close(l.stop)
	<-l.done
	l.remove(ctx)
}

// Leases returns every readable lease in the repository by id. Leases that
// cannot be read (a concurrent removal) are skipped.
func (r *Repository) Leases(ctx context.Context) (map[chunk.ID]LeaseInfo, error) {
	out := make(map[chunk.ID]LeaseInfo)
	var ids []chunk.ID
	if err := r.List(ctx, PrefixLocks, func(id chunk.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	for _, id := range ids {
		var li LeaseInfo
		if err := r.LoadJSON(ctx, PrefixLocks, id, &li); err != nil {
			continue
		}
		out[id] = li
	}
	return out, nil
}

// deadHere reports whether a lease was taken on this host by a process
// that no longer runs (as restic judges its stale locks): a push killed
// with kill -9 then does not block its own restart until the lease
// expires. A lease of another host is judged by its expiry alone.
func deadHere(o LeaseInfo) bool {
	host, err := os.Hostname()
	if err != nil || o.Hostname != host || o.PID <= 0 || o.PID == os.Getpid() {
		return false
	}
	return !processAlive(o.PID)
}

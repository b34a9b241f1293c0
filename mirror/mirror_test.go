package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/oplog/oplogtest"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
)

func TestMirrorReplicates(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	dst := backend.OpenMem()
	res := run(t, p, dst, mirror.Options{})
	assertReplica(t, p.be, dst)
	want := len(contents(t, p.be))
	if !res.Initialized || res.CopiedObjects != want || res.PresentObjects != 0 || len(res.Failed) != 0 {
		t.Errorf("first run: %+v, want %d objects copied into an initialised mirror", res, want)
	}
	if len(res.Ignored) != 1 || res.Ignored[0] != "data/zz/not-an-object" {
		t.Errorf("ignored %v, want the stray key", res.Ignored)
	}
	if ks := listKeys(t, dst, "locks/"); len(ks) != 0 {
		t.Errorf("leases mirrored: %v", ks)
	}
	m := repotest.Open(t, dst)
	if m.Config().ID != p.r.Config().ID {
		t.Errorf("mirror id %s, primary %s", m.Config().ID, p.r.Config().ID)
	}
	mustCheck(t, m)
	if n := restoreAll(t, m, p.src); n != 2 {
		t.Errorf("%d snapshots on the mirror", n)
	}

	// Idempotent: a second run copies nothing.
	res = run(t, p, dst, mirror.Options{})
	if res.Initialized || res.CopiedObjects != 0 || res.PresentObjects != want || res.DeletedObjects != 0 {
		t.Errorf("second run: %+v", res)
	}
	// A new backup: only the difference travels.
	p.backup()
	res = run(t, p, dst, mirror.Options{})
	if res.CopiedObjects == 0 || res.CopiedObjects > 4 {
		t.Errorf("after one more backup: %+v", res)
	}
	assertReplica(t, p.be, dst)
}

// savingBackend records the order of saves and, once armed, fails every
// save after the first n: a store that goes away mid-run.
type savingBackend struct {
	backend.Backend
	mu    sync.Mutex
	order []string
	limit int // -1: never fail
}

func (b *savingBackend) Save(ctx context.Context, key string, data []byte) error {
	b.mu.Lock()
	if b.limit >= 0 && len(b.order) >= b.limit {
		b.mu.Unlock()
		return errors.New("injected: the mirror's store went away")
	}
	b.order = append(b.order, key)
	b.mu.Unlock()
	return b.Backend.Save(ctx, key, data)
}

// phaseRank is the copy order the package documents.
func phaseRank(key string) int {
	switch {
	case strings.HasPrefix(key, "keys/"):
		return 0
	case key == "config":
		return 1
	case strings.HasPrefix(key, "data/"):
		return 2
	case strings.HasPrefix(key, "index/"):
		return 3
	case strings.Contains(key, "/heartbeats/"):
		return 5
	case strings.HasPrefix(key, "oplog/"):
		return 4
	case strings.HasPrefix(key, "snapshots/"):
		return 6
	case strings.HasPrefix(key, "deletions/"):
		return 7
	}
	return 8
}

// TestMirrorInterrupted kills the mirror's store after every possible
// number of saves: whatever the mirror holds then is a consistent
// repository whose snapshots all restore, and the next run completes it.
func TestMirrorInterrupted(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	full := &savingBackend{Backend: backend.OpenMem(), limit: -1}
	run(t, p, full, mirror.Options{})
	for i := 1; i < len(full.order); i++ {
		if phaseRank(full.order[i]) < phaseRank(full.order[i-1]) {
			t.Errorf("copy order: %s after %s", full.order[i], full.order[i-1])
		}
	}
	total := len(full.order)
	for n := 0; n < total; n++ {
		t.Run(fmt.Sprintf("after %d of %d saves", n, total), func(t *testing.T) {
			dst := &savingBackend{Backend: backend.OpenMem(), limit: n}
			res, err := mirror.New(p.r, dst, mirror.Options{Savers: 3}).Run(context.Background())
			if err == nil || len(res.Failed) == 0 || res.DeletedObjects != 0 {
				t.Fatalf("interrupted run: %+v, %v", res, err)
			}
			if _, err := dst.Stat(context.Background(), "config"); err == nil {
				m := repotest.Open(t, dst)
				mustCheck(t, m)
				restoreAll(t, m, "")
			}
			dst.limit = -1
			res, err = mirror.New(p.r, dst, mirror.Options{}).Run(context.Background())
			if err != nil || res.CopiedObjects+res.PresentObjects != len(contents(t, p.be)) {
				t.Fatalf("resumed run: %+v, %v", res, err)
			}
			assertReplica(t, p.be, dst)
		})
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// remove deletes keys from the primary the way prune and forget do: the
// record first, then the objects.
func (p *primary) remove(kind string, when time.Time, keys ...string) {
	p.t.Helper()
	if _, err := p.r.SaveDeletion(p.ctx, repo.Deletion{Kind: kind, Time: when, Reason: "test", Removed: keys}); err != nil {
		p.t.Fatal(err)
	}
	for _, k := range keys {
		if err := p.be.Remove(p.ctx, k); err != nil {
			p.t.Fatal(err)
		}
	}
}

func TestMirrorDeleteDelay(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	dst := backend.OpenMem()
	c := &clock{t: time.Now()}
	opts := mirror.Options{Now: c.now}
	run(t, p, dst, opts)

	old := p.keys("snapshots/")[0]
	p.remove(repo.DeletionForget, c.now(), old)
	// A record naming a key the primary still holds is not followed.
	kept := p.keys("index/")[0]
	if _, err := p.r.SaveDeletion(p.ctx, repo.Deletion{Kind: repo.DeletionPruneDelete, Reason: "bogus", Removed: []string{kept, "config"}}); err != nil {
		t.Fatal(err)
	}
	// A backdated record waits the delay from when the mirror got it.
	seg := p.segs[0]
	p.remove(repo.DeletionOplogCompaction, c.now().Add(-30*24*time.Hour), seg)

	res := run(t, p, dst, opts)
	if res.DeletedObjects != 0 || res.PendingDeletions != 2 {
		t.Fatalf("before the delay: %+v", res)
	}
	st := status(t, p, dst, opts)
	if st.PendingDeletions != 2 || st.DueDeletions != 0 || st.NextDeletion == nil || st.MissingObjects != 0 {
		t.Errorf("status before the delay: %+v", st)
	}
	c.add(6 * 24 * time.Hour)
	if res := run(t, p, dst, opts); res.DeletedObjects != 0 || res.PendingDeletions != 2 {
		t.Fatalf("after 6 days: %+v", res)
	}
	c.add(25 * time.Hour)
	if st := status(t, p, dst, opts); st.DueDeletions != 2 || st.PendingDeletions != 2 {
		t.Errorf("status after the delay: %+v", st)
	}
	res = run(t, p, dst, opts)
	if res.DeletedObjects != 2 || res.PendingDeletions != 0 {
		t.Fatalf("after 7 days: %+v", res)
	}
	for _, k := range []string{old, seg} {
		if _, err := dst.Stat(p.ctx, k); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s still on the mirror: %v", k, err)
		}
	}
	for _, k := range []string{kept, "config", p.keys("data/")[0]} {
		if _, err := dst.Stat(p.ctx, k); err != nil {
			t.Errorf("%s removed from the mirror: %v", k, err)
		}
	}
	assertReplica(t, p.be, dst)

	// --delete-delay 0 follows at once.
	snap := p.keys("snapshots/")[0]
	p.remove(repo.DeletionForget, time.Time{}, snap)
	if res := run(t, p, dst, mirror.Options{DeleteDelay: -1}); res.DeletedObjects != 1 {
		t.Errorf("no delay: %+v", res)
	}
	assertReplica(t, p.be, dst)
}

func status(t *testing.T, p *primary, dst backend.Backend, opts mirror.Options) mirror.Status {
	t.Helper()
	plan, err := mirror.New(p.r, dst, opts).Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return plan.Status()
}

// TestMirrorWipedPrimary: objects that vanish from the primary without a
// record never vanish from the mirror.
func TestMirrorWipedPrimary(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	dst := backend.OpenMem()
	run(t, p, dst, mirror.Options{DeleteDelay: -1})
	before := contents(t, dst)
	var wiped int
	for _, k := range p.keys("") {
		if k == "config" || strings.HasPrefix(k, "keys/") || strings.HasPrefix(k, "locks/") {
			continue
		}
		if err := p.be.Remove(p.ctx, k); err != nil {
			t.Fatal(err)
		}
		wiped++
	}
	st := status(t, p, dst, mirror.Options{DeleteDelay: -1})
	if st.ExtraObjects != wiped-1 || st.MissingObjects != 0 || st.PendingDeletions != 0 { // the stray was never mirrored
		t.Errorf("status of a wiped primary's mirror: %+v (wiped %d)", st, wiped)
	}
	res := run(t, p, dst, mirror.Options{DeleteDelay: -1})
	if res.DeletedObjects != 0 || res.CopiedObjects != 0 {
		t.Errorf("mirror of a wiped primary: %+v", res)
	}
	after := contents(t, dst)
	if len(after) != len(before) {
		t.Fatalf("the mirror lost objects: %d, had %d", len(after), len(before))
	}
	restoreAll(t, repotest.Open(t, dst), "")
}

func TestMirrorRefusesOtherRepository(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	other := backend.OpenMem()
	repotest.NewOn(t, other)
	before := contents(t, other)
	_, err := mirror.New(p.r, other, mirror.Options{}).Run(context.Background())
	if !errors.Is(err, repo.ErrOtherRepository) || !strings.Contains(err.Error(), "holds another repository") {
		t.Fatalf("mirror into another repository: %v", err)
	}
	if after := contents(t, other); len(after) != len(before) {
		t.Errorf("the other repository changed: %d objects, had %d", len(after), len(before))
	}

	// Objects but no config: not a mirror of ours either.
	junk := backend.OpenMem()
	if err := junk.Save(context.Background(), "data/ab/something", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.New(p.r, junk, mirror.Options{}).Run(context.Background()); !errors.Is(err, repo.ErrNotEmpty) {
		t.Fatalf("mirror into a non-empty store: %v", err)
	}
}

// TestMirrorCorruptSource: an object whose bytes do not match its name is
// reported and not copied (nor the log segments after it); the others are;
// deletions wait until a run copies everything.
func TestMirrorCorruptSource(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	dst := backend.OpenMem()
	run(t, p, dst, mirror.Options{DeleteDelay: -1})

	packsBefore := map[string]bool{}
	for _, k := range p.keys("data/") {
		packsBefore[k] = true
	}
	repotest.WriteFile(t, filepath.Join(p.src, "new.bin"), repotest.RandomBytes(300<<10, 2))
	newSnap := p.backup()
	var bad string
	for _, k := range p.keys("data/") {
		if !packsBefore[k] {
			bad = k
		}
	}
	corrupt(t, p.be, bad)
	p.segs = append(p.segs, oplogtest.Segments(t, p.r, 1, 3, 2, 10, false)...)
	corrupt(t, p.be, p.segs[4])
	gone := repo.ObjectKey(repo.PrefixSnapshots, p.snaps[0])
	p.remove(repo.DeletionForget, time.Time{}, gone)

	res, err := mirror.New(p.r, dst, mirror.Options{DeleteDelay: -1}).Run(context.Background())
	if !errors.Is(err, mirror.ErrIncomplete) || !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("mirror of a damaged primary: %v", err)
	}
	failed := map[string]bool{}
	for _, f := range res.Failed {
		failed[f.Key] = true
	}
	if !failed[bad] || !failed[p.segs[4]] || !failed[p.segs[5]] || len(res.Failed) != 3 {
		t.Errorf("failures %v, want %s, %s and the segment after it", res.Failed, bad, p.segs[4])
	}
	for k := range failed {
		if _, err := dst.Stat(p.ctx, k); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s copied: %v", k, err)
		}
	}
	for _, k := range []string{p.segs[3], repo.ObjectKey(repo.PrefixSnapshots, newSnap)} {
		if _, err := dst.Stat(p.ctx, k); err != nil {
			t.Errorf("%s not copied: %v", k, err)
		}
	}
	if _, err := dst.Stat(p.ctx, gone); err != nil || res.DeletedObjects != 0 || res.PendingDeletions != 1 {
		t.Errorf("a deletion was applied by an incomplete run: %+v, %v", res, err)
	}
}

// corrupt flips a byte of key in place (a mem or local store).
func corrupt(t *testing.T, be backend.Backend, key string) {
	t.Helper()
	ctx := context.Background()
	b, err := backend.LoadAll(ctx, be, key)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := be.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, key, b); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorHeartbeats: the newest heartbeat travels, and replaces the
// mirror's older ones; a primary without heartbeats removes none.
func TestMirrorHeartbeats(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	dst := backend.OpenMem()
	run(t, p, dst, mirror.Options{})
	first := p.keys("oplog/0000000001/heartbeats/")
	if len(first) != 1 {
		t.Fatalf("heartbeats %v", first)
	}
	// The writer replaces its heartbeat: write the new one, remove the old.
	second, err := oplog.WriteHeartbeat(p.ctx, p.r, 1, oplog.Heartbeat{Time: time.Now().Add(time.Minute), LastLSN: 9})
	if err != nil {
		t.Fatal(err)
	}
	if err := oplog.RemoveHeartbeat(p.ctx, p.r, first[0]); err != nil {
		t.Fatal(err)
	}
	res := run(t, p, dst, mirror.Options{})
	if res.CopiedObjects != 1 || res.DeletedObjects != 1 {
		t.Errorf("heartbeat replaced: %+v", res)
	}
	if got := listKeys(t, dst, "oplog/0000000001/heartbeats/"); len(got) != 1 || got[0] != second {
		t.Errorf("mirror heartbeats %v, want [%s]", got, second)
	}
	m := repotest.Open(t, dst)
	hb, err := oplog.LatestHeartbeat(p.ctx, m, 1)
	if err != nil || hb == nil || hb.LastLSN != 9 {
		t.Errorf("heartbeat on the mirror: %+v, %v", hb, err)
	}
	// Two heartbeats on the primary (mid-replacement): only the newest goes.
	third, err := oplog.WriteHeartbeat(p.ctx, p.r, 1, oplog.Heartbeat{Time: time.Now().Add(2 * time.Minute), LastLSN: 9})
	if err != nil {
		t.Fatal(err)
	}
	run(t, p, dst, mirror.Options{})
	if got := listKeys(t, dst, "oplog/0000000001/heartbeats/"); len(got) != 2 || !contains(got, third) {
		t.Errorf("mirror heartbeats %v, want %s and %s", got, second, third)
	}
	// The primary loses its heartbeats: the mirror keeps its own.
	for _, k := range p.keys("oplog/0000000001/heartbeats/") {
		if err := p.be.Remove(p.ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if res := run(t, p, dst, mirror.Options{}); res.DeletedObjects != 0 {
		t.Errorf("heartbeats removed without a newer one: %+v", res)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestMirrorLocal mirrors a local repository to a local directory and
// restores from the mirror alone.
func TestMirrorLocal(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := t.TempDir(), filepath.Join(t.TempDir(), "mirror")
	be, err := backend.Create(ctx, srcDir)
	if err != nil {
		t.Fatal(err)
	}
	p := newPrimary(t, be)
	dst, err := backend.Create(ctx, dstDir)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	res := run(t, p, dst, mirror.Options{Now: c.now})
	if len(res.Failed) != 0 {
		t.Fatal(res.Failed)
	}
	assertReplica(t, p.be, dst)
	// Lag: a new snapshot is missing, aged by the store's file times.
	p.backup()
	c.add(time.Hour)
	st := status(t, p, dst, mirror.Options{Now: c.now})
	if st.MissingObjects == 0 || st.MissingBytes == 0 || st.LagSeconds < 3500 || st.OldestMissing == nil {
		t.Errorf("status with a new snapshot: %+v", st)
	}
	run(t, p, dst, mirror.Options{Now: c.now})
	if st := status(t, p, dst, mirror.Options{Now: c.now}); st.MissingObjects != 0 || st.LagSeconds != 0 || st.ExtraObjects != 0 {
		t.Errorf("status after the mirror: %+v", st)
	}
	// The primary is lost: the mirror restores on its own.
	if err := os.RemoveAll(srcDir); err != nil {
		t.Fatal(err)
	}
	m := repotest.Open(t, dst)
	mustCheck(t, m)
	restoreAll(t, m, p.src)
}

func TestInitReplica(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	ctx := context.Background()
	dst := backend.OpenMem()
	// An interrupted earlier attempt left one key file.
	key := p.keys("keys/")[0]
	b, _ := backend.LoadAll(ctx, p.be, key)
	if err := dst.Save(ctx, key, b); err != nil {
		t.Fatal(err)
	}
	n, _, err := repo.InitReplica(ctx, p.r, dst)
	if err != nil || n != 1 {
		t.Fatalf("init replica: %d objects, %v", n, err)
	}
	for _, k := range append(p.keys("keys/"), "config") {
		a, _ := backend.LoadAll(ctx, p.be, k)
		b, err := backend.LoadAll(ctx, dst, k)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s not byte-identical on the replica: %v", k, err)
		}
	}
	if got := listKeys(t, dst, ""); len(got) != 2 {
		t.Errorf("replica holds %v", got)
	}
	if m := repotest.Open(t, dst); m.Config() != p.r.Config() {
		t.Errorf("replica config %+v", m.Config())
	}
	if _, _, err := repo.InitReplica(ctx, p.r, dst); !errors.Is(err, repo.ErrAlreadyInitialized) {
		t.Errorf("second init: %v", err)
	}
	// A mirror run fills it without initialising again.
	if res := run(t, p, dst, mirror.Options{}); res.Initialized || res.PresentObjects != 2 {
		t.Errorf("mirror into the replica: %+v", res)
	}
	if _, _, err := repo.InitReplica(ctx, p.r, backend.OpenMem()); err != nil {
		t.Errorf("init replica into an empty store: %v", err)
	}
	other := backend.OpenMem()
	repotest.NewOn(t, other)
	if _, _, err := repo.InitReplica(ctx, p.r, other); !errors.Is(err, repo.ErrOtherRepository) {
		t.Errorf("init replica over another repository: %v", err)
	}
}

func TestMirrorCancelled(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := mirror.New(p.r, backend.OpenMem(), mirror.Options{}).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
}

// TestMirrorRateLimit: 1 MiB/s down and up takes its time.
func TestMirrorRateLimit(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	total := int64(0)
	for _, b := range contents(t, p.be) {
		total += int64(len(b))
	}
	rate := total / 2 // two seconds' worth, one of which is the burst
	start := time.Now()
	run(t, p, backend.OpenMem(), mirror.Options{UploadLimit: rate, DownloadLimit: rate})
	if el := time.Since(start); el < 800*time.Millisecond {
		t.Errorf("%d bytes at %d B/s took %v", total, rate, el)
	}
}

// removingBackend records the order of removals.
type removingBackend struct {
	backend.Backend
	mu      sync.Mutex
	removed []string
}

func (b *removingBackend) Remove(ctx context.Context, key string) error {
	b.mu.Lock()
	b.removed = append(b.removed, key)
	b.mu.Unlock()
	return b.Backend.Remove(ctx, key)
}

// TestMirrorRemovalOrder: removals due in one run go dependents first
// (snapshots, then index objects, then packs), whatever the records' order.
func TestMirrorRemovalOrder(t *testing.T) {
	p := newPrimary(t, backend.OpenMem())
	dst := &removingBackend{Backend: backend.OpenMem()}
	run(t, p, dst, mirror.Options{})
	// As a prune would: packs and index first in time, the snapshots after.
	p.remove(repo.DeletionPruneDelete, time.Time{}, append(p.keys("data/")[:2], p.keys("index/")...)...)
	p.remove(repo.DeletionForget, time.Time{}, p.keys("snapshots/")...)
	res := run(t, p, dst, mirror.Options{DeleteDelay: -1})
	if res.DeletedObjects != len(dst.removed) || len(dst.removed) < 4 {
		t.Fatalf("removed %v: %+v", dst.removed, res)
	}
	rank := func(k string) int {
		switch {
		case strings.HasPrefix(k, "snapshots/"):
			return 0
		case strings.HasPrefix(k, "index/"):
			return 1
		}
		return 2
	}
	for i := 1; i < len(dst.removed); i++ {
		if rank(dst.removed[i]) < rank(dst.removed[i-1]) {
			t.Errorf("removal order: %s after %s", dst.removed[i], dst.removed[i-1])
		}
	}
}

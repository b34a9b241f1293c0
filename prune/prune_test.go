package prune_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/prune"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
)

// env is a repository, a source directory and a store clock the test moves.
type env struct {
	t     *testing.T
	ctx   context.Context
	r     *repo.Repository
	src   string
	clock time.Time
}

func newEnv(t *testing.T) *env {
	return &env{t: t, ctx: context.Background(), r: repotest.New(t), src: t.TempDir()}
}

func (e *env) write(name string, size int, seed uint64) string {
	e.t.Helper()
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	p := filepath.Join(e.src, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) backup(paths ...string) snapshot.Entry {
	e.t.Helper()
	res, err := snapshot.Backup(e.ctx, e.r, snapshot.BackupOptions{Paths: paths})
	if err != nil {
		e.t.Fatal(err)
	}
	return snapshot.Entry{ID: res.ID, Snapshot: res.Snapshot}
}

func (e *env) forget(s snapshot.Entry) {
	e.t.Helper()
	if err := e.r.Backend().Remove(e.ctx, repo.ObjectKey(repo.PrefixSnapshots, s.ID)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) prune(opts prune.Options) *prune.Result {
	e.t.Helper()
	// The store's clock: the test's when set, else now.
	opts.StoreTime = func(context.Context) (time.Time, error) {
		if e.clock.IsZero() {
			return time.Now(), nil
		}
		return e.clock, nil
	}
	res, err := prune.Prune(e.ctx, e.r, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// restores checks that snapshot s restores from a freshly opened handle
// and that every file equals the source.
func (e *env) restores(s snapshot.Entry) {
	e.t.Helper()
	r := repotest.Reopen(e.t, e.r)
	out := e.t.TempDir()
	if _, err := snapshot.RestoreSnapshot(e.ctx, r, s, snapshot.SnapshotRestoreOptions{RestoreOptions: snapshot.RestoreOptions{Target: out}}); err != nil {
		e.t.Fatalf("restore %s: %v", s.ID.Short(), err)
	}
	for _, p := range s.Paths {
		want, err1 := os.ReadFile(p)
		got, err2 := os.ReadFile(filepath.Join(out, p))
		if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
			e.t.Errorf("restore %s: %s differs (%v, %v)", s.ID.Short(), p, err1, err2)
		}
	}
}

func (e *env) packs() map[string]bool {
	out := map[string]bool{}
	_ = e.r.List(e.ctx, repo.PrefixData, func(id chunk.ID, _ int64) error {
		out[repo.ObjectKey(repo.PrefixData, id)] = true
		return nil
	})
	return out
}

// TestPruneTwoPhase: unused packs are marked by one prune and deleted by a
// later one once the mark is older than the margin by the store's clock;
// what a snapshot needs survives.
func TestPruneTwoPhase(t *testing.T) {
	e := newEnv(t)
	a := e.backup(e.write("a", 3<<20, 1))
	b := e.backup(e.write("b", 3<<20, 2))
	e.forget(a)

	e.clock = time.Now().Add(time.Second)
	first := e.prune(prune.Options{Margin: time.Hour})
	if len(first.Mark) == 0 || len(first.Delete) != 0 || len(first.Waiting) != len(first.Mark) {
		t.Fatalf("first prune: mark %v delete %v waiting %v; want marks that all wait", first.Mark, first.Delete, first.Waiting)
	}
	for _, k := range first.Mark {
		if !e.packs()[k] {
			t.Fatalf("first prune removed %s", k)
		}
	}
	e.clock = e.clock.Add(30 * time.Minute)
	if again := e.prune(prune.Options{Margin: time.Hour}); len(again.Delete) != 0 || len(again.Mark) != 0 {
		t.Fatalf("30 min later: mark %v delete %v, want nothing", again.Mark, again.Delete)
	}
	e.clock = e.clock.Add(time.Hour)
	last := e.prune(prune.Options{Margin: time.Hour})
	if fmt.Sprint(last.Delete) != fmt.Sprint(first.Mark) {
		t.Fatalf("after the margin: deleted %v, want %v", last.Delete, first.Mark)
	}
	for _, k := range first.Mark {
		if e.packs()[k] {
			t.Errorf("%s still stored", k)
		}
	}
	e.restores(b)
	// A prune on a clean repository changes nothing.
	if again := e.prune(prune.Options{Margin: 0}); len(again.Mark)+len(again.Delete)+len(again.Repack) != 0 {
		t.Errorf("a clean repository: %+v", again.Plan)
	}
}

// TestPruneWaitsForOlderBackup: a backup lease that began before the mark
// keeps the marked packs until it ends.
func TestPruneWaitsForOlderBackup(t *testing.T) {
	e := newEnv(t)
	a := e.backup(e.write("a", 2<<20, 1))
	e.backup(e.write("b", 1<<20, 2))
	e.forget(a)
	lease, err := e.r.AcquireLease(e.ctx, repo.LeaseBackup, "", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := e.prune(prune.Options{Margin: 0}) // the mark is after the lease began
	if len(res.Mark) == 0 || len(res.Delete) != 0 {
		t.Fatalf("mark %v delete %v, want marks kept while the older backup runs", res.Mark, res.Delete)
	}
	for _, why := range res.Waiting {
		if !strings.Contains(why, "a backup that began before the mark is still running") {
			t.Errorf("waiting because %q", why)
		}
	}
	lease.Release(e.ctx)
	if res := e.prune(prune.Options{Margin: 0}); len(res.Delete) == 0 {
		t.Errorf("after the backup ended nothing was deleted: %+v", res.Waiting)
	}
}

// TestBackupAcrossTwoPrunes: a backup reuses the blobs of a pack that two
// prunes mark and try to delete while it runs. Neither deletes it (the
// backup's lease is older than the mark), the backup stores the blobs again
// before committing, and a prune afterwards deletes the marked pack: the
// backup's snapshot restores.
func TestBackupAcrossTwoPrunes(t *testing.T) {
	e := newEnv(t)
	p := e.write("b", 2<<20, 3)
	old := e.backup(p)
	e.forget(old) // its packs are unused now
	before := e.packs()

	var during []*prune.Result
	res, err := snapshot.Backup(e.ctx, e.r, snapshot.BackupOptions{Paths: []string{p}, Writer: repo.WriterOptions{
		BeforeCommit: func(ctx context.Context) error {
			for i := 0; i < 2; i++ {
				during = append(during, e.prune(prune.Options{Margin: 0}))
			}
			return nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(during) != 2 || len(during[0].Mark) == 0 {
		t.Fatalf("the prunes during the backup: %+v", during)
	}
	for i, d := range during {
		if len(d.Delete) != 0 {
			t.Fatalf("prune %d deleted %v while a backup that began earlier ran", i+1, d.Delete)
		}
	}
	after := e.prune(prune.Options{Margin: 0})
	if len(after.Delete) == 0 {
		t.Fatalf("after the backup the marked packs were not deleted: %+v", after.Waiting)
	}
	for _, k := range after.Delete {
		if !before[k] {
			t.Errorf("deleted %s, which the backup wrote", k)
		}
	}
	e.restores(snapshot.Entry{ID: res.ID, Snapshot: res.Snapshot})
}

// TestPruneRepack: a pack mostly unused is repacked once unused bytes
// exceed --max-unused; its live blobs survive in new packs.
func TestPruneRepack(t *testing.T) {
	e := newEnv(t)
	var paths []string
	for i := range 8 {
		paths = append(paths, e.write(fmt.Sprintf("f%d", i), 100<<10, uint64(10+i)))
	}
	e.backup(paths...)
	keep := e.backup(paths[0])
	all, err := snapshot.List(e.ctx, e.r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.ID != keep.ID {
			e.forget(s)
		}
	}
	res := e.prune(prune.Options{Margin: 0, MaxUnused: 0.05})
	if len(res.Repack) == 0 || len(res.Delete) == 0 {
		t.Fatalf("repack %v delete %v, want the mostly unused pack repacked and deleted", res.Repack, res.Delete)
	}
	e.restores(keep)
	if res := e.prune(prune.Options{Margin: 0, MaxUnused: 0.05}); len(res.Repack) != 0 {
		t.Errorf("a second prune repacks again: %v", res.Repack)
	}
}

// TestPruneRefusesInconsistentIndex: a snapshot whose blobs are in no
// index stops prune before it changes anything.
func TestPruneRefusesInconsistentIndex(t *testing.T) {
	e := newEnv(t)
	a := e.backup(e.write("a", 1<<20, 1))
	e.forget(e.backup(e.write("b", 1<<20, 2)))
	_ = a
	var ids []chunk.ID
	_ = e.r.List(e.ctx, repo.PrefixIndex, func(id chunk.ID, _ int64) error { ids = append(ids, id); return nil })
	for _, id := range ids {
		if err := e.r.Backend().Remove(e.ctx, repo.ObjectKey(repo.PrefixIndex, id)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := prune.Prune(e.ctx, e.r, prune.Options{Margin: 0})
	if !errors.Is(err, prune.ErrInconsistent) || !strings.Contains(err.Error(), "run strata check") {
		t.Fatalf("prune of an inconsistent repository: %v", err)
	}
	var dels int
	_ = e.r.List(e.ctx, repo.PrefixDeletions, func(chunk.ID, int64) error { dels++; return nil })
	if dels != 0 {
		t.Errorf("%d deletion records written by a refused prune", dels)
	}
}

// TestPruneOldSegments: log segments wholly before the oldest cut any
// snapshot needs are removed (with a deletion record); restores at later
// points still work.
func TestPruneOldSegments(t *testing.T) {
	e := newEnv(t)
	l, err := oplog.Open(e.ctx, e.r, 1)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, rng := range [][2]uint64{{1, 5}, {6, 9}, {10, 12}, {13, 15}} {
		var recs []*oplog.Record
		for lsn := rng[0]; lsn <= rng[1]; lsn++ {
			rec, err := oplog.ParseRecord([]byte(fmt.Sprintf(`{"lsn":%d,"ts":"2026-01-01T10:00:%02dZ","tier":"warm","op":"upsert","record":{"type":"node","id":"n%d"}}`, lsn, lsn, lsn)), 1)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		key, err := l.Append(e.ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	src := filepath.Join(e.src, "warm.jsonl")
	if err := os.WriteFile(src, []byte(`{"type":"node","id":"n0"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Backup(e.ctx, e.r, snapshot.BackupOptions{Tiers: []snapshot.TierSpec{{Name: "warm", Source: src}},
		Cut: &snapshot.Cut{Generation: 1, LSNStart: 10, LSNEnd: 10}}); err != nil {
		t.Fatal(err)
	}
	res := e.prune(prune.Options{Margin: 0})
	if fmt.Sprint(res.Segments) != fmt.Sprint(keys[:2]) {
		t.Fatalf("segments removed %v, want %v", res.Segments, keys[:2])
	}
	tl, err := snapshot.LoadTimeline(e.ctx, repotest.Reopen(t, e.r), 0)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := snapshot.StateAt(e.ctx, e.r, tl, snapshot.PointOptions{Target: snapshot.Target{LSN: 14, HasLSN: true}})
	if err != nil {
		t.Fatalf("restore at lsn 14 after prune: %v", err)
	}
	ps.Close()
}

// TestWindowSurvivesForgetAndPrune: a log of ten days and a snapshot with a
// cut each day; forget --keep-last 1 --keep-oplog 3d then prune leave a
// timeline whose window is gap-free and at least three days long, and a
// later forget without the flag keeps it.
func TestWindowSurvivesForgetAndPrune(t *testing.T) {
	e := newEnv(t)
	l, err := oplog.Open(e.ctx, e.r, 1)
	if err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := filepath.Join(e.src, "warm.jsonl")
	if err := os.WriteFile(src, []byte(`{"type":"node","id":"n0"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const perDay = 24 // one record an hour
	for d := range 10 {
		if d > 0 { // a snapshot at the start of each day, cut at the last record so far
			lsn := uint64(d * perDay)
			if _, err := snapshot.Backup(e.ctx, e.r, snapshot.BackupOptions{Tiers: []snapshot.TierSpec{{Name: "warm", Source: src}},
				Time: day0.Add(time.Duration(d) * 24 * time.Hour), Cut: &snapshot.Cut{Generation: 1, LSNStart: lsn, LSNEnd: lsn}}); err != nil {
				t.Fatal(err)
			}
		}
		var recs []*oplog.Record
		for h := range perDay {
			lsn := uint64(d*perDay + h + 1)
			ts := day0.Add(time.Duration(d*24+h) * time.Hour).Format(time.RFC3339)
			rec, err := oplog.ParseRecord([]byte(fmt.Sprintf(`{"lsn":%d,"ts":%q,"tier":"warm","op":"upsert","record":{"type":"node","id":"n%d"}}`, lsn, ts, lsn)), 1)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		if _, err := l.Append(e.ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	window := 3 * 24 * time.Hour
	forget := func(keep *time.Duration) {
		t.Helper()
		plan, err := prune.PlanForget(e.ctx, e.r, prune.ForgetOptions{Policy: prune.Policy{Last: 1}, GroupBy: prune.DefaultGroupBy, KeepOplog: keep})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plan.Execute(e.ctx, e.r); err != nil {
			t.Fatal(err)
		}
	}
	forget(&window)
	forget(nil) // a later forget without the flag honours the stored window
	res := e.prune(prune.Options{Margin: 0})
	if len(res.Segments) == 0 {
		t.Error("prune removed no log segment outside the window")
	}
	tl, err := snapshot.LoadTimeline(e.ctx, repotest.Reopen(t, e.r), 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := tl.Windows()
	if len(tl.Coverage.Gaps) != 0 || len(ws) != 1 {
		t.Fatalf("after prune: windows %+v gaps %+v, want one window and no gap", ws, tl.Coverage.Gaps)
	}
	newest := day0.Add(10*24*time.Hour - time.Hour)
	from := ws[0].From.Time.GoTime()
	if ws[0].From.TS == "" {
		from = time.Time{} // before the log: every point
	}
	if got := newest.Sub(from); got < window {
		t.Errorf("the recoverable window spans %s back from the newest mutation, want at least %s", got, window)
	}
}

package prune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
)

// logT0 is the time of lsn 0: record lsn n has ts logT0 + n minutes.
var logT0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

// appendForgetLog stores records first..last (node upserts in tier warm)
// as one segment of generation 1.
func appendForgetLog(t *testing.T, r *repo.Repository, first, last uint64) {
	t.Helper()
	l, err := oplog.Open(context.Background(), r, 1)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*oplog.Record
	for lsn := first; lsn <= last; lsn++ {
		ts := logT0.Add(time.Duration(lsn) * time.Minute).Format(time.RFC3339Nano)
		line := fmt.Sprintf(`{"lsn":%d,"ts":%q,"tier":"warm","op":"upsert","record":{"type":"node","id":"n%d"}}`, lsn, ts, lsn)
		rec, err := oplog.ParseRecord([]byte(line), int(lsn))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if _, err := l.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

// backupAt makes a snapshot of one graph tier at time at (minutes after
// logT0), with a cut (start, end] unless cut is nil.
func backupAt(t *testing.T, r *repo.Repository, src string, minutes int, cut *snapshot.Cut, tags ...string) chunk.ID {
	t.Helper()
	res, err := snapshot.Backup(context.Background(), r, snapshot.BackupOptions{
		Tiers: []snapshot.TierSpec{{Name: "warm", Source: src}}, Host: "db1", Tags: tags,
		Time: logT0.Add(time.Duration(minutes) * time.Minute), Cut: cut,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func graphFile(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "warm.jsonl")
	if err := os.WriteFile(src, []byte(`{"type":"node","id":"n0"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

func listIDs(t *testing.T, r *repo.Repository) []chunk.ID {
	t.Helper()
	all, err := snapshot.List(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	var out []chunk.ID
	for _, e := range all {
		out = append(out, e.ID)
	}
	return out
}

func loadDeletions(t *testing.T, r *repo.Repository) []repo.Deletion {
	t.Helper()
	var out []repo.Deletion
	err := r.List(context.Background(), repo.PrefixDeletions, func(id chunk.ID, _ int64) error {
		var d repo.Deletion
		if err := r.LoadJSON(context.Background(), repo.PrefixDeletions, id, &d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keysOf(ids ...chunk.ID) []string {
	var out []string
	for _, id := range ids {
		out = append(out, repo.ObjectKey(repo.PrefixSnapshots, id))
	}
	slices.Sort(out)
	return out
}

func forget(t *testing.T, r *repo.Repository, o ForgetOptions) (*ForgetPlan, ForgetResult) {
	t.Helper()
	if o.GroupBy == (GroupBy{}) {
		o.GroupBy = DefaultGroupBy
	}
	plan, err := PlanForget(context.Background(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := plan.Execute(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return plan, res
}

// TestForgetRemovesWithOneDeletionRecord: keep-last 2 removes the older
// snapshots, after writing one deletion record naming them all.
func TestForgetRemovesWithOneDeletionRecord(t *testing.T) {
	r := repotest.New(t)
	src := graphFile(t)
	var ids []chunk.ID
	for i := range 4 {
		ids = append(ids, backupAt(t, r, src, i*60, nil))
	}
	other := backupAt(t, r, src, 10, nil, "nightly") // same group: tags do not split by default
	plan, res := forget(t, r, ForgetOptions{Policy: Policy{Last: 2}})
	if len(plan.Groups) != 1 || len(plan.Groups[0].Keep) != 2 {
		t.Fatalf("plan: %+v", plan.Groups)
	}
	want := keysOf(ids[0], other, ids[1])
	if !res.HasDeletion || res.Removed != 3 {
		t.Fatalf("result %+v, want 3 removed with a record", res)
	}
	if got := listIDs(t, r); !slices.Equal(got, []chunk.ID{ids[2], ids[3]}) {
		t.Errorf("left %v, want the newest two", got)
	}
	ds := loadDeletions(t, r)
	if len(ds) != 1 || ds[0].Kind != repo.DeletionForget || !slices.Equal(ds[0].Removed, want) {
		t.Errorf("deletion records %+v, want one of kind forget removing %v", ds, want)
	}
	if ds[0].Reason != "forget keep 2 latest snapshots" {
		t.Errorf("reason %q", ds[0].Reason)
	}

	// Nothing left to remove: no record.
	_, res = forget(t, r, ForgetOptions{Policy: Policy{Last: 2}})
	if res.HasDeletion || len(loadDeletions(t, r)) != 1 {
		t.Errorf("a forget that removes nothing wrote a record")
	}
}

func TestForgetExplicitAndRefusals(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := graphFile(t)
	a := backupAt(t, r, src, 0, nil)
	b := backupAt(t, r, src, 60, nil)

	if _, err := PlanForget(ctx, r, ForgetOptions{GroupBy: DefaultGroupBy}); !errors.Is(err, ErrNoRule) {
		t.Errorf("no rule: %v, want ErrNoRule", err)
	}
	if _, err := PlanForget(ctx, r, ForgetOptions{IDs: []chunk.ID{a}, Policy: Policy{Last: 1}}); err == nil {
		t.Error("ids and rules together: accepted")
	}
	if _, err := PlanForget(ctx, r, ForgetOptions{IDs: []chunk.ID{{1}}}); !errors.Is(err, snapshot.ErrNoSnapshot) {
		t.Errorf("unknown id: %v", err)
	}
	plan, res := forget(t, r, ForgetOptions{IDs: []chunk.ID{a, a}})
	if !plan.Explicit || res.Removed != 1 || len(plan.Groups) != 1 || len(plan.Groups[0].Remove) != 1 {
		t.Errorf("explicit: plan %+v result %+v", plan, res)
	}
	if got := listIDs(t, r); !slices.Equal(got, []chunk.ID{b}) {
		t.Errorf("left %v, want %v", got, b)
	}
	// Remove all, explicitly allowed.
	_, res = forget(t, r, ForgetOptions{AllowRemoveAll: true})
	if res.Removed != 1 || len(listIDs(t, r)) != 0 {
		t.Errorf("remove all: %+v, left %v", res, listIDs(t, r))
	}
}

// TestForgetConcurrentRemoval: a snapshot another forget removed between
// plan and execute is not an error.
func TestForgetConcurrentRemoval(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := graphFile(t)
	a := backupAt(t, r, src, 0, nil)
	backupAt(t, r, src, 60, nil)
	plan, err := PlanForget(ctx, r, ForgetOptions{Policy: Policy{Last: 1}, GroupBy: DefaultGroupBy})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Backend().Remove(ctx, repo.ObjectKey(repo.PrefixSnapshots, a)); err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Execute(ctx, r); err != nil {
		t.Fatal(err)
	}
}

// windowRepo is a log of lsns 1..60 (one a minute from 10:01 to 11:00) and
// snapshots with cuts along it, plus one without a cut.
type windowRepo struct {
	r                              *repo.Repository
	s0, s1, s2, s3, s4, s5, s6, p1 chunk.ID
}

func newWindowRepo(t *testing.T) *windowRepo {
	r := repotest.New(t)
	src := graphFile(t)
	appendForgetLog(t, r, 1, 60)
	cut := func(a, b uint64) *snapshot.Cut { return &snapshot.Cut{Generation: 1, LSNStart: a, LSNEnd: b} }
	return &windowRepo{r: r,
		s0: backupAt(t, r, src, -1, cut(0, 0)), // before the log
		s1: backupAt(t, r, src, 10, cut(10, 10)),
		s2: backupAt(t, r, src, 22, cut(20, 22)),
		s3: backupAt(t, r, src, 30, cut(30, 30)),
		p1: backupAt(t, r, src, 40, nil),
		s4: backupAt(t, r, src, 45, cut(45, 45)),
		s5: backupAt(t, r, src, 58, cut(58, 58)),
		s6: backupAt(t, r, src, 65, cut(60, 70)), // the log does not reach its cut yet
	}
}

func TestForgetWindowOf(t *testing.T) {
	ctx := context.Background()
	w := newWindowRepo(t)
	for _, tc := range []struct {
		keep     time.Duration
		base     chunk.ID
		hasBase  bool
		snaps    []chunk.ID
		logAfter uint64
	}{
		// 11:00 - 20m = 10:40: the base is s3 (cut at 10:30).
		{20 * time.Minute, w.s3, true, []chunk.ID{w.s6, w.s5, w.s4, w.s3}, 30},
		// 10:30 exactly: a cut at the window's start is its base.
		{30 * time.Minute, w.s3, true, []chunk.ID{w.s6, w.s5, w.s4, w.s3}, 30},
		// 10:25: s2's cut lands at lsn 22 (10:22); it replays from lsn 20.
		{35 * time.Minute, w.s2, true, []chunk.ID{w.s6, w.s5, w.s4, w.s3, w.s2}, 20},
		// Back past the log's start: the base is the snapshot before the log.
		{2 * time.Hour, w.s0, true, []chunk.ID{w.s6, w.s5, w.s4, w.s3, w.s2, w.s1, w.s0}, 0},
	} {
		win, ok, err := WindowOf(ctx, w.r, tc.keep)
		if err != nil || !ok {
			t.Fatalf("%v: %v %v", tc.keep, ok, err)
		}
		if !win.Newest.Equal(logT0.Add(60*time.Minute)) || !win.Start.Equal(win.Newest.Add(-tc.keep)) || win.Generation != 1 {
			t.Errorf("%v: newest %v start %v generation %d", tc.keep, win.Newest, win.Start, win.Generation)
		}
		if win.Base != tc.base || win.HasBase != tc.hasBase || win.LogAfter != tc.logAfter {
			t.Errorf("%v: base %v (%v) log after %d, want %v after %d", tc.keep, win.Base.Short(), win.HasBase, win.LogAfter, tc.base.Short(), tc.logAfter)
		}
		if !slices.Equal(win.Snapshots, tc.snaps) {
			t.Errorf("%v: snapshots %v, want %v", tc.keep, win.Snapshots, tc.snaps)
		}
	}
	if _, ok, err := WindowOf(ctx, w.r, 0); ok || err != nil {
		t.Errorf("window 0: %v %v", ok, err)
	}
	// A repository without a log has no window.
	if _, ok, err := WindowOf(ctx, repotest.New(t), time.Hour); ok || err != nil {
		t.Errorf("no log: %v %v", ok, err)
	}
}

// TestForgetKeepsTheOplogWindow: a forget with --keep-oplog stores the
// window; a later forget without it still keeps every snapshot the window
// needs; --keep-oplog 0 lifts it.
func TestForgetKeepsTheOplogWindow(t *testing.T) {
	ctx := context.Background()
	w := newWindowRepo(t)
	keep := 20 * time.Minute

	// Dry run (plan only): nothing stored.
	plan, err := PlanForget(ctx, w.r, ForgetOptions{Policy: Policy{Last: 1}, GroupBy: DefaultGroupBy, KeepOplog: &keep})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.SavePolicy || plan.Window == nil {
		t.Fatalf("plan: save %v window %v", plan.SavePolicy, plan.Window)
	}
	if _, ok, _ := LoadRepoPolicy(ctx, w.r); ok {
		t.Fatal("planning stored a policy")
	}

	_, res := forget(t, w.r, ForgetOptions{Policy: Policy{Last: 1}, KeepOplog: &keep})
	if !res.PolicySaved || res.Removed != 4 {
		t.Fatalf("first forget: %+v", res)
	}
	want := []chunk.ID{w.s3, w.s4, w.s5, w.s6}
	if got := listIDs(t, w.r); !slices.Equal(got, want) {
		t.Errorf("left %v, want the window's %v", got, want)
	}
	p, ok, err := LoadRepoPolicy(ctx, w.r)
	if err != nil || !ok || p.KeepOplog != "20m0s" {
		t.Errorf("stored policy %+v %v %v", p, ok, err)
	}

	// Without the flag: the stored window is honoured, and not stored again.
	plan, res = forget(t, w.r, ForgetOptions{Policy: Policy{Last: 1}})
	if res.Removed != 0 || res.PolicySaved || plan.KeepOplog != keep {
		t.Errorf("second forget: %+v, window %v", res, plan.KeepOplog)
	}
	for _, rs := range plan.Groups[0].Reasons {
		if rs.Snapshot.ID == w.s3 && !slices.Equal(rs.Matches, []string{ReasonWindow}) {
			t.Errorf("s3 kept for %q, want the window", rs.Matches)
		}
	}
	// Named explicitly: refused.
	if _, err := PlanForget(ctx, w.r, ForgetOptions{IDs: []chunk.ID{w.s4}, GroupBy: DefaultGroupBy}); !errors.Is(err, ErrPinned) {
		t.Errorf("explicit removal of a window snapshot: %v, want ErrPinned", err)
	}
	n := 0
	w.r.List(ctx, repo.PrefixPolicy, func(chunk.ID, int64) error { n++; return nil })
	if n != 1 {
		t.Errorf("%d policy objects, want 1", n)
	}

	// The window lifted: keep-last 1 alone decides.
	zero := time.Duration(0)
	_, res = forget(t, w.r, ForgetOptions{Policy: Policy{Last: 1}, KeepOplog: &zero})
	if !res.PolicySaved || res.Removed != 3 {
		t.Errorf("forget with the window lifted: %+v", res)
	}
	if got := listIDs(t, w.r); !slices.Equal(got, []chunk.ID{w.s6}) {
		t.Errorf("left %v, want only s6", got)
	}
	if _, ok, err := Window(ctx, w.r); ok || err != nil {
		t.Errorf("window after --keep-oplog 0: %v %v", ok, err)
	}
}

// TestForgetKeepOplogAlone stores the window and removes nothing.
func TestForgetKeepOplogAlone(t *testing.T) {
	ctx := context.Background()
	w := newWindowRepo(t)
	keep := 20 * time.Minute
	plan, res := forget(t, w.r, ForgetOptions{KeepOplog: &keep})
	if !res.PolicySaved || res.Removed != 0 || len(plan.Groups) != 0 {
		t.Errorf("keep-oplog alone: %+v %+v", res, plan.Groups)
	}
	win, ok, err := Window(ctx, w.r)
	if err != nil || !ok || win.Keep != keep || win.Base != w.s3 {
		t.Errorf("stored window: %+v %v %v", win, ok, err)
	}
	if len(listIDs(t, w.r)) != 8 {
		t.Error("snapshots removed")
	}
}

func TestForgetRepoPolicyNewestWins(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, k := range []string{"1h", "3h", "2h"} {
		if _, err := SaveRepoPolicy(ctx, r, RepoPolicy{KeepOplog: k, Time: t0.Add([]time.Duration{0, 2, 1}[i] * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	p, ok, err := LoadRepoPolicy(ctx, r)
	if err != nil || !ok || p.KeepOplog != "3h" {
		t.Errorf("newest policy %+v %v %v, want keep_oplog 3h", p, ok, err)
	}
	// A damaged value is an error, never "no window".
	if _, err := SaveRepoPolicy(ctx, r, RepoPolicy{KeepOplog: "soon", Time: t0.Add(5 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Window(ctx, r); !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("bad keep_oplog: %v", err)
	}
}

func TestForgetParseWindowDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"168h": 168 * time.Hour, "7d": 168 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "0": 0,
	} {
		if got, err := ParseWindowDuration(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7", "d", "1.5d", "-1h", "1w"} {
		if got, err := ParseWindowDuration(in); err == nil {
			t.Errorf("%q: %v, want an error", in, got)
		}
	}
	if FormatWindowDuration(168*time.Hour) != "168h" || FormatWindowDuration(90*time.Minute) != "1h30m0s" {
		t.Error("FormatWindowDuration")
	}
}

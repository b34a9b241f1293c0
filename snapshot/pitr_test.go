package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/fault"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
)

// backupAtLSN0 backs up a one-node warm tier with a cut at the start of
// generation 1: the base the log's records replay onto.
func backupAtLSN0(t *testing.T, r *repo.Repository) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "warm.jsonl")
	repotest.WriteFile(t, src, []byte(`{"type":"node","id":"n0"}`+"\n"))
	if _, err := snapshot.Backup(context.Background(), r, snapshot.BackupOptions{Tiers: []snapshot.TierSpec{{Name: "warm", Source: src}},
		Cut: &snapshot.Cut{Generation: 1}}); err != nil {
		t.Fatal(err)
	}
}

// appendLog stores records first..last (node upserts n<lsn>, one a second
// from 10:00:00) as one segment.
func appendLog(t *testing.T, r *repo.Repository, first, last uint64) string {
	t.Helper()
	l, err := oplog.Open(context.Background(), r, 1)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*oplog.Record
	for lsn := first; lsn <= last; lsn++ {
		line := fmt.Sprintf(`{"lsn":%d,"ts":"2026-01-01T10:00:%02d.000Z","tier":"warm","op":"upsert","record":{"type":"node","id":"n%d"}}`, lsn, lsn, lsn)
		rec, err := oplog.ParseRecord([]byte(line), int(lsn))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	key, err := l.Append(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestTimelineGap: a segment lost from the middle of the log splits it
// into two runs. Points after the gap are refused, naming the gap and the
// newest reachable point; points before it restore.
func TestTimelineGap(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	backupAtLSN0(t, r)
	appendLog(t, r, 1, 5)
	lost := appendLog(t, r, 6, 10)
	appendLog(t, r, 11, 15)
	if err := r.Backend().Remove(ctx, lost); err != nil {
		t.Fatal(err)
	}

	tl, err := snapshot.LoadTimeline(ctx, r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g := tl.Coverage.Gaps; len(g) != 1 || g[0].After != 5 || g[0].Before != 11 {
		t.Fatalf("gaps %+v, want one after lsn 5 before lsn 11", g)
	}
	if w := tl.Windows(); len(w) != 1 || w[0].From.LSN != 0 || w[0].To.LSN != 5 {
		t.Fatalf("windows %+v, want one from lsn 0 to 5", w)
	}

	for _, tc := range []struct {
		target snapshot.Target
		want   string // "" restores; else the error names it
	}{
		{target: snapshot.Target{LSN: 3, HasLSN: true}},
		{target: snapshot.Target{LSN: 5, HasLSN: true}},
		{target: snapshot.Target{LSN: 8, HasLSN: true}, want: "lies in a gap of the log (the records after lsn 5 up to lsn 10 are missing)"},
		{target: snapshot.Target{LSN: 12, HasLSN: true}, want: "no snapshot with a consistent cut at or before it is replayable"},
		{target: snapshot.Target{LSN: 20, HasLSN: true}, want: "the log ends at lsn 15"},
		{target: snapshot.Target{At: ptime("2026-01-01T10:00:08Z")}, want: "lies in a gap"},
		{target: snapshot.Target{At: ptime("2026-01-01T10:00:04.5Z")}},
	} {
		ps, err := snapshot.StateAt(ctx, r, tl, snapshot.PointOptions{Target: tc.target})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.target, err)
				continue
			}
			n := warmNodes(ps)
			if want := int(ps.Replay.LastLSN) + 1; n != want {
				t.Errorf("%s: %d nodes, want %d", tc.target, n, want)
			}
			continue
		}
		if err == nil {
			ps.Close()
			t.Errorf("%s: restored, want a refusal", tc.target)
			continue
		}
		if !errors.Is(err, snapshot.ErrNotRecoverable) || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "the newest reachable point is lsn 5") {
			t.Errorf("%s: %v\nwant ErrNotRecoverable naming %q and the newest reachable point (lsn 5)", tc.target, err, tc.want)
		}
	}
}

// TestStateAtLoadsNoSegmentPastTheCut: a restore to an lsn loads the
// segments up to the one holding the record after the cut, not the ones
// the reader would fetch ahead.
func TestStateAtLoadsNoSegmentPastTheCut(t *testing.T) {
	ctx := context.Background()
	var counting atomic.Bool
	var loads atomic.Int64
	r := repotest.NewOn(t, fault.Flaky(backend.OpenMem(), fault.FlakyOptions{
		OnCall: func(op fault.Op, k string) {
			if counting.Load() && op == fault.OpLoad && strings.HasPrefix(k, "oplog/") {
				loads.Add(1)
			}
		}}))
	backupAtLSN0(t, r)
	for first := uint64(1); first < 30; first += 5 {
		appendLog(t, r, first, first+4)
	}
	for _, tc := range []struct {
		lsn   uint64
		loads int64 // segments 1-5, 6-10, ...
	}{{7, 2}, {10, 3}, {12, 3}, {30, 6}} {
		tl, err := snapshot.LoadTimeline(ctx, r, 0)
		if err != nil {
			t.Fatal(err)
		}
		loads.Store(0)
		counting.Store(true)
		ps, err := snapshot.StateAt(ctx, r, tl, snapshot.PointOptions{Target: snapshot.Target{LSN: tc.lsn, HasLSN: true}})
		if err != nil {
			t.Fatal(err)
		}
		n := warmNodes(ps)
		counting.Store(false)
		if n != int(tc.lsn)+1 {
			t.Errorf("lsn %d: %d nodes, want %d", tc.lsn, n, tc.lsn+1)
		}
		if got := loads.Load(); got != tc.loads {
			t.Errorf("lsn %d: %d segment loads, want %d", tc.lsn, got, tc.loads)
		}
	}
}

// warmNodes reads the warm tier of ps to its end (or first error),
// closes ps and returns the number of records read.
func warmNodes(ps *snapshot.PointState) int {
	defer ps.Close()
	n := 0
	for {
		if _, err := ps.Tiers["warm"].Next(); err != nil {
			return n
		}
		n++
	}
}

func ptime(s string) *time.Time {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &tm
}

// TestSynthesizeFold: synthesized layers stack until MaxLayers, then the
// tier is folded into a new base; both restore the state at their lsn.
func TestSynthesizeFold(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	backupAtLSN0(t, r)
	appendLog(t, r, 1, 5)
	count := func(e snapshot.Entry) int {
		t.Helper()
		ps, err := snapshot.CutState(ctx, repotest.Reopen(t, r), e, nil, 0, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return warmNodes(ps)
	}
	for _, tc := range []struct {
		lsn    uint64
		layers int
		nodes  int64 // the tier's counted nodes after a fold
	}{{lsn: 3, layers: 1}, {lsn: 5, layers: 0, nodes: 6}} {
		res, err := snapshot.Synthesize(ctx, r, snapshot.SynthesizeOptions{Target: &snapshot.Target{LSN: tc.lsn, HasLSN: true}, MaxLayers: 1})
		if err != nil {
			t.Fatal(err)
		}
		tier := res.Snapshot.Tiers[0]
		if len(tier.Layers) != tc.layers || tc.nodes > 0 && (tier.Nodes != tc.nodes || tier.CountsFrom != "") {
			t.Errorf("lsn %d: %d layers, %d nodes (counts from %q); want %d layers", tc.lsn, len(tier.Layers), tier.Nodes, tier.CountsFrom, tc.layers)
		}
		if n := count(snapshot.Entry{ID: res.ID, Snapshot: res.Snapshot}); n != int(tc.lsn)+1 {
			t.Errorf("lsn %d: the synthesized snapshot restores %d nodes, want %d", tc.lsn, n, tc.lsn+1)
		}
	}
}

// TestEmptyCutWindow: with no log record inside the cut (lsn start = end),
// the tiers as read are the state at the cut, so the backup's own check
// judges it, whether or not the log reaches that far; with records inside
// and no log to replay them, the check waits (Checked false).
func TestEmptyCutWindow(t *testing.T) {
	ctx := context.Background()
	var packLoads atomic.Int64
	// A fault store without faults: it only counts the pack loads.
	r := repotest.NewOn(t, fault.Flaky(backend.OpenMem(), fault.FlakyOptions{
		OnCall: func(op fault.Op, k string) {
			if op == fault.OpLoad && strings.HasPrefix(k, "data/") {
				packLoads.Add(1)
			}
		}}))
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.jsonl")
	repotest.WriteFile(t, clean, []byte(`{"type":"node","id":"a"}`+"\n"+`{"type":"node","id":"b"}`+"\n"))
	dangling := filepath.Join(dir, "dangling.jsonl")
	repotest.WriteFile(t, dangling, []byte(`{"type":"node","id":"a"}`+"\n"+
		`{"type":"relationship","id":"r","label":"R","start":{"id":"a"},"end":{"id":"zz"}}`+"\n"))
	backup := func(src string, start, end uint64) (*snapshot.BackupResult, error) {
		return snapshot.Backup(ctx, r, snapshot.BackupOptions{Tiers: []snapshot.TierSpec{{Name: "warm", Source: src}},
			Cut: &snapshot.Cut{Generation: 1, LSNStart: start, LSNEnd: end}})
	}

	res, err := backup(clean, 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Snapshot.Cut; !c.Checked {
		t.Errorf("empty window: Checked false")
	}
	if tier := res.Snapshot.Tiers[0]; tier.Nodes != 2 {
		t.Errorf("empty window: %d nodes recorded, want 2", tier.Nodes)
	}
	if n := packLoads.Load(); n != 0 {
		t.Errorf("empty window: the backup read %d packs back to check them again", n)
	}

	if _, err := backup(dangling, 5, 5); !errors.Is(err, snapshot.ErrIntegrity) {
		t.Errorf("dangling graph, empty window: %v, want an integrity error", err)
	}

	res, err = backup(dangling, 5, 9)
	if err != nil {
		t.Fatalf("window the log does not reach: %v", err)
	}
	if res.Snapshot.Cut.Checked {
		t.Error("window the log does not reach: Checked true")
	}
}

package oplog

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/repo"
)

var compactNow = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func (f *segFixture) compact(levels ...time.Duration) CompactResult {
	f.t.Helper()
	res, err := f.l.Compact(f.ctx, CompactOptions{Levels: levels, Now: func() time.Time { return compactNow }})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// deletions returns the deletion records in the repository.
func (f *segFixture) deletions() []repo.Deletion {
	f.t.Helper()
	var out []repo.Deletion
	err := f.r.List(f.ctx, repo.PrefixDeletions, func(id chunk.ID, _ int64) error {
		var d repo.Deletion
		if err := f.r.LoadJSON(f.ctx, repo.PrefixDeletions, id, &d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *segFixture) header(key string) Header {
	f.t.Helper()
	s, err := ParseSegmentKey(key)
	if err != nil {
		f.t.Fatal(err)
	}
	h, _, err := f.l.Load(f.ctx, s)
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// levelRuns writes levels as runs: "3x1 0x2" for 3 0 0.
func levelRuns(levels []int) string {
	var runs []string
	for i := 0; i < len(levels); {
		j := i + 1
		for j < len(levels) && levels[j] == levels[i] {
			j++
		}
		runs = append(runs, fmt.Sprintf("%dx%d", levels[i], j-i))
		i = j
	}
	return strings.Join(runs, " ")
}

func TestCompactLevels(t *testing.T) {
	// Three hours of 10 s segments from 22:30 on 1 March, one record each
	// (lsn 1..1080); the tail segment is at 01:29:50.25 on 2 March.
	start := time.Date(2026, 3, 1, 22, 30, 0, 0, time.UTC)
	const n = 1080
	tests := []struct {
		name   string
		levels []time.Duration
		// chain is the chain after compaction, as the levels of its
		// segments and how many of each in a row.
		chain string
		// again is how many segments a second call loads: those after the
		// last top-level segment, and that one.
		again int
	}{
		// Level 1: every minute but the tail's; level 2: hours 22, 23 and
		// 00; level 3: 1 March.
		{"defaults", nil, "3x1 2x1 1x29 0x6", 37},
		// 30 min: five closed; 10 min: 01:00, 01:10; 1 min: 01:20..01:28.
		{"scaled", []time.Duration{time.Minute, 10 * time.Minute, 30 * time.Minute}, "3x5 2x2 1x9 0x6", 18},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSegFixture(t, 1)
			f.appendRun(1, n, 1, start, 10*time.Second)
			before := f.mustRead(0, 0)
			orig := f.keys()
			f.be.takeLoads()

			res := f.compact(tc.levels...)
			loads := f.be.takeLoads()
			if len(loads) != n {
				t.Errorf("compaction loaded %d segments, want %d", len(loads), n)
			}
			for k, c := range loads {
				if c != 1 {
					t.Errorf("%s loaded %d times", k, c)
				}
			}
			after := f.keys()
			if res.Before != n || res.After != len(after) {
				t.Errorf("before %d after %d, want %d %d", res.Before, res.After, n, len(after))
			}
			var levels []int
			for _, k := range after {
				h := f.header(k)
				levels = append(levels, h.Level)
				if h.Level >= 1 && h.SealedAt != compactNow.Format(time.RFC3339Nano) {
					t.Errorf("%s sealed at %s", k, h.SealedAt)
				}
			}
			if got := levelRuns(levels); got != tc.chain {
				t.Errorf("chain %s, want %s", got, tc.chain)
			}
			// Written are the new keys, Removed the replaced ones: every
			// original but the 6 of the tail's open minute.
			var written, kept []string
			for _, k := range after {
				if slices.Contains(orig, k) {
					kept = append(kept, k)
				} else {
					written = append(written, k)
				}
			}
			if !slices.Equal(res.Written, written) || !slices.Equal(kept, orig[n-6:]) || !slices.Equal(res.Removed, orig[:n-6]) {
				t.Errorf("written %d, removed %d, kept %d", len(res.Written), len(res.Removed), len(kept))
			}
			ds := f.deletions()
			if len(ds) != 1 || ds[0].Kind != repo.DeletionOplogCompaction || ds[0].Reason != "oplog compaction" ||
				!ds[0].Time.Equal(compactNow) || !slices.Equal(ds[0].Removed, orig[:n-6]) {
				t.Errorf("deletion records: %d, %+v", len(ds), ds)
			}

			f.checkSame(f.mustRead(0, 0), before)
			f.checkSame(f.mustRead(500, 700), before[499:700])

			// A second call finds nothing to do and loads only the
			// segments after the last top-level one; none with the same
			// Log, which keeps what it planned from (the headers and end
			// records) from call to call.
			for _, fresh := range []bool{false, true} {
				l, want := f.l, 0
				if fresh {
					l, want = &Log{r: f.r, gen: f.l.gen, Parent: f.l.Parent, Now: f.l.Now}, tc.again
				}
				f.be.takeLoads()
				res, err := l.Compact(f.ctx, CompactOptions{Levels: tc.levels, Now: func() time.Time { return compactNow }})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Written)+len(res.Removed) != 0 || res.Before != len(after) || res.After != len(after) {
					t.Errorf("second call (fresh Log %v): %+v", fresh, res)
				}
				if got := len(f.be.takeLoads()); got != want {
					t.Errorf("second call (fresh Log %v) loaded %d segments, want %d", fresh, got, want)
				}
			}
			if len(f.deletions()) != 1 {
				t.Error("second call wrote a deletion record")
			}
		})
	}
}

func TestCompactCrashBeforeRemoval(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.appendRun(1, 40, 2, start, 10*time.Second) // 00:00:00 .. 00:06:30, lsn 1..80
	before := f.mustRead(0, 0)
	orig := f.keys()
	_, tailEnd, err := f.l.Tail(f.ctx)
	if err != nil {
		t.Fatal(err)
	}

	f.be.failRemove.Store(true)
	res, err := f.l.Compact(f.ctx, CompactOptions{Levels: []time.Duration{time.Minute}})
	if err == nil || !strings.Contains(err.Error(), "remove refused") {
		t.Fatalf("compact: %v", err)
	}
	// Minutes 0..5 compacted; their 36 segments stay, covered.
	if len(res.Written) != 6 || len(res.Removed) != 0 || res.After != 10 || len(f.keys()) != 46 {
		t.Fatalf("%+v, %d keys", res, len(f.keys()))
	}
	if ds := f.deletions(); len(ds) != 1 || !slices.Equal(ds[0].Removed, orig[:36]) {
		t.Fatalf("the deletion record must name the segments before they go: %+v", ds)
	}
	f.checkSame(f.mustRead(0, 0), before)
	f.checkSame(f.mustRead(30, 50), before[29:50])
	last, end, err := f.l.Tail(f.ctx)
	if err != nil || last.LSN != 80 || end != tailEnd {
		t.Fatalf("tail %v %s %v", last, end, err)
	}
	key, err := f.l.Append(f.ctx, []*Record{f.rec(81, start.Add(6*time.Minute+40*time.Second), "")})
	if err != nil {
		t.Fatal(err)
	}
	if h := f.header(key); h.Prev != tailEnd {
		t.Fatalf("appended prev %q, want %q", h.Prev, tailEnd)
	}
	before = f.mustRead(0, 0)
	if len(before) != 81 {
		t.Fatalf("%d records", len(before))
	}

	f.be.failRemove.Store(false)
	res = f.compact(time.Minute)
	if len(res.Written) != 0 || !slices.Equal(res.Removed, orig[:36]) || res.Before != 11 || res.After != 11 {
		t.Fatalf("clean-up: %+v", res)
	}
	if ds := f.deletions(); len(ds) != 2 {
		t.Fatalf("%d deletion records, want 2", len(ds))
	}
	f.checkSame(f.mustRead(0, 0), before)
	if got := len(f.keys()); got != 11 {
		t.Fatalf("%d keys, want 11", got)
	}
}

func TestCompactLeftoversNotAPrefix(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.appendRun(1, 5, 2, start, time.Second) // A1..A5, lsn 1..10
	orig := f.keys()
	ids := make([]string, len(orig))
	for i, k := range orig {
		s, _ := ParseSegmentKey(k)
		ids[i] = s.ID.String()
	}
	recs := f.mustRead(0, 0)
	// Leftovers of two interrupted compactions: C2 = A2..A3, then
	// C = A1..A5, which covers the tail.
	c2 := f.writeSegment(1, ids[0], ids[2], recs[2:6])
	c := f.writeSegment(1, "", ids[4], recs)
	f.checkSame(f.mustRead(0, 0), recs)
	f.checkSame(f.mustRead(4, 0), recs[3:])
	last, end, err := f.l.Tail(f.ctx)
	if err != nil || last.LSN != 10 || end != ids[4] {
		t.Fatalf("tail %v %s %v", last, end, err)
	}
	// Append chains after C: prev = C's tail.
	a6, err := f.l.Append(f.ctx, []*Record{f.rec(11, start.Add(5*time.Second), "")})
	if err != nil {
		t.Fatal(err)
	}
	if h := f.header(a6); h.Prev != f.header(c).Tail {
		t.Fatalf("prev %q, want C's tail %q", h.Prev, f.header(c).Tail)
	}
	all := f.mustRead(0, 0)
	if len(all) != 11 {
		t.Fatalf("%d records", len(all))
	}

	res := f.compact(time.Minute) // one open minute: nothing to group
	want := append(slices.Clone(orig), c2)
	slices.Sort(want)
	if len(res.Written) != 0 || !slices.Equal(res.Removed, want) {
		t.Fatalf("removed %v, want %v", res.Removed, want)
	}
	if got := f.keys(); !slices.Equal(got, []string{c, a6}) {
		t.Fatalf("keys %v", got)
	}
	f.checkSame(f.mustRead(0, 0), all)
}

func TestCompactRefuses(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		levels []time.Duration
		// damage changes the log of lsn 1..20 in 10 s segments of 2.
		damage func(f *segFixture, recs []*Record)
		want   string
	}{
		{"sub-second level", []time.Duration{time.Minute, 1500 * time.Millisecond}, nil, "level 2: bucket width 1.5s"},
		{"zero level", []time.Duration{0}, nil, "level 1: bucket width 0s"},
		{
			name:   "covered segment differs",
			levels: []time.Duration{time.Minute},
			damage: func(f *segFixture, recs []*Record) {
				// A leftover C = A1..A2, with another record at lsn 3.
				a2, _ := ParseSegmentKey(f.keys()[1])
				other := f.rec(3, start.Add(10*time.Second), `"tx":"other",`)
				f.writeSegment(1, "", a2.ID.String(), []*Record{recs[0], recs[1], other, recs[3]})
			},
			want: "differ at lsn 3: not removing either",
		},
		{
			name:   "broken chain in a group",
			levels: []time.Duration{time.Minute},
			damage: func(f *segFixture, recs []*Record) {
				// A segment in minute 1 that does not chain, then more
				// that chain after it, so that minute 1 closes.
				f.writeSegment(0, "bogus", "", []*Record{f.rec(21, start.Add(100*time.Second), "")})
				f.appendRun(22, 5, 1, start.Add(110*time.Second), 10*time.Second)
			},
			want: `oplog chain broken at lsn 21: prev "bogus"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSegFixture(t, 1)
			f.appendRun(1, 10, 2, start, 10*time.Second)
			if tc.damage != nil {
				tc.damage(f, f.mustRead(0, 0))
			}
			keys := f.keys()
			res, err := f.l.Compact(f.ctx, CompactOptions{Levels: tc.levels})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("compact: %v, want %q", err, tc.want)
			}
			if len(res.Written)+len(res.Removed) != 0 || !slices.Equal(f.keys(), keys) || len(f.deletions()) != 0 {
				t.Fatalf("a refused compaction changed the repository: %+v", res)
			}
		})
	}
}

func TestCompactSparseTransactions(t *testing.T) {
	// Generation 2 (its segments carry parent), sparse lsns 10, 20, ...
	// with prev_lsn, and every transaction spanning two segments.
	f := newSegFixture(t, 2)
	f.appendSparseTransactions(30)
	before := f.mustRead(0, 0) // lsn 10, 20, ..., 590
	res := f.compact(time.Minute, 2*time.Minute)
	// 00:00..00:04:50: minutes 0..3 into two 2-minute segments; the
	// tail's minute stays.
	if res.Before != 30 || res.After != 2+6 || len(res.Written) != 2 {
		t.Fatalf("%+v", res)
	}
	for _, k := range res.Written {
		if h := f.header(k); h.Level != 2 || h.Parent == nil || *h.Parent != *f.l.Parent {
			t.Errorf("%s: level %d, parent %v", k, h.Level, h.Parent)
		}
	}
	f.checkSame(f.mustRead(0, 0), before)
	f.checkSame(f.mustRead(305, 450), before[30:45])
	var tr TxTracker
	txs := 0
	for _, r := range f.mustRead(0, 0) {
		if startsNew, _ := tr.Add(r); startsNew {
			txs++
		}
	}
	if txs != 30 || !tr.Open() {
		t.Errorf("%d transactions (want 30), the last open: %v", txs, tr.Open())
	}
}

func TestCompactWhileAppending(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.appendRun(1, 300, 1, start, 2*time.Second) // 00:00 .. 00:09:58
	var more []*Record
	for i := range 30 {
		more = append(more, f.rec(uint64(301+i), start.Add(10*time.Minute+time.Duration(i)*time.Second), ""))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, r := range more {
			if _, err := f.l.Append(f.ctx, []*Record{r}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	if _, err := f.l.Compact(f.ctx, CompactOptions{Levels: []time.Duration{time.Minute}}); err != nil {
		t.Error(err)
	}
	wg.Wait()
	if got := lsnsOf(f.mustRead(0, 0)); !slices.Equal(got, lsnRange(1, 330)) {
		t.Fatalf("read %d records", len(got))
	}
	res := f.compact(time.Minute)
	if got := lsnsOf(f.mustRead(0, 0)); !slices.Equal(got, lsnRange(1, 330)) || res.After != 10+30 {
		t.Fatalf("read %d records, %+v", len(got), res)
	}
}

// appendSparseTransactions appends n segments with sparse lsns 10, 20, ...
// (prev_lsn on every record), segment i at i*10 s from 2026-03-01: the end
// of transaction t(i-1) and the start of t(i), so every transaction spans
// two segments.
func (f *segFixture) appendSparseTransactions(n int) {
	f.t.Helper()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	prev := uint64(0)
	next := func(ts time.Time, tx string) *Record {
		r := f.rec(prev+10, ts, fmt.Sprintf(`"prev_lsn":%d,%s`, prev, tx))
		prev = r.LSN
		return r
	}
	for i := range n {
		ts := start.Add(time.Duration(i) * 10 * time.Second)
		var recs []*Record
		if i > 0 {
			recs = append(recs, next(ts, fmt.Sprintf(`"tx":"t%d","tx_end":true,`, i-1)))
		}
		recs = append(recs, next(ts, fmt.Sprintf(`"tx":"t%d",`, i)))
		if _, err := f.l.Append(f.ctx, recs); err != nil {
			f.t.Fatal(err)
		}
	}
}

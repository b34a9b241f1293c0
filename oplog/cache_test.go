package oplog

import (
	"slices"
	"testing"
	"time"
)

// TestAppendKeepsTail: Append chains after the tail its Log last wrote or
// read, without reading the generation again, also across a compaction.
func TestAppendKeepsTail(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var keys []string
	lsn := uint64(1)
	for i := range 12 { // 20 s apart: three per minute
		recs := []*Record{f.rec(lsn, start.Add(time.Duration(i)*20*time.Second), ""), f.rec(lsn+1, start.Add(time.Duration(i)*20*time.Second+time.Millisecond), "")}
		lsn += 2
		f.be.takeLoads()
		key, err := f.l.Append(f.ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(f.be.takeLoads()); n != 0 {
			t.Fatalf("append %d loaded %d segments", i, n)
		}
		if i > 0 {
			prev, _ := ParseSegmentKey(keys[i-1])
			if h := f.header(key); h.Prev != prev.ID.String() {
				t.Fatalf("prev %q, want %q", h.Prev, prev.ID)
			}
		}
		keys = append(keys, key)
		if i == 8 {
			// Compaction replaces the closed minutes; the tail stays.
			res := f.compact(time.Minute)
			if len(res.Written) == 0 {
				t.Fatalf("nothing compacted: %+v", res)
			}
		}
	}
	// What a Log without the cache finds is what this one chained after.
	fresh := &Log{r: f.r, gen: 1, Now: time.Now}
	last, end, err := fresh.Tail(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	cached, cachedEnd, ok := f.l.cachedTail()
	if !ok || cachedEnd != end || !Same(cached, last) || cached.Eff != last.Eff {
		t.Fatalf("cached tail %v %s, stored %v %s", cached, cachedEnd, last, end)
	}
	// A fresh Log's Append finds the tail by itself.
	key, err := fresh.Append(f.ctx, []*Record{f.rec(lsn, start.Add(5*time.Minute), "")})
	if err != nil {
		t.Fatal(err)
	}
	if h := fresh.header(t, key); h.Prev != end {
		t.Fatalf("prev %q, want %q", h.Prev, end)
	}
	if got := lsnsOf(f.mustRead(0, 0)); !slices.Equal(got, lsnRange(1, lsn)) {
		t.Fatalf("read %v", got)
	}
}

func (l *Log) header(t *testing.T, key string) Header {
	t.Helper()
	s, err := ParseSegmentKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := l.Load(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestCompactMaxBytes: a group larger than MaxBytes becomes several
// consecutive segments of its level, none larger than MaxBytes, with the
// same records, and a later call leaves them alone.
func TestCompactMaxBytes(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 22, 30, 0, 0, time.UTC)
	const n = 1080 // 10 s segments, 22:30 .. 01:29:50
	f.appendRun(1, n, 1, start, 10*time.Second)
	before := f.mustRead(0, 0)
	segs, err := f.l.Segments(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum, _, err := f.l.summary(f.ctx, segs[0])
	if err != nil {
		t.Fatal(err)
	}
	maxBytes := 25 * sum.bodyLen // about 25 records; an hour is 360
	res, err := f.l.Compact(f.ctx, CompactOptions{MaxBytes: maxBytes, Now: func() time.Time { return compactNow }})
	if err != nil {
		t.Fatal(err)
	}
	f.checkSame(f.mustRead(0, 0), before)
	f.checkSame(f.mustRead(500, 700), before[499:700])
	counts := map[int]int{}
	var prevEnd string
	for i, k := range f.keys() {
		s, _ := ParseSegmentKey(k)
		h, recs, err := f.l.Load(f.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		counts[h.Level]++
		if h.Level >= 1 {
			var size int64
			for _, r := range recs {
				size += int64(len(r.AppendJSON(nil)) + 1)
			}
			if size > maxBytes {
				t.Errorf("%s: level %d, %d bytes of records, more than %d", k, h.Level, size, maxBytes)
			}
		}
		if i > 0 && h.Prev != prevEnd {
			t.Errorf("%s: prev %q, want %q", k, h.Prev, prevEnd)
		}
		prevEnd = EndID(h, s.ID)
	}
	// 1 March (1.5 h) at level 3, the hours 00 at level 2, the minutes of
	// 01:00..01:28 at level 1 (each within the cap), the tail's minute at 0.
	if counts[3] < 10 || counts[2] < 10 || counts[1] != 29 || counts[0] != 6 || res.After != len(f.keys()) {
		t.Errorf("levels %v, %+v", counts, res)
	}
	t.Logf("levels %v", counts)
	// Nothing left to do, with this Log or a fresh one.
	for _, l := range []*Log{f.l, {r: f.r, gen: 1}} {
		res, err = l.Compact(f.ctx, CompactOptions{MaxBytes: maxBytes, Now: func() time.Time { return compactNow }})
		if err != nil || len(res.Written)+len(res.Removed) != 0 {
			t.Fatalf("second call: %+v %v", res, err)
		}
	}
}

// TestHistoryLoadsLittle: a log's coverage and a cut at a segment's end
// need its summaries (decrypted, not decoded), and the segments they need
// in full are decoded once per History.
func TestHistoryLoadsLittle(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.appendRun(1, 30, 4, start, time.Second) // lsn 1..120, no transactions
	f.be.takeLoads()
	h, err := OpenHistory(f.ctx, f.r, 1)
	if err != nil {
		t.Fatal(err)
	}
	cov, err := h.Coverage(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cov.Runs) != 1 || cov.Runs[0].First.LSN != 1 || cov.Runs[0].Last.LSN != 120 || !cov.Runs[0].HasWhole || cov.Runs[0].LastWhole.LSN != 120 {
		t.Fatalf("coverage %+v", cov)
	}
	for _, lsn := range []uint64{40, 41, 120} {
		p, ok, err := h.CutEnd(f.ctx, lsn)
		if err != nil || !ok || p.LSN != lsn {
			t.Fatalf("cut at %d: %+v %v %v", lsn, p, ok, err)
		}
	}
	if _, ok, err := h.CutEnd(f.ctx, 41); err != nil || !ok {
		t.Fatal(err)
	}
	loads := f.be.takeLoads()
	// The first and last segments (summaries), the one ending at lsn 40
	// (summary) and the one holding lsn 41 (decoded), each once.
	if len(loads) != 4 {
		t.Errorf("loaded %v", loads)
	}
	for k, c := range loads {
		if c != 1 {
			t.Errorf("%s loaded %d times", k, c)
		}
	}
}

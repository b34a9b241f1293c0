package oplog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
)

// segCountingBackend counts the loads of each oplog object and can refuse
// removals (a compaction that dies before removing what it replaced).
type segCountingBackend struct {
	backend.Backend
	mu         sync.Mutex
	loads      map[string]int
	failRemove atomic.Bool
	afterLoad  func() // called after each load of an oplog object, if set
}

func (b *segCountingBackend) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if strings.HasPrefix(key, repo.PrefixOplog+"/") {
		b.mu.Lock()
		b.loads[key]++
		b.mu.Unlock()
		if b.afterLoad != nil {
			defer b.afterLoad()
		}
	}
	return b.Backend.Load(ctx, key, offset, length, fn)
}

func (b *segCountingBackend) Remove(ctx context.Context, key string) error {
	if b.failRemove.Load() {
		return errors.New("remove refused by the test")
	}
	return b.Backend.Remove(ctx, key)
}

// takeLoads returns the loads counted since the last call and resets them.
func (b *segCountingBackend) takeLoads() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.loads
	b.loads = map[string]int{}
	return m
}

// segFixture is a log on a counting in-memory repository.
type segFixture struct {
	t   *testing.T
	ctx context.Context
	be  *segCountingBackend
	r   *repo.Repository
	l   *Log
}

func newSegFixture(t *testing.T, gen uint64) *segFixture {
	t.Helper()
	be := &segCountingBackend{Backend: backend.OpenMem(), loads: map[string]int{}}
	f := &segFixture{t: t, ctx: context.Background(), be: be, r: repotest.NewOn(t, be)}
	l, err := Open(f.ctx, f.r, gen)
	if err != nil {
		t.Fatal(err)
	}
	if gen >= 2 {
		l.Parent = &Parent{Generation: gen - 1, LSN: 7}
	}
	f.l = l
	return f
}

// rec parses a record line: lsn at ts, with extra fields (e.g.
// `"prev_lsn":3,"tx":"a",`) before the tier.
func (f *segFixture) rec(lsn uint64, ts time.Time, extra string) *Record {
	f.t.Helper()
	var line string
	if lsn%3 == 0 {
		line = fmt.Sprintf(`{"lsn":%d,"ts":%q,%s"tier":"w","op":"delete","kind":"node","id":"n%d"}`,
			lsn, ts.UTC().Format(time.RFC3339Nano), extra, lsn)
	} else {
		line = fmt.Sprintf(`{"lsn":%d,"ts":%q,%s"tier":"w","op":"upsert","record":{"type":"node","id":"n%d","labels":["P"],"properties":{"v":%d.50,"s":"x\u00e9"}}}`,
			lsn, ts.UTC().Format(time.RFC3339Nano), extra, lsn, lsn)
	}
	r, err := ParseRecord([]byte(line), int(lsn))
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// appendRun adds n level-0 segments of per records each after the tail,
// lsns from first on, the records of segment i at start + i*every. It
// chains them as Append does but without Append's listing per segment,
// which would make long runs slow.
func (f *segFixture) appendRun(first uint64, n, per int, start time.Time, every time.Duration) {
	f.t.Helper()
	_, prev, err := f.l.Tail(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	lsn := first
	for i := range n {
		var recs []*Record
		for range per {
			recs = append(recs, f.rec(lsn, start.Add(time.Duration(i)*every+250*time.Millisecond), ""))
			lsn++
		}
		s, _ := ParseSegmentKey(f.writeSegment(0, prev, "", recs))
		prev = s.ID.String()
	}
}

// writeSegment stores a segment by hand (a compacted one when level >= 1)
// and returns its key.
func (f *segFixture) writeSegment(level int, prev, tail string, recs []*Record) string {
	f.t.Helper()
	h := Header{Generation: f.l.gen, Level: level, Prev: prev, Tail: tail, Parent: f.l.Parent, SealedAt: "2026-03-01T00:00:00Z"}
	plain, err := EncodeSegment(h, recs)
	if err != nil {
		f.t.Fatal(err)
	}
	stored, id := f.r.SealObject(repo.PrefixOplog, plain)
	key := SegmentKey(f.l.gen, recs[0].LSN, recs[len(recs)-1].LSN, id)
	if err := f.r.Backend().Save(f.ctx, key, stored); err != nil {
		f.t.Fatal(err)
	}
	// Written behind the Log's back, as only another writer could: the
	// tail the Log keeps for its next Append is no longer known.
	f.l.forgetTail()
	return key
}

// read returns the records Read yields, and its error (nil at io.EOF).
func (f *segFixture) read(from, to uint64) ([]*Record, error) {
	it, err := f.l.Read(f.ctx, from, to)
	if err != nil {
		return nil, err
	}
	var out []*Record
	for {
		r, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

func (f *segFixture) mustRead(from, to uint64) []*Record {
	f.t.Helper()
	recs, err := f.read(from, to)
	if err != nil {
		f.t.Fatal(err)
	}
	return recs
}

// checkSame fails unless got and want are the same records (lsn, effective
// ts, content) in the same order.
func (f *segFixture) checkSame(got, want []*Record) {
	f.t.Helper()
	if len(got) != len(want) {
		f.t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].LSN != want[i].LSN || got[i].EffTS != want[i].EffTS || !Same(got[i], want[i]) {
			f.t.Fatalf("record %d: %s, want %s", i, got[i].AppendJSON(nil), want[i].AppendJSON(nil))
		}
	}
}

// keys lists the generation's segment keys.
func (f *segFixture) keys() []string {
	f.t.Helper()
	segs, err := f.l.Segments(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.Key)
	}
	return out
}

func lsnsOf(recs []*Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.LSN)
	}
	return out
}

func lsnRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestReadLoadsOnlyTheRange(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.appendRun(1, 10, 3, start, time.Second) // lsn 1..30, segments [1..3], [4..6], ...
	tests := []struct {
		from, to uint64
		loads    int
		want     []uint64
	}{
		{0, 0, 10, lsnRange(1, 30)},
		{14, 20, 3, lsnRange(14, 20)},
		{13, 15, 1, lsnRange(13, 15)},
		{1, 3, 1, lsnRange(1, 3)},
		{30, 0, 1, []uint64{30}},
		{31, 0, 1, nil},
		{5, 3, 0, nil},
	}
	for _, tc := range tests {
		f.be.takeLoads()
		got := lsnsOf(f.mustRead(tc.from, tc.to))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Read(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
		if n := len(f.be.takeLoads()); n != tc.loads {
			t.Errorf("Read(%d, %d) loaded %d segments, want %d", tc.from, tc.to, n, tc.loads)
		}
	}
}

// TestLoadHonoursCancel: a segment load whose context is cancelled (its
// reader's caller is done with the log) returns the cancellation, not the
// segment: the segments a reader loads ahead are not decoded for nothing.
func TestLoadHonoursCancel(t *testing.T) {
	f := newSegFixture(t, 1)
	f.appendRun(1, 2, 3, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Second)
	segs, err := f.l.Segments(f.ctx)
	if err != nil || len(segs) != 2 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	// Cancelled while the segment was being fetched: the fetch completes,
	// the decode does not happen.
	ctx, cancel := context.WithCancel(f.ctx)
	f.be.afterLoad = cancel
	if _, recs, err := f.l.Load(ctx, segs[1]); !errors.Is(err, context.Canceled) || recs != nil {
		t.Errorf("load cancelled during the fetch: %d records, %v", len(recs), err)
	}
	f.be.afterLoad = nil
	if _, recs, err := f.l.Load(f.ctx, segs[1]); err != nil || len(recs) != 3 {
		t.Errorf("load: %d records, %v", len(recs), err)
	}
}

func TestReadChecksTheChainAfterFrom(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		// bad writes a segment after lsn 1..30 that does not continue them.
		bad      func(f *segFixture, tail string) string
		from     uint64
		want     string // Read(from, 0)'s error
		fromLast string // Read from the bad segment's first lsn: trusts its prev
	}{
		{
			name: "prev",
			bad: func(f *segFixture, tail string) string {
				return f.writeSegment(0, "bogus", "", []*Record{f.rec(31, start.Add(time.Minute), "")})
			},
			from: 14, want: `has prev "bogus"`,
		},
		{
			name: "lsn gap",
			bad: func(f *segFixture, tail string) string {
				return f.writeSegment(0, tail, "", []*Record{f.rec(32, start.Add(time.Minute), "")})
			},
			from: 29, want: "expected lsn 31, got 32",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSegFixture(t, 1)
			f.appendRun(1, 10, 3, start, time.Second)
			_, tail, err := f.l.Tail(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			key := tc.bad(f, tail)
			recs, err := f.read(tc.from, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read(%d, 0) = %v, want %q", tc.from, err, tc.want)
			}
			if recs[len(recs)-1].LSN != 30 {
				t.Errorf("records before the break end at %d, want 30", recs[len(recs)-1].LSN)
			}
			s, _ := ParseSegmentKey(key)
			if _, err := f.read(s.FirstLSN, 0); err != nil {
				t.Errorf("a Read starting at the segment trusts its prev, got %v", err)
			}
		})
	}
}

func TestReadFirstSegmentPrev(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	first := f.writeSegment(0, "bogus", "", []*Record{f.rec(1, start, ""), f.rec(2, start, "")})
	s, _ := ParseSegmentKey(first)
	second := f.writeSegment(0, s.ID.String(), "", []*Record{f.rec(3, start, "")})
	// The first stored segment's prev is trusted: prune removes a
	// generation's head with a deletion record, and check (which reads
	// those) judges a head that is missing without one.
	for _, from := range []uint64{0, 2} {
		if got, err := f.read(from, 0); err != nil || len(got) != int(4-max(from, 1)) {
			t.Errorf("Read(%d, 0): %v %v, want the records from the first stored segment on", from, lsnsOf(got), err)
		}
	}
	if got, err := f.read(3, 0); err != nil || len(got) != 1 {
		t.Errorf("Read(3, 0) from %s: %v %v", second, lsnsOf(got), err)
	}
}

func TestReadSparseFromTheMiddle(t *testing.T) {
	f := newSegFixture(t, 1)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	lsn := uint64(0)
	for i := range 5 {
		var recs []*Record
		for range 2 {
			recs = append(recs, f.rec(lsn+10, start.Add(time.Duration(i)*time.Second), fmt.Sprintf(`"prev_lsn":%d,`, lsn)))
			lsn += 10
		}
		if _, err := f.l.Append(f.ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	// Segment 3 holds lsn 50 and 60; from 55 starts there, to 75 stops
	// after segment 4.
	f.be.takeLoads()
	got := lsnsOf(f.mustRead(55, 75))
	if fmt.Sprint(got) != "[60 70]" {
		t.Errorf("Read(55, 75) = %v", got)
	}
	if n := len(f.be.takeLoads()); n != 2 {
		t.Errorf("loaded %d segments, want 2", n)
	}
}

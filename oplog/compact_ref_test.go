package oplog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
)

// compactRef is Compact as it was before it planned from summaries, kept
// verbatim as the reference its results must match.
//
// Compact rewrites runs of small segments into larger ones, level by level
// (docs/design.md section 10), so that a day of log is tens of objects. For
// level L = 1, 2, ... in turn, a group is a maximal run of consecutive chain
// segments of level < L whose last_ts fall in one Levels[L-1] bucket; a group
// of two or more segments whose bucket is closed (a later segment is in a
// later bucket) becomes one level-L segment with the same record lines, prev
// = the first one's prev and tail = the last one's end id, so the segments
// after it chain on unchanged. Groups formed at one level and absorbed at a
// higher one in the same call are never written.
//
// The new segments are written first, then one deletion record (kind
// oplog-compaction) naming every segment to remove, then those are removed.
// A crash in between leaves overlapping segments with identical records,
// which readers skip; the next call removes them, after checking they hold
// the records of the segment covering them. The tail's bucket is never
// closed, so a push may append concurrently: Append chains after the tail,
// whose prev stays valid. A reader that listed the segments before a
// removal may find one gone (an error wrapping backend.ErrNotFound) and
// should read again.
//
// The caller holds the log's writer lease (repo.LeaseOplog, scope = the
// generation); Compact does not take it.
func (l *Log) compactRef(ctx context.Context, opts CompactOptions) (CompactResult, error) {
	levels := opts.Levels
	if len(levels) == 0 {
		levels = defaultLevels
	}
	for i, w := range levels {
		if w <= 0 || w%time.Second != 0 {
			return CompactResult{}, fmt.Errorf("oplog compact: level %d: bucket width %s is not a positive whole number of seconds", i+1, w)
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	reason := opts.Reason
	if reason == "" {
		reason = "oplog compaction"
	}

	segs, err := l.Segments(ctx)
	if err != nil {
		return CompactResult{}, err
	}
	c, covered := splitChain(segs)
	res := CompactResult{Before: len(c), After: len(c)}

	loaded := map[string]*compactPieceRef{}
	load := func(s Segment) (*compactPieceRef, error) {
		if p, ok := loaded[s.Key]; ok {
			return p, nil
		}
		h, recs, err := l.Load(ctx, s)
		if err != nil {
			return nil, err
		}
		p := &compactPieceRef{h: h, end: EndID(h, s.ID), recs: recs, keys: []string{s.Key}}
		loaded[s.Key] = p
		return p, nil
	}

	// Only the segments after the last top-level one can still be grouped:
	// that one was written when its bucket had closed, by a call that had
	// already compacted every closed group before it, and ts never go back
	// along a generation, so no later segment can join it. Stopping there
	// keeps a call from loading the whole generation.
	start := len(c)
	for ; start > 0; start-- {
		p, err := load(c[start-1])
		if err != nil {
			return res, err
		}
		if p.h.Level >= len(levels) {
			break
		}
	}
	pieces := make([]*compactPieceRef, 0, len(c)-start)
	for _, s := range c[start:] {
		pieces = append(pieces, loaded[s.Key])
	}
	sealedAt := now().UTC().Format(time.RFC3339Nano)
	for i, w := range levels {
		if pieces, err = compactLevelRef(pieces, i+1, int64(w/time.Second), l.gen, sealedAt); err != nil {
			return res, err
		}
	}

	var remove []string
	for _, cv := range covered {
		p, err := load(cv.Seg)
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed by an earlier run; the listing lags
		}
		if err != nil {
			return res, err
		}
		by, err := load(cv.By)
		if err != nil {
			return res, err
		}
		if p.end != by.end && cv.Seg.LastLSN == cv.By.LastLSN {
			// Not a leftover of compaction (whose last replaced segment
			// shares the end id of the one replacing it) but a duplicate
			// range: the next segment may chain from either, so both stay
			// for check to judge.
			continue
		}
		if err := sameRecordsRef(p, by); err != nil {
			return res, err
		}
		remove = append(remove, cv.Seg.Key)
	}

	for _, p := range pieces {
		if !p.planned {
			continue
		}
		plain, err := EncodeSegment(p.h, p.recs)
		if err != nil {
			return res, err
		}
		stored, id := l.r.SealObject(repo.PrefixOplog, plain)
		key := SegmentKey(l.gen, p.recs[0].LSN, p.recs[len(p.recs)-1].LSN, id)
		if err := l.r.Backend().Save(ctx, key, stored); err != nil && !errors.Is(err, backend.ErrExists) {
			return res, fmt.Errorf("save %s: %w", key, err)
		}
		res.Written = append(res.Written, key)
		remove = append(remove, p.keys...)
	}
	res.After = start + len(pieces)
	if len(remove) == 0 {
		return res, nil
	}

	sort.Strings(remove)
	d := repo.Deletion{Kind: repo.DeletionOplogCompaction, Time: now().UTC(), Reason: reason, Removed: remove}
	if _, err := l.r.SaveDeletion(ctx, d); err != nil {
		return res, err
	}
	for _, key := range remove {
		if err := l.r.Backend().Remove(ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return res, fmt.Errorf("remove %s: %w", key, err)
		}
		res.Removed = append(res.Removed, key)
	}
	return res, nil
}

// compactPieceRef is a chain segment while Compact plans: a stored one, loaded,
// or a compacted one not written yet.
type compactPieceRef struct {
	h    Header
	end  string // the end id a following segment's prev names
	recs []*Record
	// keys are the stored segments the piece stands for: its own key, or
	// the segments a planned piece replaces.
	keys    []string
	planned bool
}

// compactLevelRef replaces each closed group of level < level pieces in one
// bucket of width seconds by one planned piece of that level.
func compactLevelRef(pieces []*compactPieceRef, level int, width int64, gen uint64, sealedAt string) ([]*compactPieceRef, error) {
	if len(pieces) == 0 {
		return pieces, nil
	}
	bucket := func(p *compactPieceRef) int64 {
		// The last record's ts is the header's last_ts. Floor division:
		// a whole-second width splits a ts's seconds as it splits the ts.
		sec := p.recs[len(p.recs)-1].Eff.Sec
		b := sec / width
		if sec%width < 0 {
			b--
		}
		return b
	}
	// ts never go back along a generation: a bucket is closed once the
	// tail, which pushes append after, is in a later one.
	open := bucket(pieces[len(pieces)-1])
	var out []*compactPieceRef
	for i := 0; i < len(pieces); {
		b := bucket(pieces[i])
		j := i + 1
		if pieces[i].h.Level < level {
			for j < len(pieces) && pieces[j].h.Level < level && bucket(pieces[j]) == b {
				j++
			}
		}
		if j-i < 2 || b >= open {
			out = append(out, pieces[i:j]...)
		} else {
			m, err := mergePiecesRef(pieces[i:j], level, gen, sealedAt)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		i = j
	}
	return out, nil
}

// mergePiecesRef plans the level-level segment holding group's records. It
// checks that the group chains as a reader checks it: a compacted segment
// must not hide a break, and its records must decode in continuity.
func mergePiecesRef(group []*compactPieceRef, level int, gen uint64, sealedAt string) (*compactPieceRef, error) {
	first, last := group[0], group[len(group)-1]
	m := &compactPieceRef{planned: true, end: last.end, h: Header{
		Generation: gen, Level: level, Prev: first.h.Prev, Tail: last.end, Parent: first.h.Parent, SealedAt: sealedAt,
	}}
	for i, p := range group {
		if i > 0 {
			if err := continuesRef(group[i-1], p); err != nil {
				return nil, err
			}
		}
		m.recs = append(m.recs, p.recs...)
		m.keys = append(m.keys, p.keys...)
	}
	return m, nil
}

// continuesRef checks that piece b follows piece a in the chain: b's prev is
// a's end id, and b's first record continuesRef a's last (lsn or prev_lsn, ts
// not going back).
func continuesRef(a, b *compactPieceRef) error {
	prev, r := a.recs[len(a.recs)-1], b.recs[0]
	if b.h.Prev != a.end {
		return fmt.Errorf("oplog chain broken at lsn %d: prev %q, want %q", r.LSN, b.h.Prev, a.end)
	}
	// Checked before the validator, which would clamp r's ts instead.
	if r.Time.Compare(prev.Eff) < 0 {
		return fmt.Errorf("oplog chain broken at lsn %d: ts %s goes back in time", r.LSN, r.TS)
	}
	v := NewValidator()
	v.Resume(prev)
	if err := v.Check(r); err != nil {
		return fmt.Errorf("oplog chain broken at lsn %d: %w", r.LSN, err)
	}
	return nil
}

// sameRecordsRef checks that covered holds the same records as the segment
// covering it. Overlapping segments must; removing one that differs would
// destroy the damage check reports.
func sameRecordsRef(covered, by *compactPieceRef) error {
	for _, r := range covered.recs {
		i := sort.Search(len(by.recs), func(i int) bool { return by.recs[i].LSN >= r.LSN })
		if i == len(by.recs) || !Same(r, by.recs[i]) {
			return fmt.Errorf("oplog segments %s and %s differ at lsn %d: not removing either", covered.keys[0], by.keys[0], r.LSN)
		}
	}
	return nil
}

// clone copies the fixture's repository, every object, and opens the copy
// as another process would, with a Log of the same generation.
func (f *segFixture) clone() *segFixture {
	f.t.Helper()
	be := &segCountingBackend{Backend: backend.OpenMem(), loads: map[string]int{}}
	err := f.be.Backend.List(f.ctx, "", func(oi backend.ObjectInfo) error {
		b, err := backend.LoadAll(f.ctx, f.be.Backend, oi.Key)
		if err != nil {
			return err
		}
		return be.Backend.Save(f.ctx, oi.Key, b)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := repo.Open(f.ctx, be, repotest.Password, repo.Options{CacheDir: f.t.TempDir()})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { r.Close() })
	l, err := Open(f.ctx, r, f.l.gen)
	if err != nil {
		f.t.Fatal(err)
	}
	l.Parent = f.l.Parent
	return &segFixture{t: f.t, ctx: f.ctx, be: be, r: r, l: l}
}

// compareCompaction runs the reference compaction on ref and Compact on
// got (a clone of it) and fails unless they did the same: the same result
// and error, the same segments removed, and the same chain, segment by
// segment, byte for byte in plaintext (only the new objects' ids, which
// encryption makes random, differ; the ids headers name are of level-0
// segments, which both share).
func compareCompaction(t *testing.T, ref, got *segFixture, opts CompactOptions) {
	t.Helper()
	want, werr := ref.l.compactRef(ref.ctx, opts)
	res, err := got.l.Compact(got.ctx, opts)
	if fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("error %v, want %v", err, werr)
	}
	// Removed keys are the same objects, except those written by earlier
	// compactions (whose ids differ): compare their lsn ranges.
	ranges := func(keys []string) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k[:len(k)-65])
		}
		return out
	}
	if res.Before != want.Before || res.After != want.After || len(res.Written) != len(want.Written) || !slices.Equal(ranges(res.Removed), ranges(want.Removed)) {
		t.Fatalf("result %+v\nwant %+v", res, want)
	}
	t.Logf("compaction: %d written, %d removed, chain %d -> %d, error %v", len(res.Written), len(res.Removed), res.Before, res.After, err)
	rd, gd := ref.deletions(), got.deletions()
	if len(rd) != len(gd) {
		t.Fatalf("%d deletion records, want %d", len(gd), len(rd))
	}
	rsegs, err := ref.l.Segments(ref.ctx)
	if err != nil {
		t.Fatal(err)
	}
	gsegs, err := got.l.Segments(got.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rsegs) != len(gsegs) {
		t.Fatalf("%d segments, want %d", len(gsegs), len(rsegs))
	}
	for i := range rsegs {
		r, g := rsegs[i], gsegs[i]
		if r.FirstLSN != g.FirstLSN || r.LastLSN != g.LastLSN {
			t.Fatalf("segment %d: lsn %d..%d, want %d..%d", i, g.FirstLSN, g.LastLSN, r.FirstLSN, r.LastLSN)
		}
		rp, err := ref.l.loadPlain(ref.ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		gp, err := got.l.loadPlain(got.ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rp, gp) {
			t.Fatalf("segment %d (lsn %d..%d) differs:\n%s\nwant\n%s", i, r.FirstLSN, r.LastLSN, gp, rp)
		}
	}
}

func TestCompactMatchesReference(t *testing.T) {
	opts := func(levels ...time.Duration) CompactOptions {
		return CompactOptions{Levels: levels, Now: func() time.Time { return compactNow }}
	}
	t.Run("levels", func(t *testing.T) {
		for _, levels := range [][]time.Duration{nil, {time.Minute, 10 * time.Minute, 30 * time.Minute}} {
			f := newSegFixture(t, 1)
			f.appendRun(1, 1080, 1, time.Date(2026, 3, 1, 22, 30, 0, 0, time.UTC), 10*time.Second)
			g := f.clone()
			compareCompaction(t, f, g, opts(levels...))
			compareCompaction(t, f, g, opts(levels...)) // nothing to do
		}
	})
	t.Run("irregular", func(t *testing.T) {
		// Two days of segments of 1..5 records at irregular times, some in
		// transactions that span segments, compacted now and then while
		// the log grows.
		f := newSegFixture(t, 1)
		g := f.clone()
		rng := rand.New(rand.NewPCG(5, 6))
		ts := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
		lsn := uint64(1)
		for step := range 600 {
			var recs []*Record
			for range 1 + rng.IntN(5) {
				extra := ""
				switch rng.IntN(4) {
				case 0:
					extra = `"tx":"t` + fmt.Sprint(lsn/7) + `",`
				case 1:
					extra = `"tx":"t` + fmt.Sprint(lsn/7) + `","tx_end":true,`
				}
				recs = append(recs, f.rec(lsn, ts, extra))
				lsn++
				ts = ts.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			}
			key, err := f.l.Append(f.ctx, recs)
			if err != nil {
				t.Fatal(err)
			}
			b, err := backend.LoadAll(f.ctx, f.be.Backend, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.be.Backend.Save(g.ctx, key, b); err != nil {
				t.Fatal(err)
			}
			ts = ts.Add(time.Duration(rng.ExpFloat64() * float64(5*time.Minute)))
			if step%50 == 49 {
				compareCompaction(t, f, g, opts())
			}
		}
		compareCompaction(t, f, g, opts())
		compareCompaction(t, f, g, opts(time.Minute, 2*time.Minute, 7*time.Minute, time.Hour))
	})
	t.Run("sparse", func(t *testing.T) {
		// Generation 2, lsns 10, 20, ... with prev_lsn, every transaction
		// spanning two segments (as TestCompactSparseTransactions).
		f := newSegFixture(t, 2)
		f.appendSparseTransactions(30)
		g := f.clone()
		compareCompaction(t, f, g, opts(time.Minute, 2*time.Minute))
	})
	t.Run("crash before removal", func(t *testing.T) {
		f := newSegFixture(t, 2)
		f.appendRun(1, 40, 2, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 10*time.Second)
		g := f.clone()
		f.be.failRemove.Store(true)
		g.be.failRemove.Store(true)
		compareCompaction(t, f, g, opts(time.Minute))
		f.be.failRemove.Store(false)
		g.be.failRemove.Store(false)
		compareCompaction(t, f, g, opts(time.Minute, time.Hour))
	})
	t.Run("leftovers", func(t *testing.T) {
		f := newSegFixture(t, 1)
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		f.appendRun(1, 5, 2, start, time.Second)
		ids := []string{}
		for _, k := range f.keys() {
			s, _ := ParseSegmentKey(k)
			ids = append(ids, s.ID.String())
		}
		recs := f.mustRead(0, 0)
		f.writeSegment(1, ids[0], ids[2], recs[2:6])
		f.writeSegment(1, "", ids[4], recs)
		f.appendRun(11, 20, 1, start.Add(time.Minute), 5*time.Second)
		g := f.clone()
		compareCompaction(t, f, g, opts(time.Minute))
	})
	t.Run("broken chain", func(t *testing.T) {
		f := newSegFixture(t, 1)
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		f.appendRun(1, 10, 2, start, 10*time.Second)
		f.writeSegment(0, "bogus", "", []*Record{f.rec(21, start.Add(100*time.Second), "")})
		f.appendRun(22, 5, 1, start.Add(110*time.Second), 10*time.Second)
		g := f.clone()
		compareCompaction(t, f, g, opts(time.Minute))
	})
}

package oplog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Point is one position of a history: a record's lsn and effective ts.
type Point struct {
	Gen  uint64
	LSN  uint64
	TS   string
	Time Time
	// PrevLSN is the record's prev_lsn when HasPrev (a sparse log).
	PrevLSN uint64
	HasPrev bool
}

func pointOf(gen uint64, r *Record) Point {
	return Point{Gen: gen, LSN: r.LSN, TS: r.EffTS, Time: r.Eff, PrevLSN: r.PrevLSN, HasPrev: r.HasPrev}
}

// Follows reports whether a state cut at lsn k can continue with p: p is
// the next record after k (lsn k+1, or prev_lsn k or earlier for a sparse
// log, where nothing lies in between).
func (p Point) Follows(k uint64) bool {
	if p.HasPrev {
		return p.PrevLSN <= k
	}
	return p.LSN <= k+1
}

// GoTime returns t as a time.Time (nanosecond precision).
func (t Time) GoTime() time.Time {
	ns := 0
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(t.Frac) {
			ns += int(t.Frac[i] - '0')
		}
	}
	return time.Unix(t.Sec, int64(ns)).UTC()
}

// TimeOf converts a time.Time (its nanoseconds exactly).
func TimeOf(t time.Time) Time {
	frac := strings.TrimRight(fmt.Sprintf("%09d", t.Nanosecond()), "0")
	return Time{Sec: t.Unix(), Frac: frac}
}

// Run is a stretch of a history without gaps: every record from First to
// Last is stored. LastWhole is the end of the last complete transaction in
// the run (an open trailing transaction is never recovered); HasWhole is
// false when no transaction of the run is complete.
type Run struct {
	First, Last Point
	LastWhole   Point
	HasWhole    bool
}

// Gap is a break in a history: the records after lsn After up to lsn
// Before (exclusive) are missing.
type Gap struct {
	Gen    uint64 `json:"generation"`
	After  uint64 `json:"after_lsn"`
	Before uint64 `json:"before_lsn"`
}

// Coverage is what a history holds: its runs in lsn order and the gaps
// between them, found from the segment keys (a segment is loaded only where
// lsns jump, to tell a sparse log from a missing range, and at the ends of
// each run for its ts).
type Coverage struct {
	Runs     []Run
	Gaps     []Gap
	Segments int
}

// spanSegs returns the chain segments of span s that hold records of it.
func spanSegs(ctx context.Context, s Span) ([]Segment, error) {
	segs, err := s.Log.Segments(ctx)
	if err != nil {
		return nil, err
	}
	var out []Segment
	for _, sg := range chain(segs) {
		if sg.LastLSN <= s.After || s.Bounded && sg.FirstLSN > s.Upto {
			continue
		}
		out = append(out, sg)
	}
	return out, nil
}

// Coverage computes the history's runs and gaps.
func (h *History) Coverage(ctx context.Context) (*Coverage, error) {
	c := &Coverage{}
	type piece struct {
		span Span
		seg  Segment
	}
	var pieces []piece
	for _, s := range h.Spans {
		segs, err := spanSegs(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, sg := range segs {
			pieces = append(pieces, piece{s, sg})
		}
	}
	c.Segments = len(pieces)
	if len(pieces) == 0 {
		return c, nil
	}
	// Split into runs where continuity breaks between consecutive pieces.
	start := 0
	var runs [][]piece
	for i := 1; i < len(pieces); i++ {
		p, q := pieces[i-1], pieces[i]
		prevLast := min(p.seg.LastLSN, boundOf(p.span))
		if q.seg.FirstLSN == prevLast+1 && p.span.Gen == q.span.Gen && p.seg.LastLSN <= boundOf(p.span) {
			continue // dense continuation inside a generation
		}
		// Look closer: the previous piece's last record inside its span and
		// the next piece's first record after the branch point.
		pr, err := h.lastIn(ctx, p.span, p.seg)
		if err != nil {
			return nil, err
		}
		qr, err := h.firstIn(ctx, q.span, q.seg)
		if err != nil {
			return nil, err
		}
		ok := pr != nil && qr != nil && follows(qr, pr) && (p.span.Gen == q.span.Gen || pr.LSN == p.span.Upto)
		if !ok {
			after := uint64(0)
			if pr != nil {
				after = pr.LSN
			}
			before := q.seg.FirstLSN
			if qr != nil {
				before = qr.LSN
				if qr.HasPrev {
					before = qr.PrevLSN + 1
				}
			}
			c.Gaps = append(c.Gaps, Gap{Gen: q.span.Gen, After: after, Before: before})
			runs = append(runs, pieces[start:i])
			start = i
		}
	}
	runs = append(runs, pieces[start:])
	for _, rp := range runs {
		first, err := h.firstIn(ctx, rp[0].span, rp[0].seg)
		if err != nil {
			return nil, err
		}
		lp := rp[len(rp)-1]
		last, err := h.lastIn(ctx, lp.span, lp.seg)
		if err != nil {
			return nil, err
		}
		if first == nil || last == nil {
			continue
		}
		run := Run{First: pointOf(rp[0].span.Gen, first), Last: pointOf(lp.span.Gen, last)}
		// The last whole transaction: scan back segment by segment until a
		// transaction boundary is found (a transaction may span segments).
		// A last record that ends its transaction is that boundary (the
		// scan's last word on the last segment).
		if holdsLast(lp.span, lp.seg) && (!last.Tx.Set || last.TxEnd) {
			run.LastWhole, run.HasWhole = run.Last, true
		}
		var nextFirst *Record
		for i := len(rp) - 1; i >= 0 && !run.HasWhole; i-- {
			recs, err := h.recsIn(ctx, rp[i].span, rp[i].seg)
			if err != nil {
				return nil, err
			}
			if nextFirst != nil {
				recs = append(recs, nextFirst)
			}
			var tr TxTracker
			for j, r := range recs {
				startsNew, closes := tr.Add(r)
				if startsNew && j > 0 {
					run.LastWhole, run.HasWhole = pointOf(rp[i].span.Gen, recs[j-1]), true
				}
				if closes && (nextFirst == nil || j < len(recs)-1) {
					run.LastWhole, run.HasWhole = pointOf(rp[i].span.Gen, r), true
				}
			}
			if len(recs) > 0 {
				nextFirst = recs[0]
			}
		}
		c.Runs = append(c.Runs, run)
	}
	return c, nil
}

func boundOf(s Span) uint64 {
	if s.Bounded {
		return s.Upto
	}
	return ^uint64(0)
}

// recsIn loads seg (or finds it in h's cache) and returns its records that
// belong to span s. The caller must not change them.
func (h *History) recsIn(ctx context.Context, s Span, seg Segment) ([]*Record, error) {
	recs, err := h.load(ctx, s, seg)
	if err != nil {
		return nil, err
	}
	out := recs[:0:0]
	for _, r := range recs {
		if r.LSN > s.After && r.LSN <= boundOf(s) {
			out = append(out, r)
		}
	}
	return out, nil
}

// load returns seg's records, decoded once per History.
func (h *History) load(ctx context.Context, s Span, seg Segment) ([]*Record, error) {
	h.mu.Lock()
	for _, c := range h.cache {
		if c.key == seg.Key {
			h.mu.Unlock()
			return c.recs, nil
		}
	}
	h.mu.Unlock()
	_, recs, err := s.Log.Load(ctx, seg)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cache = append(h.cache, cachedSegment{key: seg.Key, recs: recs})
	n := 0
	for _, c := range h.cache {
		n += len(c.recs)
	}
	for len(h.cache) > 1 && (n > historyCacheRecords || len(h.cache) > 8) {
		n -= len(h.cache[0].recs)
		h.cache = h.cache[1:]
	}
	return recs, nil
}

// holdsFirst reports whether seg's first record belongs to span s (then it
// is the first of recsIn), holdsLast the same of its last record.
func holdsFirst(s Span, seg Segment) bool {
	return seg.FirstLSN > s.After && seg.FirstLSN <= boundOf(s)
}

func holdsLast(s Span, seg Segment) bool {
	return seg.LastLSN > s.After && seg.LastLSN <= boundOf(s)
}

func (h *History) firstIn(ctx context.Context, s Span, seg Segment) (*Record, error) {
	if holdsFirst(s, seg) {
		// The segment's summary says it: no need to decode it.
		sum, _, err := s.Log.summary(ctx, seg)
		if err != nil {
			return nil, err
		}
		return sum.first, nil
	}
	recs, err := h.recsIn(ctx, s, seg)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

func (h *History) lastIn(ctx context.Context, s Span, seg Segment) (*Record, error) {
	if holdsLast(s, seg) {
		sum, _, err := s.Log.summary(ctx, seg)
		if err != nil {
			return nil, err
		}
		return sum.last, nil
	}
	recs, err := h.recsIn(ctx, s, seg)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[len(recs)-1], nil
}

// ErrCutOpen means the transaction a cut falls inside is not complete in
// the log yet.
var ErrCutOpen = errors.New("the log does not complete the transaction the cut falls inside")

// Seek returns the last record of the history with an lsn <= lsn (nil if
// there is none: lsn lies before the log).
func (h *History) Seek(ctx context.Context, lsn uint64) (*Record, uint64, error) {
	for i := len(h.Spans) - 1; i >= 0; i-- {
		s := h.Spans[i]
		if lsn <= s.After && i > 0 {
			continue
		}
		lim := min(lsn, boundOf(s))
		segs, err := spanSegs(ctx, s)
		if err != nil {
			return nil, 0, err
		}
		for j := len(segs) - 1; j >= 0; j-- {
			if segs[j].FirstLSN > lim {
				continue
			}
			if segs[j].LastLSN <= lim && holdsLast(s, segs[j]) {
				// Its last record is the one: the summary says it.
				at, err := h.lastIn(ctx, s, segs[j])
				if err != nil {
					return nil, 0, err
				}
				return at, s.Gen, nil
			}
			recs, err := h.recsIn(ctx, s, segs[j])
			if err != nil {
				return nil, 0, err
			}
			var at *Record
			for _, r := range recs {
				if r.LSN <= lim {
					at = r
				}
			}
			if at != nil {
				return at, s.Gen, nil
			}
		}
		// Nothing of this generation at or before lsn: the state there is
		// its parent's at the branch point.
		lsn = s.After
		if lsn == 0 {
			break
		}
	}
	return nil, 0, nil
}

// CutEnd returns where a cut at lsn lands: the record at lsn (or the last
// one before it, for a sparse log), extended to the end of the transaction
// it falls inside (SPEC section 5). ok is false when lsn lies before the
// history's first record (the state before the log). It fails with
// ErrCutOpen when the log ends inside that transaction, and with ErrNoLog
// when the log does not reach lsn.
func (h *History) CutEnd(ctx context.Context, lsn uint64) (p Point, ok bool, err error) {
	if lsn == 0 {
		return Point{}, false, nil
	}
	at, gen, err := h.Seek(ctx, lsn)
	if err != nil || at == nil {
		return Point{}, false, err
	}
	it, err := h.Read(ctx, at.LSN+1, 0)
	if err != nil {
		return Point{}, false, err
	}
	closed := !at.Tx.Set || at.TxEnd
	tr := TxTracker{started: true, key: at.Tx, closed: closed}
	end, endGen := at, gen
	reached := at.LSN == lsn
	for !(reached && closed) {
		r, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Point{}, false, err
		}
		reached = true
		if closed {
			break
		}
		startsNew, closes := tr.Add(r)
		if startsNew {
			closed = true // a record of another transaction completes end's
			break
		}
		end = r
		if s, ok := h.SpanOf(r.LSN); ok {
			endGen = s.Gen
		}
		closed = closes
	}
	switch {
	case !reached:
		return Point{}, false, fmt.Errorf("the log ends at lsn %d, before lsn %d: %w", at.LSN, lsn, ErrNoLog)
	case !closed:
		return Point{}, false, fmt.Errorf("lsn %d lies in transaction %s, open up to lsn %d: %w", lsn, at.Tx, end.LSN, ErrCutOpen)
	}
	return pointOf(endGen, end), true, nil
}

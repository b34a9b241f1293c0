package oplog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
)

// ErrNoLog means the repository holds no log (of that generation).
var ErrNoLog = errors.New("no oplog")

// Generations lists the generations that have segments or heartbeats, in
// ascending order.
func Generations(ctx context.Context, r *repo.Repository) ([]uint64, error) {
	seen := map[uint64]bool{}
	err := r.Backend().List(ctx, repo.PrefixOplog+"/", func(oi backend.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, repo.PrefixOplog+"/")
		if len(rest) < 11 || rest[10] != '/' {
			return nil
		}
		g, err := strconv.ParseUint(rest[:10], 10, 64)
		if err == nil && g > 0 {
			seen[g] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list oplog generations: %w", err)
	}
	gens := make([]uint64, 0, len(seen))
	for g := range seen {
		gens = append(gens, g)
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	return gens, nil
}

// NewestGeneration returns the highest generation, 0 if the log is empty.
func NewestGeneration(ctx context.Context, r *repo.Repository) (uint64, error) {
	gens, err := Generations(ctx, r)
	if err != nil || len(gens) == 0 {
		return 0, err
	}
	return gens[len(gens)-1], nil
}

// Gen returns the log's generation.
func (l *Log) Gen() uint64 { return l.gen }

// LoadParent returns where the generation branches off (from its first
// segment's header, which it decrypts but does not decode further): nil
// for generation 1 or one without segments.
func (l *Log) LoadParent(ctx context.Context) (*Parent, error) {
	segs, err := l.Segments(ctx)
	if err != nil || len(segs) == 0 {
		return nil, err
	}
	sum, _, err := l.summary(ctx, segs[0])
	if err != nil {
		return nil, err
	}
	h := sum.h
	if l.gen >= 2 && h.Parent == nil {
		return nil, fmt.Errorf("%s: generation %d has no parent in its header", segs[0].Key, l.gen)
	}
	return h.Parent, nil
}

// Span is the part of one generation a history uses: its records with
// After < lsn, and lsn <= Upto when Bounded.
type Span struct {
	Gen     uint64
	After   uint64
	Upto    uint64
	Bounded bool
	Log     *Log
}

// History is the line of log a generation's database went through: the
// records of its ancestors up to each branch point, then its own (like a
// PostgreSQL timeline).
type History struct {
	Gen   uint64
	Spans []Span // oldest first; the last one is Gen's, unbounded

	// The segments decoded for Coverage, Seek and CutEnd, which look at the
	// same few (the ends of each run, the one holding a cut) again and
	// again: a few, by key.
	mu    sync.Mutex
	cache []cachedSegment
}

type cachedSegment struct {
	key  string
	recs []*Record
}

// historyCacheRecords bounds the records a History keeps decoded (beyond
// the segment loaded last).
const historyCacheRecords = 1 << 18

// OpenHistory returns generation gen's history (gen 0: the newest
// generation). It fails with ErrNoLog when the repository has no log.
func OpenHistory(ctx context.Context, r *repo.Repository, gen uint64) (*History, error) {
	if gen == 0 {
		g, err := NewestGeneration(ctx, r)
		if err != nil {
			return nil, err
		}
		if g == 0 {
			return nil, fmt.Errorf("open oplog: the repository has %w (push one with strata oplog push)", ErrNoLog)
		}
		gen = g
	} else {
		gens, err := Generations(ctx, r)
		if err != nil {
			return nil, err
		}
		if i := sort.Search(len(gens), func(i int) bool { return gens[i] >= gen }); i == len(gens) || gens[i] != gen {
			return nil, fmt.Errorf("open oplog generation %d: %w of that generation (generations: %v)", gen, ErrNoLog, gens)
		}
	}
	h := &History{Gen: gen}
	span := Span{Gen: gen}
	for {
		l, err := Open(ctx, r, span.Gen)
		if err != nil {
			return nil, err
		}
		span.Log = l
		p, err := l.LoadParent(ctx)
		if err != nil {
			return nil, err
		}
		if p == nil || p.LSN == 0 {
			// A generation branching at lsn 0 shares nothing with its parent.
			h.Spans = append([]Span{span}, h.Spans...)
			return h, nil
		}
		if p.Generation >= span.Gen {
			return nil, fmt.Errorf("open oplog generation %d: its parent is generation %d", span.Gen, p.Generation)
		}
		span.After = p.LSN
		h.Spans = append([]Span{span}, h.Spans...)
		span = Span{Gen: p.Generation, Upto: p.LSN, Bounded: true}
	}
}

// SpanOf returns the span whose records include lsn: the newest span that
// starts at or before it (false if lsn lies past a bounded span's end).
func (h *History) SpanOf(lsn uint64) (Span, bool) {
	for i := len(h.Spans) - 1; i >= 0; i-- {
		s := h.Spans[i]
		if lsn > s.After || i == 0 {
			return s, !s.Bounded || lsn <= s.Upto
		}
	}
	return Span{}, false
}

// Contains reports whether a cut recorded as (gen, lsn) lies on this
// history: the state at lsn of generation gen is the state at lsn here.
func (h *History) Contains(gen, lsn uint64) bool {
	for i, s := range h.Spans {
		if s.Gen != gen {
			continue
		}
		if lsn <= s.After && i > 0 {
			// Before gen's own records: the state is its parent's at lsn.
			return h.Contains(h.Spans[i-1].Gen, lsn)
		}
		return !s.Bounded || lsn <= s.Upto
	}
	return false
}

// ReadEnd returns an lsn to read up to that takes in the first record
// after lsn, judged from the segment keys alone: the last lsn of the chain
// segment that holds it. 0 means no bound (no segment ends past lsn, or
// the record may lie beyond a branch point, where the whole history is
// read). A replay to lsn needs that one record past its cut, to tell
// whether a transaction continues across it, and nothing after it: the
// reader would otherwise load segments ahead of need, up to 64 MiB each.
func (h *History) ReadEnd(ctx context.Context, lsn uint64) (uint64, error) {
	for _, s := range h.Spans {
		if s.Bounded && s.Upto <= lsn {
			continue // all of its records are at or before lsn
		}
		segs, err := s.Log.Chain(ctx)
		if err != nil {
			return 0, err
		}
		i := sort.Search(len(segs), func(i int) bool { return segs[i].LastLSN > lsn })
		// The segment's last record lies past lsn and inside the span:
		// the record after lsn is in it or before it. Past a bounded
		// span's end the reader would stop, so look in the next span.
		if i < len(segs) && (!s.Bounded || segs[i].LastLSN <= s.Upto) {
			return segs[i].LastLSN, nil
		}
	}
	return 0, nil
}

// Read returns the history's records with fromLSN <= lsn <= toLSN (toLSN
// 0: to the end), crossing branch points; continuity is checked across
// them (a generation's first record follows its parent's record at the
// branch lsn).
func (h *History) Read(ctx context.Context, fromLSN, toLSN uint64) (Iterator, error) {
	return &historyReader{ctx: ctx, h: h, from: fromLSN, to: toLSN, v: NewValidator()}, nil
}

type historyReader struct {
	ctx      context.Context
	h        *History
	i        int
	cur      Iterator
	from, to uint64
	v        *Validator
	err      error
}

func (hr *historyReader) Next() (*Record, error) {
	for hr.err == nil {
		if hr.cur == nil {
			if hr.i >= len(hr.h.Spans) {
				hr.err = io.EOF
				break
			}
			s := hr.h.Spans[hr.i]
			hr.i++
			from, to := max(hr.from, s.After+1), hr.to
			if s.Bounded && (to == 0 || to > s.Upto) {
				to = s.Upto
			}
			if to != 0 && from > to {
				continue
			}
			it, err := s.Log.Read(hr.ctx, from, to)
			if err != nil {
				hr.err = err
				break
			}
			hr.cur = it
		}
		rec, err := hr.cur.Next()
		if errors.Is(err, io.EOF) {
			hr.cur = nil
			continue
		}
		if err != nil {
			hr.err = err
			break
		}
		if hr.v.Last() != nil {
			// Re-check only at a branch point: inside a span the segment
			// reader already did, and a span's ts are stored clamped.
			if last := hr.v.Last(); rec.LSN <= last.LSN || !follows(rec, last) {
				hr.err = fmt.Errorf("oplog history broken at lsn %d of generation %d: it does not follow lsn %d", rec.LSN, hr.h.Spans[hr.i-1].Gen, last.LSN)
				break
			}
		}
		if last := hr.v.Last(); last != nil && rec.Eff.Compare(last.Eff) < 0 {
			// A branch may start before its parent's last ts: clamp as push does.
			rec.Eff, rec.EffTS = last.Eff, last.EffTS
		}
		hr.v.Resume(rec)
		return rec, nil
	}
	return nil, hr.err
}

// follows reports whether r may follow prev (lsn continuity only).
func follows(r, prev *Record) bool {
	if r.HasPrev {
		return r.PrevLSN == prev.LSN
	}
	return r.LSN == prev.LSN+1
}

package verify

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
)

// The oplog: every generation chained without gaps.

// checkOplog checks every generation's chain, generation by generation.
func (c *checker) checkOplog(ctx context.Context) error {
	gens := map[uint64]bool{}
	for g := range c.segments {
		gens[g] = true
	}
	for g := range c.heartbeats {
		gens[g] = true
	}
	order := make([]uint64, 0, len(gens))
	for g := range gens {
		order = append(order, g)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	c.res.Generations = len(order)
	c.progress.Stage("oplog", len(order), 0)
	for _, g := range order {
		if err := c.checkGeneration(ctx, g); err != nil {
			return err
		}
		c.progress.Done(1, 0)
	}
	return nil
}

// checkGeneration walks a generation and reports what it found. A push and
// its compaction may run meanwhile: when a segment vanished during the walk
// (compaction replaced it) or a heartbeat vouches for more than the listing
// held (a segment sealed after it), problems may be artefacts of the stale
// listing, so the generation is listed and walked again, up to 3 times.
func (c *checker) checkGeneration(ctx context.Context, gen uint64) error {
	segs := c.segments[gen]
	for attempt := 1; ; attempt++ {
		found, stale, err := c.walkGeneration(ctx, gen, segs)
		if err != nil {
			return err
		}
		if !stale || len(found) == 0 || attempt == 3 {
			c.mu.Lock()
			c.res.Problems = append(c.res.Problems, found...)
			c.res.Segments += len(segs)
			c.mu.Unlock()
			return nil
		}
		l, err := oplog.Open(ctx, c.r, gen)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		if segs, err = l.Segments(ctx); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
}

// walkGeneration walks one generation's segments in chain order (first
// lsn, then the longest first, as oplog's reader does). A segment whose
// range lies inside the chain segment before it (a compaction leftover)
// must hold the same records; every chain segment must continue the one
// before it. Segments load ahead of the walk, c.workers at a time. stale
// says the listing was found out of date.
func (c *checker) walkGeneration(ctx context.Context, gen uint64, segs []oplog.Segment) (found []Problem, stale bool, err error) {
	sort.Slice(segs, func(i, j int) bool {
		a, b := segs[i], segs[j]
		if a.FirstLSN != b.FirstLSN {
			return a.FirstLSN < b.FirstLSN
		}
		if a.LastLSN != b.LastLSN {
			return a.LastLSN > b.LastLSN
		}
		return a.Key < b.Key
	})
	genObj := strings.TrimSuffix(oplog.GenerationPrefix(gen), "/")
	var cl collector
	bad := cl.add

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan chan segResult, c.workers)
	go func() {
		defer close(queue)
		for _, s := range segs {
			ch := make(chan segResult, 1)
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
			go func() { ch <- c.loadSegment(ctx, bad, gen, s) }()
		}
	}()

	var (
		cur     *segState       // the chain segment before, when usable
		curLast uint64          // its last lsn, from the key
		started bool            // a chain segment was seen
		ends    map[string]bool // end ids the next chain segment may name as prev
		parent  *oplog.Parent
	)
	for ch := range queue {
		res := <-ch
		if res.err != nil {
			return nil, false, res.err
		}
		if res.gone {
			stale = true
			continue
		}
		st := res.st
		if st != nil {
			parent = checkParent(bad, gen, st, parent)
		}
		covered := started && res.seg.LastLSN <= curLast
		switch {
		case covered:
			if st != nil && cur != nil {
				if d := differ(st, cur); d != "" {
					bad(st.seg.Key, KindOplogOverlap, "%s", d)
				} else if st.seg.LastLSN == cur.seg.LastLSN {
					ends[oplog.EndID(st.h, st.seg.ID)] = true
				}
			}
			continue
		case st == nil:
			// Unusable (reported): the chain cannot be followed across it.
			cur, curLast, started, ends = nil, res.seg.LastLSN, true, nil
			continue
		case !started:
			c.checkStart(bad, genObj, gen, st)
		case cur != nil:
			checkLink(bad, genObj, gen, cur, st, ends)
		}
		cur, curLast, started = st, st.seg.LastLSN, true
		ends = map[string]bool{oplog.EndID(st.h, st.seg.ID): true}
	}
	if hb := c.heartbeats[gen]; hb != nil && hb.hb.LastLSN > curLast {
		stale = true
		bad(genObj, KindOplogGap, "generation %d: heartbeat %s vouches for the log up to lsn %d, but its segments end at lsn %d: records after lsn %d are missing",
			gen, hb.key, hb.hb.LastLSN, curLast, curLast)
	}
	return cl.ps, stale, nil
}

// segState is a segment loaded, authentic and decoded, header matching key.
type segState struct {
	seg  oplog.Segment
	h    oplog.Header
	recs []*oplog.Record
}

type segResult struct {
	seg  oplog.Segment
	st   *segState // nil: unusable (reported) or gone
	gone bool
	err  error
}

// loadSegment loads and checks one segment on its own: name, AEAD, decoding,
// and the header against the key.
func (c *checker) loadSegment(ctx context.Context, bad report, gen uint64, s oplog.Segment) segResult {
	stored, gone, err := c.load(ctx, s.Key)
	if err != nil || gone {
		return segResult{seg: s, gone: gone, err: err}
	}
	unusable := segResult{seg: s}
	plain, reported := c.open(bad, s.Key, repo.PrefixOplog, s.ID, stored)
	if plain == nil {
		return unusable
	}
	h, recs, err := oplog.DecodeSegment(plain)
	if err != nil {
		if !reported {
			bad(s.Key, KindUndecodable, "%v", err)
		}
		return unusable
	}
	var what string
	switch {
	case h.Generation != s.Generation || h.FirstLSN != s.FirstLSN || h.LastLSN != s.LastLSN:
		what = fmt.Sprintf("header says generation %d, lsn %d..%d; the key says generation %d, lsn %d..%d",
			h.Generation, h.FirstLSN, h.LastLSN, s.Generation, s.FirstLSN, s.LastLSN)
	case h.Level < 0 || (h.Level == 0) != (h.Tail == ""):
		what = fmt.Sprintf("level %d with tail %q (a tail is what compacted segments, and only they, carry)", h.Level, h.Tail)
	case gen == 1 && h.Parent != nil:
		what = "generation 1 has no parent, but the header names one"
	}
	if what != "" {
		if !reported {
			bad(s.Key, KindOplogHeader, "%s", what)
		}
		return unusable
	}
	c.progress.Done(0, int64(len(stored)))
	return segResult{seg: s, st: &segState{seg: s, h: h, recs: recs}}
}

// checkParent checks that a generation >= 2 names a parent, the same in
// every segment, and returns the parent seen first.
func checkParent(bad report, gen uint64, st *segState, first *oplog.Parent) *oplog.Parent {
	p := st.h.Parent
	switch {
	case gen < 2:
		return nil
	case p == nil:
		bad(st.seg.Key, KindOplogParent, "generation %d needs a parent; the header names none", gen)
		return first
	case p.Generation >= gen:
		bad(st.seg.Key, KindOplogParent, "generation %d names generation %d as its parent (it must be older)", gen, p.Generation)
	case first != nil && *p != *first:
		bad(st.seg.Key, KindOplogParent, "parent (generation %d, lsn %d) differs from the generation's first segment's (generation %d, lsn %d)",
			p.Generation, p.LSN, first.Generation, first.LSN)
	}
	if first == nil {
		return p
	}
	return first
}

// checkStart checks a generation's first chain segment: its prev is ""
// unless a deletion record removed the segment before it (prune's PITR
// window: a removed segment of the generation ends at the record the first
// one continues), and a branch starts after its parent's lsn in a
// generation that exists.
func (c *checker) checkStart(bad report, genObj string, gen uint64, st *segState) {
	before := st.recs[0].LSN - 1
	if st.recs[0].HasPrev {
		before = st.recs[0].PrevLSN
	}
	if st.h.Prev != "" && !c.pruned[gen][before] {
		bad(genObj, KindOplogGap, "generation %d: the records before lsn %d are missing: its first segment %s names prev %s, and no deletion record removed it",
			gen, st.seg.FirstLSN, st.seg.Key, st.h.Prev)
	}
	p := st.h.Parent
	if gen < 2 || p == nil || p.Generation >= gen {
		return
	}
	if p.LSN > 0 && len(c.segments[p.Generation]) == 0 {
		bad(st.seg.Key, KindOplogParent, "generation %d branches from lsn %d of generation %d, which has no segments", gen, p.LSN, p.Generation)
	}
	if st.seg.FirstLSN <= p.LSN {
		bad(st.seg.Key, KindOplogParent, "generation %d starts at lsn %d, not after its branch point, lsn %d", gen, st.seg.FirstLSN, p.LSN)
	}
}

// checkLink checks that chain segment b continues a.
func checkLink(bad report, genObj string, gen uint64, a, b *segState, ends map[string]bool) {
	last, first := a.recs[len(a.recs)-1], b.recs[0]
	switch {
	case b.seg.FirstLSN <= a.seg.LastLSN:
		bad(b.seg.Key, KindOplogChain, "lsn %d..%d overlaps %s (lsn %d..%d) without covering it", b.seg.FirstLSN, b.seg.LastLSN, a.seg.Key, a.seg.FirstLSN, a.seg.LastLSN)
		return
	case first.HasPrev && first.PrevLSN > last.LSN, !first.HasPrev && first.LSN > last.LSN+1:
		upto := first.LSN - 1
		if first.HasPrev {
			upto = first.PrevLSN
		}
		bad(genObj, KindOplogGap, "generation %d: the records after lsn %d up to lsn %d are missing (between %s and %s, whose prev is %s)",
			gen, last.LSN, upto, a.seg.Key, b.seg.Key, b.h.Prev)
		return
	case first.HasPrev && first.PrevLSN != last.LSN:
		bad(b.seg.Key, KindOplogChain, "first record's prev_lsn %d does not follow lsn %d, the last of %s", first.PrevLSN, last.LSN, a.seg.Key)
		return
	}
	if !ends[b.h.Prev] {
		bad(b.seg.Key, KindOplogChain, "prev %q does not name the segment before it, %s (end id %s)", b.h.Prev, a.seg.Key, oplog.EndID(a.h, a.seg.ID))
	}
	if first.Time.Compare(last.Eff) < 0 {
		bad(b.seg.Key, KindOplogChain, "lsn %d's ts %s goes back before lsn %d's %s", first.LSN, first.TS, last.LSN, last.EffTS)
	}
}

// differ returns how covered's records differ from those of the chain
// segment by covering its range, "" if they do not.
func differ(covered, by *segState) string {
	for _, r := range covered.recs {
		i := sort.Search(len(by.recs), func(i int) bool { return by.recs[i].LSN >= r.LSN })
		if i == len(by.recs) || by.recs[i].LSN != r.LSN {
			return fmt.Sprintf("holds lsn %d, which %s (covering its range) does not", r.LSN, by.seg.Key)
		}
		if !oplog.Same(r, by.recs[i]) {
			return fmt.Sprintf("lsn %d differs from the record in %s (covering its range)", r.LSN, by.seg.Key)
		}
	}
	return ""
}

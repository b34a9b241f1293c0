package oplog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
)

// CompactOptions tunes Compact.
type CompactOptions struct {
	// Levels are the bucket widths of levels 1, 2, ...: a level-L segment
	// holds the records of consecutive segments whose last_ts fall in one
	// bucket of Levels[L-1] (UTC, aligned to the Unix epoch). Each must be a
	// positive whole number of seconds. Default {time.Minute, time.Hour,
	// 24*time.Hour}.
	Levels []time.Duration
	// Now is the clock for sealed_at and the deletion record's time
	// (default time.Now).
	Now func() time.Time
	// Reason is the deletion record's reason (default "oplog compaction").
	Reason string
}

// CompactResult is what a Compact call did. After an error, Written and
// Removed name what was done before it.
type CompactResult struct {
	// Written are the keys of the compacted segments written; Removed are
	// the keys of the segments removed: those the new ones replace and the
	// leftovers of an interrupted earlier run.
	Written, Removed []string
	// Before and After count the chain's segments.
	Before, After int
}

var defaultLevels = []time.Duration{time.Minute, time.Hour, 24 * time.Hour}

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
func (l *Log) Compact(ctx context.Context, opts CompactOptions) (CompactResult, error) {
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

	loaded := map[string]*compactPiece{}
	load := func(s Segment) (*compactPiece, error) {
		if p, ok := loaded[s.Key]; ok {
			return p, nil
		}
		h, recs, err := l.Load(ctx, s)
		if err != nil {
			return nil, err
		}
		p := &compactPiece{h: h, end: EndID(h, s.ID), recs: recs, keys: []string{s.Key}}
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
	pieces := make([]*compactPiece, 0, len(c)-start)
	for _, s := range c[start:] {
		pieces = append(pieces, loaded[s.Key])
	}
	sealedAt := now().UTC().Format(time.RFC3339Nano)
	for i, w := range levels {
		if pieces, err = compactLevel(pieces, i+1, int64(w/time.Second), l.gen, sealedAt); err != nil {
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
		if err := sameRecords(p, by); err != nil {
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

// compactPiece is a chain segment while Compact plans: a stored one, loaded,
// or a compacted one not written yet.
type compactPiece struct {
	h    Header
	end  string // the end id a following segment's prev names
	recs []*Record
	// keys are the stored segments the piece stands for: its own key, or
	// the segments a planned piece replaces.
	keys    []string
	planned bool
}

// compactLevel replaces each closed group of level < level pieces in one
// bucket of width seconds by one planned piece of that level.
func compactLevel(pieces []*compactPiece, level int, width int64, gen uint64, sealedAt string) ([]*compactPiece, error) {
	if len(pieces) == 0 {
		return pieces, nil
	}
	bucket := func(p *compactPiece) int64 {
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
	var out []*compactPiece
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
			m, err := mergePieces(pieces[i:j], level, gen, sealedAt)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		i = j
	}
	return out, nil
}

// mergePieces plans the level-level segment holding group's records. It
// checks that the group chains as a reader checks it: a compacted segment
// must not hide a break, and its records must decode in continuity.
func mergePieces(group []*compactPiece, level int, gen uint64, sealedAt string) (*compactPiece, error) {
	first, last := group[0], group[len(group)-1]
	m := &compactPiece{planned: true, end: last.end, h: Header{
		Generation: gen, Level: level, Prev: first.h.Prev, Tail: last.end, Parent: first.h.Parent, SealedAt: sealedAt,
	}}
	for i, p := range group {
		if i > 0 {
			if err := continues(group[i-1], p); err != nil {
				return nil, err
			}
		}
		m.recs = append(m.recs, p.recs...)
		m.keys = append(m.keys, p.keys...)
	}
	return m, nil
}

// continues checks that piece b follows piece a in the chain: b's prev is
// a's end id, and b's first record continues a's last (lsn or prev_lsn, ts
// not going back).
func continues(a, b *compactPiece) error {
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

// sameRecords checks that covered holds the same records as the segment
// covering it. Overlapping segments must; removing one that differs would
// destroy the damage check reports.
func sameRecords(covered, by *compactPiece) error {
	for _, r := range covered.recs {
		i := sort.Search(len(by.recs), func(i int) bool { return by.recs[i].LSN >= r.LSN })
		if i == len(by.recs) || !Same(r, by.recs[i]) {
			return fmt.Errorf("oplog segments %s and %s differ at lsn %d: not removing either", covered.keys[0], by.keys[0], r.LSN)
		}
	}
	return nil
}

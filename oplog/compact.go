package oplog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// MaxBytes caps a compacted segment: a group whose record lines
	// (plaintext) exceed it becomes several consecutive segments of its
	// level, split between the segments it replaces, each within MaxBytes
	// unless one replaced segment alone exceeds it (default
	// DefaultCompactMaxBytes). It bounds Compact's memory.
	MaxBytes int64
}

// DefaultCompactMaxBytes is the default CompactOptions.MaxBytes.
const DefaultCompactMaxBytes = 64 << 20

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
// later bucket) becomes level-L segments with the same record lines: one,
// or, when its record lines exceed MaxBytes, several consecutive ones split
// between the segments they replace. Each has prev = its first replaced
// segment's prev and tail = its last one's end id, so the segments after it
// chain on unchanged. Groups formed at one level and absorbed at a higher
// one in the same call are never written.
//
// Compact plans from the segments' headers and first and last records (a
// segment is decrypted for them, its records are not decoded), which the
// Log keeps from call to call, and decodes the records of only the
// segments it rewrites, one new segment at a time: its memory is about
// MaxBytes, whatever the size of the groups.
//
// The new segments are written first, then one deletion record (kind
// oplog-compaction) naming every segment to remove, then those are removed.
// A crash in between leaves overlapping segments with identical records,
// which readers skip; the next call removes them, after checking they hold
// the records of the segment covering them. The tail's bucket is never
// closed, so a push may append concurrently: Append chains after the tail,
// whose prev stays valid, and the tail (the last chain segment, its end id
// and last record) is never rewritten. A reader that listed the segments
// before a removal may find one gone (an error wrapping
// backend.ErrNotFound) and should read again.
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
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultCompactMaxBytes
	}

	segs, err := l.Segments(ctx)
	if err != nil {
		return CompactResult{}, err
	}
	l.forgetSummariesExcept(segs)
	c, covered := splitChain(segs)
	res := CompactResult{Before: len(c), After: len(c)}

	// The plaintexts decrypted for summaries in this call, small ones up to
	// a budget, so that rewriting them does not load them again.
	plains := &plainCache{m: map[string][]byte{}, budget: min(maxBytes/4, 16<<20)}
	piece := func(s Segment) (*compactPiece, error) {
		sum, plain, err := l.summary(ctx, s)
		if err != nil {
			return nil, err
		}
		plains.offer(s.Key, plain)
		return &compactPiece{h: sum.h, end: EndID(sum.h, s.ID), first: sum.first, last: sum.last,
			records: sum.h.Records, bytes: sum.bodyLen, segs: []Segment{s}}, nil
	}

	// Only the segments after the last top-level one can still be grouped:
	// that one was written when its bucket had closed, by a call that had
	// already compacted every closed group before it, and ts never go back
	// along a generation, so no later segment can join it. Stopping there
	// keeps a call from reading the whole generation.
	start := len(c)
	var rev []*compactPiece
	for ; start > 0; start-- {
		p, err := piece(c[start-1])
		if err != nil {
			return res, err
		}
		if p.h.Level >= len(levels) {
			break
		}
		rev = append(rev, p)
	}
	pieces := make([]*compactPiece, len(rev))
	for i, p := range rev {
		pieces[len(rev)-1-i] = p
	}
	sealedAt := now().UTC().Format(time.RFC3339Nano)
	for i, w := range levels {
		if pieces, err = compactLevel(pieces, i+1, int64(w/time.Second), l.gen, sealedAt, maxBytes); err != nil {
			return res, err
		}
	}

	var remove []string
	for _, cv := range covered {
		p, plain, err := l.summary(ctx, cv.Seg)
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed by an earlier run; the listing lags
		}
		if err != nil {
			return res, err
		}
		plains.offer(cv.Seg.Key, plain)
		by, plain, err := l.summary(ctx, cv.By)
		if err != nil {
			return res, err
		}
		plains.offer(cv.By.Key, plain)
		if EndID(p.h, cv.Seg.ID) != EndID(by.h, cv.By.ID) && cv.Seg.LastLSN == cv.By.LastLSN {
			// Not a leftover of compaction (whose last replaced segment
			// shares the end id of the one replacing it) but a duplicate
			// range: the next segment may chain from either, so both stay
			// for check to judge.
			continue
		}
		gone, err := l.sameRecords(ctx, cv.Seg, cv.By, plains)
		if err != nil {
			return res, err
		}
		if gone {
			continue
		}
		remove = append(remove, cv.Seg.Key)
	}

	for _, p := range pieces {
		if !p.planned {
			continue
		}
		key, err := l.writePiece(ctx, p, plains)
		if err != nil {
			return res, err
		}
		res.Written = append(res.Written, key)
		for _, s := range p.segs {
			remove = append(remove, s.Key)
		}
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

// compactPiece is a chain segment while Compact plans: a stored one, or a
// compacted one not written yet. Its records are not held: first and last
// are enough to plan.
type compactPiece struct {
	h           Header
	end         string // the end id a following segment's prev names
	first, last *Record
	records     int   // how many
	bytes       int64 // of record lines
	// segs are the stored segments the piece stands for: itself, or the
	// segments a planned piece replaces, in order.
	segs    []Segment
	planned bool
}

// compactLevel replaces each closed group of level < level pieces in one
// bucket of width seconds by planned pieces of that level, each holding at
// most maxBytes of record lines (unless one piece alone holds more).
func compactLevel(pieces []*compactPiece, level int, width int64, gen uint64, sealedAt string, maxBytes int64) ([]*compactPiece, error) {
	if len(pieces) == 0 {
		return pieces, nil
	}
	bucket := func(p *compactPiece) int64 {
		// The last record's ts is the header's last_ts. Floor division:
		// a whole-second width splits a ts's seconds as it splits the ts.
		sec := p.last.Eff.Sec
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
			i = j
			continue
		}
		// A compacted segment must not hide a break: the group chains as a
		// reader checks it.
		for k := i + 1; k < j; k++ {
			if err := continues(pieces[k-1], pieces[k]); err != nil {
				return nil, err
			}
		}
		for k := i; k < j; {
			m, size := k+1, pieces[k].bytes
			for m < j && size+pieces[m].bytes <= maxBytes {
				size += pieces[m].bytes
				m++
			}
			out = append(out, mergePieces(pieces[k:m], level, gen, sealedAt))
			k = m
		}
		i = j
	}
	return out, nil
}

// mergePieces plans the level-level segment holding group's records (a
// group that continuity was checked for).
func mergePieces(group []*compactPiece, level int, gen uint64, sealedAt string) *compactPiece {
	first, last := group[0], group[len(group)-1]
	m := &compactPiece{planned: true, end: last.end, first: first.first, last: last.last, h: Header{
		Generation: gen, Level: level, Prev: first.h.Prev, Tail: last.end, Parent: first.h.Parent, SealedAt: sealedAt,
	}}
	for _, p := range group {
		m.segs = append(m.segs, p.segs...)
		m.records += p.records
		m.bytes += p.bytes
	}
	return m
}

// continues checks that piece b follows piece a in the chain: b's prev is
// a's end id, and b's first record continues a's last (lsn or prev_lsn, ts
// not going back).
func continues(a, b *compactPiece) error {
	prev, r := a.last, b.first
	if b.h.Prev != a.end {
		return fmt.Errorf("oplog chain broken at lsn %d: prev %q, want %q", r.LSN, b.h.Prev, a.end)
	}
	// Checked before the validator, which would clamp r's ts instead.
	if r.Time.Compare(prev.Eff) < 0 {
		return fmt.Errorf("oplog chain broken at lsn %d: ts %s goes back in time", r.LSN, r.TS)
	}
	v := NewValidator()
	v.Resume(prev)
	rc := *r // Check sets the effective ts; r is shared (a summary's)
	if err := v.Check(&rc); err != nil {
		return fmt.Errorf("oplog chain broken at lsn %d: %w", r.LSN, err)
	}
	return nil
}

// writePiece writes planned piece p: a segment with p's header and the
// record lines of the segments it replaces, decoded (with every check
// Load makes) and re-encoded one at a time, exactly as EncodeSegment would
// encode them all. It returns the new key.
func (l *Log) writePiece(ctx context.Context, p *compactPiece, plains *plainCache) (string, error) {
	h := p.h
	h.FirstLSN, h.LastLSN = p.first.LSN, p.last.LSN
	h.FirstTS, h.LastTS = utcText(p.first.Eff), utcText(p.last.Eff)
	h.Records = p.records
	hb, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	plain := make([]byte, 0, len(hb)+1+int(p.bytes))
	plain = append(append(plain, hb...), '\n')
	var first, last *Record
	n := 0
	for _, s := range p.segs {
		src := plains.take(s.Key)
		if src == nil {
			if src, err = l.loadPlain(ctx, s); err != nil {
				return "", err
			}
		}
		d, err := openSegment(src)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.Key, err)
		}
		if err := checkKey(s, d.h); err != nil {
			return "", err
		}
		for {
			r, err := d.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("%s: %w", s.Key, err)
			}
			if first == nil {
				first = r
			}
			last = r
			n++
			plain = append(r.AppendJSON(plain), '\n')
		}
	}
	// The plan came from the summaries of these same (authenticated) bytes.
	if n != h.Records || first.LSN != h.FirstLSN || last.LSN != h.LastLSN || first.Eff != p.first.Eff || last.Eff != p.last.Eff {
		return "", fmt.Errorf("oplog compact: the segments replaced by lsn %d..%d do not hold what their headers say", h.FirstLSN, h.LastLSN)
	}
	bodyLen := int64(len(plain) - len(hb) - 1)
	stored, id := l.r.SealObject(repo.PrefixOplog, plain)
	key := SegmentKey(l.gen, h.FirstLSN, h.LastLSN, id)
	if err := l.r.Backend().Save(ctx, key, stored); err != nil && !errors.Is(err, backend.ErrExists) {
		return "", fmt.Errorf("save %s: %w", key, err)
	}
	l.remember(key, &segSummary{h: h, first: p.first, last: p.last, bodyLen: bodyLen})
	return key, nil
}

// sameRecords checks that covered holds the same records as the segment
// covering it, streaming both. Overlapping segments must; removing one
// that differs would destroy the damage check reports. gone: covered was
// removed meanwhile (by an earlier run; the listing lags).
func (l *Log) sameRecords(ctx context.Context, covered, by Segment, plains *plainCache) (gone bool, err error) {
	open := func(s Segment) (*segDecoder, error) {
		plain := plains.get(s.Key)
		if plain == nil {
			var err error
			if plain, err = l.loadPlain(ctx, s); err != nil {
				return nil, err
			}
		}
		d, err := openSegment(plain)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Key, err)
		}
		return d, nil
	}
	cd, err := open(covered)
	if err != nil {
		return errors.Is(err, backend.ErrNotFound), err
	}
	bd, err := open(by)
	if err != nil {
		return false, err
	}
	var b *Record
	for {
		r, err := cd.next()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", covered.Key, err)
		}
		for b == nil || b.LSN < r.LSN {
			if b, err = bd.next(); errors.Is(err, io.EOF) {
				b = nil
				break
			}
			if err != nil {
				return false, fmt.Errorf("%s: %w", by.Key, err)
			}
		}
		if b == nil || !Same(r, b) {
			return false, fmt.Errorf("oplog segments %s and %s differ at lsn %d: not removing either", covered.Key, by.Key, r.LSN)
		}
	}
}

// plainCache holds segment plaintexts a Compact call decrypted, small ones
// up to a budget.
type plainCache struct {
	m            map[string][]byte
	size, budget int64
}

func (c *plainCache) offer(key string, plain []byte) {
	n := int64(len(plain))
	if plain == nil || n > 1<<20 || c.size+n > c.budget || c.m[key] != nil {
		return
	}
	c.m[key] = plain
	c.size += n
}

func (c *plainCache) get(key string) []byte { return c.m[key] }

func (c *plainCache) take(key string) []byte {
	p := c.m[key]
	if p != nil {
		delete(c.m, key)
		c.size -= int64(len(p))
	}
	return p
}

package oplog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/repo"
)

// Header is a segment's first line (docs/design.md section 10).
type Header struct {
	Generation uint64  `json:"generation"`
	Level      int     `json:"level"`
	FirstLSN   uint64  `json:"first_lsn"`
	LastLSN    uint64  `json:"last_lsn"`
	FirstTS    string  `json:"first_ts"`
	LastTS     string  `json:"last_ts"`
	Records    int     `json:"records"`
	Prev       string  `json:"prev"`
	SealedAt   string  `json:"sealed_at"`
	Tail       string  `json:"tail,omitempty"`
	Parent     *Parent `json:"parent,omitempty"`
}

// Parent is where a generation >= 2 branches off.
type Parent struct {
	Generation uint64 `json:"generation"`
	LSN        uint64 `json:"lsn"`
}

// Segment names one stored segment, from its key alone.
type Segment struct {
	Key               string
	Generation        uint64
	FirstLSN, LastLSN uint64
	ID                chunk.ID
	Size              int64
}

// GenerationPrefix is the key prefix of a generation's objects.
func GenerationPrefix(gen uint64) string {
	return fmt.Sprintf("%s/%010d/", repo.PrefixOplog, gen)
}

// SegmentKey is oplog/<generation>/<first lsn>-<last lsn>-<object id>.
func SegmentKey(gen, first, last uint64, id chunk.ID) string {
	return fmt.Sprintf("%s%020d-%020d-%s", GenerationPrefix(gen), first, last, id)
}

// ParseSegmentKey parses a segment key (not a heartbeat).
func ParseSegmentKey(key string) (Segment, error) {
	// The error is built only when needed: listing a generation parses
	// every key, on every Append.
	bad := func() error { return fmt.Errorf("not an oplog segment key: %q", key) }
	rest, ok := strings.CutPrefix(key, repo.PrefixOplog+"/")
	if !ok || len(rest) != 10+1+20+1+20+1+64 || rest[10] != '/' || rest[31] != '-' || rest[52] != '-' {
		return Segment{}, bad()
	}
	digits := func(s string) (uint64, bool) {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseUint(s, 10, 64)
		return n, err == nil
	}
	gen, ok1 := digits(rest[:10])
	first, ok2 := digits(rest[11:31])
	last, ok3 := digits(rest[32:52])
	id, err := chunk.ParseID(rest[53:])
	if !ok1 || !ok2 || !ok3 || err != nil || gen == 0 || first == 0 || last < first || id.String() != rest[53:] {
		return Segment{}, bad()
	}
	return Segment{Key: key, Generation: gen, FirstLSN: first, LastLSN: last, ID: id}, nil
}

// utcText writes t as an RFC 3339 UTC time with its exact fraction.
func utcText(t Time) string {
	s := time.Unix(t.Sec, 0).UTC().Format("2006-01-02T15:04:05")
	if t.Frac != "" {
		s += "." + t.Frac
	}
	return s + "Z"
}

// EncodeSegment returns a segment's plaintext: the header line, then one
// line per record (with its effective ts). It fills the header's lsn, ts and
// record fields from recs, which must not be empty.
func EncodeSegment(h Header, recs []*Record) ([]byte, error) {
	if len(recs) == 0 {
		return nil, errors.New("oplog segment: no records")
	}
	h.FirstLSN, h.LastLSN = recs[0].LSN, recs[len(recs)-1].LSN
	h.FirstTS, h.LastTS = utcText(recs[0].Eff), utcText(recs[len(recs)-1].Eff)
	h.Records = len(recs)
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	b := append(hb, '\n')
	for _, r := range recs {
		b = append(r.AppendJSON(b), '\n')
	}
	return b, nil
}

// DecodeSegment parses a segment's plaintext and checks it: the header, one
// well-formed record per line in continuity, the header's counts and lsns.
func DecodeSegment(plain []byte) (Header, []*Record, error) {
	var h Header
	nl := bytes.IndexByte(plain, '\n')
	if nl < 0 || len(plain) == 0 || plain[len(plain)-1] != '\n' {
		return h, nil, errors.New("oplog segment: lines must end with \\n")
	}
	dec := json.NewDecoder(bytes.NewReader(plain[:nl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, nil, fmt.Errorf("oplog segment header: %w", err)
	}
	// NewReader's 256 KiB buffer would dominate loading a small segment.
	body := plain[nl+1:]
	rd := &Reader{br: bufio.NewReaderSize(bytes.NewReader(body), min(len(body), 256<<10)), v: NewValidator()}
	var recs []*Record
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Line++ // the header is line 1
			}
			return h, nil, fmt.Errorf("oplog segment: %w", err)
		}
		if r.Time.Compare(r.Eff) != 0 {
			return h, nil, fmt.Errorf("oplog segment: line %d: ts %s goes back in time", r.Line+1, r.TS)
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 || h.Records != len(recs) || h.FirstLSN != recs[0].LSN || h.LastLSN != recs[len(recs)-1].LSN {
		return h, nil, fmt.Errorf("oplog segment: header says %d records, lsn %d..%d; the segment holds %d", h.Records, h.FirstLSN, h.LastLSN, len(recs))
	}
	return h, recs, nil
}

// EndID is the id a later segment's prev names: a level-0 segment's own
// object id, a compacted segment's tail.
func EndID(h Header, id chunk.ID) string {
	if h.Level >= 1 {
		return h.Tail
	}
	return id.String()
}

// Log is one generation of the mutation log in a repository.
type Log struct {
	r   *repo.Repository
	gen uint64
	// Parent is written into the headers of the segments Append writes (a
	// generation >= 2 must have one).
	Parent *Parent
	// Now is the clock for sealed_at (default time.Now).
	Now func() time.Time
}

// Open returns generation gen (>= 1) of the log in r.
func Open(ctx context.Context, r *repo.Repository, gen uint64) (*Log, error) {
	if gen == 0 {
		return nil, errors.New("oplog: generations are numbered from 1")
	}
	return &Log{r: r, gen: gen, Now: time.Now}, nil
}

// Segments lists the generation's segments by first lsn (then the longer
// one first), heartbeats and foreign keys left out.
func (l *Log) Segments(ctx context.Context) ([]Segment, error) {
	var segs []Segment
	prefix := GenerationPrefix(l.gen)
	err := l.r.Backend().List(ctx, prefix, func(oi backend.ObjectInfo) error {
		if strings.HasPrefix(oi.Key, prefix+"heartbeats/") {
			return nil
		}
		s, err := ParseSegmentKey(oi.Key)
		if err != nil || s.Generation != l.gen {
			return nil // not ours to judge here; check reports it
		}
		s.Size = oi.Size
		segs = append(segs, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list oplog generation %d: %w", l.gen, err)
	}
	sort.Slice(segs, func(i, j int) bool {
		if segs[i].FirstLSN != segs[j].FirstLSN {
			return segs[i].FirstLSN < segs[j].FirstLSN
		}
		return segs[i].LastLSN > segs[j].LastLSN
	})
	return segs, nil
}

// Load reads, authenticates and decodes one segment and checks that its
// header matches its key.
func (l *Log) Load(ctx context.Context, s Segment) (Header, []*Record, error) {
	stored, err := backend.LoadAll(ctx, l.r.Backend(), s.Key)
	if err != nil {
		return Header{}, nil, fmt.Errorf("load %s: %w", s.Key, err)
	}
	if chunk.ObjectID(stored) != s.ID {
		return Header{}, nil, fmt.Errorf("load %s: stored bytes do not match the id in the key", s.Key)
	}
	plain, err := l.r.OpenObject(repo.PrefixOplog, stored)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open %s: %w", s.Key, err)
	}
	h, recs, err := DecodeSegment(plain)
	if err != nil {
		return Header{}, nil, fmt.Errorf("%s: %w", s.Key, err)
	}
	if h.Generation != s.Generation || h.FirstLSN != s.FirstLSN || h.LastLSN != s.LastLSN {
		return Header{}, nil, fmt.Errorf("%s: header (generation %d, lsn %d..%d) does not match the key", s.Key, h.Generation, h.FirstLSN, h.LastLSN)
	}
	return h, recs, nil
}

// Chain lists the segments a reader follows (see chain).
func (l *Log) Chain(ctx context.Context) ([]Segment, error) {
	segs, err := l.Segments(ctx)
	if err != nil {
		return nil, err
	}
	return chain(segs), nil
}

// chain is the segments a reader follows: in lsn order, skipping those
// wholly covered by an earlier (e.g. compacted) one.
func chain(segs []Segment) []Segment {
	c, _ := splitChain(segs)
	return c
}

// coveredSegment is a segment chain skips, with the chain segment whose lsn
// range holds its whole range.
type coveredSegment struct {
	Seg, By Segment
}

// splitChain splits segs (as Segments orders them) into the chain and the
// segments it skips. A skipped segment starts at or after the chain segment
// before it and ends at or before that one's end, so that one covers it.
func splitChain(segs []Segment) (c []Segment, covered []coveredSegment) {
	for _, s := range segs {
		if len(c) > 0 && s.LastLSN <= c[len(c)-1].LastLSN {
			covered = append(covered, coveredSegment{Seg: s, By: c[len(c)-1]})
			continue
		}
		c = append(c, s)
	}
	return c, covered
}

// Tail returns the last record of the generation and its segment's end id,
// nil and "" for an empty generation.
func (l *Log) Tail(ctx context.Context) (*Record, string, error) {
	segs, err := l.Segments(ctx)
	if err != nil || len(segs) == 0 {
		return nil, "", err
	}
	c := chain(segs)
	s := c[len(c)-1]
	h, recs, err := l.Load(ctx, s)
	if err != nil {
		return nil, "", err
	}
	return recs[len(recs)-1], EndID(h, s.ID), nil
}

// Append writes recs as one new level-0 segment after the current tail
// (create-only) and returns its key. recs must continue the stored log
// (lsn continuity; ts are clamped against the stored tail). The caller holds
// the log's writer lease (repo.LeaseOplog, scope = the generation).
func (l *Log) Append(ctx context.Context, recs []*Record) (string, error) {
	if len(recs) == 0 {
		return "", errors.New("oplog append: no records")
	}
	last, prev, err := l.Tail(ctx)
	if err != nil {
		return "", err
	}
	v := NewValidator()
	if last != nil {
		v.Resume(last)
	}
	for _, r := range recs {
		if err := v.Check(r); err != nil {
			return "", fmt.Errorf("oplog append: lsn %d: %w", r.LSN, err)
		}
	}
	if l.gen >= 2 && l.Parent == nil {
		return "", fmt.Errorf("oplog append: generation %d needs its parent", l.gen)
	}
	h := Header{Generation: l.gen, Prev: prev, Parent: l.Parent,
		SealedAt: l.Now().UTC().Format(time.RFC3339Nano)}
	plain, err := EncodeSegment(h, recs)
	if err != nil {
		return "", err
	}
	stored, id := l.r.SealObject(repo.PrefixOplog, plain)
	key := SegmentKey(l.gen, recs[0].LSN, recs[len(recs)-1].LSN, id)
	if err := l.r.Backend().Save(ctx, key, stored); err != nil {
		return "", fmt.Errorf("save %s: %w", key, err)
	}
	return key, nil
}

// Read returns the records with fromLSN <= lsn <= toLSN (toLSN 0: to the
// end) in order, loading one segment at a time and checking the chain from
// the segment holding fromLSN on: each segment's prev names the end id of the
// one before it, the generation's first one's is "", and lsns continue
// across segments. A first segment loaded from the middle of the generation
// is trusted for its prev (check verifies the whole chain), so reading a
// recent range does not load the whole generation. Records come out with
// their stored (effective) ts.
func (l *Log) Read(ctx context.Context, fromLSN, toLSN uint64) (Iterator, error) {
	segs, err := l.Segments(ctx)
	if err != nil {
		return nil, err
	}
	c := chain(segs)
	// A chain has strictly increasing first lsns. Start at the last segment
	// that starts at or before fromLSN (it may hold it), or the first one.
	start := max(sort.Search(len(c), func(i int) bool { return c[i].FirstLSN > fromLSN })-1, 0)
	end := len(c)
	if toLSN != 0 {
		end = max(sort.Search(len(c), func(i int) bool { return c[i].FirstLSN > toLSN }), start)
	}
	return &segReader{ctx: ctx, l: l, segs: c[start:end], trustPrev: start > 0, from: fromLSN, to: toLSN, v: NewValidator()}, nil
}

type segReader struct {
	ctx  context.Context
	l    *Log
	segs []Segment
	i    int
	// trustPrev: the first segment starts after the generation's start,
	// and its prev is taken as it is.
	trustPrev bool
	from, to  uint64
	recs      []*Record
	prevEnd   string
	v         *Validator
	err       error
	relists   int
}

// relist re-reads the chain and positions the reader at the segment that
// holds the next lsn it needs, trusting that segment's prev.
func (s *segReader) relist() error {
	segs, err := s.l.Segments(s.ctx)
	if err != nil {
		return err
	}
	c := chain(segs)
	next := s.from
	if last := s.v.Last(); last != nil {
		next = last.LSN + 1
	}
	start := max(sort.Search(len(c), func(i int) bool { return c[i].FirstLSN > next })-1, 0)
	end := len(c)
	if s.to != 0 {
		end = max(sort.Search(len(c), func(i int) bool { return c[i].FirstLSN > s.to }), start)
	}
	s.segs, s.i, s.trustPrev = c[start:end], 0, true
	return nil
}

func (s *segReader) Validator() *Validator { return s.v }

func (s *segReader) Next() (*Record, error) {
	for s.err == nil {
		if len(s.recs) > 0 {
			r := s.recs[0]
			s.recs = s.recs[1:]
			if last := s.v.Last(); last != nil && r.LSN <= last.LSN {
				continue // the overlap with a compacted segment
			}
			if err := s.v.Check(r); err != nil {
				s.err = fmt.Errorf("oplog chain broken at lsn %d: %w", r.LSN, err)
				break
			}
			if s.to != 0 && r.LSN > s.to {
				s.err = io.EOF
				break
			}
			if r.LSN < s.from {
				continue
			}
			return r, nil
		}
		if s.i >= len(s.segs) {
			s.err = io.EOF
			break
		}
		seg := s.segs[s.i]
		s.i++
		h, recs, err := s.l.Load(s.ctx, seg)
		if errors.Is(err, backend.ErrNotFound) && s.relists < 3 {
			// Compaction replaced the segment since the listing: list
			// again and go on from the next lsn needed (the compacted
			// segment's records before it are skipped as an overlap).
			s.relists++
			if err := s.relist(); err != nil {
				s.err = err
				break
			}
			continue
		}
		if err != nil {
			s.err = err
			break
		}
		// Lsn continuity is checked from the first segment's first record
		// on (the validator starts empty there), which also covers a
		// sparse log's prev_lsn.
		if (s.i > 1 || !s.trustPrev) && h.Prev != s.prevEnd {
			s.err = fmt.Errorf("oplog chain broken: %s has prev %q, want %q", seg.Key, h.Prev, s.prevEnd)
			break
		}
		s.prevEnd = EndID(h, seg.ID)
		s.recs = recs
	}
	return nil, s.err
}

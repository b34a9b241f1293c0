package oplog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	return decodeSegment(plain, false)
}

// decodeSegment is DecodeSegment; stored reads the embedded graph records
// by key (see parseLine): for Log.Load, whose callers replay, compact or
// compare records, never check their fields (check does, through
// DecodeSegment).
func decodeSegment(plain []byte, stored bool) (Header, []*Record, error) {
	d, err := openSegment(plain)
	if err != nil {
		return d.h, nil, err
	}
	d.stored = stored
	var recs []*Record
	for {
		r, err := d.next()
		if errors.Is(err, io.EOF) {
			return d.h, recs, nil
		}
		if err != nil {
			return d.h, nil, err
		}
		recs = append(recs, r)
	}
}

// segDecoder reads a segment's records one at a time, with every check
// DecodeSegment makes (which is what it is made of), so that a segment can
// be streamed without holding its records.
type segDecoder struct {
	h    Header
	body []byte // the record lines
	pos  int    // of the next line in body
	line int    // lines of body read (the header is line 0 here)
	v    *Validator
	// n counts the records read; first and last are the first and the
	// last one so far.
	n           int
	first, last *Record
	err         error
	stored      bool // see decodeSegment
}

// openSegment checks plain's line structure and decodes its header.
func openSegment(plain []byte) (*segDecoder, error) {
	d := &segDecoder{}
	nl := bytes.IndexByte(plain, '\n')
	if nl < 0 || len(plain) == 0 || plain[len(plain)-1] != '\n' {
		return d, errors.New("oplog segment: lines must end with \\n")
	}
	dec := json.NewDecoder(bytes.NewReader(plain[:nl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d.h); err != nil {
		return d, fmt.Errorf("oplog segment header: %w", err)
	}
	d.body, d.v = plain[nl+1:], NewValidator()
	return d, nil
}

// nextLine returns the next record line of the body (its \r\n trimmed,
// blank lines skipped, as Reader reads them) and its line number, counted
// from 1 after the header; ok is false at the end.
func (d *segDecoder) nextLine() (b []byte, line int, ok bool) {
	for d.pos < len(d.body) {
		// The body ends with \n (openSegment checked plain does).
		nl := bytes.IndexByte(d.body[d.pos:], '\n')
		b = d.body[d.pos : d.pos+nl]
		d.pos += nl + 1
		d.line++
		b = bytes.TrimRight(b, "\r")
		if !isBlank(b) {
			return b, d.line, true
		}
	}
	return nil, d.line, false
}

// next returns the next record, or io.EOF after the last one once the
// header is found to agree with the records.
func (d *segDecoder) next() (*Record, error) {
	if d.err != nil {
		return nil, d.err
	}
	r, err := d.read()
	if err != nil {
		d.err = err
	}
	return r, err
}

func (d *segDecoder) read() (*Record, error) {
	b, line, ok := d.nextLine()
	if !ok {
		h := d.h
		if d.n == 0 || h.Records != d.n || h.FirstLSN != d.first.LSN || h.LastLSN != d.last.LSN {
			return nil, fmt.Errorf("oplog segment: header says %d records, lsn %d..%d; the segment holds %d", h.Records, h.FirstLSN, h.LastLSN, d.n)
		}
		return nil, io.EOF
	}
	r, err := parseLine(b, line, d.stored)
	if err == nil {
		err = d.v.Check(r)
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Line++ // the header is line 1
		}
		return nil, fmt.Errorf("oplog segment: %w", err)
	}
	if r.Time.Compare(r.Eff) != 0 {
		return nil, fmt.Errorf("oplog segment: line %d: ts %s goes back in time", r.Line+1, r.TS)
	}
	d.n++
	if d.first == nil {
		d.first = r
	}
	d.last = r
	return r, nil
}

// segSummary is what a segment's header and its first and last records
// say, without decoding the records in between: enough to chain, plan a
// compaction, or find the log's ends. For a segment that decodes, first
// and last are exactly DecodeSegment's first and last records.
type segSummary struct {
	h           Header
	first, last *Record
	// bodyLen is the size of the record lines, plaintext.
	bodyLen int64
}

// summarize reads plain's header and its first and last records, and checks
// that they agree with each other.
func summarize(plain []byte) (*segSummary, error) {
	d, err := openSegment(plain)
	if err != nil {
		return nil, err
	}
	first, err := d.next()
	if err != nil {
		return nil, err
	}
	last := first
	// The last non-blank line, and its number.
	body := d.body
	end := len(body) - 1 // the last line's \n
	for end > d.pos {
		start := bytes.LastIndexByte(body[:end], '\n') + 1
		b := bytes.TrimRight(body[start:end], "\r")
		if !isBlank(b) {
			line := d.line + bytes.Count(body[d.pos:start], []byte("\n")) + 1
			if last, err = ParseRecord(b, line); err != nil {
				var e *Error
				if errors.As(err, &e) {
					e.Line++
				}
				return nil, fmt.Errorf("oplog segment: %w", err)
			}
			break
		}
		end = start - 1
	}
	h := d.h
	if h.Records < 1 || h.FirstLSN != first.LSN || h.LastLSN != last.LSN || last.LSN < first.LSN {
		return nil, fmt.Errorf("oplog segment: header says %d records, lsn %d..%d; its first and last records are lsn %d and %d",
			h.Records, h.FirstLSN, h.LastLSN, first.LSN, last.LSN)
	}
	return &segSummary{h: h, first: first, last: last, bodyLen: int64(len(body))}, nil
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
//
// A Log caches what it learnt of the stored segments: each one's summary
// (header, first and last record), keyed by its key, which names its
// content; and the chain's tail as its last Append or Tail left it, so
// that a push does not re-read the generation at every seal. That tail is
// trusted only by Append, whose caller holds the writer lease: nothing
// else appends to the generation, and compaction never changes the last
// chain segment's end id or record (see Compact).
type Log struct {
	r   *repo.Repository
	gen uint64
	// Parent is written into the headers of the segments Append writes (a
	// generation >= 2 must have one).
	Parent *Parent
	// Now is the clock for sealed_at (default time.Now).
	Now func() time.Time

	mu sync.Mutex
	// tail: the chain's last record and its segment's end id (tailKnown:
	// set; a nil record is an empty generation).
	tail      *Record
	tailEnd   string
	tailKnown bool
	sums      map[string]*segSummary
}

// maxSummaries bounds a Log's summary cache (Compact also drops those of
// segments no longer listed).
const maxSummaries = 1 << 14

// Open returns generation gen (>= 1) of the log in r.
func Open(ctx context.Context, r *repo.Repository, gen uint64) (*Log, error) {
	if gen == 0 {
		return nil, errors.New("oplog: generations are numbered from 1")
	}
	return &Log{r: r, gen: gen, Now: time.Now}, nil
}

// Segments lists the generation's segments by first lsn (then the longer
// one first, then by key), heartbeats and foreign keys left out.
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
		if segs[i].LastLSN != segs[j].LastLSN {
			return segs[i].LastLSN > segs[j].LastLSN
		}
		return segs[i].Key < segs[j].Key
	})
	return segs, nil
}

// loadPlain reads and authenticates one segment and returns its plaintext.
func (l *Log) loadPlain(ctx context.Context, s Segment) ([]byte, error) {
	stored, err := backend.LoadAll(ctx, l.r.Backend(), s.Key)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", s.Key, err)
	}
	if chunk.ObjectID(stored) != s.ID {
		return nil, fmt.Errorf("load %s: stored bytes do not match the id in the key", s.Key)
	}
	plain, err := l.r.OpenObject(repo.PrefixOplog, stored)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.Key, err)
	}
	return plain, nil
}

// checkKey checks that a segment's header matches its key.
func checkKey(s Segment, h Header) error {
	if h.Generation != s.Generation || h.FirstLSN != s.FirstLSN || h.LastLSN != s.LastLSN {
		return fmt.Errorf("%s: header (generation %d, lsn %d..%d) does not match the key", s.Key, h.Generation, h.FirstLSN, h.LastLSN)
	}
	return nil
}

// Load reads, authenticates and decodes one segment and checks that its
// header matches its key.
func (l *Log) Load(ctx context.Context, s Segment) (Header, []*Record, error) {
	plain, err := l.loadPlain(ctx, s)
	if err != nil {
		return Header{}, nil, err
	}
	// A reader done with the log (a replay that reached its cut) cancels
	// the segments it was loading ahead: decoding one is most of its cost.
	if err := ctx.Err(); err != nil {
		return Header{}, nil, err
	}
	h, recs, err := decodeSegment(plain, true)
	if err != nil {
		return Header{}, nil, fmt.Errorf("%s: %w", s.Key, err)
	}
	if err := checkKey(s, h); err != nil {
		return Header{}, nil, err
	}
	return h, recs, nil
}

// summary returns s's summary, from the cache or by loading s (then plain
// is its plaintext, else nil). Decrypting the segment is needed, decoding
// its records is not.
func (l *Log) summary(ctx context.Context, s Segment) (sum *segSummary, plain []byte, err error) {
	l.mu.Lock()
	sum = l.sums[s.Key]
	l.mu.Unlock()
	if sum != nil {
		return sum, nil, nil
	}
	if plain, err = l.loadPlain(ctx, s); err != nil {
		return nil, nil, err
	}
	if sum, err = summarize(plain); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.Key, err)
	}
	if err := checkKey(s, sum.h); err != nil {
		return nil, nil, err
	}
	l.remember(s.Key, sum)
	return sum, plain, nil
}

func (l *Log) remember(key string, sum *segSummary) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sums == nil || len(l.sums) >= maxSummaries {
		l.sums = map[string]*segSummary{}
	}
	l.sums[key] = sum
}

// forgetSummariesExcept drops the summaries of segments not in segs (those
// removed since).
func (l *Log) forgetSummariesExcept(segs []Segment) {
	keep := make(map[string]bool, len(segs))
	for _, s := range segs {
		keep[s.Key] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.sums {
		if !keep[k] {
			delete(l.sums, k)
		}
	}
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
// nil and "" for an empty generation. It lists the generation and reads
// the last chain segment's summary (its header and last record).
func (l *Log) Tail(ctx context.Context) (*Record, string, error) {
	segs, err := l.Segments(ctx)
	if err != nil {
		return nil, "", err
	}
	if len(segs) == 0 {
		l.setTail(nil, "")
		return nil, "", nil
	}
	c := chain(segs)
	s := c[len(c)-1]
	sum, _, err := l.summary(ctx, s)
	if err != nil {
		return nil, "", err
	}
	end := EndID(sum.h, s.ID)
	l.setTail(sum.last, end)
	return sum.last, end, nil
}

func (l *Log) setTail(r *Record, end string) {
	l.mu.Lock()
	l.tail, l.tailEnd, l.tailKnown = r, end, true
	l.mu.Unlock()
}

// forgetTail drops the cached tail: the next Append lists the generation.
func (l *Log) forgetTail() {
	l.mu.Lock()
	l.tail, l.tailEnd, l.tailKnown = nil, "", false
	l.mu.Unlock()
}

func (l *Log) cachedTail() (*Record, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tail, l.tailEnd, l.tailKnown
}

// Append writes recs as one new level-0 segment after the current tail
// (create-only) and returns its key. recs must continue the stored log
// (lsn continuity; ts are clamped against the stored tail). The caller holds
// the log's writer lease (repo.LeaseOplog, scope = the generation).
//
// The tail is the one the Log's last Append or Tail left (the lease keeps
// other writers out, and compaction leaves the tail alone); without one,
// Append calls Tail.
func (l *Log) Append(ctx context.Context, recs []*Record) (string, error) {
	if len(recs) == 0 {
		return "", errors.New("oplog append: no records")
	}
	last, prev, ok := l.cachedTail()
	if !ok {
		var err error
		if last, prev, err = l.Tail(ctx); err != nil {
			return "", err
		}
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
		// The segment may be stored all the same: find the tail again.
		l.forgetTail()
		return "", fmt.Errorf("save %s: %w", key, err)
	}
	// The new segment is the tail; its summary is what loading it gives.
	sum, err := summarize(plain)
	if err != nil {
		l.forgetTail()
		return key, nil
	}
	l.remember(key, sum)
	l.setTail(sum.last, id.String())
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
	return &segReader{ctx: ctx, l: l, segs: c[start:end], trustPrev: true, from: fromLSN, to: toLSN, v: NewValidator()}, nil
}

type segReader struct {
	ctx  context.Context
	l    *Log
	segs []Segment
	i    int
	// trustPrev: the first segment's prev is taken as it is. Read always
	// sets it: prune removes the head of a generation (with a deletion
	// record), so the first stored segment may name one that is gone;
	// whether a missing head was removed on purpose is check's to judge.
	trustPrev bool
	from, to  uint64
	recs      []*Record
	prevEnd   string
	v         *Validator
	err       error
	relists   int
	// ahead are the next segments (up to aheadDepth), loading in the
	// background while the caller works through this one's records:
	// fetching, decrypting and decoding is most of a replay's time, and
	// one loader at a time kept one core busy while the caller's work
	// (applying the records) left the other mostly idle. fetched counts
	// the segments of segs whose load has started.
	ahead   []*loaded
	fetched int
}

// aheadDepth is how many segments load in the background at once. Two
// loaders keep a second core busy while the caller applies records: the
// 1,000,000-record replay of the bench read its log in 2.1-2.3 s instead of
// 2.5 s. Each holds a segment's decoded records (tens of MiB), so the depth
// does not grow with the cores.
const aheadDepth = 2

// loaded is a segment loaded in the background; done closes when h, recs
// and err are set.
type loaded struct {
	seg  Segment
	h    Header
	recs []*Record
	err  error
	done chan struct{}
}

// prefetch starts loading the segments after the current one, up to
// aheadDepth of them.
func (s *segReader) prefetch() {
	s.fetched = max(s.fetched, s.i)
	for len(s.ahead) < aheadDepth && s.fetched < len(s.segs) {
		seg := s.segs[s.fetched]
		s.fetched++
		a := &loaded{seg: seg, done: make(chan struct{})}
		go func() {
			defer close(a.done)
			a.h, a.recs, a.err = s.l.Load(s.ctx, seg)
		}()
		s.ahead = append(s.ahead, a)
	}
}

// load returns seg, from the background load when it is the first one
// ahead, and starts loading the segments after it.
func (s *segReader) load(seg Segment) (Header, []*Record, error) {
	var a *loaded
	if len(s.ahead) > 0 {
		a = s.ahead[0]
		s.ahead = s.ahead[1:]
	}
	s.prefetch()
	if a != nil && a.seg.Key == seg.Key {
		<-a.done
		return a.h, a.recs, a.err
	}
	return s.l.Load(s.ctx, seg)
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
	s.ahead, s.fetched = nil, 0 // their segments may be gone; their goroutines end by themselves
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
		h, recs, err := s.load(seg)
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

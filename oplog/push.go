package oplog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/strata-backup/strata/repo"
)

// Push defaults (SPEC section 5).
const (
	DefaultFlushInterval  = time.Second
	DefaultSegmentSize    = 8 << 20
	DefaultHeartbeat      = 10 * time.Second
	DefaultAfterSealEvery = time.Minute
)

// LeaseScope is the scope of the oplog writer lease: one writer for the
// whole log, every generation (a new generation is numbered under it).
const LeaseScope = "log"

// MaxLineBytes is the longest input line push accepts (graph's limit for a
// record line); a longer one is refused as malformed without being held in
// memory whole.
const MaxLineBytes = 256 << 20

// LineSource yields the lines of push's input.
type LineSource interface {
	// ReadLine returns the next line without its line break (a trailing
	// \r is dropped too) and its line number, counted from 1. It returns
	// io.EOF after the last line. A line it cannot deliver (too long) is an
	// *Error naming the line. The returned slice is the caller's to keep.
	ReadLine(ctx context.Context) ([]byte, int, error)
}

// LineReader is a LineSource over a plain reader (a file, stdin). A line
// without a final \n at the end of the input is still a line.
type LineReader struct {
	br   *bufio.Reader
	line int
	err  error
}

// NewLineReader returns a LineReader of r.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{br: bufio.NewReaderSize(r, 256<<10)}
}

// ReadLine implements LineSource. ctx is not consulted: a blocked read of
// the underlying reader returns only when it does.
func (lr *LineReader) ReadLine(ctx context.Context) ([]byte, int, error) {
	if lr.err != nil {
		return nil, lr.line, lr.err
	}
	var line []byte
	tooLong := false
	for {
		frag, err := lr.br.ReadSlice('\n')
		if len(line)+len(frag) <= MaxLineBytes+2 { // + "\r\n"
			line = append(line, frag...)
		} else {
			tooLong, line = true, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("read input after line %d: %w", lr.line, err)
			}
			lr.err = err
			if len(line) == 0 && !tooLong {
				return nil, lr.line, err
			}
		}
		break
	}
	lr.line++
	if tooLong {
		return nil, lr.line, &Error{Line: lr.line, Reason: "line longer than " + strconv.Itoa(MaxLineBytes) + " bytes"}
	}
	return trimEOL(line), lr.line, nil
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// PushOptions configure Push. The zero value pushes to the newest
// generation with the defaults above.
type PushOptions struct {
	// NewGeneration starts generation newest+1 branching after FromLSN of
	// the newest generation (PostgreSQL timelines): for a database that
	// was restored to an earlier point and issues lsns again. FromLSN must
	// not be past the newest generation's last lsn; 0 starts afresh (the
	// first record may have any lsn). Otherwise the first record must
	// continue FromLSN. FromLSN without NewGeneration is an error.
	NewGeneration bool
	FromLSN       uint64

	// FlushInterval is the longest a received record waits before its
	// segment is sealed (default DefaultFlushInterval): about the RPO.
	FlushInterval time.Duration
	// SegmentSize seals a segment as soon as its pending records' encoded
	// size reaches it (default DefaultSegmentSize). It also bounds push's
	// memory: at most one segment is pending.
	SegmentSize int64
	// Heartbeat: while no segment was sealed for this long and no record
	// is pending, push writes a heartbeat saying the log is complete up to
	// its last durable lsn, and then removes the previous one it wrote.
	// Default DefaultHeartbeat; negative: no heartbeats. A generation
	// without records gets none, and none is written when the push ends:
	// the end of the input says nothing about the database being idle.
	// The last heartbeat stays when push ends, as evidence.
	Heartbeat time.Duration
	// LockWait is how long to wait for another push's writer lease to be
	// released (0: fail at once with repo.ErrLocked).
	LockWait time.Duration

	// OnSealed, if set, is called after each segment is durable: the
	// records in it are acknowledged. It runs on push's main loop: a slow
	// callback delays the next seal.
	OnSealed func(SealedSegment)
	// OnHeartbeat, if set, is called after each heartbeat is durable.
	OnHeartbeat func(Heartbeat)
	// Warn, if set, receives warnings as they happen (a message without a
	// "warning:" prefix). Warnings about the whole run are in PushResult.
	Warn func(string)
	// AfterSeal, if set, runs in the background after a seal, at most once
	// every AfterSealEvery (default DefaultAfterSealEvery, counted from the
	// start of the push) and never twice at once; push waits for a running
	// one before it releases its lease. It is meant for compaction. An
	// error is passed to Warn; the push goes on.
	AfterSeal      func(ctx context.Context, l *Log) error
	AfterSealEvery time.Duration
}

// SealedSegment is one durable segment written by push.
type SealedSegment struct {
	Generation        uint64
	Key               string
	FirstLSN, LastLSN uint64
	Records           int
	// LastTS is the last record's (effective) ts: the log is recoverable
	// up to it.
	LastTS string
}

// PushResult summarises a push. Push returns it also with an error: it
// then says what was stored before the failure.
type PushResult struct {
	Generation uint64
	Parent     *Parent // where the generation branches off, nil for none
	// Records were stored by this push in Segments segments; Skipped were
	// re-sends of records already stored (or received), skipped as equal,
	// SkippedFirst..SkippedLast their lsn range.
	Records                   int
	Segments                  int
	Skipped                   int
	SkippedFirst, SkippedLast uint64
	// LastLSN is the generation's last durable lsn (0: none yet).
	LastLSN    uint64
	Heartbeats int
	// ClampWarning is the Validator's warning about clamped ts ("" if
	// none); Clamped counts those records.
	Clamped      int
	ClampWarning string
	// OpenTx: the log ends inside a transaction (stored as is; recovery
	// applies it only once a later push completes it).
	OpenTx   bool
	Duration time.Duration
}

// Push streams mutation records from src into the log (SPEC section 5). It
// holds the log's writer lease for its whole run, validates every record
// (continuity, ts clamping), skips re-sent records equal to those stored,
// and seals pending records into a segment every FlushInterval or
// SegmentSize, whichever comes first. It ends at the end of src (nil
// error), at ctx's cancellation (ctx.Err()), or at the first bad line: a
// malformed line, a gap, or a re-sent lsn with different content (an
// error naming the line). In every case the good records received before
// the end are sealed first; nothing past them is stored.
//
// Push does not wait for a blocked ReadLine of src to return once it has
// ended (a LineReader on a pipe); a Follower stops with ctx.
func Push(ctx context.Context, r *repo.Repository, src LineSource, opts PushOptions) (PushResult, error) {
	start := time.Now()
	if opts.FromLSN != 0 && !opts.NewGeneration {
		return PushResult{}, errors.New("oplog push: a from-lsn needs a new generation")
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.AfterSealEvery <= 0 {
		opts.AfterSealEvery = DefaultAfterSealEvery
	}
	lease, err := acquireWriterLease(ctx, r, opts.LockWait)
	if err != nil {
		return PushResult{}, err
	}
	// Cleanup must work after ctx is cancelled (SIGINT): the pending
	// records are sealed and the lease released all the same.
	bg := context.WithoutCancel(ctx)
	defer lease.Release(bg)

	p := &pusher{r: r, opts: opts, lease: lease, bg: bg, start: start, v: NewValidator()}
	defer p.waitAfterSeal()
	if err := p.open(ctx); err != nil {
		return PushResult{}, err
	}
	err = p.run(ctx, src)
	if err == nil && p.res.Segments > 0 && opts.AfterSeal != nil {
		// The input ended: run the hook (compaction) once more over what
		// this push wrote, still under the lease, so a batch push shorter
		// than AfterSealEvery leaves a compacted log too.
		p.waitAfterSeal()
		if aerr := opts.AfterSeal(bg, p.l); aerr != nil && opts.Warn != nil {
			opts.Warn(fmt.Sprintf("after sealing: %v", aerr))
		}
	}
	p.res.Clamped, p.res.ClampWarning = p.v.Clamped, p.v.ClampWarning()
	p.res.OpenTx = p.tx.Open()
	p.res.Duration = time.Since(start)
	return p.res, err
}

// acquireWriterLease takes the log's exclusive writer lease, retrying
// until wait has passed while another push holds it.
func acquireWriterLease(ctx context.Context, r *repo.Repository, wait time.Duration) (*repo.Lease, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := r.AcquireLease(ctx, repo.LeaseOplog, LeaseScope, true, 0)
		if err == nil || !errors.Is(err, repo.ErrLocked) || !time.Now().Before(deadline) {
			if err != nil && wait > 0 && errors.Is(err, repo.ErrLocked) {
				err = fmt.Errorf("oplog push: waited %v: %w", wait, err)
			}
			return l, err
		}
		t := time.NewTimer(min(500*time.Millisecond, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

type pusher struct {
	r     *repo.Repository
	opts  PushOptions
	lease *repo.Lease
	bg    context.Context
	start time.Time
	l     *Log
	v     *Validator
	tx    TxTracker
	res   PushResult

	// firstLSN is the generation's first lsn (0: none yet); earlier
	// re-sent records are skipped unchecked (pruned, or the parent's).
	firstLSN     uint64
	warnedBefore bool

	pending      []*Record
	pendingBytes int64
	// durable is the last stored record (nil: the generation is empty).
	durable *Record
	cursor  storedCursor

	hbKey string // the last heartbeat this push wrote

	afterMu      sync.Mutex
	afterRunning bool
	afterLast    time.Time
	afterWG      sync.WaitGroup
}

// open chooses the generation and resumes from its tail, or starts a new
// one.
func (p *pusher) open(ctx context.Context) error {
	newest, err := NewestGeneration(ctx, p.r)
	if err != nil {
		return err
	}
	if !p.opts.NewGeneration {
		gen := max(newest, 1)
		if p.l, err = Open(ctx, p.r, gen); err != nil {
			return err
		}
		if gen >= 2 {
			parent, err := p.l.LoadParent(ctx)
			if err != nil {
				return err
			}
			if parent == nil {
				return fmt.Errorf("oplog push: generation %d has no segments, so its parent is unknown; start it with --new-generation --from-lsn N", gen)
			}
			p.l.Parent = parent
		}
		segs, err := p.l.Segments(ctx)
		if err != nil {
			return err
		}
		if len(segs) > 0 {
			p.firstLSN = segs[0].FirstLSN
		}
		tail, _, err := p.l.Tail(ctx)
		if err != nil {
			return err
		}
		if tail != nil {
			p.v.Resume(tail)
			p.tx.Add(tail)
			p.durable = tail
			p.res.LastLSN = tail.LSN
		}
		p.res.Generation, p.res.Parent = gen, p.l.Parent
		return nil
	}

	n := p.opts.FromLSN
	var parent *Parent
	if newest == 0 {
		if n != 0 {
			return fmt.Errorf("oplog push: --from-lsn %d: the log is empty (a first generation starts from lsn 0)", n)
		}
	} else {
		pl, err := Open(ctx, p.r, newest)
		if err != nil {
			return err
		}
		tail, _, err := pl.Tail(ctx)
		if err != nil {
			return err
		}
		var last uint64
		if tail != nil {
			last = tail.LSN
		}
		if n > last {
			return fmt.Errorf("oplog push: --from-lsn %d is past the end of generation %d, whose last lsn is %d", n, newest, last)
		}
		parent = &Parent{Generation: newest, LSN: n}
		if n > 0 {
			// The first record continues lsn n; its ts is clamped
			// against the parent's record n, as if it followed it.
			after := &Record{LSN: n, Eff: Time{Sec: math.MinInt64}}
			if rec, err := parentRecord(ctx, p.r, newest, n); err != nil {
				return err
			} else if rec != nil {
				after.TS, after.Time, after.EffTS, after.Eff = rec.EffTS, rec.Eff, rec.EffTS, rec.Eff
			}
			p.v.Resume(after)
			p.firstLSN = n + 1
		}
	}
	gen := newest + 1
	if p.l, err = Open(ctx, p.r, gen); err != nil {
		return err
	}
	p.l.Parent = parent
	p.res.Generation, p.res.Parent = gen, parent
	return nil
}

// parentRecord returns the record at lsn on generation gen's history, nil
// if there is none (pruned, or a sparse log without that lsn).
func parentRecord(ctx context.Context, r *repo.Repository, gen, lsn uint64) (*Record, error) {
	h, err := OpenHistory(ctx, r, gen)
	if err != nil {
		return nil, err
	}
	it, err := h.Read(ctx, lsn, lsn)
	if err != nil {
		return nil, err
	}
	rec, err := it.Next()
	if errors.Is(err, io.EOF) || rec != nil && rec.LSN != lsn {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lsn %d of generation %d: %w", lsn, gen, err)
	}
	return rec, nil
}

// item is what the reader goroutine hands the main loop: a parsed record,
// or the error that ends the input (io.EOF at its end).
type item struct {
	rec *Record
	err error
}

func (p *pusher) run(ctx context.Context, src LineSource) error {
	rctx, stopReader := context.WithCancel(ctx)
	defer stopReader()
	items := make(chan item) // unbuffered: the reader waits while a seal runs
	go readLines(rctx, src, items)

	flush := time.NewTimer(time.Hour)
	flush.Stop() // armed when a record becomes pending
	defer flush.Stop()
	var heartbeat <-chan time.Time
	var hb *time.Timer
	if p.opts.Heartbeat > 0 {
		hb = time.NewTimer(p.opts.Heartbeat)
		defer hb.Stop()
		heartbeat = hb.C
	}
	resetHeartbeat := func() {
		if hb != nil {
			hb.Reset(p.opts.Heartbeat)
		}
	}

	for {
		select {
		case <-ctx.Done():
			if err := p.seal(); err != nil {
				return err
			}
			return ctx.Err()

		case <-flush.C:
			if err := p.seal(); err != nil {
				return err
			}
			resetHeartbeat()

		case <-heartbeat:
			if err := p.heartbeat(); err != nil {
				return err
			}
			resetHeartbeat()

		case it := <-items:
			if it.err != nil {
				if err := p.seal(); err != nil {
					return err
				}
				if errors.Is(it.err, io.EOF) {
					return nil
				}
				return p.refusal(it.err)
			}
			wasEmpty := len(p.pending) == 0
			if err := p.accept(ctx, it.rec); err != nil {
				if serr := p.seal(); serr != nil {
					return serr
				}
				return p.refusal(err)
			}
			switch {
			case p.pendingBytes >= p.opts.SegmentSize:
				if err := p.seal(); err != nil {
					return err
				}
				flush.Stop()
				resetHeartbeat()
			case wasEmpty && len(p.pending) > 0:
				flush.Reset(p.opts.FlushInterval)
			}
		}
	}
}

// readLines parses src's lines and sends them to the main loop until the
// input ends, a line is malformed or ctx is done.
func readLines(ctx context.Context, src LineSource, items chan<- item) {
	send := func(it item) bool {
		select {
		case items <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		text, n, err := src.ReadLine(ctx)
		if err != nil {
			if ctx.Err() == nil {
				send(item{err: err})
			}
			return
		}
		if isBlank(text) {
			continue
		}
		rec, err := ParseRecord(text, n)
		if err != nil {
			send(item{err: err})
			return
		}
		if !send(item{rec: rec}) {
			return
		}
	}
}

// refusal words the error that ends a push at a bad line or a read error.
func (p *pusher) refusal(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("oplog push: %w (generation %d ends at lsn %d)", err, p.res.Generation, p.res.LastLSN)
	}
	return fmt.Errorf("oplog push refused: %w (generation %d ends at lsn %d; nothing from that line on was stored)", err, p.res.Generation, p.res.LastLSN)
}

// accept takes one record: a new one is validated and becomes pending; a
// re-sent one (lsn at or before the last accepted) is compared with the
// stored or pending record at its lsn and skipped if equal.
func (p *pusher) accept(ctx context.Context, rec *Record) error {
	last := p.v.Last()
	if last == nil || rec.LSN > last.LSN {
		if err := p.v.Check(rec); err != nil {
			return err
		}
		if p.firstLSN == 0 {
			p.firstLSN = rec.LSN
		}
		p.tx.Add(rec)
		p.pending = append(p.pending, rec)
		p.pendingBytes += int64(len(rec.AppendJSON(nil)) + 1)
		p.cursor.close() // caught up with the stored log
		return nil
	}
	if rec.LSN < p.firstLSN {
		if !p.warnedBefore && p.opts.Warn != nil {
			p.warnedBefore = true
			p.opts.Warn(fmt.Sprintf("line %d: lsn %d is before lsn %d, where generation %d starts: records before it are skipped without comparing them",
				rec.Line, rec.LSN, p.firstLSN, p.res.Generation))
		}
		p.skipped(rec)
		return nil
	}
	var have *Record
	if len(p.pending) > 0 && rec.LSN >= p.pending[0].LSN {
		i := sort.Search(len(p.pending), func(i int) bool { return p.pending[i].LSN >= rec.LSN })
		if i < len(p.pending) && p.pending[i].LSN == rec.LSN {
			have = p.pending[i]
		}
	} else {
		var err error
		if have, err = p.cursor.find(ctx, p.l, rec.LSN); err != nil {
			return err
		}
	}
	if have == nil {
		return p.conflict(rec, fmt.Sprintf("lsn %d is not in the log, which is already past it", rec.LSN))
	}
	if skip, err := Resend(rec, have); !skip {
		var e *Error
		if errors.As(err, &e) {
			return p.conflict(rec, e.Reason)
		}
		return err
	}
	p.skipped(rec)
	return nil
}

func (p *pusher) skipped(rec *Record) {
	if p.res.Skipped == 0 || rec.LSN < p.res.SkippedFirst {
		p.res.SkippedFirst = rec.LSN
	}
	p.res.SkippedLast = max(p.res.SkippedLast, rec.LSN)
	p.res.Skipped++
}

// conflict is a re-sent lsn that differs from the log: most likely the
// database went back in time, which takes a new generation.
func (p *pusher) conflict(rec *Record, reason string) error {
	before := rec.LSN - 1
	if rec.HasPrev {
		before = rec.PrevLSN
	}
	return &Error{Line: rec.Line, Reason: fmt.Sprintf(
		"%s; if the database was restored to an earlier point, start a new generation with `strata oplog push --new-generation --from-lsn %d`",
		reason, before)}
}

// seal stores the pending records as one segment. It checks the lease
// first: a push that may have lost it must not write.
func (p *pusher) seal() error {
	if len(p.pending) == 0 {
		return nil
	}
	recs := p.pending
	if err := p.lease.Valid(); err != nil {
		return fmt.Errorf("oplog push: %w; lsn %d..%d not stored", err, recs[0].LSN, recs[len(recs)-1].LSN)
	}
	key, err := p.l.Append(p.bg, recs)
	if err != nil {
		return fmt.Errorf("oplog push: lsn %d..%d not stored: %w", recs[0].LSN, recs[len(recs)-1].LSN, err)
	}
	p.pending, p.pendingBytes = nil, 0
	p.durable = recs[len(recs)-1]
	p.res.Records += len(recs)
	p.res.Segments++
	p.res.LastLSN = p.durable.LSN
	if p.opts.OnSealed != nil {
		p.opts.OnSealed(SealedSegment{Generation: p.res.Generation, Key: key,
			FirstLSN: recs[0].LSN, LastLSN: p.durable.LSN, Records: len(recs), LastTS: p.durable.EffTS})
	}
	p.afterSeal()
	return nil
}

// heartbeat records that the log is complete up to the last durable lsn
// now, then removes this push's previous heartbeat. A generation without
// records gets none: it would make an empty generation the newest.
func (p *pusher) heartbeat() error {
	if p.durable == nil || len(p.pending) > 0 {
		return nil // nothing to vouch for, or records not yet durable
	}
	if err := p.lease.Valid(); err != nil {
		return fmt.Errorf("oplog push: %w", err)
	}
	hb := Heartbeat{Time: time.Now(), LastLSN: p.durable.LSN}
	key, err := WriteHeartbeat(p.bg, p.r, p.res.Generation, hb)
	if err != nil {
		if p.opts.Warn != nil {
			p.opts.Warn(err.Error())
		}
		return nil
	}
	p.res.Heartbeats++
	if p.opts.OnHeartbeat != nil {
		p.opts.OnHeartbeat(hb)
	}
	if p.hbKey != "" && p.hbKey != key {
		if err := RemoveHeartbeat(p.bg, p.r, p.hbKey); err != nil && p.opts.Warn != nil {
			p.opts.Warn(err.Error())
		}
	}
	p.hbKey = key
	return nil
}

// afterSeal starts opts.AfterSeal in the background when it is due.
func (p *pusher) afterSeal() {
	if p.opts.AfterSeal == nil {
		return
	}
	p.afterMu.Lock()
	defer p.afterMu.Unlock()
	last := p.afterLast
	if last.IsZero() {
		last = p.start
	}
	if p.afterRunning || time.Since(last) < p.opts.AfterSealEvery {
		return
	}
	p.afterRunning, p.afterLast = true, time.Now()
	p.afterWG.Add(1)
	go func() {
		defer p.afterWG.Done()
		err := p.opts.AfterSeal(p.bg, p.l)
		if err != nil && p.opts.Warn != nil {
			p.opts.Warn(fmt.Sprintf("after sealing: %v", err))
		}
		p.afterMu.Lock()
		p.afterRunning = false
		p.afterMu.Unlock()
	}()
}

func (p *pusher) waitAfterSeal() { p.afterWG.Wait() }

// storedCursor reads the stored log in lockstep with re-sent records, so
// comparing a long re-send loads one segment at a time, not the log.
type storedCursor struct {
	it   Iterator
	peek *Record
}

func (c *storedCursor) close() { c.it, c.peek = nil, nil }

// find returns the stored record at lsn, nil if the log has none there.
func (c *storedCursor) find(ctx context.Context, l *Log, lsn uint64) (*Record, error) {
	reopened := false
	if c.it != nil && c.peek != nil && c.peek.LSN > lsn {
		c.close() // the input went back: read again from there
	}
	for {
		if c.it == nil {
			it, err := l.Read(ctx, lsn, 0)
			if err != nil {
				return nil, err
			}
			c.it, reopened = it, true
		}
		if c.peek == nil {
			rec, err := c.it.Next()
			if errors.Is(err, io.EOF) {
				// Segments sealed since the cursor opened are not in its
				// listing: look once more.
				c.close()
				if reopened {
					return nil, nil
				}
				continue
			}
			if err != nil {
				c.close()
				return nil, fmt.Errorf("read the stored log to compare a re-sent record: %w", err)
			}
			c.peek = rec
		}
		switch {
		case c.peek.LSN < lsn:
			c.peek = nil
		case c.peek.LSN == lsn:
			return c.peek, nil
		default:
			return nil, nil
		}
	}
}

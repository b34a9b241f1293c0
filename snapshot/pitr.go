package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
)

// ErrNotRecoverable means the log does not (yet) hold what a point-in-time
// restore, or a snapshot's consistent cut, needs. The message names the
// missing range and the newest reachable point.
var ErrNotRecoverable = errors.New("point not recoverable")

// Target is a point to recover: an lsn, or a time, on one generation's
// history (0: the newest generation).
type Target struct {
	Generation uint64
	LSN        uint64
	HasLSN     bool
	At         *time.Time
}

func (t Target) String() string {
	if t.HasLSN {
		return fmt.Sprintf("lsn %d", t.LSN)
	}
	return t.At.UTC().Format(time.RFC3339Nano)
}

// Timeline is what the log and the snapshots make recoverable.
type Timeline struct {
	History   *oplog.History
	Coverage  *oplog.Coverage
	Heartbeat *oplog.Heartbeat
	// Bases are the snapshots with a cut on this history, newest cut first,
	// each with where its cut lands and whether the log covers it.
	Bases []Base
}

// Base is a snapshot with a consistent cut, as a PITR base.
type Base struct {
	Entry
	// End is where the cut lands (its lsn_end, extended to the end of the
	// transaction it falls inside); BeforeLog: the cut precedes the log.
	End       oplog.Point
	BeforeLog bool
	// Run is the index of the coverage run that replays it, -1 if none:
	// then Why says what is missing.
	Run int
	Why string
}

// Window is a recoverable stretch: every point from From to To can be
// restored (from the base snapshot plus the log).
type Window struct {
	From, To oplog.Point
	// ToTime extends To's time when a heartbeat says the log was complete
	// later than its last record.
	ToTime time.Time
	Base   Entry
}

// LoadTimeline reads the log's history of generation gen (0: newest), its
// coverage and heartbeat, and judges every snapshot with a cut as a base.
func LoadTimeline(ctx context.Context, r *repo.Repository, gen uint64) (*Timeline, error) {
	h, err := oplog.OpenHistory(ctx, r, gen)
	if err != nil {
		return nil, err
	}
	cov, err := h.Coverage(ctx)
	if err != nil {
		return nil, err
	}
	hb, err := oplog.LatestHeartbeat(ctx, r, h.Gen)
	if err != nil {
		return nil, err
	}
	tl := &Timeline{History: h, Coverage: cov, Heartbeat: hb}
	all, err := List(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, e := range all {
		c := e.Cut
		if c == nil || !h.Contains(c.Generation, c.LSNEnd) || !h.Contains(c.Generation, c.LSNStart) {
			continue
		}
		tl.Bases = append(tl.Bases, tl.judge(ctx, e))
	}
	sort.SliceStable(tl.Bases, func(i, j int) bool {
		a, b := tl.Bases[i], tl.Bases[j]
		if a.Cut.LSNEnd != b.Cut.LSNEnd {
			return a.Cut.LSNEnd > b.Cut.LSNEnd
		}
		return a.Time.After(b.Time)
	})
	return tl, nil
}

// judge finds the run that replays base e: the log must hold every record
// after lsn_start, up to the end of the cut's transaction.
func (tl *Timeline) judge(ctx context.Context, e Entry) Base {
	b := Base{Entry: e, Run: -1}
	c := e.Cut
	end, ok, err := tl.History.CutEnd(ctx, c.LSNEnd)
	switch {
	case err != nil:
		b.Why = fmt.Sprintf("the log does not cover its cut (%d, %d] yet: %v", c.LSNStart, c.LSNEnd, err)
		return b
	case !ok:
		b.BeforeLog = true
		b.End = oplog.Point{LSN: c.LSNEnd}
	default:
		b.End = end
	}
	runs := tl.Coverage.Runs
	for i, run := range runs {
		if b.BeforeLog {
			// The cut precedes the log: it is a base only if nothing lies
			// between it and the log's first record.
			if i == 0 && c.LSNStart == c.LSNEnd && (c.LSNEnd == 0 || run.First.Follows(c.LSNEnd)) {
				b.Run = 0
			}
			break
		}
		if end.LSN < run.First.LSN || end.LSN > run.Last.LSN {
			continue
		}
		if c.LSNStart == end.LSN || c.LSNStart >= run.First.LSN || run.First.Follows(c.LSNStart) || c.LSNStart == 0 && i == 0 {
			b.Run = i
		} else {
			b.Why = fmt.Sprintf("the log lacks records after lsn %d (it resumes at lsn %d)", c.LSNStart, run.First.LSN)
		}
		return b
	}
	if b.Run < 0 && b.Why == "" {
		b.Why = fmt.Sprintf("the log does not cover its cut (%d, %d]", c.LSNStart, c.LSNEnd)
	}
	return b
}

// Reachable returns the newest point the log can restore (the end of its
// last whole transaction) and how far in time it is known complete.
func (tl *Timeline) Reachable() (oplog.Point, time.Time, bool) {
	runs := tl.Coverage.Runs
	if len(runs) == 0 {
		return oplog.Point{}, time.Time{}, false
	}
	last := runs[len(runs)-1]
	if !last.HasWhole {
		return oplog.Point{}, time.Time{}, false
	}
	until := last.LastWhole.Time.GoTime()
	if hb := tl.Heartbeat; hb != nil && hb.LastLSN >= last.Last.LSN && last.LastWhole.LSN == last.Last.LSN && hb.Time.After(until) {
		until = hb.Time
	}
	return last.LastWhole, until, true
}

// RPO is now minus the newest durable mutation or heartbeat.
func (tl *Timeline) RPO(now time.Time) (time.Duration, bool) {
	var newest time.Time
	if runs := tl.Coverage.Runs; len(runs) > 0 {
		newest = runs[len(runs)-1].Last.Time.GoTime()
	}
	if hb := tl.Heartbeat; hb != nil && hb.Time.After(newest) {
		newest = hb.Time
	}
	if newest.IsZero() {
		return 0, false
	}
	return max(now.Sub(newest), 0), true
}

// Windows returns the recoverable windows: per run of the log, from the
// oldest base that run replays to the run's last whole transaction.
func (tl *Timeline) Windows() []Window {
	var out []Window
	for i, run := range tl.Coverage.Runs {
		if !run.HasWhole {
			continue
		}
		var oldest *Base
		for j := range tl.Bases {
			b := &tl.Bases[j]
			if b.Run == i && (oldest == nil || b.End.LSN < oldest.End.LSN || b.BeforeLog) {
				oldest = b
			}
		}
		if oldest == nil {
			continue
		}
		from := oldest.End
		if oldest.BeforeLog {
			// The base precedes the log: every point up to the first
			// record is the base itself; the window starts there.
			from = oplog.Point{Gen: run.First.Gen, LSN: oldest.Cut.LSNEnd, TS: run.First.TS, Time: run.First.Time}
		}
		w := Window{From: from, To: run.LastWhole, ToTime: run.LastWhole.Time.GoTime(), Base: oldest.Entry}
		if i == len(tl.Coverage.Runs)-1 {
			_, w.ToTime, _ = tl.Reachable()
		}
		out = append(out, w)
	}
	return out
}

// newestReachable describes the newest reachable point for error messages.
func (tl *Timeline) newestReachable() string {
	ws := tl.Windows()
	if len(ws) == 0 {
		if len(tl.Bases) == 0 {
			return "no point is reachable: no snapshot has a consistent cut on this log (back up with --lsn-start/--lsn-end or --pre-hook/--post-hook)"
		}
		return "no point is reachable: " + tl.Bases[0].Why
	}
	w := ws[len(ws)-1]
	return fmt.Sprintf("the newest reachable point is lsn %d at %s (generation %d)", w.To.LSN, w.ToTime.Format(time.RFC3339Nano), tl.History.Gen)
}

// Plan chooses the base for target: the newest snapshot whose cut is at or
// before the target and whose log run reaches the target.
func (tl *Timeline) Plan(t Target) (Base, error) {
	fail := func(format string, a ...any) (Base, error) {
		return Base{}, fmt.Errorf("restore at %s: %s; %s: %w", t, fmt.Sprintf(format, a...), tl.newestReachable(), ErrNotRecoverable)
	}
	runs := tl.Coverage.Runs
	if len(runs) == 0 {
		return fail("generation %d holds no log records", tl.History.Gen)
	}
	// The run the target lies in: the first one that ends at or after it.
	var at oplog.Time
	if !t.HasLSN {
		at = oplog.TimeOf(*t.At)
	}
	ri := -1
	for i, run := range runs {
		if t.HasLSN && t.LSN <= run.Last.LSN || !t.HasLSN && at.Compare(run.Last.Time) <= 0 {
			ri = i
			break
		}
	}
	switch {
	case ri < 0 && t.HasLSN:
		return fail("the log ends at lsn %d", runs[len(runs)-1].Last.LSN)
	case ri < 0:
		_, until, ok := tl.Reachable()
		if !ok || t.At.After(until) {
			return fail("the log is complete only up to %s", until.Format(time.RFC3339Nano))
		}
		ri = len(runs) - 1
	case ri > 0 && (t.HasLSN && t.LSN < runs[ri].First.LSN || !t.HasLSN && at.Compare(runs[ri].First.Time) < 0):
		g := tl.Coverage.Gaps[ri-1]
		return fail("it lies in a gap of the log (the records after lsn %d up to lsn %d are missing)", g.After, g.Before-1)
	}
	for _, b := range tl.Bases {
		if b.Run != ri {
			continue
		}
		if t.HasLSN && b.End.LSN > t.LSN {
			continue
		}
		if !t.HasLSN && !b.BeforeLog && b.End.Time.Compare(oplog.TimeOf(*t.At)) > 0 {
			continue
		}
		return b, nil
	}
	return fail("no snapshot with a consistent cut at or before it is replayable by the log")
}

// PointOptions say how to restore a point.
type PointOptions struct {
	Target Target
	// Tiers selects graph tiers by name (default: all).
	Tiers    []string
	MemLimit int64
	TmpDir   string
}

// PointState is the graph at a point: tier states to stream (close them),
// the base they came from and what the replay did.
type PointState struct {
	// Generation is the generation whose history was replayed.
	Generation uint64
	Base       Base
	Tiers      map[string]graph.Iterator
	Replay     *oplog.ReplayResult
	// NotReplayed are the base's files tiers (no log): returned as
	// captured.
	NotReplayed []Tier
}

// Close closes every tier stream.
func (p *PointState) Close() error {
	var first error
	for _, it := range p.Tiers {
		if err := it.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// StateAt plans and replays: the graph tiers at target.
func StateAt(ctx context.Context, r *repo.Repository, tl *Timeline, opts PointOptions) (*PointState, error) {
	b, err := tl.Plan(opts.Target)
	if err != nil {
		return nil, err
	}
	ro := oplog.ReplayOptions{MemLimit: opts.MemLimit, TmpDir: opts.TmpDir}
	if opts.Target.HasLSN {
		ro.LSN, ro.HasLSN = opts.Target.LSN, true
	} else {
		at := oplog.TimeOf(*opts.Target.At)
		ro.At = &at
	}
	end := tl.Coverage.Runs[b.Run].Last.LSN
	if ro.HasLSN {
		// No segment past the one with the record after the cut.
		e, err := tl.History.ReadEnd(ctx, ro.LSN)
		if err != nil {
			return nil, err
		}
		if e != 0 && e < end {
			end = e
		}
	}
	return replayBase(ctx, r, tl.History, b, ro, opts.Tiers, end)
}

// replayBase replays the log over base b's captured tiers from its
// lsn_start on, up to ro's cut, reading no further than lsn end (the end of
// b's run: past a gap the chain cannot be followed).
func replayBase(ctx context.Context, r *repo.Repository, h *oplog.History, b Base, ro oplog.ReplayOptions, names []string, end uint64) (*PointState, error) {
	tiers := map[string]graph.Iterator{}
	closeAll := func() {
		for _, it := range tiers {
			it.Close()
		}
	}
	ps := &PointState{Base: b, Generation: h.Gen}
	for _, t := range b.Tiers {
		if t.Format != FormatGraph {
			ps.NotReplayed = append(ps.NotReplayed, t)
			continue
		}
		it, err := TierState(ctx, r, t)
		if err != nil {
			closeAll()
			return nil, err
		}
		tiers[t.Name] = it
	}
	c := b.Cut
	from := c.LSNStart + 1
	if b.BeforeLog {
		from = 0
	} else if c.LSNStart > 0 {
		ro.AfterLSN, ro.HasAfter = c.LSNStart, true
	}
	// The replay reads the log up to the cut before it returns, and this
	// function returns right after it: then the segments the reader was
	// still loading ahead are not needed (a cut by time has no segment
	// bound, see StateAt). The tiers keep ctx.
	rctx, stopLog := context.WithCancel(ctx)
	defer stopLog()
	log, err := h.Read(rctx, from, end)
	if err != nil {
		closeAll()
		return nil, err
	}
	res, err := oplog.Replay(tiers, log, ro)
	if err != nil {
		return nil, fmt.Errorf("replay the log over snapshot %s: %w", b.ID.Short(), err)
	}
	for _, t := range b.Tiers {
		if t.Format != FormatGraph {
			if _, clash := res.Tiers[t.Name]; clash {
				res.Close()
				return nil, fmt.Errorf("replay the log over snapshot %s: the log writes to tier %s, a files tier", b.ID.Short(), t.Name)
			}
		}
	}
	ps.Replay = res
	ps.Tiers = res.Tiers
	if len(names) == 0 {
		return ps, nil
	}
	keep, files := map[string]graph.Iterator{}, ps.NotReplayed[:0:0]
	for _, n := range names {
		if i := slices.IndexFunc(ps.NotReplayed, func(t Tier) bool { return t.Name == n }); i >= 0 {
			files = append(files, ps.NotReplayed[i])
			continue
		}
		it, ok := res.Tiers[n]
		if !ok {
			res.Close()
			for _, it := range keep {
				it.Close()
			}
			return nil, fmt.Errorf("restore tier %q: %w (at this point the graph has %v)", n, ErrUnknownTier, res.TierNames())
		}
		keep[n] = it
		delete(res.Tiers, n)
	}
	res.Close()
	ps.Tiers, ps.NotReplayed = keep, files
	return ps, nil
}

// CutState returns the graph tiers of sn at its consistent cut: for a
// snapshot without a cut, the tiers as captured; with one, the log replayed
// over (lsn_start, lsn_end], extended to the end of the transaction the cut
// falls inside, so every tier lands on the same cut. It fails with
// ErrNotRecoverable while the log does not cover that window.
func CutState(ctx context.Context, r *repo.Repository, e Entry, names []string, memLimit int64, tmpDir string) (*PointState, error) {
	if e.Cut == nil {
		return capturedState(ctx, r, e, names)
	}
	c := e.Cut
	h, err := oplog.OpenHistory(ctx, r, c.Generation)
	if errors.Is(err, oplog.ErrNoLog) && c.LSNStart == c.LSNEnd {
		// Nothing to replay and no log to extend a transaction with: the
		// export was taken at a quiescent point.
		return capturedState(ctx, r, e, names)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s has a cut (%d, %d] of generation %d: %w: %w", e.ID.Short(), c.LSNStart, c.LSNEnd, c.Generation, err, ErrNotRecoverable)
	}
	tl := &Timeline{History: h}
	if tl.Coverage, err = h.Coverage(ctx); err != nil {
		return nil, err
	}
	b := tl.judge(ctx, e)
	if b.Run < 0 {
		if b.BeforeLog && c.LSNStart == c.LSNEnd {
			return capturedState(ctx, r, e, names)
		}
		return nil, fmt.Errorf("restore snapshot %s: %s (use backup --wait-for-log, or push the log first): %w", e.ID.Short(), b.Why, ErrNotRecoverable)
	}
	if b.BeforeLog {
		return capturedState(ctx, r, e, names) // nothing lies between the cut and the log
	}
	ro := oplog.ReplayOptions{MemLimit: memLimit, TmpDir: tmpDir, LSN: b.End.LSN, HasLSN: true}
	return replayBase(ctx, r, h, b, ro, names, tl.Coverage.Runs[b.Run].Last.LSN)
}

// capturedState returns the tiers of e as captured.
func capturedState(ctx context.Context, r *repo.Repository, e Entry, names []string) (*PointState, error) {
	ps := &PointState{Base: Base{Entry: e, Run: -1}, Tiers: map[string]graph.Iterator{}}
	sel, err := selectTiers(e.Snapshot, names)
	if err != nil {
		return nil, err
	}
	for _, t := range sel {
		if t.Format != FormatGraph {
			ps.NotReplayed = append(ps.NotReplayed, t)
			continue
		}
		it, err := TierState(ctx, r, t)
		if err != nil {
			ps.Close()
			return nil, err
		}
		ps.Tiers[t.Name] = it
	}
	return ps, nil
}

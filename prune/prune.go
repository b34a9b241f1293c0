package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

// Defaults of Options.
const (
	DefaultMaxUnused = 0.05
	DefaultMargin    = time.Hour
)

// ErrInconsistent means the index does not cover what the snapshots need:
// pruning could delete live data, so prune refuses.
var ErrInconsistent = errors.New("the index is inconsistent with the snapshots")

// Options tune a prune.
type Options struct {
	// DryRun computes the plan and changes nothing.
	DryRun bool
	// MaxUnused is the share of unused bytes in packs that is tolerated
	// (default DefaultMaxUnused); beyond it partly used packs are repacked,
	// the emptiest first.
	MaxUnused float64
	// Margin is how long a mark must be old, by the store's clock, before
	// a later prune may delete what it marks (default DefaultMargin; 0:
	// this run may delete what it marks itself, when no backup lease is
	// alive).
	Margin time.Duration
	// StoreTime returns the store's clock (default: write a probe object
	// and read its modification time).
	StoreTime func(ctx context.Context) (time.Time, error)
	// KeepLogFrom, when set, returns the lowest lsn of the newest
	// generation's history whose segments must stay (the PITR window and
	// the snapshots' cuts); segments wholly before it are removed. Nil:
	// from the oldest cut any snapshot needs.
	KeepLogFrom func(ctx context.Context) (uint64, bool, error)
	Writer      repo.WriterOptions
	// Progress is told each stage as it starts (nil: silent).
	Progress func(stage string)
}

// Plan is what a prune found and will do.
type Plan struct {
	Packs        int   `json:"packs"`
	PacksUnused  int   `json:"packs_unused"`
	PacksPartial int   `json:"packs_partly_used"`
	BytesTotal   int64 `json:"bytes_total"`
	BytesUnused  int64 `json:"bytes_unused"`
	// Mark are packs to mark now: unused, or to be repacked (Repack).
	Mark   []string `json:"mark"`
	Repack []string `json:"repack"`
	// Unmark are marked packs that are needed again (a backup that began
	// before the mark used them).
	Unmark []string `json:"unmark"`
	// Delete are marked packs old enough to delete; Waiting the rest, with
	// why.
	Delete  []string          `json:"delete"`
	Waiting map[string]string `json:"waiting"`
	// Segments are log segments wholly before what any restore needs.
	Segments []string `json:"segments"`
	// Unreferenced are packs no index lists (crash leftovers): marked too.
	Unreferenced []string `json:"unreferenced"`
	BytesFreed   int64    `json:"bytes_freed"`
}

// Result is a finished prune.
type Result struct {
	Plan
	DryRun   bool            `json:"dry_run"`
	Repacked repo.WriteStats `json:"-"`
	Removed  int             `json:"removed"`
}

// pruneState is what the planning reads.
type pruneState struct {
	packs     map[chunk.ID][]index.Blob // live index: pack -> blobs
	packIndex map[chunk.ID][]chunk.ID   // pack -> index objects listing it
	copies    map[chunk.ID][]chunk.ID   // blob -> packs holding it
	indexes   map[chunk.ID]*index.File  // live index objects
	sizes     map[chunk.ID]int64        // stored packs
	needed    map[chunk.ID]bool         // blobs snapshots need
	marks     *repo.MarkSet
}

// Prune removes what no snapshot needs, in SPEC section 8's two phases:
// phase one marks unused packs (and packs to repack, after copying their
// live blobs into new packs) with a deletion record; phase two, in this run
// or a later one, deletes marked packs that are still unneeded, whose mark is
// older than Margin by the store's clock, and that no backup lease older
// than the mark could still use. The index is rewritten to drop deleted
// packs (new objects superseding the old), and log segments before what any
// restore needs are removed. Prune holds the exclusive prune lease and
// checks it before each batch of deletions.
func Prune(ctx context.Context, r *repo.Repository, opts Options) (*Result, error) {
	if opts.MaxUnused <= 0 {
		opts.MaxUnused = DefaultMaxUnused
	}
	if opts.StoreTime == nil {
		opts.StoreTime = storeTime(r)
	}
	progress := func(s string) {
		if opts.Progress != nil {
			opts.Progress(s)
		}
	}
	lease, err := r.AcquireLease(ctx, repo.LeasePrune, "", true, 0)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	defer lease.Release(context.WithoutCancel(ctx))

	progress("load index")
	st, err := load(ctx, r)
	if err != nil {
		return nil, err
	}
	progress("find what snapshots need")
	if err := st.findNeeded(ctx, r); err != nil {
		return nil, err
	}
	res := &Result{DryRun: opts.DryRun}
	res.Plan = st.plan(opts)
	segs, err := oldSegments(ctx, r, opts)
	if err != nil {
		return nil, err
	}
	res.Segments = segs
	now, err := opts.StoreTime(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune: read the store's clock: %w", err)
	}
	leases, err := r.Leases(ctx)
	if err != nil {
		return nil, err
	}
	// Phase two's candidates among what was marked before this run.
	st.judgeMarked(res, now, leases, opts.Margin)
	if opts.DryRun {
		return res.normalized(), nil
	}

	// Phase one: mark, then copy the live blobs of packs to repack (the
	// writer stores a blob again when its only copies are marked).
	if len(res.Mark)+len(res.Unmark)+len(res.Unreferenced) > 0 {
		d := repo.Deletion{Kind: repo.DeletionPruneMark, Reason: "prune: unused packs",
			Marked: append(slices.Clone(res.Mark), res.Unreferenced...), Unmarked: res.Unmark}
		if _, err := r.SaveDeletion(ctx, d); err != nil {
			return nil, fmt.Errorf("prune: record marks: %w", err)
		}
	}
	if len(res.Repack) > 0 {
		progress("repack")
		stats, err := st.repack(ctx, r, res.Repack, opts.Writer)
		res.Repacked = stats
		if err != nil {
			return nil, fmt.Errorf("prune: repack: %w", err)
		}
	}

	// Phase two: what is old enough now (this run's own marks too, with a
	// zero margin and no backup alive). The index and the snapshots are
	// read again: the repacked blobs' new copies, and snapshots that
	// backups committed meanwhile, decide what is still unneeded.
	if st, err = load(ctx, r); err != nil {
		return nil, err
	}
	if err := st.findNeeded(ctx, r); err != nil {
		return nil, err
	}
	if leases, err = r.Leases(ctx); err != nil {
		return nil, err
	}
	if now, err = opts.StoreTime(ctx); err != nil {
		return nil, fmt.Errorf("prune: read the store's clock: %w", err)
	}
	res.Delete, res.Waiting = nil, nil
	st.judgeMarked(res, now, leases, opts.Margin)
	if err := lease.Valid(); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	progress("delete")
	n, freed, err := st.deleteMarked(ctx, r, res.Delete, res.Segments)
	res.Removed, res.BytesFreed = n, freed
	return res.normalized(), err
}

// normalized makes the lists empty rather than nil (JSON prints [] then).
func (res *Result) normalized() *Result {
	for _, l := range []*[]string{&res.Mark, &res.Repack, &res.Unmark, &res.Delete, &res.Segments, &res.Unreferenced} {
		if *l == nil {
			*l = []string{}
		}
	}
	if res.Waiting == nil {
		res.Waiting = map[string]string{}
	}
	return res
}

// storeTime writes a probe object and returns its modification time: the
// store's clock, not this host's.
func storeTime(r *repo.Repository) func(ctx context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		key := fmt.Sprintf("%s/probe-%d", repo.PrefixLocks, time.Now().UnixNano())
		if err := r.Backend().Save(ctx, key, []byte("clock probe")); err != nil {
			return time.Time{}, err
		}
		defer r.Backend().Remove(context.WithoutCancel(ctx), key)
		oi, err := r.Backend().Stat(ctx, key)
		if err != nil {
			return time.Time{}, err
		}
		if oi.ModTime.IsZero() {
			return time.Now(), nil // a store without times: the local clock is all there is
		}
		return oi.ModTime, nil
	}
}

// load reads the live index (superseded objects left out) and the stored
// packs.
func load(ctx context.Context, r *repo.Repository) (*pruneState, error) {
	st := &pruneState{packs: map[chunk.ID][]index.Blob{}, packIndex: map[chunk.ID][]chunk.ID{},
		indexes: map[chunk.ID]*index.File{}, sizes: map[chunk.ID]int64{}, needed: map[chunk.ID]bool{},
		copies: map[chunk.ID][]chunk.ID{}}
	var ids []chunk.ID
	if err := r.List(ctx, repo.PrefixIndex, func(id chunk.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("prune: list index: %w", err)
	}
	superseded := map[chunk.ID]bool{}
	files := map[chunk.ID]*index.File{}
	for _, id := range ids {
		f, err := r.LoadIndexFile(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("prune: %w (run strata check)", err)
		}
		files[id] = f
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	for id, f := range files {
		if superseded[id] {
			continue
		}
		st.indexes[id] = f
		for _, p := range f.Packs {
			if _, dup := st.packs[p.ID]; !dup {
				st.packs[p.ID] = p.Blobs
				for _, b := range p.Blobs {
					st.copies[b.ID] = append(st.copies[b.ID], p.ID)
				}
			}
			st.packIndex[p.ID] = append(st.packIndex[p.ID], id)
		}
	}
	if err := r.Backend().List(ctx, repo.PrefixData+"/", func(oi backend.ObjectInfo) error {
		id, err := chunk.ParseID(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:])
		if err == nil {
			st.sizes[id] = oi.Size
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("prune: list packs: %w", err)
	}
	marks, err := r.LoadMarks(ctx)
	if err != nil {
		return nil, err
	}
	st.marks = marks
	return st, nil
}

// findNeeded collects every blob the snapshots need, and refuses when one
// is in no live index or its only pack is missing.
func (st *pruneState) findNeeded(ctx context.Context, r *repo.Repository) error {
	inIndex := map[chunk.ID]chunk.ID{}
	for p, blobs := range st.packs {
		for _, b := range blobs {
			inIndex[b.ID] = p
		}
	}
	all, err := snapshot.List(ctx, r)
	if err != nil {
		return err
	}
	var walk func(e snapshot.Entry, id chunk.ID) error
	walk = func(e snapshot.Entry, id chunk.ID) error {
		if st.needed[id] {
			return nil
		}
		if err := st.need(e, id, inIndex); err != nil {
			return err
		}
		tree, err := snapshot.LoadTree(ctx, r, id)
		if err != nil {
			return fmt.Errorf("prune: snapshot %s: %w: %w (run strata check)", e.ID.Short(), err, ErrInconsistent)
		}
		for _, n := range tree.Nodes {
			for _, c := range n.Content {
				if err := st.need(e, c, inIndex); err != nil {
					return err
				}
			}
			if n.Subtree != nil {
				if err := walk(e, *n.Subtree); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, e := range all {
		roots := []chunk.ID{}
		if e.Tree != nil {
			roots = append(roots, *e.Tree)
		}
		for _, t := range e.Tiers {
			if t.Tree != nil {
				roots = append(roots, *t.Tree)
			}
		}
		for _, id := range roots {
			if err := walk(e, id); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *pruneState) need(e snapshot.Entry, id chunk.ID, inIndex map[chunk.ID]chunk.ID) error {
	p, ok := inIndex[id]
	if !ok {
		return fmt.Errorf("prune: blob %s of snapshot %s is in no index: %w; nothing was changed (run strata check)", id.Short(), e.ID.Short(), ErrInconsistent)
	}
	if _, stored := st.sizes[p]; !stored {
		return fmt.Errorf("prune: pack %s holding blob %s of snapshot %s is missing: %w; nothing was changed (run strata check)", p.Short(), id.Short(), e.ID.Short(), ErrInconsistent)
	}
	st.needed[id] = true
	return nil
}

// plan classifies the packs: unused ones are marked, partly used ones are
// repacked (emptiest first) while the unused share exceeds MaxUnused, and
// marked packs needed again are unmarked.
func (st *pruneState) plan(opts Options) Plan {
	var p Plan
	type partial struct {
		id           chunk.ID
		unused, size int64
	}
	var partials []partial
	for id, blobs := range st.packs {
		size := st.sizes[id]
		key := repo.ObjectKey(repo.PrefixData, id)
		if _, stored := st.sizes[id]; !stored {
			continue // listed but gone: check reports it
		}
		p.Packs++
		p.BytesTotal += size
		var used int64
		for _, b := range blobs {
			if st.needed[b.ID] {
				used += int64(b.Length)
			}
		}
		marked := st.marks.Marked(key)
		switch {
		case marked && used > 0 && !st.coveredElsewhere(id):
			p.Unmark = append(p.Unmark, key)
		case marked:
			// phase two judges it
		case used == 0:
			p.PacksUnused++
			p.BytesUnused += size
			p.Mark = append(p.Mark, key)
		case used < size:
			p.PacksPartial++
			p.BytesUnused += size - used
			partials = append(partials, partial{id, size - used, size})
		}
	}
	for id, size := range st.sizes {
		if _, indexed := st.packs[id]; !indexed {
			key := repo.ObjectKey(repo.PrefixData, id)
			if !st.marks.Marked(key) {
				p.Unreferenced = append(p.Unreferenced, key)
			}
			p.BytesTotal += size
			p.BytesUnused += size
		}
	}
	// Repack the emptiest partly used packs until the unused bytes left
	// are within the tolerance. Unused packs are gone after the prune.
	left := p.BytesUnused
	for _, u := range p.Mark {
		id, _ := chunk.ParseID(u[strings.LastIndexByte(u, '/')+1:])
		left -= st.sizes[id]
	}
	for _, u := range p.Unreferenced {
		id, _ := chunk.ParseID(u[strings.LastIndexByte(u, '/')+1:])
		left -= st.sizes[id]
	}
	sort.Slice(partials, func(i, j int) bool {
		ri, rj := float64(partials[i].unused)/float64(partials[i].size), float64(partials[j].unused)/float64(partials[j].size)
		if ri != rj {
			return ri > rj
		}
		return partials[i].id.String() < partials[j].id.String()
	})
	for _, pp := range partials {
		if float64(left) <= opts.MaxUnused*float64(p.BytesTotal) {
			break
		}
		key := repo.ObjectKey(repo.PrefixData, pp.id)
		p.Repack = append(p.Repack, key)
		p.Mark = append(p.Mark, key)
		left -= pp.unused
	}
	slices.Sort(p.Mark)
	slices.Sort(p.Repack)
	slices.Sort(p.Unmark)
	slices.Sort(p.Unreferenced)
	return p
}

// coveredElsewhere reports whether every needed blob of pack id has a copy
// in a pack that is not marked.
func (st *pruneState) coveredElsewhere(id chunk.ID) bool {
	for _, b := range st.packs[id] {
		if !st.needed[b.ID] {
			continue
		}
		found := false
		for _, p := range st.copies[b.ID] {
			if _, stored := st.sizes[p]; p != id && stored && !st.marks.Marked(repo.ObjectKey(repo.PrefixData, p)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// judgeMarked sorts the marked packs into Delete (still unneeded, mark older
// than the margin by the store's clock, no backup lease older than the mark
// alive) and Waiting (with the reason).
func (st *pruneState) judgeMarked(res *Result, now time.Time, leases map[chunk.ID]repo.LeaseInfo, margin time.Duration) {
	res.Waiting = map[string]string{}
	unmark := map[string]bool{}
	for _, k := range res.Unmark {
		unmark[k] = true
	}
	for _, key := range st.marks.Keys() {
		if !strings.HasPrefix(key, repo.PrefixData+"/") || unmark[key] {
			continue
		}
		id, err := chunk.ParseID(key[strings.LastIndexByte(key, '/')+1:])
		if err != nil {
			continue
		}
		if _, stored := st.sizes[id]; !stored {
			continue // already gone
		}
		if blobs, indexed := st.packs[id]; indexed && slices.ContainsFunc(blobs, func(b index.Blob) bool { return st.needed[b.ID] }) && !st.coveredElsewhere(id) {
			res.Waiting[key] = "needed by a snapshot (it will be unmarked)"
			continue
		}
		at := st.marks.MarkedAt(key)
		if age := now.Sub(at); margin > 0 && age < margin {
			res.Waiting[key] = fmt.Sprintf("marked %s ago, the margin is %s", age.Round(time.Second), margin)
			continue
		}
		if holder := olderBackup(leases, at, now); holder != "" {
			res.Waiting[key] = "a backup that began before the mark is still running (" + holder + ")"
			continue
		}
		res.Delete = append(res.Delete, key)
		res.BytesFreed += st.sizes[id]
	}
	slices.Sort(res.Delete)
}

// olderBackup names a live backup lease that began before t. Liveness is
// judged as leases are everywhere, by this host's clock against the
// holder's expiry.
func olderBackup(leases map[chunk.ID]repo.LeaseInfo, t, _ time.Time) string {
	for _, l := range leases {
		if l.Kind == repo.LeaseBackup && l.Alive(time.Now()) && !l.Started.After(t) {
			return fmt.Sprintf("%s pid %d since %s", l.Hostname, l.PID, l.Started.Format(time.RFC3339))
		}
	}
	return ""
}

// repack stores the needed blobs of packs again, in new packs.
func (st *pruneState) repack(ctx context.Context, r *repo.Repository, keys []string, wo repo.WriterOptions) (repo.WriteStats, error) {
	return r.WithWriter(ctx, wo, func(ctx context.Context, w *repo.Writer) error {
		for _, key := range keys {
			id, err := chunk.ParseID(key[strings.LastIndexByte(key, '/')+1:])
			if err != nil {
				return err
			}
			for _, b := range st.packs[id] {
				if !st.needed[b.ID] {
					continue
				}
				data, err := r.LoadBlob(ctx, b.ID, nil)
				if err != nil {
					return fmt.Errorf("read blob %s of %s: %w", b.ID.Short(), key, err)
				}
				if _, err := w.SaveBlob(ctx, b.Type, b.ID, data); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// deleteMarked rewrites the index objects that list packs to delete, writes
// one deletion record naming everything removed, then removes the packs,
// the superseded index objects and the old log segments.
func (st *pruneState) deleteMarked(ctx context.Context, r *repo.Repository, packs, segments []string) (int, int64, error) {
	if len(packs)+len(segments) == 0 {
		return 0, 0, nil
	}
	gone := map[chunk.ID]bool{}
	var freed int64
	for _, key := range packs {
		id, _ := chunk.ParseID(key[strings.LastIndexByte(key, '/')+1:])
		gone[id] = true
		freed += st.sizes[id]
	}
	// Index objects listing a pack to delete are replaced by one that
	// lists the rest and supersedes them.
	rewrite := map[chunk.ID]bool{}
	for id := range gone {
		for _, ix := range st.packIndex[id] {
			rewrite[ix] = true
		}
	}
	removed := slices.Clone(packs)
	if len(rewrite) > 0 {
		nf := &index.File{}
		for ix := range rewrite {
			nf.Supersedes = append(nf.Supersedes, ix)
			for _, p := range st.indexes[ix].Packs {
				if !gone[p.ID] && !slices.ContainsFunc(nf.Packs, func(q index.Pack) bool { return q.ID == p.ID }) {
					nf.Packs = append(nf.Packs, p)
				}
			}
			removed = append(removed, repo.ObjectKey(repo.PrefixIndex, ix))
		}
		sort.Slice(nf.Supersedes, func(i, j int) bool { return nf.Supersedes[i].String() < nf.Supersedes[j].String() })
		if _, _, err := r.SaveJSON(ctx, repo.PrefixIndex, nf); err != nil {
			return 0, 0, fmt.Errorf("prune: write the new index: %w", err)
		}
	}
	removed = append(removed, segments...)
	if _, err := r.SaveDeletion(ctx, repo.Deletion{Kind: repo.DeletionPruneDelete, Reason: "prune", Removed: removed}); err != nil {
		return 0, 0, fmt.Errorf("prune: record deletions: %w", err)
	}
	n := 0
	for _, key := range removed {
		if err := r.Backend().Remove(ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return n, freed, fmt.Errorf("prune: remove %s: %w", key, err)
		}
		n++
	}
	return n, freed, nil
}

// oldSegments lists the newest generation's log segments that lie wholly
// before what any restore needs: the oldest cut start of a snapshot on its
// history (or opts.KeepLogFrom's answer). Nothing is removed while a
// backup runs (its cut may start earlier) or when no snapshot has a cut.
func oldSegments(ctx context.Context, r *repo.Repository, opts Options) ([]string, error) {
	h, err := oplog.OpenHistory(ctx, r, 0)
	if errors.Is(err, oplog.ErrNoLog) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	leases, err := r.Leases(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range leases {
		if l.Kind == repo.LeaseBackup && l.Alive(time.Now()) {
			return nil, nil
		}
	}
	var from uint64
	var ok bool
	if opts.KeepLogFrom != nil {
		if from, ok, err = opts.KeepLogFrom(ctx); err != nil {
			return nil, err
		}
	} else {
		// Every snapshot's cut must stay replayable, and so must every
		// second of the PITR window (policy/).
		w, inWindow, err := Window(ctx, r)
		if err != nil {
			return nil, err
		}
		if inWindow && !w.HasBase {
			return nil, nil // the window keeps the whole log
		}
		all, err := snapshot.List(ctx, r)
		if err != nil {
			return nil, err
		}
		for _, e := range all {
			if c := e.Cut; c != nil && h.Contains(c.Generation, c.LSNStart) && (!ok || c.LSNStart < from) {
				from, ok = c.LSNStart, true
			}
		}
		if inWindow && (!ok || w.LogAfter < from) {
			from, ok = w.LogAfter, true
		}
	}
	if !ok {
		return nil, nil
	}
	var out []string
	s := h.Spans[len(h.Spans)-1] // older generations' spans are left alone
	segs, err := s.Log.Segments(ctx)
	if err != nil {
		return nil, err
	}
	for _, sg := range segs {
		// A segment holding lsn `from` or later stays: a restore from a
		// cut at `from` reads the records after it.
		if sg.LastLSN < from && sg.LastLSN > s.After {
			out = append(out, sg.Key)
		}
	}
	slices.Sort(out)
	return out, nil
}

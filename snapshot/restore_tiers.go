package snapshot

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/repo"
)

// Graph restore formats.
const (
	GraphJSONL     = "jsonl"
	GraphNeo4jCSV  = "neo4j-csv"
	DefaultGraphAs = GraphJSONL
)

// ErrUnknownTier means a requested tier is not in the snapshot.
var ErrUnknownTier = errors.New("no such tier in the snapshot")

// SnapshotRestoreOptions select what of a snapshot to restore and how.
type SnapshotRestoreOptions struct {
	RestoreOptions
	// Tiers restores only these tiers (and no plain paths); empty means
	// every tier and the plain paths.
	Tiers []string
	// GraphFormat is GraphJSONL (default) or GraphNeo4jCSV.
	GraphFormat string
	// TmpDir holds spill files of the CSV export and the log replay.
	TmpDir string
	// SortMemory bounds each sorter of a log replay (default
	// DefaultSortMemory).
	SortMemory int64
	// State, when set, is the graph to restore (a point in time, as
	// StateAt gives it); RestoreSnapshot then restores the base's plain
	// paths and files tiers as captured and State's graph tiers, and
	// closes State. Without it the graph tiers are those at the
	// snapshot's cut (CutState).
	State *PointState
}

// RestoreSnapshot restores a snapshot's plain paths below the target at
// their full original path, each files tier under <target>/<tier>/, and
// each graph tier, at the snapshot's consistent cut (or opts.State), as
// <target>/<tier>.jsonl (or, as neo4j-admin import CSV, under
// <target>/<tier>/). NotReplayed in the result lists the files tiers of a
// snapshot with a cut: they have no log and are returned as captured.
func RestoreSnapshot(ctx context.Context, r *repo.Repository, e Entry, opts SnapshotRestoreOptions) (*RestoreResult, error) {
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	if opts.GraphFormat == "" {
		opts.GraphFormat = DefaultGraphAs
	}
	if opts.GraphFormat != GraphJSONL && opts.GraphFormat != GraphNeo4jCSV {
		if opts.State != nil {
			opts.State.Close()
		}
		return nil, fmt.Errorf("restore: unknown format %q (want %s or %s)", opts.GraphFormat, GraphJSONL, GraphNeo4jCSV)
	}
	ps := opts.State
	if ps == nil {
		var err error
		if ps, err = CutState(ctx, r, e, opts.Tiers, opts.SortMemory, opts.TmpDir); err != nil {
			return nil, err
		}
	}
	defer ps.Close()
	sn := e.Snapshot
	res := &RestoreResult{}
	if e.Cut != nil || opts.State != nil {
		for _, t := range ps.NotReplayed {
			res.NotReplayed = append(res.NotReplayed, t.Name)
		}
	}
	if len(opts.Tiers) == 0 && sn.Tree != nil {
		if sn.Summary != nil {
			opts.Progress.SetTotal(sn.Summary.BytesProcessed, 0)
		}
		pr, err := RestoreTree(ctx, r, *sn.Tree, "/", opts.RestoreOptions)
		if pr != nil {
			res.Files, res.Dirs, res.Symlinks, res.Bytes, res.Verified, res.Failed = pr.Files, pr.Dirs, pr.Symlinks, pr.Bytes, pr.Verified, pr.Failed
		}
		if err != nil && !errors.Is(err, ErrRestoreFailed) {
			return res, err
		}
	}
	for _, t := range ps.NotReplayed {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		o := opts.RestoreOptions
		o.Target = filepath.Join(opts.Target, t.Name)
		tr, err := RestoreTree(ctx, r, *t.Tree, "/", o)
		if tr != nil {
			res.Files += tr.Files
			res.Dirs += tr.Dirs
			res.Symlinks += tr.Symlinks
			res.Bytes += tr.Bytes
			res.Verified += tr.Verified
			res.Failed = append(res.Failed, tr.Failed...)
		}
		if err != nil && !errors.Is(err, ErrRestoreFailed) {
			return res, err
		}
	}
	names := make([]string, 0, len(ps.Tiers))
	for n := range ps.Tiers {
		names = append(names, n)
	}
	slices.Sort(names) // the report's order
	// The writers start largest tier first (by the snapshot's sizes; a tier
	// only the log made comes last), so that the longest stream never waits
	// for a short one to finish.
	size := map[string]int64{}
	for _, t := range sn.Tiers {
		size[t.Name] = t.Bytes
	}
	start := make([]int, len(names))
	for i := range start {
		start[i] = i
	}
	slices.SortStableFunc(start, func(a, b int) int { return cmp.Compare(size[names[b]], size[names[a]]) })
	// Each tier's state is its own stream (its base, layers and delta), so
	// tiers are written side by side, one more than there are cores: one
	// per core left cores idle while a stream waited for its loader or the
	// disk. The bench's three tiers on two cores, all three at once and
	// largest first: median 3.41 s against 3.69 s, faster in 5 of 6
	// alternating rounds.
	type written struct {
		n   int64
		err error
	}
	outs := make([]written, len(names))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0) + 1)
	for _, i := range start {
		name := names[i]
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				outs[i].err = err
				return nil
			}
			outs[i].n, outs[i].err = writeGraphTier(name, ps.Tiers[name], opts)
			return nil
		})
	}
	g.Wait()
	for i, name := range names {
		n, err := outs[i].n, outs[i].err
		if err != nil {
			res.Failed = append(res.Failed, FileError{Path: "tier " + name, Err: err})
			opts.Progress.Warn("tier "+name, err)
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			continue
		}
		res.Files++
		res.Bytes += n
		opts.Progress.Add(0, 1)
	}
	if len(res.Failed) > 0 {
		f := firstFailure(res.Failed)
		return res, fmt.Errorf("restore: %d items failed (first: %s: %w): %w", len(res.Failed), f.Path, f.Err, ErrRestoreFailed)
	}
	return res, nil
}

func selectTiers(sn *Snapshot, names []string) ([]Tier, error) {
	if len(names) == 0 {
		return sn.Tiers, nil
	}
	var out []Tier
	for _, name := range names {
		i := slices.IndexFunc(sn.Tiers, func(t Tier) bool { return t.Name == name })
		if i < 0 {
			var have []string
			for _, t := range sn.Tiers {
				have = append(have, t.Name)
			}
			return nil, fmt.Errorf("restore tier %q: %w (the snapshot has %v)", name, ErrUnknownTier, have)
		}
		out = append(out, sn.Tiers[i])
	}
	return out, nil
}

// writeGraphTier writes one graph tier's state to the target.
func writeGraphTier(name string, state graph.Iterator, opts SnapshotRestoreOptions) (int64, error) {
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return 0, err
	}
	if opts.GraphFormat == GraphNeo4jCSV {
		dir := filepath.Join(opts.Target, name)
		if err := mkdirNoFollow(dir); err != nil {
			return 0, err
		}
		files, err := graph.WriteNeo4jCSV(dir, state, opts.TmpDir)
		if err != nil {
			return 0, fmt.Errorf("write tier %s as neo4j CSV: %w", name, err)
		}
		var n int64
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				n += fi.Size()
			}
		}
		return n, nil
	}
	p := filepath.Join(opts.Target, name+".jsonl")
	_ = os.Remove(p) // never write through a symlink left in the target
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := writeState(f, state)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(p)
		return 0, fmt.Errorf("write tier %s: %w", name, err)
	}
	opts.Progress.Add(n, 0)
	return n, nil
}

// writeState writes a tier's state as canonical JSON Lines: as stored
// when it is a tier stored whole (storedTier), else record by record.
func writeState(w io.Writer, state graph.Iterator) (int64, error) {
	if wt, ok := state.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return graph.WriteLines(w, state)
}

// TierState streams a graph tier's state (base and layers merged) in
// canonical order. The caller closes it.
func TierState(ctx context.Context, r *repo.Repository, t Tier) (graph.Iterator, error) {
	if t.Format != FormatGraph || t.Tree == nil {
		return nil, fmt.Errorf("tier %s is not a graph tier", t.Name)
	}
	tree, err := LoadTree(ctx, r, *t.Tree)
	if err != nil {
		return nil, err
	}
	return tierState(ctx, r, t.Name, tree)
}

// StreamTier writes one tier to w: a graph tier as canonical JSON Lines (at
// the snapshot's cut, or state's point when state is not nil; StreamTier
// closes it), a files tier only when it holds exactly one file (its bytes).
func StreamTier(ctx context.Context, r *repo.Repository, e Entry, name string, state *PointState, memLimit int64, tmpDir string, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var t *Tier
	for i := range e.Tiers {
		if e.Tiers[i].Name == name {
			t = &e.Tiers[i]
		}
	}
	if t == nil || t.Format == FormatGraph {
		ps := state
		if ps == nil {
			var err error
			if ps, err = CutState(ctx, r, e, []string{name}, memLimit, tmpDir); err != nil {
				return err
			}
		}
		defer ps.Close()
		it, ok := ps.Tiers[name]
		if !ok {
			_, err := selectTiers(e.Snapshot, []string{name})
			if err == nil {
				err = fmt.Errorf("restore tier %q: %w", name, ErrUnknownTier)
			}
			return err
		}
		if _, err := writeState(bw, it); err != nil {
			return err
		}
		return bw.Flush()
	}
	if state != nil {
		state.Close()
	}
	tree, err := LoadTree(ctx, r, *t.Tree)
	if err != nil {
		return err
	}
	if len(tree.Nodes) != 1 || tree.Nodes[0].Type != NodeFile {
		return fmt.Errorf("tier %s holds %d entries: only a single-file tier can be streamed to stdout; restore it to a directory", t.Name, len(tree.Nodes))
	}
	if err := WriteContent(ctx, r, tree.Nodes[0], bw, 4); err != nil {
		return err
	}
	return bw.Flush()
}

// CheckTiers runs the graph integrity check over the state of every graph
// tier of e at its consistent cut (base and layers merged, the log
// replayed), streaming with memory bounded by memLimit. Verify and restore
// call it on the state they restore.
func CheckTiers(ctx context.Context, r *repo.Repository, e Entry, memLimit int64, tmpDir string) (*graph.Report, error) {
	if memLimit <= 0 {
		memLimit = DefaultSortMemory
	}
	ps, err := CutState(ctx, r, e, nil, memLimit, tmpDir)
	if err != nil {
		return nil, err
	}
	defer ps.Close()
	return CheckState(ctx, ps.Tiers, memLimit, tmpDir)
}

// CheckState runs the graph integrity check over tier states (consuming
// them). It is graph.Capture's check, which a backup runs while it stores:
// each tier is read and sorted by a goroutine of its own, the node table
// finds dangling endpoints without sorting them, and the records Capture
// hands on are dropped. Its report is the Checker's, word for word; the
// Checker, which reads the tiers one after the other and sorts every
// endpoint, took 14 s of the 18 s a verify of the 1 GiB bench graph took.
func CheckState(ctx context.Context, tiers map[string]graph.Iterator, memLimit int64, tmpDir string) (*graph.Report, error) {
	names := make([]string, 0, len(tiers))
	for n := range tiers {
		names = append(names, n)
	}
	slices.Sort(names)
	c := graph.NewCapture(names, memLimit, tmpDir)
	defer c.Close()
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range names {
		state, t := tiers[name], c.Tier(i)
		g.Go(func() error {
			for line := 1; ; line++ {
				if line%4096 == 0 && gctx.Err() != nil {
					return gctx.Err() // cancelled, or another tier failed
				}
				rec, err := state.Next()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("check tier %s: %w", name, err)
				}
				if err := t.Add(rec, line); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var drain errgroup.Group
	for i := range names {
		it := c.Iterator(i)
		drain.Go(func() error {
			for {
				if _, err := it.Next(); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
			}
		})
	}
	rep, err := c.Run(ctx)
	if derr := drain.Wait(); err == nil {
		err = derr
	}
	return rep, err
}

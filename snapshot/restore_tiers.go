package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

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
	// TmpDir holds spill files of the CSV export.
	TmpDir string
}

// RestoreSnapshot restores a snapshot's plain paths below the target at
// their full original path, each files tier under <target>/<tier>/, and
// each graph tier as <target>/<tier>.jsonl (or, as neo4j-admin import CSV,
// under <target>/<tier>/).
func RestoreSnapshot(ctx context.Context, r *repo.Repository, sn *Snapshot, opts SnapshotRestoreOptions) (*RestoreResult, error) {
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	if opts.GraphFormat == "" {
		opts.GraphFormat = DefaultGraphAs
	}
	if opts.GraphFormat != GraphJSONL && opts.GraphFormat != GraphNeo4jCSV {
		return nil, fmt.Errorf("restore: unknown format %q (want %s or %s)", opts.GraphFormat, GraphJSONL, GraphNeo4jCSV)
	}
	tiers, err := selectTiers(sn, opts.Tiers)
	if err != nil {
		return nil, err
	}
	res := &RestoreResult{}
	if len(opts.Tiers) == 0 && sn.Tree != nil {
		if sn.Summary != nil {
			opts.Progress.SetTotal(sn.Summary.BytesProcessed, 0)
		}
		pr, err := RestoreTree(ctx, r, *sn.Tree, "/", opts.RestoreOptions)
		if pr != nil {
			res = pr
		}
		if err != nil && !errors.Is(err, ErrRestoreFailed) {
			return res, err
		}
	}
	for _, t := range tiers {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		switch t.Format {
		case FormatFiles:
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
		case FormatGraph:
			n, err := restoreGraphTier(ctx, r, t, opts)
			if err != nil {
				res.Failed = append(res.Failed, FileError{Path: "tier " + t.Name, Err: err})
				opts.Progress.Warn("tier "+t.Name, err)
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				continue
			}
			res.Files++
			res.Bytes += n
			opts.Progress.Add(0, 1)
		}
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

// restoreGraphTier writes one graph tier's state to the target.
func restoreGraphTier(ctx context.Context, r *repo.Repository, t Tier, opts SnapshotRestoreOptions) (int64, error) {
	state, err := TierState(ctx, r, t)
	if err != nil {
		return 0, err
	}
	defer state.Close()
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return 0, err
	}
	if opts.GraphFormat == GraphNeo4jCSV {
		dir := filepath.Join(opts.Target, t.Name)
		if err := mkdirNoFollow(dir); err != nil {
			return 0, err
		}
		files, err := graph.WriteNeo4jCSV(dir, state, opts.TmpDir)
		if err != nil {
			return 0, fmt.Errorf("write tier %s as neo4j CSV: %w", t.Name, err)
		}
		var n int64
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				n += fi.Size()
			}
		}
		return n, nil
	}
	p := filepath.Join(opts.Target, t.Name+".jsonl")
	_ = os.Remove(p) // never write through a symlink left in the target
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := graph.WriteLines(f, state)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(p)
		return 0, fmt.Errorf("write tier %s: %w", t.Name, err)
	}
	opts.Progress.Add(n, 0)
	return n, nil
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

// StreamTier writes one tier to w: a graph tier as canonical JSON Lines, a
// files tier only when it holds exactly one file (its bytes).
func StreamTier(ctx context.Context, r *repo.Repository, sn *Snapshot, name string, w io.Writer) error {
	tiers, err := selectTiers(sn, []string{name})
	if err != nil {
		return err
	}
	t := tiers[0]
	bw := bufio.NewWriterSize(w, 1<<20)
	if t.Format == FormatGraph {
		state, err := TierState(ctx, r, t)
		if err != nil {
			return err
		}
		defer state.Close()
		if _, err := graph.WriteLines(bw, state); err != nil {
			return err
		}
		return bw.Flush()
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

// CheckTiers runs the graph integrity check over the stored state of every
// graph tier of sn (base and layers merged), streaming with memory bounded
// by memLimit. Verify and restore call it on the state they restore.
func CheckTiers(ctx context.Context, r *repo.Repository, sn *Snapshot, memLimit int64, tmpDir string) (*graph.Report, error) {
	if memLimit <= 0 {
		memLimit = DefaultSortMemory
	}
	checker := graph.NewChecker(memLimit, tmpDir)
	defer checker.Close()
	for _, t := range sn.Tiers {
		if t.Format != FormatGraph {
			continue
		}
		state, err := TierState(ctx, r, t)
		if err != nil {
			return nil, err
		}
		line := 0
		for {
			rec, err := state.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				state.Close()
				return nil, fmt.Errorf("check tier %s: %w", t.Name, err)
			}
			line++
			if err := checker.Add(t.Name, line, rec); err != nil {
				state.Close()
				return nil, err
			}
		}
		state.Close()
	}
	return checker.Finish()
}

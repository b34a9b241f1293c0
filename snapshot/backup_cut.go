package snapshot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/repo"
)

// endCut sets the cut's end from the --post-hook (BackupOptions.CutEnd),
// once every source has been read.
func endCut(ctx context.Context, sn *Snapshot, opts BackupOptions) error {
	if opts.CutEnd == nil || sn.Cut == nil {
		return nil
	}
	end, err := opts.CutEnd(ctx)
	if err != nil {
		return fmt.Errorf("backup: end the cut: %w", err)
	}
	if end < sn.Cut.LSNStart {
		return fmt.Errorf("backup: the cut ends at lsn %d, before its start %d", end, sn.Cut.LSNStart)
	}
	sn.Cut.LSNEnd = end
	return nil
}

// judgeCut checks the graph at sn's cut when the log covers it: the tier
// counts become those of the state at the cut and Cut.Checked is set; a
// broken graph is an IntegrityError unless AllowDangling. While the log
// does not cover the cut it only warns (nil report, nil error). captured is
// the check of the tiers as read: when no log record falls inside the cut
// (lsn start = end, an export of a quiet database), they are the state at
// the cut, and reading them back from the repository to check them again
// would only double the backup's time.
func judgeCut(ctx context.Context, r *repo.Repository, sn *Snapshot, opts BackupOptions, captured *graph.Report) (*graph.Report, error) {
	var report *graph.Report
	var err error
	if sn.Cut.LSNStart == sn.Cut.LSNEnd && captured != nil {
		report = captured
	} else {
		report, err = checkAtCut(ctx, r, sn, opts)
	}
	switch {
	case errors.Is(err, ErrNotRecoverable):
		opts.Progress.Warn("cut", fmt.Errorf("integrity not checked at the cut yet: %w", err))
		return nil, nil
	case err != nil:
		return nil, err
	}
	sn.Cut.Checked = true
	applyStats(sn.Tiers, report)
	if !report.OK && !opts.AllowDangling {
		return report, fmt.Errorf("backup: the graph at the cut (lsn %d): %w", sn.Cut.LSNEnd, &IntegrityError{Report: report})
	}
	return report, nil
}

// applyStats copies a check report's counts into the graph tiers.
func applyStats(tiers []Tier, report *graph.Report) {
	if report == nil {
		return
	}
	for i := range tiers {
		t := &tiers[i]
		if st := report.Stats.Tiers[t.Name]; st != nil && t.Format == FormatGraph {
			t.Nodes, t.Relationships = st.Nodes, st.Relationships
			t.Stats = &GraphStats{Labels: st.Labels, Types: st.Types}
		}
	}
}

// checkAtCut checks the graph at sn's cut (the captured tiers with the log
// replayed), waiting up to opts.WaitForLog for the log to cover it.
func checkAtCut(ctx context.Context, r *repo.Repository, sn *Snapshot, opts BackupOptions) (*graph.Report, error) {
	deadline := time.Now().Add(opts.WaitForLog)
	for {
		ps, err := CutState(ctx, r, Entry{Snapshot: sn}, nil, opts.SortMemory, opts.TmpDir)
		if err == nil {
			defer ps.Close()
			return CheckState(ctx, ps.Tiers, opts.SortMemory, opts.TmpDir)
		}
		if !errors.Is(err, ErrNotRecoverable) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(time.Second, time.Until(deadline)+time.Millisecond)):
		}
	}
}

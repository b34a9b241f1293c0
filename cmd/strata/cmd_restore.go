package main

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

type restoreOptions struct {
	target   string
	includes []string
	excludes []string
	verify   bool
	host     []string
	tags     []string
	tiers    []string
	format   string
	at       string
	lsn      int64
	gen      uint64
}

func newRestoreCommand() *command {
	var o restoreOptions
	return &command{
		name: "restore", args: "[flags] [SNAPSHOT] --target DIR", short: "restore a snapshot, or the graph at any point of the log",
		long: `Restores a snapshot below --target, each file at its full original path (as
restic does). Blobs are fetched in parallel and every one is authenticated
and checked against its id; --verify also reads each restored file back. A
damaged pack fails only the files that need it: the error names the pack,
the other files are restored, and strata exits with code 1.

A snapshot taken with a consistent cut (--lsn-start/--lsn-end or hooks)
is restored at its cut: the log is replayed over (start, end] so every tier
lands on the same point. --at TIME or --lsn N restores the graph at that
point: the newest snapshot whose cut is at or before it, plus the log up to
the last whole transaction at or before it (SNAPSHOT may be left out).
Files tiers have no log: they come back as captured, with a warning.`,
		examples: []string{
			"strata restore latest --target /tmp/r",
			"strata restore latest --target /tmp/r --include '*.csv'",
			"strata restore 1a2b3c4d --target /srv/restore --verify",
			"strata restore latest --target /tmp/csv --format neo4j-csv",
			"strata restore latest --tier warm --target - | my-loader",
			"strata restore --at 2026-11-27T14:30:00Z --target /tmp/r",
			"strata restore --lsn 1200 --generation 2 --target /tmp/r",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.StringVarP(&o.target, "target", "t", "", "directory to restore into (required)")
			fs.StringArrayVarP(&o.includes, "include", "i", nil, "restore only paths matching a pattern (repeatable)")
			fs.StringArrayVarP(&o.excludes, "exclude", "e", nil, "do not restore paths matching a pattern (repeatable)")
			fs.BoolVar(&o.verify, "verify", false, "read every restored file back and check it")
			fs.StringArrayVar(&o.host, "host", nil, "with latest: newest snapshot of this host")
			fs.StringArrayVar(&o.tags, "tag", nil, "with latest: newest snapshot with these tags")
			fs.StringArrayVar(&o.tiers, "tier", nil, "restore only this tier (repeatable; leaves out plain paths)")
			fs.StringVar(&o.at, "at", "", "restore the graph as it was at this time (RFC 3339)")
			fs.Int64Var(&o.lsn, "lsn", -1, "restore the graph as it was at this log position")
			fs.Uint64Var(&o.gen, "generation", 0, "with --at/--lsn: follow this generation of the log (default: the newest)")
			fs.StringVar(&o.format, "format", snapshot.GraphJSONL, "graph tiers as jsonl (<tier>.jsonl) or neo4j-csv (<tier>/nodes_*.csv, relationships_*.csv)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			pitr := o.at != "" || o.lsn >= 0
			switch {
			case o.at != "" && o.lsn >= 0:
				return usagef("restore: give --at or --lsn, not both")
			case o.gen > 0 && !pitr:
				return usagef("restore: --generation goes with --at or --lsn")
			case pitr && len(args) > 1:
				return usagef("restore: --at/--lsn take at most one SNAPSHOT (got %d)", len(args))
			case !pitr:
				if err := exactArgs("restore", args, 1, "one SNAPSHOT (an id, a prefix or latest), or --at/--lsn"); err != nil {
					return err
				}
			}
			if pitr && len(args) == 1 && args[0] != "latest" {
				return usagef("restore: with --at/--lsn strata picks the base snapshot itself; leave out %q", args[0])
			}
			if len(args) == 0 {
				args = []string{""}
			}
			if o.target == "" {
				return usagef("restore: --target DIR is required")
			}
			if err := errors.Join(snapshot.Patterns(o.includes).Validate(), snapshot.Patterns(o.excludes).Validate()); err != nil {
				return usagef("restore: %v", err)
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error { return runRestore(ctx, r, t, o, args[0]) })
		},
	}
}

func runRestore(ctx context.Context, r *repo.Repository, t *terminal, o restoreOptions, arg string) error {
	start := time.Now()
	var e snapshot.Entry
	var state *snapshot.PointState
	if o.at != "" || o.lsn >= 0 {
		target := snapshot.Target{Generation: o.gen}
		if o.lsn >= 0 {
			target.LSN, target.HasLSN = uint64(o.lsn), true
		} else {
			at, err := parseTime("--at", o.at)
			if err != nil {
				return err
			}
			target.At = &at
		}
		tl, err := snapshot.LoadTimeline(ctx, r, o.gen)
		if err != nil {
			return err
		}
		tiers := o.tiers
		if o.target == "-" && len(tiers) == 0 {
			tiers = nil
		}
		state, err = snapshot.StateAt(ctx, r, tl, snapshot.PointOptions{Target: target, Tiers: tiers})
		if err != nil {
			return err
		}
		e = state.Base.Entry
	} else {
		var err error
		if e, err = snapshot.Find(ctx, r, arg, snapshot.Filter{Hosts: o.host, Tags: o.tags}); err != nil {
			return err
		}
		if !slices.ContainsFunc(e.Tiers, func(t snapshot.Tier) bool { return t.Format == snapshot.FormatGraph }) {
			tightGC()
		}
	}
	if o.target == "-" {
		return streamTier(ctx, r, t, e, state, o)
	}
	p := t.newProgress("restore", false)
	p.warnPrefix = "not restored: "
	res, err := snapshot.RestoreSnapshot(ctx, r, e, snapshot.SnapshotRestoreOptions{
		RestoreOptions: snapshot.RestoreOptions{Target: o.target, Include: o.includes, Exclude: o.excludes, Verify: o.verify, Progress: p},
		Tiers:          o.tiers, GraphFormat: o.format, State: state,
	})
	p.Done()
	if res == nil {
		return err
	}
	for _, name := range res.NotReplayed {
		for _, tr := range e.Tiers {
			if tr.Name == name {
				t.warnf("tier %s is a files tier with no log: restored as captured at %s (snapshot %s)", name, tr.CapturedAt.UTC().Format(time.RFC3339), e.ID.Short())
			}
		}
	}
	secs := time.Since(start).Seconds()
	if t.json {
		out := map[string]any{"message_type": "summary", "snapshot_id": e.ID.String(),
			"files_restored": res.Files, "dirs_restored": res.Dirs, "symlinks_restored": res.Symlinks,
			"bytes_restored": res.Bytes, "files_verified": res.Verified, "files_failed": len(res.Failed),
			"duration_seconds": secs, "bytes_per_second": float64(res.Bytes) / max(secs, 1e-9),
			"not_replayed": nonNil(res.NotReplayed)}
		if state != nil && state.Replay != nil {
			rp := state.Replay
			out["lsn"], out["ts"], out["generation"] = rp.LastLSN, rp.LastTS, state.Generation
			out["records_replayed"], out["transactions_replayed"] = rp.Applied, rp.Transactions
			if state.Base.Cut != nil {
				out["cut"] = state.Base.Cut
			}
			if rp.LastLSN == 0 && state.Base.Cut != nil {
				out["lsn"] = state.Base.Cut.LSNEnd
			}
		}
		if jerr := t.printJSON(out); jerr != nil {
			return jerr
		}
	} else {
		if state != nil && state.Replay != nil {
			rp := state.Replay
			lsn := rp.LastLSN
			if lsn == 0 && state.Base.Cut != nil {
				lsn = state.Base.Cut.LSNEnd
			}
			t.printf("restored the graph at lsn %d", lsn)
			if rp.LastTS != "" {
				t.printf(" (%s)", rp.LastTS)
			}
			t.printf(": snapshot %s plus %d log records in %d transactions\n", e.ID.Short(), rp.Applied, rp.Transactions)
			if rp.Open != nil {
				t.warnf("the open transaction %s from lsn %d (%d records) was left out", rp.Open.Tx, rp.Open.FirstLSN, rp.Open.Records)
			}
		}
		t.printf("restored snapshot %s to %s: %d files, %d dirs, %s in %s", e.ID.Short(), o.target, res.Files, res.Dirs, fmtBytes(res.Bytes), fmtDuration(secs))
		if o.verify {
			t.printf(", %d files verified", res.Verified)
		}
		t.printf("\n")
	}
	return err // each failed file was reported as it failed
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// streamTier writes one tier to stdout (--target -).
func streamTier(ctx context.Context, r *repo.Repository, t *terminal, e snapshot.Entry, state *snapshot.PointState, o restoreOptions) error {
	name := ""
	switch {
	case len(o.tiers) == 1:
		name = o.tiers[0]
	case len(o.tiers) == 0 && len(e.Tiers) == 1 && e.Tree == nil:
		name = e.Tiers[0].Name
	default:
		if state != nil {
			state.Close()
		}
		return usagef("restore --target -: name exactly one tier with --tier (stdout holds one stream)")
	}
	if o.format != snapshot.GraphJSONL {
		return usagef("restore --target -: only --format jsonl can be streamed")
	}
	if t.json {
		return usagef("restore --target -: stdout carries the tier, so --json cannot be used")
	}
	return snapshot.StreamTier(ctx, r, e, name, state, 0, "", t.stdout)
}

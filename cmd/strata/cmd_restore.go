package main

import (
	"context"
	"errors"
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
}

func newRestoreCommand() *command {
	var o restoreOptions
	return &command{
		name: "restore", args: "[flags] SNAPSHOT --target DIR", short: "restore a snapshot",
		long: `Restores a snapshot below --target, each file at its full original path (as
restic does). Blobs are fetched in parallel and every one is authenticated
and checked against its id; --verify also reads each restored file back. A
damaged pack fails only the files that need it: the error names the pack,
the other files are restored, and strata exits with code 1.`,
		examples: []string{
			"strata restore latest --target /tmp/r",
			"strata restore latest --target /tmp/r --include '*.csv'",
			"strata restore 1a2b3c4d --target /srv/restore --verify",
			"strata restore latest --target /tmp/csv --format neo4j-csv",
			"strata restore latest --tier warm --target - | my-loader",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.StringVarP(&o.target, "target", "t", "", "directory to restore into (required)")
			fs.StringArrayVarP(&o.includes, "include", "i", nil, "restore only paths matching a pattern (repeatable)")
			fs.StringArrayVarP(&o.excludes, "exclude", "e", nil, "do not restore paths matching a pattern (repeatable)")
			fs.BoolVar(&o.verify, "verify", false, "read every restored file back and check it")
			fs.StringArrayVar(&o.host, "host", nil, "with latest: newest snapshot of this host")
			fs.StringArrayVar(&o.tags, "tag", nil, "with latest: newest snapshot with these tags")
			fs.StringArrayVar(&o.tiers, "tier", nil, "restore only this tier (repeatable; leaves out plain paths)")
			fs.StringVar(&o.format, "format", snapshot.GraphJSONL, "graph tiers as jsonl (<tier>.jsonl) or neo4j-csv (<tier>/nodes_*.csv, relationships_*.csv)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("restore", args, 1, "one SNAPSHOT (an id, a prefix or latest)"); err != nil {
				return err
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
	e, err := snapshot.Find(ctx, r, arg, snapshot.Filter{Hosts: o.host, Tags: o.tags})
	if err != nil {
		return err
	}
	if o.target == "-" {
		return streamTier(ctx, r, t, e, o)
	}
	start := time.Now()
	p := t.newProgress("restore", false)
	p.warnPrefix = "not restored: "
	res, err := snapshot.RestoreSnapshot(ctx, r, e.Snapshot, snapshot.SnapshotRestoreOptions{
		RestoreOptions: snapshot.RestoreOptions{Target: o.target, Include: o.includes, Exclude: o.excludes, Verify: o.verify, Progress: p},
		Tiers:          o.tiers, GraphFormat: o.format,
	})
	p.Done()
	if res == nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if t.json {
		if jerr := t.printJSON(map[string]any{"message_type": "summary", "snapshot_id": e.ID.String(),
			"files_restored": res.Files, "dirs_restored": res.Dirs, "symlinks_restored": res.Symlinks,
			"bytes_restored": res.Bytes, "files_verified": res.Verified, "files_failed": len(res.Failed),
			"duration_seconds": secs, "bytes_per_second": float64(res.Bytes) / max(secs, 1e-9)}); jerr != nil {
			return jerr
		}
	} else {
		t.printf("restored snapshot %s to %s: %d files, %d dirs, %s in %s", e.ID.Short(), o.target, res.Files, res.Dirs, fmtBytes(res.Bytes), fmtDuration(secs))
		if o.verify {
			t.printf(", %d files verified", res.Verified)
		}
		t.printf("\n")
	}
	return err // each failed file was reported as it failed
}

// streamTier writes one tier to stdout (--target -).
func streamTier(ctx context.Context, r *repo.Repository, t *terminal, e snapshot.Entry, o restoreOptions) error {
	name := ""
	switch {
	case len(o.tiers) == 1:
		name = o.tiers[0]
	case len(o.tiers) == 0 && len(e.Tiers) == 1 && e.Tree == nil:
		name = e.Tiers[0].Name
	default:
		return usagef("restore --target -: name exactly one tier with --tier (stdout holds one stream)")
	}
	if o.format != snapshot.GraphJSONL {
		return usagef("restore --target -: only --format jsonl can be streamed")
	}
	if t.json {
		return usagef("restore --target -: stdout carries the tier, so --json cannot be used")
	}
	return snapshot.StreamTier(ctx, r, e.Snapshot, name, t.stdout)
}

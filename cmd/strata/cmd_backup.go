package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

type backupOptions struct {
	stdin         bool
	stdinFilename string
	tags          []string
	host          string
	time          string
	excludes      []string
	parent        string
}

func newBackupCommand() *command {
	var o backupOptions
	return &command{
		name: "backup", args: "[flags] [PATH...]", short: "create a new snapshot of files, directories or stdin",
		long: `Backs up the given paths (files, directories, symlinks, with modes and
times) or standard input into a new snapshot. Unchanged files are not read
again: they are matched against the newest snapshot of the same host and
paths (or --parent). A file that cannot be read does not stop the backup:
the snapshot is saved, marked incomplete with the files listed, and strata
exits with code 3.`,
		examples: []string{
			"strata backup /var/lib/graph/export --tag nightly",
			"pg_dump mydb | strata backup --stdin --stdin-filename mydb.sql",
			"strata backup /data --exclude '*.tmp' --exclude /data/cache --json",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.BoolVar(&o.stdin, "stdin", false, "back up standard input as one file")
			fs.StringVar(&o.stdinFilename, "stdin-filename", "stdin", "file name for --stdin")
			fs.StringArrayVar(&o.tags, "tag", nil, "add a tag (repeatable; \"a,b\" adds two)")
			fs.StringVar(&o.host, "host", "", "hostname to record (default: this host)")
			fs.StringVar(&o.time, "time", "", "snapshot time, RFC 3339 or \"2006-01-02 15:04:05\" local (default: now)")
			fs.StringArrayVarP(&o.excludes, "exclude", "e", nil, "exclude paths matching a pattern (repeatable)")
			fs.StringVar(&o.parent, "parent", "", "snapshot to compare files with (default: newest of the same host and paths)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			return runBackup(ctx, g, t, o, args)
		},
	}
}

// parseTime accepts RFC 3339 and restic's "2006-01-02 15:04:05" (local time).
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if tm, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return tm, nil
		}
	}
	return time.Time{}, usagef("%s %q: want RFC 3339 (2026-11-27T14:30:00Z) or \"2026-11-27 14:30:00\"", flag, s)
}

func splitTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		for _, s := range splitComma(t) {
			out = append(out, s)
		}
	}
	return out
}

func runBackup(ctx context.Context, g *globals, t *terminal, o backupOptions, args []string) error {
	if o.stdin && len(args) > 0 {
		return usagef("backup: --stdin takes no paths (got %d)", len(args))
	}
	if !o.stdin && len(args) == 0 {
		return usagef("backup: give at least one path, or --stdin")
	}
	when, err := parseTime("--time", o.time)
	if err != nil {
		return err
	}
	if err := snapshot.Patterns(o.excludes).Validate(); err != nil {
		return usagef("backup: --exclude %v", err)
	}
	opts := snapshot.BackupOptions{
		Paths: args, Tags: splitTags(o.tags), Host: o.host, Time: when,
		Excludes: snapshot.Patterns(o.excludes), Parent: o.parent,
	}
	if o.stdin {
		opts.Stdin, opts.StdinFilename = t.stdin, o.stdinFilename
	}
	return g.withRepo(ctx, t, func(r *repo.Repository) error {
		p := t.newProgress("backup", true)
		p.warnPrefix = "not backed up: "
		opts.Progress = p
		res, err := snapshot.Backup(ctx, r, opts)
		p.Done()
		if err != nil && !errors.Is(err, snapshot.ErrIncomplete) {
			return err
		}
		s := res.Summary
		if t.json {
			if jerr := t.printJSON(map[string]any{
				"message_type": "summary", "snapshot_id": res.ID.String(), "short_id": res.ID.Short(),
				"bytes_processed": s.BytesProcessed, "bytes_added": s.BytesAdded, "bytes_stored": s.BytesStored,
				"files_new": s.FilesNew, "files_changed": s.FilesChanged, "files_unmodified": s.FilesUnmodified,
				"dirs_new": s.DirsNew, "dirs_changed": s.DirsChanged, "dirs_unmodified": s.DirsUnmodified,
				"blobs_new": s.BlobsNew, "duration_seconds": s.DurationSeconds,
				"incomplete": len(res.Snapshot.Incomplete) > 0,
			}); jerr != nil {
				return jerr
			}
		} else {
			t.printf("Files:       %d new, %d changed, %d unmodified\n", s.FilesNew, s.FilesChanged, s.FilesUnmodified)
			t.printf("Dirs:        %d new, %d changed, %d unmodified\n", s.DirsNew, s.DirsChanged, s.DirsUnmodified)
			t.printf("Added:       %s new data, %s stored\n", fmtBytes(s.BytesAdded), fmtBytes(s.BytesStored))
			t.printf("processed %s in %s\n", fmtBytes(s.BytesProcessed), fmtDuration(s.DurationSeconds))
			t.printf("snapshot %s saved\n", res.ID.Short())
		}
		if err != nil {
			// Each file was reported as it failed; the error names the count.
			return fmt.Errorf("snapshot %s: %w", res.ID.Short(), err)
		}
		return nil
	})
}

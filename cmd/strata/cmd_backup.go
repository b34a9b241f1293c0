package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

type backupOptions struct {
	stdin         bool
	stdinFilename string
	tags          []string
	host          string
	time          string
	excludes      []string
	parent        string
	tiers         []string
	tierFormats   []string
	sortMemory    string
	allowDangling bool
	lsnStart      int64
	lsnEnd        int64
	preHook       string
	postHook      string
	waitForLog    time.Duration
	verify        bool
	verifyFlags   verifyFlags
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
			"strata backup --tier fast=/exports/fast.jsonl --tier warm=/exports/warm.jsonl \\\n" +
				"                --tier cold=cmd:'zcat /archive/cold.jsonl.gz' --tier-format cold=graph",
			"strata backup --tier warm=/exports/warm.jsonl --pre-hook 'graphctl lsn' --post-hook 'graphctl lsn'",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.BoolVar(&o.stdin, "stdin", false, "back up standard input as one file")
			fs.StringVar(&o.stdinFilename, "stdin-filename", "stdin", "file name for --stdin")
			fs.StringArrayVar(&o.tags, "tag", nil, "add a tag (repeatable; \"a,b\" adds two)")
			fs.StringVar(&o.host, "host", "", "hostname to record (default: this host)")
			fs.StringVar(&o.time, "time", "", "snapshot time, RFC 3339 or \"2006-01-02 15:04:05\" local (default: now)")
			fs.StringArrayVarP(&o.excludes, "exclude", "e", nil, "exclude paths matching a pattern (repeatable)")
			fs.StringVar(&o.parent, "parent", "", "snapshot to compare files with (default: newest of the same host and paths)")
			fs.StringArrayVar(&o.tiers, "tier", nil, "capture a tier: NAME=SOURCE, SOURCE a file, a directory, - (stdin) or cmd:COMMAND (repeatable)")
			fs.StringArrayVar(&o.tierFormats, "tier-format", nil, "NAME=graph|files: a tier's format (default: graph for one .jsonl/.ndjson file, else files)")
			fs.StringVar(&o.sortMemory, "sort-memory", "128MiB", "memory for sorting and checking graph tiers (spills to disk beyond it)")
			fs.BoolVar(&o.allowDangling, "allow-dangling", false, "keep the snapshot even if the graph fails its integrity check")
			fs.Int64Var(&o.lsnStart, "lsn-start", -1, "log position before the export began (a consistent cut)")
			fs.Int64Var(&o.lsnEnd, "lsn-end", -1, "log position after the export ended (a consistent cut)")
			fs.StringVar(&o.preHook, "pre-hook", "", "command run (sh -c) before reading any source; its last stdout line is --lsn-start")
			fs.StringVar(&o.postHook, "post-hook", "", "command run (sh -c) after every source was read; its last stdout line is --lsn-end")
			fs.DurationVar(&o.waitForLog, "wait-for-log", 0, "wait up to this long for the log to cover the cut, so integrity is checked at the cut")
			fs.BoolVar(&o.verify, "verify", false, "verify the new snapshot (as strata verify: integrity, test restore, graph check, RTO); exit 4 if it fails")
			o.verifyFlags.alertSetup(fs)
			fs.StringVar(&o.verifyFlags.metricsFile, "metrics-file", "", "write Prometheus textfile metrics here (node_exporter's textfile collector)")
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
	if !o.stdin && len(args) == 0 && len(o.tiers) == 0 {
		return usagef("backup: give at least one path, --stdin or --tier")
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
		AllowDangling: o.allowDangling, Stdin: t.stdin,
	}
	if o.stdin {
		opts.StdinFilename = o.stdinFilename
	}
	if err := tierOptions(&opts, o); err != nil {
		return err
	}
	if len(o.tiers) == 0 {
		tightGC()
	}
	return g.withRepo(ctx, t, func(r *repo.Repository) error {
		if err := cutOptions(ctx, r, &opts, o); err != nil {
			return err
		}
		p := t.newProgress("backup", true)
		p.warnPrefix = "not backed up: "
		opts.Progress = p
		res, err := snapshot.Backup(ctx, r, opts)
		p.Done()
		if o.verifyFlags.metricsFile != "" && !o.verify {
			if merr := writeBackupMetrics(ctx, r, o.verifyFlags.metricsFile, res, err, nil); merr != nil {
				t.warnf("%v", merr)
			}
		}
		var ie *snapshot.IntegrityError
		if errors.As(err, &ie) {
			printProblems(t, ie.Report)
			if jerr := printIntegrityJSON(t, ie.Report); jerr != nil {
				return jerr
			}
			return fmt.Errorf("%w: %w (no snapshot was written; --allow-dangling keeps it anyway)", err, errDamage)
		}
		if err != nil && !errors.Is(err, snapshot.ErrIncomplete) {
			return err
		}
		s := res.Summary
		if res.Integrity != nil && !res.Integrity.OK {
			if jerr := printIntegrityJSON(t, res.Integrity); jerr != nil {
				return jerr
			}
		}
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
			for _, tr := range res.Snapshot.Tiers {
				t.printf("Tier %-8s %-5s %s", tr.Name, tr.Format, fmtBytes(tr.Bytes))
				if tr.Format == snapshot.FormatGraph {
					t.printf(", %d nodes, %d relationships, %d layers", tr.Nodes, tr.Relationships, len(tr.Layers))
				}
				t.printf("\n")
			}
			if res.Integrity != nil && !res.Integrity.OK {
				printProblems(t, res.Integrity)
			}
			t.printf("Files:       %d new, %d changed, %d unmodified\n", s.FilesNew, s.FilesChanged, s.FilesUnmodified)
			t.printf("Dirs:        %d new, %d changed, %d unmodified\n", s.DirsNew, s.DirsChanged, s.DirsUnmodified)
			t.printf("Added:       %s new data, %s stored\n", fmtBytes(s.BytesAdded), fmtBytes(s.BytesStored))
			t.printf("processed %s in %s\n", fmtBytes(s.BytesProcessed), fmtDuration(s.DurationSeconds))
			t.printf("snapshot %s saved\n", res.ID.Short())
		}
		if err != nil {
			// Each file was reported as it failed; the error names the count.
			err = fmt.Errorf("snapshot %s: %w", res.ID.Short(), err)
		}
		if o.verify {
			verr := backupVerify(ctx, r, t, res, err, o)
			if verr != nil || err == nil {
				return verr // a failed verify (4) wins over an incomplete backup (3)
			}
		}
		return err
	})
}

// backupVerify verifies the new snapshot (backup --verify) and writes the
// metrics of both.
func backupVerify(ctx context.Context, r *repo.Repository, t *terminal, res *snapshot.BackupResult, backupErr error, o backupOptions) error {
	mem, _ := parseSize(o.sortMemory) // validated by tierOptions
	vopts := verify.Options{SortMemory: mem}
	vf := o.verifyFlags
	metrics := vf.metricsFile
	vf.metricsFile = "" // written below, with the backup's
	e := snapshot.Entry{ID: res.ID, Snapshot: res.Snapshot}
	if !t.json {
		t.printf("verifying snapshot %s\n", res.ID.Short())
	}
	err := runVerify(ctx, r, t, e, vopts, vf)
	if metrics != "" {
		reps, _ := verify.Latest(ctx, r)
		if merr := writeBackupMetrics(ctx, r, metrics, res, backupErr, reps[res.ID.String()]); merr != nil {
			t.warnf("%v", merr)
		}
	}
	return err
}

// writeBackupMetrics writes backup's textfile metrics (and the
// verification's when it ran).
func writeBackupMetrics(ctx context.Context, r *repo.Repository, path string, res *snapshot.BackupResult, backupErr error, v *verify.Report) error {
	now := float64(time.Now().UnixNano()) / 1e9
	ok := backupErr == nil
	ms := []metric{
		{name: "strata_backup_ok", typ: "gauge", help: "1 if the last backup succeeded (a snapshot with every source).", value: boolValue(ok)},
		{name: "strata_backup_last_run_timestamp_seconds", typ: "gauge", help: "When the last backup ended.", value: now},
	}
	if all, err := snapshot.List(ctx, r); err == nil && len(all) > 0 {
		newest := all[len(all)-1]
		ms = append(ms, metric{name: "strata_backup_last_snapshot_timestamp_seconds", typ: "gauge", help: "Time of the newest snapshot.", value: float64(newest.Time.UnixNano()) / 1e9})
	}
	if res != nil && res.Snapshot != nil {
		s := res.Summary
		ms = append(ms,
			metric{name: "strata_backup_bytes_processed", typ: "gauge", help: "Bytes the last backup read.", value: float64(s.BytesProcessed)},
			metric{name: "strata_backup_bytes_added", typ: "gauge", help: "New unique plaintext bytes the last backup added.", value: float64(s.BytesAdded)},
			metric{name: "strata_backup_bytes_stored", typ: "gauge", help: "Bytes the last backup wrote to the repository.", value: float64(s.BytesStored)},
			metric{name: "strata_backup_duration_seconds", typ: "gauge", help: "Duration of the last backup.", value: s.DurationSeconds})
		if ok {
			ms = append(ms, metric{name: "strata_backup_last_success_timestamp_seconds", typ: "gauge", help: "When a backup last succeeded.", value: now})
		}
	}
	if until, ok := recoverableUntil(ctx, r); ok {
		ms = append(ms, metric{name: "strata_recoverable_until_timestamp_seconds", typ: "gauge", help: "The newest point a restore reaches (snapshot or log): now minus this is the RPO.", value: until})
	}
	if v != nil {
		ms = append(ms,
			metric{name: "strata_verify_ok", typ: "gauge", help: "1 if the last verification passed.", value: boolValue(v.OK)},
			metric{name: "strata_verify_restore_bytes_per_second", typ: "gauge", help: "Restore throughput of the last verification.", value: v.RestoreBytesPerSecond},
			metric{name: "strata_verify_rto_estimate_seconds", typ: "gauge", help: "Recovery time the last verification implies.", value: v.RTOEstimateSeconds})
	}
	return writeMetrics(path, ms)
}

// recoverableUntil is the newest point a restore reaches, as Unix seconds:
// the log's (with heartbeats) when it has a window, else the newest
// snapshot's time.
func recoverableUntil(ctx context.Context, r *repo.Repository) (float64, bool) {
	if tl, err := snapshot.LoadTimeline(ctx, r, 0); err == nil {
		if ws := tl.Windows(); len(ws) > 0 {
			return float64(ws[len(ws)-1].ToTime.UnixNano()) / 1e9, true
		}
	}
	all, err := snapshot.List(ctx, r)
	if err != nil || len(all) == 0 {
		return 0, false
	}
	return float64(all[len(all)-1].Time.UnixNano()) / 1e9, true
}

// tierOptions turns the tier flags into backup options.
func tierOptions(opts *snapshot.BackupOptions, o backupOptions) error {
	formats := map[string]string{}
	for _, f := range o.tierFormats {
		name, format, ok := strings.Cut(f, "=")
		if !ok || (format != snapshot.FormatGraph && format != snapshot.FormatFiles) {
			return usagef("backup: --tier-format %q: want NAME=graph or NAME=files", f)
		}
		formats[name] = format
	}
	for _, s := range o.tiers {
		spec, err := snapshot.ParseTierSpec(s)
		if err != nil {
			return usagef("backup: --%v", err)
		}
		spec.Format = formats[spec.Name]
		delete(formats, spec.Name)
		opts.Tiers = append(opts.Tiers, spec)
	}
	for name := range formats {
		return usagef("backup: --tier-format names tier %q, which no --tier gives", name)
	}
	mem, err := parseSize(o.sortMemory)
	if err != nil || mem < 1<<20 {
		return usagef("backup: --sort-memory %q: want a size of at least 1MiB, like 128MiB or 2GiB", o.sortMemory)
	}
	opts.SortMemory = mem
	hasStart, hasEnd := o.lsnStart >= 0 || o.preHook != "", o.lsnEnd >= 0 || o.postHook != ""
	switch {
	case o.lsnStart >= 0 && o.preHook != "" || o.lsnEnd >= 0 && o.postHook != "":
		return usagef("backup: give --lsn-start or --pre-hook, --lsn-end or --post-hook, not both")
	case hasStart != hasEnd:
		return usagef("backup: a consistent cut needs both ends: --lsn-start (or --pre-hook) and --lsn-end (or --post-hook)")
	case o.lsnStart >= 0 && o.lsnEnd >= 0 && o.lsnEnd < o.lsnStart:
		return usagef("backup: --lsn-end %d is before --lsn-start %d", o.lsnEnd, o.lsnStart)
	case hasStart:
		opts.Cut = &snapshot.Cut{LSNStart: uint64(max(o.lsnStart, 0)), LSNEnd: uint64(max(o.lsnEnd, 0))}
		opts.WaitForLog = o.waitForLog
	case o.waitForLog > 0:
		return usagef("backup: --wait-for-log needs a consistent cut (--lsn-start/--lsn-end or the hooks)")
	}
	if len(opts.Tiers) == 0 && opts.Cut != nil {
		return usagef("backup: a consistent cut needs graph tiers (--tier)")
	}
	return nil
}

// cutOptions runs the pre-hook and sets the cut's generation (the log's
// newest, as the database now writes it) and its post-hook.
func cutOptions(ctx context.Context, r *repo.Repository, opts *snapshot.BackupOptions, o backupOptions) error {
	if opts.Cut == nil {
		return nil
	}
	gen, err := oplog.NewestGeneration(ctx, r)
	if err != nil {
		return err
	}
	opts.Cut.Generation = max(gen, 1)
	if o.preHook != "" {
		if opts.Cut.LSNStart, err = runLSNHook(ctx, "--pre-hook", o.preHook); err != nil {
			return err
		}
	}
	if o.postHook != "" {
		opts.CutEnd = func(ctx context.Context) (uint64, error) { return runLSNHook(ctx, "--post-hook", o.postHook) }
	}
	return nil
}

// runLSNHook runs cmd with sh -c and reads an lsn from its last non-empty
// stdout line. Its stderr passes through to ours.
func runLSNHook(ctx context.Context, flag, cmd string) (uint64, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stderr = os.Stderr
	out, err := c.Output()
	if err != nil {
		return 0, fmt.Errorf("backup %s %q: %w", flag, cmd, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	n, err := strconv.ParseUint(last, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("backup %s %q: its last output line %q is not an lsn (a non-negative integer)", flag, cmd, last)
	}
	return n, nil
}

// parseSize reads sizes like 128MiB, 2GiB, 512KiB, 64MB or plain bytes.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("parse size %q", s)
			}
			return int64(f * u.mult), nil
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// printIntegrityJSON emits a failed check as one JSON line (--json only).
func printIntegrityJSON(t *terminal, r *graph.Report) error {
	if !t.json {
		return nil
	}
	return t.printJSON(map[string]any{"message_type": "integrity", "ok": r.OK, "problems": r.Problems,
		"problem_count": r.ProblemCount, "stats": r.Stats})
}

// printProblems lists integrity problems on stderr (text mode; with --json
// the commands put them in their JSON).
func printProblems(t *terminal, r *graph.Report) {
	if t.json {
		return
	}
	// A terminal shows the first few; --json lists up to the report's cap.
	const shown = 20
	for i, p := range r.Problems {
		if i == shown {
			break
		}
		t.warnf("integrity: tier %s line %d: %s %s: %s", p.Tier, p.Line, p.Kind, p.ID, p.Detail)
	}
	if r.ProblemCount > shown {
		t.warnf("integrity: %d more problems not listed (--json lists up to %d)", r.ProblemCount-shown, len(r.Problems))
	}
}

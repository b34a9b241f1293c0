package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/repo"
)

// mirrorFlags are the flags of mirror and mirror status.
type mirrorFlags struct {
	to            string
	deleteDelay   days
	watch         time.Duration
	limitUpload   int
	limitDownload int
	lockDays      int
	lockMode      string
	metricsFile   string
}

func (f *mirrorFlags) setupCommon(fs *pflag.FlagSet) {
	fs.StringVar(&f.to, "to", "", "the mirror: a path or an s3://, gs://, azblob://, file:// URL (required)")
	f.deleteDelay = days(mirror.DefaultDeleteDelay)
	fs.Var(&f.deleteDelay, "delete-delay", "follow a deletion record of the primary only once it is this old (e.g. 7d, 36h, 0 for at once)")
}

func (f *mirrorFlags) options() (mirror.Options, error) {
	if f.to == "" {
		return mirror.Options{}, usagef("mirror: --to URL is required")
	}
	if f.limitUpload < 0 || f.limitDownload < 0 {
		return mirror.Options{}, usagef("mirror: --limit-upload and --limit-download take KiB/s, 0 or more")
	}
	if f.watch < 0 {
		return mirror.Options{}, usagef("mirror: --watch %s: want a positive duration", f.watch)
	}
	o := mirror.Options{
		DeleteDelay:   time.Duration(f.deleteDelay),
		UploadLimit:   int64(f.limitUpload) << 10,
		DownloadLimit: int64(f.limitDownload) << 10,
	}
	if o.DeleteDelay == 0 {
		o.DeleteDelay = -1 // the library's "no delay"; its 0 is the default
	}
	return o, nil
}

func newMirrorCommand() *command {
	var f mirrorFlags
	cmd := &command{
		name: "mirror", args: "--to URL [flags]", short: "keep a byte-identical replica of the repository",
		long: `Copies every object of the repository at -r (but leases) that the mirror at
--to lacks, so the mirror becomes a byte-identical replica: restore, verify and
timeline work on it with -r URL and the same password. An empty mirror gets the
keys and config first (as 'init --from-repo'); a mirror holding another
repository is refused. Runs are resumable and idempotent: each copies only the
difference, and verifies every object's hash before writing it.

Order: packs, then index, then log segments and heartbeats, then snapshots,
then deletion records, policy, verifications and drills; each group is
complete before the next starts, so an interrupted mirror still restores.

Deletions reach the mirror only through the primary's deletion records: a key
a record names under "removed" is removed from the mirror once the record is
older than --delete-delay and the run copied everything. Nothing else is ever
deleted on a mirror, so a wiped primary never wipes its mirrors.`,
		examples: []string{
			"strata mirror --to 's3://offsite/graph?region=eu-west-1'",
			"strata mirror --to /mnt/usb/graph --watch 5m --limit-upload 10240",
			"strata mirror status --to 's3://offsite/graph?region=eu-west-1' --json",
		},
		setup: func(fs *pflag.FlagSet) {
			f.setupCommon(fs)
			fs.DurationVar(&f.watch, "watch", 0, "repeat every DUR until interrupted (a failed pass is reported and retried)")
			fs.IntVar(&f.limitUpload, "limit-upload", 0, "limit writes to the mirror to this many KiB/s (0: unlimited)")
			fs.IntVar(&f.limitDownload, "limit-download", 0, "limit reads from the repository to this many KiB/s (0: unlimited)")
			fs.IntVar(&f.lockDays, "object-lock-days", 0, "write each object with S3 Object Lock retention of this many days (s3:// mirrors; the bucket must have Object Lock enabled)")
			fs.StringVar(&f.lockMode, "object-lock-mode", mirror.LockCompliance, "Object Lock mode: compliance or governance")
			fs.StringVar(&f.metricsFile, "metrics-file", "", "write Prometheus textfile metrics here after each pass (node_exporter's textfile collector)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) > 0 {
				return usagef("mirror: unexpected argument %q (the mirror goes in --to; did you mean 'mirror status'?)", args[0])
			}
			opts, err := f.options()
			if err != nil {
				return err
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error { return runMirror(ctx, r, t, f, opts) })
		},
	}
	var sf mirrorFlags
	cmd.subs = []*command{{
		name: "status", args: "--to URL", short: "show how far a mirror is behind",
		long: `Lists the repository and the mirror and prints what a mirror run would do:
the objects and bytes missing on the mirror, the age of the oldest missing
object (lag), objects only the mirror holds, and removals named by deletion
records that the mirror has not applied yet (with --delete-delay, how many of
them are due). Changes nothing.`,
		examples: []string{"strata mirror status --to /mnt/usb/graph --json"},
		setup:    sf.setupCommon,
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("mirror status", args, 0, "no arguments"); err != nil {
				return err
			}
			opts, err := sf.options()
			if err != nil {
				return err
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error { return runMirrorStatus(ctx, r, t, sf, opts) })
		},
	}}
	return cmd
}

// openMirror opens the mirror's store, created if it is a missing local
// directory (create true) and wrapped with Object Lock when asked.
func openMirror(ctx context.Context, f mirrorFlags, create bool) (backend.Backend, func(), error) {
	shown := backend.Redact(f.to)
	open := backend.Open
	if create {
		open = backend.Create
	}
	be, err := open(ctx, f.to)
	if err != nil {
		return nil, nil, fmt.Errorf("open mirror %s: %w", shown, err)
	}
	closeAll := func() { be.Close() }
	if f.lockDays > 0 {
		locked, err := mirror.WithObjectLock(ctx, f.to, be, mirror.ObjectLock{Days: f.lockDays, Mode: f.lockMode})
		if err != nil {
			be.Close()
			return nil, nil, err
		}
		closeAll = func() { locked.Close(); be.Close() }
		be = locked
	}
	return be, closeAll, nil
}

func runMirror(ctx context.Context, r *repo.Repository, t *terminal, f mirrorFlags, opts mirror.Options) error {
	if f.lockDays < 0 {
		return usagef("mirror: --object-lock-days %d: want 0 or more", f.lockDays)
	}
	if f.lockDays == 0 && f.lockMode != mirror.LockCompliance {
		return usagef("mirror: --object-lock-mode needs --object-lock-days")
	}
	dst, closeDst, err := openMirror(ctx, f, true)
	if err != nil {
		return err
	}
	defer closeDst()
	where := backend.Location(dst)
	p := t.newProgress("mirrored", false)
	p.warnPrefix = "not mirrored: "
	opts.Progress = p
	m := mirror.New(r, dst, opts)
	for {
		res, lag, err := mirrorPass(ctx, m)
		p.Done()
		if res != nil {
			if perr := printMirrorResult(t, where, res, opts.DeleteDelay); perr != nil {
				return perr
			}
		}
		if f.metricsFile != "" && (res != nil || err != nil) {
			if merr := writeMirrorMetrics(f.metricsFile, where, res, lag, err); merr != nil {
				t.warnf("%v", merr)
			}
		}
		if f.watch == 0 || ctx.Err() != nil || errors.Is(err, repo.ErrOtherRepository) || errors.Is(err, repo.ErrNotEmpty) {
			return err
		}
		if err != nil {
			// Watching: report and try again next round (a network blip
			// must not end a long-running mirror).
			if t.json {
				_ = t.printJSON(map[string]any{"message_type": "error", "error": err.Error()})
			} else {
				t.errorf("%v", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil // stopped between passes: nothing was cut short
		case <-time.After(f.watch):
		}
		p = t.newProgress("mirrored", false)
		p.warnPrefix = "not mirrored: "
		m.SetProgress(p)
	}
}

// mirrorPass runs one pass and returns, besides its result, the lag the
// mirror had when the pass planned it (for metrics).
func mirrorPass(ctx context.Context, m *mirror.Mirror) (*mirror.Result, float64, error) {
	plan, err := m.Plan(ctx)
	if err != nil {
		return nil, 0, err
	}
	lag := plan.Status().LagSeconds
	res, err := plan.Execute(ctx)
	return res, lag, err
}

func printMirrorResult(t *terminal, where string, res *mirror.Result, delay time.Duration) error {
	if t.json {
		return t.printJSON(map[string]any{
			"message_type":      "summary",
			"mirror":            where,
			"initialized":       res.Initialized,
			"copied_objects":    res.CopiedObjects,
			"copied_bytes":      res.CopiedBytes,
			"present_objects":   res.PresentObjects,
			"vanished_objects":  res.VanishedObjects,
			"failed_objects":    len(res.Failed),
			"ignored_objects":   len(res.Ignored),
			"deleted_objects":   res.DeletedObjects,
			"pending_deletions": res.PendingDeletions,
			"duration_seconds":  res.Duration.Seconds(),
		})
	}
	if res.Initialized {
		t.printf("initialised the mirror at %s with the repository's keys and config\n", where)
	}
	t.printf("mirror %s: copied %d objects (%s), %d already there, deleted %d", where, res.CopiedObjects, fmtBytes(res.CopiedBytes), res.PresentObjects, res.DeletedObjects)
	if res.PendingDeletions > 0 {
		d := "none"
		if delay > 0 {
			dd := days(delay)
			d = dd.String()
		}
		t.printf(", %d deletions pending (delay %s)", res.PendingDeletions, d)
	}
	if len(res.Failed) > 0 {
		t.printf(", %d objects NOT copied", len(res.Failed))
	}
	t.printf(" in %s\n", fmtDuration(res.Duration.Seconds()))
	if n := len(res.Ignored); n > 0 {
		t.warnf("%d keys of the repository are not objects of its layout and were not mirrored (e.g. %s); 'strata check' lists them", n, res.Ignored[0])
	}
	return nil
}

func writeMirrorMetrics(path, where string, res *mirror.Result, lag float64, runErr error) error {
	l := map[string]string{"mirror": where}
	ok := runErr == nil
	ms := []metric{
		{name: "strata_mirror_ok", typ: "gauge", help: "1 if the last mirror pass copied everything.", value: boolValue(ok), labels: l},
		{name: "strata_mirror_last_run_timestamp_seconds", typ: "gauge", help: "When the last mirror pass ended.", value: float64(time.Now().UnixNano()) / 1e9, labels: l},
	}
	if ok {
		ms = append(ms, metric{name: "strata_mirror_last_success_timestamp_seconds", typ: "gauge", help: "When a mirror pass last copied everything.", value: float64(time.Now().UnixNano()) / 1e9, labels: l})
		lag = 0
	}
	ms = append(ms, metric{name: "strata_mirror_lag_seconds", typ: "gauge", help: "Age of the oldest object the mirror lacks (0 after a complete pass).", value: lag, labels: l})
	if res != nil {
		ms = append(ms,
			metric{name: "strata_mirror_copied_bytes", typ: "gauge", help: "Bytes the last pass copied.", value: float64(res.CopiedBytes), labels: l},
			metric{name: "strata_mirror_copied_objects", typ: "gauge", help: "Objects the last pass copied.", value: float64(res.CopiedObjects), labels: l},
			metric{name: "strata_mirror_failed_objects", typ: "gauge", help: "Objects the last pass could not copy.", value: float64(len(res.Failed)), labels: l},
			metric{name: "strata_mirror_pending_deletions", typ: "gauge", help: "Removals named by deletion records that the mirror has not applied yet.", value: float64(res.PendingDeletions), labels: l},
		)
	}
	return writeMetrics(path, ms)
}

func runMirrorStatus(ctx context.Context, r *repo.Repository, t *terminal, f mirrorFlags, opts mirror.Options) error {
	dst, closeDst, err := openMirror(ctx, f, false)
	if err != nil {
		return err
	}
	defer closeDst()
	plan, err := mirror.New(r, dst, opts).Plan(ctx)
	if err != nil {
		return err
	}
	st := plan.Status()
	if t.json {
		return t.printJSON(st)
	}
	where := backend.Location(dst)
	if !st.Initialized {
		t.printf("mirror %s holds no repository yet: a mirror run initialises it\n", where)
	}
	t.printf("mirror %s\n", where)
	t.printf("  missing:           %d objects, %s\n", st.MissingObjects, fmtBytes(st.MissingBytes))
	if st.OldestMissing != nil {
		t.printf("  lag:               %s (oldest missing object written %s)\n", fmtDuration(st.LagSeconds), st.OldestMissing.Format(time.RFC3339))
	} else {
		t.printf("  lag:               0s\n")
	}
	t.printf("  only on mirror:    %d objects\n", st.ExtraObjects)
	t.printf("  pending deletions: %d (%d due)", st.PendingDeletions, st.DueDeletions)
	if st.NextDeletion != nil {
		t.printf(", next due %s", st.NextDeletion.Format(time.RFC3339))
	}
	t.printf("\n")
	return nil
}

// days is a duration flag that also takes days ("7d", "1d12h").
type days time.Duration

func (d *days) Set(s string) error {
	s = strings.TrimSpace(s)
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad number of days in %q", s)
		}
		total = time.Duration(n * float64(24*time.Hour))
		s = s[i+1:]
	}
	if s != "" {
		rest, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 7d, 36h or 1d12h: %w", err)
		}
		total += rest
	}
	if total < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	*d = days(total)
	return nil
}

func (d *days) String() string {
	v := time.Duration(*d)
	if v > 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return v.String()
}

func (d *days) Type() string { return "duration" }

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
)

type oplogPushOptions struct {
	metricsFile   string
	flushInterval time.Duration
	segmentSize   string
	heartbeat     time.Duration
	follow        bool
	newGeneration bool
	fromLSN       int64
	lockWait      time.Duration
}

func newOplogPushCommand() *command {
	var o oplogPushOptions
	return &command{
		name: "push", args: "[flags] [FILE|-]", short: "stream mutations into the log",
		long: `Reads mutation records, one JSON object a line (SPEC section 5), from FILE or
standard input (- or nothing) and appends them to the log. It seals a segment
every --flush-interval or --segment-size, whichever comes first; a record is
acknowledged once its segment is durable (-v, or --json: one line per sealed
segment). It validates as it goes and stops at the first malformed line, gap
in the lsns, or re-sent lsn with different content, after storing every good
record before it. A record already stored is skipped, so re-sending after a
crash is safe.

One push writes to the log at a time (exit 11 for a second one, or it waits
with --lock-wait). While no mutations arrive, push writes a heartbeat every
--heartbeat, so an idle database is not taken for a stale backup.

--follow tails FILE as it grows and across rotation (rename or truncation),
until interrupted (Ctrl-C or SIGTERM: it seals what it has and exits 130). A
restarted push reads FILE from its start and skips what is stored.

After the database was restored to an earlier point, it issues lsns again
with new content: --new-generation --from-lsn N starts a new generation of the
log that branches after lsn N. Restarts of that push go on without the flags.`,
		examples: []string{
			"tail -F /var/log/graph/mutations.jsonl | strata oplog push",
			"strata oplog push --follow /var/log/graph/mutations.jsonl --json",
			"strata oplog push --new-generation --from-lsn 1200 mutations.jsonl",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.DurationVar(&o.flushInterval, "flush-interval", oplog.DefaultFlushInterval, "seal the pending records at least this often (about the RPO)")
			fs.StringVar(&o.segmentSize, "segment-size", "8MiB", "seal as soon as the pending records reach this size")
			fs.DurationVar(&o.heartbeat, "heartbeat", oplog.DefaultHeartbeat, "while no mutations arrive, write a heartbeat this often (0: never)")
			fs.BoolVar(&o.follow, "follow", false, "tail FILE as it grows and across rotation, until interrupted")
			fs.BoolVar(&o.newGeneration, "new-generation", false, "start a new generation of the log after --from-lsn")
			fs.Int64Var(&o.fromLSN, "from-lsn", -1, "with --new-generation: the lsn of the newest generation it branches after (0: a fresh start)")
			fs.DurationVar(&o.lockWait, "lock-wait", 0, "wait this long for another push to release the log")
			fs.StringVar(&o.metricsFile, "metrics-file", "", "keep Prometheus textfile metrics here current (last seal, heartbeat, recoverable-until)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			return runOplogPush(ctx, g, t, o, args)
		},
	}
}

func runOplogPush(ctx context.Context, g *globals, t *terminal, o oplogPushOptions, args []string) error {
	const cmd = "oplog push"
	if len(args) > 1 {
		return usagef("%s: want at most one FILE (or -), got %d arguments", cmd, len(args))
	}
	file := "-"
	if len(args) == 1 {
		file = args[0]
	}
	opts := oplog.PushOptions{
		NewGeneration: o.newGeneration,
		FlushInterval: o.flushInterval,
		Heartbeat:     o.heartbeat,
		LockWait:      o.lockWait,
		AfterSeal:     compactLog,
	}
	switch {
	case o.fromLSN >= 0 && !o.newGeneration:
		return usagef("%s: --from-lsn goes with --new-generation", cmd)
	case o.newGeneration && o.fromLSN < 0:
		return usagef("%s: --new-generation needs --from-lsn N (the lsn it branches after; 0 for a fresh start)", cmd)
	case o.newGeneration:
		opts.FromLSN = uint64(o.fromLSN)
	}
	if o.follow && file == "-" {
		return usagef("%s: --follow needs a FILE to follow", cmd)
	}
	if o.flushInterval <= 0 {
		return usagef("%s: --flush-interval must be positive, got %v", cmd, o.flushInterval)
	}
	if o.heartbeat < 0 || o.lockWait < 0 {
		return usagef("%s: --heartbeat and --lock-wait must not be negative", cmd)
	}
	if o.heartbeat == 0 {
		opts.Heartbeat = -1
	}
	size, err := parseSize(o.segmentSize)
	if err != nil || size < 1 {
		return usagef("%s: --segment-size %q: want a size like 8MiB or 512KiB", cmd, o.segmentSize)
	}
	opts.SegmentSize = size

	var src oplog.LineSource
	switch {
	case o.follow:
		f, err := oplog.Follow(file, oplog.FollowOptions{})
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	case file == "-":
		src = oplog.NewLineReader(t.stdin)
	default:
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		defer f.Close()
		src = oplog.NewLineReader(f)
	}

	return g.withRepo(ctx, t, func(r *repo.Repository) error {
		var jsonErr error
		opts.OnSealed = func(s oplog.SealedSegment) {
			if t.json {
				if err := t.printJSON(map[string]any{"message_type": "sealed", "generation": s.Generation,
					"first_lsn": s.FirstLSN, "last_lsn": s.LastLSN, "records": s.Records, "segment": s.Key}); err != nil && jsonErr == nil {
					jsonErr = err
				}
				return
			}
			if t.verbose > 0 {
				t.printf("sealed lsn %d..%d (%d record%s) as %s\n", s.FirstLSN, s.LastLSN, s.Records, oplogPlural(s.Records), s.Key)
			}
		}
		opts.Warn = func(msg string) { t.warnf("%s", msg) }
		pm := &pushMetrics{path: o.metricsFile, warn: opts.Warn}
		if pm.path != "" {
			sealed := opts.OnSealed
			opts.OnSealed = func(s oplog.SealedSegment) {
				sealed(s)
				pm.sealed(s)
			}
			opts.OnHeartbeat = pm.heartbeat
			pm.write(true)
		}
		res, err := oplog.Push(ctx, r, src, opts)
		if pm.path != "" {
			pm.write(false)
		}
		if res.Generation == 0 {
			return err // nothing opened: the lease, or the generation
		}
		if w := res.ClampWarning; w != "" {
			t.warnf("%s", strings.TrimPrefix(w, "warning: "))
		}
		if res.Skipped > 0 {
			t.warnf("%d re-sent record%s (lsn %d..%d) already in the log: skipped", res.Skipped, oplogPlural(res.Skipped), res.SkippedFirst, res.SkippedLast)
		}
		if res.OpenTx && t.verbose > 0 {
			t.warnf("the log ends inside a transaction: stored, and applied by recovery once a later push completes it")
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		if t.json {
			if jerr := t.printJSON(map[string]any{"message_type": "summary", "generation": res.Generation,
				"records": res.Records, "skipped": res.Skipped, "last_lsn": res.LastLSN, "segments": res.Segments,
				"heartbeats": res.Heartbeats, "clamped": res.Clamped, "open_transaction": res.OpenTx,
				"duration_seconds": res.Duration.Seconds()}); jerr != nil {
				return jerr
			}
		} else {
			t.printf("pushed %d record%s in %d segment%s to generation %d, %d skipped; the log ends at lsn %d (%s)\n",
				res.Records, oplogPlural(res.Records), res.Segments, oplogPlural(res.Segments), res.Generation, res.Skipped,
				res.LastLSN, fmtDuration(res.Duration.Seconds()))
		}
		if err != nil {
			return err
		}
		return jsonErr
	})
}

func oplogPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// compactLog runs in the background after seals, at most once a minute
// (oplog.PushOptions.AfterSeal), and push waits for it before it ends.
func compactLog(ctx context.Context, l *oplog.Log) error {
	_, err := l.Compact(ctx, oplog.CompactOptions{})
	return err
}

// pushMetrics keeps push's textfile metrics current: written at the start,
// after a seal or heartbeat (at most once a second), and at the end.
type pushMetrics struct {
	path                      string
	warn                      func(string)
	mu                        sync.Mutex
	lastWrite                 time.Time
	lsn, records              float64
	lastSeal, lastHB, untilTS float64
}

func (m *pushMetrics) sealed(s oplog.SealedSegment) {
	m.mu.Lock()
	m.lsn, m.records, m.lastSeal = float64(s.LastLSN), m.records+float64(s.Records), float64(time.Now().UnixNano())/1e9
	if ts, err := oplog.ParseTime(s.LastTS); err == nil {
		m.untilTS = float64(ts.GoTime().UnixNano()) / 1e9
	}
	m.mu.Unlock()
	m.maybeWrite()
}

func (m *pushMetrics) heartbeat(hb oplog.Heartbeat) {
	m.mu.Lock()
	m.lastHB = float64(hb.Time.UnixNano()) / 1e9
	m.untilTS = max(m.untilTS, m.lastHB)
	m.mu.Unlock()
	m.maybeWrite()
}

func (m *pushMetrics) maybeWrite() {
	m.mu.Lock()
	due := time.Since(m.lastWrite) >= time.Second
	m.mu.Unlock()
	if due {
		m.write(true)
	}
}

func (m *pushMetrics) write(running bool) {
	m.mu.Lock()
	m.lastWrite = time.Now()
	ms := []metric{
		{name: "strata_oplog_push_running", typ: "gauge", help: "1 while an oplog push runs.", value: boolValue(running)},
		{name: "strata_oplog_last_lsn", typ: "gauge", help: "The newest durable lsn this push stored.", value: m.lsn},
		{name: "strata_oplog_pushed_records", typ: "gauge", help: "Records this push stored.", value: m.records},
		{name: "strata_oplog_last_seal_timestamp_seconds", typ: "gauge", help: "When this push last sealed a segment (0: not yet).", value: m.lastSeal},
		{name: "strata_oplog_last_heartbeat_timestamp_seconds", typ: "gauge", help: "When this push last wrote a heartbeat (0: not yet).", value: m.lastHB},
		{name: "strata_recoverable_until_timestamp_seconds", typ: "gauge", help: "The log is durable up to this mutation time (or heartbeat): now minus this is the RPO.", value: m.untilTS},
	}
	m.mu.Unlock()
	if err := writeMetrics(m.path, ms); err != nil && m.warn != nil {
		m.warn(err.Error())
	}
}

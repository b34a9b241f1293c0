package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

// pointJSON is a log position in JSON.
type pointJSON struct {
	LSN uint64 `json:"lsn"`
	TS  string `json:"ts"`
}

func newOplogStatusCommand() *command {
	var gen uint64
	return &command{
		name: "status", args: "[--generation G]", short: "the log's first and last lsn and time, segments, gaps, heartbeat",
		examples: []string{"strata oplog status", "strata oplog status --json | jq .last_lsn"},
		setup: func(fs *pflag.FlagSet) {
			fs.Uint64Var(&gen, "generation", 0, "show this generation (default: the newest)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("oplog status", args, 0, "no arguments"); err != nil {
				return err
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				tl, err := snapshot.LoadTimeline(ctx, r, gen)
				if errors.Is(err, oplog.ErrNoLog) && gen == 0 {
					return printEmptyLog(t)
				}
				if err != nil {
					return err
				}
				return printOplogStatus(ctx, r, t, tl)
			})
		},
	}
}

func printEmptyLog(t *terminal) error {
	if t.json {
		return t.printJSON(map[string]any{"generation": 0, "first_lsn": nil, "last_lsn": nil, "first_ts": nil,
			"last_ts": nil, "last_heartbeat": nil, "segments": 0, "gaps": []oplog.Gap{}, "generations": []uint64{}})
	}
	t.printf("the repository holds no oplog yet (push one with strata oplog push)\n")
	return nil
}

func printOplogStatus(ctx context.Context, r *repo.Repository, t *terminal, tl *snapshot.Timeline) error {
	gens, err := oplog.Generations(ctx, r)
	if err != nil {
		return err
	}
	cov := tl.Coverage
	out := map[string]any{"generation": tl.History.Gen, "first_lsn": nil, "last_lsn": nil, "first_ts": nil, "last_ts": nil,
		"last_heartbeat": nil, "segments": cov.Segments, "gaps": nonNilGaps(cov.Gaps), "generations": gens}
	var spans []map[string]any
	for _, s := range tl.History.Spans {
		sp := map[string]any{"generation": s.Gen, "after_lsn": s.After}
		if s.Bounded {
			sp["upto_lsn"] = s.Upto
		}
		spans = append(spans, sp)
	}
	out["history"] = spans
	if n := len(cov.Runs); n > 0 {
		first, last := cov.Runs[0], cov.Runs[n-1]
		out["first_lsn"], out["first_ts"] = first.First.LSN, first.First.TS
		out["last_lsn"], out["last_ts"] = last.Last.LSN, last.Last.TS
		if last.HasWhole {
			out["last_whole_lsn"] = last.LastWhole.LSN
		}
	}
	if hb := tl.Heartbeat; hb != nil {
		out["last_heartbeat"] = hb.Time.Format(time.RFC3339Nano)
		out["heartbeat_lsn"] = hb.LastLSN
	}
	if rpo, ok := tl.RPO(time.Now()); ok {
		out["rpo_seconds"] = rpo.Seconds()
	}
	if t.json {
		return t.printJSON(out)
	}
	t.printf("generation %d (generations: %v)\n", tl.History.Gen, gens)
	if len(cov.Runs) == 0 {
		t.printf("no records\n")
	} else {
		first, last := cov.Runs[0], cov.Runs[len(cov.Runs)-1]
		t.printf("first:     lsn %d at %s\n", first.First.LSN, first.First.TS)
		t.printf("last:      lsn %d at %s\n", last.Last.LSN, last.Last.TS)
		if last.HasWhole && last.LastWhole.LSN != last.Last.LSN {
			t.printf("           (the last whole transaction ends at lsn %d; the records after it are an open transaction)\n", last.LastWhole.LSN)
		}
	}
	t.printf("segments:  %d\n", cov.Segments)
	if hb := tl.Heartbeat; hb != nil {
		t.printf("heartbeat: %s (log complete up to lsn %d)\n", hb.Time.Format(time.RFC3339), hb.LastLSN)
	}
	if rpo, ok := tl.RPO(time.Now()); ok {
		t.printf("rpo:       %s\n", fmtDuration(rpo.Seconds()))
	}
	if len(cov.Gaps) == 0 {
		t.printf("gaps:      none\n")
	}
	for _, g := range cov.Gaps {
		t.printf("gap:       records after lsn %d up to lsn %d are missing (generation %d)\n", g.After, g.Before-1, g.Gen)
	}
	return nil
}

func nonNilGaps(g []oplog.Gap) []oplog.Gap {
	if g == nil {
		return []oplog.Gap{}
	}
	return g
}

func newTimelineCommand() *command {
	var gen uint64
	return &command{
		name: "timeline", args: "[--generation G]", short: "recoverable windows, log gaps and the current RPO",
		long: `Lists what restore --at and --lsn can reach: each window runs from the
oldest snapshot with a consistent cut that the log can replay, to the end of
the log's last whole transaction (or, for the newest window, to the last
heartbeat of an idle log). The RPO is now minus the newest durable mutation
or heartbeat.`,
		examples: []string{"strata timeline", "strata timeline --json | jq .rpo_seconds"},
		setup: func(fs *pflag.FlagSet) {
			fs.Uint64Var(&gen, "generation", 0, "follow this generation of the log (default: the newest)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("timeline", args, 0, "no arguments"); err != nil {
				return err
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				tl, err := snapshot.LoadTimeline(ctx, r, gen)
				if errors.Is(err, oplog.ErrNoLog) && gen == 0 {
					if t.json {
						return t.printJSON(map[string]any{"windows": []any{}, "gaps": []any{}, "rpo_seconds": nil, "snapshots": []any{}, "generation": 0})
					}
					t.printf("no oplog yet: only whole snapshots can be restored (push one with strata oplog push)\n")
					return nil
				}
				if err != nil {
					return err
				}
				return printTimeline(t, tl)
			})
		},
	}
}

func printTimeline(t *terminal, tl *snapshot.Timeline) error {
	type windowJSON struct {
		From         string `json:"from"`
		To           string `json:"to"`
		FromLSN      uint64 `json:"from_lsn"`
		ToLSN        uint64 `json:"to_lsn"`
		Generation   uint64 `json:"generation"`
		BaseSnapshot string `json:"base_snapshot"`
	}
	type snapJSON struct {
		ID          string        `json:"id"`
		ShortID     string        `json:"short_id"`
		Time        time.Time     `json:"time"`
		Cut         *snapshot.Cut `json:"cut"`
		CutLSN      uint64        `json:"cut_lsn"`
		CutTS       string        `json:"cut_ts,omitempty"`
		Recoverable bool          `json:"recoverable"`
		Reason      string        `json:"reason,omitempty"`
	}
	ws := []windowJSON{}
	for _, w := range tl.Windows() {
		from := w.From.TS
		if from == "" {
			from = w.Base.Time.UTC().Format(time.RFC3339Nano) // before the log: the snapshot's time
		}
		ws = append(ws, windowJSON{From: from, To: w.ToTime.UTC().Format(time.RFC3339Nano), FromLSN: w.From.LSN, ToLSN: w.To.LSN,
			Generation: tl.History.Gen, BaseSnapshot: w.Base.ID.String()})
	}
	snaps := []snapJSON{}
	for i := len(tl.Bases) - 1; i >= 0; i-- {
		b := tl.Bases[i]
		snaps = append(snaps, snapJSON{ID: b.ID.String(), ShortID: b.ID.Short(), Time: b.Time, Cut: b.Cut, CutLSN: b.End.LSN,
			CutTS: b.End.TS, Recoverable: b.Run >= 0, Reason: b.Why})
	}
	var rpo any
	if d, ok := tl.RPO(time.Now()); ok {
		rpo = d.Seconds()
	}
	if t.json {
		return t.printJSON(map[string]any{"windows": ws, "gaps": nonNilGaps(tl.Coverage.Gaps), "rpo_seconds": rpo,
			"snapshots": snaps, "generation": tl.History.Gen})
	}
	t.printf("generation %d\n", tl.History.Gen)
	if len(ws) == 0 {
		t.printf("no recoverable window: ")
		if len(snaps) == 0 {
			t.printf("no snapshot has a consistent cut on this log (back up with --lsn-start/--lsn-end or --pre-hook/--post-hook)\n")
		} else {
			t.printf("%s\n", snaps[len(snaps)-1].Reason)
		}
	}
	for _, w := range ws {
		t.printf("window:   %s .. %s  (lsn %d .. %d, from snapshot %s)\n", w.From, w.To, w.FromLSN, w.ToLSN, w.BaseSnapshot[:8])
	}
	for _, g := range tl.Coverage.Gaps {
		t.printf("gap:      records after lsn %d up to lsn %d are missing\n", g.After, g.Before-1)
	}
	for _, s := range snaps {
		state := "base"
		if !s.Recoverable {
			state = "not usable: " + s.Reason
		}
		t.printf("snapshot: %s %s cut (%d, %d] lands at lsn %d: %s\n", s.ShortID, s.Time.Local().Format(time.DateTime), s.Cut.LSNStart, s.Cut.LSNEnd, s.CutLSN, state)
	}
	if rpo != nil {
		t.printf("rpo:      %s\n", fmtDuration(rpo.(float64)))
	} else {
		t.printf("rpo:      unknown (the log is empty)\n")
	}
	return nil
}

func newSnapshotCommand() *command {
	return &command{
		name: "snapshot", short: "snapshot operations",
		subs: []*command{newSynthesizeCommand()},
	}
}

func newSynthesizeCommand() *command {
	var (
		at, when string
		lsn      int64
		gen      uint64
		tags     []string
		host     string
	)
	return &command{
		name: "synthesize", args: "[--at TIME | --lsn N]", short: "a new snapshot from the newest one plus the log, without the database",
		long: `Writes a new snapshot at a point of the log (default: the newest point it
reaches) from the newest snapshot with a consistent cut at or before it, plus
the log, without reading the database. Each graph tier gets one delta layer
built from the log alone, so the time and bytes it takes follow the log, not
the graph: cheap enough to run every few minutes, and a restore of the new
snapshot replays nothing. Files tiers are carried over as captured. The
tiers' node and relationship counts are those of the base snapshot
(counts_from in the JSON), since counting would read the whole graph.`,
		examples: []string{"strata snapshot synthesize", "strata snapshot synthesize --lsn 1200 --tag hourly --json"},
		setup: func(fs *pflag.FlagSet) {
			fs.StringVar(&at, "at", "", "the point as a time (RFC 3339)")
			fs.Int64Var(&lsn, "lsn", -1, "the point as a log position")
			fs.Uint64Var(&gen, "generation", 0, "follow this generation of the log (default: the newest)")
			fs.StringArrayVar(&tags, "tag", nil, "add a tag (repeatable)")
			fs.StringVar(&host, "host", "", "hostname to record (default: the base snapshot's)")
			fs.StringVar(&when, "time", "", "snapshot time (default: now)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("snapshot synthesize", args, 0, "no arguments"); err != nil {
				return err
			}
			if at != "" && lsn >= 0 {
				return usagef("snapshot synthesize: give --at or --lsn, not both")
			}
			opts := snapshot.SynthesizeOptions{Generation: gen, Tags: splitTags(tags), Host: host}
			var err error
			if opts.Time, err = parseTime("--time", when); err != nil {
				return err
			}
			switch {
			case lsn >= 0:
				opts.Target = &snapshot.Target{Generation: gen, LSN: uint64(lsn), HasLSN: true}
			case at != "":
				tm, err := parseTime("--at", at)
				if err != nil {
					return err
				}
				opts.Target = &snapshot.Target{Generation: gen, At: &tm}
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				return runSynthesize(ctx, r, t, opts)
			})
		},
	}
}

func runSynthesize(ctx context.Context, r *repo.Repository, t *terminal, opts snapshot.SynthesizeOptions) error {
	res, err := snapshot.Synthesize(ctx, r, opts)
	if err != nil {
		return err
	}
	rp := res.Replay
	if !res.Changed {
		if t.json {
			return t.printJSON(map[string]any{"message_type": "summary", "changed": false, "snapshot_id": nil,
				"base_snapshot": res.Base.ID.String(), "lsn": res.Base.End.LSN, "records": 0})
		}
		t.printf("nothing to synthesize: snapshot %s is already at that point (lsn %d)\n", res.Base.ID.Short(), res.Base.End.LSN)
		return nil
	}
	s := res.Summary
	if t.json {
		return t.printJSON(map[string]any{"message_type": "summary", "changed": true, "snapshot_id": res.ID.String(),
			"short_id": res.ID.Short(), "base_snapshot": res.Base.ID.String(), "lsn": res.Snapshot.Cut.LSNEnd, "ts": rp.LastTS,
			"records": rp.Applied, "transactions": rp.Transactions, "bytes_added": s.BytesAdded, "bytes_stored": s.BytesStored,
			"log_bytes": res.LogBytes, "duration_seconds": s.DurationSeconds})
	}
	t.printf("snapshot %s synthesized at lsn %d (%s) from snapshot %s plus %d log records\n",
		res.ID.Short(), res.Snapshot.Cut.LSNEnd, rp.LastTS, res.Base.ID.Short(), rp.Applied)
	t.printf("Added:       %s new data, %s stored (the log it covers: %s)\n", fmtBytes(s.BytesAdded), fmtBytes(s.BytesStored), fmtBytes(res.LogBytes))
	t.printf("took %s\n", fmtDuration(s.DurationSeconds))
	return nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/drill"
	"github.com/strata-backup/strata/repo"
)

type drillFlags struct {
	scenarios   []string
	from        string
	fetchFirst  bool
	rto, rpo    time.Duration
	startCmd    string
	smokeCmd    string
	targets     string
	report      string
	noRecord    bool
	metricsFile string
	damage      int
	seed        uint64
	workDir     string
}

func newDrillCommand() *command {
	var f drillFlags
	return &command{
		name: "drill", args: "[--scenario NAME]... [--from URL]", short: "rehearse a disaster and measure RTO and RPO, harming nothing",
		long: `Rehearses recoveries (SPEC section 7) without changing an object of the
repository or its mirrors: it adds only a drills/ record (--no-record: not
even that). Scenarios that damage or write work on a copy-on-write overlay,
so nothing is copied up front.

  total-loss  restore the newest point straight from the mirror (--from;
              --fetch-first downloads it first), replay the log, check the
              graph, run --start-cmd and --smoke-cmd; RTO = the sum of the
              steps, RPO = the primary's newest mutation minus the point
              recovered (mirror lag included). --targets measures the
              recovery time of several points (latest, -2h, -30m, -2m before
              the newest mutation): the recovery-time table.
  corruption  damage random objects of an overlay; check must name every one,
              and a repair from the mirror must pass check --read-data.
  disk-full   a backup into a store that fills up fails cleanly, the
              repository checks, the next backup succeeds.
  partition   the store is cut off at a backup's first pack save: the backup
              fails cleanly, one that retries gets through a 0.4 s cut, and
              after healing check passes and a backup completes.
  site-loss   the primary's site is gone: fetch the mirror to new storage and
              restore from it alone.

Every step is timed. A failed step, or an RTO or RPO over --rto or --rpo,
exits 4.`,
		examples: []string{
			"strata drill --from s3://offsite-bucket/graph --rto 30m --rpo 5m --report drill.md",
			"strata drill --scenario all --from /mnt/mirror --json",
			"strata drill --scenario total-loss --from /mnt/mirror --targets latest,-2h,-30m,-2m",
			"strata drill --start-cmd './start-db.sh {dir}' --smoke-cmd './smoke.sh'",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.StringSliceVar(&f.scenarios, "scenario", nil, "total-loss (default), corruption, disk-full, partition, site-loss or all (repeatable, or comma-separated)")
			fs.StringVar(&f.from, "from", "", "the mirror to recover from (a path or URL)")
			fs.BoolVar(&f.fetchFirst, "fetch-first", false, "total-loss: download the whole mirror before restoring")
			fs.DurationVar(&f.rto, "rto", 0, "fail when a recovery takes longer than this")
			fs.DurationVar(&f.rpo, "rpo", 0, "fail when a recovery loses more than this")
			fs.StringVar(&f.startCmd, "start-cmd", "", "after the restore run this (sh -c; {dir} is the restored directory)")
			fs.StringVar(&f.smokeCmd, "smoke-cmd", "", "then run this smoke test (sh -c; {dir})")
			fs.StringVar(&f.targets, "targets", "", "total-loss: recover each of these points and time it: latest,-2h,-30m,-2m")
			fs.StringVar(&f.report, "report", "", "write the report as Markdown to this file")
			fs.BoolVar(&f.noRecord, "no-record", false, "do not store the report under drills/")
			fs.StringVar(&f.metricsFile, "metrics-file", "", "write Prometheus textfile metrics (RTO, RPO, pass/fail per scenario)")
			fs.IntVar(&f.damage, "damage", 5, "corruption: how many objects to damage")
			fs.Uint64Var(&f.seed, "seed", 0, "seed for the damage drawn (default: random, printed in the report)")
			fs.StringVar(&f.workDir, "work-dir", "", "where restores go (default a temporary directory, removed)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("drill", args, 0, "no arguments"); err != nil {
				return err
			}
			var scenarios []string
			for _, s := range f.scenarios {
				scenarios = append(scenarios, splitComma(s)...)
			}
			for _, s := range scenarios {
				if s != "all" && !containsString(drill.All, s) {
					return usagef("drill: unknown scenario %q (want %s or all)", s, strings.Join(drill.All, ", "))
				}
			}
			var targets []string
			if f.targets != "" {
				targets = splitComma(f.targets)
				for _, tg := range targets {
					if _, err := time.ParseDuration(strings.TrimPrefix(tg, "-")); tg != "latest" && (err != nil || !strings.HasPrefix(tg, "-")) {
						return usagef("drill --targets %q: want latest or -DURATION (e.g. -2h)", tg)
					}
				}
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				pw, err := g.password(t, "password: ", false)
				if err != nil {
					return err
				}
				opts := drill.Options{Scenarios: scenarios, FetchFirst: f.fetchFirst, RTO: f.rto, RPO: f.rpo,
					StartCmd: f.startCmd, SmokeCmd: f.smokeCmd, Targets: targets, NoRecord: f.noRecord,
					Damage: f.damage, Seed: f.seed, WorkDir: f.workDir,
					Open: func(ctx context.Context, be backend.Backend) (*repo.Repository, error) {
						// A private index cache: the overlay's index must not
						// leak into the primary's cache.
						return repo.Open(ctx, be, pw, repo.Options{NoCache: true})
					},
				}
				sp := newStepProgress(t)
				opts.Progress = func(sc, step string) { sp.Step(fmt.Sprintf("drill %s: %s", sc, step)) }
				opts.RestoreProgress = sp
				if f.from != "" {
					be, err := backend.Open(ctx, f.from)
					if err != nil {
						return fmt.Errorf("drill: open the mirror %s: %w", backend.Redact(f.from), err)
					}
					defer be.Close()
					opts.From, opts.FromLocation = be, backend.Redact(f.from)
				}
				rep, err := drill.Run(ctx, r, opts)
				sp.Done()
				if err != nil && rep == nil {
					return err
				}
				if f.report != "" {
					if werr := os.WriteFile(f.report, []byte(drill.Markdown(rep)), 0o644); werr != nil {
						t.warnf("write the report: %v", werr)
					}
				}
				if f.metricsFile != "" {
					if merr := writeDrillMetrics(f.metricsFile, rep); merr != nil {
						t.warnf("%v", merr)
					}
				}
				if t.json {
					if jerr := t.printJSON(rep); jerr != nil {
						return jerr
					}
				} else {
					t.printf("%s", drill.Text(rep))
				}
				if err != nil {
					return err
				}
				if !rep.OK {
					return fmt.Errorf("drill: a scenario failed: %w", errDrillFailed)
				}
				return nil
			})
		},
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func writeDrillMetrics(path string, rep *drill.Report) error {
	ms := []metric{
		{name: "strata_drill_ok", typ: "gauge", help: "1 if every scenario of the last drill passed.", value: boolValue(rep.OK)},
		{name: "strata_drill_last_run_timestamp_seconds", typ: "gauge", help: "When the last drill ran.", value: float64(rep.Time.UnixNano()) / 1e9},
	}
	for _, sc := range rep.Scenarios {
		l := map[string]string{"scenario": sc.Name}
		ms = append(ms,
			metric{name: "strata_drill_scenario_ok", typ: "gauge", help: "1 if the scenario passed in the last drill.", value: boolValue(sc.OK), labels: l},
			metric{name: "strata_drill_rto_seconds", typ: "gauge", help: "Measured recovery time of the scenario.", value: sc.RTOSeconds, labels: l},
			metric{name: "strata_drill_rpo_seconds", typ: "gauge", help: "Measured data loss window of the scenario.", value: sc.RPOSeconds, labels: l})
	}
	return writeMetrics(path, ms)
}

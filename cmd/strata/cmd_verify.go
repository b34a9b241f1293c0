package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

// verifyFlags are verify's flags, shared with backup --verify.
type verifyFlags struct {
	restoreTo     string
	verifyCmd     string
	maxSlowdown   string
	noRecord      bool
	alertCmd      string
	alertWebhook  string
	notifySuccess bool
	metricsFile   string
}

func (v *verifyFlags) alertSetup(fs *pflag.FlagSet) {
	fs.StringVar(&v.alertCmd, "alert-cmd", "", "on a failed verification run this command (sh -c) with the JSON report on stdin and STRATA_ALERT_* variables")
	fs.StringVar(&v.alertWebhook, "alert-webhook", "", "on a failed verification POST the JSON report to this URL (3 attempts)")
	fs.BoolVar(&v.notifySuccess, "notify-success", false, "alert on a passed verification too")
}

func (v *verifyFlags) setup(fs *pflag.FlagSet) {
	fs.StringVar(&v.restoreTo, "restore-to", "", "test-restore into this directory and keep it (default: a temporary directory, removed)")
	fs.StringVar(&v.verifyCmd, "verify-cmd", "", "also run this command (sh -c) on the restored directory ({dir} or $STRATA_RESTORE_DIR); non-zero fails")
	fs.StringVar(&v.maxSlowdown, "max-slowdown", "50%", "fail when restore throughput is this much below the median of earlier verifications (\"off\" never fails)")
	fs.BoolVar(&v.noRecord, "no-record", false, "do not store the result under verifications/")
	v.alertSetup(fs)
}

func (v *verifyFlags) options() (verify.Options, error) {
	o := verify.Options{RestoreTo: v.restoreTo, VerifyCmd: v.verifyCmd, NoRecord: v.noRecord}
	switch s := strings.TrimSpace(v.maxSlowdown); {
	case s == "off":
		o.MaxSlowdown = -1
	case strings.HasSuffix(s, "%"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || f <= 0 || f >= 100 {
			return o, usagef("--max-slowdown %q: want a percentage between 0 and 100, like 50%%, or off", v.maxSlowdown)
		}
		o.MaxSlowdown = f / 100
	default:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 || f >= 1 {
			return o, usagef("--max-slowdown %q: want a fraction between 0 and 1, a percentage like 50%%, or off", v.maxSlowdown)
		}
		o.MaxSlowdown = f
	}
	return o, nil
}

func newVerifyCommand() *command {
	var v verifyFlags
	return &command{
		name: "verify", args: "[SNAPSHOT]", short: "prove a snapshot restores: integrity, test restore, graph check, RTO",
		long: `Runs a snapshot (default latest) through what a recovery does, in order,
stopping at the first failure (exit 4):

  1. integrity: every pack holding a blob the snapshot needs is read whole
     and hashed, and the log segments its cut replays are authenticated;
  2. restore: a full test restore, at the snapshot's cut;
  3. graph-integrity: the integrity check of the restored graph tiers, then
     --verify-cmd on the restored directory;
  4. throughput: restore speed and the RTO it implies, compared with the
     median of earlier verifications (--max-slowdown).

The result is stored under verifications/ (nothing else is written) and
shown by snapshots. Alerts go to --alert-cmd and --alert-webhook; a failing
alert is a warning and never changes the exit code.`,
		examples: []string{
			"strata verify latest",
			"strata verify latest --alert-cmd 'notify-send backup-broken' --metrics-file /var/lib/node_exporter/strata_verify.prom",
			"strata verify 1a2b3c4d --verify-cmd 'neo4j-admin database check --from-path={dir}' --json",
		},
		setup: func(fs *pflag.FlagSet) {
			v.setup(fs)
			fs.StringVar(&v.metricsFile, "metrics-file", "", "write Prometheus textfile metrics here (node_exporter's textfile collector)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) > 1 {
				return usagef("verify: at most one SNAPSHOT (got %d)", len(args))
			}
			arg := "latest"
			if len(args) == 1 {
				arg = args[0]
			}
			opts, err := v.options()
			if err != nil {
				return err
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				e, err := snapshot.Find(ctx, r, arg, snapshot.Filter{})
				if err != nil {
					return err
				}
				return runVerify(ctx, r, t, e, opts, v)
			})
		},
	}
}

// runVerify verifies e, prints the report, alerts, writes metrics, and
// returns errDamage when a step failed.
func runVerify(ctx context.Context, r *repo.Repository, t *terminal, e snapshot.Entry, opts verify.Options, v verifyFlags) error {
	sp := newStepProgress(t)
	opts.Progress = func(step string) { sp.Step(fmt.Sprintf("verify %s: %s", e.ID.Short(), step)) }
	opts.RestoreProgress = sp
	rep, err := verify.Verify(ctx, r, e, opts)
	sp.Done()
	if err != nil && rep == nil {
		return err
	}
	for _, aerr := range verify.Alert(ctx, rep, verify.AlertOptions{Cmd: v.alertCmd, Webhook: v.alertWebhook, OnSuccess: v.notifySuccess}) {
		t.warnf("%v (the verification result stands)", aerr)
	}
	if v.metricsFile != "" {
		if merr := writeVerifyMetrics(ctx, r, v.metricsFile, rep); merr != nil {
			t.warnf("%v", merr)
		}
	}
	if t.json {
		if jerr := t.printJSON(rep); jerr != nil {
			return jerr
		}
	} else {
		for _, st := range rep.Steps {
			mark := "ok  "
			if !st.OK {
				mark = "FAIL"
			}
			t.printf("%s %-16s %7s  %s\n", mark, st.Name, fmtDuration(st.Seconds), st.Detail)
		}
		if rep.OK {
			t.printf("snapshot %s verified: restores at %s/s, RTO estimate %s\n", e.ID.Short(), fmtBytes(int64(rep.RestoreBytesPerSecond)), fmtDuration(rep.RTOEstimateSeconds))
		}
	}
	if err != nil {
		return err
	}
	if f := rep.Failed(); f != nil {
		return fmt.Errorf("verify snapshot %s: step %s failed: %s: %w", e.ID.Short(), f.Name, f.Detail, errVerifyFailed)
	}
	return nil
}

func writeVerifyMetrics(ctx context.Context, r *repo.Repository, path string, rep *verify.Report) error {
	lastOK := 0.0
	failed := 0.0
	if reps, err := verify.Load(ctx, r); err == nil {
		for _, v := range reps {
			if v.OK {
				lastOK = max(lastOK, float64(v.Time.UnixNano())/1e9)
			} else {
				failed++
			}
		}
	}
	if rep.OK {
		lastOK = max(lastOK, float64(rep.Time.UnixNano())/1e9)
	}
	ms := []metric{
		{name: "strata_verify_ok", typ: "gauge", help: "1 if the last verification passed.", value: boolValue(rep.OK)},
		{name: "strata_verify_last_run_timestamp_seconds", typ: "gauge", help: "When the last verification ran.", value: float64(time.Now().UnixNano()) / 1e9},
		{name: "strata_verify_last_success_timestamp_seconds", typ: "gauge", help: "When a verification last passed (0: never).", value: lastOK},
		{name: "strata_verify_restore_bytes_per_second", typ: "gauge", help: "Restore throughput of the last verification.", value: rep.RestoreBytesPerSecond},
		{name: "strata_verify_rto_estimate_seconds", typ: "gauge", help: "Recovery time the last verification implies.", value: rep.RTOEstimateSeconds},
		{name: "strata_verify_failed_verifications", typ: "gauge", help: "Failed verifications recorded in the repository.", value: failed},
	}
	for _, st := range rep.Steps {
		ms = append(ms, metric{name: "strata_verify_step_ok", typ: "gauge", help: "1 if the step passed in the last verification.", value: boolValue(st.OK), labels: map[string]string{"step": st.Name}},
			metric{name: "strata_verify_step_seconds", typ: "gauge", help: "Duration of the step in the last verification.", value: st.Seconds, labels: map[string]string{"step": st.Name}})
	}
	return writeMetrics(path, ms)
}

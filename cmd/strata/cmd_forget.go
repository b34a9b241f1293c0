package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/prune"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

type forgetOptions struct {
	last, hourly, daily, weekly, monthly, yearly int

	within, withinHourly, withinDaily, withinWeekly, withinMonthly, withinYearly string

	keepTags   []string
	keepOplog  string
	groupBy    string
	hosts      []string
	tags       []string
	paths      []string
	dryRun     bool
	prune      bool
	removeAll  bool
	pruneFlags pruneFlags
}

func newForgetCommand() *command {
	var o forgetOptions
	return &command{
		name: "forget", args: "[flags] [SNAPSHOT...]", short: "remove snapshots by a retention policy (restic's rules)",
		long: `
Snapshots are split into groups (--group-by, default host,paths; a tier
counts as a path "tier:NAME", and "tiers" groups by tiers alone), and the
--keep-* rules are applied to each group as restic's forget does: every
snapshot some rule keeps stays, the rest are removed. Counts take -1 for
unlimited. Durations are restic's: 1y2m3d4h, measured back from the newest
snapshot of the group. Buckets use the zone each snapshot time was recorded in.

--keep-oplog DUR sets the point-in-time-recovery window, stored in the
repository and honoured by every later forget and prune until changed:
every snapshot needed to restore any second of the last DUR of the log
(counted back from the newest mutation, not from now) is kept whatever the
other rules say. Without other rules it only stores the window.

Snapshot ids given as arguments are removed (no rule applies). Removal
writes one deletion record (deletions/) first, then removes the snapshot
documents; the data they used stays until 'strata prune'.`,
		examples: []string{
			"strata forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run",
			"strata forget --keep-within 30d --keep-oplog 168h",
			"strata forget --keep-last 3 --group-by host,tiers --json",
			"strata forget 6f1c2e9a",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.IntVarP(&o.last, "keep-last", "l", 0, "keep the newest n snapshots (-1: all)")
			fs.IntVarP(&o.hourly, "keep-hourly", "H", 0, "keep the newest snapshot of each of the last n hours (-1: every hour)")
			fs.IntVarP(&o.daily, "keep-daily", "d", 0, "keep the newest snapshot of each of the last n days (-1: every day)")
			fs.IntVarP(&o.weekly, "keep-weekly", "w", 0, "keep the newest snapshot of each of the last n ISO weeks (-1: every week)")
			fs.IntVarP(&o.monthly, "keep-monthly", "m", 0, "keep the newest snapshot of each of the last n months (-1: every month)")
			fs.IntVarP(&o.yearly, "keep-yearly", "y", 0, "keep the newest snapshot of each of the last n years (-1: every year)")
			fs.StringVar(&o.within, "keep-within", "", "keep snapshots newer than DURATION (e.g. 1y5m7d2h) before the newest snapshot")
			fs.StringVar(&o.withinHourly, "keep-within-hourly", "", "keep hourly snapshots newer than DURATION before the newest snapshot")
			fs.StringVar(&o.withinDaily, "keep-within-daily", "", "keep daily snapshots newer than DURATION before the newest snapshot")
			fs.StringVar(&o.withinWeekly, "keep-within-weekly", "", "keep weekly snapshots newer than DURATION before the newest snapshot")
			fs.StringVar(&o.withinMonthly, "keep-within-monthly", "", "keep monthly snapshots newer than DURATION before the newest snapshot")
			fs.StringVar(&o.withinYearly, "keep-within-yearly", "", "keep yearly snapshots newer than DURATION before the newest snapshot")
			fs.StringArrayVar(&o.keepTags, "keep-tag", nil, "keep snapshots with these tags (\"a,b\": both; repeat for either)")
			fs.StringVar(&o.keepOplog, "keep-oplog", "", "set the PITR window (e.g. 168h, 7d; 0 removes it): stored, honoured by later runs")
			fs.StringVarP(&o.groupBy, "group-by", "g", "host,paths", "group snapshots by host, paths, tags and/or tiers, comma-separated ('' for one group)")
			fs.StringArrayVar(&o.hosts, "host", nil, "only consider snapshots of this host (repeatable)")
			fs.StringArrayVar(&o.tags, "tag", nil, "only consider snapshots with these tags (\"a,b\": both; repeat for either)")
			fs.StringArrayVar(&o.paths, "path", nil, "only consider snapshots including this path (repeatable)")
			fs.BoolVarP(&o.dryRun, "dry-run", "n", false, "print what would be removed and change nothing")
			fs.BoolVar(&o.prune, "prune", false, "run prune afterwards when snapshots were removed (with prune's --max-unused and --margin)")
			o.pruneFlags.setup(fs, false)
			fs.BoolVar(&o.removeAll, "unsafe-allow-remove-all", false, "without keep rules, remove every selected snapshot (the PITR window still applies)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			return runForget(ctx, g, t, o, args)
		},
	}
}

// policy builds the retention policy from the flags (usage errors: exit 2).
func (o forgetOptions) policy() (prune.Policy, error) {
	p := prune.Policy{Last: o.last, Hourly: o.hourly, Daily: o.daily, Weekly: o.weekly, Monthly: o.monthly, Yearly: o.yearly}
	for _, d := range []struct {
		flag, val string
		dst       *prune.Duration
	}{
		{"--keep-within", o.within, &p.Within}, {"--keep-within-hourly", o.withinHourly, &p.WithinHourly},
		{"--keep-within-daily", o.withinDaily, &p.WithinDaily}, {"--keep-within-weekly", o.withinWeekly, &p.WithinWeekly},
		{"--keep-within-monthly", o.withinMonthly, &p.WithinMonthly}, {"--keep-within-yearly", o.withinYearly, &p.WithinYearly},
	} {
		if d.val == "" {
			continue
		}
		v, err := prune.ParseDuration(d.val)
		if err != nil {
			return p, usagef("forget: %s: %v", d.flag, err)
		}
		*d.dst = v
	}
	for _, tl := range o.keepTags {
		p.Tags = append(p.Tags, prune.ParseTagList(tl))
	}
	if err := p.Validate(); err != nil {
		return p, usagef("forget: %v", err)
	}
	return p, nil
}

func runForget(ctx context.Context, g *globals, t *terminal, o forgetOptions, args []string) error {
	pol, err := o.policy()
	if err != nil {
		return err
	}
	by, err := prune.ParseGroupBy(o.groupBy)
	if err != nil {
		return usagef("forget: %v", err)
	}
	opts := prune.ForgetOptions{Policy: pol, GroupBy: by, AllowRemoveAll: o.removeAll,
		Filter: snapshot.Filter{Hosts: o.hosts, Tags: o.tags, Paths: o.paths}}
	if o.keepOplog != "" {
		d, err := prune.ParseWindowDuration(o.keepOplog)
		if err != nil {
			return usagef("forget: %v", err)
		}
		opts.KeepOplog = &d
	}
	switch {
	case len(args) > 0 && !pol.Empty():
		return usagef("forget: give snapshot ids or --keep-* rules, not both")
	case len(args) == 0 && pol.Empty() && opts.KeepOplog == nil && !o.removeAll:
		return usagef("forget: no keep rule given (--keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within*, --keep-tag), and no snapshot named; nothing to do (--unsafe-allow-remove-all removes every selected snapshot)")
	}
	popts, err := o.pruneFlags.options()
	if err != nil {
		return err
	}
	return g.withRepo(ctx, t, func(r *repo.Repository) error {
		for _, a := range args {
			e, err := snapshot.Find(ctx, r, a, opts.Filter)
			if err != nil {
				return err
			}
			opts.IDs = append(opts.IDs, e.ID)
		}
		plan, err := prune.PlanForget(ctx, r, opts)
		if errors.Is(err, prune.ErrNoRule) {
			return usagef("%v", err)
		}
		if err != nil {
			return err
		}
		var res prune.ForgetResult
		if !o.dryRun {
			if res, err = plan.Execute(ctx, r); err != nil {
				return err
			}
		}
		if t.json {
			if err := t.printJSON(forgetJSON(plan)); err != nil {
				return err
			}
		} else {
			printForget(t, plan, res, o.dryRun)
		}
		if o.prune && !o.dryRun {
			// With --json, prune's object follows forget's array.
			if err := runPrune(ctx, r, t, popts); err != nil {
				return err
			}
			return o.pruneFlags.syncMirrors(ctx, r, t)
		}
		return nil
	})
}

// forgetJSON is restic's forget JSON: one object per group, the group key
// at the top level. keep, remove and reasons are arrays even when empty.
func forgetJSON(plan *prune.ForgetPlan) []map[string]any {
	out := make([]map[string]any, 0, len(plan.Groups))
	for _, g := range plan.Groups {
		reasons := make([]map[string]any, 0, len(g.Reasons))
		for _, rs := range g.Reasons {
			reasons = append(reasons, map[string]any{"snapshot": snapshotJSON(rs.Snapshot), "matches": rs.Matches, "counters": rs.Counters})
		}
		out = append(out, map[string]any{
			"host": g.Key.Host, "tags": g.Key.Tags, "paths": g.Key.Paths,
			"keep": entriesJSON(g.Keep), "remove": entriesJSON(g.Remove), "reasons": reasons,
		})
	}
	return out
}

func entriesJSON(list []snapshot.Entry) []map[string]any {
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		out = append(out, snapshotJSON(e))
	}
	return out
}

// printForget prints the plan as restic does: the policy, then per group a
// table of the snapshots kept (with reasons) and one of those removed.
func printForget(t *terminal, plan *prune.ForgetPlan, res prune.ForgetResult, dryRun bool) {
	if t.quiet {
		return
	}
	var b strings.Builder
	if !plan.Explicit && !plan.Policy.Empty() {
		fmt.Fprintf(&b, "Applying Policy: %s\n", plan.Policy)
	}
	if w := plan.Window; w != nil {
		base := "no snapshot with a cut before it: every cut snapshot is kept"
		if w.HasBase {
			base = "base snapshot " + w.Base.Short()
		}
		fmt.Fprintf(&b, "PITR window: %s back from the newest mutation (%s), from %s; %s; %d snapshots needed\n",
			prune.FormatWindowDuration(w.Keep), w.Newest.Local().Format(time.RFC3339), w.Start.Local().Format(time.RFC3339), base, len(w.Snapshots))
	} else if plan.KeepOplog > 0 {
		fmt.Fprintf(&b, "PITR window: %s (no log records yet: nothing to keep for it)\n", prune.FormatWindowDuration(plan.KeepOplog))
	}
	for _, g := range plan.Groups {
		if k := g.Key.String(); k != "" {
			fmt.Fprintf(&b, "snapshots for (%s):\n", k)
		}
		if len(g.Keep) > 0 {
			fmt.Fprintf(&b, "keep %d snapshots:\n", len(g.Keep))
			reasons := map[chunk.ID][]string{}
			for _, rs := range g.Reasons {
				reasons[rs.Snapshot.ID] = rs.Matches
			}
			forgetTable(&b, g.Keep, reasons)
			b.WriteString("\n")
		}
		if len(g.Remove) > 0 {
			fmt.Fprintf(&b, "remove %d snapshots:\n", len(g.Remove))
			forgetTable(&b, g.Remove, nil)
			b.WriteString("\n")
		}
	}
	switch {
	case dryRun && len(plan.Remove) > 0:
		fmt.Fprintf(&b, "would remove %d snapshots (dry run: nothing changed)\n", len(plan.Remove))
	case dryRun:
		b.WriteString("nothing to remove (dry run)\n")
	case res.HasDeletion:
		fmt.Fprintf(&b, "removed %d snapshots (deletion record %s); run 'strata prune' to free their data\n", res.Removed, res.Deletion.Short())
	default:
		b.WriteString("nothing to remove\n")
	}
	if dryRun && plan.SavePolicy {
		fmt.Fprintf(&b, "would store the PITR window %s\n", prune.FormatWindowDuration(plan.KeepOplog))
	} else if res.PolicySaved && plan.KeepOplog == 0 {
		b.WriteString("the PITR window is off now (stored: later forget and prune runs keep no window)\n")
	} else if res.PolicySaved {
		fmt.Fprintf(&b, "stored the PITR window %s: later forget and prune runs honour it\n", prune.FormatWindowDuration(plan.KeepOplog))
	}
	t.printf("%s", b.String())
}

// forgetTable prints snapshots oldest first, with their reasons (one per
// line) when reasons is set.
func forgetTable(w io.Writer, list []snapshot.Entry, reasons map[chunk.ID][]string) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	if reasons != nil {
		fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tReasons\tPaths")
	} else {
		fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tPaths")
	}
	for i := len(list) - 1; i >= 0; i-- {
		e := list[i]
		row := []string{e.ID.Short(), e.Time.Local().Format("2006-01-02 15:04:05"), e.Hostname, strings.Join(e.Tags, ",")}
		if reasons == nil {
			fmt.Fprintln(tw, strings.Join(append(row, strings.Join(e.Paths, ",")), "\t"))
			continue
		}
		rs := reasons[e.ID]
		first := ""
		if len(rs) > 0 {
			first = rs[0]
		}
		fmt.Fprintln(tw, strings.Join(append(row, first, strings.Join(e.Paths, ",")), "\t"))
		for _, more := range rs[min(1, len(rs)):] {
			fmt.Fprintf(tw, "\t\t\t\t%s\t\n", more)
		}
	}
	fmt.Fprintf(tw, "%d snapshots\n", len(list))
	tw.Flush()
}

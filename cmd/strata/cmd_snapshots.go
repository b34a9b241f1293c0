package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

type snapshotsOptions struct {
	tags   []string
	hosts  []string
	paths  []string
	latest int
}

func newSnapshotsCommand() *command {
	var o snapshotsOptions
	return &command{
		name: "snapshots", args: "[flags] [SNAPSHOT...]", short: "list snapshots",
		examples: []string{
			"strata snapshots",
			"strata snapshots --tag nightly --latest 3",
			"strata snapshots --json | jq '.[].short_id'",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.StringArrayVar(&o.tags, "tag", nil, "only snapshots with these tags (\"a,b\": both; repeat for either)")
			fs.StringArrayVar(&o.hosts, "host", nil, "only snapshots of this host (repeatable)")
			fs.StringArrayVar(&o.paths, "path", nil, "only snapshots including this path (repeatable)")
			fs.IntVar(&o.latest, "latest", 0, "only the newest N snapshots of each host and paths")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			return g.withRepo(ctx, t, func(r *repo.Repository) error { return runSnapshots(ctx, r, t, o, args) })
		},
	}
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runSnapshots(ctx context.Context, r *repo.Repository, t *terminal, o snapshotsOptions, args []string) error {
	var list []snapshot.Entry
	if len(args) > 0 {
		for _, a := range args {
			e, err := snapshot.Find(ctx, r, a, snapshot.Filter{})
			if err != nil {
				return err
			}
			list = append(list, e)
		}
	} else {
		all, err := snapshot.List(ctx, r)
		if err != nil {
			return err
		}
		f := snapshot.Filter{Hosts: o.hosts, Tags: o.tags, Paths: o.paths}
		for _, e := range all {
			if f.Match(e.Snapshot) {
				list = append(list, e)
			}
		}
		if o.latest > 0 {
			list = latestPerGroup(list, o.latest)
		}
	}
	verified, err := verify.Latest(ctx, r)
	if err != nil {
		return err
	}
	if t.json {
		out := make([]map[string]any, 0, len(list))
		for _, e := range list {
			m := snapshotJSON(e)
			if v := verified[e.ID.String()]; v != nil {
				m["verified"] = map[string]any{"time": v.Time.Format(time.RFC3339Nano), "ok": v.OK, "rto_estimate_seconds": v.RTOEstimateSeconds}
			}
			out = append(out, m)
		}
		return t.printJSON(out)
	}
	tw := tabwriter.NewWriter(t.stdout, 0, 2, 2, ' ', 0)
	if !t.quiet {
		fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tPaths\tTiers\tSize\tVerified")
		fmt.Fprintln(tw, "--\t----\t----\t----\t-----\t-----\t----\t--------")
		for _, e := range list {
			size := ""
			if e.Summary != nil {
				size = fmtBytes(e.Summary.BytesProcessed)
			}
			mark := ""
			if len(e.Incomplete) > 0 {
				mark = " (incomplete)"
			}
			var paths, tiers []string
			for _, p := range e.Paths {
				if !strings.HasPrefix(p, "tier:") {
					paths = append(paths, p)
				}
			}
			for _, tr := range e.Tiers {
				if tr.Format == snapshot.FormatGraph {
					approx := ""
					if tr.CountsFrom != "" {
						approx = "~" // the base's counts (synthesized)
					}
					tiers = append(tiers, fmt.Sprintf("%s(%s%d nodes, %s%d rels)", tr.Name, approx, tr.Nodes, approx, tr.Relationships))
				} else {
					tiers = append(tiers, tr.Name+"(files)")
				}
			}
			ver := ""
			if v := verified[e.ID.String()]; v != nil {
				ver = "FAILED " + v.Time.Local().Format("01-02 15:04")
				if v.OK {
					ver = "ok " + v.Time.Local().Format("01-02 15:04") + ", RTO " + fmtDuration(v.RTOEstimateSeconds)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s%s\t%s\n", e.ID.Short(), e.Time.Local().Format("2006-01-02 15:04:05"),
				e.Hostname, strings.Join(e.Tags, ","), strings.Join(paths, ","), strings.Join(tiers, " "), size, mark, ver)
		}
		fmt.Fprintf(tw, "%d snapshots\n", len(list))
	}
	return tw.Flush()
}

// latestPerGroup keeps the newest n snapshots of each host and path set.
func latestPerGroup(list []snapshot.Entry, n int) []snapshot.Entry {
	count := map[string]int{}
	keep := make([]bool, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		k := list[i].Hostname + "\x00" + strings.Join(list[i].Paths, "\x00")
		if count[k] < n {
			count[k]++
			keep[i] = true
		}
	}
	var out []snapshot.Entry
	for i, e := range list {
		if keep[i] {
			out = append(out, e)
		}
	}
	return out
}

// snapshotJSON is a snapshot as every command prints it (docs/json.md).
func snapshotJSON(e snapshot.Entry) map[string]any {
	tags, paths := e.Tags, e.Paths
	if tags == nil {
		tags = []string{}
	}
	if paths == nil {
		paths = []string{}
	}
	m := map[string]any{
		"id": e.ID.String(), "short_id": e.ID.Short(), "time": e.Time.Format(time.RFC3339Nano),
		"hostname": e.Hostname, "username": e.Username, "tags": tags, "paths": paths,
		"tiers": tiersJSON(e.Tiers), "program_version": e.Program,
	}
	if e.Tree != nil {
		m["tree"] = e.Tree.String()
	}
	if e.Parent != nil {
		m["parent"] = e.Parent.String()
	}
	if e.Cut != nil {
		m["cut"] = map[string]any{"generation": e.Cut.Generation, "lsn_start": e.Cut.LSNStart, "lsn_end": e.Cut.LSNEnd, "checked": e.Cut.Checked}
	}
	if e.Synthesized != nil {
		m["synthesized"] = e.Synthesized
	}
	if len(e.Incomplete) > 0 {
		m["incomplete"] = e.Incomplete
	}
	if e.Summary != nil {
		m["summary"] = e.Summary
	}
	return m
}

func tiersJSON(tiers []snapshot.Tier) []map[string]any {
	out := make([]map[string]any, 0, len(tiers))
	for _, tr := range tiers {
		t := map[string]any{"name": tr.Name, "format": tr.Format, "bytes": tr.Bytes,
			"nodes": tr.Nodes, "relationships": tr.Relationships, "layers": len(tr.Layers)}
		if tr.CountsFrom != "" {
			t["counts_from"] = tr.CountsFrom
		}
		out = append(out, t)
	}
	return out
}

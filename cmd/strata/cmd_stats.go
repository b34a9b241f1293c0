package main

import (
	"context"
	"sort"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

func newStatsCommand() *command {
	return &command{
		name: "stats", args: "[SNAPSHOT]", short: "counts per tier, label and relationship type",
		examples: []string{"strata stats latest", "strata stats 1a2b3c4d --json"},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) > 1 {
				return usagef("stats: want at most one SNAPSHOT")
			}
			arg := "latest"
			if len(args) == 1 {
				arg = args[0]
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				e, err := snapshot.Find(ctx, r, arg, snapshot.Filter{})
				if err != nil {
					return err
				}
				return printStats(t, e)
			})
		},
	}
}

func printStats(t *terminal, e snapshot.Entry) error {
	if t.json {
		tiers := make([]map[string]any, 0, len(e.Tiers))
		for _, tr := range e.Tiers {
			m := map[string]any{"name": tr.Name, "format": tr.Format, "bytes": tr.Bytes, "nodes": tr.Nodes,
				"relationships": tr.Relationships, "layers": len(tr.Layers), "labels": map[string]int64{}, "types": map[string]int64{}}
			if tr.Stats != nil && tr.Stats.Labels != nil {
				m["labels"] = tr.Stats.Labels
			}
			if tr.Stats != nil && tr.Stats.Types != nil {
				m["types"] = tr.Stats.Types
			}
			tiers = append(tiers, m)
		}
		out := map[string]any{"snapshot_id": e.ID.String(), "tiers": tiers}
		if e.Summary != nil {
			out["bytes_processed"] = e.Summary.BytesProcessed
		}
		return t.printJSON(out)
	}
	t.printf("snapshot %s (%s)\n", e.ID.Short(), e.Time.Local().Format("2006-01-02 15:04:05"))
	for _, tr := range e.Tiers {
		t.printf("tier %s (%s): %s", tr.Name, tr.Format, fmtBytes(tr.Bytes))
		if tr.Format != snapshot.FormatGraph {
			t.printf("\n")
			continue
		}
		t.printf(", %d nodes, %d relationships, %d layers\n", tr.Nodes, tr.Relationships, len(tr.Layers))
		if tr.Stats == nil {
			continue
		}
		for _, l := range sortedKeys(tr.Stats.Labels) {
			t.printf("  label %-24s %d\n", l, tr.Stats.Labels[l])
		}
		for _, ty := range sortedKeys(tr.Stats.Types) {
			t.printf("  type  %-24s %d\n", ty, tr.Stats.Types[ty])
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

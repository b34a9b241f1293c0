package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/graph"
)

func newGraphCommand() *command {
	var sortMemory string
	check := &command{
		name: "check", args: "[flags] FILE...", short: "check graph JSON Lines files without a repository", noRepo: true,
		long: `Checks tier files together, as backup does: every line well-formed, no node
or relationship id defined twice (within or across files), every
relationship's start and end a node in one of the files. Check all tiers of
a graph at once: one tier alone has dangling cross-tier relationships by
design. Each problem is listed with its tier (the file name without .jsonl),
line and id; exit code 4 when there is any. Memory stays bounded
(--sort-memory): the check is a merge join over sorted spill files.`,
		examples: []string{"strata graph check /exports/*.jsonl", "strata graph check fast.jsonl warm.jsonl cold.jsonl --json"},
		setup: func(fs *pflag.FlagSet) {
			fs.StringVar(&sortMemory, "sort-memory", "128MiB", "memory for the check (spills to disk beyond it)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) == 0 {
				return usagef("graph check: give one or more tier files")
			}
			mem, err := parseSize(sortMemory)
			if err != nil || mem < 1<<20 {
				return usagef("graph check: --sort-memory %q: want a size of at least 1MiB", sortMemory)
			}
			return runGraphCheck(ctx, t, args, mem)
		},
	}
	return &command{name: "graph", short: "work with graph JSON Lines files", subs: []*command{check}, noRepo: true}
}

func runGraphCheck(ctx context.Context, t *terminal, files []string, mem int64) error {
	tmp, err := os.MkdirTemp("", "strata-check-")
	if err != nil {
		return fmt.Errorf("graph check: %w", err)
	}
	defer os.RemoveAll(tmp)
	checker := graph.NewChecker(mem, tmp)
	defer checker.Close()
	seen := map[string]string{}
	for _, f := range files {
		tier := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".jsonl"), ".ndjson")
		if prev, ok := seen[tier]; ok {
			return usagef("graph check: %s and %s both name tier %q", prev, f, tier)
		}
		seen[tier] = f
		if err := checkFile(ctx, checker, f, tier); err != nil {
			return err
		}
	}
	report, err := checker.Finish()
	if err != nil {
		return fmt.Errorf("graph check: %w", err)
	}
	if t.json {
		if err := t.printJSON(report); err != nil {
			return err
		}
	} else {
		for _, name := range sortedKeys(report.Stats.Tiers) {
			st := report.Stats.Tiers[name]
			t.printf("tier %s: %d nodes, %d relationships\n", name, st.Nodes, st.Relationships)
		}
		printProblems(t, report)
		if report.OK {
			t.printf("ok: %d nodes, %d relationships, no problems\n", report.Stats.Total.Nodes, report.Stats.Total.Relationships)
		}
	}
	if !report.OK {
		return fmt.Errorf("graph check: %d problems: %w", report.ProblemCount, errExportDamage)
	}
	return nil
}

// checkFile feeds one file to the checker. A malformed line is a problem
// like any other (reported with its line), not the end of the check.
func checkFile(ctx context.Context, c *graph.Checker, name, tier string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("graph check: %w", err)
	}
	defer f.Close()
	rd := graph.NewReader(f, tier)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var se *graph.SyntaxError
		if errors.As(err, &se) {
			c.Malformed(tier, se.Line, se.Reason)
			continue
		}
		if err != nil {
			return fmt.Errorf("graph check: read %s: %w", name, err)
		}
		if err := c.Add(tier, rd.Line(), rec); err != nil {
			return fmt.Errorf("graph check: %w", err)
		}
	}
}

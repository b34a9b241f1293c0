package main

import (
	"bufio"
	"context"
	"fmt"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

func newDumpCommand() *command {
	return &command{
		name: "dump", args: "SNAPSHOT PATH", short: "write a file from a snapshot to stdout (a directory as tar)",
		examples: []string{"strata dump latest mydb.sql | psql", "strata dump latest /var/lib/graph/export > export.tar"},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("dump", args, 2, "SNAPSHOT PATH"); err != nil {
				return err
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				e, err := snapshot.Find(ctx, r, args[0], snapshot.Filter{})
				if err != nil {
					return err
				}
				w := bufio.NewWriterSize(t.stdout, 1<<20)
				if err := snapshot.Dump(ctx, r, e.Snapshot, args[1], w); err != nil {
					return err
				}
				if err := w.Flush(); err != nil {
					return fmt.Errorf("write output: %w", err)
				}
				return nil
			})
		},
	}
}

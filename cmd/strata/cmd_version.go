package main

import (
	"context"
	"runtime"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

func newVersionCommand() *command {
	return &command{
		name: "version", args: "", short: "print the version", noRepo: true,
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if t.json {
				return t.printJSON(map[string]any{"version": snapshot.ProgramVersion, "repository_format": repo.FormatVersion,
					"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH})
			}
			t.printf("%s (repository format %d) %s %s/%s\n", snapshot.ProgramVersion, repo.FormatVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

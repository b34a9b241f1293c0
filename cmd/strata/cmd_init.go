package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
)

type initOptions struct {
	packSize    int
	compression string
	fromRepo    string
}

func newInitCommand() *command {
	var o initOptions
	return &command{
		name: "init", args: "[flags]", short: "create a new repository",
		long: `Creates an encrypted repository at -r/--repo (or STRATA_REPOSITORY): a local
path, or an s3://, gs://, azblob://, file:// or mem:// URL. The password comes
from STRATA_PASSWORD, --password-file or --password-command, or is asked for
on a terminal. Keep it safe: without it the backups cannot be read.

With --from-repo URL the new repository is a replica of the one at URL: its
key files and config are copied byte for byte (same repository id, same
passwords), ready for 'strata mirror --to' to fill. The password given opens
the repository at URL; the target must be empty.`,
		examples: []string{
			"strata init -r /srv/backup",
			"STRATA_REPOSITORY='s3://bucket/graph?region=eu-west-1' strata init",
			"strata init -r 's3://offsite/graph?region=eu-west-1' --from-repo /srv/backup",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.IntVar(&o.packSize, "pack-size", repo.DefaultPackSize>>20, "target pack size in MiB")
			fs.StringVar(&o.compression, "compression", repo.CompressionAuto, "compression: auto (zstd fastest), max or off")
			fs.StringVar(&o.fromRepo, "from-repo", "", "make a replica of the repository at this location (same config and keys), for a mirror")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("init", args, 0, "no arguments"); err != nil {
				return err
			}
			if o.fromRepo != "" {
				return runInitFromRepo(ctx, g, t, o)
			}
			return runInit(ctx, g, t, o)
		},
	}
}

func runInit(ctx context.Context, g *globals, t *terminal, o initOptions) error {
	loc, err := g.location()
	if err != nil {
		return err
	}
	if o.packSize < 1 || o.packSize > 1024 {
		return usagef("init: --pack-size %d outside 1..1024 MiB", o.packSize)
	}
	shown := backend.Redact(loc)
	// Ask first: a missing password must not leave an empty directory.
	pw, err := g.password(t, "new repository password: ", true)
	if err != nil {
		return err
	}
	be, err := backend.Create(ctx, loc)
	if err != nil {
		return fmt.Errorf("init repository %s: %w", shown, err)
	}
	defer be.Close()
	if _, err := be.Stat(ctx, "config"); err == nil {
		return fmt.Errorf("init repository %s: %w", shown, repo.ErrAlreadyInitialized)
	} else if !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("init repository %s: %w", shown, err)
	}
	r, err := repo.Init(ctx, be, pw, repo.InitOptions{PackSize: o.packSize << 20, Compression: o.compression}, g.repoOptions())
	if err != nil {
		return err
	}
	defer r.Close()
	cfg := r.Config()
	if t.json {
		return t.printJSON(map[string]any{"message_type": "initialized", "id": cfg.ID, "repository": backend.Location(be)})
	}
	t.printf("created strata repository %s at %s\n", cfg.ID[:10], backend.Location(be))
	t.printf("Keep the password safe: without it the data in the repository cannot be read.\n")
	return nil
}

// runInitFromRepo creates a replica of the repository at o.fromRepo at -r.
func runInitFromRepo(ctx context.Context, g *globals, t *terminal, o initOptions) error {
	loc, err := g.location()
	if err != nil {
		return err
	}
	if o.packSize != repo.DefaultPackSize>>20 || o.compression != repo.CompressionAuto {
		return usagef("init: --pack-size and --compression cannot be combined with --from-repo (a replica has its source's config)")
	}
	shown := backend.Redact(loc)
	// The source first: a wrong password or location must not leave an
	// empty directory behind.
	src := *g
	src.repo = o.fromRepo
	r, err := src.openRepo(ctx, t)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	defer r.Close()
	be, err := backend.Create(ctx, loc)
	if err != nil {
		return fmt.Errorf("init repository %s: %w", shown, err)
	}
	defer be.Close()
	if _, _, err := repo.InitReplica(ctx, r, be); err != nil {
		return fmt.Errorf("init repository %s as a replica of %s: %w", shown, backend.Redact(o.fromRepo), err)
	}
	id := r.Config().ID
	if t.json {
		return t.printJSON(map[string]any{"message_type": "initialized", "id": id, "repository": backend.Location(be), "from_repo": backend.Location(r.Backend())})
	}
	t.printf("created strata repository %s at %s as a replica of %s\n", id[:10], backend.Location(be), backend.Location(r.Backend()))
	t.printf("It opens with the same passwords; fill it with 'strata mirror --to'.\n")
	return nil
}

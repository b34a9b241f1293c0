package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/repo"
)

type repairOptions struct {
	from   string
	dryRun bool
}

func newRepairCommand() *command {
	var o repairOptions
	return &command{
		name: "repair", args: "--from URL [flags]", short: "replace missing or corrupt objects from a mirror",
		long: `Runs 'check --read-data', then copies every missing or corrupt object back from
the mirror at --from, which must be a replica of this repository (made by
'strata mirror'). Objects are named by the hash of their bytes, so the mirror
holds exactly the bytes each name demands: every copy is checked against its
name before it is written, and a corrupt object is replaced by it. Objects the
mirror holds and the repository lacks (a deleted pack, index object, snapshot or
log segment) are copied back too, except what a deletion record removed on
purpose (forget, prune, oplog compaction, key removal), verification and drill
records, and heartbeats a newer one replaced.

Afterwards check --read-data runs again. What cannot be repaired (the mirror
lacks it or holds it damaged too, or check still finds it) is listed and the
exit code is 4. --dry-run lists what would be repaired and writes nothing; it
exits 4 only when something could not be repaired.
Repair holds the prune lease while it writes.`,
		examples: []string{
			"strata repair --from 's3://offsite/graph?region=eu-west-1'",
			"strata repair --from /mnt/usb/graph --dry-run",
			"strata repair --from /mnt/usb/graph --json",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.StringVar(&o.from, "from", "", "the mirror: a path or an s3://, gs://, azblob://, file:// URL (required)")
			fs.BoolVar(&o.dryRun, "dry-run", false, "list what would be repaired; change nothing")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) > 0 {
				return usagef("repair: unexpected argument %q (the mirror goes in --from)", args[0])
			}
			if o.from == "" {
				return usagef("repair: --from URL is required")
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error { return runRepair(ctx, r, t, o) })
		},
	}
}

func runRepair(ctx context.Context, r *repo.Repository, t *terminal, o repairOptions) error {
	src, closeSrc, err := openMirror(ctx, mirrorFlags{to: o.from}, false)
	if err != nil {
		return err
	}
	defer closeSrc()
	where := backend.Location(src)
	opts := mirror.RepairOptions{DryRun: o.dryRun}
	progress := newCheckProgress(t)
	opts.Check.Progress = progress
	res, err := mirror.Repair(ctx, r, src, opts)
	progress.End()
	if err != nil {
		return err
	}
	if t.json {
		if err := t.printJSON(res); err != nil {
			return err
		}
	} else {
		verb := "repaired"
		if o.dryRun {
			verb = "would repair"
		}
		for _, x := range res.Repaired {
			t.printf("%s %s (%s)\n", verb, x.Object, x.Kind)
		}
		// What stays damaged is the result: printed even with -q.
		for _, u := range res.Unrepairable {
			fmt.Fprintf(t.stdout, "unrepairable: %s: %s: %s\n", u.Object, u.Kind, u.Detail)
		}
		switch {
		case o.dryRun:
			t.printf("dry run: would repair %d objects from %s, %d unrepairable; nothing was changed\n", len(res.Repaired), where, len(res.Unrepairable))
		case len(res.Repaired) == 0 && res.OK:
			t.printf("nothing to repair: check --read-data found no problems and %s holds nothing the repository lacks\n", where)
		default:
			t.printf("repaired %d objects from %s, %d unrepairable\n", len(res.Repaired), where, len(res.Unrepairable))
			if res.CheckOK {
				t.printf("check --read-data: no problems found\n")
			} else {
				t.printf("check --read-data: damage remains\n")
			}
		}
	}
	switch {
	case o.dryRun && len(res.Unrepairable) > 0:
		return fmt.Errorf("repair: %d problems cannot be repaired from %s: %w", len(res.Unrepairable), where, errRepoDamage)
	case !o.dryRun && !res.OK:
		return fmt.Errorf("repair: %d problems remain: %w", len(res.Unrepairable), errRepoDamage)
	}
	return nil
}

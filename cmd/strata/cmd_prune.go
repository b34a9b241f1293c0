package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/prune"
	"github.com/strata-backup/strata/repo"
)

// pruneFlags are prune's flags, shared with forget --prune.
type pruneFlags struct {
	dryRun    bool
	maxUnused string
	margin    time.Duration
	keepOplog string
	mirrors   []string
	delay     days
}

func (p *pruneFlags) setup(fs *pflag.FlagSet, alone bool) {
	if alone {
		fs.BoolVar(&p.dryRun, "dry-run", false, "print the plan and change nothing")
		fs.StringVar(&p.keepOplog, "keep-oplog", "", "store the PITR window (e.g. 7d) as repository policy; every later forget and prune honours it (0: none)")
	}
	fs.StringVar(&p.maxUnused, "max-unused", "5%", "tolerate this share of unused bytes in partly used packs before repacking them")
	fs.DurationVar(&p.margin, "margin", prune.DefaultMargin, "delete what an earlier prune marked only once the mark is this old (by the store's clock)")
	fs.StringArrayVar(&p.mirrors, "mirror", nil, "then bring this mirror up to date: copy what is new, follow the deletion records older than --delete-delay (repeatable)")
	p.delay = days(mirror.DefaultDeleteDelay)
	fs.Var(&p.delay, "delete-delay", "with --mirror: follow a deletion record only once it is this old")
}

// syncMirrors runs a mirror pass to each --mirror after a prune.
func (p *pruneFlags) syncMirrors(ctx context.Context, r *repo.Repository, t *terminal) error {
	for _, url := range p.mirrors {
		f := mirrorFlags{to: url, deleteDelay: p.delay, lockMode: mirror.LockCompliance}
		opts, err := f.options()
		if err != nil {
			return err
		}
		if err := runMirror(ctx, r, t, f, opts); err != nil {
			return err
		}
	}
	return nil
}

func (p *pruneFlags) options() (prune.Options, error) {
	s := strings.TrimSuffix(strings.TrimSpace(p.maxUnused), "%")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f >= 100 {
		return prune.Options{}, usagef("--max-unused %q: want a percentage between 0 and 100, like 5%%", p.maxUnused)
	}
	if p.margin < 0 {
		return prune.Options{}, usagef("--margin %s: want a duration of 0 or more", p.margin)
	}
	return prune.Options{DryRun: p.dryRun, MaxUnused: f / 100, Margin: p.margin}, nil
}

func newPruneCommand() *command {
	var p pruneFlags
	return &command{
		name: "prune", args: "[flags]", short: "remove data no snapshot needs, in two phases",
		long: `Removes what no snapshot needs (SPEC section 8), never what a running
backup may still use: phase one marks unused packs (and partly used packs
beyond --max-unused, after copying their live blobs into new packs) with a
deletion record; phase two deletes marked packs that are still unneeded, whose
mark is older than --margin by the store's clock, and that no backup which
began before the mark can still use. So a pack marked today is deleted by a
prune after the margin (with --margin 0, by this one when no backup runs).
The index is rewritten without the deleted packs, and log segments before
every snapshot's cut and the PITR window are removed. Mirrors follow the
deletion records.`,
		examples: []string{"strata prune", "strata prune --dry-run --json", "strata prune --max-unused 10% --margin 24h",
			"strata prune --keep-oplog 7d --mirror s3://offsite-bucket/graph"},
		setup: func(fs *pflag.FlagSet) { p.setup(fs, true) },
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if err := exactArgs("prune", args, 0, "no arguments"); err != nil {
				return err
			}
			opts, err := p.options()
			if err != nil {
				return err
			}
			var window *time.Duration
			if p.keepOplog != "" {
				d, err := prune.ParseWindowDuration(p.keepOplog)
				if err != nil {
					return usagef("prune: %v", err)
				}
				window = &d
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				if window != nil && !opts.DryRun {
					if _, err := prune.SaveRepoPolicy(ctx, r, prune.RepoPolicy{KeepOplog: window.String()}); err != nil {
						return err
					}
				}
				if err := runPrune(ctx, r, t, opts); err != nil || opts.DryRun {
					return err
				}
				return p.syncMirrors(ctx, r, t)
			})
		},
	}
}

func runPrune(ctx context.Context, r *repo.Repository, t *terminal, opts prune.Options) error {
	opts.Progress = func(stage string) { t.status("prune: %s", stage) }
	res, err := prune.Prune(ctx, r, opts)
	t.clearStatus()
	if err != nil {
		return err
	}
	if t.json {
		return t.printJSON(res)
	}
	verb := ""
	if res.DryRun {
		verb = "would "
	}
	t.printf("%d packs, %s; %s unused in %d unused and %d partly used packs\n", res.Packs, fmtBytes(res.BytesTotal),
		fmtBytes(res.BytesUnused), res.PacksUnused, res.PacksPartial)
	t.printf("%smark %d packs (%d to repack), unmark %d, mark %d unreferenced\n", verb, len(res.Mark), len(res.Repack), len(res.Unmark), len(res.Unreferenced))
	t.printf("%sdelete %d marked packs (%s) and %d log segments; %d marked packs wait\n", verb, len(res.Delete), fmtBytes(res.BytesFreed), len(res.Segments), len(res.Waiting))
	if t.verbose > 0 {
		for k, why := range res.Waiting {
			t.printf("  waiting %s: %s\n", k, why)
		}
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/verify"
)

type checkOptions struct {
	readData bool
	subset   string
	seed     uint64
}

func newCheckCommand() *command {
	var o checkOptions
	return &command{
		name: "check", args: "[flags]", short: "check the repository's structure and, optionally, its data",
		long: `Check verifies every object's name (the hash of its bytes) and authentication, that the
index agrees with the packs' headers, that every snapshot's trees load and every blob they
need is indexed, and that every oplog generation chains without gaps. --read-data also reads
every pack whole and checks every blob in it; --read-data-subset reads a part of them
(N/M: the packs whose id's first byte mod M is N-1; P%: a random P% of them).

Each problem is printed with the object it concerns. Packs no index lists (left by an
interrupted backup) and keys outside the layout are warnings, not damage. Exit code 4 means
damage was found.`,
		examples: []string{
			"strata check",
			"strata check --read-data",
			"strata check --read-data-subset 1/7   # a seventh of the packs; 2/7 tomorrow",
			"strata check --read-data-subset 5% --json",
		},
		setup: func(fs *pflag.FlagSet) {
			fs.BoolVar(&o.readData, "read-data", false, "also read every pack whole and check every blob")
			fs.StringVar(&o.subset, "read-data-subset", "", "read only a subset of the packs: N/M or P%")
			fs.Uint64Var(&o.seed, "read-data-seed", 0, "seed for a P% subset (default: random, printed)")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) > 0 {
				return usagef("check: takes no arguments, got %q", args[0])
			}
			opts := verify.CheckOptions{ReadData: o.readData}
			if o.subset != "" {
				if o.readData {
					return usagef("check: give --read-data or --read-data-subset, not both")
				}
				s, err := verify.ParseSubset(o.subset)
				if err != nil {
					return usagef("check: %v", err)
				}
				s.Seed = o.seed
				opts.Subset = &s
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error { return runCheck(ctx, r, t, opts) })
		},
	}
}

func runCheck(ctx context.Context, r *repo.Repository, t *terminal, opts verify.CheckOptions) error {
	p := newCheckProgress(t)
	opts.Progress = p
	res, err := verify.Check(ctx, r, opts)
	p.End()
	if err != nil {
		return err
	}
	if t.json {
		if err := t.printJSON(res); err != nil {
			return err
		}
	} else {
		if res.Seed != 0 {
			t.warnf("read-data subset %s drew %d packs with seed %d (--read-data-seed %d repeats it)", res.ReadData, res.PacksRead, res.Seed, res.Seed)
		}
		for _, w := range res.Warnings {
			t.warnf("%s: %s: %s", w.Object, w.Kind, w.Detail)
		}
		// Problems are the result: printed even with -q.
		for _, pr := range res.Problems {
			fmt.Fprintf(t.stdout, "%s: %s: %s\n", pr.Object, pr.Kind, pr.Detail)
		}
		read := ""
		if res.ReadData != "" {
			read = fmt.Sprintf(", read %d packs (%s)", res.PacksRead, fmtBytes(res.BytesRead))
		}
		t.printf("checked %d objects, %d packs, %d snapshots, %d trees, %d oplog segments%s\n",
			res.Objects, res.Packs, res.Snapshots, res.Trees, res.Segments, read)
		switch n := len(res.Problems); n {
		case 0:
			t.printf("no problems found\n")
		case 1:
			t.printf("1 problem\n")
		default:
			t.printf("%d problems\n", n)
		}
	}
	if n := len(res.Problems); n > 0 {
		return fmt.Errorf("check: %d problems: %w", n, errRepoDamage)
	}
	return nil
}

// checkProgress shows the stage and how far it is on a terminal's stderr:
// a stage that knows the bytes it will read (read-data) gets the bar
// restore has (bytes against the total, packs, rate, ETA), the others a
// count.
type checkProgress struct {
	sp    *stepProgress
	stage atomic.Value // string
	total atomic.Int64
	done  atomic.Int64
	bytes atomic.Int64
	bar   atomic.Bool  // this stage's bytes go to the bar
	shown atomic.Int64 // unix nanoseconds of the last count line
}

func newCheckProgress(t *terminal) *checkProgress {
	return &checkProgress{sp: &stepProgress{t: t, items: "packs"}}
}

func (p *checkProgress) Stage(name string, total int, totalBytes int64) {
	p.stage.Store(name)
	p.total.Store(int64(total))
	p.done.Store(0)
	p.sp.Step("check: " + name)
	p.bar.Store(totalBytes > 0)
	if totalBytes > 0 {
		p.sp.SetTotal(totalBytes, int64(total))
	}
}

func (p *checkProgress) Done(items int, bytes int64) {
	p.done.Add(int64(items))
	p.bytes.Add(bytes)
	if p.bar.Load() {
		p.sp.Add(bytes, int64(items))
		return
	}
	now := time.Now().UnixNano()
	if last := p.shown.Load(); now-last < int64(100*time.Millisecond) || !p.shown.CompareAndSwap(last, now) {
		return
	}
	stage, _ := p.stage.Load().(string)
	if total := p.total.Load(); total > 0 {
		p.sp.t.status("check: %s %d/%d, %s read", stage, p.done.Load(), total, fmtBytes(p.bytes.Load()))
		return
	}
	p.sp.t.status("check: %s, %s read", stage, fmtBytes(p.bytes.Load()))
}

// End removes the bar and the status line.
func (p *checkProgress) End() { p.sp.Done() }

package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
)

// DefaultMaxSynthLayers caps the delta layers synthesize stacks on a tier
// before it folds them into a fresh base. Synthesized layers are small
// (they follow the log), so many of them cost a restore little; the fold
// reads the whole tier once.
const DefaultMaxSynthLayers = 64

// Synthesis records how a snapshot was made from another plus the log.
type Synthesis struct {
	Base     string `json:"base"`
	AfterLSN uint64 `json:"after_lsn"`
	LSN      uint64 `json:"lsn"`
	TS       string `json:"ts,omitempty"`
	Records  int    `json:"records"`
}

// SynthesizeOptions say what to synthesize.
type SynthesizeOptions struct {
	// Target is the point of the new snapshot (nil: the newest point the
	// log reaches). Generation picks the log's generation (0: newest).
	Target     *Target
	Generation uint64
	Tags       []string
	Host       string
	Time       time.Time
	// MaxLayers caps a tier's layers (default DefaultMaxSynthLayers).
	MaxLayers  int
	SortMemory int64
	TmpDir     string
	Writer     repo.WriterOptions
}

// SynthesizeResult is a synthesized snapshot (ID zero when nothing changed
// since the base).
type SynthesizeResult struct {
	BackupResult
	Base    Base
	Replay  *oplog.ReplayResult
	Changed bool
	// LogBytes is the size of the log segments the replay read (stored,
	// compressed and sealed): synthesize's cost follows it.
	LogBytes int64
}

// Synthesize writes a new snapshot from the newest snapshot with a cut at or
// before the target plus the log up to the target, without the database:
// each graph tier gets one delta layer built from the log alone (upserts,
// tombstones and detach lines, graph.Apply's layer format), so the time and
// bytes it takes follow the log, not the graph. Files tiers and plain paths
// are carried over as captured. Tier counts are the base's (CountsFrom
// says so): counting would read the whole graph.
func Synthesize(ctx context.Context, r *repo.Repository, opts SynthesizeOptions) (*SynthesizeResult, error) {
	start := time.Now()
	if opts.MaxLayers <= 0 {
		opts.MaxLayers = DefaultMaxSynthLayers
	}
	tl, err := LoadTimeline(ctx, r, opts.Generation)
	if err != nil {
		return nil, fmt.Errorf("synthesize: %w", err)
	}
	target := Target{Generation: opts.Generation}
	if opts.Target != nil {
		target = *opts.Target
	} else {
		end, _, ok := tl.Reachable()
		if !ok {
			return nil, fmt.Errorf("synthesize: %s: %w", tl.newestReachable(), ErrNotRecoverable)
		}
		target.LSN, target.HasLSN = end.LSN, true
	}
	b, err := tl.Plan(target)
	if err != nil {
		return nil, fmt.Errorf("synthesize: %w", err)
	}
	ro := oplog.ReplayOptions{Layers: true, MemLimit: opts.SortMemory, TmpDir: opts.TmpDir}
	if target.HasLSN {
		ro.LSN, ro.HasLSN = target.LSN, true
	} else {
		at := oplog.TimeOf(*target.At)
		ro.At = &at
	}
	var graphTiers []string
	for _, t := range b.Tiers {
		if t.Format == FormatGraph {
			graphTiers = append(graphTiers, t.Name)
		}
	}
	ro.LayerTiers = graphTiers
	from := b.Cut.LSNStart + 1
	if b.BeforeLog {
		from = 0
	} else if b.Cut.LSNStart > 0 {
		ro.AfterLSN, ro.HasAfter = b.Cut.LSNStart, true
	}
	log, err := tl.History.Read(ctx, from, tl.Coverage.Runs[b.Run].Last.LSN)
	if err != nil {
		return nil, err
	}
	res, err := oplog.Replay(nil, log, ro)
	if err != nil {
		return nil, fmt.Errorf("synthesize: replay the log over snapshot %s: %w", b.ID.Short(), err)
	}
	defer res.Close()
	out := &SynthesizeResult{Base: b, Replay: res}
	end := b.End.LSN
	if res.LastLSN > end {
		end = res.LastLSN
	}
	if res.Applied == 0 {
		return out, nil // the base already is the state at the target
	}
	out.Changed = true
	if out.LogBytes, err = logBytes(ctx, tl.History, from, end); err != nil {
		return nil, err
	}

	host := opts.Host
	if host == "" {
		host = b.Hostname // the graph's host, not the one synthesizing
	}
	sn := newSnapshot(opts.Time, host, opts.Tags)
	sn.Paths, sn.Tree, sn.Parent = slices.Clone(b.Paths), b.Tree, &b.ID
	sn.Cut = &Cut{Generation: tl.History.Gen, LSNStart: end, LSNEnd: end}
	sn.Synthesized = &Synthesis{Base: b.ID.String(), AfterLSN: b.Cut.LSNStart, LSN: end, TS: res.LastTS, Records: res.Applied}
	a := &archiver{now: sn.Time, r: r, opts: BackupOptions{}, progress: NoProgress{}}
	names := res.LayerNames()
	stats, err := r.WithWriter(ctx, opts.Writer, func(ctx context.Context, w *repo.Writer) error {
		a.w = w
		for _, t := range b.Tiers {
			if t.Format != FormatGraph {
				sn.Tiers = append(sn.Tiers, t)
				continue
			}
			nt, err := a.synthLayer(ctx, t, b.ID, res.Layers[t.Name], opts.MaxLayers)
			if err != nil {
				return fmt.Errorf("synthesize tier %s: %w", t.Name, err)
			}
			sn.Tiers = append(sn.Tiers, *nt)
		}
		for _, name := range names {
			if slices.ContainsFunc(b.Tiers, func(t Tier) bool { return t.Name == name }) {
				continue
			}
			// A tier the log created: its layer over nothing is its base.
			nt, err := a.synthNewTier(ctx, name, res.Layers[name])
			if err != nil {
				return fmt.Errorf("synthesize tier %s: %w", name, err)
			}
			sn.Tiers = append(sn.Tiers, *nt)
			sn.Paths = append(sn.Paths, "tier:"+name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(sn.Tiers, func(x, y Tier) int { return strings.Compare(x.Name, y.Name) })
	slices.Sort(sn.Paths)
	id, sum, err := a.commit(ctx, r, sn, stats, start)
	if err != nil {
		return nil, err
	}
	out.BackupResult = BackupResult{ID: id, Snapshot: sn, Summary: sum}
	return out, nil
}

// synthLayer stacks a log-built layer on tier t (or folds every layer
// into a new base past maxLayers).
func (a *archiver) synthLayer(ctx context.Context, t Tier, since chunk.ID, layer graph.Iterator, maxLayers int) (*Tier, error) {
	nt := t
	nt.Layers = slices.Clone(t.Layers)
	if nt.CountsFrom == "" {
		nt.CountsFrom = since.String()
	}
	ptree, err := LoadTree(ctx, a.r, *t.Tree)
	if err != nil {
		return nil, err
	}
	var nodes []*Node
	if len(t.Layers)+1 > maxLayers {
		// Fold: the tier's state with the new layer applied becomes a new
		// base (reads the tier once; the layers it replaces stay with the
		// older snapshots). The layer is applied as it streams: its blobs
		// would not be readable before the writer commits.
		state, err := tierState(ctx, a.r, t.Name, ptree)
		if err != nil {
			return nil, err
		}
		defer state.Close()
		var c stateCount
		base, err := a.storeCanonical(ctx, baseName, func(w graph.LineWriter) error {
			return c.write(w, graph.Apply(state, []graph.Iterator{layer}))
		})
		if err != nil {
			return nil, err
		}
		nodes, nt.Layers = []*Node{base}, nil
		nt.Nodes, nt.Relationships, nt.Stats, nt.CountsFrom = c.nodes, c.rels, nil, ""
	} else {
		var c layerCount
		node, err := a.storeCanonical(ctx, layerName(len(t.Layers)+1), func(w graph.LineWriter) error {
			return c.write(w, layer)
		})
		if err != nil {
			return nil, err
		}
		if c.lines == 0 {
			a.countTier(&t, true)
			return &nt, nil // nothing of this tier changed
		}
		nt.Layers = append(nt.Layers, Layer{Since: since, Upserts: c.upserts, Tombstones: c.tombstones, Detaches: c.detaches, Bytes: int64(node.Size)})
		nodes = append(slices.Clone(ptree.Nodes), node)
	}
	id, err := SaveTree(ctx, a.r, a.w, &Tree{Nodes: nodes})
	if err != nil {
		return nil, err
	}
	nt.Tree = &id
	a.countTier(&t, false)
	return &nt, nil
}

// synthNewTier stores a tier only the log has: its layer's upserts are its
// base (tombstones and detach lines have nothing older to act on).
func (a *archiver) synthNewTier(ctx context.Context, name string, layer graph.Iterator) (*Tier, error) {
	nt := &Tier{Name: name, Format: FormatGraph, CapturedAt: a.now}
	c := stateCount{skipTombstones: true}
	node, err := a.storeCanonical(ctx, baseName, func(w graph.LineWriter) error { return c.write(w, layer) })
	if err != nil {
		return nil, err
	}
	nt.Nodes, nt.Relationships, nt.Bytes = c.nodes, c.rels, c.bytes
	id, err := SaveTree(ctx, a.r, a.w, &Tree{Nodes: []*Node{node}})
	if err != nil {
		return nil, err
	}
	nt.Tree = &id
	a.countTier(nil, false)
	return nt, nil
}

// stateCount writes a state's canonical lines and counts them; with
// skipTombstones it leaves out tombstones and detach lines (a layer over
// nothing, written as a base).
type stateCount struct {
	skipTombstones     bool
	nodes, rels, bytes int64
}

func (c *stateCount) write(w graph.LineWriter, it graph.Iterator) error {
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if rec.Tombstone && c.skipTombstones {
			continue
		}
		if rec.Kind == graph.KindNode {
			c.nodes++
		} else {
			c.rels++
		}
		c.bytes += int64(len(rec.Canonical) + 1)
		if err := w.WriteLine(rec.Canonical); err != nil {
			return err
		}
	}
}

// layerCount writes a layer stream and counts its lines by kind.
type layerCount struct {
	lines, upserts, tombstones, detaches int64
}

func (c *layerCount) write(w graph.LineWriter, layer graph.Iterator) error {
	for {
		rec, err := layer.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		c.lines++
		switch {
		case rec.Kind == graph.KindDetach:
			c.detaches++
		case rec.Tombstone:
			c.tombstones++
		default:
			c.upserts++
		}
		if err := w.WriteLine(rec.Canonical); err != nil {
			return err
		}
	}
}

// logBytes returns the stored size of the history's segments that hold
// records in [from, to].
func logBytes(ctx context.Context, h *oplog.History, from, to uint64) (int64, error) {
	var n int64
	for _, s := range h.Spans {
		segs, err := s.Log.Chain(ctx)
		if err != nil {
			return 0, err
		}
		for _, sg := range segs {
			if sg.LastLSN >= from && sg.FirstLSN <= to && sg.LastLSN > s.After && (!s.Bounded || sg.FirstLSN <= s.Upto) {
				n += sg.Size
			}
		}
	}
	return n, nil
}

package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrIntegrity means a graph failed its integrity check (dangling
// relationships, ids defined twice): exit code 4.
var ErrIntegrity = errors.New("graph integrity check failed")

// DefaultSortMemory bounds the memory of sorting and checking graph tiers.
const DefaultSortMemory = 128 << 20

// DefaultMaxLayers is how many delta layers a graph tier may carry before
// the next backup writes a fresh base: eight keeps a restore's merge within
// a few percent of reading one base (docs/performance.md).
const DefaultMaxLayers = 8

// maxLayerShare: once a tier's layers hold more than this share of its
// base's bytes, the next backup writes a fresh base.
const maxLayerShare = 0.25

// Names of the file nodes in a graph tier's tree.
const baseName = "base.jsonl"

func layerName(n int) string { return fmt.Sprintf("layer-%04d.jsonl", n) }

// TierSpec is one --tier NAME=SOURCE, with its --tier-format if given.
type TierSpec struct {
	Name   string
	Source string // a file, a directory, "-" (stdin) or "cmd:COMMAND"
	Format string // FormatFiles, FormatGraph, or "" for the default rule
}

// ParseTierSpec parses "NAME=SOURCE".
func ParseTierSpec(s string) (TierSpec, error) {
	name, src, ok := strings.Cut(s, "=")
	if !ok || src == "" {
		return TierSpec{}, fmt.Errorf("tier %q: want NAME=SOURCE (a file, a directory, - or cmd:COMMAND)", s)
	}
	if !graph.ValidTierName(name) {
		return TierSpec{}, fmt.Errorf("tier %q: name must match [A-Za-z0-9][A-Za-z0-9._-]*", name)
	}
	return TierSpec{Name: name, Source: src}, nil
}

// resolveFormat applies SPEC section 4's default: graph for a single file
// ending .jsonl or .ndjson; files otherwise (streams are graph only when
// --tier-format says so).
func (t *TierSpec) resolveFormat() error {
	switch t.Format {
	case FormatFiles, FormatGraph:
		return nil
	case "":
	default:
		return fmt.Errorf("tier %s: unknown format %q (want files or graph)", t.Name, t.Format)
	}
	t.Format = FormatFiles
	if t.Source == "-" || strings.HasPrefix(t.Source, "cmd:") {
		return nil
	}
	if fi, err := os.Stat(t.Source); err == nil && fi.Mode().IsRegular() {
		if ext := strings.ToLower(filepath.Ext(t.Source)); ext == ".jsonl" || ext == ".ndjson" {
			t.Format = FormatGraph
		}
	}
	return nil
}

// openSource opens a stream source. For cmd: the returned wait reports a
// non-zero exit with the tail of the command's stderr.
func openSource(ctx context.Context, spec TierSpec, stdin io.Reader) (io.ReadCloser, func() error, error) {
	switch {
	case spec.Source == "-":
		if stdin == nil {
			return nil, nil, fmt.Errorf("tier %s: no standard input", spec.Name)
		}
		return io.NopCloser(stdin), func() error { return nil }, nil
	case strings.HasPrefix(spec.Source, "cmd:"):
		command := strings.TrimPrefix(spec.Source, "cmd:")
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		stderr := &tailBuffer{max: 4096}
		cmd.Stderr = stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, fmt.Errorf("tier %s: %w", spec.Name, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, fmt.Errorf("tier %s: start %q: %w", spec.Name, command, err)
		}
		wait := func() error {
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("tier %s: command %q failed: %w: %s", spec.Name, command, err, strings.TrimSpace(stderr.String()))
			}
			return nil
		}
		return out, wait, nil
	}
	f, err := os.Open(spec.Source)
	if err != nil {
		return nil, nil, fmt.Errorf("tier %s: %w", spec.Name, err)
	}
	return f, func() error { return nil }, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
	p Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	c.p.Add(int64(n), 0)
	return n, err
}

// capturedTier is a graph tier read and sorted, not yet stored: its sorted
// records come out of sorted while the capture runs (and checks them).
type capturedTier struct {
	spec   TierSpec
	sorted graph.Iterator
	bytes  int64
}

// IntegrityError carries the report of a failed integrity check.
type IntegrityError struct {
	Report *graph.Report
}

func (e *IntegrityError) Error() string {
	r := e.Report
	msg := fmt.Sprintf("%d integrity problems", r.ProblemCount)
	if len(r.Problems) > 0 {
		p := r.Problems[0]
		msg += fmt.Sprintf(" (first: tier %s line %d: %s %s: %s)", p.Tier, p.Line, p.Kind, p.ID, p.Detail)
	}
	return msg
}

func (e *IntegrityError) Unwrap() error { return ErrIntegrity }

// captureGraphs reads every graph tier concurrently into its own sorter of
// one graph.Capture, which checks the graph's integrity while the store
// reads the sorted tiers back (Run). Nothing touches the repository here: a
// malformed line leaves no trace there. The caller owns the Capture: it
// must Run it (or Close it).
func captureGraphs(ctx context.Context, specs []TierSpec, stdin io.Reader, memory int64, tmp string, p Progress) ([]*capturedTier, *graph.Capture, error) {
	names := make([]string, len(specs))
	for i, spec := range specs {
		names[i] = spec.Name
	}
	capture := graph.NewCapture(names, memory, tmp)
	g, gctx := errgroup.WithContext(ctx)
	tiers := make([]*capturedTier, len(specs))
	for i, spec := range specs {
		ct := &capturedTier{spec: spec, sorted: capture.Iterator(i)}
		tiers[i] = ct
		sorter := capture.Tier(i)
		g.Go(func() error {
			src, wait, err := openSource(gctx, spec, stdin)
			if err != nil {
				return err
			}
			defer src.Close()
			cr := &countingReader{r: src, p: p}
			rd := graph.NewReader(cr, spec.Name)
			for {
				rec, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					var se *graph.SyntaxError
					if errors.As(err, &se) {
						return fmt.Errorf("backup tier %s: %w", spec.Name, err)
					}
					return fmt.Errorf("backup tier %s: read %s: %w", spec.Name, spec.Source, err)
				}
				if err := sorter.Add(rec, rd.Line()); err != nil {
					return err
				}
				if rd.Line()%1024 == 0 && gctx.Err() != nil {
					return gctx.Err() // another tier failed
				}
			}
			ct.bytes = cr.n.Load()
			return wait()
		})
	}
	if err := g.Wait(); err != nil {
		capture.Close()
		return nil, nil, err
	}
	return tiers, capture, nil
}

// parentTier returns the parent snapshot's tier of that name and format.
func parentTier(parent *Entry, name, format string) *Tier {
	if parent == nil {
		return nil
	}
	for i := range parent.Tiers {
		if t := &parent.Tiers[i]; t.Name == name && t.Format == format && t.Tree != nil {
			return t
		}
	}
	return nil
}

// storeGraphTier stores a captured tier: as a delta layer over the
// parent's state when the parent has the tier and its layers are below the
// threshold, else as a fresh canonical base.
func (a *archiver) storeGraphTier(ctx context.Context, ct *capturedTier, parent *Entry, maxLayers int) (*Tier, error) {
	sorted := ct.sorted
	defer sorted.Close()
	tier := &Tier{Name: ct.spec.Name, Format: FormatGraph, Source: ct.spec.Source, Bytes: ct.bytes}
	a.bytesProcessed.Add(ct.bytes)
	pt := parentTier(parent, ct.spec.Name, FormatGraph)
	if pt != nil && len(pt.Layers) < maxLayers {
		ptree, err := LoadTree(ctx, a.r, *pt.Tree)
		if err == nil && layerBytes(pt) <= maxLayerShare*float64(nodeSize(ptree, baseName)) {
			return a.storeLayer(ctx, tier, sorted, parent.ID, pt, ptree)
		}
	}
	node, err := a.storeCanonical(ctx, baseName, func(w graph.LineWriter) error {
		_, err := graph.WriteLines(w, sorted)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store tier %s: %w", tier.Name, err)
	}
	a.countTier(pt, false)
	id, err := SaveTree(ctx, a.r, a.w, &Tree{Nodes: []*Node{node}})
	if err != nil {
		return nil, err
	}
	tier.Tree = &id
	return tier, nil
}

func layerBytes(t *Tier) float64 {
	var n int64
	for _, l := range t.Layers {
		n += l.Bytes
	}
	return float64(n)
}

func nodeSize(t *Tree, name string) uint64 {
	if n := t.Find(name); n != nil {
		return n.Size
	}
	return 0
}

// storeLayer diffs the new canonical stream against the parent's state and
// stores only the records that changed (upserts and tombstones).
func (a *archiver) storeLayer(ctx context.Context, tier *Tier, sorted graph.Iterator, since chunk.ID, pt *Tier, ptree *Tree) (*Tier, error) {
	state, err := tierState(ctx, a.r, pt.Name, ptree)
	if err != nil {
		return nil, err
	}
	defer state.Close()
	var upserts, tombstones int64
	node, err := a.storeCanonical(ctx, layerName(len(pt.Layers)+1), func(w graph.LineWriter) error {
		return graph.Diff(state, sorted, func(rec *graph.Record, tomb bool) error {
			if tomb {
				tombstones++
			} else {
				upserts++
			}
			return w.WriteLine(rec.Canonical)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store tier %s: %w", tier.Name, err)
	}
	tier.Layers = append([]Layer(nil), pt.Layers...)
	if upserts+tombstones == 0 {
		// Nothing changed: the parent's tier stands as it is.
		tier.Tree = pt.Tree
		a.countTier(pt, true)
		return tier, nil
	}
	tier.Layers = append(tier.Layers, Layer{Since: since, Upserts: upserts, Tombstones: tombstones, Bytes: int64(node.Size)})
	nodes := append([]*Node(nil), ptree.Nodes...)
	id, err := SaveTree(ctx, a.r, a.w, &Tree{Nodes: append(nodes, node)})
	if err != nil {
		return nil, err
	}
	tier.Tree = &id
	a.countTier(pt, false)
	return tier, nil
}

func (a *archiver) countTier(parent *Tier, unchanged bool) {
	switch {
	case parent == nil:
		a.filesNew.Add(1)
	case unchanged:
		a.filesUnmodified.Add(1)
	default:
		a.filesChanged.Add(1)
	}
}

// storeCanonical stores the canonical lines write produces as a file node
// called name, cut into chunks at line ends (chunk.LineChunker).
func (a *archiver) storeCanonical(ctx context.Context, name string, write func(graph.LineWriter) error) (*Node, error) {
	hasher := a.r.Hasher()
	var content []chunk.ID
	var size int64
	lc := chunk.NewLineChunker(a.r.Config().Chunker, a.r.LineCutKey(), a.w.Buffer, func(data []byte) error {
		id := hasher.Sum(data)
		size += int64(len(data))
		content = append(content, id)
		_, err := a.w.SaveBlob(ctx, index.DataBlob, id, data)
		return err
	})
	err := write(lc)
	if err == nil {
		err = lc.Close()
	}
	if err != nil {
		return nil, err
	}
	return &Node{Name: name, Type: NodeFile, Mode: 0o644, ModTime: a.now, Size: uint64(size), Content: content}, nil
}

// tierState streams the state of a stored graph tier: its base with every
// layer applied, in canonical order. A tier stored whole (a base, no
// layers) can also be written out as it is stored (see storedTier).
func tierState(ctx context.Context, r *repo.Repository, name string, tree *Tree) (graph.Iterator, error) {
	base := tree.Find(baseName)
	if base == nil {
		return nil, fmt.Errorf("tier %s: no %s in its tree: %w", name, baseName, repo.ErrCorrupt)
	}
	var layers []graph.Iterator
	for _, n := range tree.Nodes {
		if strings.HasPrefix(n.Name, "layer-") {
			layers = append(layers, contentLines(ctx, r, name, n))
		}
	}
	if len(layers) == 0 {
		return &storedTier{ctx: ctx, r: r, name: name, base: base}, nil
	}
	return graph.Apply(contentLines(ctx, r, name, base), layers), nil
}

// storedTier is the state of a tier stored whole. Read record by record
// it is its base checked to be a state in canonical order, as graph.Apply
// gives it. Written out whole (WriteTo, which a restore to JSON Lines
// uses) it is the stored bytes as they are: authenticated blob by blob,
// and canonical and in order since the backup that wrote them sorted and
// checked every record. Reading every line back for its key only to check
// the order again was a third of a graph restore's CPU.
type storedTier struct {
	ctx  context.Context
	r    *repo.Repository
	name string
	base *Node
	it   graph.Iterator // the records, from the first Next on
	// written: WriteTo has run, and the stream is consumed.
	written bool
}

func (s *storedTier) Next() (*graph.Record, error) {
	if s.written {
		return nil, io.EOF
	}
	if s.it == nil {
		s.it = graph.Apply(contentLines(s.ctx, s.r, s.name, s.base), nil)
	}
	return s.it.Next()
}

// WriteTo writes the tier's canonical JSON Lines to w; only before Next.
func (s *storedTier) WriteTo(w io.Writer) (int64, error) {
	if s.it != nil {
		return 0, fmt.Errorf("write tier %s: its records are being read", s.name)
	}
	if s.written {
		return 0, nil
	}
	s.written = true
	cw := &countWriter{w: w}
	err := WriteContent(s.ctx, s.r, s.base, cw, 4)
	return cw.n, err
}

func (s *storedTier) Close() error {
	if s.it == nil {
		return nil
	}
	return s.it.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// contentLines reads a stored file node as canonical graph lines.
func contentLines(ctx context.Context, r *repo.Repository, tier string, n *Node) graph.Iterator {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteContent(ctx, r, n, pw, 4)) }()
	return &pipeIter{Iterator: graph.NewBorrowedLineIterator(pr, tier), pr: pr}
}

type pipeIter struct {
	graph.Iterator
	pr *io.PipeReader
}

func (p *pipeIter) Close() error {
	err := p.Iterator.Close()
	p.pr.Close() // stops the fetching goroutine
	return err
}

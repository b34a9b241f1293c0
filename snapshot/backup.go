package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// ErrIncomplete means the snapshot was written but some source files could
// not be read (exit code 3).
var ErrIncomplete = errors.New("snapshot is incomplete: some source files could not be read")

// Progress receives backup and restore progress. Implementations must be
// safe for concurrent use. NoProgress discards everything.
type Progress interface {
	// SetTotal announces the expected totals (from a scan or a snapshot's summary).
	SetTotal(bytes, files int64)
	// Add reports bytes and whole files processed.
	Add(bytes, files int64)
	// Warn reports a problem with one input that did not stop the run.
	Warn(path string, err error)
}

// NoProgress is the silent Progress.
type NoProgress struct{}

func (NoProgress) SetTotal(int64, int64) {}
func (NoProgress) Add(int64, int64)      {}
func (NoProgress) Warn(string, error)    {}

// BackupOptions describe one backup.
type BackupOptions struct {
	Paths         []string
	Stdin         io.Reader
	StdinFilename string
	Tags          []string
	Host          string
	Time          time.Time
	Excludes      Patterns
	// Parent is a snapshot id (or prefix) to compare files with; empty
	// means the newest snapshot of the same host and paths.
	Parent   string
	Progress Progress
	Writer   repo.WriterOptions

	// Tiers are captured into the same snapshot, concurrently.
	Tiers []TierSpec
	// SortMemory bounds sorting and checking graph tiers (default
	// DefaultSortMemory); TmpDir holds their spill files.
	SortMemory int64
	TmpDir     string
	// AllowDangling keeps a snapshot whose graph fails its integrity check.
	AllowDangling bool
	// Cut records a consistent cut. Graph integrity and statistics are
	// then those of the state at the cut (the log replayed over
	// (lsn_start, lsn_end]) when the log already covers it; otherwise the
	// snapshot is saved with Cut.Checked false and a warning, and
	// verify judges it later.
	Cut *Cut
	// CutEnd, when set, is called once every source has been read (a
	// --post-hook) and gives Cut.LSNEnd.
	CutEnd func(ctx context.Context) (uint64, error)
	// WaitForLog waits up to this long for the log to cover the cut.
	WaitForLog time.Duration
	// MaxLayers caps a graph tier's delta layers (default DefaultMaxLayers).
	MaxLayers int
}

// BackupResult is a finished backup.
type BackupResult struct {
	ID       chunk.ID
	Snapshot *Snapshot
	Summary  Summary
	// Integrity is the graph tiers' check report (nil without graph tiers).
	Integrity *graph.Report
}

// Backup backs up paths, stdin and tiers into a new snapshot. Graph tiers
// are read, sorted and checked before anything is stored, so a malformed
// export or a failed integrity check leaves the repository untouched. When
// some files could not be read it still writes the snapshot (listing them)
// and returns the result with an error wrapping ErrIncomplete.
func Backup(ctx context.Context, r *repo.Repository, opts BackupOptions) (*BackupResult, error) {
	start := time.Now()
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	if opts.SortMemory <= 0 {
		opts.SortMemory = DefaultSortMemory
	}
	if opts.MaxLayers <= 0 {
		opts.MaxLayers = DefaultMaxLayers
	}
	if err := opts.Excludes.Validate(); err != nil {
		return nil, fmt.Errorf("backup: exclude %w", err)
	}
	sn := newSnapshot(opts.Time, opts.Host, opts.Tags)
	sn.Cut = opts.Cut
	targets, err := backupTargets(sn, opts)
	if err != nil {
		return nil, err
	}
	var graphs, files []TierSpec
	seen := map[string]bool{}
	stdinUsers := 0
	if opts.Stdin != nil && opts.StdinFilename != "" {
		stdinUsers++
	}
	for _, t := range opts.Tiers {
		if seen[t.Name] {
			return nil, fmt.Errorf("backup: tier %s given twice", t.Name)
		}
		seen[t.Name] = true
		if err := t.resolveFormat(); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if t.Source == "-" {
			stdinUsers++
		}
		if t.Format == FormatGraph {
			graphs = append(graphs, t)
		} else {
			files = append(files, t)
		}
		sn.Paths = append(sn.Paths, "tier:"+t.Name)
	}
	if stdinUsers > 1 {
		return nil, errors.New("backup: standard input can feed only one of --stdin and the tiers")
	}
	if len(sn.Paths) == 0 {
		return nil, errors.New("backup: nothing to back up: give paths, --stdin or --tier")
	}
	slices.Sort(sn.Paths)

	a := &archiver{r: r, opts: opts, progress: opts.Progress, sem: make(chan struct{}, 2), now: sn.Time}
	parent, err := a.findParent(ctx, sn)
	if err != nil {
		return nil, err
	}
	if parent != nil {
		sn.Parent = &parent.ID
	}
	if opts.Stdin == nil || opts.StdinFilename == "" {
		go a.scan(ctx, targets)
	}

	// Phase one: graph tiers are parsed, sorted and checked locally.
	var captured []*capturedTier
	var capture *graph.Capture
	var report *graph.Report
	if len(graphs) > 0 {
		tmp, err := os.MkdirTemp(opts.TmpDir, "strata-sort-")
		if err != nil {
			return nil, fmt.Errorf("backup: create sort directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		captured, capture, err = captureGraphs(ctx, graphs, opts.Stdin, opts.SortMemory, tmp, opts.Progress)
		if err != nil {
			return nil, err
		}
		defer capture.Close()
	}

	// Phase two: everything is stored, concurrently, while the capture
	// merges the sorted graph tiers and checks their integrity. A failed
	// check fails the write: no snapshot, no index, and no partly filled
	// pack (full packs already sent are left for prune, as an interrupted
	// backup's are).
	var root *chunk.ID
	tiers := make([]*Tier, len(captured)+len(files))
	stats, err := r.WithWriter(ctx, opts.Writer, func(ctx context.Context, w *repo.Writer) error {
		a.w = w
		g, gctx := errgroup.WithContext(ctx)
		if capture != nil {
			g.Go(func() (err error) {
				report, err = capture.Run(gctx)
				return err
			})
		}
		for i, ct := range captured {
			g.Go(func() (err error) {
				tiers[i], err = a.storeGraphTier(gctx, ct, parent, opts.MaxLayers)
				return err
			})
		}
		for i, spec := range files {
			g.Go(func() (err error) {
				tiers[len(captured)+i], err = a.storeFilesTier(gctx, spec, parent)
				return err
			})
		}
		if len(targets) > 0 || (opts.Stdin != nil && opts.StdinFilename != "") {
			g.Go(func() error {
				id, err := a.savePaths(gctx, targets, parent)
				root = &id
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if report != nil && !report.OK && sn.Cut == nil && !opts.AllowDangling {
			return &IntegrityError{Report: report}
		}
		return nil
	})
	if ie := (*IntegrityError)(nil); errors.As(err, &ie) {
		return &BackupResult{Integrity: ie.Report}, fmt.Errorf("backup: %w", err)
	}
	if err != nil {
		return nil, err
	}
	if err := endCut(ctx, sn, opts); err != nil {
		return nil, err
	}
	sn.Tree = root
	for _, t := range tiers {
		t.CapturedAt = time.Now()
		sn.Tiers = append(sn.Tiers, *t)
	}
	sort.Slice(sn.Tiers, func(i, j int) bool { return sn.Tiers[i].Name < sn.Tiers[j].Name })
	applyStats(sn.Tiers, report)
	if sn.Cut != nil && len(captured) > 0 {
		cutReport, err := judgeCut(ctx, r, sn, opts, report)
		if cutReport != nil {
			report = cutReport
		}
		if err != nil {
			return &BackupResult{Integrity: cutReport}, err
		}
	}
	sn.Incomplete = a.incomplete
	id, sum, err := a.commit(ctx, r, sn, stats, start)
	if err != nil {
		return nil, err
	}
	res := &BackupResult{ID: id, Snapshot: sn, Summary: sum, Integrity: report}
	if len(sn.Incomplete) > 0 {
		return res, fmt.Errorf("backup: %d of the source files could not be read (first: %s: %s): %w",
			len(sn.Incomplete), sn.Incomplete[0].Path, sn.Incomplete[0].Error, ErrIncomplete)
	}
	return res, nil
}

// backupTargets validates the plain paths (or stdin) and records them in sn.
func backupTargets(sn *Snapshot, opts BackupOptions) ([]string, error) {
	if opts.Stdin != nil && opts.StdinFilename != "" {
		name := opts.StdinFilename
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return nil, fmt.Errorf("backup stdin: --stdin-filename %q must be a plain file name", name)
		}
		sn.Paths = []string{"/" + name}
		return nil, nil
	}
	var targets []string
	for _, p := range opts.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("backup %s: %w", p, err)
		}
		if _, err := os.Lstat(abs); err != nil {
			return nil, fmt.Errorf("backup %s: %w", p, err)
		}
		targets = append(targets, filepath.Clean(abs))
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)
	sn.Paths = slices.Clone(targets)
	return targets, nil
}

// savePaths saves the plain paths (or stdin) as the snapshot's root tree.
func (a *archiver) savePaths(ctx context.Context, targets []string, parent *Entry) (chunk.ID, error) {
	if a.opts.Stdin != nil && a.opts.StdinFilename != "" {
		return a.saveStdin(ctx, a.opts.Stdin, a.opts.StdinFilename)
	}
	var parentRoot *Tree
	if parent != nil && parent.Tree != nil {
		if t, err := LoadTree(ctx, a.r, *parent.Tree); err == nil {
			parentRoot = t // a damaged parent only costs deduplication speed
		}
	}
	return a.saveVirtual(ctx, "/", buildVirtual(targets), parentRoot)
}

// storeFilesTier stores a files tier: a directory's contents, a single
// file, or a stream, as the tier's tree.
func (a *archiver) storeFilesTier(ctx context.Context, spec TierSpec, parent *Entry) (*Tier, error) {
	tier := &Tier{Name: spec.Name, Format: FormatFiles, Source: spec.Source}
	var ptree *Tree
	if pt := parentTier(parent, spec.Name, FormatFiles); pt != nil {
		ptree, _ = LoadTree(ctx, a.r, *pt.Tree)
	}
	var tree *Tree
	if spec.Source == "-" || strings.HasPrefix(spec.Source, "cmd:") {
		src, wait, err := openSource(ctx, spec, a.opts.Stdin)
		if err != nil {
			return nil, err
		}
		content, size, err := a.saveStream(ctx, src)
		src.Close()
		if werr := wait(); err == nil {
			err = werr
		}
		if err != nil {
			return nil, fmt.Errorf("backup tier %s: %w", spec.Name, err)
		}
		a.filesNew.Add(1)
		tier.Bytes = size
		tree = &Tree{Nodes: []*Node{{Name: spec.Name, Type: NodeFile, Mode: 0o644, ModTime: a.now, Size: uint64(size), Content: content,
			UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}}}
	} else {
		abs, err := filepath.Abs(spec.Source)
		if err != nil {
			return nil, fmt.Errorf("backup tier %s: %w", spec.Name, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("backup tier %s: %w", spec.Name, err)
		}
		if fi.IsDir() {
			// The tier's tree is the directory's contents.
			n := nodeFromInfo(spec.Name, fi)
			var pid *chunk.ID
			if pt := parentTier(parent, spec.Name, FormatFiles); pt != nil {
				pid = pt.Tree
			}
			if err := a.saveDirFrom(ctx, abs, n, ptree, pid); err != nil {
				return nil, err
			}
			tier.Tree, tier.Bytes = n.Subtree, int64(n.total)
		} else {
			var pchild *Node
			if ptree != nil {
				pchild = ptree.Find(filepath.Base(abs))
			}
			n, err := a.saveTarget(ctx, abs, pchild)
			if err != nil {
				return nil, err
			}
			tree = &Tree{}
			if n != nil {
				tree.Nodes = []*Node{n}
				tier.Bytes = int64(n.totalSize())
			}
		}
	}
	if tree != nil {
		id, err := SaveTree(ctx, a.r, a.w, tree)
		if err != nil {
			return nil, err
		}
		tier.Tree = &id
	}
	return tier, nil
}

type archiver struct {
	now      time.Time // the snapshot's time, for synthesised nodes
	r        *repo.Repository
	w        *repo.Writer
	opts     BackupOptions
	progress Progress
	sem      chan struct{} // bounds files read at once

	mu         sync.Mutex
	incomplete []Unreadable

	filesNew, filesChanged, filesUnmodified atomic.Int64
	dirsNew, dirsChanged, dirsUnmodified    atomic.Int64
	bytesProcessed                          atomic.Int64
}

// commit saves sn with its summary (the run's counts, stats and the time
// since start) and returns its id and the summary, the snapshot object's
// own bytes counted as stored.
func (a *archiver) commit(ctx context.Context, r *repo.Repository, sn *Snapshot, stats repo.WriteStats, start time.Time) (chunk.ID, Summary, error) {
	sum := a.summary(stats)
	sum.DurationSeconds = time.Since(start).Seconds()
	sn.Summary = &sum
	id, n, err := Save(ctx, r, sn)
	if err != nil {
		return chunk.ID{}, Summary{}, fmt.Errorf("save snapshot: %w", err)
	}
	sum.BytesStored += int64(n)
	return id, sum, nil
}

func (a *archiver) summary(st repo.WriteStats) Summary {
	return Summary{
		FilesNew: a.filesNew.Load(), FilesChanged: a.filesChanged.Load(), FilesUnmodified: a.filesUnmodified.Load(),
		DirsNew: a.dirsNew.Load(), DirsChanged: a.dirsChanged.Load(), DirsUnmodified: a.dirsUnmodified.Load(),
		BytesProcessed: a.bytesProcessed.Load(), BytesAdded: st.BytesAdded, BytesStored: st.BytesStored, BlobsNew: st.BlobsNew,
	}
}

func (a *archiver) unreadable(path string, err error) {
	a.mu.Lock()
	a.incomplete = append(a.incomplete, Unreadable{Path: path, Error: err.Error()})
	a.mu.Unlock()
	a.progress.Warn(path, err)
}

// findParent picks the snapshot to compare with.
func (a *archiver) findParent(ctx context.Context, sn *Snapshot) (*Entry, error) {
	if a.opts.Parent != "" {
		e, err := Find(ctx, a.r, a.opts.Parent, Filter{})
		if err != nil {
			return nil, fmt.Errorf("backup: parent: %w", err)
		}
		return &e, nil
	}
	all, err := List(ctx, a.r)
	if err != nil {
		return nil, err
	}
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Hostname == sn.Hostname && slices.Equal(all[i].Paths, sn.Paths) {
			return &all[i], nil
		}
	}
	return nil, nil
}

// scan totals the input for progress (ETA); it races the backup harmlessly.
func (a *archiver) scan(ctx context.Context, targets []string) {
	var bytes, files int64
	for _, t := range targets {
		_ = filepath.WalkDir(t, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil || a.opts.Excludes.Match(filepath.ToSlash(p)) {
				if d != nil && d.IsDir() && err == nil {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					bytes += fi.Size()
					files++
				}
			}
			return nil
		})
	}
	a.progress.SetTotal(bytes, files)
}

// vdir is a directory on the way from / to the backup targets.
type vdir struct {
	children map[string]*vdir
	target   bool // this path itself is backed up (everything below it)
}

func buildVirtual(targets []string) *vdir {
	root := &vdir{children: map[string]*vdir{}}
	for _, t := range targets {
		cur := root
		for _, c := range splitPath(filepath.ToSlash(t)) {
			if cur.target {
				break // an ancestor is already backed up whole
			}
			next, ok := cur.children[c]
			if !ok {
				next = &vdir{children: map[string]*vdir{}}
				cur.children[c] = next
			}
			cur = next
		}
		cur.target = true
	}
	return root
}

// saveVirtual saves the directories leading to the targets (with their
// real metadata) and the targets below them.
func (a *archiver) saveVirtual(ctx context.Context, dir string, v *vdir, parent *Tree) (chunk.ID, error) {
	tree := &Tree{}
	names := make([]string, 0, len(v.children))
	for name := range v.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		child := v.children[name]
		p := filepath.Join(dir, name)
		var pnode *Node
		if parent != nil {
			pnode = parent.Find(name)
		}
		if child.target {
			n, err := a.saveTarget(ctx, p, pnode)
			if err != nil {
				return chunk.ID{}, err
			}
			if n != nil {
				tree.Nodes = append(tree.Nodes, n)
			}
			continue
		}
		// A directory above a target is recorded as the directory it
		// resolves to (a "current" -> "releases/42" symlink included), so
		// the target stays reachable at the path the user gave.
		fi, err := os.Stat(p)
		if err != nil {
			return chunk.ID{}, fmt.Errorf("backup %s: %w", p, err)
		}
		if !fi.IsDir() {
			return chunk.ID{}, fmt.Errorf("backup %s: not a directory", p)
		}
		n := nodeFromInfo(name, fi)
		sub, err := a.saveVirtual(ctx, p, child, a.parentSubtree(ctx, pnode))
		if err != nil {
			return chunk.ID{}, err
		}
		n.Subtree = &sub
		tree.Nodes = append(tree.Nodes, n)
	}
	return SaveTree(ctx, a.r, a.w, tree)
}

func (a *archiver) parentSubtree(ctx context.Context, pnode *Node) *Tree {
	if pnode == nil || pnode.Type != NodeDir || pnode.Subtree == nil {
		return nil
	}
	t, err := LoadTree(ctx, a.r, *pnode.Subtree)
	if err != nil {
		return nil
	}
	return t
}

// saveTarget saves path (any type) and returns its node, or nil when it is
// excluded or unreadable.
func (a *archiver) saveTarget(ctx context.Context, p string, pnode *Node) (*Node, error) {
	if a.opts.Excludes.Match(filepath.ToSlash(p)) {
		return nil, nil
	}
	fi, err := os.Lstat(p)
	if err != nil {
		a.unreadable(p, err)
		return nil, nil
	}
	n := nodeFromInfo(filepath.Base(p), fi)
	switch {
	case fi.IsDir():
		return n, a.saveDir(ctx, p, n, pnode)
	case fi.Mode().IsRegular():
		return a.saveFile(ctx, p, n, pnode), nil
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			a.unreadable(p, err)
			return nil, nil
		}
		n.LinkTarget = target
		return n, nil
	default:
		a.progress.Warn(p, fmt.Errorf("skipped: %s files are not backed up", fi.Mode().Type()))
		return nil, nil
	}
}

func nodeFromInfo(name string, fi fs.FileInfo) *Node {
	n := &Node{Name: name, Mode: ModeFrom(fi.Mode()), ModTime: fi.ModTime()}
	switch {
	case fi.IsDir():
		n.Type = NodeDir
	case fi.Mode()&fs.ModeSymlink != 0:
		n.Type = NodeSymlink
	default:
		n.Type = NodeFile
		n.Size = uint64(fi.Size())
	}
	fillStat(n, fi)
	return n
}

// saveDir saves a directory: subdirectories in turn, files concurrently
// (bounded by a.sem), then the directory's tree once every child is done.
func (a *archiver) saveDir(ctx context.Context, p string, n *Node, pnode *Node) error {
	var pid *chunk.ID
	if pnode != nil {
		pid = pnode.Subtree
	}
	return a.saveDirFrom(ctx, p, n, a.parentSubtree(ctx, pnode), pid)
}

// saveDirFrom is saveDir given the parent's tree (and its id) directly.
func (a *archiver) saveDirFrom(ctx context.Context, p string, n *Node, parent *Tree, parentID *chunk.ID) error {
	entries, err := os.ReadDir(p)
	if err != nil {
		// Keep what could be listed; the directory is recorded as unreadable.
		a.unreadable(p, err)
	}
	tree := &Tree{Nodes: make([]*Node, len(entries))}
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for i, e := range entries {
		if ctx.Err() != nil {
			break
		}
		cp := filepath.Join(p, e.Name())
		var pchild *Node
		if parent != nil {
			pchild = parent.Find(e.Name())
		}
		if e.Type().IsRegular() && !a.opts.Excludes.Match(filepath.ToSlash(cp)) {
			select {
			case a.sem <- struct{}{}:
			case <-ctx.Done():
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-a.sem }()
				fi, err := os.Lstat(cp)
				if err != nil {
					a.unreadable(cp, err)
					return
				}
				if !fi.Mode().IsRegular() { // replaced since ReadDir
					n, err := a.saveTarget(ctx, cp, pchild)
					tree.Nodes[i] = n
					if err != nil {
						errMu.Lock()
						firstErr = cmpErr(firstErr, err)
						errMu.Unlock()
					}
					return
				}
				tree.Nodes[i] = a.saveFile(ctx, cp, nodeFromInfo(e.Name(), fi), pchild)
			}()
			continue
		}
		child, err := a.saveTarget(ctx, cp, pchild)
		if err != nil {
			wg.Wait()
			return err
		}
		tree.Nodes[i] = child
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tree.Nodes = slices.DeleteFunc(tree.Nodes, func(n *Node) bool { return n == nil })
	for _, c := range tree.Nodes {
		n.total += c.totalSize()
	}
	id, err := SaveTree(ctx, a.r, a.w, tree)
	if err != nil {
		return err
	}
	n.Subtree = &id
	switch {
	case parentID == nil:
		a.dirsNew.Add(1)
	case *parentID == id:
		a.dirsUnmodified.Add(1)
	default:
		a.dirsChanged.Add(1)
	}
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// unchanged reports whether the parent's node describes the same file
// content (restic's rule: type, size, mtime, ctime and inode all equal).
func unchanged(n, p *Node) bool {
	return p != nil && p.Type == NodeFile && p.Size == n.Size && p.ModTime.Equal(n.ModTime) &&
		p.ChangeTime.Equal(n.ChangeTime) && p.Inode == n.Inode && (p.Size == 0 || len(p.Content) > 0)
}

// saveFile stores a regular file's content and returns its node, or nil if
// it could not be read.
func (a *archiver) saveFile(ctx context.Context, p string, n *Node, pnode *Node) *Node {
	if unchanged(n, pnode) && a.allKnown(pnode.Content) {
		n.Content = pnode.Content
		a.filesUnmodified.Add(1)
		a.bytesProcessed.Add(int64(n.Size))
		a.progress.Add(int64(n.Size), 1)
		return n
	}
	f, err := os.Open(p)
	if err != nil {
		a.unreadable(p, err)
		return nil
	}
	defer f.Close()
	content, size, err := a.saveStream(ctx, f)
	if err != nil {
		if ctx.Err() == nil {
			a.unreadable(p, err)
		}
		return nil
	}
	n.Content, n.Size = content, uint64(size)
	if pnode == nil {
		a.filesNew.Add(1)
	} else {
		a.filesChanged.Add(1)
	}
	a.progress.Add(0, 1)
	return n
}

// allKnown reports whether every blob is still usable, so a file skipped by
// the parent rule never refers to a blob that was pruned or whose pack is
// marked for deletion.
func (a *archiver) allKnown(ids []chunk.ID) bool {
	for _, id := range ids {
		if ok, err := a.w.Known(id); err != nil || !ok {
			return false
		}
	}
	return true
}

// saveStream chunks rd into data blobs and returns their ids and the total
// size, counting the bytes as processed. (A graph tier's canonical stream,
// whose source bytes were counted when they were read, goes through
// storeCanonical instead.)
func (a *archiver) saveStream(ctx context.Context, rd io.Reader) ([]chunk.ID, int64, error) {
	ch := chunk.NewChunker(rd, a.r.Config().Chunker)
	hasher := a.r.Hasher()
	var content []chunk.ID
	var size int64
	for {
		buf := a.w.Buffer()
		data, err := ch.Next(buf)
		if err != nil {
			a.w.Recycle(buf)
			if err == io.EOF {
				return content, size, nil
			}
			return nil, 0, err
		}
		id := hasher.Sum(data)
		if _, err := a.w.SaveBlob(ctx, index.DataBlob, id, data); err != nil {
			return nil, 0, err
		}
		content = append(content, id)
		size += int64(len(data))
		a.bytesProcessed.Add(int64(len(data)))
		a.progress.Add(int64(len(data)), 0)
	}
}

// saveStdin stores one stream as a file at the root.
func (a *archiver) saveStdin(ctx context.Context, rd io.Reader, name string) (chunk.ID, error) {
	content, size, err := a.saveStream(ctx, rd)
	if err != nil {
		return chunk.ID{}, fmt.Errorf("backup stdin: %w", err)
	}
	n := &Node{Name: name, Type: NodeFile, Mode: 0o644, ModTime: time.Now(), Size: uint64(size), Content: content,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	a.filesNew.Add(1)
	return SaveTree(ctx, a.r, a.w, &Tree{Nodes: []*Node{n}})
}

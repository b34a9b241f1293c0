package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/repo"
)

// RestoreOptions describe one restore.
type RestoreOptions struct {
	Target   string
	Include  Patterns
	Exclude  Patterns
	Verify   bool // read every restored file back and check its blob ids
	Progress Progress
	// Workers fetch and write blobs; default from the backend and cores.
	Workers int
}

// RestoreResult counts what was restored.
type RestoreResult struct {
	Files, Dirs, Symlinks int64
	Bytes                 int64
	Verified              int64
	// Failed lists files that could not be restored; the others were.
	Failed []FileError
	// NotReplayed names the files tiers restored as captured although the
	// graph was brought to a cut or point by the log (they have no log).
	NotReplayed []string
}

// FileError is one file that failed to restore.
type FileError struct {
	Path string
	Err  error
}

// ErrRestoreFailed wraps a restore in which some files failed.
var ErrRestoreFailed = errors.New("some files could not be restored")

type blobJob struct {
	file   *restoreFile
	id     chunk.ID
	offset int64
}

type restoreFile struct {
	path      string // on disk
	snapPath  string // in the snapshot, for messages
	node      *Node
	f         *os.File
	remaining atomic.Int64
	mu        sync.Mutex
	err       error
}

// RestoreTree restores tree id (and everything below it) into target.
// snapPath is the tree's path in the snapshot, for include/exclude matching.
func RestoreTree(ctx context.Context, r *repo.Repository, id chunk.ID, snapPath string, opts RestoreOptions) (*RestoreResult, error) {
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	if err := errors.Join(opts.Include.Validate(), opts.Exclude.Validate()); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if opts.Workers <= 0 {
		// A worker per core, and one more to decrypt and decompress while
		// another waits on the disk, keeps the cores busy; more only hold
		// more blobs in memory (four on two cores were no faster than
		// three). An object store gets its connections' worth, to hide
		// latency.
		opts.Workers = max(runtime.GOMAXPROCS(0)+1, backend.Connections(r.Backend(), 2))
	}
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return nil, fmt.Errorf("restore: create target %s: %w", opts.Target, err)
	}
	rs := &restorer{r: r, opts: opts, res: &RestoreResult{}, jobs: make(chan blobJob, 4*opts.Workers)}
	g, gctx := errgroup.WithContext(ctx)
	for range opts.Workers {
		g.Go(func() error { return rs.work(gctx) })
	}
	walkErr := rs.walk(gctx, id, snapPath, opts.Target)
	close(rs.jobs)
	if err := errors.Join(walkErr, g.Wait()); err != nil {
		return rs.res, err
	}
	// Directory metadata last, deepest first, so writing children does not
	// bump the mtimes just set.
	sort.Slice(rs.dirs, func(i, j int) bool { return len(rs.dirs[i].path) > len(rs.dirs[j].path) })
	for _, d := range rs.dirs {
		setMeta(d.path, d.node)
	}
	if len(rs.res.Failed) > 0 {
		sort.Slice(rs.res.Failed, func(i, j int) bool { return rs.res.Failed[i].Path < rs.res.Failed[j].Path })
		f := firstFailure(rs.res.Failed)
		return rs.res, fmt.Errorf("restore: %d files failed (first: %s: %w): %w", len(rs.res.Failed), f.Path, f.Err, ErrRestoreFailed)
	}
	return rs.res, nil
}

type restorer struct {
	r    *repo.Repository
	opts RestoreOptions
	res  *RestoreResult
	jobs chan blobJob

	mu   sync.Mutex
	dirs []dirMeta
}

type dirMeta struct {
	path string
	node *Node
}

func (rs *restorer) fail(p string, err error) {
	rs.mu.Lock()
	rs.res.Failed = append(rs.res.Failed, FileError{Path: p, Err: err})
	rs.mu.Unlock()
	rs.opts.Progress.Warn(p, err)
}

func (rs *restorer) selected(snapPath string) bool {
	if rs.opts.Exclude.Match(snapPath) {
		return false
	}
	return len(rs.opts.Include) == 0 || rs.opts.Include.Match(snapPath)
}

// walk restores the tree's nodes below dst. Files are queued for the
// workers; directories are created as they are entered.
func (rs *restorer) walk(ctx context.Context, treeID chunk.ID, snapPath, dst string) error {
	tree, err := LoadTree(ctx, rs.r, treeID)
	if err != nil {
		rs.fail(snapPath, err)
		return nil
	}
	for _, n := range tree.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		sp := path.Join(snapPath, n.Name)
		dp := filepath.Join(dst, n.Name)
		switch n.Type {
		case NodeDir:
			if rs.opts.Exclude.Match(sp) || (len(rs.opts.Include) > 0 && !rs.opts.Include.MatchOrParent(sp)) {
				continue
			}
			if err := mkdirNoFollow(dp); err != nil {
				rs.fail(sp, err)
				continue
			}
			rs.mu.Lock()
			rs.dirs = append(rs.dirs, dirMeta{dp, n})
			rs.res.Dirs++
			rs.mu.Unlock()
			if n.Subtree != nil {
				if err := rs.walk(ctx, *n.Subtree, sp, dp); err != nil {
					return err
				}
			}
		case NodeSymlink:
			if !rs.selected(sp) {
				continue
			}
			_ = os.Remove(dp)
			if err := os.Symlink(n.LinkTarget, dp); err != nil {
				rs.fail(sp, err)
				continue
			}
			setMeta(dp, n)
			rs.mu.Lock()
			rs.res.Symlinks++
			rs.mu.Unlock()
		case NodeFile:
			if !rs.selected(sp) {
				continue
			}
			if err := rs.startFile(ctx, sp, dp, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// startFile creates the file and queues one job per blob at its offset.
func (rs *restorer) startFile(ctx context.Context, sp, dp string, n *Node) error {
	_ = os.Remove(dp) // replace whatever is there, never write through a symlink
	f, err := os.OpenFile(dp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		rs.fail(sp, err)
		return nil
	}
	rf := &restoreFile{path: dp, snapPath: sp, node: n, f: f}
	if len(n.Content) == 0 {
		rs.finishFile(rf)
		return nil
	}
	if err := f.Truncate(int64(n.Size)); err != nil {
		f.Close()
		rs.fail(sp, err)
		return nil
	}
	// Offsets come from the index's plaintext lengths, so blobs can be
	// fetched in parallel and written in any order.
	offsets := make([]int64, len(n.Content))
	var off int64
	for i, id := range n.Content {
		locs, err := rs.r.LookupBlob(ctx, id)
		if err != nil || len(locs) == 0 {
			f.Close()
			rs.fail(sp, fmt.Errorf("blob %s of %s: %w", id.Short(), sp, cmpErr(err, repo.ErrBlobNotFound)))
			return nil
		}
		offsets[i] = off
		off += int64(locs[0].RawLength)
	}
	rf.remaining.Store(int64(len(n.Content)))
	for i, id := range n.Content {
		select {
		case rs.jobs <- blobJob{file: rf, id: id, offset: offsets[i]}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (rs *restorer) work(ctx context.Context) error {
	var buf []byte
	for job := range rs.jobs {
		rf := job.file
		rf.mu.Lock()
		failed := rf.err != nil
		rf.mu.Unlock()
		if !failed {
			data, err := rs.r.LoadBlob(ctx, job.id, buf)
			if err == nil {
				buf = data
				_, err = rf.f.WriteAt(data, job.offset)
				if err == nil {
					rs.opts.Progress.Add(int64(len(data)), 0)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				rf.mu.Lock()
				if rf.err == nil {
					rf.err = err
				}
				rf.mu.Unlock()
			}
		}
		if rf.remaining.Add(-1) == 0 {
			rs.finishFile(rf)
		}
	}
	return nil
}

// finishFile closes a file whose blobs are all written, verifies it when
// asked, and sets its metadata.
func (rs *restorer) finishFile(rf *restoreFile) {
	err := rf.err
	if cerr := rf.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && rs.opts.Verify {
		err = verifyFile(rs.r, rf.path, rf.node)
		if err == nil {
			rs.mu.Lock()
			rs.res.Verified++
			rs.mu.Unlock()
		}
	}
	if err != nil {
		// A file with a hole where a blob failed must not pass for a
		// restored one.
		_ = os.Remove(rf.path)
		rs.fail(rf.snapPath, err)
		return
	}
	setMeta(rf.path, rf.node)
	rs.mu.Lock()
	rs.res.Files++
	rs.res.Bytes += int64(rf.node.Size)
	rs.mu.Unlock()
	rs.opts.Progress.Add(0, 1)
}

// verifyFile reads a restored file back and checks each chunk's id.
func verifyFile(r *repo.Repository, p string, n *Node) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("verify %s: %w", p, err)
	}
	defer f.Close()
	var buf []byte
	var off int64
	for _, id := range n.Content {
		locs, err := r.LookupBlob(context.Background(), id)
		if err != nil || len(locs) == 0 {
			return fmt.Errorf("verify %s: blob %s not in index", p, id.Short())
		}
		size := int(locs[0].RawLength)
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(f, buf); err != nil {
			return fmt.Errorf("verify %s at offset %d: %w", p, off, err)
		}
		if r.BlobID(buf) != id {
			return fmt.Errorf("verify %s: content at offset %d does not match blob %s", p, off, id.Short())
		}
		off += int64(size)
	}
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return fmt.Errorf("verify %s: file is longer than the snapshot says (%d bytes)", p, off)
	}
	return nil
}

// firstFailure picks the failure to name in the error: a damaged
// repository when there is one (it changes what the user must do next),
// else the first.
func firstFailure(failed []FileError) FileError {
	for _, f := range failed {
		if errors.Is(f.Err, repo.ErrCorrupt) || errors.Is(f.Err, repo.ErrBlobNotFound) {
			return f
		}
	}
	return failed[0]
}

// mkdirNoFollow makes dp a real directory. Whatever else sits there (a
// symlink left by an earlier restore, a file) is removed first: following a
// symlink would write outside the target.
func mkdirNoFollow(dp string) error {
	fi, err := os.Lstat(dp)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		if err := os.Remove(dp); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return os.Mkdir(dp, 0o700)
}

// setMeta applies mode, ownership (when root) and times; failures to set
// metadata do not fail the restore (the content is what matters).
func setMeta(p string, n *Node) {
	if os.Geteuid() == 0 {
		_ = os.Lchown(p, int(n.UID), int(n.GID))
	}
	if n.Type != NodeSymlink {
		_ = os.Chmod(p, n.Mode.FileMode())
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.ModTime.UnixNano()), unix.NsecToTimespec(n.ModTime.UnixNano())}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// Restore restores a snapshot's plain paths into opts.Target, keeping their
// full original paths below it.
func Restore(ctx context.Context, r *repo.Repository, sn *Snapshot, opts RestoreOptions) (*RestoreResult, error) {
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	if sn.Summary != nil {
		opts.Progress.SetTotal(sn.Summary.BytesProcessed, sn.Summary.FilesNew+sn.Summary.FilesChanged+sn.Summary.FilesUnmodified)
	}
	if sn.Tree == nil {
		return &RestoreResult{}, nil
	}
	return RestoreTree(ctx, r, *sn.Tree, "/", opts)
}

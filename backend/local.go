package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempPrefix marks files that are not (yet) objects. Save creates them next to
// their target so the final publish is a same-directory link; List skips them
// and validKey refuses keys that would look like them.
const tempPrefix = ".tmp-"

// localBackend stores each object as a file under root. It is strata's own
// local store rather than gocloud's fileblob because fileblob never fsyncs and
// its create-only check is not atomic across processes.
type localBackend struct {
	// root is the absolute, symlink-resolved directory holding the objects.
	// Resolving matters: filepath.WalkDir does not descend into a root that
	// is itself a symlink.
	root string
	// location is the root as the user named it, for messages.
	location string
	// link publishes a finished temp file under its final name, failing if
	// the name exists. It is os.Link; tests swap it to exercise the fallback
	// for file systems without hard links.
	link func(oldname, newname string) error
}

var (
	_ Backend    = (*localBackend)(nil)
	_ Properties = (*localBackend)(nil)
	_ Streamer   = (*localBackend)(nil)
)

// openLocal opens an existing directory as a local backend.
func openLocal(dir string) (*localBackend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open %s: repository directory does not exist: %w", abs, ErrNotFound)
		}
		return nil, fmt.Errorf("open %s: %w", abs, err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open %s: not a directory", abs)
	}
	return &localBackend{root: resolved, location: abs, link: os.Link}, nil
}

// createLocal creates dir (and its parents) if needed and opens it.
func createLocal(dir string) (*localBackend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := mkdirAllSync(abs); err != nil {
		return nil, fmt.Errorf("create %s: %w", abs, mapNoSpace(err))
	}
	return openLocal(abs)
}

func (b *localBackend) path(key string) string {
	return filepath.Join(b.root, filepath.FromSlash(key))
}

// Save writes data to a temp file beside the target, fsyncs it, publishes it
// create-only, and fsyncs the directory so the new name survives a crash.
func (b *localBackend) Save(ctx context.Context, key string, data []byte) error {
	return b.saveWith(ctx, key, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// SaveFrom stores what r yields. From an *os.File the copy stays in the
// kernel (copy_file_range), so the bytes never pass through this process.
func (b *localBackend) SaveFrom(ctx context.Context, key string, r io.Reader) error {
	return b.saveWith(ctx, key, func(f *os.File) error {
		_, err := io.Copy(f, r)
		return err
	})
}

func (b *localBackend) saveWith(ctx context.Context, key string, write func(*os.File) error) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	if err := b.save(key, write); err != nil {
		return fmt.Errorf("save %s: %w", key, mapNoSpace(err))
	}
	return nil
}

func (b *localBackend) save(key string, write func(*os.File) error) (err error) {
	target := b.path(key)
	dir := filepath.Dir(target)

	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = b.mkdirs(key); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, tempPrefix+"*")
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	// The temp file never outlives Save: on success it is unlinked after the
	// publish, on failure here.
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = rmErr
		}
	}()

	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}

	if err = b.publish(tmp, target); err != nil {
		return err
	}
	// Remove the temp name before the directory sync so that one sync
	// covers both the new entry and the vanished temp entry.
	if err = os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

// publish makes tmp visible as target, failing with ErrExists if target
// exists. A hard link is atomic and create-only on every POSIX file system.
// Where links are unsupported (FAT, some network and FUSE mounts) it claims
// target with O_EXCL and renames over the claim: still exactly one winner, but
// the claimed name is briefly an empty file, and a crash between claim and
// rename leaves it empty.
func (b *localBackend) publish(tmp, target string) error {
	err := b.link(tmp, target)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return existsError(target)
	}
	if !linkUnsupported(err) {
		return err
	}
	claim, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError(target)
		}
		return err
	}
	if err := claim.Close(); err != nil {
		_ = os.Remove(target)
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		_ = os.Remove(target)
		return err
	}
	return nil
}

// existsError distinguishes an existing object from a directory occupying
// the name: the latter is a key-layout bug, and reporting ErrExists for it
// would make content-addressed callers believe their object is stored.
func existsError(target string) error {
	if fi, err := os.Lstat(target); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file", target)
	}
	return ErrExists
}

func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)
}

// mkdirs creates the directories of key below the root, fsyncing each
// one's parent so the new entries survive a crash. It never creates the root
// itself: a root that vanished (say, an unmounted disk under a mount point)
// must fail rather than fill the disk underneath.
func (b *localBackend) mkdirs(key string) error {
	parent := b.root
	segs := strings.Split(key, "/")
	for _, seg := range segs[:len(segs)-1] {
		dir := filepath.Join(parent, seg)
		if err := os.Mkdir(dir, 0o700); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("repository directory %s is gone: %w", b.location, err)
			}
			if !errors.Is(err, fs.ErrExist) {
				return err
			}
			fi, serr := os.Stat(dir)
			if serr != nil {
				return serr
			}
			if !fi.IsDir() {
				return fmt.Errorf("%s: not a directory", dir)
			}
			// It exists, perhaps only just, made by a concurrent Save that
			// may not have synced it yet. Syncing again is cheap and this
			// runs only on a key's first save into a new directory.
		}
		if err := syncDir(parent); err != nil {
			return err
		}
		parent = dir
	}
	return nil
}

// mkdirAllSync creates dir and any missing parents, fsyncing the parent of
// each directory it creates so the new entries survive a crash.
func mkdirAllSync(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		// A concurrent Save created it first. Sync the parent anyway: we
		// must not report our object durable before its directory is.
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
			return err
		}
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory so that entries created or removed in it are
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some file systems cannot sync directories; there is nothing more we
	// can do there, and failing every Save would make them unusable.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// mapNoSpace adds ErrNoSpace to disk-full and quota errors, keeping the
// original error in the chain too.
func mapNoSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// openObject opens key's file and checks it is a regular file (a directory
// is not an object).
func (b *localBackend) openObject(key string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(b.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil, ErrNotFound
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, nil, ErrNotFound
	}
	return f, fi, nil
}

// Load reads a section of the file through a SectionReader, so a retrying
// wrapper's repeated fn calls each get a fresh reader over the same range.
func (b *localBackend) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	f, fi, err := b.openObject(key)
	if err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	defer func() { _ = f.Close() }()
	n, err := rangeLength(fi.Size(), offset, length)
	if err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	return fn(&ctxReader{ctx: ctx, r: io.NewSectionReader(f, offset, n)})
}

// Stat reports the file's size and modification time.
func (b *localBackend) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := validKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := os.Stat(b.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			err = ErrNotFound
		}
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks only the directory that can hold keys with prefix: for
// "locks/ab" that is "locks", filtered by name.
func (b *localBackend) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validPrefix(prefix); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = b.path(prefix[:i])
	}
	// fnErr carries fn's error out of WalkDir untouched, so callers can
	// compare it.
	var fnErr error
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // nothing stored under this prefix yet
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p == start {
				return nil
			}
			// Descend only where keys can still match the prefix.
			dirKey := key + "/"
			if !strings.HasPrefix(dirKey, prefix) && !strings.HasPrefix(prefix, dirKey) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tempPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := fn(ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// Remove unlinks key's file. It uses unlink rather than os.Remove, which
// would also delete an empty directory of the same name.
func (b *localBackend) Remove(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	p := b.path(key)
	if err := syscall.Unlink(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) ||
			errors.Is(err, syscall.EISDIR) {
			err = ErrNotFound
		}
		return fmt.Errorf("remove %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	return nil
}

// Close has nothing to release: every call opens and closes its own files.
func (b *localBackend) Close() error { return nil }

// Connections is small: a local disk gains little from many parallel
// writers, and each Save already fsyncs.
func (b *localBackend) Connections() int { return localConnections }

// Location is the root directory as the user named it.
func (b *localBackend) Location() string { return b.location }

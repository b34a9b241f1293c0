package backend_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-backup/strata/backend"
)

// tempFiles lists leftover temp files under root.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestLocalNoTempFilesAfterFailedSave(t *testing.T) {
	for _, tt := range []struct {
		name string
		open func(dir string) (backend.Backend, error)
	}{
		{"link", func(dir string) (backend.Backend, error) { return backend.Open(t.Context(), dir) }},
		{"no-link", backend.OpenLocalWithoutLinks},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			b, err := tt.open(root)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if err := b.Save(ctx, "data/ab/abcd", []byte("original")); err != nil {
				t.Fatal(err)
			}
			if err := b.Save(ctx, "data/ab/abcd", []byte("replacement")); !errors.Is(err, backend.ErrExists) {
				t.Fatalf("second save: got %v, want ErrExists", err)
			}
			// A directory in the key's place is a layout bug, not an
			// existing object: no ErrExists, and no temp file either.
			if err := b.Save(ctx, "data/ab/dir/x", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := b.Save(ctx, "data/ab/dir", []byte("y")); err == nil || errors.Is(err, backend.ErrExists) {
				t.Fatalf("save over a directory: got %v, want a non-ErrExists error", err)
			}
			// A file in the place of a parent directory.
			if err := b.Save(ctx, "data/ab/abcd/below", []byte("z")); err == nil {
				t.Fatal("save below a file: no error")
			}
			if left := tempFiles(t, root); len(left) > 0 {
				t.Errorf("temp files left behind: %q", left)
			}
			got, err := backend.LoadAll(ctx, b, "data/ab/abcd")
			if err != nil || string(got) != "original" {
				t.Errorf("load = %q, %v; want the original", got, err)
			}
		})
	}
}

func TestLocalListIgnoresTempFiles(t *testing.T) {
	root := t.TempDir()
	b, err := backend.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), "data/ab/abcd", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// What a crash between CreateTemp and publish leaves behind.
	if err := os.WriteFile(filepath.Join(root, "data", "ab", ".tmp-123456"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := b.List(t.Context(), "", func(oi backend.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"data/ab/abcd"}) {
		t.Errorf("list = %q, want only data/ab/abcd", keys)
	}
	// Temp names are not keys, so they cannot be read or removed as objects.
	if _, err := b.Stat(t.Context(), "data/ab/.tmp-123456"); err == nil {
		t.Error("stat of a temp file succeeded")
	}
}

func TestLocalKeysCannotEscape(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "repo")
	b, err := backend.Create(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../escaped", "data/../../escaped", "/escaped", filepath.Join(parent, "escaped"), "..", "a/.."} {
		if err := b.Save(t.Context(), key, []byte("x")); err == nil {
			t.Errorf("save %q succeeded", key)
		}
		if err := b.Load(t.Context(), key, 0, 0, nil); err == nil || errors.Is(err, backend.ErrNotFound) {
			t.Errorf("load %q: got %v, want an invalid-key error", key, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "escaped")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a key escaped the root: %v", err)
	}
	if err := b.List(t.Context(), "../", func(backend.ObjectInfo) error { return nil }); err == nil {
		t.Error("list ../ succeeded")
	}
}

func TestLocalOpenMissingAndCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	_, err := backend.Open(t.Context(), dir)
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open of a missing dir: got %v, want ErrNotFound naming %s", err, dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open created the directory: %v", err)
	}
	b, err := backend.Create(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), "config", []byte("c")); err != nil {
		t.Fatal(err)
	}
	// Create of an existing repository directory is fine too.
	if _, err := backend.Create(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	b2, err := backend.Open(t.Context(), "file://"+filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := backend.LoadAll(t.Context(), b2, "config"); err != nil || string(got) != "c" {
		t.Errorf("load through file:// = %q, %v", got, err)
	}
	if backend.Connections(b2, 0) != 2 || backend.Location(b2) != dir {
		t.Errorf("connections %d, location %q; want 2, %q", backend.Connections(b2, 0), backend.Location(b2), dir)
	}

	file := filepath.Join(dir, "config")
	if _, err := backend.Open(t.Context(), file); err == nil {
		t.Error("open of a regular file succeeded")
	}
}

func TestLocalRelativeAndSymlinkedRoot(t *testing.T) {
	parent := t.TempDir()
	real := filepath.Join(parent, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(parent, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	b, err := backend.Open(t.Context(), link)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), "snapshots/s1", []byte("s")); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.List(t.Context(), "", func(backend.ObjectInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("list through a symlinked root: %d objects, %v", n, err)
	}

	t.Chdir(parent)
	rel, err := backend.Open(t.Context(), "real")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := backend.LoadAll(t.Context(), rel, "snapshots/s1"); err != nil || string(got) != "s" {
		t.Errorf("load through a relative root = %q, %v", got, err)
	}
	if loc := backend.Location(rel); !filepath.IsAbs(loc) {
		t.Errorf("location %q is not absolute", loc)
	}
}

func TestLocalRemoveLeavesDirectories(t *testing.T) {
	root := t.TempDir()
	b, err := backend.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), "data/ab/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// An empty directory is not an object: Remove must not delete it.
	if err := os.Mkdir(filepath.Join(root, "data", "cd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(t.Context(), "data/cd"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("remove of a directory: got %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "cd")); err != nil {
		t.Errorf("directory removed: %v", err)
	}
}

// A root that vanishes (an unmounted disk leaves an empty mount point) must
// not be recreated by Save: that would fill the disk underneath.
func TestLocalSaveDoesNotRecreateRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	b, err := backend.Create(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), "data/ab/x", []byte("x")); err == nil {
		t.Fatal("save into a vanished root succeeded")
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("save recreated the root: %v", err)
	}
}

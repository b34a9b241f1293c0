package snapshot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
)

func writeFile(t *testing.T, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
}

func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// makeSource builds a tree with every node type the archiver handles.
func makeSource(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "export")
	writeFile(t, filepath.Join(src, "nodes.csv"), randomData(1, 3<<20), 0o640)
	writeFile(t, filepath.Join(src, "rels.csv"), bytes.Repeat([]byte("a,b,KNOWS\n"), 100000), 0o644)
	writeFile(t, filepath.Join(src, "empty"), nil, 0o600)
	writeFile(t, filepath.Join(src, "sub", "dir", "ünïcødé 名前.json"), []byte(`{"x":1}`), 0o644)
	writeFile(t, filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	if err := os.Mkdir(filepath.Join(src, "emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nodes.csv", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "rels.csv"), old, old); err != nil {
		t.Fatal(err)
	}
	return src
}

// sameTree compares two directory trees: types, modes, mtimes (files),
// content and link targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("%s: missing in restore: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode().IsRegular():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: content differs", rel)
			}
			if !wi.ModTime().Equal(gi.ModTime()) {
				t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
		case wi.Mode()&fs.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(q)
			if a != b {
				t.Errorf("%s: link %q, want %q", rel, b, a)
			}
		case wi.IsDir() && rel != ".":
			if !wi.ModTime().Equal(gi.ModTime()) {
				t.Errorf("%s: dir mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := makeSource(t)
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Tags: []string{"nightly"}, Host: "h1"})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if res.Summary.FilesNew != 5 || res.Summary.BytesProcessed != 3<<20+1000000+7+10 {
		t.Errorf("summary %+v", res.Summary)
	}
	target := t.TempDir()
	rr, err := snapshot.Restore(ctx, repotest.Reopen(t, r), res.Snapshot, snapshot.RestoreOptions{Target: target, Verify: true})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if rr.Files != 5 || rr.Verified != 5 || rr.Symlinks != 1 {
		t.Errorf("restore result %+v", rr)
	}
	// Full original path below the target, as restic does.
	sameTree(t, src, filepath.Join(target, src))

	// Second backup of unchanged data: files reused from the parent, next
	// to nothing stored.
	res2, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Snapshot.Parent == nil || *res2.Snapshot.Parent != res.ID {
		t.Errorf("parent %v, want %s", res2.Snapshot.Parent, res.ID.Short())
	}
	// Only the trees of the directories above the target may be new (the
	// test created sibling temp dirs, so their mtimes moved).
	if res2.Summary.FilesUnmodified != 5 || res2.Summary.DirsUnmodified != 4 || res2.Summary.BytesAdded > 2048 {
		t.Errorf("unchanged re-backup: %+v", res2.Summary)
	}
	// Change one file: only it is read again.
	writeFile(t, filepath.Join(src, "sub", "dir", "ünïcødé 名前.json"), []byte(`{"x":2}`), 0o644)
	res3, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if res3.Summary.FilesChanged != 1 || res3.Summary.FilesUnmodified != 4 {
		t.Errorf("one changed file: %+v", res3.Summary)
	}
}

// TestSmallFilesReuseChunkBuffers guards the cost of a backup of many small
// files: each file's chunker asks for a chunk buffer (4.5 MiB with the
// default chunker) once more at its end, and a buffer dropped there was a
// new one, allocated and zeroed, for the next file (50,000 files of 4 KiB
// took 60 s instead of 3 s). With the buffers reused, the whole backup of
// 400 files allocates a few buffers' worth, not 400.
func TestSmallFilesReuseChunkBuffers(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := t.TempDir()
	const files = 400
	for i := range files {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%03d", i)), randomData(uint64(i), 100), 0o644)
	}
	p := r.Config().Chunker
	bufSize := min(p.MaxSize, p.MinSize+4<<p.AverageBits)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.FilesNew != files {
		t.Fatalf("backed up %d files, want %d", res.Summary.FilesNew, files)
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(files/8)*uint64(bufSize); got > limit {
		t.Errorf("backup of %d files of 100 bytes allocated %d MiB, want under %d MiB (%d chunk buffers)",
			files, got>>20, limit>>20, files/8)
	}
}

// TestDumpReusesBlobBuffers: a file's content is written with its blob
// buffers reused, not allocated anew for every blob (a graph tier's
// restore reads its content this way): dumping 64 MiB more allocates far
// less than 64 MiB more.
func TestDumpReusesBlobBuffers(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	dumpAlloc := func(size int) uint64 {
		data := randomData(uint64(size), size)
		res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Stdin: bytes.NewReader(data), StdinFilename: "f"})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = snapshot.Dump(ctx, r, res.Snapshot, "f", h)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatal("dump differs from the data")
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := dumpAlloc(16<<20), dumpAlloc(80<<20)
	t.Logf("dumps of 16 and 80 MiB allocated %d and %d MiB", small>>20, large>>20)
	if large > small+32<<20 {
		t.Errorf("dumps of 16 and 80 MiB allocated %d and %d MiB: the buffers grow with the data", small>>20, large>>20)
	}
}

// A dump cancelled at any moment while its blobs load ends, with the
// context's error: no load it queued is left for the writer to wait on.
func TestDumpCancelledEnds(t *testing.T) {
	r := repotest.New(t)
	data := randomData(11, 16<<20)
	res, err := snapshot.Backup(context.Background(), r, snapshot.BackupOptions{Stdin: bytes.NewReader(data), StdinFilename: "f"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- snapshot.Dump(ctx, r, res.Snapshot, "f", io.Discard) }()
		// Spread the cancels over the dump's run (a few ms here).
		time.Sleep(time.Duration(i%30) * 100 * time.Microsecond)
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("run %d: cancelled dump returned %v, want context.Canceled or success", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: cancelled dump has not returned after 10 s", i)
		}
	}
}

func TestBackupStdinAndDump(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	data := randomData(9, 2<<20)
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Stdin: bytes.NewReader(data), StdinFilename: "mydb.sql"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Snapshot.Paths; len(got) != 1 || got[0] != "/mydb.sql" {
		t.Errorf("paths %v", got)
	}
	var out bytes.Buffer
	if err := snapshot.Dump(ctx, r, res.Snapshot, "mydb.sql", &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Error("dump differs from stdin")
	}
	if err := snapshot.Dump(ctx, r, res.Snapshot, "nope", &out); !errors.Is(err, snapshot.ErrPathNotFound) {
		t.Errorf("dump of a missing path: %v", err)
	}
	if _, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Stdin: bytes.NewReader(nil), StdinFilename: "a/b"}); err == nil {
		t.Error("stdin filename with a slash accepted")
	}
}

func TestUnreadableFileMakesIncompleteSnapshot(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "ok.txt"), []byte("fine"), 0o644)
	// /proc/PID/mem stats as a regular file, but reading offset 0 fails
	// with EIO for every user, root included: a real unreadable file.
	bad := fmt.Sprintf("/proc/%d/mem", os.Getpid())
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src, bad}})
	if !errors.Is(err, snapshot.ErrIncomplete) {
		t.Fatalf("got %v, want ErrIncomplete", err)
	}
	if len(res.Snapshot.Incomplete) != 1 || res.Snapshot.Incomplete[0].Path != bad {
		t.Errorf("incomplete %+v", res.Snapshot.Incomplete)
	}
	list, _ := snapshot.List(ctx, r)
	if len(list) != 1 || len(list[0].Incomplete) != 1 {
		t.Errorf("%d snapshots, want the incomplete one kept and marked", len(list))
	}
	if _, err := snapshot.FindNode(ctx, r, *res.Snapshot.Tree, filepath.Join(src, "ok.txt")); err != nil {
		t.Errorf("readable file missing from the incomplete snapshot: %v", err)
	}
}

func TestExcludeAndInclude(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := makeSource(t)
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Excludes: snapshot.Patterns{"*.sh", "sub"}})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if _, err := snapshot.Restore(ctx, r, res.Snapshot, snapshot.RestoreOptions{Target: target, Include: snapshot.Patterns{"*.csv"}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.WalkDir(filepath.Join(target, src), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, filepath.Base(p))
		}
		return nil
	})
	if strings.Join(got, ",") != "nodes.csv,rels.csv" {
		t.Errorf("restored %v, want only the csv files", got)
	}
	if _, err := snapshot.FindNode(ctx, r, *res.Snapshot.Tree, filepath.Join(src, "run.sh")); !errors.Is(err, snapshot.ErrPathNotFound) {
		t.Errorf("excluded file is in the snapshot: %v", err)
	}
}

func TestCorruptPackDuringRestore(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), randomData(1, 1500000), 0o644)
	res, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	// A second file in its own pack.
	writeFile(t, filepath.Join(src, "b"), randomData(2, 100000), 0o644)
	res, err = snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := snapshot.FindNode(ctx, r, *res.Snapshot.Tree, filepath.Join(src, "a"))
	locs, _ := r.LookupBlob(ctx, n.Content[0])
	key := repo.ObjectKey(repo.PrefixData, locs[0].Pack)
	data, _ := backend.LoadAll(ctx, r.Backend(), key)
	data[locs[0].Offset+40] ^= 1
	_ = r.Backend().Remove(ctx, key)
	_ = r.Backend().Save(ctx, key, data)

	target := t.TempDir()
	rr, err := snapshot.Restore(ctx, r, res.Snapshot, snapshot.RestoreOptions{Target: target})
	if !errors.Is(err, snapshot.ErrRestoreFailed) || !strings.Contains(err.Error(), key) {
		t.Fatalf("got %v, want a failure naming %s", err, key)
	}
	if rr.Files != 1 {
		t.Errorf("restored %d files, want the undamaged one", rr.Files)
	}
	if _, err := os.Stat(filepath.Join(target, src, "a")); !os.IsNotExist(err) {
		t.Errorf("damaged file left on disk: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, src, "b")); !bytes.Equal(b, randomData(2, 100000)) {
		t.Error("undamaged file not restored intact")
	}
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		pat  string
		path string
		want bool
	}{
		{"*.csv", "/a/b/x.csv", true},
		{"*.csv", "/a/b/x.json", false},
		{"/a/b", "/a/b/c/d", true},
		{"/a/b", "/x/a/b", false},
		{"b", "/a/b/c", true},
		{"/a/**/d", "/a/b/c/d", true},
		{"/a/**/d", "/a/d", true},
		{"sub/*.json", "/x/sub/y.json", true},
	}
	for _, tc := range tests {
		if got := (snapshot.Patterns{tc.pat}).Match(tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pat, tc.path, got, tc.want)
		}
	}
}

package index_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
)

// memSource is a set of index objects held in memory: the cache's input.
type memSource map[chunk.ID]*index.File

func (m memSource) ListIndexes(ctx context.Context, fn func(chunk.ID) error) error {
	for id := range m {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

func (m memSource) LoadIndex(ctx context.Context, id chunk.ID) (*index.File, error) {
	f, ok := m[id]
	if !ok {
		return nil, fmt.Errorf("index %s: not found", id.Short())
	}
	return f, nil
}

func id(n byte) chunk.ID { return chunk.ID{n} }

func file(pack byte, blobs ...byte) *index.File {
	p := index.Pack{ID: id(pack)}
	for i, b := range blobs {
		p.Blobs = append(p.Blobs, index.Blob{ID: id(b), Offset: uint32(i * 100), Length: 100, RawLength: 90})
	}
	return &index.File{Packs: []index.Pack{p}}
}

func lookup(t *testing.T, c *index.Cache, blob byte) []chunk.ID {
	t.Helper()
	locs, err := c.Lookup(id(blob))
	if err != nil {
		t.Fatal(err)
	}
	var packs []chunk.ID
	for _, l := range locs {
		packs = append(packs, l.Pack)
	}
	return packs
}

func TestCacheSync(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	c, err := index.OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := memSource{id(100): file(1, 10, 11), id(101): file(2, 12)}
	if n, err := c.Sync(ctx, src); err != nil || n != 2 {
		t.Fatalf("first sync: %d, %v", n, err)
	}
	if got := lookup(t, c, 12); len(got) != 1 || got[0] != id(2) {
		t.Errorf("blob 12 in %v, want pack 2", got)
	}
	// A new object is added incrementally.
	src[id(102)] = file(3, 13)
	if n, _ := c.Sync(ctx, src); n != 1 {
		t.Errorf("incremental sync loaded %d, want 1", n)
	}
	// Prune writes an object superseding 100 and 101 (dropping blob 11),
	// before deleting them: while all are listed the old ones are dead.
	repl := file(4, 10, 12)
	repl.Supersedes = []chunk.ID{id(100), id(101)}
	src[id(103)] = repl
	if _, err := c.Sync(ctx, src); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, c, 11); len(got) != 0 {
		t.Errorf("blob 11 of a superseded index still found in %v", got)
	}
	if got := lookup(t, c, 10); len(got) != 1 || got[0] != id(4) {
		t.Errorf("blob 10 in %v, want only the new pack 4", got)
	}
	// A later sync must not bring the superseded objects back.
	if n, _ := c.Sync(ctx, src); n != 0 {
		t.Errorf("sync with nothing new loaded %d objects", n)
	}
	if got := lookup(t, c, 11); len(got) != 0 {
		t.Errorf("superseded entries came back: %v", got)
	}
	// The old objects are deleted: nothing changes for the reader.
	delete(src, id(100))
	delete(src, id(101))
	if _, err := c.Sync(ctx, src); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, c, 13); len(got) != 1 {
		t.Errorf("blob 13 lost: %v", got)
	}
	// A cache file reopened keeps its content; another process is refused.
	if _, err := index.OpenCache(path); err == nil {
		t.Error("second open of a held cache succeeded")
	}
	if n, _ := c.Len(); n != 3 {
		t.Errorf("cache holds %d entries, want 3", n)
	}
}

// TestCacheBulkLoad: a cold cache with many index objects is loaded in key
// order (bulkLoad), and holds exactly what adding the live objects one at a
// time gives: superseded objects left out, a blob stored in two packs found
// in both; the next sync adds a new object incrementally, and a rebuild
// (an object gone) gives the same again.
func TestCacheBulkLoad(t *testing.T) {
	ctx := context.Background()
	src := memSource{}
	var want = map[byte][]chunk.ID{}
	for o := range 20 {
		blobs := []byte{byte(3 * o), byte(3*o + 1), byte(3*o + 2)}
		src[id(byte(100+o))] = file(byte(o), blobs...)
		for _, b := range blobs {
			want[b] = []chunk.ID{id(byte(o))}
		}
	}
	// Object 120 replaces 100 and 101: blob 0 moves to pack 200, blob 1
	// stays only in 120 (pack 201 holds 1 and 3; 3 is also in pack 1).
	repl := &index.File{Supersedes: []chunk.ID{id(100), id(101)}, Packs: []index.Pack{
		{ID: id(200), Blobs: []index.Blob{{ID: id(0), Length: 10, RawLength: 9}}},
		{ID: id(201), Blobs: []index.Blob{{ID: id(1), Length: 10, RawLength: 9}, {ID: id(3), Length: 10, RawLength: 9}}},
	}}
	src[id(120)] = repl
	want[0], want[1], want[2] = []chunk.ID{id(200)}, []chunk.ID{id(201)}, nil
	want[3], want[4], want[5] = []chunk.ID{id(201)}, nil, nil // 101 is superseded: its blobs 3-5 only where 120 puts them

	check := func(c *index.Cache, what string) {
		t.Helper()
		for b := range byte(60) {
			got := lookup(t, c, b)
			if fmt.Sprint(got) != fmt.Sprint(want[b]) {
				t.Errorf("%s: blob %d in %v, want %v", what, b, got, want[b])
			}
		}
	}
	c, err := index.OpenCache(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := c.Sync(ctx, src)
	if err != nil || n != 19 {
		t.Fatalf("cold sync: %d objects, %v; want the 19 live ones", n, err)
	}
	check(c, "cold sync")
	if entries, _ := c.Len(); entries != 3*18+3 {
		t.Errorf("cache holds %d entries, want %d", entries, 3*18+3)
	}
	src[id(121)] = file(90, 90)
	want[90] = []chunk.ID{id(90)}
	if n, err := c.Sync(ctx, src); err != nil || n != 1 {
		t.Fatalf("incremental sync: %d, %v", n, err)
	}
	check(c, "incremental sync")
	delete(src, id(100))
	delete(src, id(101))
	delete(src, id(119))
	for _, b := range []byte{57, 58, 59} {
		want[b] = nil
	}
	// The rebuild goes through the bulk load, which reads each object once
	// (the per-object rebuild reads each twice: once for what it
	// supersedes, once to add it).
	counted := &countingSource{memSource: src}
	if _, err := c.Sync(ctx, counted); err != nil {
		t.Fatal(err)
	}
	if counted.loads != len(src) {
		t.Errorf("rebuild loaded %d index objects, want each of the %d once", counted.loads, len(src))
	}
	check(c, "rebuild")
}

// countingSource counts LoadIndex calls.
type countingSource struct {
	memSource
	loads int
}

func (c *countingSource) LoadIndex(ctx context.Context, id chunk.ID) (*index.File, error) {
	c.loads++
	return c.memSource.LoadIndex(ctx, id)
}

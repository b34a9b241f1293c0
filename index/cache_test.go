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

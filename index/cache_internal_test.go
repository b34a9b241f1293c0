package index

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/strata-backup/strata/chunk"
)

type oneSource map[chunk.ID]*File

func (m oneSource) ListIndexes(_ context.Context, fn func(chunk.ID) error) error {
	for id := range m {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

func (m oneSource) LoadIndex(_ context.Context, id chunk.ID) (*File, error) { return m[id], nil }

// TestCacheInterruptedBulkLoad: a bulk load writes without fsync, so a
// crash in the middle may leave torn pages. The load's mark, still in the
// file, makes the next open start from an empty cache, which the next Sync
// fills again; a finished load leaves no mark, and its content stays.
func TestCacheInterruptedBulkLoad(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	src := oneSource{{1}: {Packs: []Pack{{ID: chunk.ID{2}, Blobs: []Blob{{ID: chunk.ID{3}, Type: DataBlob, Length: 10, RawLength: 10}}}}}}
	count := func(c *Cache) int {
		t.Helper()
		n, err := c.Len()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	c, err := OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Sync(ctx, src); err != nil || n != 1 {
		t.Fatalf("sync: %d objects, %v", n, err)
	}
	if loading(c.db) {
		t.Fatal("a finished load left its mark")
	}
	// A load that stops without ending: the process died in it.
	if err := c.bulk(true); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(chunk.ID{4}, &File{Packs: []Pack{{ID: chunk.ID{5}, Blobs: []Blob{{ID: chunk.ID{6}, Type: DataBlob}}}}}); err != nil {
		t.Fatal(err)
	}
	c.db.NoSync = false
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c, err = OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(c); n != 0 {
		t.Errorf("after an interrupted load the cache holds %d entries, want a new empty cache", n)
	}
	if n, err := c.Sync(ctx, src); err != nil || n != 1 {
		t.Fatalf("sync after recreating: %d objects, %v", n, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := count(c); n != 1 {
		t.Errorf("a cache closed after a finished load holds %d entries on reopening, want 1", n)
	}
}

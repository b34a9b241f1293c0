package index_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
)

// BenchmarkCacheLookup measures what a command pays for the index cache
// of a repository of STRATA_BENCH_LOOKUP_BLOBS (default 1,000,000) random
// blobs: "hit" asks for stored blobs, "miss" for new ones (every chunk of
// a first backup), both in random order, and "open" opens and closes the
// cache file, which every command that reads the index does once.
//
//	STRATA_BENCH_LOOKUP_BLOBS=10000000 go test -run '^$' -bench BenchmarkCacheLookup ./index/
func BenchmarkCacheLookup(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("STRATA_BENCH_LOOKUP_BLOBS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("STRATA_BENCH_LOOKUP_BLOBS=%q: want a positive count", s)
		}
		n = v
	}
	rng := rand.New(rand.NewChaCha8([32]byte{9}))
	randID := func() (id chunk.ID) {
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		return id
	}
	const perObject, perPack = 50_000, 1_000
	src := memSource{}
	stored := make([]chunk.ID, 0, min(n, 1<<16))
	for done := 0; done < n; {
		f := &index.File{}
		for obj := 0; obj < perObject && done < n; {
			p := index.Pack{ID: randID()}
			for k := 0; k < perPack && obj < perObject && done < n; k++ {
				bl := index.Blob{ID: randID(), Type: index.DataBlob, Length: 1000, RawLength: 3000, Compressed: true}
				p.Blobs = append(p.Blobs, bl)
				if len(stored) < cap(stored) && rng.IntN(n/cap(stored)+1) == 0 {
					stored = append(stored, bl.ID)
				}
				obj++
				done++
			}
			f.Packs = append(f.Packs, p)
		}
		src[randID()] = f
	}
	path := filepath.Join(b.TempDir(), "index.db")
	c, err := index.OpenCache(path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { c.Close() }()
	if _, err := c.Sync(context.Background(), src); err != nil {
		b.Fatal(err)
	}
	fresh := make([]chunk.ID, 1<<16)
	for i := range fresh {
		fresh[i] = randID()
	}
	for _, tc := range []struct {
		name string
		ids  []chunk.ID
		want bool
	}{{"hit", stored, true}, {"miss", fresh, false}} {
		b.Run(tc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				locs, err := c.Lookup(tc.ids[i%len(tc.ids)])
				if err != nil || (len(locs) > 0) != tc.want {
					b.Fatalf("lookup %d: %d locations, %v", i, len(locs), err)
				}
				i++
			}
		})
	}
	b.Run("open", func(b *testing.B) {
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if c, err = index.OpenCache(path); err != nil {
				b.Fatal(err)
			}
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
		}
		if c, err = index.OpenCache(path); err != nil {
			b.Fatal(err)
		}
	})
}

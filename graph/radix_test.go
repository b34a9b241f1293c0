package graph

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRadixSort holds radixSort to a stable comparison sort, on keys that
// share long prefixes, tie within their first 8 bytes, repeat (stability
// shows in the input order of equal keys) or are shorter than a prefix.
func TestRadixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := map[string]func(i int) []byte{
		"numeric ids": func(i int) []byte { return fmt.Appendf(nil, "n%d", r.IntN(100000)) },
		"long shared prefix": func(i int) []byte {
			return fmt.Appendf(nil, "person:0000000%d", r.IntN(50))
		},
		"short and empty": func(i int) []byte { return []byte("abc"[:r.IntN(4)]) },
		"random bytes": func(i int) []byte {
			b := make([]byte, r.IntN(12))
			for j := range b {
				b[j] = byte(r.IntN(4)) * 85
			}
			return b
		},
	}
	for name, key := range shapes {
		for _, n := range []int{0, 1, 63, 64, 1000, 20000} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				keys := make([][]byte, n)
				items := make([]itemRef, n)
				for i := range keys {
					keys[i] = key(i)
					items[i] = itemRef{pfx: bytesPrefix(keys[i]), blk: int32(i)}
				}
				less := func(a, b itemRef) int { return bytes.Compare(keys[a.blk], keys[b.blk]) }
				want := slices.Clone(items)
				slices.SortStableFunc(want, less)
				got, _ := radixSort(items, nil, less)
				if len(got) != n {
					t.Fatalf("%d items out of %d", len(got), n)
				}
				for i := range got {
					if got[i].blk != want[i].blk {
						t.Fatalf("item %d: key %q (input %d), want %q (input %d)", i,
							keys[got[i].blk], got[i].blk, keys[want[i].blk], want[i].blk)
					}
				}
			})
		}
	}
}

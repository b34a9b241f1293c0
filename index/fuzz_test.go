package index_test

import (
	"testing"

	"github.com/strata-backup/strata/index"
)

// FuzzDecode: index objects come from storage; no input may panic, and an
// accepted one survives an encode/decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"packs":[{"id":"` + hex64 + `","blobs":[{"id":"` + hex64 + `","type":"data","offset":0,"length":40,"raw_length":0}]}]}`))
	f.Add([]byte(`{"supersedes":["` + hex64 + `"],"packs":[]}`))
	f.Add([]byte(`{"packs":[{"blobs":[{"type":"tree","offset":4294967295,"length":2}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := index.Decode(b)
		if err != nil {
			return
		}
		enc, err := file.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := index.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded index rejected: %v", err)
		}
		if len(again.Packs) != len(file.Packs) {
			t.Fatal("round trip changed the packs")
		}
		for _, p := range file.Packs {
			for _, bl := range p.Blobs {
				if uint64(bl.Offset)+uint64(bl.Length) > 1<<32 {
					t.Fatal("accepted a range past 4 GiB")
				}
			}
		}
	})
}

const hex64 = "ab00000000000000000000000000000000000000000000000000000000000000"

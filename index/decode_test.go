package index

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/strata-backup/strata/chunk"
)

func sampleFiles() []*File {
	id := func(n byte) chunk.ID { return chunk.ID{n, 0xab, 0x0f, 31: n} }
	return []*File{
		{},
		{Packs: []Pack{}},
		{Packs: []Pack{{ID: id(1)}}},
		{Packs: []Pack{{ID: id(1), Blobs: []Blob{}}}},
		{Supersedes: []chunk.ID{id(7), id(8)}, Packs: []Pack{
			{ID: id(1), Blobs: []Blob{
				{ID: id(2), Type: DataBlob, Offset: 0, Length: 40, RawLength: 0},
				{ID: id(3), Type: TreeBlob, Offset: 40, Length: 4294967255, RawLength: 4294967295, Compressed: true},
			}},
			{ID: id(4), Blobs: []Blob{{ID: id(5), Type: DataBlob, Offset: 10, Length: 1, RawLength: 10, Compressed: true}}},
		}},
	}
}

// TestDecodeFastTakesWhatEncodeWrites: every object Encode writes is read
// by the fast path (none falls back to encoding/json) and comes back equal.
func TestDecodeFastTakesWhatEncodeWrites(t *testing.T) {
	for i, f := range sampleFiles() {
		b, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeFast(b)
		if !ok {
			t.Errorf("file %d: the fast path refused what Encode wrote: %s", i, b)
			continue
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("file %d: decoded %+v, want %+v", i, got, f)
		}
	}
}

// FuzzDecodeFast: whatever the fast path accepts, encoding/json accepts
// too and decodes to the same File, so Decode means the same with or
// without it.
func FuzzDecodeFast(f *testing.F) {
	for _, file := range sampleFiles() {
		b, _ := file.Encode()
		f.Add(b)
	}
	f.Add([]byte(`{"packs":[{"id":"` + "AB" + string(make([]byte, 62)) + `","blobs":null}]}`))
	f.Add([]byte(`{"packs":[{"id":"0000000000000000000000000000000000000000000000000000000000000000","blobs":[{"id":"0000000000000000000000000000000000000000000000000000000000000000","type":"data","offset":01,"length":1,"raw_length":1}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeFast(b)
		if !ok {
			return
		}
		var slow File
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("the fast path accepted what encoding/json rejects (%v): %q", err, b)
		}
		if !reflect.DeepEqual(fast, &slow) {
			t.Fatalf("the fast path read %+v, encoding/json %+v, from %q", fast, slow, b)
		}
	})
}

// BenchmarkDecode decodes an index object of 50,000 entries, as Encode
// writes it (the fast path), and the same through encoding/json.
func BenchmarkDecode(b *testing.B) {
	var f File
	var n byte
	next := func() (id chunk.ID) {
		n++
		for i := range id {
			id[i] = n*31 + byte(i)*7
		}
		return id
	}
	for p := 0; p < 50; p++ {
		pk := Pack{ID: next()}
		for k := 0; k < 1000; k++ {
			pk.Blobs = append(pk.Blobs, Blob{ID: next(), Type: DataBlob, Offset: uint32(k) << 14, Length: 12345, RawLength: 1 << 20, Compressed: true})
		}
		f.Packs = append(f.Packs, pk)
	}
	data, err := f.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var g File
			if err := json.Unmarshal(data, &g); err != nil {
				b.Fatal(err)
			}
		}
	})
}

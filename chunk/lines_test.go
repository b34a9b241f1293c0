package chunk_test

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/strata-backup/strata/chunk"
)

// Small bounds, so that a test stream of a few MiB makes hundreds of chunks.
var lineParams = chunk.Params{MinSize: 4 << 10, MaxSize: 64 << 10, AverageBits: 13}

// testLines makes n lines of 20–400 bytes with unique prefixes, as records.
func testLines(rng *rand.Rand, n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		b := fmt.Appendf(nil, `{"id":"n%d","v":"`, i)
		for range 20 + rng.IntN(380) {
			b = append(b, byte('a'+rng.IntN(26)))
		}
		lines[i] = append(b, '"', '}')
	}
	return lines
}

func join(lines [][]byte) []byte {
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	return b
}

// cutLines chunks data with key, handing it to Write in pieces of random
// sizes (up to maxPiece); maxPiece 0 writes each line with WriteLine.
func cutLines(t testing.TB, p chunk.Params, key [32]byte, lines [][]byte, maxPiece int, seed uint64) [][]byte {
	var chunks [][]byte
	c := chunk.NewLineChunker(p, key, func() []byte { return make([]byte, 0, 16) }, func(b []byte) error {
		chunks = append(chunks, b)
		return nil
	})
	if maxPiece == 0 {
		for _, l := range lines {
			if err := c.WriteLine(l); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		rng := rand.New(rand.NewPCG(seed, 0))
		data := join(lines)
		for len(data) > 0 {
			n := min(len(data), 1+rng.IntN(maxPiece))
			if k, err := c.Write(data[:n]); err != nil || k != n {
				t.Fatalf("write %d bytes: wrote %d, %v", n, k, err)
			}
			data = data[n:]
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return chunks
}

func TestLineChunker(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	lines := testLines(rng, 20000)
	data := join(lines)
	key := [32]byte{7}
	want := cutLines(t, lineParams, key, lines, 0, 0)

	// Every way of handing over the same bytes gives the same chunks.
	for _, piece := range []int{1, 7, 300, 5000, 200 << 10} {
		got := cutLines(t, lineParams, key, lines, piece, uint64(piece))
		if len(got) != len(want) {
			t.Fatalf("pieces of up to %d bytes: %d chunks, want %d", piece, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("pieces of up to %d bytes: chunk %d differs", piece, i)
			}
		}
	}

	if !bytes.Equal(bytes.Join(want, nil), data) {
		t.Fatal("chunks do not reassemble the stream")
	}
	var total int
	for i, c := range want {
		if len(c) > int(lineParams.MaxSize) {
			t.Errorf("chunk %d has %d bytes, above the maximum", i, len(c))
		}
		if i < len(want)-1 && len(c) < int(lineParams.MinSize) {
			t.Errorf("chunk %d has %d bytes, below the minimum", i, len(c))
		}
		if c[len(c)-1] != '\n' {
			t.Errorf("chunk %d does not end at a line end", i)
		}
		total += len(c)
	}
	// The mean is about MinSize + 2^AverageBits, as with the byte-level
	// chunker (this stream gives 12 KiB).
	mean := float64(total) / float64(len(want))
	t.Logf("%d chunks, mean %.0f bytes", len(want), mean)
	if exp := float64(lineParams.MinSize + 1<<lineParams.AverageBits); mean < 0.8*exp || mean > 1.25*exp {
		t.Errorf("mean chunk %.0f bytes, want about %.0f", mean, exp)
	}

	// Another key cuts elsewhere.
	other := cutLines(t, lineParams, [32]byte{8}, lines, 0, 0)
	if len(other) == len(want) && bytes.Equal(other[0], want[0]) && bytes.Equal(other[1], want[1]) {
		t.Error("a different key gives the same boundaries")
	}
}

// A changed, inserted or removed line costs only the chunks around it:
// every other chunk is stored again byte for byte (deduplicates).
func TestLineChunkerLocality(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	lines := testLines(rng, 20000)
	key := [32]byte{9}
	before := cutLines(t, lineParams, key, lines, 0, 0)
	have := make(map[string]bool)
	for _, c := range before {
		have[string(c)] = true
	}
	edits := map[string]func([][]byte) [][]byte{
		"edit": func(l [][]byte) [][]byte {
			l[10000] = append(append([]byte(nil), l[10000][:len(l[10000])-2]...), `xyz"}`...)
			return l
		},
		"insert": func(l [][]byte) [][]byte {
			return append(l[:10000], append([][]byte{[]byte(`{"id":"new"}`)}, l[10000:]...)...)
		},
		"remove": func(l [][]byte) [][]byte { return append(l[:10000], l[10001:]...) },
	}
	for name, edit := range edits {
		after := cutLines(t, lineParams, key, edit(append([][]byte(nil), lines...)), 0, 0)
		var fresh int
		for _, c := range after {
			if !have[string(c)] {
				fresh++
			}
		}
		t.Logf("%s: %d of %d chunks new", name, fresh, len(after))
		// The chunk holding the line, and the next if the line was (or
		// became) a boundary or the minimum shifted one.
		if fresh < 1 || fresh > 3 {
			t.Errorf("%s: %d of %d chunks are new, want 1 to 3", name, fresh, len(after))
		}
	}
}

// A line longer than MaxSize is cut at MaxSize.
func TestLineChunkerLongLine(t *testing.T) {
	long := bytes.Repeat([]byte("x"), int(lineParams.MaxSize)*2+100)
	lines := [][]byte{[]byte("a"), long, []byte("b")}
	for _, piece := range []int{0, 1000} {
		chunks := cutLines(t, lineParams, [32]byte{1}, lines, piece, 1)
		if !bytes.Equal(bytes.Join(chunks, nil), join(lines)) {
			t.Fatalf("pieces %d: chunks do not reassemble the stream", piece)
		}
		if len(chunks) != 3 || len(chunks[0]) != int(lineParams.MaxSize) || len(chunks[1]) != int(lineParams.MaxSize) {
			t.Errorf("pieces %d: chunk sizes %d, want two of %d and the rest", piece, chunkSizes(chunks), lineParams.MaxSize)
		}
	}
}

func chunkSizes(chunks [][]byte) []int {
	var n []int
	for _, c := range chunks {
		n = append(n, len(c))
	}
	return n
}

// An error from emit stops the chunker and comes back from every call.
func TestLineChunkerEmitError(t *testing.T) {
	boom := fmt.Errorf("disk full")
	c := chunk.NewLineChunker(lineParams, [32]byte{}, func() []byte { return nil }, func([]byte) error { return boom })
	data := join(testLines(rand.New(rand.NewPCG(1, 1)), 2000))
	if _, err := c.Write(data); err != boom {
		t.Fatalf("Write: %v, want %v", err, boom)
	}
	if err := c.WriteLine([]byte("x")); err != boom {
		t.Fatalf("WriteLine after the error: %v", err)
	}
	if err := c.Close(); err != boom {
		t.Fatalf("Close after the error: %v", err)
	}
}

func FuzzLineChunker(f *testing.F) {
	f.Add([]byte("a\nbb\nccc\n"), uint16(3))
	f.Add(bytes.Repeat([]byte("xyz\n"), 5000), uint16(17))
	f.Fuzz(func(t *testing.T, data []byte, piece uint16) {
		p := chunk.Params{MinSize: 64, MaxSize: 512, AverageBits: 10}
		var whole, split [][]byte
		for _, out := range []*[][]byte{&whole, &split} {
			c := chunk.NewLineChunker(p, [32]byte{2}, func() []byte { return nil }, func(b []byte) error {
				*out = append(*out, b)
				return nil
			})
			step := len(data) + 1
			if out == &split {
				step = int(piece%600) + 1
			}
			for d := data; len(d) > 0; {
				n := min(step, len(d))
				if _, err := c.Write(d[:n]); err != nil {
					t.Fatal(err)
				}
				d = d[n:]
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(bytes.Join(whole, nil), data) {
			t.Fatal("chunks do not reassemble the input")
		}
		if len(whole) != len(split) {
			t.Fatalf("%d chunks written whole, %d written in pieces", len(whole), len(split))
		}
		for i := range whole {
			if !bytes.Equal(whole[i], split[i]) || len(whole[i]) > int(p.MaxSize) || len(whole[i]) == 0 {
				t.Fatalf("chunk %d: %d bytes whole, %d in pieces", i, len(whole[i]), len(split[i]))
			}
		}
	})
}

// The boundaries are the ones docs/design.md (section 9) specifies, so that
// another implementation can reproduce them: this is that text, line by line.
func TestLineChunkerRule(t *testing.T) {
	lines := testLines(rand.New(rand.NewPCG(11, 12)), 5000)
	key := [32]byte{3, 1, 4}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		t.Fatal(err)
	}
	var want []int // chunk sizes by the rule
	size := 0
	for _, l := range lines {
		line := append(append([]byte(nil), l...), '\n')
		size += len(line)
		var in, out [16]byte
		binary.LittleEndian.PutUint32(in[0:4], crc32.Checksum(line, crc32.MakeTable(crc32.Castagnoli)))
		binary.LittleEndian.PutUint64(in[4:12], uint64(len(line)))
		block.Encrypt(out[:], in[:])
		ends := binary.LittleEndian.Uint64(out[:8]) < uint64(len(line))<<(64-lineParams.AverageBits)
		if size >= int(lineParams.MinSize) && ends {
			want = append(want, size)
			size = 0
		}
	}
	if size > 0 {
		want = append(want, size)
	}
	got := chunkSizes(cutLines(t, lineParams, key, lines, 0, 0))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("chunk sizes %v,\nthe rule gives %v", got, want)
	}
}

func BenchmarkLineChunker(b *testing.B) {
	lines := testLines(rand.New(rand.NewPCG(1, 2)), 20000)
	p := chunk.DefaultParams(0x3DA3358B4DC173)
	buf := make([]byte, 0, p.MaxSize)
	var n int
	for _, l := range lines {
		n += len(l) + 1
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		c := chunk.NewLineChunker(p, [32]byte{1}, func() []byte { return buf[:0] }, func([]byte) error { return nil })
		for _, l := range lines {
			if err := c.WriteLine(l); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// The same stream through the Rabin chunker (restic/chunker's cuts, found
// four chains at a time), for comparison.
func BenchmarkRabinChunker(b *testing.B) {
	data := join(testLines(rand.New(rand.NewPCG(1, 2)), 20000))
	p := chunk.DefaultParams(0x3DA3358B4DC173)
	buf := make([]byte, 0, p.MaxSize)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := chunk.NewChunker(bytes.NewReader(data), p)
		for {
			if _, err := c.Next(buf); err != nil {
				break
			}
		}
	}
}

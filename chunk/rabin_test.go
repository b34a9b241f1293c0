package chunk_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/restic/chunker"

	"github.com/strata-backup/strata/chunk"
)

const testPol = 0x3DA3358B4DC173

// resticCuts is the oracle: the chunk lengths restic/chunker gives.
func resticCuts(t testing.TB, data []byte, p chunk.Params) []int {
	c := chunker.NewWithBoundaries(bytes.NewReader(data), chunker.Pol(p.Polynomial), p.MinSize, p.MaxSize)
	c.SetAverageBits(p.AverageBits)
	var out []int
	for {
		ch, err := c.Next(nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, len(ch.Data))
	}
}

// strataCuts runs chunk.Chunker over rd, with buffers of capacity MaxSize,
// and checks that the chunks reassemble data.
func strataCuts(t testing.TB, rd io.Reader, data []byte, p chunk.Params) []int {
	return strataCutsBuf(t, rd, data, p, int(p.MaxSize))
}

// strataCutsBuf is strataCuts with buffers of capacity bufCap, which Next
// grows when a chunk needs more.
func strataCutsBuf(t testing.TB, rd io.Reader, data []byte, p chunk.Params, bufCap int) []int {
	c := chunk.NewChunker(rd, p)
	var out []int
	var all []byte
	for {
		ch, err := c.Next(make([]byte, 0, bufCap))
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ch) == 0 || uint(len(ch)) > p.MaxSize {
			t.Fatalf("chunk of %d bytes, want 1..%d", len(ch), p.MaxSize)
		}
		out = append(out, len(ch))
		all = append(all, ch...)
	}
	if !bytes.Equal(all, data) {
		t.Fatalf("%d chunks do not reassemble the %d input bytes", len(out), len(data))
	}
	return out
}

func sameCuts(t testing.TB, got, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d chunks, restic/chunker cuts %d: %v against %v", len(got), len(want), head(got), head(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("chunk %d is %d bytes, restic/chunker's %d", i, got[i], want[i])
		}
	}
}

func head(s []int) []int { return s[:min(len(s), 8)] }

// randomBytes returns n bytes from a PCG seeded with seed, eight at a time.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, (n+7)&^7)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b[:n]
}

// lowEntropy repeats a few short words: long runs without cuts, and
// windows that repeat.
func lowEntropy(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 9))
	words := []string{`{"id":"`, `","labels":["Person"]}`, "\n", "aaaa", "0123456789"}
	var b []byte
	for len(b) < n {
		b = append(b, words[rng.IntN(len(words))]...)
	}
	return b[:n]
}

// TestChunkerMatchesRestic: the same cuts as restic/chunker, for default
// and small bounds, random and repetitive data, and readers that return
// short reads.
func TestChunkerMatchesRestic(t *testing.T) {
	def := chunk.DefaultParams(testPol)
	small := chunk.Params{Polynomial: testPol, MinSize: 4 << 10, MaxSize: 64 << 10, AverageBits: 13}
	tiny := chunk.Params{Polynomial: testPol, MinSize: 65, MaxSize: 4 << 10, AverageBits: 10}
	atWindow := chunk.Params{Polynomial: testPol, MinSize: 64, MaxSize: 4 << 10, AverageBits: 10} // the least Validate admits
	dense := chunk.Params{Polynomial: testPol, MinSize: 1 << 10, MaxSize: 1 << 20, AverageBits: 15}
	fixed := chunk.Params{Polynomial: testPol, MinSize: 8 << 10, MaxSize: 8 << 10, AverageBits: 20}
	cases := []struct {
		name string
		data []byte
		p    chunk.Params
	}{
		{"default, random 20 MiB", randomBytes(1, 20<<20), def},
		{"default, repetitive 12 MiB", lowEntropy(2, 12<<20), def},
		{"default, shorter than min", randomBytes(3, 100<<10), def},
		{"default, empty", nil, def},
		{"default, exactly max", randomBytes(4, 8<<20), def},
		{"small, random 3 MiB", randomBytes(5, 3<<20), small},
		{"small, repetitive 3 MiB", lowEntropy(6, 3<<20), small},
		{"tiny, random", randomBytes(7, 300<<10), tiny},
		{"at the window, random", randomBytes(8, 100<<10), atWindow},
		{"at the window, long chunks", randomBytes(16, 4<<20), chunk.Params{Polynomial: testPol, MinSize: 64, MaxSize: 1 << 20, AverageBits: 17}},
		{"min = max", randomBytes(9, 100<<10+17), fixed},
		// Cuts about every 32 KiB over a long range: the four-piece
		// search often finds cuts in several pieces of one group.
		{"dense, random 4 MiB", randomBytes(13, 4<<20), dense},
		{"dense, repetitive 4 MiB", lowEntropy(14, 4<<20), dense},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.p.Validate(); err != nil {
				t.Fatal(err)
			}
			want := resticCuts(t, c.data, c.p)
			sameCuts(t, strataCuts(t, bytes.NewReader(c.data), c.data, c.p), want)
			if len(c.data) < 4<<20 {
				sameCuts(t, strataCuts(t, iotest.OneByteReader(bytes.NewReader(c.data)), c.data, c.p), want)
			}
			sameCuts(t, strataCuts(t, iotest.HalfReader(bytes.NewReader(c.data)), c.data, c.p), want)
			// Buffers smaller than a chunk grow (the backup's start at
			// MinSize + 4 x the mean, below MaxSize).
			sameCuts(t, strataCutsBuf(t, bytes.NewReader(c.data), c.data, c.p, int(c.p.MinSize)/2), want)
		})
	}
}

// TestChunkerReusesBuffer: Next allocates only for a chunk larger than the
// buffer. The backup's buffers hold MinSize + 4 x the mean, less than
// MaxSize; with MaxSize they never need to grow.
func TestChunkerReusesBuffer(t *testing.T) {
	p := chunk.Params{Polynomial: testPol, MinSize: 4 << 10, MaxSize: 64 << 10, AverageBits: 13}
	for _, c := range []struct {
		bufCap int
		most   float64 // allocations a chunk
	}{
		{int(p.MaxSize), 0},
		// A chunk outgrows MinSize + 4 x 8 KiB about once in e^4.
		{int(p.MinSize) + 4<<p.AverageBits, 0.1},
	} {
		ch := chunk.NewChunker(bytes.NewReader(randomBytes(15, 32<<20)), p)
		buf := make([]byte, 0, c.bufCap)
		for range 10 {
			if _, err := ch.Next(buf); err != nil {
				t.Fatal(err)
			}
		}
		if a := testing.AllocsPerRun(500, func() {
			if _, err := ch.Next(buf); err != nil {
				t.Fatal(err)
			}
		}); a > c.most {
			t.Errorf("buffer of %d bytes: Next allocates %.2f times a chunk, want at most %.2f", c.bufCap, a, c.most)
		}
	}
}

// TestChunkerGraphData: the same cuts on real graph data (the LDBC SNB CSV
// files and the SNAP edge list, concatenated), when the shared data set is
// there.
func TestChunkerGraphData(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data")
	files, _ := filepath.Glob(filepath.Join(dir, "ldbc-snb-interactive-v1-test", "vanilla", "*", "*.csv"))
	files = append(files, filepath.Join(dir, "snap-email-eu-core", "email-Eu-core.txt"))
	var data []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("%v (the shared data set is not on this machine)", err)
		}
		data = append(data, b...)
	}
	for _, p := range []chunk.Params{
		{Polynomial: testPol, MinSize: 64 << 10, MaxSize: 1 << 20, AverageBits: 17},
		{Polynomial: testPol, MinSize: 4 << 10, MaxSize: 32 << 10, AverageBits: 12},
	} {
		sameCuts(t, strataCuts(t, bytes.NewReader(data), data, p), resticCuts(t, data, p))
	}
}

func TestChunkerReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	data := randomBytes(10, 1<<20)
	rd := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom))
	c := chunk.NewChunker(rd, chunk.DefaultParams(testPol))
	for {
		_, err := c.Next(nil)
		if errors.Is(err, boom) {
			return
		}
		if err != nil {
			t.Fatalf("got %v, want the reader's error", err)
		}
	}
}

func FuzzChunkerMatchesRestic(f *testing.F) {
	f.Add([]byte("hello"), uint16(100), uint16(1000), uint8(0), uint16(0))
	f.Add(randomBytes(11, 20000), uint16(200), uint16(3000), uint8(1), uint16(7))
	f.Add(lowEntropy(12, 30000), uint16(65), uint16(65), uint8(2), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, minSize, span uint16, bits uint8, chunkRead uint16) {
		// Bounds small enough that the fuzzer's inputs hold several
		// chunks, from the least MinSize Validate admits.
		lo := 64 + uint(minSize)%2048
		p := chunk.Params{Polynomial: testPol, MinSize: lo, MaxSize: lo + uint(span)%8192, AverageBits: 10 + int(bits%4)}
		if p.Validate() != nil {
			return
		}
		var rd io.Reader = bytes.NewReader(data)
		if chunkRead > 0 {
			rd = &shortReader{r: rd, n: int(chunkRead)}
		}
		sameCuts(t, strataCuts(t, rd, data, p), resticCuts(t, data, p))
	})
}

// shortReader returns at most n bytes a read.
type shortReader struct {
	r io.Reader
	n int
}

func (s *shortReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.n)]) }

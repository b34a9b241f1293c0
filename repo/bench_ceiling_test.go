package repo

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-backup/strata/chunk"
)

// BenchmarkPipelineStage measures, one stage at a time, what a backup does to
// each byte of a file, so that bench/bench.sh can compute the throughput
// ceiling of the whole pipeline: with every stage's rate R_i on one core and
// N cores, at most N / Σ(1/R_i). Every rate is in raw (file) bytes per
// second, so the stages are comparable:
//
//   - read: the file, sequentially, with os.File.Read into a 1 MiB buffer
//     (the caller drops the page cache first, if it wants a cold read);
//   - chunk: chunk.Chunker.Next over the whole data (restic's parameters,
//     a fixed polynomial);
//   - hash: the keyed BLAKE3 blob id of each chunk;
//   - compress: zstdEncode(chunk, CompressionAuto) of each chunk;
//   - encrypt: the repository crypter's seal of each payload (compressed,
//     or raw when compression did not shrink it, as the writer does) into
//     16 MiB packs;
//   - write: the sealed bytes to a new file in STRATA_BENCH_CEILING_DIR
//     (default: a test temp dir) in 16 MiB writes, then fsync.
//
// Each stage's input is prepared outside the timer. The input is the file
// named by STRATA_BENCH_CEILING_FILE; when unset, 64 MiB of deterministic,
// compressible JSON-like text generated in memory (and then "read" is
// measured on a temp file holding it). Run with -cpu 1, so each rate is per
// core, and -benchtime 1x, so that read reads the file once, after the
// caller's cache drop (later iterations would read the page cache):
//
//	STRATA_BENCH_CEILING_FILE=export/cold.jsonl go test -run '^$' \
//	    -bench BenchmarkPipelineStage -benchtime 1x -cpu 1 ./repo/
//
// Not measured: the pack header and the unkeyed BLAKE3 object id of each
// pack (both small next to the stages above), the index and the tree blobs.
func BenchmarkPipelineStage(b *testing.B) {
	path := os.Getenv("STRATA_BENCH_CEILING_FILE")
	outDir := os.Getenv("STRATA_BENCH_CEILING_DIR")
	if outDir == "" {
		outDir = b.TempDir()
	}
	if path == "" {
		// No export given: 64 MiB of generated text, written to a file for
		// the read stage.
		path = filepath.Join(b.TempDir(), "generated.jsonl")
		if err := os.WriteFile(path, pseudoJSON(64<<20), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	size := fi.Size()

	// read runs first, before anything else touches the file.
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		buf := make([]byte, 1<<20)
		for range b.N {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			var n int64
			for {
				k, err := f.Read(buf)
				n += int64(k)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
			if n != size {
				b.Fatalf("read %d bytes of %s, want %d", n, path, size)
			}
		}
	})

	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var mk masterKey
	if _, err := rand.Read(mk[:]); err != nil {
		b.Fatal(err)
	}
	params := chunk.DefaultParams(0x3DA3358B4DC173)
	r := newRepository(nil, Config{Chunker: params, PackSize: DefaultPackSize, Compression: CompressionAuto}, mk, Options{})

	chunks := chunkAll(b, data, params)
	b.Logf("%s: %d bytes, %d chunks", path, len(data), len(chunks))

	b.Run("chunk", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			if got := chunkAll(b, data, params); len(got) != len(chunks) {
				b.Fatalf("%d chunks, want %d", len(got), len(chunks))
			}
		}
	})

	b.Run("hash", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var sink chunk.ID
		for range b.N {
			for _, c := range chunks {
				id := r.hasher.Sum(c)
				sink[0] ^= id[0]
			}
		}
		_ = sink
	})

	// What the writer seals: the compressed chunk, or the raw one when
	// compression does not shrink it.
	payloads := make([][]byte, len(chunks))
	var scratch []byte
	for i, c := range chunks {
		scratch = zstdEncode(scratch[:0], c, CompressionAuto)
		if len(scratch) < len(c) {
			payloads[i] = bytes.Clone(scratch)
		} else {
			payloads[i] = c
		}
	}

	b.Run("compress", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var dst []byte
		for range b.N {
			for _, c := range chunks {
				dst = zstdEncode(dst[:0], c, CompressionAuto)
			}
		}
	})

	// The sealed packs, concatenated: the write stage's input.
	var sealed []byte
	packs := 0
	for pk := range sealPacks(r, payloads) {
		sealed = append(sealed, pk...)
		packs++
	}
	b.Logf("compressed and sealed: %d bytes in %d packs (%.1f%% of the raw data)",
		len(sealed), packs, 100*float64(len(sealed))/float64(max(len(data), 1)))

	b.Run("encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			for range sealPacks(r, payloads) {
			}
		}
	})

	b.Run("write", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := range b.N {
			name := filepath.Join(outDir, fmt.Sprintf("strata-ceiling-%d.tmp", i))
			f, err := os.Create(name)
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < len(sealed); off += 16 << 20 {
				if _, err := f.Write(sealed[off:min(off+16<<20, len(sealed))]); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := os.Remove(name); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// chunkAll cuts data as a backup cuts a file, returning the chunks as
// slices of data.
func chunkAll(b *testing.B, data []byte, p chunk.Params) [][]byte {
	c := chunk.NewChunker(bytes.NewReader(data), p)
	buf := make([]byte, 0, p.MaxSize)
	var out [][]byte
	off := 0
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data[off:off+len(ch)])
		off += len(ch)
	}
	if off != len(data) {
		b.Fatalf("chunks cover %d bytes of %d", off, len(data))
	}
	return out
}

// sealPacks seals payloads one after the other into a pack buffer, as the
// writer does, yielding each pack (the buffer is reused: copy to keep) once
// it reaches the pack size, and the last one.
func sealPacks(r *Repository, payloads [][]byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		buf := make([]byte, 0, r.cfg.PackSize+int(r.cfg.Chunker.MaxSize)+Overhead)
		for _, p := range payloads {
			buf = r.crypt.seal(buf, p, blobAD)
			if len(buf) >= r.cfg.PackSize {
				if !yield(buf) {
					return
				}
				buf = buf[:0]
			}
		}
		if len(buf) > 0 {
			yield(buf)
		}
	}
}

// pseudoJSON returns n bytes of deterministic node and relationship lines in
// the shape of a graph export: repetitive keys, varying values, so that it
// compresses about as an export does.
func pseudoJSON(n int) []byte {
	rng := mrand.New(mrand.NewPCG(1, 2))
	labels := []string{"Person", "Company", "Account", "Device", "Address"}
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}
	out := make([]byte, 0, n+512)
	for id := 0; len(out) < n; id++ {
		if id%3 == 2 {
			out = fmt.Appendf(out, `{"type":"relationship","id":"%d","label":"KNOWS","start":{"id":"%d"},"end":{"id":"%d"},"properties":{"since":%d,"weight":%.4f}}`+"\n",
				id, rng.IntN(id+1), rng.IntN(id+1), 1990+rng.IntN(35), rng.Float64())
			continue
		}
		out = fmt.Appendf(out, `{"type":"node","id":"%d","labels":["%s"],"properties":{"name":"%s %s","score":%d,"active":%t,"note":"%s-%08x"}}`+"\n",
			id, labels[rng.IntN(len(labels))], words[rng.IntN(len(words))], words[rng.IntN(len(words))],
			rng.IntN(100000), rng.IntN(2) == 0, words[rng.IntN(len(words))], rng.Uint32())
	}
	return out[:n]
}

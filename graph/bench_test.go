package graph

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/graphgen"
)

// warmTier generates a graphgen graph of nodes nodes and returns its warm
// tier.
func warmTier(nodes int) ([]byte, error) {
	dir, err := os.MkdirTemp("", "graph-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := graphgen.WriteDir(dir, graphgen.Options{Nodes: nodes, Seed: 1}); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(dir, "warm.jsonl"))
}

// benchGraph is the warm tier of a 200,000-node graphgen graph (~59 MB),
// generated once per test binary; smallBenchGraph of 20,000 nodes (~6 MB).
var (
	benchGraph      = sync.OnceValues(func() ([]byte, error) { return warmTier(200000) })
	smallBenchGraph = sync.OnceValues(func() ([]byte, error) { return warmTier(20000) })
)

// readAllLines parses data to the end, as a tier's reader does.
func readAllLines(b *testing.B, data []byte) {
	r := NewReader(bytes.NewReader(data), "warm")
	for {
		_, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func loadBenchGraph(b *testing.B) []byte {
	data, err := benchGraph()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// cpuTime is the CPU time the process has used. On a shared machine wall
// time overstates the cost; with GOMAXPROCS=1 this is the one-core cost,
// garbage collection included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds a cpu-MB/s metric: bytes processed per CPU second.
func reportCPU(b *testing.B, start time.Duration, bytesPerOp int) {
	if d := cpuTime() - start; d > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/d.Seconds()/1e6, "cpu-MB/s")
	}
}

// BenchmarkReader measures parse + canonicalise of LDBC-like lines. Run it
// with -cpu 1 to see the one-core throughput.
func BenchmarkReader(b *testing.B) {
	data := loadBenchGraph(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		readAllLines(b, data)
	}
	reportCPU(b, start, len(data))
}

// benchRecords parses the benchmark graph once.
func benchRecords(b *testing.B) ([]*Record, int) {
	data := loadBenchGraph(b)
	r := NewReader(bytes.NewReader(data), "warm")
	var recs []*Record
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, n
		}
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, rec)
		n += len(rec.Canonical) + 1
	}
}

// BenchmarkSorter sorts the warm tier (~59 MB of canonical lines) with a
// 16 MiB memory limit, so that it spills runs and merges them.
func BenchmarkSorter(b *testing.B) {
	recs, n := benchRecords(b)
	for _, compress := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "zstd"}[compress], func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			for i := 0; i < b.N; i++ {
				s := NewSorter(16<<20, b.TempDir())
				s.Compress = compress
				for j, r := range recs {
					if err := s.Add(r, j+1); err != nil {
						b.Fatal(err)
					}
				}
				it, err := s.Sort()
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := it.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
				it.Close()
			}
			reportCPU(b, start, n)
		})
	}
}

// benchTier runs op over the warm tier's records b.N times and reports the
// bytes of canonical lines per second and per CPU second.
func benchTier(b *testing.B, op func(recs []*Record)) {
	recs, n := benchRecords(b)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		op(recs)
	}
	reportCPU(b, start, n)
}

// BenchmarkChecker checks the warm tier with a 16 MiB memory limit (its
// relationships dangle into the other tiers, which costs problem reports).
func BenchmarkChecker(b *testing.B) {
	benchTier(b, func(recs []*Record) {
		c := NewChecker(16<<20, b.TempDir())
		for _, r := range recs {
			if err := c.Add("warm", r.Line, r); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.Finish(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkCapture sorts and checks the warm tier with a 16 MiB memory
// limit and reads it back, as a graph backup does (what BenchmarkSorter and
// BenchmarkChecker did between them before graph.Capture).
func BenchmarkCapture(b *testing.B) {
	benchTier(b, func(recs []*Record) {
		c := NewCapture([]string{"warm"}, 16<<20, b.TempDir())
		for _, r := range recs {
			if err := c.Tier(0).Add(r, r.Line); err != nil {
				b.Fatal(err)
			}
		}
		done := make(chan error, 1)
		go func() {
			_, err := WriteLines(io.Discard, c.Iterator(0))
			done <- err
		}()
		if _, err := c.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkApply merges the sorted warm tier with a layer changing 1% of it.
func BenchmarkApply(b *testing.B) {
	recs, n := benchRecords(b)
	base := sortedState(recs)
	var layer []*Record
	for i := 0; i < len(base); i += 100 {
		layer = append(layer, NewTombstone(base[i].Kind, base[i].ID))
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		it := Apply(NewSliceIterator(base), []Iterator{NewSliceIterator(layer)})
		if _, err := WriteLines(io.Discard, it); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start, n)
}

package repo_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
	"github.com/strata-backup/strata/snapshot"
)

// BenchmarkBackupHeapLargeIndex checks the claim "peak memory of a backup
// does not grow with the number of blobs already in the repository". It
// backs up the same amount of fresh random data into an empty repository
// and into one whose index lists STRATA_BENCH_INDEX_BLOBS (default
// 2,000,000) blobs in index objects of 50,000, each on a real local
// directory, and samples the Go heap every 5 ms while each backup runs.
//
// Two situations are measured for each repository:
//   - cold: opened with a fresh cache directory, so the backup first builds
//     the bbolt index cache from every index object (a new machine, or a
//     cache that was wiped);
//   - warm: opened again with that cache, now up to date (the usual nightly
//     run).
//
// Metrics: {empty,large}-{cold,warm}-peak-heap-MiB, heap-ratio (large/empty,
// cold: the target is <= 1.2), heap-ratio-warm, and cache-build-s, the
// seconds the cold large backup spent before its first blob (dominated by
// the cache build).
//
//	go test -run '^$' -bench BenchmarkBackupHeapLargeIndex -benchtime 1x ./repo/
func BenchmarkBackupHeapLargeIndex(b *testing.B) {
	b.Setenv(repo.TestKDFEnv, "1") // key derivation is not what is measured
	blobs := 2_000_000
	if s := os.Getenv("STRATA_BENCH_INDEX_BLOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			b.Fatalf("STRATA_BENCH_INDEX_BLOBS=%q: want a count", s)
		}
		blobs = n
	}
	const dataBytes = 64 << 20
	dataCold := writeRandomTree(b, 1, dataBytes)
	dataWarm := writeRandomTree(b, 2, dataBytes)

	var last map[string]float64
	for range b.N {
		empty := measureBackups(b, 0, dataCold, dataWarm)
		large := measureBackups(b, blobs, dataCold, dataWarm)
		last = map[string]float64{
			"empty-cold-peak-heap-MiB": empty.cold.peakMiB(),
			"empty-warm-peak-heap-MiB": empty.warm.peakMiB(),
			"large-cold-peak-heap-MiB": large.cold.peakMiB(),
			"large-warm-peak-heap-MiB": large.warm.peakMiB(),
			"heap-ratio":               large.cold.peakMiB() / empty.cold.peakMiB(),
			"heap-ratio-warm":          large.warm.peakMiB() / empty.warm.peakMiB(),
			"index-blobs":              float64(blobs),
			"cache-build-s":            large.cold.firstBlob.Seconds(),
		}
		b.Logf("empty repository: cold %s; warm %s", empty.cold, empty.warm)
		b.Logf("%d-blob repository: cold %s; warm %s", blobs, large.cold, large.warm)
	}
	for unit, v := range last {
		b.ReportMetric(v, unit)
	}
}

type backupPair struct{ cold, warm heapRun }

// measureBackups creates a repository on a local temp dir holding nblobs
// synthetic index entries, then measures a cold and a warm backup.
func measureBackups(b *testing.B, nblobs int, dataCold, dataWarm string) backupPair {
	ctx := context.Background()
	dir := b.TempDir()
	be, err := backend.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(ctx, be, repotest.Password, repo.InitOptions{Polynomial: repotest.Polynomial},
		repo.Options{CacheDir: filepath.Join(dir, "init-cache")})
	if err != nil {
		b.Fatal(err)
	}
	addSyntheticIndex(b, r, nblobs)
	r.Close()

	cache := filepath.Join(dir, "cache")
	var p backupPair
	p.cold = measureBackup(b, be, cache, dataCold)
	p.warm = measureBackup(b, be, cache, dataWarm)
	return p
}

// addSyntheticIndex stores n random blob entries in index objects of 50,000,
// 1,000 blobs to a (fake) pack, as a long-lived repository would hold.
func addSyntheticIndex(b *testing.B, r *repo.Repository, n int) {
	const perObject, perPack = 50_000, 1_000
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	randID := func() (id chunk.ID) {
		for i := 0; i < len(id); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				id[i+j] = byte(v >> (8 * j))
			}
		}
		return id
	}
	for done := 0; done < n; {
		var f index.File
		for obj := 0; obj < perObject && done < n; {
			p := index.Pack{ID: randID()}
			var off uint32
			for k := 0; k < perPack && obj < perObject && done < n; k++ {
				raw := uint32(512<<10 + rng.IntN(1<<20))
				sealed := raw/3 + 40
				p.Blobs = append(p.Blobs, index.Blob{ID: randID(), Type: index.DataBlob, Offset: off,
					Length: sealed, RawLength: raw, Compressed: true})
				off += sealed
				obj++
				done++
			}
			f.Packs = append(f.Packs, p)
		}
		if _, _, err := r.SaveJSON(context.Background(), repo.PrefixIndex, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// writeRandomTree writes total bytes of incompressible data as four files.
func writeRandomTree(b *testing.B, seed byte, total int) string {
	dir := filepath.Join(b.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{seed}))
	buf := make([]byte, total/4)
	for i := range 4 {
		for j := 0; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(buf); k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part%d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// heapRun is one measured backup.
type heapRun struct {
	peak      uint64        // bytes in heap objects (live and not yet swept), at most
	peakLive  uint64        // live heap after a GC, at most
	base      uint64        // heap objects before the run
	firstBlob time.Duration // until the archiver asked for its first buffer
	total     time.Duration
}

func (h heapRun) peakMiB() float64 { return float64(h.peak) / (1 << 20) }

func (h heapRun) String() string {
	return fmt.Sprintf("peak heap %.1f MiB (live after GC %.1f MiB, before %.1f MiB), %.2fs",
		h.peakMiB(), float64(h.peakLive)/(1<<20), float64(h.base)/(1<<20), h.total.Seconds())
}

// measureBackup opens the repository as a new process would (cache dir as
// given) and backs up data while sampling the heap.
func measureBackup(b *testing.B, be backend.Backend, cacheDir, data string) heapRun {
	ctx := context.Background()
	r, err := repo.Open(ctx, be, repotest.Password, repo.Options{CacheDir: cacheDir})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	runtime.GC()
	debug.FreeOSMemory()

	var run heapRun
	start := time.Now()
	var first sync.Once
	s := startHeapSampler()
	_, err = snapshot.Backup(ctx, r, snapshot.BackupOptions{
		Paths: []string{data}, Host: "bench",
		Progress: progressFunc(func() { first.Do(func() { run.firstBlob = time.Since(start) }) }),
	})
	run.total = time.Since(start)
	run.peak, run.peakLive, run.base = s.stop()
	if err != nil {
		b.Fatal(err)
	}
	return run
}

// progressFunc calls fn on the first progress report of content.
type progressFunc func()

func (progressFunc) SetTotal(int64, int64) {}
func (f progressFunc) Add(bytes, _ int64) {
	if bytes > 0 {
		f()
	}
}
func (progressFunc) Warn(string, error) {}

type heapSampler struct {
	quit, done     chan struct{}
	peak, peakLive uint64
	base           uint64
}

func startHeapSampler() *heapSampler {
	s := &heapSampler{quit: make(chan struct{}), done: make(chan struct{})}
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	read := func() {
		metrics.Read(samples)
		s.peak = max(s.peak, samples[0].Value.Uint64())
		s.peakLive = max(s.peakLive, samples[1].Value.Uint64())
	}
	metrics.Read(samples)
	s.base = samples[0].Value.Uint64()
	go func() {
		defer close(s.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-s.quit:
				read()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *heapSampler) stop() (peak, peakLive, base uint64) {
	close(s.quit)
	<-s.done
	return s.peak, s.peakLive, s.base
}

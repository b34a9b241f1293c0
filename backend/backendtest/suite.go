// Package backendtest is the conformance suite every backend.Backend runs:
// one set of tests for each clause of the contract in package backend.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
)

// RunSuite runs the conformance suite. open must return a new, empty store
// on every call (each subtest gets its own, so subtests can run in
// parallel); the suite closes it when the subtest ends.
func RunSuite(t *testing.T, open func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"CreateOnly", testCreateOnly},
		{"LoadRange", testLoadRange},
		{"Missing", testMissing},
		{"Stat", testStat},
		{"ListPrefix", testListPrefix},
		{"ListMany", testListMany},
		{"Remove", testRemove},
		{"ConcurrentSaves", testConcurrentSaves},
		{"RacingSaves", testRacingSaves},
		{"FnErrors", testFnErrors},
		{"Cancel", testCancel},
		{"InvalidKeys", testInvalidKeys},
		{"Properties", testProperties},
		{"SaveFrom", testSaveFrom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tt.fn(t, b)
		})
	}
}

// randomBytes is deterministic per seed so failures reproduce.
func randomBytes(seed uint64, n int) []byte {
	buf := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(buf)
	return buf
}

func save(t *testing.T, b backend.Backend, key string, data []byte) {
	t.Helper()
	if err := b.Save(t.Context(), key, data); err != nil {
		t.Fatalf("save %s: %v", key, err)
	}
}

func loadAll(t *testing.T, b backend.Backend, key string) []byte {
	t.Helper()
	got, err := backend.LoadAll(t.Context(), b, key)
	if err != nil {
		t.Fatalf("load %s: %v", key, err)
	}
	return got
}

// listKeys returns the listed keys sorted, failing on duplicates and on
// sizes that disagree with want (when want has the key).
func listKeys(t *testing.T, b backend.Backend, prefix string, want map[string][]byte) []string {
	t.Helper()
	var keys []string
	err := b.List(t.Context(), prefix, func(oi backend.ObjectInfo) error {
		if data, ok := want[oi.Key]; ok && oi.Size != int64(len(data)) {
			t.Errorf("list %q: %s has size %d, want %d", prefix, oi.Key, oi.Size, len(data))
		}
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			t.Errorf("list %q: %s listed twice", prefix, keys[i])
		}
	}
	return keys
}

func testRoundTrip(t *testing.T, b backend.Backend) {
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one-byte", 1},
		{"small", 1000},
		{"5MiB", 5<<20 + 3},
		// Above the S3 upload manager's part size: a multipart upload.
		{"17MiB", 17 << 20},
	}
	for i, tt := range tests {
		key := fmt.Sprintf("data/%02x/%s", i, tt.name)
		data := randomBytes(uint64(i), tt.size)
		orig := bytes.Clone(data)
		save(t, b, key, data)
		// Save must not retain data: scribbling on it now must not matter.
		for j := range data {
			data[j] ^= 0xff
		}
		if got := loadAll(t, b, key); !bytes.Equal(got, orig) {
			t.Errorf("%s: loaded %d bytes that differ from the %d saved", tt.name, len(got), len(orig))
		}
		oi, err := b.Stat(t.Context(), key)
		if err != nil {
			t.Fatalf("%s: stat: %v", tt.name, err)
		}
		if oi.Key != key || oi.Size != int64(tt.size) {
			t.Errorf("%s: stat = %+v, want key %s size %d", tt.name, oi, key, tt.size)
		}
	}
}

func testCreateOnly(t *testing.T, b backend.Backend) {
	tests := []struct {
		name          string
		first, second []byte
	}{
		{"different", []byte("first"), []byte("second, longer")},
		{"empty-then-data", nil, []byte("x")},
		// Identical large bodies: the content-addressed case, where a lost
		// race on S3 may surface as a connection reset instead of 412.
		{"large-identical", randomBytes(7, 6<<20), randomBytes(7, 6<<20)},
		// Large enough for a multipart upload on S3.
		{"multipart-identical", randomBytes(8, 17<<20), randomBytes(8, 17<<20)},
	}
	for _, tt := range tests {
		key := "snapshots/" + tt.name
		save(t, b, key, tt.first)
		err := b.Save(t.Context(), key, tt.second)
		if !errors.Is(err, backend.ErrExists) {
			t.Errorf("%s: second save: got %v, want ErrExists", tt.name, err)
		}
		if got := loadAll(t, b, key); !bytes.Equal(got, tt.first) {
			t.Errorf("%s: object changed by a refused save (%d bytes, want %d)", tt.name, len(got), len(tt.first))
		}
	}
}

func testLoadRange(t *testing.T, b backend.Backend) {
	data := randomBytes(3, 1000)
	save(t, b, "data/00/range", data)
	save(t, b, "data/00/empty", nil)
	tests := []struct {
		key            string
		offset, length int64
		want           []byte // nil with wantErr
		wantErr        bool
	}{
		{"data/00/range", 0, 0, data, false},
		{"data/00/range", 10, 0, data[10:], false},
		{"data/00/range", 10, 20, data[10:30], false},
		{"data/00/range", 0, 1000, data, false},
		{"data/00/range", 990, 10, data[990:], false},
		{"data/00/range", 999, 1, data[999:], false},
		{"data/00/range", 999, 0, data[999:], false},
		{"data/00/range", 1000, 0, []byte{}, false},
		{"data/00/range", 1001, 0, nil, true},
		{"data/00/range", 990, 11, nil, true},
		{"data/00/range", 1000, 1, nil, true},
		{"data/00/range", 5000, 10, nil, true},
		{"data/00/range", -1, 0, nil, true},
		{"data/00/range", 0, -1, nil, true},
		{"data/00/empty", 0, 0, []byte{}, false},
		{"data/00/empty", 0, 1, nil, true},
		{"data/00/empty", 1, 0, nil, true},
	}
	for _, tt := range tests {
		var got []byte
		err := b.Load(t.Context(), tt.key, tt.offset, tt.length, func(rd io.Reader) error {
			var err error
			got, err = io.ReadAll(rd)
			return err
		})
		name := fmt.Sprintf("%s[%d+%d]", tt.key, tt.offset, tt.length)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("%s: got %d bytes, want an error", name, len(got))
		case tt.wantErr && errors.Is(err, backend.ErrNotFound):
			t.Errorf("%s: out-of-range read reported as missing: %v", name, err)
		case !tt.wantErr && err != nil:
			t.Errorf("%s: %v", name, err)
		case !tt.wantErr && !bytes.Equal(got, tt.want):
			t.Errorf("%s: got %d bytes, want %d", name, len(got), len(tt.want))
		}
	}
}

func testMissing(t *testing.T, b backend.Backend) {
	save(t, b, "data/00/present", []byte("x"))
	for _, key := range []string{"data/00/absent", "data/ff/absent", "config", "data/00/present/below"} {
		err := b.Load(t.Context(), key, 0, 0, func(io.Reader) error {
			t.Errorf("load %s: fn called for a missing key", key)
			return nil
		})
		if !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("load %s: got %v, want ErrNotFound", key, err)
		}
		if err := b.Load(t.Context(), key, 1, 1, func(io.Reader) error { return nil }); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("load %s at offset 1: got %v, want ErrNotFound", key, err)
		}
		if _, err := b.Stat(t.Context(), key); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("stat %s: got %v, want ErrNotFound", key, err)
		}
	}
	// A "directory" on posix-backed stores is not an object.
	if _, err := b.Stat(t.Context(), "data/00"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("stat of a key prefix: got %v, want ErrNotFound", err)
	}
}

func testStat(t *testing.T, b backend.Backend) {
	// Stores keep whole seconds (S3) or coarse ticks (file systems), so the
	// window is generous; what matters is that it is the store's clock near
	// now, not the zero time or a constant.
	before := time.Now().Add(-5 * time.Second)
	data := randomBytes(5, 4321)
	save(t, b, "index/stat", data)
	after := time.Now().Add(5 * time.Second)
	oi, err := b.Stat(t.Context(), "index/stat")
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if oi.Key != "index/stat" || oi.Size != int64(len(data)) {
		t.Errorf("stat = %+v, want key index/stat size %d", oi, len(data))
	}
	if oi.ModTime.Before(before) || oi.ModTime.After(after) {
		t.Errorf("stat ModTime %v, want between %v and %v", oi.ModTime, before, after)
	}
	var listed []backend.ObjectInfo
	if err := b.List(t.Context(), "index/", func(oi backend.ObjectInfo) error {
		listed = append(listed, oi)
		return nil
	}); err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(listed) != 1 {
		t.Fatalf("list index/ gave %d objects, want 1", len(listed))
	}
	l := listed[0]
	if l.Key != oi.Key || l.Size != oi.Size || l.ModTime.Sub(oi.ModTime).Abs() > time.Second {
		t.Errorf("list gave %+v, stat gave %+v", l, oi)
	}
}

func testListPrefix(t *testing.T, b backend.Backend) {
	objects := map[string][]byte{}
	for i, k := range []string{
		"config",
		"snapshots/a", "snapshots/b", "snapshotsX/b",
		"locks/ab1", "locks/ab2", "locks/ac",
		"data/00/x", "data/01/y",
		// Siblings that continue with characters below and above '/'.
		"idx/a-b", "idx/a.b", "idx/a/b", "idx/a0", "idx/a/c/d",
	} {
		objects[k] = randomBytes(uint64(i), i)
		save(t, b, k, objects[k])
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"snapshots/", []string{"snapshots/a", "snapshots/b"}},
		{"snapshots", []string{"snapshots/a", "snapshots/b", "snapshotsX/b"}},
		{"snapshotsX/", []string{"snapshotsX/b"}},
		{"locks/ab", []string{"locks/ab1", "locks/ab2"}},
		{"locks/", []string{"locks/ab1", "locks/ab2", "locks/ac"}},
		{"data/", []string{"data/00/x", "data/01/y"}},
		{"data/0", []string{"data/00/x", "data/01/y"}},
		{"data/01/", []string{"data/01/y"}},
		{"idx/a", []string{"idx/a-b", "idx/a.b", "idx/a/b", "idx/a/c/d", "idx/a0"}},
		{"idx/a/", []string{"idx/a/b", "idx/a/c/d"}},
		{"config", []string{"config"}},
		{"nothing/", nil},
		{"nothing", nil},
		{"data/02/", nil},
	}
	for _, tt := range tests {
		if got := listKeys(t, b, tt.prefix, objects); !slices.Equal(got, tt.want) {
			t.Errorf("list %q = %q, want %q", tt.prefix, got, tt.want)
		}
	}
	all := listKeys(t, b, "", objects)
	if len(all) != len(objects) {
		t.Errorf("list \"\" gave %d keys, want %d: %q", len(all), len(objects), all)
	}
}

func testListMany(t *testing.T, b backend.Backend) {
	const n = 1200
	keys := make([]string, n)
	for i := range keys {
		// 37 directories, names of varying length so listings interleave.
		keys[i] = fmt.Sprintf("data/%02x/%0*d", i%37, 4+i%3, i)
	}
	parallel(t, 16, n, func(i int) error {
		return b.Save(t.Context(), keys[i], []byte(keys[i]))
	})
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := listKeys(t, b, "data/", nil); !slices.Equal(got, want) {
		t.Errorf("list data/ gave %d keys, want %d", len(got), len(want))
	}
	var sub []string
	for _, k := range want {
		if len(k) > 8 && k[:8] == "data/0a/" {
			sub = append(sub, k)
		}
	}
	if got := listKeys(t, b, "data/0a/", nil); !slices.Equal(got, sub) {
		t.Errorf("list data/0a/ = %q, want %q", got, sub)
	}
}

// parallel runs fn(0..n-1) on workers goroutines and reports errors.
func parallel(t *testing.T, workers, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make([]error, n)
	for range workers {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func testRemove(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	save(t, b, "locks/one", []byte("lease"))
	save(t, b, "locks/two", []byte("other"))
	if err := b.Remove(ctx, "locks/one"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := b.Stat(ctx, "locks/one"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("stat after remove: got %v, want ErrNotFound", err)
	}
	if _, err := backend.LoadAll(ctx, b, "locks/one"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("load after remove: got %v, want ErrNotFound", err)
	}
	if err := b.Remove(ctx, "locks/one"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("second remove: got %v, want ErrNotFound", err)
	}
	if err := b.Remove(ctx, "locks/never"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("remove of a missing key: got %v, want ErrNotFound", err)
	}
	if err := b.Remove(ctx, "nodir/never"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("remove under a missing prefix: got %v, want ErrNotFound", err)
	}
	if got := listKeys(t, b, "locks/", nil); !slices.Equal(got, []string{"locks/two"}) {
		t.Errorf("list after remove = %q", got)
	}
	// A removed key can be created again (create-only is about existence).
	save(t, b, "locks/one", []byte("again"))
	if got := loadAll(t, b, "locks/one"); string(got) != "again" {
		t.Errorf("load after re-create = %q", got)
	}
}

func testConcurrentSaves(t *testing.T, b backend.Backend) {
	const n = 64
	parallel(t, n, n, func(i int) error {
		return b.Save(t.Context(), fmt.Sprintf("data/%02x/c%03d", i%4, i), randomBytes(uint64(i), 1000+i))
	})
	parallel(t, 8, n, func(i int) error {
		key := fmt.Sprintf("data/%02x/c%03d", i%4, i)
		got, err := backend.LoadAll(t.Context(), b, key)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, randomBytes(uint64(i), 1000+i)) {
			return fmt.Errorf("%s: wrong content", key)
		}
		return nil
	})
}

// testRacingSaves: of several simultaneous creates of one key exactly one
// succeeds, the rest get ErrExists, and the key holds the winner's bytes.
func testRacingSaves(t *testing.T, b backend.Backend) {
	const rounds, racers = 8, 8
	for r := range rounds {
		key := fmt.Sprintf("locks/race%d", r)
		results := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				results[i] = b.Save(t.Context(), key, []byte(fmt.Sprintf("racer %d of round %d", i, r)))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range results {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("%s: racers %d and %d both created it", key, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, backend.ErrExists):
				t.Errorf("%s: racer %d: got %v, want nil or ErrExists", key, i, err)
			}
		}
		if winner < 0 {
			t.Errorf("%s: no racer won", key)
			continue
		}
		if got := loadAll(t, b, key); string(got) != fmt.Sprintf("racer %d of round %d", winner, r) {
			t.Errorf("%s: holds %q, but racer %d won", key, got, winner)
		}
	}

	// Identical large bodies (content-addressed packs): every racer sees
	// success or ErrExists, and the object is intact.
	data := randomBytes(11, 5<<20)
	results := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() { results[i] = b.Save(t.Context(), "data/ff/racepack", data) })
	}
	wg.Wait()
	for i, err := range results {
		if err != nil && !errors.Is(err, backend.ErrExists) {
			t.Errorf("large racer %d: %v", i, err)
		}
	}
	if got := loadAll(t, b, "data/ff/racepack"); !bytes.Equal(got, data) {
		t.Errorf("large race left %d bytes that differ from the %d saved", len(got), len(data))
	}
}

func testFnErrors(t *testing.T, b backend.Backend) {
	for _, k := range []string{"snapshots/1", "snapshots/2", "snapshots/3"} {
		save(t, b, k, []byte(k))
	}
	sentinel := errors.New("stop here")
	calls := 0
	err := b.List(t.Context(), "snapshots/", func(backend.ObjectInfo) error {
		calls++
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Errorf("list: got %v, want the fn's error", err)
	}
	if calls != 1 {
		t.Errorf("list called fn %d times after it failed, want 1", calls)
	}
	err = b.Load(t.Context(), "snapshots/1", 0, 0, func(rd io.Reader) error {
		_, _ = io.ReadAll(rd)
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Errorf("load: got %v, want the fn's error", err)
	}
	// A failed fn leaves the object readable.
	if got := loadAll(t, b, "snapshots/1"); string(got) != "snapshots/1" {
		t.Errorf("load after fn error = %q", got)
	}
}

func testCancel(t *testing.T, b backend.Backend) {
	save(t, b, "keys/present", []byte("key"))
	save(t, b, "keys/other", []byte("key2"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, statErr := b.Stat(ctx, "keys/present")
	readAll := func(rd io.Reader) error { _, err := io.ReadAll(rd); return err }
	for op, err := range map[string]error{
		"save":   b.Save(ctx, "keys/new", []byte("x")),
		"load":   b.Load(ctx, "keys/present", 0, 0, readAll),
		"list":   b.List(ctx, "keys/", func(backend.ObjectInfo) error { return nil }),
		"remove": b.Remove(ctx, "keys/present"),
		"stat":   statErr,
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", op, err)
		}
	}
	if _, err := b.Stat(t.Context(), "keys/new"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("a cancelled save left keys/new behind (stat: %v)", err)
	}
	if _, err := b.Stat(t.Context(), "keys/present"); err != nil {
		t.Errorf("a cancelled remove removed keys/present (stat: %v)", err)
	}

	// Cancelling in the middle of a listing stops it.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err := b.List(ctx, "keys/", func(backend.ObjectInfo) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("list cancelled in fn: got %v after %d calls, want context.Canceled after 1", err, calls)
	}
}

func testInvalidKeys(t *testing.T, b backend.Backend) {
	for _, key := range []string{"", "/abs", "../escape", "data/../../escape", "a//b", "a/./b", "trailing/", "."} {
		if err := b.Save(t.Context(), key, []byte("x")); err == nil || errors.Is(err, backend.ErrExists) {
			t.Errorf("save %q: got %v, want an invalid-key error", key, err)
		}
		if _, err := b.Stat(t.Context(), key); err == nil {
			t.Errorf("stat %q: no error", key)
		}
		if err := b.Remove(t.Context(), key); err == nil {
			t.Errorf("remove %q: no error", key)
		}
	}
	if got := listKeys(t, b, "", nil); len(got) != 0 {
		t.Errorf("invalid saves stored %q", got)
	}
}

func testProperties(t *testing.T, b backend.Backend) {
	p, ok := b.(backend.Properties)
	if !ok {
		t.Skip("backend does not implement Properties")
	}
	if p.Connections() <= 0 {
		t.Errorf("Connections() = %d, want > 0", p.Connections())
	}
	if p.Location() == "" {
		t.Error("Location() is empty")
	}
}

// testSaveFrom holds a Streamer's SaveFrom to Save's contract: the object is
// what the reader yields (from a file, as the pack writer streams it, and
// from a plain reader), create-only.
func testSaveFrom(t *testing.T, b backend.Backend) {
	s, ok := b.(backend.Streamer)
	if !ok {
		t.Skip("not a Streamer: objects are saved from memory")
	}
	data := randomBytes(9, 3<<20+17)
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveFrom(t.Context(), "data/ab/from-file", f); err != nil {
		t.Fatalf("save from file: %v", err)
	}
	if got := loadAll(t, b, "data/ab/from-file"); !bytes.Equal(got, data) {
		t.Errorf("from file: stored %d bytes, want the %d written", len(got), len(data))
	}
	if err := s.SaveFrom(t.Context(), "data/ab/from-reader", bytes.NewReader(data[:1000])); err != nil {
		t.Fatalf("save from reader: %v", err)
	}
	if got := loadAll(t, b, "data/ab/from-reader"); !bytes.Equal(got, data[:1000]) {
		t.Errorf("from reader: stored %d bytes, want 1000", len(got))
	}
	err = s.SaveFrom(t.Context(), "data/ab/from-reader", bytes.NewReader([]byte("other")))
	if !errors.Is(err, backend.ErrExists) {
		t.Errorf("second save: got %v, want ErrExists", err)
	}
	if got := loadAll(t, b, "data/ab/from-reader"); !bytes.Equal(got, data[:1000]) {
		t.Errorf("object changed by a refused save")
	}
}

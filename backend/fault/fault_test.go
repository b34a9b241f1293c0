package fault_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/backendtest"
	"github.com/strata-backup/strata/backend/fault"
	"github.com/strata-backup/strata/backend/s3test"
)

var (
	s3srv    *s3test.Server
	s3srvErr error
)

func TestMain(m *testing.M) {
	s3srv, s3srvErr = s3test.StartServer()
	code := m.Run()
	if s3srv != nil {
		s3srv.Stop()
	}
	os.Exit(code)
}

// Healthy wrappers keep the contract.
func TestFaultSuites(t *testing.T) {
	t.Run("Full", func(t *testing.T) {
		backendtest.RunSuite(t, func(t *testing.T) backend.Backend { return fault.Full(backend.OpenMem(), 1<<40) })
	})
	t.Run("Flaky", func(t *testing.T) {
		backendtest.RunSuite(t, func(t *testing.T) backend.Backend { return fault.Flaky(backend.OpenMem(), fault.FlakyOptions{}) })
	})
	t.Run("BitFlip", func(t *testing.T) {
		backendtest.RunSuite(t, func(t *testing.T) backend.Backend {
			return fault.BitFlip(backend.OpenMem(), fault.BitFlipOptions{})
		})
	})
	t.Run("RetryFlaky", func(t *testing.T) {
		// Retry hides a store that drops a fifth of its calls.
		backendtest.RunSuite(t, func(t *testing.T) backend.Backend {
			f := fault.Flaky(backend.OpenMem(), fault.FlakyOptions{DropRate: 0.2, Seed: 7, Ops: fault.OpSave | fault.OpStat | fault.OpRemove})
			return backend.Retry(f, backend.RetryOptions{Attempts: 20, Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
		})
	})
}

func TestFaultFull(t *testing.T) {
	ctx := t.Context()
	mem := backend.OpenMem()
	f := fault.Full(mem, 10)
	if err := f.Save(ctx, "a", []byte("123456")); err != nil {
		t.Fatal(err)
	}
	err := f.Save(ctx, "b", []byte("12345"))
	if !errors.Is(err, backend.ErrNoSpace) || !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("save beyond the limit: %v, want ErrNoSpace", err)
	}
	if _, err := mem.Stat(ctx, "b"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("a refused save left b behind: %v", err)
	}
	if err := f.Save(ctx, "c", []byte("1234")); err != nil {
		t.Errorf("a save that fits: %v", err)
	}
	// A failed save costs nothing.
	if err := f.Save(ctx, "a", nil); !errors.Is(err, backend.ErrExists) || f.Used() != 10 {
		t.Errorf("duplicate: %v, used %d", err, f.Used())
	}
	f.SetLimit(-1)
	if err := f.Save(ctx, "d", make([]byte, 1000)); err != nil {
		t.Errorf("unlimited: %v", err)
	}
	if backend.Location(f) != "mem://" {
		t.Errorf("location %q", backend.Location(f))
	}
}

func TestFaultFlakySequence(t *testing.T) {
	ctx := t.Context()
	f := fault.Flaky(backend.OpenMem(), fault.FlakyOptions{
		Ops:      fault.OpSave,
		Sequence: []fault.Fault{fault.Pass, fault.Drop, fault.Stall},
		Stall:    20 * time.Millisecond,
	})
	if err := f.Save(ctx, "a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	err := f.Save(ctx, "b", []byte("b"))
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != "dropped" || !backend.IsTransient(err) {
		t.Fatalf("second save: %v, want a dropped, transient fault", err)
	}
	start := time.Now()
	if err := f.Save(ctx, "b", []byte("b")); !errors.As(err, &fe) || fe.Kind != "stalled" || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("third save: %v after %v, want a 20ms stall", err, time.Since(start))
	}
	if err := f.Save(ctx, "b", []byte("b")); err != nil {
		t.Fatalf("fourth save: %v", err)
	}
	if _, err := f.Stat(ctx, "b"); err != nil {
		t.Fatalf("stat (not an affected op): %v", err)
	}
	if f.Faults() != 2 || f.Calls() != 5 {
		t.Errorf("%d faults in %d calls", f.Faults(), f.Calls())
	}
	// A stall without a duration waits for the context.
	f = fault.Flaky(backend.OpenMem(), fault.FlakyOptions{Sequence: []fault.Fault{fault.Stall}})
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := f.Stat(tctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stall: %v, want the context's deadline", err)
	}
}

func TestFaultFlakyRateDeterministic(t *testing.T) {
	run := func() []bool {
		f := fault.Flaky(backend.OpenMem(), fault.FlakyOptions{DropRate: 0.3, Seed: 42})
		var out []bool
		for range 200 {
			_, err := f.Stat(t.Context(), "k")
			out = append(out, errors.Is(err, fault.ErrInjected))
		}
		return out
	}
	a, b := run(), run()
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed, different faults")
		}
		if a[i] {
			n++
		}
	}
	if n < 30 || n > 90 {
		t.Errorf("%d of 200 dropped at rate 0.3", n)
	}
}

func TestFaultFlakyCut(t *testing.T) {
	ctx := t.Context()
	f := fault.Flaky(backend.OpenMem(), fault.FlakyOptions{})
	if err := f.Save(ctx, "a", bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatal(err)
	}
	// A cut breaks off a read in progress.
	err := f.Load(ctx, "a", 0, 0, func(r io.Reader) error {
		var b [10]byte
		if _, err := r.Read(b[:]); err != nil {
			return err
		}
		f.Cut()
		_, err := io.ReadAll(r)
		return err
	})
	if !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("load across a cut: %v", err)
	}
	for name, err := range map[string]error{
		"save":   f.Save(ctx, "b", []byte("b")),
		"load":   f.Load(ctx, "a", 0, 0, func(io.Reader) error { return nil }),
		"list":   f.List(ctx, "", func(backend.ObjectInfo) error { return nil }),
		"remove": f.Remove(ctx, "a"),
	} {
		if !errors.Is(err, fault.ErrInjected) || !backend.IsTransient(err) {
			t.Errorf("%s while cut: %v", name, err)
		}
	}
	f.Heal()
	if got, err := backend.LoadAll(ctx, f, "a"); err != nil || len(got) != 100 {
		t.Errorf("after heal: %d bytes, %v", len(got), err)
	}
}

// Ambiguous drops: a save that happened but whose answer was lost, under
// Retry, ends as success; a load that broke off half-way restarts.
func TestFaultFlakyAmbiguousWithRetry(t *testing.T) {
	ctx := t.Context()
	mem := backend.OpenMem()
	f := fault.Flaky(mem, fault.FlakyOptions{Ambiguous: true, Sequence: []fault.Fault{fault.Drop, fault.Drop}, Ops: fault.OpSave | fault.OpLoad})
	b := backend.Retry(f, backend.RetryOptions{Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	data := bytes.Repeat([]byte("abc"), 1000)
	if err := b.Save(ctx, "data/x", data); err != nil {
		t.Fatalf("ambiguous save under retry: %v", err)
	}
	got, err := backend.LoadAll(ctx, b, "data/x")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load after a broken-off read: %d bytes, %v", len(got), err)
	}
	if f.Faults() != 2 {
		t.Errorf("%d faults, want 2", f.Faults())
	}
}

func TestFaultBitFlip(t *testing.T) {
	ctx := t.Context()
	mem := backend.OpenMem()
	data := bytes.Repeat([]byte{0x55}, 4096)
	for _, k := range []string{"data/a", "data/b"} {
		if err := mem.Save(ctx, k, data); err != nil {
			t.Fatal(err)
		}
	}
	b := fault.BitFlip(mem, fault.BitFlipOptions{Keys: []string{"data/a"}, Seed: 3})
	got, err := backend.LoadAll(ctx, b, "data/a")
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	pos := -1
	for i := range got {
		if got[i] != data[i] {
			diff++
			pos = i
			if x := got[i] ^ data[i]; x&(x-1) != 0 {
				t.Errorf("byte %d differs in more than one bit", i)
			}
		}
	}
	if diff != 1 {
		t.Fatalf("%d bytes differ, want 1", diff)
	}
	// The same bit on every load, and in a range that covers it.
	again, _ := backend.LoadAll(ctx, b, "data/a")
	if !bytes.Equal(again, got) {
		t.Error("damage differs between loads")
	}
	var part []byte
	_ = b.Load(ctx, "data/a", int64(pos), 1, func(r io.Reader) error { part, err = io.ReadAll(r); return err })
	if len(part) != 1 || part[0] != got[pos] {
		t.Errorf("range read of the bad byte: %x", part)
	}
	if clean, _ := backend.LoadAll(ctx, b, "data/b"); !bytes.Equal(clean, data) {
		t.Error("data/b damaged")
	}
	if stored, _ := backend.LoadAll(ctx, mem, "data/a"); !bytes.Equal(stored, data) {
		t.Error("the stored object was changed")
	}
	if fl := b.Flipped(); len(fl) != 1 || fl[0] != "data/a" {
		t.Errorf("flipped %v", fl)
	}
	// A rate picks a stable fraction of keys.
	r := fault.BitFlip(mem, fault.BitFlipOptions{Rate: 0.5, Seed: 1})
	n := 0
	for i := range 400 {
		if r.Damaged("data/" + string(rune('a'+i%26)) + string(rune('a'+i/26))) {
			n++
		}
	}
	if n < 140 || n > 260 {
		t.Errorf("rate 0.5 damaged %d of 400 keys", n)
	}
}

package drill

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
)

type testCutter struct {
	cut  atomic.Bool
	cuts atomic.Int32
}

func (c *testCutter) Cut()  { c.cut.Store(true); c.cuts.Add(1) }
func (c *testCutter) Heal() { c.cut.Store(false) }

// TestPartitionEndsForGood: a partition cuts once, heals after its time,
// and once ended never cuts again, even when the cut comes after the end
// (a backup's save racing the step's end).
func TestPartitionEndsForGood(t *testing.T) {
	t.Run("cut once and healed", func(t *testing.T) {
		c := &testCutter{}
		p := &partition{s: c, heal: 20 * time.Millisecond}
		p.fire()
		p.fire()
		if c.cuts.Load() != 1 || !c.cut.Load() {
			t.Fatalf("cut %d times, cut now: %v; want once", c.cuts.Load(), c.cut.Load())
		}
		for deadline := time.Now().Add(time.Second); c.cut.Load(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("not healed a second after a 20 ms partition")
			}
		}
		if !p.end() {
			t.Error("end says the store was not cut")
		}
	})
	t.Run("ended before the cut", func(t *testing.T) {
		c := &testCutter{}
		p := &partition{s: c, heal: time.Hour}
		if p.end() {
			t.Error("end says the store was cut")
		}
		p.fire()
		if c.cuts.Load() != 0 || c.cut.Load() {
			t.Errorf("cut %d times after the end", c.cuts.Load())
		}
	})
	t.Run("ended during the cut", func(t *testing.T) {
		c := &testCutter{}
		p := &partition{s: c, heal: time.Hour}
		p.fire()
		if !p.end() || c.cut.Load() {
			t.Errorf("end: the store is still cut (%v)", c.cut.Load())
		}
	})
}

// TestPartitionCutsAtThePackSave: an armed partition cuts the store at its
// first pack save, which fails, and at nothing before it; once ended the
// store works and later pack saves cut nothing.
func TestPartitionCutsAtThePackSave(t *testing.T) {
	ctx := context.Background()
	fs := newFaults(backend.OpenMem())
	plan := fs.armPartition(0)
	if err := fs.flaky.Save(ctx, "index/aa", []byte("x")); err != nil {
		t.Fatalf("an index save before any pack: %v", err)
	}
	if fs.flaky.IsCut() {
		t.Fatal("cut before a pack save")
	}
	if err := fs.flaky.Save(ctx, "data/ab/abcd", []byte("x")); err == nil {
		t.Fatal("the pack save that cut the store succeeded")
	}
	if err := fs.flaky.Save(ctx, "index/bb", []byte("x")); err == nil {
		t.Fatal("a save during the partition succeeded")
	}
	if !fs.endPartition(plan) {
		t.Fatal("endPartition says the store was not cut")
	}
	for _, key := range []string{"index/cc", "data/cd/cdef"} {
		if err := fs.flaky.Save(ctx, key, []byte("x")); err != nil {
			t.Fatalf("save %s after the partition: %v", key, err)
		}
	}
	if fs.flaky.IsCut() {
		t.Fatal("a pack save after the end cut the store")
	}
}

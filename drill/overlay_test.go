package drill

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/backendtest"
)

// The overlay keeps the storage contract, over an empty base and over one
// that holds objects.
func TestOverlayConformance(t *testing.T) {
	backendtest.RunSuite(t, func(t *testing.T) backend.Backend { return NewOverlay(backend.OpenMem()) })
}

// Writes, removals and damage stay in the overlay: the base never changes.
func TestOverlayLeavesBaseAlone(t *testing.T) {
	ctx := context.Background()
	base := backend.OpenMem()
	for _, k := range []string{"data/aa/1", "data/bb/2", "index/3"} {
		if err := base.Save(ctx, k, []byte("base "+k)); err != nil {
			t.Fatal(err)
		}
	}
	o := NewOverlay(base)
	if err := o.Save(ctx, "data/cc/4", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := o.Save(ctx, "data/aa/1", []byte("x")); !errors.Is(err, backend.ErrExists) {
		t.Errorf("Save over a base object: %v, want ErrExists", err)
	}
	if err := o.Remove(ctx, "data/bb/2"); err != nil {
		t.Fatal(err)
	}
	if err := o.Damage(ctx, "index/3", func(b []byte) []byte { b[0] ^= 1; return b }); err != nil {
		t.Fatal(err)
	}
	var listed []string
	_ = o.List(ctx, "", func(oi backend.ObjectInfo) error { listed = append(listed, oi.Key); return nil })
	if len(listed) != 3 {
		t.Errorf("the overlay lists %v, want data/aa/1, data/cc/4 and index/3", listed)
	}
	if got, _ := backend.LoadAll(ctx, o, "index/3"); bytes.Equal(got, []byte("base index/3")) {
		t.Error("the damage is not visible through the overlay")
	}
	for _, k := range []string{"data/aa/1", "data/bb/2", "index/3"} {
		got, err := backend.LoadAll(ctx, base, k)
		if err != nil || string(got) != "base "+k {
			t.Errorf("base %s: %q %v, want it unchanged", k, got, err)
		}
	}
	if _, err := base.Stat(ctx, "data/cc/4"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("the overlay's write reached the base: %v", err)
	}
}

package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/strata-backup/strata/backend"
)

// Overlay is a copy-on-write view of a store: reads fall through to the
// base, writes, removals and damage stay in memory, so a drill can damage
// and write a 100 GB repository without copying anything up front or
// changing one object of it. The disk-full and partition scenarios put
// backend/fault's wrappers in front of it.
type Overlay struct {
	base backend.Backend

	mu      sync.Mutex
	objects map[string][]byte // written or damaged here
	gone    map[string]bool   // removed here
	times   map[string]time.Time
}

// NewOverlay returns an overlay over base.
func NewOverlay(base backend.Backend) *Overlay {
	return &Overlay{base: base, objects: map[string][]byte{}, gone: map[string]bool{}, times: map[string]time.Time{}}
}

// Damage replaces key's bytes in the overlay with damaged ones (the base is
// untouched).
func (o *Overlay) Damage(ctx context.Context, key string, damage func([]byte) []byte) error {
	b, err := backend.LoadAll(ctx, o, key)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objects[key] = damage(bytes.Clone(b))
	delete(o.gone, key)
	return nil
}

// Drop removes key in the overlay only.
func (o *Overlay) Drop(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.objects, key)
	o.gone[key] = true
}

// Save implements backend.Backend (create-only, in the overlay).
func (o *Overlay) Save(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := o.Stat(ctx, key); err == nil {
		return fmt.Errorf("save %s: %w", key, backend.ErrExists)
	} else if !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	// Checked again under the lock: a racing Save may have created it
	// here since the Stat (the base never changes under an overlay).
	if _, here := o.objects[key]; here {
		return fmt.Errorf("save %s: %w", key, backend.ErrExists)
	}
	o.objects[key] = bytes.Clone(data)
	o.times[key] = time.Now()
	delete(o.gone, key)
	return nil
}

// Load implements backend.Backend.
func (o *Overlay) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("load %s: bad range %d+%d", key, offset, length)
	}
	o.mu.Lock()
	b, here := o.objects[key]
	gone := o.gone[key]
	o.mu.Unlock()
	switch {
	case gone:
		return fmt.Errorf("load %s: %w", key, backend.ErrNotFound)
	case !here:
		return o.base.Load(ctx, key, offset, length, fn)
	}
	end := int64(len(b))
	if length > 0 {
		end = offset + length
	}
	if offset < 0 || end > int64(len(b)) || offset > end {
		return fmt.Errorf("load %s: range %d+%d beyond end of %d-byte object", key, offset, length, len(b))
	}
	return fn(bytes.NewReader(b[offset:end]))
}

// Stat implements backend.Backend.
func (o *Overlay) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, err
	}
	o.mu.Lock()
	b, here := o.objects[key]
	gone, t := o.gone[key], o.times[key]
	o.mu.Unlock()
	switch {
	case gone:
		return backend.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, backend.ErrNotFound)
	case here:
		if t.IsZero() {
			if oi, err := o.base.Stat(ctx, key); err == nil {
				t = oi.ModTime // damaged in place: the original's time
			}
		}
		return backend.ObjectInfo{Key: key, Size: int64(len(b)), ModTime: t}, nil
	}
	return o.base.Stat(ctx, key)
}

// List implements backend.Backend: the base's objects, less those removed
// here, with those written here.
func (o *Overlay) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	own := map[string]backend.ObjectInfo{}
	for k, b := range o.objects {
		if strings.HasPrefix(k, prefix) {
			own[k] = backend.ObjectInfo{Key: k, Size: int64(len(b)), ModTime: o.times[k]}
		}
	}
	gone := make(map[string]bool, len(o.gone))
	for k := range o.gone {
		gone[k] = true
	}
	o.mu.Unlock()
	err := o.base.List(ctx, prefix, func(oi backend.ObjectInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if gone[oi.Key] {
			return nil
		}
		if mine, ok := own[oi.Key]; ok {
			delete(own, oi.Key)
			mine.ModTime = oi.ModTime
			return fn(mine)
		}
		return fn(oi)
	})
	if err != nil {
		return err
	}
	for _, oi := range own {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(oi); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Remove implements backend.Backend (in the overlay only).
func (o *Overlay) Remove(ctx context.Context, key string) error {
	if _, err := o.Stat(ctx, key); err != nil {
		return err
	}
	o.Drop(key)
	return nil
}

// Close releases the overlay's memory; the base stays open (its owner
// closes it).
func (o *Overlay) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objects, o.gone = map[string][]byte{}, map[string]bool{}
	return nil
}

// Connections passes the base's preference through.
func (o *Overlay) Connections() int { return backend.Connections(o.base, 4) }

// Location names the overlay and its base.
func (o *Overlay) Location() string {
	if p, ok := o.base.(backend.Properties); ok {
		return "overlay on " + p.Location()
	}
	return "overlay"
}

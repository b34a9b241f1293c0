package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Packs: headers against the index, and the read-data pass.

// packJob is one pack as one index object describes it.
type packJob struct {
	pack    chunk.ID
	indexID chunk.ID
	blobs   []index.Blob
}

// checkPacks goes through the live index objects (authentic, not
// superseded by another listed one): it adds them to check's own index
// cache, and compares every pack they name with the store and with the
// pack's header. Packs no live index names are reported as unreferenced.
func (c *checker) checkPacks(ctx context.Context) error {
	var live []chunk.ID
	for id := range c.indexFiles {
		if !c.superseded[id] {
			live = append(live, id)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].String() < live[j].String() })
	c.res.IndexObjects = len(live)
	c.progress.Stage("packs", len(c.packs), 0)

	jobs := make(chan packJob)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for _, id := range live {
			f := c.indexFiles[id]
			if f == nil {
				// Not kept: load it again. Its name was judged in the
				// first pass; an authentic object is used even when its
				// name is wrong.
				key := repo.ObjectKey(repo.PrefixIndex, id)
				stored, gone, err := c.load(gctx, key)
				if err != nil {
					return err
				}
				if gone {
					continue // removed by a prune since the first pass
				}
				plain, err := c.r.OpenObject(repo.PrefixIndex, stored)
				if err == nil {
					f, err = index.Decode(plain)
				}
				if err != nil {
					return fmt.Errorf("check: %s changed during the check: %w", key, err)
				}
			}
			c.indexFiles[id] = nil // the cache holds it from here
			if err := c.blobs.Add(id, f); err != nil {
				return fmt.Errorf("check: %w", err)
			}
			byPack := map[chunk.ID][]index.Blob{}
			var order []chunk.ID
			for _, p := range f.Packs {
				if _, ok := byPack[p.ID]; !ok {
					order = append(order, p.ID)
				}
				byPack[p.ID] = append(byPack[p.ID], p.Blobs...)
				c.res.Blobs += int64(len(p.Blobs))
			}
			for _, p := range order {
				select {
				case jobs <- packJob{pack: p, indexID: id, blobs: byPack[p]}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		return nil
	})
	for range c.workers {
		g.Go(func() error {
			for j := range jobs {
				if err := c.checkPack(gctx, j); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for id := range c.packs {
		if !c.indexed[id] {
			c.warn(repo.ObjectKey(repo.PrefixData, id), KindUnreferenced, "no live index object lists this pack (left by an interrupted backup or a prune; prune removes it)")
		}
	}
	return nil
}

func (c *checker) checkPack(ctx context.Context, j packJob) error {
	key := repo.ObjectKey(repo.PrefixData, j.pack)
	idxKey := repo.ObjectKey(repo.PrefixIndex, j.indexID)
	c.mu.Lock()
	c.indexed[j.pack] = true
	size, ok := c.packs[j.pack]
	c.mu.Unlock()
	markBad := func() {
		c.mu.Lock()
		c.badPacks[j.pack] = true
		c.mu.Unlock()
	}
	if !ok {
		// The listing may lag behind the store: ask once more.
		fi, err := c.be.Stat(ctx, key)
		if errors.Is(err, backend.ErrNotFound) && ctx.Err() == nil {
			c.damage(key, KindMissingPack, "%s lists %d blobs in it", idxKey, len(j.blobs))
			markBad()
			return nil
		}
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		size = fi.Size
	}
	defer c.progress.Done(1, 0)
	beyond := 0
	for _, b := range j.blobs {
		if int64(b.Offset)+int64(b.Length) > size {
			beyond++
		}
	}
	if beyond > 0 {
		c.damage(key, KindIndexRange, "%s places %d of its %d blobs past the pack's end (%d bytes)", idxKey, beyond, len(j.blobs), size)
		markBad()
	}
	hdr, _, err := c.r.LoadPackHeader(ctx, j.pack)
	switch {
	case errors.Is(err, backend.ErrNotFound) && ctx.Err() == nil:
		c.damage(key, KindMissingPack, "%s lists %d blobs in it; it was removed during the check", idxKey, len(j.blobs))
		markBad()
		return nil
	case errors.Is(err, repo.ErrCorrupt):
		c.damage(key, KindPackHeader, "%s", strings.TrimPrefix(err.Error(), "load pack header "+key+": "))
		markBad()
		return nil
	case err != nil:
		return fmt.Errorf("check: %w", err)
	}
	c.bytesRead.Add(int64(len(hdr))*41 + repo.Overhead + 4) // 41-byte entries, sealed, and the trailer
	if d := comparePack(hdr, j.blobs); d != "" {
		c.damage(key, KindIndexMismatch, "header and %s disagree: %s", idxKey, d)
		markBad()
	}
	return nil
}

// comparePack returns how a pack's header and an index's entries for it
// differ, "" when they list the same blobs alike.
func comparePack(hdr, idx []index.Blob) string {
	at := make(map[uint32]index.Blob, len(hdr))
	for _, b := range hdr {
		at[b.Offset] = b
	}
	bad, first := 0, ""
	for _, b := range idx {
		h, ok := at[b.Offset]
		if ok && h == b {
			delete(at, b.Offset)
			continue
		}
		if bad++; bad == 1 {
			first = fmt.Sprintf("blob %s at offset %d (length %d, %s)", b.ID.Short(), b.Offset, b.Length, b.Type)
			if ok {
				first += fmt.Sprintf(" is blob %s (length %d, %s) in the header", h.ID.Short(), h.Length, h.Type)
			} else {
				first += " is not in the header"
			}
		}
	}
	var parts []string
	if bad > 0 {
		parts = append(parts, fmt.Sprintf("%d index entries do not match, first: %s", bad, first))
	}
	if bad == 0 && len(at) > 0 {
		parts = append(parts, fmt.Sprintf("the header lists %d blobs the index does not", len(at)))
	}
	return strings.Join(parts, "; ")
}

// readData reads the chosen packs whole, one per worker: the pack must hash
// to its name and every blob its header lists must open and hash to its id.
func (c *checker) readData(ctx context.Context) error {
	if !c.opts.ReadData && c.opts.Subset == nil {
		return nil
	}
	ids := make([]chunk.ID, 0, len(c.packs))
	for id := range c.packs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	c.res.ReadData = "all"
	if s := c.opts.Subset; s != nil {
		ids = c.subset(*s, ids)
	}
	var total int64
	for _, id := range ids {
		total += c.packs[id]
	}
	c.progress.Stage("read-data", len(ids), total)
	// A worker per core and one more: while one waits for its pack to
	// arrive, the others keep the cores decompressing and hashing. Each
	// holds a pack and a blob (about 21 MiB with 16 MiB packs).
	workers := max(c.workers, runtime.GOMAXPROCS(0)+1)
	bufs := make(chan *readBufs, workers)
	for range workers {
		bufs <- &readBufs{}
	}
	var blobs atomic.Int64
	err := forEachLimit(ctx, workers, ids, func(ctx context.Context, id chunk.ID) error {
		rb := <-bufs
		defer func() { bufs <- rb }()
		return c.readPack(ctx, id, c.packs[id], rb, &blobs)
	})
	c.res.PacksRead = len(ids)
	c.res.BlobsRead = blobs.Load()
	return err
}

// readBufs are one read-data worker's buffers, reused from pack to pack.
type readBufs struct{ pack, plain []byte }

// subset picks the packs of s from ids (sorted).
func (c *checker) subset(s Subset, ids []chunk.ID) []chunk.ID {
	c.res.ReadData = s.String()
	if s.Percent == 0 {
		var out []chunk.ID
		for _, id := range ids {
			if int(id[0])%s.M == s.N-1 {
				out = append(out, id)
			}
		}
		return out
	}
	if s.Seed == 0 {
		s.Seed = rand.Uint64() | 1
	}
	c.res.Seed = s.Seed
	n := int(math.Round(float64(len(ids)) * s.Percent / 100))
	n = min(max(n, 1), len(ids))
	rng := rand.New(rand.NewPCG(s.Seed, 0x5eed))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	out := ids[:n]
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// readPack reads and checks one pack of the listed size, in rb's buffers.
func (c *checker) readPack(ctx context.Context, id chunk.ID, size int64, rb *readBufs, blobs *atomic.Int64) error {
	key := repo.ObjectKey(repo.PrefixData, id)
	if int64(cap(rb.pack)) < size+bytes.MinRead {
		// The largest pack a writer makes (target plus one chunk), or this
		// one if larger, and the room ReadFrom wants to see EOF: growing
		// by doubling left 16 MiB packs in 32 MiB buffers.
		cfg := c.r.Config()
		rb.pack = make([]byte, 0, max(size, int64(cfg.PackSize)+int64(cfg.Chunker.MaxSize)+64<<10)+bytes.MinRead)
	}
	err := c.be.Load(ctx, key, 0, 0, func(rd io.Reader) error {
		b := bytes.NewBuffer(rb.pack[:0])
		_, err := b.ReadFrom(rd)
		rb.pack = b.Bytes()
		return err
	})
	buf := rb.pack
	if errors.Is(err, backend.ErrNotFound) && ctx.Err() == nil {
		return nil // removed since the listing (by prune)
	}
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	c.bytesRead.Add(int64(len(buf)))
	defer c.progress.Done(1, int64(len(buf)))
	hashOK := chunk.ObjectID(buf) == id
	if !hashOK {
		c.damage(key, KindHashMismatch, "its bytes hash to %s", chunk.ObjectID(buf))
	}
	hdr, err := c.r.ParsePack(buf)
	if err != nil {
		c.mu.Lock()
		known := c.badPacks[id]
		c.mu.Unlock()
		if hashOK || !known {
			c.damage(key, KindPackHeader, "%v", err)
		}
		return nil
	}
	for _, b := range hdr {
		blobs.Add(1)
		sealed := buf[b.Offset : b.Offset+b.Length]
		plain, err := c.r.OpenBlob(rb.plain, b, sealed)
		if err != nil {
			c.damage(key, KindBadBlob, "%s blob %s at offset %d: %v", b.Type, b.ID.Short(), b.Offset, err)
			continue
		}
		rb.plain = plain
	}
	return nil
}

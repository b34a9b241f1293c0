package index

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-backup/strata/chunk"
)

// A cold cache (a new machine, a wiped cache, a rebuild after prune) is
// loaded in key order instead of one index object at a time. Blob ids are
// random, so adding object after object inserts all over the B+tree: every
// entry dirties a leaf and the branches above it, which bbolt rewrites and
// materialises on the heap, and both the time and the heap of a build grew
// with the cache (10,000,000 blobs: about three minutes). In key order bbolt
// only ever appends at the right edge of the tree.
//
// bulkLoad makes two passes. The first spreads every entry (blob id ‖ pack id
// ‖ entry ‖ the ordinal of its index object, recSize bytes) over bulkParts
// temporary files by the first byte of the blob id, one index object in
// memory at a time, and notes which objects each supersedes. The second
// reads the partitions in order, drops the entries of superseded objects,
// sorts the rest in memory and appends them. Each object is loaded once
// (a rebuild used to load every object twice). Memory: one object, the
// partitions' write buffers, and one partition (a 256th of the entries:
// 3.4 MiB at 10,000,000 blobs). Disk: 88 bytes an entry beside the cache
// (880 MB at 10,000,000 blobs, less than the cache itself), each partition
// removed once appended.
const (
	bulkParts = 256
	kvSize    = 2*chunk.IDSize + entrySize
	recSize   = kvSize + 4
	// bulkMinObjects: below this many new objects the per-object path is
	// as good and needs no temporary files.
	bulkMinObjects = 8
	// bulkBatch entries a transaction: in key order a transaction dirties
	// only the pages it fills, so it can be large.
	bulkBatch = 16384
)

// bulkLoad adds the live objects among ids (those no other one of ids
// supersedes) to a cache whose blob bucket is empty, and marks each as held
// once all of them are in. An interrupted load leaves entries without their
// objects marked; the next Sync loads them again (puts are idempotent). It
// returns the number of objects added.
func (c *Cache) bulkLoad(ctx context.Context, src Source, ids []chunk.ID) (int, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(c.path), "bulk-")
	if err != nil {
		return 0, fmt.Errorf("bulk load index cache: %w", err)
	}
	defer os.RemoveAll(tmp)

	parts := make([]*os.File, bulkParts)
	writers := make([]*bufio.Writer, bulkParts)
	defer func() {
		for _, f := range parts {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range parts {
		if parts[i], err = os.Create(filepath.Join(tmp, fmt.Sprintf("%02x", i))); err != nil {
			return 0, fmt.Errorf("bulk load index cache: %w", err)
		}
		writers[i] = bufio.NewWriterSize(parts[i], 16<<10)
	}
	supersedes := make([][]chunk.ID, len(ids))
	superseded := make(map[chunk.ID]bool)
	var rec [recSize]byte
	for ord, id := range ids {
		f, err := src.LoadIndex(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("bulk load index cache: %w", err)
		}
		binary.LittleEndian.PutUint32(rec[kvSize:], uint32(ord))
		for _, p := range f.Packs {
			for _, b := range p.Blobs {
				copy(rec[:], b.ID[:])
				copy(rec[chunk.IDSize:], p.ID[:])
				encodeEntry(rec[2*chunk.IDSize:], b)
				if _, err := writers[b.ID[0]].Write(rec[:]); err != nil {
					return 0, fmt.Errorf("bulk load index cache: %w", err)
				}
			}
		}
		supersedes[ord] = f.Supersedes
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	dead := make([]bool, len(ids))
	for ord, id := range ids {
		dead[ord] = superseded[id]
	}

	var buf []byte
	for i, w := range writers {
		if err := w.Flush(); err != nil {
			return 0, fmt.Errorf("bulk load index cache: %w", err)
		}
		if _, err := parts[i].Seek(0, io.SeekStart); err != nil {
			return 0, fmt.Errorf("bulk load index cache: %w", err)
		}
		b := bytes.NewBuffer(buf[:0])
		if _, err := b.ReadFrom(parts[i]); err != nil {
			return 0, fmt.Errorf("bulk load index cache: %w", err)
		}
		buf = b.Bytes()
		parts[i].Close()
		parts[i] = nil
		// Gone as soon as read: the partitions' disk space shrinks as the
		// cache grows.
		if err := os.Remove(filepath.Join(tmp, fmt.Sprintf("%02x", i))); err != nil {
			return 0, fmt.Errorf("bulk load index cache: %w", err)
		}
		if err := c.appendSorted(buf, dead); err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	n := 0
	err = c.db.Update(func(tx *bolt.Tx) error {
		held := tx.Bucket(bucketIndexes)
		for ord, id := range ids {
			if dead[ord] {
				continue
			}
			if err := held.Put(id[:], encodeIDs(supersedes[ord])); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bulk load index cache: %w", err)
	}
	return n, nil
}

// appendSorted puts one partition's entries (recSize bytes each), except
// those of dead objects, in key order.
func (c *Cache) appendSorted(buf []byte, dead []bool) error {
	if len(buf)%recSize != 0 {
		return fmt.Errorf("bulk load index cache: partition of %d bytes is not whole entries", len(buf))
	}
	kvs := make([][]byte, 0, len(buf)/recSize)
	for ; len(buf) > 0; buf = buf[recSize:] {
		if ord := binary.LittleEndian.Uint32(buf[kvSize:]); int(ord) < len(dead) && !dead[ord] {
			kvs = append(kvs, buf[:kvSize:kvSize])
		}
	}
	slices.SortFunc(kvs, func(a, b []byte) int { return bytes.Compare(a[:2*chunk.IDSize], b[:2*chunk.IDSize]) })
	for start := 0; start < len(kvs); start += bulkBatch {
		batch := kvs[start:min(start+bulkBatch, len(kvs))]
		err := c.db.Update(func(tx *bolt.Tx) error {
			blobs := tx.Bucket(bucketBlobs)
			// Appending in key order: pages filled, not split in halves.
			blobs.FillPercent = 1.0
			for _, kv := range batch {
				if err := blobs.Put(kv[:2*chunk.IDSize], kv[2*chunk.IDSize:]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bulk load index cache: %w", err)
		}
	}
	return nil
}

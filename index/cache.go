package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-backup/strata/chunk"
)

// ErrCacheBusy is returned by OpenCache when another process holds the cache
// file. Callers fall back to a private cache so that concurrent backups never
// wait on each other.
var ErrCacheBusy = errors.New("index cache in use by another process")

var (
	bucketBlobs   = []byte("blobs")   // blob id ‖ pack id → entry
	bucketIndexes = []byte("indexes") // index object id → nothing
	bucketMeta    = []byte("meta")
	keyVersion    = []byte("version")
	// keyLoading is in the meta bucket while a bulk load writes without
	// fsync (see bulk).
	keyLoading = []byte("loading")
)

// cacheVersion changes whenever the on-disk layout of the cache changes; a
// cache of another version is rebuilt.
const cacheVersion = 1

// entrySize is the value size in bucketBlobs: flags, offset, length, raw length.
const entrySize = 1 + 4 + 4 + 4

// Source is where the cache learns the repository's index objects from.
type Source interface {
	// ListIndexes calls fn for the id of every index object.
	ListIndexes(ctx context.Context, fn func(chunk.ID) error) error
	// LoadIndex loads and decodes one index object.
	LoadIndex(ctx context.Context, id chunk.ID) (*File, error)
}

// Cache is a bbolt-backed blob lookup table. It is safe for concurrent use.
type Cache struct {
	db   *bolt.DB
	path string
}

// OpenCache opens (creating if needed) the cache file at path. If another
// process holds it, it returns ErrCacheBusy after a short wait.
func OpenCache(path string) (*Cache, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open index cache: %w", err)
	}
	db, err := openBolt(path)
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open index cache %s: %w", path, ErrCacheBusy)
	}
	if err == nil && loading(db) {
		db.Close()
		err = errors.New("a bulk load was interrupted")
	}
	if err != nil {
		// The cache is only a copy: a file that does not open, or that a
		// crash during an unsynced bulk load may have left with torn
		// pages, is recreated rather than trusted.
		if rmErr := os.Remove(path); rmErr != nil {
			return nil, fmt.Errorf("open index cache %s: %w", path, err)
		}
		db, err = openBolt(path)
		if err != nil {
			return nil, fmt.Errorf("open index cache %s: %w", path, err)
		}
	}
	c := &Cache{db: db, path: path}
	if err := c.checkVersion(); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// openBolt opens the file with its free-page list kept in the file. Without
// it (NoFreelistSync) bbolt rebuilds the list at every open by walking and
// checking every page: at 10,000,000 blobs (a 0.9 GiB file) that took each
// command 1-2 s of CPU and faulted the whole file into its RSS (1.2 GiB),
// for a backup of one small file. A file written without the list gets one
// at its first open.
func openBolt(path string) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: 500 * time.Millisecond, FreelistType: bolt.FreelistMapType})
}

// loading reports whether the file holds the mark of a bulk load that did
// not finish (see bulk).
func loading(db *bolt.DB) bool {
	held := false
	_ = db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			held = m.Get(keyLoading) != nil
		}
		return nil
	})
	return held
}

// checkVersion empties a cache written by another layout version.
func (c *Cache) checkVersion() error {
	return c.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("init index cache: %w", err)
		}
		if v := meta.Get(keyVersion); len(v) == 8 && binary.LittleEndian.Uint64(v) == cacheVersion {
			return nil
		}
		if err := resetBuckets(tx); err != nil {
			return err
		}
		return meta.Put(keyVersion, binary.LittleEndian.AppendUint64(nil, cacheVersion))
	})
}

func resetBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketBlobs, bucketIndexes} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("reset index cache: %w", err)
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("reset index cache: %w", err)
		}
	}
	return nil
}

// Close closes the cache file.
func (c *Cache) Close() error { return c.db.Close() }

// Sync brings the cache up to date with src. An index object is live when
// it is listed and no listed object supersedes it (prune writes the new
// index before deleting the old, so both may be listed for a while). New
// live objects are added one at a time, each dropped before the next is
// loaded, so memory does not grow with the repository; if an object the
// cache holds stops being live, the cache is rebuilt from scratch. It
// returns the number of objects loaded.
func (c *Cache) Sync(ctx context.Context, src Source) (n int, err error) {
	listed := make(map[chunk.ID]struct{})
	if err := src.ListIndexes(ctx, func(id chunk.ID) error {
		listed[id] = struct{}{}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("sync index cache: %w", err)
	}
	known := make(map[chunk.ID]bool)
	superseded := make(map[chunk.ID]bool)
	if err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndexes).ForEach(func(k, v []byte) error {
			known[chunk.ID(k)] = true
			for _, s := range decodeIDs(v) {
				superseded[s] = true
			}
			return nil
		})
	}); err != nil {
		return 0, fmt.Errorf("sync index cache: %w", err)
	}
	for id := range known {
		if _, ok := listed[id]; !ok || superseded[id] {
			return c.rebuild(ctx, src, listed)
		}
	}
	if len(known) == 0 && len(listed) >= bulkMinObjects {
		return c.rebuild(ctx, src, listed) // a cold cache: in key order
	}
	var todo []chunk.ID
	for id := range listed {
		if !known[id] && !superseded[id] {
			todo = append(todo, id)
		}
	}
	if len(todo) == 0 {
		return 0, nil // the usual case: nothing new, nothing written
	}
	if err := c.bulk(true); err != nil {
		return 0, err
	}
	defer c.endBulk(&err)
	for _, id := range todo {
		if superseded[id] {
			continue
		}
		f, err := src.LoadIndex(ctx, id)
		if err != nil {
			return n, fmt.Errorf("sync index cache: %w", err)
		}
		if err := c.Add(id, f); err != nil {
			return n, err
		}
		known[id] = true
		n++
		for _, s := range f.Supersedes {
			superseded[s] = true
			if known[s] {
				// A new object replaces one already added: only prune
				// does this, and a rebuild is the simple correct answer.
				return c.rebuild(ctx, src, listed)
			}
		}
	}
	return n, nil
}

// bulk switches fsync off for a large load (on) and back on (off). The
// cache is rebuildable: the load's mark, committed with fsync before the
// first unsynced write and removed after the last one is synced, tells the
// next OpenCache that a crash may have torn the file, which it then
// recreates. An object whose load is interrupted otherwise (an error, a
// cancelled context) is simply loaded again: its puts are idempotent.
func (c *Cache) bulk(on bool) error {
	if on {
		if err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyLoading, []byte{1}) }); err != nil {
			return fmt.Errorf("index cache: mark bulk load: %w", err)
		}
		c.db.NoSync = true
		return nil
	}
	c.db.NoSync = false
	if err := c.db.Sync(); err != nil {
		return fmt.Errorf("index cache: sync bulk load: %w", err)
	}
	if err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyLoading) }); err != nil {
		return fmt.Errorf("index cache: end bulk load: %w", err)
	}
	return nil
}

// endBulk is bulk(false) for a deferred call: it keeps the first error.
func (c *Cache) endBulk(err *error) {
	if e := c.bulk(false); *err == nil {
		*err = e
	}
}

// rebuild empties the cache and adds every live object of listed. Two
// passes over the objects keep memory at one object's worth.
func (c *Cache) rebuild(ctx context.Context, src Source, listed map[chunk.ID]struct{}) (n int, err error) {
	if err := c.db.Update(resetBuckets); err != nil {
		return 0, err
	}
	if len(listed) >= bulkMinObjects {
		if err := c.bulk(true); err != nil {
			return 0, err
		}
		defer c.endBulk(&err)
		ids := make([]chunk.ID, 0, len(listed))
		for id := range listed {
			ids = append(ids, id)
		}
		return c.bulkLoad(ctx, src, ids)
	}
	superseded := make(map[chunk.ID]bool)
	for id := range listed {
		f, err := src.LoadIndex(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("rebuild index cache: %w", err)
		}
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	if err := c.bulk(true); err != nil {
		return 0, err
	}
	defer c.endBulk(&err)
	for id := range listed {
		if superseded[id] {
			continue
		}
		f, err := src.LoadIndex(ctx, id)
		if err != nil {
			return n, fmt.Errorf("rebuild index cache: %w", err)
		}
		if err := c.Add(id, f); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func encodeIDs(ids []chunk.ID) []byte {
	out := make([]byte, 0, len(ids)*chunk.IDSize)
	for _, id := range ids {
		out = append(out, id[:]...)
	}
	return out
}

func decodeIDs(b []byte) []chunk.ID {
	var out []chunk.ID
	for ; len(b) >= chunk.IDSize; b = b[chunk.IDSize:] {
		out = append(out, chunk.ID(b[:chunk.IDSize]))
	}
	return out
}

// addBatch is how many entries one bbolt transaction writes when an index
// object is added to a cache that already holds others: bbolt holds a
// transaction's dirty pages in memory, so a bound here is a bound on memory.
// Blob ids are random, so each entry dirties a leaf of its own, and the
// branches above it, whose every entry bbolt materialises on the heap: with
// 8,192 the heap of adding an object grew with the cache (2,000,000 blobs:
// twice the heap of a backup into an empty repository), still at 1,024
// (25 MiB at 1,000,000 entries, 40 at 5,000,000), less with 256 (20, 32).
// A cold cache is built by bulkLoad instead, in key order.
const addBatch = 256

// Add records the entries of index object id. Entries are written in key
// order (bbolt's inserts are cheap in order and quadratic out of it) in
// transactions of addBatch; the object is marked as held in the last one,
// so an interrupted Add is redone in full by the next Sync.
func (c *Cache) Add(id chunk.ID, f *File) error {
	const kvSize = 2*chunk.IDSize + entrySize
	n := 0
	for _, p := range f.Packs {
		n += len(p.Blobs)
	}
	// One arena for every entry (bbolt keeps the key and value slices
	// until the transaction commits): 50,000 small allocations per object
	// were most of a cache build's garbage.
	arena := make([]byte, n*kvSize)
	kvs := make([][]byte, 0, n)
	for _, p := range f.Packs {
		for _, b := range p.Blobs {
			kv := arena[:kvSize:kvSize]
			arena = arena[kvSize:]
			copy(kv, b.ID[:])
			copy(kv[chunk.IDSize:], p.ID[:])
			encodeEntry(kv[2*chunk.IDSize:], b)
			kvs = append(kvs, kv)
		}
	}
	slices.SortFunc(kvs, func(a, b []byte) int { return bytes.Compare(a[:2*chunk.IDSize], b[:2*chunk.IDSize]) })
	for start := 0; ; start += addBatch {
		batch := kvs[start:min(start+addBatch, len(kvs))]
		last := start+addBatch >= len(kvs)
		err := c.db.Update(func(tx *bolt.Tx) error {
			blobs := tx.Bucket(bucketBlobs)
			for _, kv := range batch {
				if err := blobs.Put(kv[:2*chunk.IDSize], kv[2*chunk.IDSize:]); err != nil {
					return err
				}
			}
			if last {
				return tx.Bucket(bucketIndexes).Put(id[:], encodeIDs(f.Supersedes))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("add index %s to cache: %w", id.Short(), err)
		}
		if last {
			return nil
		}
	}
}

// Lookup returns every known location of blob id (normally one; more after a
// blob was stored again because its pack was marked for deletion).
func (c *Cache) Lookup(id chunk.ID) ([]Location, error) {
	var locs []Location
	err := c.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketBlobs).Cursor()
		for k, v := cur.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = cur.Next() {
			if len(k) != 2*chunk.IDSize || len(v) != entrySize {
				return fmt.Errorf("lookup blob %s: damaged cache entry", id.Short())
			}
			loc := Location{Pack: chunk.ID(k[chunk.IDSize:]), Blob: decodeEntry(v)}
			loc.ID = id
			locs = append(locs, loc)
		}
		return nil
	})
	return locs, err
}

// Len returns the number of (blob, pack) entries in the cache.
func (c *Cache) Len() (int, error) {
	var n int
	err := c.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketBlobs).Stats().KeyN
		return nil
	})
	return n, err
}

func encodeEntry(dst []byte, b Blob) {
	dst[0] = byte(b.Type)
	if b.Compressed {
		dst[0] |= 0x80
	}
	binary.LittleEndian.PutUint32(dst[1:], b.Offset)
	binary.LittleEndian.PutUint32(dst[5:], b.Length)
	binary.LittleEndian.PutUint32(dst[9:], b.RawLength)
}

func decodeEntry(v []byte) Blob {
	return Blob{
		Type:       BlobType(v[0] & 0x7f),
		Compressed: v[0]&0x80 != 0,
		Offset:     binary.LittleEndian.Uint32(v[1:]),
		Length:     binary.LittleEndian.Uint32(v[5:]),
		RawLength:  binary.LittleEndian.Uint32(v[9:]),
	}
}

package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"

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
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 500 * time.Millisecond, NoFreelistSync: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open index cache %s: %w", path, ErrCacheBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("open index cache %s: %w", path, err)
	}
	c := &Cache{db: db, path: path}
	if err := c.checkVersion(); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
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

// Sync brings the cache up to date with src: it adds index objects it has
// not seen, and rebuilds from scratch when one it has seen is gone or has
// been superseded (prune rewrote the index). It returns the number of index
// objects loaded.
func (c *Cache) Sync(ctx context.Context, src Source) (int, error) {
	listed := make(map[chunk.ID]struct{})
	if err := src.ListIndexes(ctx, func(id chunk.ID) error {
		listed[id] = struct{}{}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("sync index cache: %w", err)
	}

	var known []chunk.ID
	if err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndexes).ForEach(func(k, _ []byte) error {
			known = append(known, chunk.ID(k))
			return nil
		})
	}); err != nil {
		return 0, fmt.Errorf("sync index cache: %w", err)
	}
	stale := false
	for _, id := range known {
		if _, ok := listed[id]; !ok {
			stale = true
			break
		}
		delete(listed, id)
	}
	if !stale {
		n, superseded, err := c.load(ctx, src, listed)
		if err != nil || !superseded {
			return n, err
		}
		// A new index object replaces ones the cache already holds: fall
		// through to a rebuild so their entries disappear.
	}
	return c.rebuild(ctx, src)
}

// load adds the index objects in ids. superseded reports whether any of them
// supersedes an object the cache holds.
func (c *Cache) load(ctx context.Context, src Source, ids map[chunk.ID]struct{}) (n int, superseded bool, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	type loaded struct {
		id chunk.ID
		f  *File
	}
	results := make(chan loaded)
	go func() {
		for id := range ids {
			g.Go(func() error {
				f, err := src.LoadIndex(gctx, id)
				if err != nil {
					return err
				}
				select {
				case results <- loaded{id, f}:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			})
		}
		_ = g.Wait()
		close(results)
	}()
	for r := range results {
		if err == nil {
			if err = c.Add(r.id, r.f); err == nil {
				n++
				superseded = superseded || c.holdsAny(r.f.Supersedes)
			}
		}
	}
	if werr := g.Wait(); werr != nil {
		return n, false, fmt.Errorf("sync index cache: %w", werr)
	}
	return n, superseded, err
}

func (c *Cache) holdsAny(ids []chunk.ID) bool {
	found := false
	_ = c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIndexes)
		for _, id := range ids {
			if b.Get(id[:]) != nil {
				found = true
				return nil
			}
		}
		return nil
	})
	return found
}

// rebuild empties the cache and loads every index object that no other one
// supersedes. Two passes over the objects keep memory at one object's worth.
func (c *Cache) rebuild(ctx context.Context, src Source) (int, error) {
	if err := c.db.Update(resetBuckets); err != nil {
		return 0, err
	}
	all := make(map[chunk.ID]struct{})
	if err := src.ListIndexes(ctx, func(id chunk.ID) error {
		all[id] = struct{}{}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("rebuild index cache: %w", err)
	}
	for id := range all {
		f, err := src.LoadIndex(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("rebuild index cache: %w", err)
		}
		for _, s := range f.Supersedes {
			delete(all, s)
		}
	}
	n, _, err := c.load(ctx, src, all)
	return n, err
}

// Add records the entries of index object id.
func (c *Cache) Add(id chunk.ID, f *File) error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bucketBlobs)
		for _, p := range f.Packs {
			for _, b := range p.Blobs {
				// bbolt keeps the key and value slices until the
				// transaction commits: each Put needs its own.
				kv := make([]byte, 2*chunk.IDSize+entrySize)
				key, val := kv[:2*chunk.IDSize], kv[2*chunk.IDSize:]
				copy(key, b.ID[:])
				copy(key[chunk.IDSize:], p.ID[:])
				encodeEntry(val, b)
				if err := blobs.Put(key, val); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketIndexes).Put(id[:], nil)
	})
	if err != nil {
		return fmt.Errorf("add index %s to cache: %w", id.Short(), err)
	}
	return nil
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

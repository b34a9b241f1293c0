// Package repo is strata's repository: config, keys, encryption, packs, the
// index and every other object, on top of a backend.Backend.
//
// Basics: Init creates a repository, Open unlocks one with a password.
// Content goes in through WithWriter, which runs the pack pipeline for the
// duration of a callback and returns only once every pack and index object
// written is durable; only then may a caller write a snapshot that refers to
// them. Blobs come back with LoadBlob, other objects with LoadJSON.
//
// Caveats: the index cache is a local bbolt file; two processes on one
// machine share it when they can and fall back to a private one when they
// cannot. All objects are immutable: nothing here rewrites an object in place.
package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
)

// ErrNoRepository means there is no repository (no config object) at the location.
var ErrNoRepository = errors.New("no repository at this location")

// ErrAlreadyInitialized means Init found a config object.
var ErrAlreadyInitialized = errors.New("repository already initialised")

// Object prefixes (SPEC section 3). Each name is also the associated data of
// the AEAD, so an object copied under another prefix fails to open.
const (
	PrefixIndex         = "index"
	PrefixSnapshots     = "snapshots"
	PrefixDeletions     = "deletions"
	PrefixPolicy        = "policy"
	PrefixVerifications = "verifications"
	PrefixDrills        = "drills"
	PrefixLocks         = "locks"
	PrefixData          = "data"
	PrefixOplog         = "oplog"
	configKey           = "config"
)

// Options tune Open and Init.
type Options struct {
	// CacheDir holds the per-repository index cache; empty means the
	// user's cache directory.
	CacheDir string
	// NoCache keeps the index cache in a temporary directory removed on Close.
	NoCache bool
}

// Repository is an open repository.
type Repository struct {
	be     backend.Backend
	cfg    Config
	master masterKey
	keyID  chunk.ID
	opts   Options

	crypt  *crypter
	hasher *chunk.Hasher

	cacheOnce sync.Once
	cache     *index.Cache
	cacheErr  error
	tmpCache  string // removed on Close
}

// InitOptions are the settings of a new repository.
type InitOptions struct {
	PackSize    int    // 0: DefaultPackSize
	Compression string // "": CompressionAuto
	// Polynomial fixes the chunker polynomial (tests, fixtures); 0: random.
	Polynomial uint64
}

// Init creates a repository in be, protected by password.
func Init(ctx context.Context, be backend.Backend, password string, iopts InitOptions, opts Options) (*Repository, error) {
	if _, err := be.Stat(ctx, configKey); err == nil {
		return nil, fmt.Errorf("init repository at %s: %w", backend.Location(be), ErrAlreadyInitialized)
	} else if !errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	pol := iopts.Polynomial
	if pol == 0 {
		var err error
		if pol, err = chunk.RandomPolynomial(); err != nil {
			return nil, err
		}
	}
	var idBytes [32]byte
	var mk masterKey
	if _, err := rand.Read(idBytes[:]); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if _, err := rand.Read(mk[:]); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	cfg := Config{
		Version:     FormatVersion,
		ID:          hex.EncodeToString(idBytes[:]),
		Chunker:     chunk.DefaultParams(pol),
		PackSize:    iopts.PackSize,
		Compression: iopts.Compression,
	}
	if cfg.PackSize == 0 {
		cfg.PackSize = DefaultPackSize
	}
	if cfg.Compression == "" {
		cfg.Compression = CompressionAuto
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	r := newRepository(be, cfg, mk, opts)
	// The key goes first and the config last: a repository exists once its
	// config does, and by then it can be opened.
	id, err := r.AddKey(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	r.keyID = id
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := be.Save(ctx, configKey, r.sealObject(plain, configKey)); err != nil {
		return nil, fmt.Errorf("init repository: save config: %w", err)
	}
	return r, nil
}

func newRepository(be backend.Backend, cfg Config, mk masterKey, opts Options) *Repository {
	return &Repository{
		be:     be,
		cfg:    cfg,
		master: mk,
		opts:   opts,
		crypt:  newCrypter(mk.derive("strata v1 object encryption")),
		hasher: chunk.NewHasher(mk.derive("strata v1 blob id")),
	}
}

// Open unlocks the repository in be with password.
func Open(ctx context.Context, be backend.Backend, password string, opts Options) (*Repository, error) {
	if _, err := be.Stat(ctx, configKey); errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("open repository at %s: %w", backend.Location(be), ErrNoRepository)
	} else if err != nil {
		return nil, fmt.Errorf("open repository at %s: %w", backend.Location(be), err)
	}
	mk, keyID, err := findKey(ctx, be, password)
	if err != nil {
		return nil, fmt.Errorf("open repository at %s: %w", backend.Location(be), err)
	}
	r := newRepository(be, Config{}, mk, opts)
	r.keyID = keyID
	stored, err := backend.LoadAll(ctx, be, configKey)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	plain, err := r.openObject(stored, configKey)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	if err := json.Unmarshal(plain, &r.cfg); err != nil {
		return nil, fmt.Errorf("decode config: %w: %w", err, ErrCorrupt)
	}
	if err := r.cfg.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Close releases the index cache. It does not close the backend.
func (r *Repository) Close() error {
	var err error
	if r.cache != nil {
		err = r.cache.Close()
	}
	if r.tmpCache != "" {
		_ = os.RemoveAll(r.tmpCache)
	}
	return err
}

// Config returns the repository's config.
func (r *Repository) Config() Config { return r.cfg }

// Backend returns the underlying backend.
func (r *Repository) Backend() backend.Backend { return r.be }

// KeyID returns the id of the key file this session opened with.
func (r *Repository) KeyID() chunk.ID { return r.keyID }

// BlobID returns the keyed id of plaintext.
func (r *Repository) BlobID(plaintext []byte) chunk.ID { return r.hasher.Sum(plaintext) }

// Hasher returns the blob id hasher (safe for concurrent use).
func (r *Repository) Hasher() *chunk.Hasher { return r.hasher }

// LineCutKey returns the key that chooses where line streams are cut into
// chunks (chunk.LineChunker): secret, as the chunker polynomial is not.
func (r *Repository) LineCutKey() [32]byte { return r.master.derive("strata v1 line cut") }

// Object framing inside the AEAD: one byte says how the rest is encoded.
const (
	frameRaw  = 0
	frameZstd = 1
)

// sealObject frames, compresses and encrypts an unpacked object.
func (r *Repository) sealObject(plain []byte, ad string) []byte {
	framed := make([]byte, 0, len(plain)+1)
	if len(plain) > 64 && r.cfg.Compression != CompressionOff {
		framed = zstdEncode(append(framed, frameZstd), plain, CompressionAuto)
	}
	if len(framed) == 0 || len(framed) >= len(plain)+1 {
		framed = append(append(framed[:0], frameRaw), plain...)
	}
	return r.crypt.seal(nil, framed, ad)
}

// openObject reverses sealObject.
func (r *Repository) openObject(stored []byte, ad string) ([]byte, error) {
	framed, err := r.crypt.open(nil, stored, ad)
	if err != nil {
		return nil, err
	}
	if len(framed) == 0 {
		return nil, fmt.Errorf("open object: empty frame: %w", ErrCorrupt)
	}
	switch framed[0] {
	case frameRaw:
		return framed[1:], nil
	case frameZstd:
		plain, err := zstdDecode(nil, framed[1:], 0)
		if err != nil {
			return nil, fmt.Errorf("open object: %w: %w", err, ErrCorrupt)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("open object: unknown frame %d: %w", framed[0], ErrCorrupt)
}

// ObjectKey returns the backend key of a content-addressed object.
func ObjectKey(prefix string, id chunk.ID) string {
	if prefix == PrefixData {
		s := id.String()
		return PrefixData + "/" + s[:2] + "/" + s
	}
	return prefix + "/" + id.String()
}

// SaveJSON encrypts v as a new object under prefix and returns its id and
// stored size. The object is durable when SaveJSON returns.
func (r *Repository) SaveJSON(ctx context.Context, prefix string, v any) (chunk.ID, int, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return chunk.ID{}, 0, fmt.Errorf("encode %s object: %w", prefix, err)
	}
	stored := r.sealObject(plain, prefix)
	id := chunk.ObjectID(stored)
	if err := r.be.Save(ctx, ObjectKey(prefix, id), stored); err != nil && !errors.Is(err, backend.ErrExists) {
		return chunk.ID{}, 0, fmt.Errorf("save %s: %w", ObjectKey(prefix, id), err)
	}
	return id, len(stored), nil
}

// LoadJSON loads object prefix/id, checks that its bytes hash to its name,
// decrypts it and decodes it into v.
func (r *Repository) LoadJSON(ctx context.Context, prefix string, id chunk.ID, v any) error {
	plain, err := r.LoadObject(ctx, prefix, id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("decode %s: %w: %w", ObjectKey(prefix, id), err, ErrCorrupt)
	}
	return nil
}

// LoadObject loads, verifies and decrypts object prefix/id.
func (r *Repository) LoadObject(ctx context.Context, prefix string, id chunk.ID) ([]byte, error) {
	key := ObjectKey(prefix, id)
	stored, err := backend.LoadAll(ctx, r.be, key)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	if chunk.ObjectID(stored) != id {
		return nil, fmt.Errorf("load %s: stored bytes do not hash to the object's name: %w", key, ErrCorrupt)
	}
	plain, err := r.openObject(stored, prefix)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	return plain, nil
}

// LoadConfigPlain returns the config object's decrypted JSON (for `cat config`).
func (r *Repository) LoadConfigPlain(ctx context.Context) ([]byte, error) {
	stored, err := backend.LoadAll(ctx, r.be, configKey)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return r.openObject(stored, configKey)
}

// List calls fn with the id of every object under prefix. Keys that are not
// ids (stray files) are skipped; check reports them.
func (r *Repository) List(ctx context.Context, prefix string, fn func(id chunk.ID, size int64) error) error {
	return r.be.List(ctx, prefix+"/", func(fi backend.ObjectInfo) error {
		id, err := chunk.ParseID(fi.Key[strings.LastIndexByte(fi.Key, '/')+1:])
		if err != nil {
			return nil
		}
		return fn(id, fi.Size)
	})
}

// FindObject resolves a full id or a unique prefix of at least 4 hex digits
// under prefix.
func (r *Repository) FindObject(ctx context.Context, prefix, s string) (chunk.ID, error) {
	if id, err := chunk.ParseID(s); err == nil {
		return id, nil
	}
	if len(s) < 4 {
		return chunk.ID{}, fmt.Errorf("find %s %q: give at least 4 hex digits", prefix, s)
	}
	var found []chunk.ID
	err := r.List(ctx, prefix, func(id chunk.ID, _ int64) error {
		if strings.HasPrefix(id.String(), strings.ToLower(s)) {
			found = append(found, id)
		}
		return nil
	})
	switch {
	case err != nil:
		return chunk.ID{}, fmt.Errorf("find %s %q: %w", prefix, s, err)
	case len(found) == 0:
		return chunk.ID{}, fmt.Errorf("find %s %q: %w", prefix, s, backend.ErrNotFound)
	case len(found) > 1:
		return chunk.ID{}, fmt.Errorf("find %s %q: prefix is ambiguous (%d matches)", prefix, s, len(found))
	}
	return found[0], nil
}

// Index returns the index cache, synchronised with the repository's index
// objects on first use.
func (r *Repository) Index(ctx context.Context) (*index.Cache, error) {
	r.cacheOnce.Do(func() {
		r.cache, r.cacheErr = r.openCache()
		if r.cacheErr == nil {
			if _, err := r.cache.Sync(ctx, indexSource{r}); err != nil {
				r.cacheErr = err
			}
		}
	})
	return r.cache, r.cacheErr
}

func (r *Repository) openCache() (*index.Cache, error) {
	if !r.opts.NoCache {
		dir := r.opts.CacheDir
		if dir == "" {
			if ucd, err := os.UserCacheDir(); err == nil {
				dir = filepath.Join(ucd, "strata")
			}
		}
		if dir != "" {
			c, err := index.OpenCache(filepath.Join(dir, r.cfg.ID, "index.db"))
			if err == nil {
				return c, nil
			}
			if !errors.Is(err, index.ErrCacheBusy) {
				return nil, err
			}
			// Another strata process holds the shared cache: work from a
			// private one rather than wait for it.
		}
	}
	tmp, err := os.MkdirTemp("", "strata-index-")
	if err != nil {
		return nil, fmt.Errorf("create temporary index cache: %w", err)
	}
	r.tmpCache = tmp
	return index.OpenCache(filepath.Join(tmp, "index.db"))
}

// indexSource feeds the cache from the repository's index objects.
type indexSource struct{ r *Repository }

func (s indexSource) ListIndexes(ctx context.Context, fn func(chunk.ID) error) error {
	return s.r.List(ctx, PrefixIndex, func(id chunk.ID, _ int64) error { return fn(id) })
}

func (s indexSource) LoadIndex(ctx context.Context, id chunk.ID) (*index.File, error) {
	plain, err := s.r.LoadObject(ctx, PrefixIndex, id)
	if err != nil {
		return nil, err
	}
	f, err := index.Decode(plain)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w: %w", ObjectKey(PrefixIndex, id), err, ErrCorrupt)
	}
	return f, nil
}

// LoadIndexFile loads and decodes one index object.
func (r *Repository) LoadIndexFile(ctx context.Context, id chunk.ID) (*index.File, error) {
	return indexSource{r}.LoadIndex(ctx, id)
}

// SealObject frames, compresses and encrypts plain as an object of kind ad
// (its prefix, e.g. "oplog") and returns the stored bytes and their object
// id. It is for objects whose key holds more than the id (oplog segments:
// oplog/<generation>/<first>-<last>-<id>); the caller saves them.
func (r *Repository) SealObject(ad string, plain []byte) ([]byte, chunk.ID) {
	stored := r.sealObject(plain, ad)
	return stored, chunk.ObjectID(stored)
}

// OpenObject authenticates and decrypts stored bytes sealed with ad.
func (r *Repository) OpenObject(ad string, stored []byte) ([]byte, error) {
	return r.openObject(stored, ad)
}

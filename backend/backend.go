// Package backend stores a repository's objects: immutable, named byte strings.
//
// A Backend knows nothing of encryption, packs or snapshots. It stores what it
// is given under a key such as "data/ab/ab12…" and gives it back. Policy
// (retries, rate limits, fault injection, overlays) is added by wrapping a
// Backend, never by growing the interface.
//
// Keys are slash-separated, relative, and never a prefix-directory of another
// key (posix-backed object stores cannot hold both "x" and "x/y").
package backend

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Implementations wrap them so errors.Is works.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: Save was asked to create a key that already exists.
	ErrExists = errors.New("object already exists")
	// ErrNoSpace: the store ran out of space (disk full, quota). Permanent
	// for the current operation; retrying does not help.
	ErrNoSpace = errors.New("no space left in store")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ModTime is the store's own timestamp for the object. Prune judges ages
	// by it (never by the local clock), so it must come from the store.
	ModTime time.Time
}

// Backend is the storage contract every store satisfies.
//
//   - Save creates key with exactly data, atomically: a reader never sees a
//     partial object, and after a crash the key either holds all of data or
//     does not exist. Save is create-only: if the key exists it returns an
//     error wrapping ErrExists and leaves the stored object untouched. When
//     Save returns nil the object is durable (fsync'd on local disks).
//     Save must not retain data after it returns.
//   - Load calls fn with a reader over length bytes of the object starting at
//     offset (length 0 means to the end). fn may be called more than once if
//     a wrapper retries, so it must be idempotent (reset what it accumulated).
//     A missing key gives an error wrapping ErrNotFound; a range beyond the
//     end of the object is an error.
//   - Stat returns the object's info, or an error wrapping ErrNotFound.
//   - List calls fn for every object whose key starts with prefix, in no
//     particular order. List may lag behind recent Saves and Removes on
//     eventually consistent stores; callers that need a just-written object
//     use Stat. Returning an error from fn stops the listing with that error.
//   - Remove deletes key. Removing a missing key returns an error wrapping
//     ErrNotFound.
//   - Close releases resources. The Backend is unusable afterwards.
//
// All methods are safe for concurrent use.
type Backend interface {
	Save(ctx context.Context, key string, data []byte) error
	Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	Remove(ctx context.Context, key string) error
	Close() error
}

// Properties is an optional interface: a Backend that implements it tells the
// repository how many concurrent transfers suit it, so the upload and restore
// pipelines size themselves to the store (a local disk wants few, an object
// store many).
type Properties interface {
	// Connections is the number of concurrent Save/Load calls that keep the
	// store busy without overloading it.
	Connections() int
	// Location is a human-readable location with secrets removed, for
	// messages.
	Location() string
}

// Streamer is an optional interface: a Backend that implements it can store
// an object read from a stream, so a writer of large objects (packs) need
// not hold each one in memory. SaveFrom has Save's contract, with the
// object's bytes being what r yields up to EOF. Wrappers do not forward it,
// so through a wrapper objects are saved from memory.
type Streamer interface {
	SaveFrom(ctx context.Context, key string, r io.Reader) error
}

// LoadAll reads a whole object into memory. It is a convenience for small
// objects (config, keys, snapshots, index objects).
func LoadAll(ctx context.Context, b Backend, key string) ([]byte, error) {
	var buf []byte
	err := b.Load(ctx, key, 0, 0, func(rd io.Reader) error {
		var err error
		buf, err = io.ReadAll(rd)
		return err
	})
	return buf, err
}

// Connections reports b's preferred concurrency, or def when b does not say.
func Connections(b Backend, def int) int {
	if p, ok := b.(Properties); ok && p.Connections() > 0 {
		return p.Connections()
	}
	return def
}

// Location reports where b stores data, for messages.
func Location(b Backend) string {
	if p, ok := b.(Properties); ok {
		return p.Location()
	}
	return "repository"
}

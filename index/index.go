// Package index maps blob ids to where the blobs live: pack, offset, length.
//
// The source of truth is the repository's index objects (index/<id>), each
// listing some packs and their blobs. Reading every index object into memory
// would make a backup's memory grow with the repository, so lookups go to a
// local bbolt cache (Cache) that is brought up to date from the index objects
// at open: new objects are added, and if any object the cache knows has gone
// (prune rewrote the index) the cache is rebuilt from scratch. bbolt keeps its
// pages in a file mapping, not on the Go heap, so memory stays flat whether
// the repository holds a thousand blobs or ten million.
package index

import (
	"encoding/json"
	"fmt"

	"github.com/strata-backup/strata/chunk"
)

// BlobType says what a blob holds.
type BlobType uint8

const (
	// DataBlob holds file or tier content.
	DataBlob BlobType = 0
	// TreeBlob holds a directory listing or other metadata (JSON).
	TreeBlob BlobType = 1
)

// String returns "data" or "tree".
func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// MarshalText encodes the type by name.
func (t BlobType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes "data" or "tree".
func (t *BlobType) UnmarshalText(b []byte) error {
	switch string(b) {
	case "data":
		*t = DataBlob
	case "tree":
		*t = TreeBlob
	default:
		return fmt.Errorf("parse blob type %q: unknown", b)
	}
	return nil
}

// Blob is one blob's entry in an index object and in a pack header.
type Blob struct {
	ID   chunk.ID `json:"id"`
	Type BlobType `json:"type"`
	// Offset and Length locate the stored (compressed, encrypted) blob in
	// its pack.
	Offset uint32 `json:"offset"`
	Length uint32 `json:"length"`
	// RawLength is the plaintext length.
	RawLength uint32 `json:"raw_length"`
	// Compressed says the sealed payload is zstd.
	Compressed bool `json:"compressed,omitempty"`
}

// Pack lists the blobs of one pack.
type Pack struct {
	ID    chunk.ID `json:"id"`
	Blobs []Blob   `json:"blobs"`
}

// File is the plaintext of one index object.
type File struct {
	// Supersedes names index objects this one replaces (prune rewrites
	// the index; readers that see both keep only the newer).
	Supersedes []chunk.ID `json:"supersedes,omitempty"`
	Packs      []Pack     `json:"packs"`
}

// Encode returns the JSON plaintext of f.
func (f *File) Encode() ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}
	return b, nil
}

// Decode parses an index object's plaintext and checks that every entry is
// plausible (the bytes come from storage and may be damaged or hostile).
func Decode(b []byte) (*File, error) {
	f, ok := decodeFast(b)
	if !ok {
		f = new(File)
		if err := json.Unmarshal(b, f); err != nil {
			return nil, fmt.Errorf("decode index: %w", err)
		}
	}
	for _, p := range f.Packs {
		for _, bl := range p.Blobs {
			if bl.Type > TreeBlob {
				return nil, fmt.Errorf("decode index: pack %s: blob %s: unknown type %d", p.ID.Short(), bl.ID.Short(), bl.Type)
			}
			if uint64(bl.Offset)+uint64(bl.Length) > 1<<32 {
				return nil, fmt.Errorf("decode index: pack %s: blob %s: range overflows", p.ID.Short(), bl.ID.Short())
			}
		}
	}
	return f, nil
}

// Location is where one copy of a blob lives.
type Location struct {
	Pack chunk.ID
	Blob
}

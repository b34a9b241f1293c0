// Package chunk is strata's leaf package: identifiers and content-defined
// chunking. It depends on nothing else in strata.
//
// Two kinds of id exist. A blob id is the keyed BLAKE3-256 of a blob's
// plaintext, keyed by a secret derived from the repository's master key, so a
// reader of the bucket cannot confirm a guess about the content. An object id
// is the plain BLAKE3-256 of an object's stored (encrypted) bytes, so anyone
// can verify that a stored object is intact without the password.
package chunk

import (
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/zeebo/blake3"
)

// IDSize is the length of an ID in bytes.
const IDSize = 32

// ID identifies a blob (keyed hash of plaintext) or an object (hash of stored bytes).
type ID [IDSize]byte

// String returns the lower-case hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, as shown to users.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsNull reports whether id is the zero ID.
func (id ID) IsNull() bool { return id == ID{} }

// MarshalText encodes the id as hex (so JSON shows hex strings).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex id.
func (id *ID) UnmarshalText(b []byte) error {
	parsed, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// ParseID parses a 64-digit hex id.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("parse id %q: want %d hex digits, got %d", s, 2*IDSize, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("parse id %q: %w", s, err)
	}
	return id, nil
}

// ObjectID is the unkeyed BLAKE3-256 of stored bytes: the name of every
// content-addressed object (packs, index objects, snapshots, ...).
func ObjectID(stored []byte) ID { return blake3.Sum256(stored) }

// NewObjectHash returns a hash whose Sum of the bytes written is their
// ObjectID, for objects written in pieces.
func NewObjectHash() hash.Hash { return blake3.New() }

// Hasher computes blob ids. It is safe for concurrent use: every Sum starts
// from a copy of the keyed initial state.
type Hasher struct {
	template *blake3.Hasher
}

// NewHasher returns a Hasher keyed with key (32 bytes, derived from the
// master key by the repository).
func NewHasher(key [32]byte) *Hasher {
	h, err := blake3.NewKeyed(key[:])
	if err != nil {
		// NewKeyed fails only for a key that is not 32 bytes, which the
		// array type rules out.
		panic(fmt.Sprintf("blake3 keyed hasher: %v", err))
	}
	return &Hasher{template: h}
}

// Sum returns the blob id of plaintext.
func (h *Hasher) Sum(plaintext []byte) ID {
	d := h.template.Clone()
	_, _ = d.Write(plaintext)
	var id ID
	d.Sum(id[:0])
	return id
}

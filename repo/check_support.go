package repo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/strata-backup/strata/index"
)

// This file exports what `strata check` (package verify) needs to judge
// objects one part at a time, instead of through the index cache and the
// all-or-nothing loaders the rest of strata uses.

// OpenObjectChecked is OpenObject for a checker: when opening fails it also
// says whether the AEAD accepted the bytes (authentic: the damage is in a
// frame strata itself wrote) or rejected them (damaged or foreign bytes).
func (r *Repository) OpenObjectChecked(ad string, stored []byte) (plain []byte, authentic bool, err error) {
	plain, err = r.openObject(stored, ad)
	if err == nil {
		return plain, true, nil
	}
	// Only on the error path: authenticate again to tell the two apart.
	_, authErr := r.crypt.open(nil, stored, ad)
	return nil, authErr == nil, err
}

// LoadBlobAt reads and verifies the copy of a blob at l (pack, offset,
// length), appending its plaintext to dst[:0]. Unlike LoadBlob it needs no
// index: a checker passes the locations it found itself.
func (r *Repository) LoadBlobAt(ctx context.Context, l index.Location, dst []byte) ([]byte, error) {
	return r.loadFrom(ctx, l, dst)
}

// ParsePack decodes the header of a whole pack held in memory, with the
// checks LoadPackHeader makes (docs/design.md section 7).
func (r *Repository) ParsePack(pack []byte) ([]index.Blob, error) {
	return r.parsePackHeader(pack, int64(len(pack)))
}

// OpenBlob authenticates, decrypts and decompresses one sealed blob cut from
// a pack and checks that its plaintext hashes to b.ID. sealed is decrypted
// in place (it is the caller's scratch); the plaintext is appended to
// dst[:0].
func (r *Repository) OpenBlob(dst []byte, b index.Blob, sealed []byte) ([]byte, error) {
	return r.openBlob(dst, b, sealed)
}

// ParseKeyFile decodes a key file's plaintext JSON and checks what can be
// checked without the password: the KDF and its parameters (the limits
// Open applies) and the size of the wrapped master key.
func ParseKeyFile(stored []byte) (*KeyFile, error) {
	var kf KeyFile
	if err := json.Unmarshal(stored, &kf); err != nil {
		return nil, fmt.Errorf("decode key file: %w", err)
	}
	if kf.KDF != "argon2id" || kf.Time == 0 || kf.Threads == 0 || kf.MemoryKiB < 8*uint32(kf.Threads) || kf.MemoryKiB > 4<<20 {
		return nil, fmt.Errorf("decode key file: unsupported kdf %q %+v", kf.KDF, kf.KDFParams)
	}
	if len(kf.Data) != Overhead+len(masterKey{}) {
		return nil, fmt.Errorf("decode key file: wrapped key of %d bytes, want %d", len(kf.Data), Overhead+len(masterKey{}))
	}
	if len(kf.Salt) == 0 {
		return nil, fmt.Errorf("decode key file: no salt")
	}
	return &kf, nil
}

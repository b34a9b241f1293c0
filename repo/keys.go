package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
)

// ErrWrongPassword means no key file opens with the given password.
var ErrWrongPassword = errors.New("wrong password or no key found")

// KDFParams are argon2id's cost settings, stored in each key file so they can
// be raised later without breaking old keys.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// TestKDFEnv, when set to 1, makes new keys use a trivially cheap KDF. It is
// for test suites only: such keys are easy to brute-force.
const TestKDFEnv = "STRATA_INSECURE_TEST_KDF"

// DefaultKDF returns the cost for new keys: argon2id over 32 MiB, 6
// passes, about a quarter second here. That is the memory restic's scrypt
// keys take (N=2^15, r=8: 32 MiB) and far above OWASP's argon2id floor
// (19 MiB, 2 passes); the passes keep the work of the 64 MiB × 3 this
// replaced. The memory matters because every command derives a key
// before it does anything else: 64 MiB of it were most of a backup's
// peak RSS. Keys keep the parameters they were made with.
func DefaultKDF() KDFParams {
	if os.Getenv(TestKDFEnv) == "1" {
		return KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	}
	return KDFParams{Time: 6, MemoryKiB: 32 << 10, Threads: 2}
}

// KeyFile is the plaintext JSON of keys/<id>. Only Data is secret, sealed
// under the password-derived key.
type KeyFile struct {
	Created  time.Time `json:"created"`
	Username string    `json:"username,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	KDF      string    `json:"kdf"`
	KDFParams
	Salt []byte `json:"salt"`
	// Data is nonce ‖ XChaCha20-Poly1305(master key) ‖ tag.
	Data []byte `json:"data"`
}

// KeyInfo describes a key for `key list`.
type KeyInfo struct {
	ID       chunk.ID  `json:"id"`
	Current  bool      `json:"current"`
	Created  time.Time `json:"created"`
	Username string    `json:"username,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
}

const keyAD = "strata key"

func passwordKey(password string, salt []byte, p KDFParams) [32]byte {
	var k [32]byte
	copy(k[:], argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 32))
	// The derivation's 64 MiB are garbage now, but the collector set its
	// next goal from them (twice the live heap), so a backup that follows
	// would grow fresh pages on top of them before the next collection.
	// Collecting here lets it reuse those pages: the peak RSS of a command
	// is then the larger of the two, not their sum.
	runtime.GC()
	return k
}

// newKeyFile wraps mk under password and returns the stored bytes.
func newKeyFile(mk masterKey, password string) ([]byte, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	kf := KeyFile{Created: time.Now().UTC(), KDF: "argon2id", KDFParams: DefaultKDF(), Salt: salt}
	if u, err := user.Current(); err == nil {
		kf.Username = u.Username
	}
	kf.Hostname, _ = os.Hostname()
	kf.Data = newCrypter(passwordKey(password, salt, kf.KDFParams)).seal(nil, mk[:], keyAD)
	b, err := json.Marshal(kf)
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	return b, nil
}

// openKeyFile tries password on one stored key file.
func openKeyFile(stored []byte, password string) (masterKey, *KeyFile, error) {
	var mk masterKey
	kf, err := ParseKeyFile(stored)
	if err != nil {
		return mk, nil, err
	}
	plain, err := newCrypter(passwordKey(password, kf.Salt, kf.KDFParams)).open(nil, kf.Data, keyAD)
	if err != nil {
		return mk, kf, ErrWrongPassword
	}
	if len(plain) != len(mk) {
		return mk, kf, fmt.Errorf("decode key file: master key of %d bytes: %w", len(plain), ErrCorrupt)
	}
	copy(mk[:], plain)
	return mk, kf, nil
}

// findKey tries password against every key file. A file that is damaged is
// skipped (another may open); if none opens the error is ErrWrongPassword.
func findKey(ctx context.Context, be backend.Backend, password string) (masterKey, chunk.ID, error) {
	var names []string
	err := be.List(ctx, "keys/", func(fi backend.ObjectInfo) error {
		names = append(names, fi.Key)
		return nil
	})
	if err != nil {
		return masterKey{}, chunk.ID{}, fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return masterKey{}, chunk.ID{}, fmt.Errorf("list keys: repository has no key files: %w", ErrWrongPassword)
	}
	for _, name := range names {
		id, err := chunk.ParseID(strings.TrimPrefix(name, "keys/"))
		if err != nil {
			continue
		}
		stored, err := backend.LoadAll(ctx, be, name)
		if err != nil {
			if ctx.Err() != nil {
				return masterKey{}, chunk.ID{}, ctx.Err()
			}
			continue // removed meanwhile, or unreadable: another key may open
		}
		if chunk.ObjectID(stored) != id {
			continue // damaged: check reports it
		}
		mk, _, err := openKeyFile(stored, password)
		if err == nil {
			return mk, id, nil
		}
	}
	return masterKey{}, chunk.ID{}, ErrWrongPassword
}

// AddKey stores a new key file wrapping the master key under password and
// returns its id.
func (r *Repository) AddKey(ctx context.Context, password string) (chunk.ID, error) {
	stored, err := newKeyFile(r.master, password)
	if err != nil {
		return chunk.ID{}, err
	}
	id := chunk.ObjectID(stored)
	if err := r.be.Save(ctx, "keys/"+id.String(), stored); err != nil {
		return chunk.ID{}, fmt.Errorf("save key: %w", err)
	}
	return id, nil
}

// Keys lists the key files.
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := r.be.List(ctx, "keys/", func(fi backend.ObjectInfo) error {
		id, err := chunk.ParseID(strings.TrimPrefix(fi.Key, "keys/"))
		if err != nil {
			return nil // not a key file; check reports it
		}
		stored, err := backend.LoadAll(ctx, r.be, fi.Key)
		if err != nil {
			return fmt.Errorf("load key %s: %w", id.Short(), err)
		}
		var kf KeyFile
		if err := json.Unmarshal(stored, &kf); err != nil {
			return fmt.Errorf("decode key %s: %w", id.Short(), err)
		}
		out = append(out, KeyInfo{ID: id, Current: id == r.keyID, Created: kf.Created, Username: kf.Username, Hostname: kf.Hostname})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// RemoveKey deletes key file id. The key this session opened with cannot be
// removed (that would lock the user out mid-session); the removal is
// recorded under deletions/ so mirrors follow it.
func (r *Repository) RemoveKey(ctx context.Context, id chunk.ID) error {
	if id == r.keyID {
		return fmt.Errorf("remove key %s: it is the key in use; open the repository with another key to remove it", id.Short())
	}
	key := "keys/" + id.String()
	if _, err := r.be.Stat(ctx, key); err != nil {
		return fmt.Errorf("remove key %s: %w", id.Short(), err)
	}
	if err := r.be.Remove(ctx, key); err != nil {
		return fmt.Errorf("remove key %s: %w", id.Short(), err)
	}
	// Recorded after the removal: a crash in between leaves mirrors with
	// one key too many, never a record of a removal that did not happen.
	if _, err := r.SaveDeletion(ctx, Deletion{Kind: DeletionKeyRemoval, Reason: "key remove", Removed: []string{key}}); err != nil {
		return fmt.Errorf("record removal of key %s: %w", id.Short(), err)
	}
	return nil
}

// ChangePassword adds a key under newPassword and removes the key in use.
func (r *Repository) ChangePassword(ctx context.Context, newPassword string) (chunk.ID, error) {
	old := r.keyID
	id, err := r.AddKey(ctx, newPassword)
	if err != nil {
		return chunk.ID{}, err
	}
	r.keyID = id
	if err := r.RemoveKey(ctx, old); err != nil {
		return id, fmt.Errorf("change password: new key %s added, old key left in place: %w", id.Short(), err)
	}
	return id, nil
}

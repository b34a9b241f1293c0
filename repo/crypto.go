package repo

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

// ErrCorrupt marks data that failed authentication or does not hash to its
// name: damaged storage, not a wrong password.
var ErrCorrupt = errors.New("data is corrupt")

// Overhead is what sealing adds to a plaintext: the nonce and the tag.
const Overhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// masterKey is the repository's secret. Every working key derives from it,
// so the keys/ files need to wrap only these 32 bytes.
type masterKey [32]byte

// crypter seals and opens with XChaCha20-Poly1305. Its 192-bit random nonces
// make collisions negligible even at billions of objects (a 96-bit GCM nonce
// would not be), so no nonce state needs to be kept.
type crypter struct {
	aead cipher.AEAD
}

// derive returns a 32-byte subkey of the master key for one purpose.
func (k masterKey) derive(context string) [32]byte {
	var out [32]byte
	blake3.DeriveKey(context, k[:], out[:])
	return out
}

func newCrypter(key [32]byte) *crypter {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic(fmt.Sprintf("xchacha20poly1305: %v", err)) // only for a bad key size
	}
	return &crypter{aead: aead}
}

// seal appends nonce ‖ ciphertext ‖ tag of plaintext to dst. ad binds the
// ciphertext to its role (e.g. "snapshot"), so an object moved to another
// prefix fails to open.
func (c *crypter) seal(dst, plaintext []byte, ad string) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, chacha20poly1305.NonceSizeX)...)
	if _, err := rand.Read(dst[n:]); err != nil {
		panic(fmt.Sprintf("read random nonce: %v", err)) // crypto/rand never fails on Linux
	}
	return c.aead.Seal(dst, dst[n:], plaintext, []byte(ad))
}

// openInPlace authenticates and decrypts sealed, overwriting its ciphertext
// with the plaintext (the AEAD allows exact overlap) and returning it.
func (c *crypter) openInPlace(sealed []byte, ad string) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("open ciphertext: %d bytes is shorter than nonce and tag: %w", len(sealed), ErrCorrupt)
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	out, err := c.aead.Open(ct[:0], nonce, ct, []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("open ciphertext: authentication failed: %w", ErrCorrupt)
	}
	return out, nil
}

// open authenticates and decrypts sealed (nonce ‖ ciphertext ‖ tag),
// appending the plaintext to dst.
func (c *crypter) open(dst, sealed []byte, ad string) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("open ciphertext: %d bytes is shorter than nonce and tag: %w", len(sealed), ErrCorrupt)
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	out, err := c.aead.Open(dst, nonce, ct, []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("open ciphertext: authentication failed: %w", ErrCorrupt)
	}
	return out, nil
}

// Package repotest builds real, fully wired repositories for tests: an
// in-memory (or given) backend, a fixed chunker polynomial, a cheap KDF and
// small packs, so tests are fast and deterministic in their chunking.
package repotest

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
)

// Polynomial is a fixed irreducible polynomial (restic's test polynomial).
const Polynomial = 0x3DA3358B4DC173

// Password is the password of every test repository.
const Password = "test password"

// New returns an initialised repository on a fresh in-memory backend.
func New(t testing.TB) *repo.Repository {
	t.Helper()
	return NewOn(t, backend.OpenMem())
}

// NewOn initialises a repository on be.
func NewOn(t testing.TB, be backend.Backend) *repo.Repository {
	t.Helper()
	t.Setenv(repo.TestKDFEnv, "1")
	r, err := repo.Init(context.Background(), be, Password,
		repo.InitOptions{PackSize: 1 << 20, Polynomial: Polynomial},
		repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("init test repository: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Reopen opens the repository on the same backend with a fresh cache, as a
// second process would.
func Reopen(t testing.TB, r *repo.Repository) *repo.Repository {
	t.Helper()
	r2, err := repo.Open(context.Background(), r.Backend(), Password, repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("reopen test repository: %v", err)
	}
	t.Cleanup(func() { r2.Close() })
	return r2
}

// Open opens the repository on be again, as another process would, with a
// fresh cache (be may be a faulty or mirrored view of the store).
func Open(t testing.TB, be backend.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, Password, repo.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open test repository through %s: %v", backend.Location(be), err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// WriteFile writes b to p, creating p's directories.
func WriteFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// RandomBytes returns n pseudo-random bytes, the same for the same seed
// (incompressible, so they fill packs).
func RandomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

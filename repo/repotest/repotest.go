// Package repotest builds real, fully wired repositories for tests: an
// in-memory (or given) backend, a fixed chunker polynomial, a cheap KDF and
// small packs, so tests are fast and deterministic in their chunking.
package repotest

import (
	"context"
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

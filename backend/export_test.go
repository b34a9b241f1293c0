package backend

import (
	"os"
	"syscall"
)

// Hooks for the external tests (package backend_test), which can import
// backendtest without an import cycle.

// OpenLocalWithoutLinks opens dir as a local backend that behaves as if the
// file system had no hard links, to exercise the O_EXCL+rename fallback.
func OpenLocalWithoutLinks(dir string) (Backend, error) {
	b, err := openLocal(dir)
	if err != nil {
		return nil, err
	}
	b.link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	return b, nil
}

// SetListPageSize makes a cloud backend list n keys per request, so tests
// exercise pagination without thousands of objects.
func SetListPageSize(b Backend, n int) {
	cloudOf(b).listPageSize = n
}

// SetHeadFirst sets the body size from which a cloud backend's Save checks
// for an existing key before uploading (0: never), so tests can reach the
// conditional-write paths with large bodies.
func SetHeadFirst(b Backend, n int) {
	cloudOf(b).headFirst = n
}

// cloudOf finds the cloud backend under Open's retry wrapper.
func cloudOf(b Backend) *cloudBackend {
	if r, ok := b.(*retryBackend); ok {
		b = r.be
	}
	return b.(*cloudBackend)
}

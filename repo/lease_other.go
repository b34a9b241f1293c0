//go:build !unix

package repo

// processAlive cannot tell here: a lease lives until it expires.
func processAlive(int) bool { return true }

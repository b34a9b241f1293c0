//go:build !linux

package s3test

import "syscall"

// procAttr: outside Linux there is no parent-death signal; a test process
// that dies without calling Stop leaves the server running.
func procAttr() *syscall.SysProcAttr { return nil }

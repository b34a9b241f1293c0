package s3test

import "syscall"

// procAttr asks the kernel to kill the server when the test process dies
// without calling Stop (a panic, a timeout, SIGKILL), so no versitygw is
// left running.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

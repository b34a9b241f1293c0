// Command strata backs up graph databases: every tier at one consistent cut,
// a mutation log for point-in-time recovery, verification and drills.
//
// This package only parses flags, prints and maps errors to exit codes; the
// work happens in the library packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

func main() {
	// STRATA_CPUPROFILE=FILE writes a CPU profile of the run (for
	// performance work; see docs/performance.md).
	if p := os.Getenv("STRATA_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	// STRATA_MEMPROFILE=FILE writes a heap profile at the end of the run:
	// alloc_space shows what was allocated over the run, the peak's makers.
	if p := os.Getenv("STRATA_MEMPROFILE"); p != "" {
		runtime.MemProfileRate = 64 << 10
		code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		runtime.GC() // the profile shows allocations up to the last GC
		if f, err := os.Create(p); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one strata invocation and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := newTerminal(stdin, stdout, stderr)
	err := dispatch(ctx, rootCommand(), args, t)
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		t.errorf("interrupted")
		return exitInterrupted
	}
	code := exitCode(err)
	if !errors.Is(err, errHelpShown) {
		t.errorf("%s", err)
		if h := hint(err); h != "" {
			t.errorf("hint: %s", h)
		}
	}
	return code
}

// errHelpShown ends a run that printed help for a usage error.
var errHelpShown = errors.New("help shown")

// usageError is bad usage: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

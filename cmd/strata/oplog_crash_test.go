package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
)

// TestCrashDuringOplogPush kills `strata oplog push --follow` with SIGKILL
// (and now and then interrupts it) at random moments while a writer
// appends mutations to the followed file, partial lines included, and
// restarts it each time. SPEC 5: re-sending after a crash is safe, and a
// record is acknowledged once its segment is durable. So every record
// acknowledged before a kill must be stored, and at the end the log holds
// every record of the file exactly once, in order.
//
// A killed push leaves its writer lease behind until it expires (5 min),
// but a restart on the same host sees that the holder's process is gone
// and takes the log over at once (as restic judges stale locks).
func TestCrashDuringOplogPush(t *testing.T) {
	start := time.Now()
	c := newOplogCrashEnv(t)
	rng := crashRand(t)
	file := filepath.Join(c.dir, "mutations.jsonl")
	repotest.WriteFile(t, file, nil)

	// The writer: records in bursts, some lines written in two parts, for
	// about 4 seconds.
	const total = 2500
	lines := make([]string, 0, total)
	for lsn := 1; lsn <= total; lsn++ {
		lines = append(lines, crashMutation(lsn))
	}
	writerDone := make(chan error, 1)
	wrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	go func() {
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			writerDone <- err
			return
		}
		defer f.Close()
		for i := 0; i < total; {
			n := min(1+wrng.IntN(10), total-i)
			var b strings.Builder
			for _, l := range lines[i : i+n] {
				b.WriteString(l + "\n")
			}
			s := b.String()
			if wrng.IntN(3) == 0 { // half a line now, the rest a little later
				cut := wrng.IntN(len(s))
				if _, err := f.WriteString(s[:cut]); err != nil {
					writerDone <- err
					return
				}
				time.Sleep(time.Duration(wrng.IntN(3000)) * time.Microsecond)
				s = s[cut:]
			}
			if _, err := f.WriteString(s); err != nil {
				writerDone <- err
				return
			}
			i += n
			time.Sleep(time.Duration(wrng.IntN(15000)) * time.Microsecond)
		}
		writerDone <- nil
	}()

	t.Logf("strata built, repository initialised in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	var acked uint64 // the highest lsn any push acknowledged
	writing := true
	for i := 0; writing || i < 3; i++ {
		select {
		case err := <-writerDone:
			if err != nil {
				t.Fatal(err)
			}
			writing = false
		default:
		}
		p := c.startPush(file)
		delay := randDelay(rng, 30*time.Millisecond, 700*time.Millisecond)
		interrupt := rng.IntN(4) == 0
		if interrupt {
			// Before it handles signals, SIGINT kills it like SIGKILL.
			c.waitLease(p)
		}
		time.Sleep(delay)
		code := p.stop(interrupt)
		seen := p.acked()
		switch {
		case interrupt && code == exitInterrupted:
			if !strings.Contains(p.stdout.String(), `"message_type":"summary"`) {
				t.Fatalf("run %d: interrupted push printed no summary: %s", i, p.stdout.String())
			}
		case !interrupt && code == -1:
		default:
			t.Fatalf("run %d: push exited %d on its own (interrupt %v): %s", i, code, interrupt, p.stderr.String())
		}
		t.Logf("run %d: %s after %v; acknowledged up to lsn %d", i, map[bool]string{true: "interrupted", false: "killed"}[interrupt], delay, seen)
		acked = max(acked, seen)
		if last := c.storedTail(); last < acked {
			t.Fatalf("run %d: lsn %d was acknowledged, the log ends at %d", i, acked, last)
		}
	}

	// The last run follows the file to its end (if an earlier one did not
	// get there), then is interrupted.
	p := c.startPush(file)
	c.waitLease(p)
	deadline := time.Now().Add(20 * time.Second)
	for acked < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		acked = max(acked, p.acked(), c.storedTail())
	}
	if code := p.stop(true); code != exitInterrupted {
		t.Fatalf("final push: exit %d, want %d: %s", code, exitInterrupted, p.stderr.String())
	}
	if acked != total {
		t.Fatalf("the log reached lsn %d of %d: %s", acked, total, p.stderr.String())
	}

	// The log is the file: every record once, in order, as written.
	r := c.openRepo()
	ctx := context.Background()
	l, err := oplog.Open(ctx, r, 1)
	if err != nil {
		t.Fatal(err)
	}
	it, err := l.Read(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.LSN != uint64(n+1) {
			t.Fatalf("record %d of the log has lsn %d", n+1, rec.LSN)
		}
		in, err := oplog.ParseRecord([]byte(lines[n]), n+1)
		if err != nil {
			t.Fatal(err)
		}
		if !oplog.Same(rec, in) {
			t.Fatalf("lsn %d: stored %s, written %s", rec.LSN, rec.AppendJSON(nil), lines[n])
		}
		n++
	}
	if n != total {
		t.Fatalf("the log holds %d records, the file %d", n, total)
	}
	segs, err := l.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gens, _ := oplog.Generations(ctx, r); len(gens) != 1 {
		t.Fatalf("generations %v", gens)
	}
	t.Logf("%d records in %d segments, checked in %v", n, len(segs), time.Since(start).Round(time.Millisecond))
}

// crashMutation is lsn's record: transactions of up to three records,
// upserts and deletes.
func crashMutation(lsn int) string {
	ts := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC).Add(time.Duration(lsn) * 7 * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	tx := fmt.Sprintf(`"tx":"t%d",`, (lsn-1)/3)
	if lsn%3 == 0 {
		tx += `"tx_end":true,`
	}
	if lsn%5 == 0 {
		return fmt.Sprintf(`{"lsn":%d,"ts":"%s",%s"tier":"warm","op":"delete","kind":"node","id":"n%d"}`, lsn, ts, tx, lsn-3)
	}
	return fmt.Sprintf(`{"lsn":%d,"ts":"%s",%s"tier":"warm","op":"upsert","record":{"type":"node","id":"n%d","labels":["P"],"properties":{"i":%d,"pad":"%s"}}}`,
		lsn, ts, tx, lsn, lsn, strings.Repeat("x", lsn%50))
}

// newOplogCrashEnv is a crashEnv with an empty repository and no source
// tree (pushes need none).
func newOplogCrashEnv(t *testing.T) *crashEnv {
	c := newCrashEnvBare(t)
	c.mustRun("init", "-q")
	return c
}

// pushRun is one running `strata oplog push --follow --json`.
type pushRun struct {
	cmd    *exec.Cmd
	stdout *ackWriter
	stderr *bytes.Buffer
	done   chan error
}

func (c *crashEnv) startPush(file string) *pushRun {
	c.t.Helper()
	cmd := exec.Command(c.bin, "oplog", "push", "--follow", file, "--json",
		"--flush-interval", "20ms", "--segment-size", "16KiB", "--heartbeat", "100ms")
	cmd.Env, cmd.Dir = c.env, c.dir
	p := &pushRun{cmd: cmd, stdout: &ackWriter{}, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	return p
}

// stop kills the push (SIGKILL, or SIGINT when interrupt) and returns its
// exit code: -1 when SIGKILL ended it.
func (p *pushRun) stop(interrupt bool) int {
	sig := os.Signal(syscall.SIGKILL)
	if interrupt {
		sig = os.Interrupt
	}
	_ = p.cmd.Process.Signal(sig) // by pid: only the child this test started
	var err error
	select {
	case err = <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		err = <-p.done
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1
		}
		return ee.ExitCode()
	}
	return -2
}

func (p *pushRun) acked() uint64 { return p.stdout.last() }

// ackWriter takes push's JSON lines as they come and keeps the highest
// durable lsn the sealed lines report.
type ackWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	lastLSN uint64
	bad     string
}

func (w *ackWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		var m struct {
			MessageType string `json:"message_type"`
			LastLSN     uint64 `json:"last_lsn"`
		}
		if err := json.Unmarshal(w.partial[:i], &m); err != nil && w.bad == "" {
			w.bad = string(w.partial[:i])
		}
		if m.MessageType == "sealed" {
			w.lastLSN = max(w.lastLSN, m.LastLSN)
		}
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}

func (w *ackWriter) last() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bad != "" {
		panic("push printed a line that is not JSON: " + w.bad)
	}
	return w.lastLSN
}

func (w *ackWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// openRepo opens the test's repository in this process.
func (c *crashEnv) openRepo() *repo.Repository {
	c.t.Helper()
	ctx := context.Background()
	be, err := backend.Open(ctx, c.repo)
	if err != nil {
		c.t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, "crash test password", repo.Options{CacheDir: filepath.Join(c.dir, "cache-test")})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { r.Close(); be.Close() })
	return r
}

// storedTail returns the last lsn of generation 1 (0: none).
func (c *crashEnv) storedTail() uint64 {
	c.t.Helper()
	r := c.openRepo()
	l, err := oplog.Open(context.Background(), r, 1)
	if err != nil {
		c.t.Fatal(err)
	}
	last, _, err := l.Tail(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	if last == nil {
		return 0
	}
	return last.LSN
}

// waitLease waits until the push holds its lease (it handles signals by
// then).
func (c *crashEnv) waitLease(p *pushRun) {
	c.t.Helper()
	r := c.openRepo()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		leases, err := r.Leases(context.Background())
		if err != nil {
			c.t.Fatal(err)
		}
		for _, li := range leases {
			if li.PID == p.cmd.Process.Pid {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("push pid %d took no lease: %s", p.cmd.Process.Pid, p.stderr.String())
}

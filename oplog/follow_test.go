package oplog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo/repotest"
)

// follower opens path with a fast poll and closes it at the end.
func follower(t *testing.T, path string) *Follower {
	t.Helper()
	f, err := Follow(path, FollowOptions{Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// next reads one line, failing after a few seconds.
func next(t *testing.T, f *Follower) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, n, err := f.ReadLine(ctx)
	if err != nil {
		t.Fatalf("read line: %v", err)
	}
	return fmt.Sprintf("%d:%s", n, l)
}

// none checks that no line comes within a short while.
func none(t *testing.T, f *Follower) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	l, _, err := f.ReadLine(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %q, %v; want no line yet", l, err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFollowGrowing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	appendFile(t, path, "a\nb\r\n")
	f := follower(t, path)
	if got := next(t, f) + " " + next(t, f); got != "1:a 2:b" {
		t.Fatal(got)
	}
	none(t, f)
	go func() {
		time.Sleep(30 * time.Millisecond)
		appendFile(t, path, "c\n")
	}()
	if got := next(t, f); got != "3:c" {
		t.Fatal(got)
	}
}

func TestFollowPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	appendFile(t, path, "first\n{\"lsn\":")
	f := follower(t, path)
	if got := next(t, f); got != "1:first" {
		t.Fatal(got)
	}
	none(t, f) // the half line waits for its end
	appendFile(t, path, "2}")
	none(t, f)
	appendFile(t, path, "\nthird\n")
	if got := next(t, f) + " " + next(t, f); got != `2:{"lsn":2} 3:third` {
		t.Fatal(got)
	}
}

// TestFollowRotation: the file is renamed and a new one created; lines the
// writer added to the old one before are read first, then the new file
// from its start.
func TestFollowRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.jsonl")
	appendFile(t, path, "a\n")
	f := follower(t, path)
	if got := next(t, f); got != "1:a" {
		t.Fatal(got)
	}
	none(t, f)
	appendFile(t, path, "b\nlast without newline")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if got := next(t, f); got != "2:b" {
		t.Fatal(got)
	}
	none(t, f) // no file at the path yet: the partial line waits
	appendFile(t, path, "new1\nnew2\n")
	var got []string
	for range 3 {
		got = append(got, next(t, f))
	}
	if s := strings.Join(got, " "); s != "3:last without newline 1:new1 2:new2" {
		t.Fatal(s)
	}
	// A second rotation, straight to a new file (rename over the path).
	appendFile(t, path+".tmp", "x\n")
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	if got := next(t, f); got != "1:x" {
		t.Fatal(got)
	}
}

// TestFollowTruncation: copytruncate rotation: reading starts again at the
// beginning.
func TestFollowTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	appendFile(t, path, "one\ntwo\nthree\n")
	f := follower(t, path)
	for range 3 {
		next(t, f)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	none(t, f)
	appendFile(t, path, "new\n")
	if got := next(t, f); got != "1:new" {
		t.Fatal(got)
	}
}

func TestFollowMissing(t *testing.T) {
	if _, err := Follow(filepath.Join(t.TempDir(), "nope"), FollowOptions{}); err == nil {
		t.Fatal("following a missing file")
	}
}

// TestPushFollow: push follows a growing file, seals while it grows, and
// an interrupt ends it after sealing; a restart skips what is stored.
func TestPushFollow(t *testing.T) {
	r := repotest.New(t)
	path := filepath.Join(t.TempDir(), "log.jsonl")
	appendFile(t, path, input(muts(1, 3)))
	run := func(more func(sealed <-chan SealedSegment)) PushResult {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sealed := make(chan SealedSegment, 100)
		finished := make(chan error, 1)
		var res PushResult
		go func() {
			var err error
			res, err = Push(ctx, r, follower(t, path), PushOptions{FlushInterval: 10 * time.Millisecond,
				OnSealed: func(s SealedSegment) { sealed <- s }})
			finished <- err
		}()
		more(sealed)
		cancel()
		if err := <-finished; !errors.Is(err, context.Canceled) {
			t.Fatalf("push: %v", err)
		}
		return res
	}
	waitLSN := func(sealed <-chan SealedSegment, lsn uint64) {
		t.Helper()
		for {
			select {
			case s := <-sealed:
				if s.LastLSN >= lsn {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("lsn %d not sealed", lsn)
			}
		}
	}
	res := run(func(sealed <-chan SealedSegment) {
		waitLSN(sealed, 3)
		appendFile(t, path, input(muts(4, 5)))
		waitLSN(sealed, 5)
	})
	if res.Records != 5 || res.LastLSN != 5 {
		t.Fatalf("%+v", res)
	}
	appendFile(t, path, input(muts(6, 6)))
	res = run(func(sealed <-chan SealedSegment) { waitLSN(sealed, 6) })
	if res.Records != 1 || res.Skipped != 5 {
		t.Fatalf("%+v", res)
	}
	sameList(t, "log", stored(t, r, 1), want(1, 6))
}

package oplog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// DefaultFollowPoll is how often a Follower looks for new data.
const DefaultFollowPoll = 100 * time.Millisecond

// FollowOptions configure a Follower.
type FollowOptions struct {
	// Poll is how often the file is checked for new data, rotation and
	// truncation once its end is reached (default DefaultFollowPoll).
	Poll time.Duration
}

// Follower is a LineSource that tails a growing file, like tail -F, with
// the standard library only (it polls):
//
//   - At the end of the file it waits for more; a last line without its
//     \n yet waits for the rest.
//   - Rotation: when the path names another file (os.SameFile), the old
//     file is read to its end (a last line without \n counts as a line),
//     then the new one from its start. While the path names no file it
//     keeps waiting on the old one.
//   - Truncation (the file is shorter than what was read: copytruncate):
//     reading starts again at the beginning.
//
// Lines are numbered per file, from 1. It never ends by itself: ReadLine
// returns ctx's error when ctx is done.
//
// Caveats: lines written to the old file after the rotation was noticed
// and it was read to its end are not read (push then finds a gap and
// says so); a truncation followed, before the next poll, by more writes
// than the file held is not noticed as one.
type Follower struct {
	path  string
	poll  time.Duration
	f     *os.File
	next  *os.File // the file the path names after a rotation
	off   int64    // bytes of f read so far
	buf   []byte   // read but not yet returned (the start of a line)
	line  int
	chunk []byte
	err   error
}

// Follow opens path (which must exist) for following.
func Follow(path string, opts FollowOptions) (*Follower, error) {
	if opts.Poll <= 0 {
		opts.Poll = DefaultFollowPoll
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	return &Follower{path: path, poll: opts.Poll, f: f, chunk: make([]byte, 256<<10)}, nil
}

// Close closes the files.
func (fl *Follower) Close() error {
	err := fl.f.Close()
	if fl.next != nil {
		err = errors.Join(err, fl.next.Close())
	}
	return err
}

// ReadLine implements LineSource.
func (fl *Follower) ReadLine(ctx context.Context) ([]byte, int, error) {
	if fl.err != nil {
		return nil, fl.line, fl.err
	}
	var poll *time.Timer
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	for {
		if i := bytes.IndexByte(fl.buf, '\n'); i >= 0 {
			return fl.take(i + 1), fl.line, nil
		}
		if len(fl.buf) > MaxLineBytes+2 {
			fl.err = &Error{Line: fl.line + 1, Reason: "line longer than " + strconv.Itoa(MaxLineBytes) + " bytes"}
			return nil, fl.line, fl.err
		}
		n, err := fl.f.Read(fl.chunk)
		if n > 0 {
			fl.off += int64(n)
			fl.buf = append(fl.buf, fl.chunk[:n]...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			fl.err = fmt.Errorf("follow %s: %w", fl.path, err)
			return nil, fl.line, fl.err
		}

		// At the end of what the file holds now.
		if fl.next != nil {
			// The rotated-away file is read to its end: its last line
			// is done even without a \n; then on to the new file.
			if len(fl.buf) > 0 {
				return fl.take(len(fl.buf)), fl.line, nil
			}
			fl.f.Close()
			fl.f, fl.next, fl.off, fl.line = fl.next, nil, 0, 0
			continue
		}
		if st, err := fl.f.Stat(); err == nil && st.Size() < fl.off {
			// Truncated: what was read is all the old content there is.
			if len(fl.buf) > 0 {
				return fl.take(len(fl.buf)), fl.line, nil
			}
			if _, err := fl.f.Seek(0, io.SeekStart); err != nil {
				fl.err = fmt.Errorf("follow %s: %w", fl.path, err)
				return nil, fl.line, fl.err
			}
			fl.off, fl.line = 0, 0
			continue
		}
		if fl.rotated() {
			continue // read the old file to its end first
		}
		if poll == nil {
			poll = time.NewTimer(fl.poll)
		} else {
			poll.Reset(fl.poll)
		}
		select {
		case <-ctx.Done():
			return nil, fl.line, ctx.Err()
		case <-poll.C:
		}
	}
}

// rotated reports whether the path now names another file, and if so
// opens it (as fl.next).
func (fl *Follower) rotated() bool {
	st, err := os.Stat(fl.path)
	if err != nil {
		return false // renamed away, the new one not there yet: wait
	}
	cur, err := fl.f.Stat()
	if err != nil || os.SameFile(st, cur) {
		return false
	}
	nf, err := os.Open(fl.path)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return false // gone again: look at the next poll
	}
	fl.next = nf
	return true
}

// take returns buf[:n] as a line (a copy, without its line break).
func (fl *Follower) take(n int) []byte {
	line := trimEOL(bytes.Clone(fl.buf[:n]))
	fl.buf = fl.buf[n:]
	if len(fl.buf) == 0 {
		fl.buf = nil // let a long line's buffer go
	}
	fl.line++
	return line
}

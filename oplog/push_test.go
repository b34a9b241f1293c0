package oplog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/repotest"
)

// mut is one test mutation line: a delete of node "n<lsn>" in tier w, with
// ts second sec of 2026-01-01 and id suffix (to make a different record).
func mut(lsn, sec int, suffix string) string {
	return fmt.Sprintf(`{"lsn":%d,"ts":"2026-01-01T00:%02d:%02dZ","tier":"w","op":"delete","kind":"node","id":"n%d%s"}`,
		lsn, sec/60, sec%60, lsn, suffix)
}

// muts returns lines for lsns from..to (ts second = lsn).
func muts(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, mut(i, i, ""))
	}
	return out
}

func input(lines ...[]string) string {
	var b strings.Builder
	for _, ls := range lines {
		for _, l := range ls {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func one(lines ...string) []string { return lines }

// pushString pushes text and returns the result and every sealed segment.
func pushString(t *testing.T, r *repo.Repository, text string, opts PushOptions) (PushResult, []SealedSegment, error) {
	t.Helper()
	var sealed []SealedSegment
	opts.OnSealed = func(s SealedSegment) { sealed = append(sealed, s) }
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Hour // seal at the end of the input only
	}
	res, err := Push(context.Background(), r, NewLineReader(strings.NewReader(text)), opts)
	return res, sealed, err
}

func mustPush(t *testing.T, r *repo.Repository, text string, opts PushOptions) PushResult {
	t.Helper()
	res, _, err := pushString(t, r, text, opts)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return res
}

// stored reads generation gen whole: the lsns and each record's id.
func stored(t *testing.T, r *repo.Repository, gen uint64) []string {
	t.Helper()
	ctx := context.Background()
	l, err := Open(ctx, r, gen)
	if err != nil {
		t.Fatal(err)
	}
	it, err := l.Read(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s", rec.LSN, rec.ID))
	}
}

// want is the stored form of lsns from..to pushed by muts.
func want(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%d:n%d", i, i))
	}
	return out
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func recordSize(t *testing.T, line string) int64 {
	rec, err := ParseRecord([]byte(line), 1)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(rec.AppendJSON(nil)) + 1)
}

// TestPushStreams: segments are sealed every flush interval while the
// input is still open, so a record is durable about a second after it
// arrives, not when the stream ends.
func TestPushStreams(t *testing.T) {
	r := repotest.New(t)
	ctx := context.Background()
	pr, pw := io.Pipe()
	sealed := make(chan SealedSegment, 10)
	type done struct {
		res PushResult
		err error
	}
	finished := make(chan done, 1)
	go func() {
		res, err := Push(ctx, r, NewLineReader(pr), PushOptions{FlushInterval: 20 * time.Millisecond,
			OnSealed: func(s SealedSegment) { sealed <- s }})
		finished <- done{res, err}
	}()
	wait := func() SealedSegment {
		t.Helper()
		select {
		case s := <-sealed:
			return s
		case d := <-finished:
			t.Fatalf("push ended early: %v", d.err)
		case <-time.After(10 * time.Second):
			t.Fatal("no segment sealed")
		}
		return SealedSegment{}
	}
	fmt.Fprint(pw, input(muts(1, 3)))
	s := wait()
	if s.Generation != 1 || s.FirstLSN != 1 || s.LastLSN != 3 || s.Records != 3 || !strings.HasPrefix(s.Key, "oplog/0000000001/00000000000000000001-00000000000000000003-") {
		t.Fatalf("first seal %+v", s)
	}
	// Durable (listed and readable) while the stream is still open.
	sameList(t, "after the first seal", stored(t, repotest.Reopen(t, r), 1), want(1, 3))

	fmt.Fprint(pw, input(muts(4, 5)))
	if s := wait(); s.FirstLSN != 4 || s.LastLSN != 5 {
		t.Fatalf("second seal %+v", s)
	}
	pw.Close()
	d := <-finished
	if d.err != nil || d.res.Records != 5 || d.res.Segments != 2 || d.res.LastLSN != 5 || d.res.Skipped != 0 {
		t.Fatalf("%+v %v", d.res, d.err)
	}
	sameList(t, "at the end", stored(t, r, 1), want(1, 5))
}

// TestPushSegmentSize: a segment is sealed as soon as its records reach
// the segment size, without waiting for the flush interval.
func TestPushSegmentSize(t *testing.T) {
	r := repotest.New(t)
	size := recordSize(t, mut(1, 1, ""))
	res, sealed, err := pushString(t, r, input(muts(1, 9)), PushOptions{SegmentSize: 3*size - 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sealed {
		got = append(got, fmt.Sprintf("%d-%d", s.FirstLSN, s.LastLSN))
	}
	sameList(t, "segments", got, []string{"1-3", "4-6", "7-9"})
	if res.Segments != 3 || res.Records != 9 {
		t.Fatalf("%+v", res)
	}
	sameList(t, "log", stored(t, r, 1), want(1, 9))
}

// TestPushRefusals: re-sends, conflicts, gaps and malformed lines against
// a stored log of lsns 1..6 in segments of two records. Every refusal
// first stores the good records before the bad line.
func TestPushRefusals(t *testing.T) {
	size := recordSize(t, mut(1, 1, ""))
	tests := []struct {
		name    string
		in      string
		err     []string // substrings of the error; none: success
		records int
		skipped int
		last    int // the stored log is 1..last (ids unchanged)
	}{
		{name: "resend equal", in: input(muts(1, 6)), skipped: 6, last: 6},
		{name: "resend tail then new", in: input(muts(3, 9)), skipped: 4, records: 3, last: 9},
		{name: "resend with an earlier ts", in: input(one(mut(6, 1, "")), muts(7, 7)), skipped: 1, records: 1, last: 7},
		{name: "resend twice over", in: input(muts(1, 8), muts(2, 8), muts(9, 9)), skipped: 6 + 7, records: 3, last: 9},
		{name: "blank lines", in: "\n  \n" + input(muts(7, 7)) + "\r\n", records: 1, last: 7},
		{name: "conflict stored",
			in:  input(muts(1, 2), one(mut(3, 3, "x")), muts(4, 8)),
			err: []string{"line 3: lsn 3 is already stored with different content", "--new-generation --from-lsn 2`", "generation 1 ends at lsn 6"},
			// nothing new before the bad line
			skipped: 2, last: 6},
		{name: "conflict pending",
			in:      input(muts(7, 9), one(mut(8, 8, "x"))),
			err:     []string{"line 4: lsn 8 is already stored with different content", "--from-lsn 7`", "ends at lsn 9"},
			records: 3, last: 9},
		{name: "gap", in: input(muts(7, 8), one(mut(10, 10, ""))),
			err:     []string{"line 3: expected lsn 9, got 10", "nothing from that line on was stored"},
			records: 2, last: 8},
		{name: "gap at the start", in: input(one(mut(8, 8, ""))),
			err:  []string{"line 1: expected lsn 7, got 8"},
			last: 6},
		{name: "malformed", in: input(muts(7, 7), one(`{"lsn":8,`), muts(8, 8)),
			err:     []string{"line 2: invalid JSON"},
			records: 1, last: 7},
		{name: "malformed field", in: input(muts(1, 1), muts(7, 8), one(`{"lsn":9,"ts":"yesterday"}`)),
			err:     []string{`line 4: field "ts" must be an RFC 3339 time`},
			skipped: 1, records: 2, last: 8},
		{name: "no final newline", in: strings.TrimSuffix(input(muts(7, 8)), "\n"), records: 2, last: 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := repotest.New(t)
			if res := mustPush(t, r, input(muts(1, 6)), PushOptions{SegmentSize: 2 * size}); res.Segments != 3 {
				t.Fatalf("setup: %+v", res)
			}
			var warnings []string
			res, _, err := pushString(t, repotest.Reopen(t, r), tc.in, PushOptions{SegmentSize: 2 * size,
				Warn: func(s string) { warnings = append(warnings, s) }})
			if len(tc.err) == 0 && err != nil {
				t.Fatalf("push: %v", err)
			}
			for _, w := range tc.err {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("error %v, want it to contain %q", err, w)
				}
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Errorf("error %v is not an *Error", err)
				}
			}
			if res.Records != tc.records || res.Skipped != tc.skipped || res.LastLSN != uint64(tc.last) {
				t.Errorf("result %+v, want %d records, %d skipped, last lsn %d", res, tc.records, tc.skipped, tc.last)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings %q", warnings)
			}
			sameList(t, "stored log", stored(t, r, 1), want(1, tc.last))
		})
	}
}

// TestPushResume: a push after a restart goes on from the stored tail:
// re-sent records are skipped, the lsn continues, ts clamping carries over.
func TestPushResume(t *testing.T) {
	r := repotest.New(t)
	mustPush(t, r, input(muts(1, 3)), PushOptions{})
	r2 := repotest.Reopen(t, r)
	res := mustPush(t, r2, input(muts(1, 5), one(mut(6, 1, ""))), PushOptions{})
	if res.Skipped != 3 || res.Records != 3 || res.LastLSN != 6 || res.SkippedFirst != 1 || res.SkippedLast != 3 {
		t.Fatalf("%+v", res)
	}
	if res.Clamped != 1 || !strings.Contains(res.ClampWarning, "lsn 6, ts 2026-01-01T00:00:01Z -> 2026-01-01T00:00:05Z") {
		t.Fatalf("clamp: %d %q", res.Clamped, res.ClampWarning)
	}
	sameList(t, "log", stored(t, r, 1), want(1, 6))
	// The clamped record, re-sent as the database has it, is equal.
	res = mustPush(t, r, input(muts(5, 5), one(mut(6, 1, ""))), PushOptions{})
	if res.Skipped != 2 || res.Records != 0 {
		t.Fatalf("%+v", res)
	}
}

// TestPushBeforeFirstLSN: records before the generation's first stored lsn
// (pruned, or never pushed) are skipped with one warning.
func TestPushBeforeFirstLSN(t *testing.T) {
	r := repotest.New(t)
	mustPush(t, r, input(muts(100, 102)), PushOptions{})
	var warnings []string
	res := mustPush(t, r, input(muts(97, 103)), PushOptions{Warn: func(s string) { warnings = append(warnings, s) }})
	if res.Skipped != 6 || res.Records != 1 {
		t.Fatalf("%+v", res)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "line 1: lsn 97 is before lsn 100, where generation 1 starts") {
		t.Fatalf("warnings %q", warnings)
	}
	sameList(t, "log", stored(t, r, 1), want(100, 103))
}

// TestPushSparse: with prev_lsn, a re-sent lsn that is not in the log is
// refused, not skipped.
func TestPushSparse(t *testing.T) {
	r := repotest.New(t)
	sparse := func(lsn, prev int, suffix string) string {
		return fmt.Sprintf(`{"lsn":%d,"prev_lsn":%d,"ts":"2026-01-01T00:00:00Z","tier":"w","op":"delete","kind":"node","id":"n%d%s"}`, lsn, prev, lsn, suffix)
	}
	mustPush(t, r, input(muts(10, 10), one(sparse(20, 10, ""), sparse(30, 20, ""))), PushOptions{})
	res := mustPush(t, r, input(muts(10, 10), one(sparse(20, 10, ""), sparse(30, 20, ""), sparse(40, 30, ""))), PushOptions{})
	if res.Skipped != 3 || res.Records != 1 {
		t.Fatalf("%+v", res)
	}
	_, _, err := pushString(t, r, input(muts(10, 10), one(sparse(15, 10, ""))), PushOptions{})
	if err == nil || !strings.Contains(err.Error(), "line 2: lsn 15 is not in the log") || !strings.Contains(err.Error(), "--from-lsn 10`") {
		t.Fatalf("%v", err)
	}
}

// TestPushNewGeneration: a database restored to lsn 5 issues 6, 7, ...
// again; a new generation branches after 5 and carries its parent.
func TestPushNewGeneration(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	mustPush(t, r, input(muts(1, 10)), PushOptions{})

	if _, _, err := pushString(t, r, input(muts(6, 6)), PushOptions{FromLSN: 5}); err == nil {
		t.Fatal("a from-lsn without a new generation was accepted")
	}
	_, _, err := pushString(t, r, input(muts(12, 12)), PushOptions{NewGeneration: true, FromLSN: 11})
	if err == nil || !strings.Contains(err.Error(), "--from-lsn 11 is past the end of generation 1, whose last lsn is 10") {
		t.Fatalf("%v", err)
	}
	// The first record must continue lsn 5.
	_, _, err = pushString(t, r, input(muts(7, 7)), PushOptions{NewGeneration: true, FromLSN: 5})
	if err == nil || !strings.Contains(err.Error(), "line 1: expected lsn 6, got 7") {
		t.Fatalf("%v", err)
	}
	if gens, _ := Generations(ctx, r); len(gens) != 1 {
		t.Fatalf("a refused push created a generation: %v", gens)
	}

	// Records at or before 5 are the parent's: skipped. 6 has a ts before
	// record 5's (second 5): clamped to it, as if it followed it.
	res := mustPush(t, r, input(muts(4, 5), one(mut(6, 2, "b"), mut(7, 7, "b"))), PushOptions{NewGeneration: true, FromLSN: 5})
	if res.Generation != 2 || res.Parent == nil || *res.Parent != (Parent{Generation: 1, LSN: 5}) || res.Records != 2 || res.Skipped != 2 {
		t.Fatalf("%+v", res)
	}
	if res.Clamped != 1 {
		t.Fatalf("ts of lsn 6 not clamped to the parent's lsn 5: %+v", res)
	}
	// A restart goes on in generation 2 without the flags.
	res = mustPush(t, r, input(one(mut(6, 2, "b"), mut(7, 7, "b"), mut(8, 8, "b"))), PushOptions{})
	if res.Generation != 2 || res.Skipped != 2 || res.Records != 1 {
		t.Fatalf("%+v", res)
	}
	l, _ := Open(ctx, r, 2)
	segs, _ := l.Segments(ctx)
	for _, s := range segs {
		h, _, err := l.Load(ctx, s)
		if err != nil || h.Parent == nil || *h.Parent != (Parent{Generation: 1, LSN: 5}) {
			t.Fatalf("%s: parent %+v %v", s.Key, h.Parent, err)
		}
	}
	h, _, _ := l.Load(ctx, segs[0])
	if h.FirstTS != "2026-01-01T00:00:05Z" {
		t.Fatalf("first ts %s", h.FirstTS)
	}
	sameList(t, "generation 2", stored(t, r, 2), []string{"6:n6b", "7:n7b", "8:n8b"})
	sameList(t, "generation 1", stored(t, r, 1), want(1, 10))
	hist, err := OpenHistory(ctx, r, 0)
	if err != nil {
		t.Fatal(err)
	}
	it, _ := hist.Read(ctx, 0, 0)
	var lsns []string
	for {
		rec, err := it.Next()
		if err != nil {
			break
		}
		lsns = append(lsns, fmt.Sprintf("%d:%s", rec.LSN, rec.ID))
	}
	sameList(t, "history", lsns, append(want(1, 5), "6:n6b", "7:n7b", "8:n8b"))
	// ReadEnd bounds a read that must take in the record after a cut, here
	// across the branch point (the parent's one segment runs past it).
	for lsn := uint64(0); lsn <= 8; lsn++ {
		end, err := hist.ReadEnd(ctx, lsn)
		if err != nil {
			t.Fatal(err)
		}
		it, _ := hist.Read(ctx, 0, end)
		var got []uint64
		for {
			rec, err := it.Next()
			if err != nil {
				break
			}
			got = append(got, rec.LSN)
		}
		if lsn < 8 && (len(got) < int(lsn)+1 || got[lsn] != lsn+1) {
			t.Errorf("ReadEnd(%d) = %d: a read to it gives lsns %v, without %d", lsn, end, got, lsn+1)
		}
		if w, ok := map[uint64]uint64{0: 7, 5: 7, 6: 7, 7: 8, 8: 0}[lsn]; ok && end != w {
			t.Errorf("ReadEnd(%d) = %d, want %d", lsn, end, w)
		}
	}

	// From lsn 0: a fresh start, any first lsn.
	res = mustPush(t, r, input(muts(500, 501)), PushOptions{NewGeneration: true})
	if res.Generation != 3 || *res.Parent != (Parent{Generation: 2, LSN: 0}) || res.Records != 2 {
		t.Fatalf("%+v", res)
	}
}

// TestPushLease: one writer per log; --lock-wait waits for the holder.
func TestPushLease(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	held, err := r.AcquireLease(ctx, repo.LeaseOplog, LeaseScope, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = pushString(t, repotest.Reopen(t, r), input(muts(1, 2)), PushOptions{})
	if !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	start := time.Now()
	_, _, err = pushString(t, r, input(muts(1, 2)), PushOptions{LockWait: 300 * time.Millisecond})
	if !errors.Is(err, repo.ErrLocked) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("lock wait: %v after %v", err, time.Since(start))
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		held.Release(ctx)
	}()
	res, _, err := pushString(t, r, input(muts(1, 2)), PushOptions{LockWait: 20 * time.Second})
	if err != nil || res.Records != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	// The push released its lease.
	leases, err := r.Leases(ctx)
	if err != nil || len(leases) != 0 {
		t.Fatalf("leases left: %v %v", leases, err)
	}
}

// TestPushHeartbeats: while idle, push writes a heartbeat every interval
// and removes its previous one; one from an earlier push stays.
func TestPushHeartbeats(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	old := time.Now().Add(-time.Hour)
	oldKey, err := WriteHeartbeat(ctx, r, 1, Heartbeat{Time: old, LastLSN: 0})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	finished := make(chan error, 1)
	var res PushResult
	sealed := make(chan struct{}, 1)
	go func() {
		var err error
		res, err = Push(ctx, r, NewLineReader(pr), PushOptions{FlushInterval: 10 * time.Millisecond, Heartbeat: 40 * time.Millisecond,
			OnSealed: func(SealedSegment) { sealed <- struct{}{} }})
		finished <- err
	}()
	fmt.Fprint(pw, input(muts(1, 2)))
	<-sealed
	deadline := time.Now().Add(10 * time.Second)
	var hb *Heartbeat
	for time.Now().Before(deadline) {
		hb, err = LatestHeartbeat(ctx, r, 1)
		if err != nil {
			t.Fatal(err)
		}
		if hb.Time.After(old) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hb.LastLSN != 2 || time.Since(hb.Time) > 5*time.Second {
		t.Fatalf("latest heartbeat %+v", hb)
	}
	time.Sleep(200 * time.Millisecond) // several more
	pw.Close()
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if res.Heartbeats < 2 {
		t.Fatalf("%d heartbeats", res.Heartbeats)
	}
	var keys []string
	err = r.Backend().List(ctx, HeartbeatPrefix(1), func(oi backend.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil || len(keys) != 2 {
		t.Fatalf("heartbeats %v %v: want the old one and this push's last", keys, err)
	}
	if keys[0] != oldKey && keys[1] != oldKey {
		t.Fatalf("the earlier push's heartbeat was removed: %v", keys)
	}
	hb2, err := LatestHeartbeat(ctx, r, 1)
	if err != nil || hb2.Time.Before(hb.Time) || hb2.LastLSN != 2 {
		t.Fatalf("%+v %v", hb2, err)
	}
}

// TestPushNoHeartbeatForEmptyGeneration: an empty generation gets no
// heartbeat (it would become the newest generation, with nothing in it).
func TestPushNoHeartbeatForEmptyGeneration(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	pr, pw := io.Pipe()
	finished := make(chan error, 1)
	go func() {
		_, err := Push(ctx, r, NewLineReader(pr), PushOptions{Heartbeat: 10 * time.Millisecond})
		finished <- err
	}()
	time.Sleep(150 * time.Millisecond)
	pw.Close()
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if gens, err := Generations(ctx, r); err != nil || len(gens) != 0 {
		t.Fatalf("%v %v", gens, err)
	}
}

// TestPushCancel: an interrupt seals what was received, then ends the push
// with the context's error.
func TestPushCancel(t *testing.T) {
	r := repotest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	// The main loop has taken line 3 once the reader asks for line 4
	// (the hand-over is unbuffered).
	src := &signalSource{LineSource: NewLineReader(pr), at: 4, ch: make(chan struct{})}
	finished := make(chan error, 1)
	var res PushResult
	go func() {
		var err error
		res, err = Push(ctx, r, src, PushOptions{FlushInterval: time.Hour})
		finished <- err
	}()
	fmt.Fprint(pw, input(muts(1, 3)))
	<-src.ch
	cancel()
	if err := <-finished; !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	if res.Records != 3 || res.Segments != 1 {
		t.Fatalf("%+v", res)
	}
	sameList(t, "log", stored(t, r, 1), want(1, 3))
	leases, _ := r.Leases(context.Background())
	if len(leases) != 0 {
		t.Fatal("lease left after an interrupt")
	}
}

// signalSource closes ch when ReadLine is called for the at-th time.
type signalSource struct {
	LineSource
	n, at int
	ch    chan struct{}
}

func (s *signalSource) ReadLine(ctx context.Context) ([]byte, int, error) {
	if s.n++; s.n == s.at {
		close(s.ch)
	}
	return s.LineSource.ReadLine(ctx)
}

// TestPushOpenTransaction: an open trailing transaction is stored as is.
func TestPushOpenTransaction(t *testing.T) {
	r := repotest.New(t)
	in := `{"lsn":1,"ts":"2026-01-01T00:00:00Z","tx":"a","tier":"w","op":"delete","kind":"node","id":"x"}` + "\n" +
		`{"lsn":2,"ts":"2026-01-01T00:00:00Z","tx":"a","tier":"w","op":"delete","kind":"node","id":"y"}` + "\n"
	res := mustPush(t, r, in, PushOptions{})
	if !res.OpenTx || res.Records != 2 {
		t.Fatalf("%+v", res)
	}
	res = mustPush(t, r, `{"lsn":3,"ts":"2026-01-01T00:00:00Z","tx":"a","tx_end":true,"tier":"w","op":"delete","kind":"node","id":"z"}`, PushOptions{})
	if res.OpenTx || res.Records != 1 {
		t.Fatalf("%+v", res)
	}
}

// TestPushAfterSeal: the hook runs in the background, not twice at once,
// and push waits for it before it returns.
func TestPushAfterSeal(t *testing.T) {
	r := repotest.New(t)
	var mu sync.Mutex
	running, calls, overlap := 0, 0, false
	var finished atomic.Bool
	size := recordSize(t, mut(1, 1, ""))
	res := mustPush(t, r, input(muts(1, 20)), PushOptions{SegmentSize: size, AfterSealEvery: time.Nanosecond,
		AfterSeal: func(ctx context.Context, l *Log) error {
			mu.Lock()
			running++
			calls++
			overlap = overlap || running > 1
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			finished.Store(true)
			if l.Gen() != 1 {
				return errors.New("wrong log")
			}
			return nil
		}})
	if res.Segments != 20 || calls == 0 || overlap || !finished.Load() || running != 0 {
		t.Fatalf("segments %d, calls %d, overlap %v, running %d", res.Segments, calls, overlap, running)
	}
}

// TestLineReader: line breaks (\n, \r\n, none at the end) and numbers.
func TestLineReader(t *testing.T) {
	lr := NewLineReader(strings.NewReader("a\r\n\nb"))
	var got []string
	for {
		l, n, err := lr.ReadLine(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", n, l))
	}
	sameList(t, "lines", got, []string{"1:a", "2:", "3:b"})
}

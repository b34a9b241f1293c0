package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// terminal is where a command prints. stdout carries results (only JSON
// with --json); stderr carries errors, warnings and progress.
type terminal struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	json, quiet    bool
	verbose        int
	stderrTTY      bool
	mu             sync.Mutex // serialises writes from progress and warnings
}

func newTerminal(stdin io.Reader, stdout, stderr io.Writer) *terminal {
	t := &terminal{stdin: stdin, stdout: stdout, stderr: stderr}
	if f, ok := stderr.(*os.File); ok {
		t.stderrTTY = term.IsTerminal(int(f.Fd()))
	}
	return t
}

func (t *terminal) configure(g *globals) {
	t.json, t.quiet, t.verbose = g.json, g.quiet, g.verbose
}

// printf prints human output on stdout (never with --json or -q).
func (t *terminal) printf(format string, a ...any) {
	if t.json || t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.stdout, format, a...)
}

// errorf prints an error line on stderr (always, -q included).
func (t *terminal) errorf(format string, a ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.stderr, "strata: "+format+"\n", a...)
}

// warnf prints a warning on stderr unless -q.
func (t *terminal) warnf(format string, a ...any) {
	if t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stderrTTY {
		fmt.Fprint(t.stderr, "\r\x1b[K")
	}
	fmt.Fprintf(t.stderr, "warning: "+format+"\n", a...)
}

// printJSON writes v as one JSON document (or one line of a stream).
func (t *terminal) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err = fmt.Fprintf(t.stdout, "%s\n", b)
	return err
}

func (t *terminal) printHelp(cmd *command, path []string) {
	fmt.Fprint(t.stdout, helpText(cmd, path))
}

// progress shows bytes, files, rate and ETA on stderr when it is a
// terminal; with --json it emits status lines on stdout once a second
// (when jsonStatus is set); otherwise it only passes warnings on.
type progress struct {
	t          *terminal
	verb       string
	jsonStatus bool
	start      time.Time

	bytes, files           atomic.Int64
	totalBytes, totalFiles atomic.Int64
	warnings               atomic.Int64
	// warnPrefix says what a warning means in text mode ("not backed up: ").
	warnPrefix string
	// items names what the count counts in text mode (default "files").
	items string

	stop chan struct{}
	done chan struct{}
}

func (t *terminal) newProgress(verb string, jsonStatus bool) *progress {
	p := &progress{t: t, verb: verb, jsonStatus: jsonStatus, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	interval := time.Duration(0)
	switch {
	case t.json && jsonStatus:
		interval = time.Second
	case !t.json && !t.quiet && t.stderrTTY:
		interval = 250 * time.Millisecond
	}
	if interval == 0 {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				if !t.json {
					t.mu.Lock()
					fmt.Fprint(t.stderr, "\r\x1b[K")
					t.mu.Unlock()
				}
				return
			case <-tick.C:
				p.render()
			}
		}
	}()
	return p
}

func (p *progress) SetTotal(bytes, files int64) {
	p.totalBytes.Store(bytes)
	p.totalFiles.Store(files)
}

func (p *progress) Add(bytes, files int64) {
	p.bytes.Add(bytes)
	p.files.Add(files)
}

func (p *progress) Warn(path string, err error) {
	p.warnings.Add(1)
	if p.t.json {
		_ = p.t.printJSON(map[string]any{"message_type": "error", "item": path, "error": err.Error()})
		return
	}
	p.t.warnf("%s%s: %v", p.warnPrefix, path, err)
}

// Done stops the display and clears the line.
func (p *progress) Done() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.stop)
	<-p.done
}

func (p *progress) render() {
	el := time.Since(p.start).Seconds()
	b, tb := p.bytes.Load(), p.totalBytes.Load()
	rate := float64(b) / max(el, 0.001)
	if p.t.json {
		st := map[string]any{"message_type": "status", "seconds_elapsed": int(el), "bytes_done": b, "files_done": p.files.Load()}
		if tb > 0 {
			st["total_bytes"], st["percent_done"] = tb, float64(b)/float64(tb)
		}
		_ = p.t.printJSON(st)
		return
	}
	line := fmt.Sprintf("[%s] %s %s", fmtDuration(el), p.verb, fmtBytes(b))
	if tb > 0 {
		line += fmt.Sprintf(" / %s (%.1f%%)", fmtBytes(tb), 100*float64(b)/float64(tb))
	}
	items := p.items
	if items == "" {
		items = "files"
	}
	if tf := p.totalFiles.Load(); tf > 0 {
		line += fmt.Sprintf("  %s/s  %d/%d %s", fmtBytes(int64(rate)), p.files.Load(), tf, items)
	} else {
		line += fmt.Sprintf("  %s/s  %d %s", fmtBytes(int64(rate)), p.files.Load(), items)
	}
	if tb > b && rate > 0 {
		line += "  ETA " + fmtDuration(float64(tb-b)/rate)
	}
	p.t.mu.Lock()
	fmt.Fprintf(p.t.stderr, "\r\x1b[K%s", line)
	p.t.mu.Unlock()
}

func fmtDuration(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	}
	return fmt.Sprintf("%d:%02d", m, sec)
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// status shows a one-line status on a terminal's stderr (replaced by the
// next one; nothing when stderr is not a terminal, with --json or -q).
func (t *terminal) status(format string, a ...any) {
	if !t.stderrTTY || t.json || t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.stderr, "\r\x1b[K"+format, a...)
}

// clearStatus removes the status line.
func (t *terminal) clearStatus() {
	if !t.stderrTTY || t.json || t.quiet {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprint(t.stderr, "\r\x1b[K")
}

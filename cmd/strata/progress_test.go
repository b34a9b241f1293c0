package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestCheckProgressLine: on a terminal, check's read-data stage shows packs,
// bytes against the total, the rate and an ETA, and the line is cleared at
// the end; with --json or -q nothing reaches stderr.
func TestCheckProgressLine(t *testing.T) {
	tests := []struct {
		name        string
		json, quiet bool
		want        []string // substrings of stderr; nil: stderr empty
	}{
		{"terminal", false, false, []string{"check: read-data 16.0 MiB / 64.0 MiB (25.0%)", "1/4 packs", "/s", "ETA ", "\r\x1b[K"}},
		{"json", true, false, nil},
		{"quiet", false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			term := &terminal{stdout: &bytes.Buffer{}, stderr: &stderr, stderrTTY: true, json: tt.json, quiet: tt.quiet}
			p := newCheckProgress(term)
			p.Stage("read-data", 4, 64<<20)
			p.Done(1, 16<<20)
			time.Sleep(300 * time.Millisecond) // a tick of the bar (250 ms)
			p.End()
			got := stderr.String()
			if tt.want == nil {
				if got != "" {
					t.Errorf("stderr %q, want nothing", got)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("stderr %q lacks %q", got, w)
				}
			}
			if !strings.HasSuffix(got, "\r\x1b[K") {
				t.Errorf("stderr %q does not end by clearing the line", got)
			}
		})
	}
}

// TestStepProgress: verify and drill show each step on a terminal, a bar
// with bytes, rate and ETA once a step moves bytes, and nothing with --json.
func TestStepProgress(t *testing.T) {
	for _, json := range []bool{false, true} {
		var stderr bytes.Buffer
		term := &terminal{stdout: &bytes.Buffer{}, stderr: &stderr, stderrTTY: true, json: json}
		sp := newStepProgress(term)
		sp.Step("verify 1234abcd: integrity")
		sp.Step("verify 1234abcd: restore")
		sp.SetTotal(8<<20, 2)
		sp.Add(2<<20, 1)
		time.Sleep(300 * time.Millisecond) // a tick of the bar (250 ms)
		sp.Step("verify 1234abcd: graph")
		sp.Done()
		got := stderr.String()
		if json {
			if got != "" {
				t.Errorf("--json: stderr %q, want nothing", got)
			}
			continue
		}
		for _, w := range []string{"verify 1234abcd: integrity", "verify 1234abcd: restore 2.0 MiB / 8.0 MiB (25.0%)", "1/2 files", "ETA ", "verify 1234abcd: graph"} {
			if !strings.Contains(got, w) {
				t.Errorf("stderr %q lacks %q", got, w)
			}
		}
		if !strings.HasSuffix(got, "\r\x1b[K") {
			t.Errorf("stderr %q does not end by clearing the line", got)
		}
	}
}

package main

import (
	"sync"

	"github.com/strata-backup/strata/snapshot"
)

// stepProgress shows the step a multi-step command (verify, drill) is in and,
// while a step moves bytes (a test restore), a progress bar with bytes,
// files, rate and ETA. It is the snapshot.Progress handed to those restores:
// the bar for a step appears with its first bytes, so steps that move none
// keep their one-line status.
type stepProgress struct {
	t     *terminal
	items string // what the bar counts ("" : files)

	mu    sync.Mutex
	label string
	bar   *progress
}

func newStepProgress(t *terminal) *stepProgress { return &stepProgress{t: t} }

// Step ends the current step's bar and shows label.
func (s *stepProgress) Step(label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
	s.label = label
	s.t.status("%s", label)
}

// Done ends the last bar and clears the status line.
func (s *stepProgress) Done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
	s.t.clearStatus()
}

func (s *stepProgress) endLocked() {
	if s.bar != nil {
		s.bar.Done()
		s.bar = nil
	}
}

func (s *stepProgress) current() *progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar == nil {
		s.bar = s.t.newProgress(s.label, false)
		s.bar.items = s.items
	}
	return s.bar
}

func (s *stepProgress) SetTotal(bytes, files int64) { s.current().SetTotal(bytes, files) }
func (s *stepProgress) Add(bytes, files int64)      { s.current().Add(bytes, files) }
func (s *stepProgress) Warn(path string, err error) { s.current().Warn(path, err) }

var _ snapshot.Progress = (*stepProgress)(nil)

package snapshot

import (
	"fmt"
	"path"
	"strings"
)

// Patterns are restic-style include/exclude patterns. A pattern is matched
// component by component against a slash-separated path: one with a leading
// "/" is anchored at the root, one without may start at any component; "**"
// spans any number of components; other components use path.Match syntax.
// A pattern that matches a directory also matches everything below it.
type Patterns []string

// Validate reports the first malformed pattern.
func (ps Patterns) Validate() error {
	for _, p := range ps {
		for _, c := range strings.Split(p, "/") {
			if _, err := path.Match(c, ""); err != nil {
				return fmt.Errorf("pattern %q: %w", p, err)
			}
		}
	}
	return nil
}

// Match reports whether any pattern matches p (an absolute slash path).
func (ps Patterns) Match(p string) bool {
	if len(ps) == 0 {
		return false
	}
	comps := splitPath(p)
	for _, pat := range ps {
		pc := splitPath(pat)
		if len(pc) == 0 {
			continue
		}
		if strings.HasPrefix(pat, "/") {
			if matchPrefix(pc, comps) {
				return true
			}
			continue
		}
		for i := range comps {
			if matchPrefix(pc, comps[i:]) {
				return true
			}
		}
	}
	return false
}

// MatchOrParent reports whether p matches, or p is a directory on the way to
// something an anchored pattern could match (so restore descends into it).
func (ps Patterns) MatchOrParent(p string) bool {
	if ps.Match(p) {
		return true
	}
	comps := splitPath(p)
	for _, pat := range ps {
		if !strings.HasPrefix(pat, "/") {
			return true // may match anywhere below
		}
		pc := splitPath(pat)
		if len(comps) < len(pc) && matchPrefix(pc[:len(comps)], comps) {
			return true
		}
		if len(pc) > 0 && pc[0] == "**" {
			return true
		}
	}
	return false
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// matchPrefix reports whether pattern components pc match a prefix of comps.
func matchPrefix(pc, comps []string) bool {
	if len(pc) == 0 {
		return true
	}
	if pc[0] == "**" {
		for i := 0; i <= len(comps); i++ {
			if matchPrefix(pc[1:], comps[i:]) {
				return true
			}
		}
		return false
	}
	if len(comps) == 0 {
		return false
	}
	ok, _ := path.Match(pc[0], comps[0])
	return ok && matchPrefix(pc[1:], comps[1:])
}

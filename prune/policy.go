package prune

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/snapshot"
)

// Unlimited as a keep count keeps one snapshot in every bucket there is
// (restic's "-1"; see Policy).
const Unlimited = -1

// Policy is a retention policy with restic's rules and semantics: those of
// restic 0.14's forget (internal/restic/snapshot_policy.go, ApplyPolicy),
// with one deliberate difference: restic 0.14 accepts a keep count of -1
// but ignores it (so `--keep-daily -1` alone removes every snapshot), while
// here -1 (Unlimited) means "every bucket", as restic does from 0.15 on.
// Counts below -1 and negative durations are refused by Validate.
//
// Snapshots are taken newest first. Each count rule walks them with a
// bucket function and keeps the first snapshot of each new bucket (so the
// newest one in the bucket) until it has kept its count; a snapshot is kept
// when any rule keeps it. Buckets: Last, every snapshot its own; Hourly,
// year-month-day-hour; Daily, year-month-day; Weekly, the ISO 8601 year and
// week; Monthly, year-month; Yearly, year. Times are read in the zone the
// snapshot time was recorded in (the local zone of the backup, as restic
// does), not the zone forget runs in.
type Policy struct {
	Last    int // the newest n snapshots
	Hourly  int // the newest snapshot of each of the last n hours that have one
	Daily   int
	Weekly  int
	Monthly int
	Yearly  int
	// Within keeps every snapshot newer than the newest snapshot (not now)
	// minus this duration.
	Within Duration
	// WithinHourly .. WithinYearly keep the newest snapshot of every
	// bucket among the snapshots newer than the newest one minus the
	// duration.
	WithinHourly  Duration
	WithinDaily   Duration
	WithinWeekly  Duration
	WithinMonthly Duration
	WithinYearly  Duration
	// Tags keeps every snapshot that has all tags of any one list.
	Tags []TagList
}

// Empty reports whether the policy has no rule (restic then keeps every
// snapshot; forget refuses to run without a rule).
func (p Policy) Empty() bool {
	return len(p.Tags) == 0 && p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 &&
		p.Monthly == 0 && p.Yearly == 0 && p.Within.Zero() && p.WithinHourly.Zero() &&
		p.WithinDaily.Zero() && p.WithinWeekly.Zero() && p.WithinMonthly.Zero() && p.WithinYearly.Zero()
}

// Validate refuses counts below Unlimited and negative durations.
func (p Policy) Validate() error {
	for _, c := range []struct {
		name string
		n    int
	}{{"last", p.Last}, {"hourly", p.Hourly}, {"daily", p.Daily}, {"weekly", p.Weekly}, {"monthly", p.Monthly}, {"yearly", p.Yearly}} {
		if c.n < Unlimited {
			return fmt.Errorf("--keep-%s %d: want a count, or -1 for unlimited", c.name, c.n)
		}
	}
	return nil
}

// String describes the policy as restic's "Applying Policy:" line does.
func (p Policy) String() string {
	var keeps, within []string
	for _, c := range []struct {
		n    int
		name string
	}{{p.Last, "latest"}, {p.Hourly, "hourly"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"}} {
		switch {
		case c.n > 0:
			keeps = append(keeps, fmt.Sprintf("%d %s", c.n, c.name))
		case c.n == Unlimited:
			keeps = append(keeps, "all "+c.name)
		}
	}
	for _, w := range []struct {
		d    Duration
		name string
	}{{p.WithinHourly, "hourly"}, {p.WithinDaily, "daily"}, {p.WithinWeekly, "weekly"}, {p.WithinMonthly, "monthly"}, {p.WithinYearly, "yearly"}} {
		if !w.d.Zero() {
			within = append(within, fmt.Sprintf("%s snapshots within %s", w.name, w.d))
		}
	}
	s := ""
	if len(keeps) > 0 {
		s = strings.Join(keeps, ", ") + " snapshots"
	}
	if len(within) > 0 {
		if s != "" {
			s += ", "
		}
		s += strings.Join(within, ", ")
	}
	if len(p.Tags) > 0 {
		if s != "" {
			s += " and "
		}
		s += fmt.Sprintf("all snapshots with tags %s", p.Tags)
	}
	if !p.Within.Zero() {
		if s != "" {
			s += " and "
		}
		s += fmt.Sprintf("all snapshots within %s of the newest", p.Within)
	}
	return "keep " + s
}

// TagList is a set of tags that must all be present ("a,b" on the command
// line).
type TagList []string

// ParseTagList splits "a,b" into its tags, dropping empty ones. An empty
// list matches every snapshot, as in restic.
func ParseTagList(s string) TagList {
	l := TagList{}
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			l = append(l, t)
		}
	}
	return l
}

// String renders the list as restic does ("[a, b]").
func (l TagList) String() string { return "[" + strings.Join(l, ", ") + "]" }

func (l TagList) matches(sn *snapshot.Snapshot) bool {
	for _, t := range l {
		if !slices.Contains(sn.Tags, t) {
			return false
		}
	}
	return true
}

// Duration is restic's calendar duration for --keep-within*: years, months,
// days and hours, written like 1y2m3d4h (each part optional, in any order).
// It is applied with calendar arithmetic (time.AddDate), so 1m back from
// March 31 is March 3 (February 31 normalised), as in restic.
type Duration struct {
	Years, Months, Days, Hours int
}

// ParseDuration parses restic's duration syntax: one or more NUMBER UNIT
// pairs, UNIT one of y, m, d, h (a repeated unit replaces the earlier one,
// as in restic). Negative numbers are refused (restic 0.14 accepts them and
// then keeps snapshots up to the future; later versions refuse them too).
func ParseDuration(s string) (Duration, error) {
	var d Duration
	rest := strings.TrimSpace(s)
	if rest == "" {
		return d, fmt.Errorf("duration %q: empty", s)
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			if rest[0] == '-' {
				return Duration{}, fmt.Errorf("duration %q: negative values are not allowed", s)
			}
			return Duration{}, fmt.Errorf("duration %q: no number found before %q", s, rest)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return Duration{}, fmt.Errorf("duration %q: %w", s, err)
		}
		if i == len(rest) {
			return Duration{}, fmt.Errorf("duration %q: no unit found after number %d (want y, m, d or h)", s, n)
		}
		switch rest[i] {
		case 'y':
			d.Years = n
		case 'm':
			d.Months = n
		case 'd':
			d.Days = n
		case 'h':
			d.Hours = n
		default:
			return Duration{}, fmt.Errorf("duration %q: invalid unit %q found after number %d (want y, m, d or h)", s, rest[i], n)
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// String renders d as restic does (1y2m3d4h, zero parts left out).
func (d Duration) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if p.n != 0 {
			fmt.Fprintf(&b, "%d%s", p.n, p.unit)
		}
	}
	return b.String()
}

// Zero reports whether d is unset.
func (d Duration) Zero() bool { return d == Duration{} }

// before returns t minus d (calendar arithmetic in t's zone, then hours).
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

// Counters are the counts each rule has left after a kept snapshot
// (restic's KeepReason counters; -1: unlimited).
type Counters struct {
	Last    int `json:"last,omitempty"`
	Hourly  int `json:"hourly,omitempty"`
	Daily   int `json:"daily,omitempty"`
	Weekly  int `json:"weekly,omitempty"`
	Monthly int `json:"monthly,omitempty"`
	Yearly  int `json:"yearly,omitempty"`
}

// Reason says why a snapshot is kept: every rule it matched, in restic's
// order (tags, within, the counted buckets, the within-buckets, then a
// pinned reason such as "oplog window"), and the counters after it.
type Reason struct {
	Snapshot snapshot.Entry
	Matches  []string
	Counters Counters
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Now is the clock: the --keep-within* rules measure back from the
	// newest snapshot that is not later than Now (restic ignores snapshots
	// in the future there). Zero: time.Now().
	Now time.Time
	// Pinned snapshots are kept whatever the rules say; the value is the
	// match to report (e.g. "oplog window"). They still take part in the
	// rules' buckets, so the rules decide exactly as without the pins.
	Pinned map[chunk.ID]string
	// RemoveAll makes an empty policy remove every snapshot that is not
	// pinned (restic 0.14 keeps them all, "policy is empty").
	RemoveAll bool
}

// bucket functions: snapshots with equal values share a bucket. nr is the
// snapshot's position in the newest-first list (Last's bucket).
func bucketLast(_ time.Time, nr int) int { return nr }
func bucketHour(d time.Time, _ int) int {
	return d.Year()*1000000 + int(d.Month())*10000 + d.Day()*100 + d.Hour()
}
func bucketDay(d time.Time, _ int) int { return d.Year()*10000 + int(d.Month())*100 + d.Day() }
func bucketWeek(d time.Time, _ int) int {
	y, w := d.ISOWeek()
	return y*100 + w
}
func bucketMonth(d time.Time, _ int) int { return d.Year()*100 + int(d.Month()) }
func bucketYear(d time.Time, _ int) int  { return d.Year() }

// SortNewestFirst sorts list newest first; snapshots with equal times by
// descending id (restic leaves their order to an unstable sort).
func SortNewestFirst(list []snapshot.Entry) {
	slices.SortStableFunc(list, func(a, b snapshot.Entry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID.String(), a.ID.String())
	})
}

// Apply splits list (one group) into the snapshots p keeps and those it
// removes, both newest first; reasons has one entry per kept snapshot, in
// the order of keep. list is sorted in place (SortNewestFirst).
func Apply(list []snapshot.Entry, p Policy, o ApplyOptions) (keep, remove []snapshot.Entry, reasons []Reason) {
	SortNewestFirst(list)
	if p.Empty() && !o.RemoveAll {
		for _, e := range list {
			r := Reason{Snapshot: e, Matches: []string{"policy is empty"}}
			if why, ok := o.Pinned[e.ID]; ok {
				r.Matches = append(r.Matches, why)
			}
			keep, reasons = append(keep, e), append(reasons, r)
		}
		return keep, remove, reasons
	}
	if len(list) == 0 {
		return nil, nil, nil
	}
	type counted struct {
		count  int
		bucket func(time.Time, int) int
		last   int
		reason string
	}
	buckets := []counted{
		{p.Last, bucketLast, -1, "last snapshot"},
		{p.Hourly, bucketHour, -1, "hourly snapshot"},
		{p.Daily, bucketDay, -1, "daily snapshot"},
		{p.Weekly, bucketWeek, -1, "weekly snapshot"},
		{p.Monthly, bucketMonth, -1, "monthly snapshot"},
		{p.Yearly, bucketYear, -1, "yearly snapshot"},
	}
	type within struct {
		d      Duration
		bucket func(time.Time, int) int
		last   int
		reason string
	}
	withins := []within{
		{p.WithinHourly, bucketHour, -1, "hourly within"},
		{p.WithinDaily, bucketDay, -1, "daily within"},
		{p.WithinWeekly, bucketWeek, -1, "weekly within"},
		{p.WithinMonthly, bucketMonth, -1, "monthly within"},
		{p.WithinYearly, bucketYear, -1, "yearly within"},
	}
	latest := newestBefore(list, o.Now)

	for nr, cur := range list {
		var matches []string
		for _, l := range p.Tags {
			if l.matches(cur.Snapshot) {
				matches = append(matches, fmt.Sprintf("has tags %s", l))
			}
		}
		if !p.Within.Zero() && cur.Time.After(p.Within.before(latest)) {
			matches = append(matches, fmt.Sprintf("within %s", p.Within))
		}
		for i := range buckets {
			b := &buckets[i]
			if b.count == 0 || b.count < Unlimited {
				continue
			}
			if v := b.bucket(cur.Time, nr); v != b.last {
				b.last = v
				if b.count > 0 {
					b.count--
				}
				matches = append(matches, b.reason)
			}
		}
		for i := range withins {
			w := &withins[i]
			if w.d.Zero() || !cur.Time.After(w.d.before(latest)) {
				continue
			}
			if v := w.bucket(cur.Time, nr); v != w.last {
				w.last = v
				matches = append(matches, fmt.Sprintf("%s %s", w.reason, w.d))
			}
		}
		if why, ok := o.Pinned[cur.ID]; ok {
			matches = append(matches, why)
		}
		if len(matches) == 0 {
			remove = append(remove, cur)
			continue
		}
		keep = append(keep, cur)
		reasons = append(reasons, Reason{Snapshot: cur, Matches: matches, Counters: Counters{
			Last: buckets[0].count, Hourly: buckets[1].count, Daily: buckets[2].count,
			Weekly: buckets[3].count, Monthly: buckets[4].count, Yearly: buckets[5].count,
		}})
	}
	return keep, remove, reasons
}

// newestBefore returns the newest snapshot time not later than now (the
// zero time if every snapshot lies in the future), as restic's
// findLatestTimestamp.
func newestBefore(list []snapshot.Entry, now time.Time) time.Time {
	if now.IsZero() {
		now = time.Now()
	}
	var latest time.Time
	for _, e := range list {
		if e.Time.After(latest) && e.Time.Before(now) {
			latest = e.Time
		}
	}
	return latest
}

// GroupBy says which snapshot properties split snapshots into groups that
// a policy is applied to separately. Tiers groups by the tier entries of
// the paths ("tier:NAME"), ignoring plain paths; Paths (all paths, tier
// entries included) takes precedence when both are set.
type GroupBy struct {
	Host, Paths, Tags, Tiers bool
}

// DefaultGroupBy is restic's default, "host,paths".
var DefaultGroupBy = GroupBy{Host: true, Paths: true}

// ErrBadGroupBy means a --group-by key is unknown.
var ErrBadGroupBy = errors.New("unknown grouping option")

// ParseGroupBy parses a comma-separated list of host, paths, tags and
// tiers; "" means no grouping (one group).
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, k := range strings.Split(s, ",") {
		switch strings.TrimSpace(k) {
		case "host":
			g.Host = true
		case "paths":
			g.Paths = true
		case "tags":
			g.Tags = true
		case "tiers":
			g.Tiers = true
		case "":
		default:
			return GroupBy{}, fmt.Errorf("--group-by %q: %w %q (want host, paths, tags or tiers)", s, ErrBadGroupBy, k)
		}
	}
	return g, nil
}

// String renders g as --group-by takes it.
func (g GroupBy) String() string {
	var ks []string
	for _, k := range []struct {
		on   bool
		name string
	}{{g.Host, "host"}, {g.Paths, "paths"}, {g.Tags, "tags"}, {g.Tiers, "tiers"}} {
		if k.on {
			ks = append(ks, k.name)
		}
	}
	return strings.Join(ks, ",")
}

// GroupKey is what the snapshots of a group share: restic's group key.
// A property not grouped by is empty (Tags and Paths nil); Tags and Paths
// are sorted. Grouping by tiers puts the tier entries in Paths.
type GroupKey struct {
	Host  string   `json:"host"`
	Tags  []string `json:"tags"`
	Paths []string `json:"paths"`
}

// String describes the key as restic's group header does ("host [h],
// tags [a, b], paths [/srv]"), "" for no grouping.
func (k GroupKey) String() string {
	var parts []string
	if k.Host != "" {
		parts = append(parts, "host ["+k.Host+"]")
	}
	if len(k.Tags) > 0 {
		parts = append(parts, "tags ["+strings.Join(k.Tags, ", ")+"]")
	}
	if len(k.Paths) > 0 {
		parts = append(parts, "paths ["+strings.Join(k.Paths, ", ")+"]")
	}
	return strings.Join(parts, ", ")
}

func (k GroupKey) id() string {
	return k.Host + "\x00" + strings.Join(k.Tags, "\x01") + "\x00" + strings.Join(k.Paths, "\x01")
}

// Group is one group of snapshots, oldest first as given.
type Group struct {
	Key       GroupKey
	Snapshots []snapshot.Entry
}

// KeyOf returns the group key of sn under g.
func (g GroupBy) KeyOf(sn *snapshot.Snapshot) GroupKey {
	var k GroupKey
	if g.Host {
		k.Host = sn.Hostname
	}
	if g.Tags && len(sn.Tags) > 0 {
		k.Tags = slices.Sorted(slices.Values(sn.Tags))
	}
	switch {
	case g.Paths && len(sn.Paths) > 0:
		k.Paths = slices.Sorted(slices.Values(sn.Paths))
	case g.Tiers:
		for _, p := range sn.Paths {
			if strings.HasPrefix(p, "tier:") {
				k.Paths = append(k.Paths, p)
			}
		}
		slices.Sort(k.Paths)
	}
	return k
}

// GroupSnapshots splits list into groups by g, in a fixed order (by host,
// then tags, then paths); each group keeps list's order.
func GroupSnapshots(list []snapshot.Entry, g GroupBy) []Group {
	byID := map[string]int{}
	var out []Group
	for _, e := range list {
		k := g.KeyOf(e.Snapshot)
		i, ok := byID[k.id()]
		if !ok {
			i = len(out)
			byID[k.id()] = i
			out = append(out, Group{Key: k})
		}
		out[i].Snapshots = append(out[i].Snapshots, e)
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.Key.id(), b.Key.id()) })
	return out
}

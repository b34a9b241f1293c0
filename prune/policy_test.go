package prune

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/snapshot"
)

// snap is a snapshot for policy tests: time (RFC 3339, its zone kept),
// host, tags and paths.
type snap struct {
	time  string
	host  string
	tags  []string
	paths []string
}

// entries builds snapshot entries whose ids encode their position, so
// failures can name them ("#3").
func entries(t *testing.T, snaps []snap) []snapshot.Entry {
	t.Helper()
	out := make([]snapshot.Entry, 0, len(snaps))
	for i, s := range snaps {
		tm, err := time.Parse(time.RFC3339Nano, s.time)
		if err != nil {
			t.Fatal(err)
		}
		host := s.host
		if host == "" {
			host = "h1"
		}
		paths := s.paths
		if paths == nil {
			paths = []string{"/srv"}
		}
		out = append(out, snapshot.Entry{ID: testID(i), Snapshot: &snapshot.Snapshot{Version: 1, Time: tm, Hostname: host, Tags: s.tags, Paths: paths}})
	}
	return out
}

func testID(i int) chunk.ID {
	var id chunk.ID
	id[0], id[1] = byte(i>>8), byte(i)
	return id
}

func idxOf(e snapshot.Entry) int { return int(e.ID[0])<<8 | int(e.ID[1]) }

func idxs(list []snapshot.Entry) []int {
	out := []int{}
	for _, e := range list {
		out = append(out, idxOf(e))
	}
	return out
}

// reasonText renders reasons as "#i: match, match" lines.
func reasonText(rs []Reason) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("#%d: %s", idxOf(r.Snapshot), strings.Join(r.Matches, ", ")))
	}
	return out
}

var testNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPolicyHandChecked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		snaps   []snap
		policy  Policy
		keep    []int // newest first
		reasons []string
	}{
		{
			name: "keep-last 3",
			snaps: []snap{
				{time: "2021-01-01T10:00:00Z"}, {time: "2021-01-01T11:00:00Z"}, {time: "2021-01-02T10:00:00Z"},
				{time: "2021-01-03T10:00:00Z"}, {time: "2021-01-04T10:00:00Z"},
			},
			policy:  Policy{Last: 3},
			keep:    []int{4, 3, 2},
			reasons: []string{"#4: last snapshot", "#3: last snapshot", "#2: last snapshot"},
		},
		{
			name: "hourly buckets keep the newest of each hour",
			snaps: []snap{
				{time: "2021-05-01T10:05:00Z"}, {time: "2021-05-01T10:50:00Z"}, {time: "2021-05-01T11:10:00Z"},
				{time: "2021-05-01T11:59:59Z"}, {time: "2021-05-01T13:00:00Z"},
			},
			policy: Policy{Hourly: 2},
			keep:   []int{4, 3},
		},
		{
			// 2020 has 53 ISO weeks: Mon 2020-12-28 .. Sun 2021-01-03 is
			// 2020-W53, so Jan 3 and Dec 28 share a bucket, Jan 4 starts
			// 2021-W01.
			name: "ISO weeks across a year boundary",
			snaps: []snap{
				{time: "2020-12-27T12:00:00Z"}, {time: "2020-12-28T12:00:00Z"}, {time: "2021-01-03T12:00:00Z"},
				{time: "2021-01-04T12:00:00Z"}, {time: "2021-01-10T12:00:00Z"},
			},
			policy: Policy{Weekly: 3},
			keep:   []int{4, 2, 0},
		},
		{
			name: "unlimited weekly keeps every week",
			snaps: []snap{
				{time: "2020-12-27T12:00:00Z"}, {time: "2020-12-28T12:00:00Z"}, {time: "2021-01-03T12:00:00Z"},
				{time: "2021-01-04T12:00:00Z"}, {time: "2021-01-10T12:00:00Z"},
			},
			policy: Policy{Weekly: Unlimited},
			keep:   []int{4, 2, 0},
		},
		{
			name: "monthly and yearly",
			snaps: []snap{
				{time: "2019-06-01T00:00:00Z"}, {time: "2019-12-31T23:59:59Z"}, {time: "2020-01-15T00:00:00Z"},
				{time: "2020-01-31T00:00:00Z"}, {time: "2020-02-01T00:00:00Z"},
			},
			policy:  Policy{Monthly: 2, Yearly: 2},
			keep:    []int{4, 3, 1},
			reasons: []string{"#4: monthly snapshot, yearly snapshot", "#3: monthly snapshot", "#1: yearly snapshot"},
		},
		{
			// Measured back from the newest snapshot, strictly after: the
			// snapshot exactly 1d before the newest is not within 1d.
			name: "keep-within is strict and measured from the newest snapshot",
			snaps: []snap{
				{time: "2021-01-09T12:00:00Z"}, {time: "2021-01-09T12:00:01Z"}, {time: "2021-01-10T00:00:00Z"},
				{time: "2021-01-10T12:00:00Z"},
			},
			policy: Policy{Within: Duration{Days: 1}},
			keep:   []int{3, 2, 1},
		},
		{
			// 1m back from March 31 is "February 31", normalised to March 3.
			name: "keep-within months use calendar arithmetic",
			snaps: []snap{
				{time: "2021-03-02T12:00:00Z"}, {time: "2021-03-03T12:00:00Z"}, {time: "2021-03-03T12:00:01Z"},
				{time: "2021-03-31T12:00:00Z"},
			},
			policy:  Policy{Within: Duration{Months: 1}},
			keep:    []int{3, 2},
			reasons: []string{"#3: within 1m", "#2: within 1m"},
		},
		{
			// A snapshot in the future does not move "the newest": within
			// counts from the newest one before now, and the future one is
			// newer than that, so it is kept as well.
			name: "keep-within ignores snapshots in the future as the newest",
			snaps: []snap{
				{time: "2021-01-01T00:00:00Z"}, {time: "2021-01-05T00:00:00Z"}, {time: "2021-01-06T00:00:00Z"},
				{time: "2031-01-01T00:00:00Z"},
			},
			policy: Policy{Within: Duration{Days: 2}},
			keep:   []int{3, 2, 1},
		},
		{
			name: "keep-tag: all tags of one list",
			snaps: []snap{
				{time: "2021-01-01T00:00:00Z", tags: []string{"a"}}, {time: "2021-01-02T00:00:00Z", tags: []string{"a", "b"}},
				{time: "2021-01-03T00:00:00Z", tags: []string{"b"}}, {time: "2021-01-04T00:00:00Z"},
			},
			policy:  Policy{Tags: []TagList{{"a", "b"}, {"c"}}},
			keep:    []int{1},
			reasons: []string{"#1: has tags [a, b]"},
		},
		{
			name: "combination: reasons in restic's order",
			snaps: []snap{
				{time: "2021-01-01T00:00:00Z", tags: []string{"x"}}, {time: "2021-01-02T00:00:00Z"},
				{time: "2021-01-02T06:00:00Z"}, {time: "2021-01-03T00:00:00Z", tags: []string{"x"}},
			},
			policy: Policy{Last: 1, Daily: 2, Tags: []TagList{{"x"}}, Within: Duration{Hours: 20}, WithinDaily: Duration{Days: 5}},
			keep:   []int{3, 2, 0},
			reasons: []string{
				"#3: has tags [x], within 20h, last snapshot, daily snapshot, daily within 5d",
				"#2: within 20h, daily snapshot, daily within 5d",
				"#0: has tags [x], daily within 5d",
			},
		},
		{
			// Buckets are read in the zone the time was recorded in: 00:30
			// at +01:00 on Jan 1 is 2021 for the yearly rule, though it is
			// still 2020 in UTC.
			name: "buckets use the recorded zone",
			snaps: []snap{
				{time: "2020-12-31T22:00:00Z"}, {time: "2021-01-01T00:30:00+01:00"},
			},
			policy: Policy{Yearly: 2},
			keep:   []int{1, 0},
		},
		{
			name:    "empty policy keeps everything",
			snaps:   []snap{{time: "2021-01-01T00:00:00Z"}, {time: "2021-01-02T00:00:00Z"}},
			keep:    []int{1, 0},
			reasons: []string{"#1: policy is empty", "#0: policy is empty"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list := entries(t, tc.snaps)
			keep, remove, reasons := Apply(list, tc.policy, ApplyOptions{Now: testNow})
			if got := idxs(keep); !slices.Equal(got, tc.keep) {
				t.Errorf("keep %v, want %v (reasons %q)", got, tc.keep, reasonText(reasons))
			}
			if len(keep)+len(remove) != len(tc.snaps) || len(reasons) != len(keep) {
				t.Errorf("%d kept + %d removed of %d, %d reasons", len(keep), len(remove), len(tc.snaps), len(reasons))
			}
			if tc.reasons != nil && !slices.Equal(reasonText(reasons), tc.reasons) {
				t.Errorf("reasons\n%q\nwant\n%q", reasonText(reasons), tc.reasons)
			}
		})
	}
}

func TestPolicyCounters(t *testing.T) {
	list := entries(t, []snap{
		{time: "2021-01-01T00:00:00Z"}, {time: "2021-01-02T00:00:00Z"}, {time: "2021-01-03T00:00:00Z"},
	})
	_, _, reasons := Apply(list, Policy{Last: 2, Daily: Unlimited, Yearly: 5}, ApplyOptions{Now: testNow})
	want := []Counters{{Last: 1, Daily: -1, Yearly: 4}, {Daily: -1, Yearly: 4}, {Daily: -1, Yearly: 4}}
	var got []Counters
	for _, r := range reasons {
		got = append(got, r.Counters)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counters %+v, want %+v", got, want)
	}
}

func TestPolicyPinnedAndRemoveAll(t *testing.T) {
	list := entries(t, []snap{
		{time: "2021-01-01T00:00:00Z"}, {time: "2021-01-02T00:00:00Z"}, {time: "2021-01-03T00:00:00Z"},
	})
	pinned := map[chunk.ID]string{testID(0): ReasonWindow}
	keep, remove, reasons := Apply(list, Policy{Last: 1}, ApplyOptions{Now: testNow, Pinned: pinned})
	if !slices.Equal(idxs(keep), []int{2, 0}) || !slices.Equal(idxs(remove), []int{1}) {
		t.Errorf("pinned: keep %v remove %v", idxs(keep), idxs(remove))
	}
	if want := []string{"#2: last snapshot", "#0: oplog window"}; !slices.Equal(reasonText(reasons), want) {
		t.Errorf("reasons %q, want %q", reasonText(reasons), want)
	}
	keep, remove, _ = Apply(list, Policy{}, ApplyOptions{Now: testNow, Pinned: pinned, RemoveAll: true})
	if !slices.Equal(idxs(keep), []int{0}) || !slices.Equal(idxs(remove), []int{2, 1}) {
		t.Errorf("remove all: keep %v remove %v", idxs(keep), idxs(remove))
	}
}

func TestPolicyGroupBy(t *testing.T) {
	list := entries(t, []snap{
		{time: "2021-01-01T00:00:00Z", host: "a", tags: []string{"y", "x"}, paths: []string{"/srv", "tier:warm"}},
		{time: "2021-01-02T00:00:00Z", host: "a", paths: []string{"tier:warm", "/srv"}},
		{time: "2021-01-03T00:00:00Z", host: "b", tags: []string{"x", "y"}, paths: []string{"/srv", "/etc", "tier:warm"}},
		{time: "2021-01-04T00:00:00Z", host: "a", paths: []string{"/etc", "tier:warm"}},
	})
	render := func(gs []Group) []string {
		var out []string
		for _, g := range gs {
			out = append(out, fmt.Sprintf("%s=%v", g.Key, idxs(g.Snapshots)))
		}
		return out
	}
	for _, tc := range []struct {
		by   string
		want []string
	}{
		{"host,paths", []string{
			"host [a], paths [/etc, tier:warm]=[3]",
			"host [a], paths [/srv, tier:warm]=[0 1]",
			"host [b], paths [/etc, /srv, tier:warm]=[2]",
		}},
		{"host,tiers", []string{"host [a], paths [tier:warm]=[0 1 3]", "host [b], paths [tier:warm]=[2]"}},
		{"tags", []string{"=[1 3]", "tags [x, y]=[0 2]"}},
		{"", []string{"=[0 1 2 3]"}},
	} {
		by, err := ParseGroupBy(tc.by)
		if err != nil {
			t.Fatal(err)
		}
		if got := render(GroupSnapshots(list, by)); !slices.Equal(got, tc.want) {
			t.Errorf("group by %q:\n%q\nwant\n%q", tc.by, got, tc.want)
		}
	}
	if _, err := ParseGroupBy("host,tag"); err == nil {
		t.Error("group by host,tag: accepted, want an error (restic's key is tags)")
	}
}

func TestPolicyDuration(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" : an error
	}{
		{"1y2m3d4h", "1y2m3d4h"}, {"48h", "48h"}, {"4h1y", "1y4h"}, {"2d3d", "3d"}, {" 7d ", "7d"},
		{"", ""}, {"1", ""}, {"1x", ""}, {"d", ""}, {"-1d", ""}, {"1d-2h", ""}, {"1.5d", ""},
	} {
		d, err := ParseDuration(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseDuration(%q) = %v, want an error", tc.in, d)
		case tc.want != "" && err != nil:
			t.Errorf("ParseDuration(%q): %v", tc.in, err)
		case tc.want != "" && d.String() != tc.want:
			t.Errorf("ParseDuration(%q) = %s, want %s", tc.in, d, tc.want)
		}
	}
}

// TestPolicyString: the "Applying Policy:" line as restic 0.14 prints it
// (the expected strings are restic's own output).
func TestPolicyString(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{Within: Duration{Days: 2}}, "keep all snapshots within 2d of the newest"},
		{Policy{Tags: []TagList{{"a"}}}, "keep all snapshots with tags [[a]]"},
		{Policy{WithinDaily: Duration{Days: 2}}, "keep daily snapshots within 2d"},
		{Policy{Within: Duration{Days: 1}, Tags: []TagList{{"a"}}, Last: 1, WithinWeekly: Duration{Days: 3}},
			"keep 1 latest snapshots, weekly snapshots within 3d and all snapshots with tags [[a]] and all snapshots within 1d of the newest"},
		{Policy{Last: 1, Monthly: 2, WithinHourly: Duration{Years: 1}, WithinDaily: Duration{Days: 3}, Tags: []TagList{{"b"}, {"a", "x"}}},
			"keep 1 latest, 2 monthly snapshots, hourly snapshots within 1y, daily snapshots within 3d and all snapshots with tags [[b] [a, x]]"},
		{Policy{Daily: Unlimited}, "keep all daily snapshots"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := (Policy{Daily: -2}).Validate(); err == nil {
		t.Error("keep-daily -2 accepted")
	}
	if err := (Policy{Daily: -1, Last: 3}).Validate(); err != nil {
		t.Error(err)
	}
}

package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
)

// Phase names, in copy order (see the package documentation).
const (
	phaseKeys          = "keys"
	phaseConfig        = "config"
	phaseData          = repo.PrefixData
	phaseIndex         = repo.PrefixIndex
	phaseOplog         = repo.PrefixOplog
	phaseHeartbeats    = "heartbeats"
	phaseSnapshots     = repo.PrefixSnapshots
	phaseDeletions     = repo.PrefixDeletions
	phasePolicy        = repo.PrefixPolicy
	phaseVerifications = repo.PrefixVerifications
	phaseDrills        = repo.PrefixDrills
)

// phaseOrder is the copy order; the primary is listed in reverse.
var phaseOrder = []struct{ name, prefix string }{
	{phaseKeys, "keys/"},
	{phaseConfig, ""}, // a Stat, not a listing
	{phaseData, repo.PrefixData + "/"},
	{phaseIndex, repo.PrefixIndex + "/"},
	{phaseOplog, repo.PrefixOplog + "/"},
	{phaseHeartbeats, repo.PrefixOplog + "/"},
	{phaseSnapshots, repo.PrefixSnapshots + "/"},
	{phaseDeletions, repo.PrefixDeletions + "/"},
	{phasePolicy, repo.PrefixPolicy + "/"},
	{phaseVerifications, repo.PrefixVerifications + "/"},
	{phaseDrills, repo.PrefixDrills + "/"},
}

// kind is what a key names, from its shape alone.
type kind struct {
	phase string
	id    chunk.ID // object id (zero for the config)
	gen   uint64   // heartbeats: the generation
}

// classify tells which phase a key belongs to, and the object id its name
// carries. Leases and keys outside the layout give ok false.
func classify(key string) (k kind, ok bool) {
	if key == repo.ConfigKey {
		return kind{phase: phaseConfig}, true
	}
	parts := strings.Split(key, "/")
	last := parts[len(parts)-1]
	switch parts[0] {
	case "keys", repo.PrefixIndex, repo.PrefixSnapshots, repo.PrefixDeletions,
		repo.PrefixPolicy, repo.PrefixVerifications, repo.PrefixDrills:
		id, err := chunk.ParseID(last)
		if len(parts) != 2 || err != nil {
			return kind{}, false
		}
		return kind{phase: parts[0], id: id}, true
	case repo.PrefixData:
		id, err := chunk.ParseID(last)
		if len(parts) != 3 || err != nil || !strings.EqualFold(parts[1], id.String()[:2]) {
			return kind{}, false
		}
		return kind{phase: phaseData, id: id}, true
	case repo.PrefixOplog:
		if seg, err := oplog.ParseSegmentKey(key); err == nil {
			return kind{phase: phaseOplog, id: seg.ID}, true
		}
		id, err := chunk.ParseID(last)
		if len(parts) != 4 || err != nil || parts[2] != "heartbeats" || len(parts[1]) != 10 {
			return kind{}, false
		}
		gen, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil || gen == 0 {
			return kind{}, false
		}
		return kind{phase: phaseHeartbeats, id: id, gen: gen}, true
	}
	return kind{}, false
}

// isLease reports keys that are never mirrored.
func isLease(key string) bool { return strings.HasPrefix(key, repo.PrefixLocks+"/") }

// Plan is one pass decided: what to copy, in which order, what to delete.
// It is computed from listings and is stale once either side changes.
type Plan struct {
	m       *Mirror
	started time.Time // wall clock, for Result.Duration
	now     time.Time // Options.Now at planning

	initialize bool
	phases     []phase
	present    int
	ignored    []string
	// staleHeartbeats are mirror heartbeats older than their generation's
	// newest on the primary: removed once that one is on the mirror.
	staleHeartbeats []string
	// removals are keys deletion records name that the mirror still holds
	// and the primary no longer does, with when each becomes due.
	removals []removal
	// extra counts mirror objects the primary lacks and no record names.
	extra int
	// mirrorObjects counts the mirror's objects (leases excluded).
	mirrorObjects int
}

type phase struct {
	name string
	objs []backend.ObjectInfo
}

type removal struct {
	key    string
	due    time.Time
	record chunk.ID
}

// Plan lists the primary (in reverse copy order) and the mirror, and
// decides the pass. It refuses a mirror that holds another repository, or
// objects without a config (repo.ErrOtherRepository, repo.ErrNotEmpty).
func (m *Mirror) Plan(ctx context.Context) (*Plan, error) {
	p := &Plan{m: m, started: time.Now(), now: m.opts.Now()}
	where := backend.Location(m.dst)
	replica, err := m.src.CheckReplica(ctx, m.dst)
	if err != nil {
		return nil, fmt.Errorf("mirror to %s: %w", where, err)
	}
	p.initialize = !replica

	src := map[string]backend.ObjectInfo{}
	byPhase := map[string][]backend.ObjectInfo{}
	for i := len(phaseOrder) - 1; i >= 0; i-- {
		ph := phaseOrder[i]
		if ph.name == phaseConfig {
			fi, err := m.srcBE.Stat(ctx, repo.ConfigKey)
			if err != nil {
				return nil, fmt.Errorf("mirror: stat the primary's config: %w", err)
			}
			src[fi.Key] = fi
			byPhase[ph.name] = []backend.ObjectInfo{fi}
			continue
		}
		err := m.srcBE.List(ctx, ph.prefix, func(fi backend.ObjectInfo) error {
			k, ok := classify(fi.Key)
			if !ok {
				// The oplog/ prefix is listed twice; report strays once.
				if ph.name != phaseHeartbeats && !isLease(fi.Key) {
					p.ignored = append(p.ignored, fi.Key)
				}
				return nil
			}
			if k.phase == ph.name {
				src[fi.Key] = fi
				byPhase[ph.name] = append(byPhase[ph.name], fi)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("mirror: list the primary's %s: %w", ph.prefix, err)
		}
	}

	dst := map[string]backend.ObjectInfo{}
	err = m.dst.List(ctx, "", func(fi backend.ObjectInfo) error {
		if !isLease(fi.Key) {
			dst[fi.Key] = fi
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mirror: list %s: %w", where, err)
	}
	p.mirrorObjects = len(dst)

	newest, err := m.planHeartbeats(ctx, p, byPhase[phaseHeartbeats], src, dst)
	if err != nil {
		return nil, err
	}
	for _, ph := range phaseOrder {
		var missing []backend.ObjectInfo
		for _, fi := range byPhase[ph.name] {
			if _, ok := dst[fi.Key]; ok {
				p.present++
				continue
			}
			if ph.name == phaseHeartbeats && !newest[fi.Key] {
				continue // superseded on the primary already
			}
			missing = append(missing, fi)
		}
		sortObjects(missing)
		p.phases = append(p.phases, phase{name: ph.name, objs: missing})
	}

	named, err := m.planRemovals(ctx, p, byPhase[phaseDeletions], src, dst)
	if err != nil {
		return nil, err
	}
	stale := map[string]bool{}
	for _, k := range p.staleHeartbeats {
		stale[k] = true
	}
	for key := range dst {
		if _, ok := src[key]; !ok && !named[key] && !stale[key] {
			p.extra++
		}
	}
	return p, nil
}

// planHeartbeats picks each generation's newest heartbeat on the primary
// (the only one worth copying) and the mirror's older ones it replaces.
// It returns the set of newest keys.
func (m *Mirror) planHeartbeats(ctx context.Context, p *Plan, listed []backend.ObjectInfo, src, dst map[string]backend.ObjectInfo) (map[string]bool, error) {
	type best struct {
		key string
		t   time.Time
	}
	newestOf := map[uint64]best{}
	for _, fi := range listed {
		t, err := m.heartbeatTime(ctx, m.src.Backend(), fi.Key)
		if errors.Is(err, backend.ErrNotFound) {
			continue // replaced by its writer since the listing
		}
		if err != nil {
			p.m.opts.Progress.Warn(fi.Key, err)
			continue
		}
		k, _ := classify(fi.Key)
		if b, ok := newestOf[k.gen]; !ok || t.After(b.t) {
			newestOf[k.gen] = best{fi.Key, t}
		}
	}
	newest := map[string]bool{}
	for _, b := range newestOf {
		newest[b.key] = true
	}
	for key := range dst {
		k, ok := classify(key)
		if !ok || k.phase != phaseHeartbeats {
			continue
		}
		b, ok := newestOf[k.gen]
		if _, onSrc := src[key]; onSrc || !ok {
			continue // never removed without a newer one to replace it
		}
		t, err := m.heartbeatTime(ctx, m.dst, key)
		if err != nil {
			continue // cannot judge it: keep it
		}
		if t.Before(b.t) {
			p.staleHeartbeats = append(p.staleHeartbeats, key)
		}
	}
	return newest, nil
}

// heartbeatTime reads a heartbeat's time (cached: objects are immutable).
func (m *Mirror) heartbeatTime(ctx context.Context, be backend.Backend, key string) (time.Time, error) {
	if t, ok := m.heartbeats[key]; ok {
		return t, nil
	}
	stored, err := backend.LoadAll(ctx, be, key)
	if err != nil {
		return time.Time{}, err
	}
	if err := m.verify(key, stored); err != nil {
		return time.Time{}, fmt.Errorf("heartbeat %s: %w", key, err)
	}
	plain, err := m.src.OpenObject(repo.PrefixOplog, stored)
	if err != nil {
		return time.Time{}, fmt.Errorf("open heartbeat %s: %w", key, err)
	}
	var hb oplog.Heartbeat
	if err := json.Unmarshal(plain, &hb); err != nil {
		return time.Time{}, fmt.Errorf("decode heartbeat %s: %w", key, err)
	}
	m.heartbeats[key] = hb.Time
	return hb.Time, nil
}

// planRemovals reads the primary's deletion records and lists the removals
// they name that concern the mirror, with when each is due. It returns every
// key named under removed, for counting extra objects.
func (m *Mirror) planRemovals(ctx context.Context, p *Plan, records []backend.ObjectInfo, src, dst map[string]backend.ObjectInfo) (map[string]bool, error) {
	named := map[string]bool{}
	due := map[string]removal{}
	for _, fi := range records {
		k, _ := classify(fi.Key)
		d, err := m.record(ctx, k.id)
		switch {
		case errors.Is(err, backend.ErrNotFound):
			continue // removed since the listing
		case errors.Is(err, repo.ErrCorrupt):
			m.opts.Progress.Warn(fi.Key, err) // its copy fails too, and says so
			continue
		case err != nil:
			return nil, err
		}
		// The delay counts from the record's time, or from when the mirror
		// received it if later: a backdated record cannot skip the delay.
		from := d.Time
		received := p.now
		if mi, ok := dst[fi.Key]; ok && !mi.ModTime.IsZero() {
			received = mi.ModTime
		}
		if received.After(from) {
			from = received
		}
		when := from.Add(m.delay())
		for _, key := range d.Removed {
			named[key] = true
			if key == repo.ConfigKey {
				continue
			}
			if _, ok := classify(key); !ok {
				continue
			}
			if _, ok := src[key]; ok {
				continue // the primary still holds it: not removed (yet)
			}
			if _, ok := dst[key]; !ok {
				continue
			}
			if r, ok := due[key]; !ok || when.Before(r.due) {
				due[key] = removal{key: key, due: when, record: k.id}
			}
		}
	}
	for _, r := range due {
		p.removals = append(p.removals, r)
	}
	sortRemovals(p.removals)
	return named, nil
}

// record loads a deletion record (cached: records are immutable).
func (m *Mirror) record(ctx context.Context, id chunk.ID) (*repo.Deletion, error) {
	if d, ok := m.records[id]; ok {
		return d, nil
	}
	var d repo.Deletion
	if err := m.src.LoadJSON(ctx, repo.PrefixDeletions, id, &d); err != nil {
		return nil, fmt.Errorf("mirror: read deletion record: %w", err)
	}
	m.records[id] = &d
	return &d, nil
}

// Missing returns the objects and bytes the plan copies.
func (p *Plan) Missing() (objects int, size int64) {
	for _, ph := range p.phases {
		for _, fi := range ph.objs {
			objects++
			size += fi.Size
		}
	}
	return objects, size
}

// Initialize reports whether the mirror is empty and the plan makes it a
// replica (keys and config first).
func (p *Plan) Initialize() bool { return p.initialize }

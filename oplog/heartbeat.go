package oplog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/repo"
)

// Heartbeat says that at Time (the writer's clock, UTC) the log of its
// generation was complete up to LastLSN: an idle database is not a stale
// backup. Push writes one while no mutations arrive (docs/design.md 10).
type Heartbeat struct {
	Time    time.Time `json:"time"`
	LastLSN uint64    `json:"last_lsn"`
}

// HeartbeatPrefix is where generation gen keeps its heartbeats.
func HeartbeatPrefix(gen uint64) string { return GenerationPrefix(gen) + "heartbeats/" }

// WriteHeartbeat stores hb for generation gen and returns its key. The
// caller removes its previous heartbeat afterwards (RemoveHeartbeat), like a
// lease renewal: a reader never sees none.
func WriteHeartbeat(ctx context.Context, r *repo.Repository, gen uint64, hb Heartbeat) (string, error) {
	hb.Time = hb.Time.UTC()
	plain, err := json.Marshal(hb)
	if err != nil {
		return "", err
	}
	stored, id := r.SealObject(repo.PrefixOplog, plain)
	key := HeartbeatPrefix(gen) + id.String()
	if err := r.Backend().Save(ctx, key, stored); err != nil && !errors.Is(err, backend.ErrExists) {
		return "", fmt.Errorf("save heartbeat %s: %w", key, err)
	}
	return key, nil
}

// RemoveHeartbeat removes a heartbeat this process wrote (no deletion
// record: like leases, heartbeats are replaced by their writer).
func RemoveHeartbeat(ctx context.Context, r *repo.Repository, key string) error {
	if !strings.HasPrefix(key, repo.PrefixOplog+"/") || !strings.Contains(key, "/heartbeats/") {
		return fmt.Errorf("remove heartbeat: %q is not a heartbeat key", key)
	}
	if err := r.Backend().Remove(ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("remove heartbeat %s: %w", key, err)
	}
	return nil
}

// LatestHeartbeat returns generation gen's newest heartbeat (by its time),
// nil if there is none. A heartbeat that fails to authenticate is an error:
// it would otherwise hide a stale log.
func LatestHeartbeat(ctx context.Context, r *repo.Repository, gen uint64) (*Heartbeat, error) {
	var keys []string
	prefix := HeartbeatPrefix(gen)
	err := r.Backend().List(ctx, prefix, func(oi backend.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list heartbeats of generation %d: %w", gen, err)
	}
	var newest *Heartbeat
	for _, key := range keys {
		hb, err := loadHeartbeat(ctx, r, key)
		if errors.Is(err, backend.ErrNotFound) {
			continue // replaced by its writer since the listing
		}
		if err != nil {
			return nil, err
		}
		if newest == nil || hb.Time.After(newest.Time) {
			newest = hb
		}
	}
	return newest, nil
}

func loadHeartbeat(ctx context.Context, r *repo.Repository, key string) (*Heartbeat, error) {
	stored, err := backend.LoadAll(ctx, r.Backend(), key)
	if err != nil {
		return nil, fmt.Errorf("load heartbeat %s: %w", key, err)
	}
	id, err := chunk.ParseID(key[strings.LastIndexByte(key, '/')+1:])
	if err != nil || chunk.ObjectID(stored) != id {
		return nil, fmt.Errorf("load heartbeat %s: stored bytes do not match the id in the key", key)
	}
	plain, err := r.OpenObject(repo.PrefixOplog, stored)
	if err != nil {
		return nil, fmt.Errorf("open heartbeat %s: %w", key, err)
	}
	var hb Heartbeat
	if err := json.Unmarshal(plain, &hb); err != nil {
		return nil, fmt.Errorf("decode heartbeat %s: %w", key, err)
	}
	return &hb, nil
}
